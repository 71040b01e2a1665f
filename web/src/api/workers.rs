//! `GET /api/v1/workers`: embedded and remote workers, with whether each is online.

use axum::Json;
use axum::extract::State;
use pipeline::api::{ErrorResponse, Worker, WorkerList};

use crate::auth::{Admin, Require};
use crate::error::ApiError;
use crate::state::AppState;

/// How many lease durations a worker may go unseen and still count as online: it heartbeats every
/// quarter lease, so two leases are several missed heartbeats.
pub const ONLINE_LEASES: u32 = 2;

/// The workers, most recently seen first.
///
/// A worker is online when seen within two lease durations. Needs the `admin` scope.
#[utoipa::path(
    get,
    path = "/workers",
    tag = "workers",
    operation_id = "list_workers",
    responses(
        (status = 200, description = "Every registered worker", body = WorkerList),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the admin scope", body = ErrorResponse),
    ),
)]
pub(crate) async fn list_workers(
    _caller: Require<Admin>,
    State(state): State<AppState>,
) -> Result<Json<WorkerList>, ApiError> {
    worker_list(&state).await.map(Json)
}

/// The workers, as `GET /api/v1/workers` answers.
pub(crate) async fn worker_list(state: &AppState) -> Result<WorkerList, ApiError> {
    let online_since = online_since(state);
    let workers = state.store.list_workers().await?;
    let items = workers.iter().map(|worker| Worker::from_store(worker, online_since)).collect();
    Ok(WorkerList { items, next_cursor: None })
}

/// The time after which a worker's last sighting makes it online.
pub(crate) fn online_since(state: &AppState) -> i64 {
    let window = state.queue.options().lease_duration * ONLINE_LEASES;
    state.now() - pipeline::clock::millis(window)
}
