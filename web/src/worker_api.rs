//! The worker protocol under `/api/v1/worker` (notes/service-plan.md): registration, claims, heartbeats,
//! logs, phases, inputs, completion. Built by the execution side; until then this answers nothing (every
//! path is 404). Handlers take `Require<Worker>` (crate::auth) and call `state.log_events.appended(job)`
//! after appending lines or ending a job so live logs follow at once.

use axum::Router;

use crate::state::AppState;

/// The worker API's routes, nested at [`crate::router::WORKER_API_PREFIX`].
pub fn routes() -> Router<AppState> {
    Router::new()
}
