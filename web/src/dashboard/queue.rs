//! The queue and the workers: running jobs (longest running first) and queued ones (in claim order) with
//! how long each waits, and the workers with their arches, current job and last heartbeat.
//!
//! Workers are shown to every reader (`GET /api/v1/workers` itself needs the admin scope): their name,
//! kind, arches, whether they are online, their current job and when they were last seen. Those say
//! what builds where and hold no secret (leases and tokens are never in them); the worker's id and
//! software version are shown to admins only, as the API shows them.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use pipeline::store::JobSummary;
use serde::Serialize;

use super::components::{self as ui, Section};
use super::session::Viewer;
use super::{Page, json_answer, wants_json};
use crate::api::workers::worker_list;
use crate::error::ApiError;
use crate::state::AppState;

/// The API calls that give this page's data.
const SOURCES: [&str; 3] = ["/api/v1/jobs?state=running", "/api/v1/jobs?state=queued", "/api/v1/workers"];

/// What `Accept: application/json` gets: the API calls that give this page's data.
#[derive(Debug, Serialize)]
struct Sources {
    api: [&'static str; 3],
}

/// `GET /queue`.
pub(crate) async fn queue_page(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    viewer.require_read()?;
    if wants_json(&headers) {
        return Ok(json_answer(SOURCES[0], &Sources { api: SOURCES }));
    }
    let (overview, workers) = tokio::try_join!(
        async { state.store.queue_overview().await.map_err(ApiError::from) },
        worker_list(&state)
    )?;
    let now = state.now();
    // A running job names the worker holding its lease by id; people know workers by name.
    let names: HashMap<&str, &str> =
        workers.items.iter().map(|worker| (worker.id.as_str(), worker.name.as_str())).collect();
    let body = html! {
        div.page-head {
            div.titles {
                h1 { "Queue and workers" }
                p.muted {
                    (overview.running.len()) " running · " (overview.queued.len()) " queued · "
                    (workers.items.iter().filter(|worker| worker.online).count()) " of " (workers.items.len()) " workers online"
                }
            }
        }
        section aria-labelledby="running-heading" {
            h2 #running-heading { "Running" }
            (jobs_table("running", &overview.running, "Running for", &names, now))
        }
        section aria-labelledby="queued-heading" {
            h2 #queued-heading { "Queued" }
            (jobs_table("queued", &overview.queued, "Waiting for", &names, now))
        }
        section aria-labelledby="workers-heading" {
            h2 #workers-heading { "Workers" }
            @if workers.items.is_empty() {
                p.empty { "No worker has registered." }
            } @else {
                div.table-wrap {
                    table.responsive #workers {
                        caption.visually-hidden { "Workers, most recently seen first" }
                        thead { tr {
                            th scope="col" { "Worker" } th scope="col" { "State" } th scope="col" { "Arches" }
                            th scope="col" { "Current job" } th scope="col" { "Last heartbeat" }
                            @if viewer.is_admin { th scope="col" { "Id" } th scope="col" { "Version" } }
                        } }
                        tbody {
                            @for worker in &workers.items {
                                tr {
                                    td data-label="Worker" { strong { (worker.name) } " " span.muted { (worker.kind.as_str()) } }
                                    td data-label="State" {
                                        @if worker.online { span.status.status-succeeded { span.symbol aria-hidden="true" { "●" } "online" } }
                                        @else { span.status.status-cancelled { span.symbol aria-hidden="true" { "○" } "offline" } }
                                    }
                                    td data-label="Arches" { @for arch in &worker.arches { code { (arch) } " " } }
                                    td data-label="Current job" {
                                        @match worker.current_job_id { Some(id) => { a href={ "/jobs/" (id) } { "job " (id) } } None => span.muted { "idle" } }
                                    }
                                    td data-label="Last heartbeat" { (ui::time(worker.last_seen.milliseconds(), now)) }
                                    @if viewer.is_admin {
                                        td data-label="Id" { code { (worker.id) } }
                                        td data-label="Version" { (worker.version) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let page = Page {
        title: "Queue and workers".into(),
        section: Section::Queue,
        breadcrumbs: Vec::new(),
        api: Some(SOURCES[0].into()),
        body,
    };
    Ok(page.render(&viewer, StatusCode::OK))
}

fn jobs_table(id: &str, jobs: &[JobSummary], waited: &str, names: &HashMap<&str, &str>, now: i64) -> Markup {
    html! {
        @if jobs.is_empty() {
            p.empty { "None." }
        } @else {
            div.table-wrap {
                table.responsive id={ (id) "-jobs" } {
                    caption.visually-hidden { (id) " jobs" }
                    thead { tr {
                        th scope="col" { "Job" } th scope="col" { "Stream" } th scope="col" { "Arch" }
                        th scope="col" { "Phase" } th scope="col" { "Worker" } th.number scope="col" { (waited) }
                        th scope="col" { "Created" }
                    } }
                    tbody {
                        @for summary in jobs {
                            @let job = &summary.job;
                            tr {
                                td data-label="Job" { a href={ "/jobs/" (job.id) } { "job " (job.id) } " " span.muted { (job.kind) } }
                                td data-label="Stream" {
                                    @match &job.stream { Some(stream) => { a href={ "/streams/" (stream) } { (stream) } } None => span.muted { "—" } }
                                }
                                td data-label="Arch" { code { (job.arch.as_deref().unwrap_or("any")) } }
                                td data-label="Phase" { (job.phase.as_deref().unwrap_or("—")) }
                                td data-label="Worker" {
                                    @match job.lease_owner.as_deref() {
                                        Some(owner) => (names.get(owner).copied().unwrap_or(owner)),
                                        None => "—",
                                    }
                                }
                                td.number data-label=(waited) { (ui::duration(summary.waiting_ms)) }
                                td.nowrap data-label="Created" { (ui::time(job.created_at, now)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
