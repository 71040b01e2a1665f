//! The jobs of `arbor serve`, as the queue carries them: their kinds, the payload a worker gets (all it
//! needs besides its token and registry credentials), the result it reports, and how composes of a
//! stream's commit are requested (one build and one compose job per arch, coalescing queued ones); the
//! job bodies ([`compose::run`], [`join::run`], [`noop::run`]), what a worker is handed at a claim
//! ([`assign`]) and how the server records what it reports ([`complete_job`]).

pub mod assignment;
pub mod compose;
mod compose_log;
pub mod context;
pub mod join;
pub mod noop;
pub mod payload;
pub mod record;
mod requests;

pub use assignment::{AssignError, AssignedJob, Assignment, assign};
pub use context::{JobContext, JobError, LogFields, LogSink, PhaseSink, Report, error_chain};
pub use join::{JoinResult, request_if_ready as request_join_if_ready};
pub use payload::{ComposePayload, ComposeResult, ComposeStatus, JoinPayload, PreviousBuild};
pub use record::{JobOutcome, RecordError, complete_compose, complete_job};
pub use requests::{ComposeRequest, RequestError, compose_dedup_key, request_compose, request_composes};

/// The job that composes one stream's commit for one arch into an image.
pub const COMPOSE_KIND: &str = "compose";

/// The job that joins the per-arch images of a stream's commit into one image index.
pub const JOIN_KIND: &str = "join";

/// A job that only waits: for tests and benchmarks of the queue and the workers.
pub const NOOP_KIND: &str = "noop";

/// The kinds a worker may claim, in the order listed to it.
pub const ALL_KINDS: [&str; 2] = [COMPOSE_KIND, JOIN_KIND];
