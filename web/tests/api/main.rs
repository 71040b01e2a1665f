//! Integration tests of the web layer against real SQLite files, a throwaway PostgreSQL, a real git
//! remote and mirror, through the router (`oneshot`) and, for live logs and shutdown, a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod auth;
mod builds;
mod errors;
mod jobs;
mod openapi;
mod operations;
mod webhooks;
