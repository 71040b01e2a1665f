//! Jobs: the queue's jobs page by page, one job, and cancelling one (a queued job at once, a running one
//! when its worker next heartbeats).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pipeline::api::{CancelOutcome, CancelResult, ErrorResponse, Job, JobList};
use pipeline::queue;
use pipeline::store::JobState;
use serde::Deserialize;

use super::page_size;
use crate::auth::{Caller, Read, Require, Write};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;

/// The filter and page of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobListQuery {
    /// Only jobs in this state.
    state: Option<JobState>,
    /// The `next_cursor` of the previous page; none: the newest jobs.
    cursor: Option<String>,
    /// Jobs per page, 1 to 500 (default 50).
    limit: Option<u32>,
}

/// Jobs, newest first.
///
/// Needs the `read` scope (or none with `public-read`).
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    operation_id = "list_jobs",
    params(JobListQuery),
    responses(
        (status = 200, description = "One page of jobs", body = JobList),
        (status = 400, description = "A malformed filter, cursor or limit", body = ErrorResponse),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the read scope", body = ErrorResponse),
    ),
)]
pub(crate) async fn list_jobs(
    _caller: Require<Read>,
    State(state): State<AppState>,
    Query(query): Query<JobListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let limit = page_size(query.limit)?;
    let page = state.store.list_jobs(query.state, query.cursor.as_deref(), limit).await?;
    Ok(Json(JobList { items: page.items.iter().map(Job::from).collect(), next_cursor: page.next_cursor }))
}

/// One job.
///
/// Needs the `read` scope (or none with `public-read`).
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    operation_id = "get_job",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the read scope", body = ErrorResponse),
        (status = 404, description = "No such job", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_job(
    _caller: Require<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Job>, ApiError> {
    job(&state, id).await.map(Json)
}

/// One job, as `GET /api/v1/jobs/{id}` answers.
pub(crate) async fn job(state: &AppState, id: i64) -> Result<Job, ApiError> {
    let job = state.store.get_job(id).await?.ok_or_else(|| unknown_job(id))?;
    Ok(Job::from(&job))
}

/// Cancels a job.
///
/// A queued job is cancelled at once (200); a running one is asked to stop and its worker stops it on its
/// next heartbeat (202); its build follows. Needs the `write` scope.
#[utoipa::path(
    post,
    path = "/jobs/{id}/cancel",
    tag = "jobs",
    operation_id = "cancel_job",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The queued job is cancelled", body = CancelResult),
        (status = 202, description = "The running job's worker is asked to stop it", body = CancelResult),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the write scope", body = ErrorResponse),
        (status = 404, description = "No such job", body = ErrorResponse),
        (status = 409, description = "The job already ended", body = ErrorResponse),
    ),
)]
pub(crate) async fn cancel_job(
    caller: Require<Write>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<CancelResult>), ApiError> {
    let (status, result) = cancel(&state, id, caller.caller()).await?;
    Ok((status, Json(result)))
}

/// Cancels a job (the API's and the dashboard's "cancel"): 200 when it was queued, 202 when its worker
/// is asked to stop it.
pub(crate) async fn cancel(
    state: &AppState,
    id: i64,
    caller: &Caller,
) -> Result<(StatusCode, CancelResult), ApiError> {
    let (status, outcome, job_state) = match state.queue.request_cancel(id).await? {
        queue::CancelOutcome::Cancelled => (StatusCode::OK, CancelOutcome::Cancelled, JobState::Cancelled),
        queue::CancelOutcome::Requested => {
            (StatusCode::ACCEPTED, CancelOutcome::Requested, JobState::Running)
        }
        queue::CancelOutcome::AlreadyFinished(ended) => {
            return Err(ApiError::conflict(
                "job_finished",
                format!("job {id} already ended ({ended}); there is nothing to cancel"),
            ));
        }
        queue::CancelOutcome::NotFound => return Err(unknown_job(id)),
    };
    // A live log of a job cancelled while queued ends now.
    state.log_events.appended(id);
    tracing::info!(job.id = id, outcome = ?outcome, caller = caller.name(), "cancel requested");
    Ok((status, CancelResult { job_id: id, outcome, state: job_state }))
}

pub(crate) fn unknown_job(id: i64) -> ApiError {
    ApiError::not_found(format!("no job {id}"))
}
