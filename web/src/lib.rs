//! The HTTP side of `arbor serve` (axum).
//!
//! - [`worker_api`]: the worker protocol's server side under `/api/v1/worker` (bearer tokens with scope
//!   `worker`): registration, long-poll claims, heartbeats, logs, phases, inputs as tar, completion.

pub mod worker_api;
