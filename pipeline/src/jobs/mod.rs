//! The jobs of `arbor serve`, as the queue carries them: their kinds, the payload a worker gets (all it
//! needs besides its token and registry credentials), the result it reports, and how composes of a
//! stream's commit are requested (one build and one compose job per arch, coalescing queued ones).

pub mod payload;
mod requests;

pub use payload::{ComposePayload, ComposeResult, ComposeStatus, JoinPayload, PreviousBuild};
pub use requests::{ComposeRequest, RequestError, compose_dedup_key, request_compose, request_composes};

/// The job that composes one stream's commit for one arch into an image.
pub const COMPOSE_KIND: &str = "compose";

/// The job that joins the per-arch images of a stream's commit into one image index.
pub const JOIN_KIND: &str = "join";

/// The kinds a worker may claim, in the order listed to it.
pub const ALL_KINDS: [&str; 2] = [COMPOSE_KIND, JOIN_KIND];
