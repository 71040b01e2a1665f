//! The domain of `arbor serve`.
//!
//! - [`config`]: `arbor.toml`, every error located by file, line and key; [`secret`]: secrets read from
//!   files or environment variables, never printed.
//! - [`git`]: the mirror of the configuration repository (the `git` program), exact work trees of
//!   commits; [`webhook`]: push events of GitHub, GitLab and Forgejo, verified and parsed.
//! - [`store`]: [`Store`], one type over SQLite (one process, embedded workers) and PostgreSQL (several
//!   `arbor serve` processes): streams, builds, jobs and their logs, workers, tokens, image indexes.
//! - [`queue`]: [`Queue`], jobs with leases, heartbeats, fencing tokens, retries with backoff,
//!   cancellation, a reaper, and a wake-up that needs no polling.
//! - [`leadership`]: which process runs the scheduler (a PostgreSQL advisory lock, or a lock file next
//!   to a SQLite database).
//! - [`jobs`]: the compose and join jobs: payloads, results, requesting the composes of a commit, the
//!   job bodies, and recording what workers report.
//! - [`worker`]: the worker runtime (embedded workers on the queue, remote ones over the worker
//!   protocol); [`scheduler`]: git polling, compose requests and the reaper, in the leading process.
//! - [`clock`]: where times come from (milliseconds since the Unix epoch, always supplied by Rust).
//! - [`api`]: the JSON bodies of the HTTP API, shared by the server and its clients; [`metrics`]: the
//!   names of the Prometheus metrics.

#[macro_use]
mod dispatch;
#[macro_use]
mod enqueue;
pub mod api;
pub mod client;
pub mod clock;
pub mod config;
pub mod git;
pub mod jobs;
pub mod leadership;
pub mod metrics;
pub mod queue;
mod random;
pub mod scheduler;
pub mod secret;
pub mod store;
pub mod webhook;
pub mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use leadership::{Leadership, LeadershipError, SchedulerLease};
pub use queue::{Queue, QueueOptions};
pub use scheduler::Scheduler;
pub use store::{Store, StoreError};
