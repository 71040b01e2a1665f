//! A job's page: its state and phase, its build, and its log live (Server-Sent Events from the API's
//! log endpoint, followed by the script; it resumes after the last line it showed when the connection
//! drops); and "cancel", which asks first.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::build::ActionForm;
use super::components::{self as ui, Section};
use super::session::{Viewer, authorize_action};
use super::streams::form_or_error;
use super::{Page, json_answer, see_other, wants_json};
use crate::api::jobs::{cancel as cancel_job, job};
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

/// `GET /jobs/{id}`.
pub(crate) async fn job_page(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    viewer.require_read()?;
    let api = format!("/api/v1/jobs/{id}");
    let job = job(&state, id).await?;
    if wants_json(&headers) {
        return Ok(json_answer(&api, &job));
    }
    let build = state.store.build_of_job(id).await?;
    // The worker holding the lease, by the name people know it by.
    let worker = match &job.worker_id {
        Some(worker_id) => {
            Some(state.store.worker_name(worker_id).await?.unwrap_or_else(|| worker_id.clone()))
        }
        None => None,
    };
    let now = state.now();
    let ended = job.state.is_final();
    let body = html! {
        div.page-head {
            div.titles {
                h1 { "Job " (job.id) " " span data-job-state=(job.state.as_str()) { (ui::status(job.state.as_str())) } }
                p.muted {
                    (job.kind)
                    @if let Some(stream) = &job.stream { " of " a href={ "/streams/" (stream) } { (stream) } }
                    @if let Some(arch) = &job.arch { " · " code { (arch) } }
                    @if let Some(build) = &build { " · " a href={ "/builds/" (build.id) } { "build " (build.id) } }
                }
            }
            @if viewer.can_write && !ended {
                form.actions method="post" action={ "/jobs/" (job.id) "/cancel" }
                    data-confirm={ "Cancel job " (job.id) "? A cancelled compose cannot be resumed." } {
                    (ui::csrf_field(&viewer))
                    button.button.button-danger type="submit" { "Cancel job" }
                }
            }
        }
        @if job.cancel_requested && !ended {
            div.banner.banner-warning role="status" { strong { "Cancelling" } "The worker stops the job at its next heartbeat." }
        }
        @if let Some(error) = &job.error {
            div.banner.banner-error { strong { "Error" } pre { (error) } }
        }
        section.panel aria-labelledby="job-facts" {
            h2 #job-facts.visually-hidden { "About the job" }
            dl.facts.facts-wide {
                dt { "Phase" } dd #job-phase { (job.phase.as_deref().unwrap_or(if ended { "ended" } else { "not started" })) }
                dt { "Attempts" } dd { (job.attempts) " of " (job.max_attempts) }
                dt { "Worker" } dd { (worker.as_deref().unwrap_or("—")) }
                dt { "Created" } dd { (ui::time(job.created_at.milliseconds(), now)) }
                dt { "Started" } dd { (ui::maybe_time(job.started_at.map(|time| time.milliseconds()), now)) }
                dt { "Finished" } dd { (ui::maybe_time(job.finished_at.map(|time| time.milliseconds()), now)) }
                @if let (Some(started), Some(finished)) = (job.started_at, job.finished_at) {
                    dt { "Took" } dd { (ui::duration(finished.milliseconds() - started.milliseconds())) }
                }
            }
        }
        section aria-labelledby="log-heading" {
            h2 #log-heading { "Log" }
            div.log-status {
                span #log-status role="status" aria-live="polite" { @if ended { "the job ended" } @else { "loading the log…" } }
                span #log-count.muted { }
                a href={ "/api/v1/jobs/" (job.id) "/log" } { "as text" }
                button.button.follow #log-follow type="button" hidden { "Follow the end" }
            }
            pre.log #log tabindex="0" aria-label="The job's log" data-stream={ "/api/v1/jobs/" (job.id) "/log" }
                data-last-seq="0" data-status="log-status" {}
        }
    };
    let page = Page {
        title: format!("Job {}", job.id),
        section: Section::Queue,
        breadcrumbs: vec![("Queue".into(), "/queue".into())],
        api: Some(api),
        body,
    };
    Ok(page.render(&viewer, StatusCode::OK))
}

/// `POST /jobs/{id}/cancel`: cancels it (a queued job at once, a running one at its next heartbeat),
/// then shows it again.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    form: Result<axum::Form<ActionForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let form = form_or_error(form)?;
    let caller = authorize_action(&viewer, &headers, form.csrf.as_deref())?;
    cancel_job(&state, id, caller).await?;
    Ok(see_other(&format!("/jobs/{id}")))
}
