//! The HTTP face of `arbor serve` (axum): the JSON API under `/api/v1` with its OpenAPI 3.1 document,
//! webhooks, live logs, `/metrics`, `/healthz` and `/readyz`.
//!
//! - [`state`]: [`AppState`], what handlers reach (store, queue, configuration, git mirror, the
//!   scheduler's fetch trigger, live-log wake-ups, metrics, clock).
//! - [`auth`]: tokens, scopes and `public-read` ([`Require`]); [`error`]: [`ApiError`], every error answer;
//!   [`extract`]: JSON, query and path extractors whose rejections say what was wrong.
//! - [`api`]: streams, builds, jobs and their logs, workers, tokens; [`hooks`]: the git webhook;
//!   [`metrics`], [`health`], [`openapi`].
//! - [`router`]: [`router()`], every route with its layers; [`serve`](mod@serve): [`serve()`], with a
//!   graceful shutdown.
//! - [`worker_api`]: the worker protocol (the execution side's).
//! - [`dashboard`]: the HTML pages for people, over the same functions as the API.

pub mod api;
pub mod auth;
mod cache;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod health;
pub mod hooks;
pub mod metrics;
pub mod openapi;
pub mod router;
pub mod serve;
pub mod state;
pub mod worker_api;

pub use auth::{Caller, Require};
pub use error::ApiError;
pub use openapi::openapi;
pub use router::router;
pub use serve::serve;
pub use state::{AppParts, AppState, LogEvents, StateError};
