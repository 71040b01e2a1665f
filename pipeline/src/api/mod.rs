//! The JSON bodies of the HTTP API (`/api/v1`), shared by the server (crate `web`, which serves them and
//! documents them in its OpenAPI document) and its clients (`arbor remote`, `arbor worker`), so neither
//! side depends on the other's HTTP stack.
//!
//! Conventions: snake_case fields; times are RFC 3339 strings in UTC with milliseconds ([`Timestamp`]);
//! commits and digests in full; absent values are `null`, never missing; lists are
//! `{"items": [...], "next_cursor": "..." | null}` (pass `next_cursor` back as `?cursor=` for the next
//! page); errors are `{"error": {"code": "...", "message": "..."}}`.

mod convert;
mod timestamp;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use timestamp::Timestamp;

pub use crate::store::{BuildStatus, JobState, Scope, WorkerKind};

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

/// What went wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `not_found`, `invalid_json`, `missing_scope`.
    #[schema(example = "not_found")]
    pub code: String,
    /// For people: what was wrong and, where there is something to do, what to do next.
    pub message: String,
}

/// Declares a list answer `{items, next_cursor}` of one item type.
macro_rules! list_type {
    ($(#[$meta:meta])* $name:ident of $item:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// The cursor of the next page (`?cursor=`), `null` on the last page.
            pub next_cursor: Option<String>,
        }
    };
}

list_type!(
    /// The configured streams, by name (one page).
    StreamList of Stream
);
list_type!(
    /// Builds, newest first.
    BuildList of BuildSummary
);
list_type!(
    /// Jobs, newest first.
    JobList of Job
);
list_type!(
    /// Workers, most recently seen first (one page).
    WorkerList of Worker
);
list_type!(
    /// Tokens, newest first, revoked and expired ones included (one page).
    TokenList of Token
);

/// A stream: a branch composed into an image, its configuration and what was last seen of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stream {
    pub name: String,
    pub branch: String,
    /// The treefile's path in the repository.
    pub treefile: String,
    pub arches: Vec<String>,
    /// The image repository (no tag).
    pub image: String,
    /// Higher runs first when workers are busy.
    pub priority: i32,
    /// The branch head the scheduler last saw; `null` before the first fetch.
    pub head: Option<StreamHead>,
    /// Set while fetching the remote keeps failing.
    pub git_error: Option<GitProblem>,
    /// The last notable event, e.g. a force-push.
    pub last_event: Option<StreamEvent>,
    /// Per arch (in the configured order): the newest build and the last good one.
    pub builds: Vec<ArchBuilds>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamHead {
    pub commit: String,
    pub subject: Option<String>,
    pub seen_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GitProblem {
    /// What failed and what to do.
    pub message: String,
    /// The first failure in a row.
    pub since: Option<Timestamp>,
    pub failures: i64,
    pub next_attempt_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamEvent {
    #[schema(example = "force-pushed from 0123456789ab to 89abcdef0123")]
    pub message: String,
    pub at: Option<Timestamp>,
}

/// One arch of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArchBuilds {
    pub arch: String,
    /// The newest build, whatever its status.
    pub latest: Option<BuildSummary>,
    /// The newest build that left an image (succeeded, or unchanged).
    pub last_good_build_id: Option<i64>,
}

/// A build as lists show it (without package lists, diffs, phases and errors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildSummary {
    pub id: i64,
    pub stream: String,
    pub arch: String,
    /// The full commit id.
    pub git_commit: String,
    pub git_subject: Option<String>,
    pub status: BuildStatus,
    /// The compose job of this build.
    pub job_id: Option<i64>,
    /// The build the package diff and the download size are against.
    pub previous_build_id: Option<i64>,
    pub version: Option<String>,
    pub inputhash: Option<String>,
    pub ostree_commit: Option<String>,
    /// `HOST/REPOSITORY@sha256:...`.
    pub image_reference: Option<String>,
    pub manifest_digest: Option<String>,
    /// What a client of the previous build downloads.
    pub download_bytes: Option<i64>,
    pub image_bytes: Option<i64>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// A build with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Build {
    #[serde(flatten)]
    pub summary: BuildSummary,
    /// NEVRAs, sorted.
    pub packages: Option<Vec<String>>,
    /// Upgraded, downgraded, added and removed packages against the previous build.
    pub package_diff: Option<serde_json::Value>,
    pub phases: Vec<Phase>,
    /// The whole error chain of a failed build, one cause per line.
    pub error: Option<String>,
    /// The image's layers in the manifest's order (an unchanged build shows its previous build's).
    pub layers: Option<Vec<Layer>>,
}

/// One layer of a build's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Layer {
    #[schema(example = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")]
    pub digest: String,
    /// Compressed bytes, as a client downloads them.
    pub size: i64,
    #[schema(example = "kernel and 2 more")]
    pub description: String,
    /// The packages (or other components) whose content is in the layer.
    pub components: Vec<String>,
}

/// One timed phase of a compose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Phase {
    #[schema(example = "resolving")]
    pub name: String,
    pub started_at: Timestamp,
    pub duration_ms: i64,
}

/// `POST /api/v1/streams/{name}/builds`: what to compose. Every field is optional; an empty body composes
/// the branch head for every arch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// A full commit id in the mirror; `null`: the branch head.
    #[serde(default)]
    pub commit: Option<String>,
    /// One of the stream's arches; `null`: every arch.
    #[serde(default)]
    pub arch: Option<String>,
    /// Compose even if the inputs equal the previous build's.
    #[serde(default)]
    pub force: bool,
}

/// The builds a compose request made or joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildsRequested {
    pub stream: String,
    pub commit: String,
    pub subject: Option<String>,
    pub builds: Vec<RequestedBuild>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequestedBuild {
    pub arch: String,
    pub build: BuildSummary,
    pub job_id: i64,
    pub outcome: RequestOutcome,
}

/// What a request did to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestOutcome {
    /// A new build and compose job.
    Created,
    /// A compose of this stream and arch was still queued: it builds this commit now.
    Coalesced,
    /// The same compose was queued already and stays as it was.
    Deduplicated,
}

/// A job of the queue (its lease token is never shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: i64,
    #[schema(example = "compose")]
    pub kind: String,
    pub stream: Option<String>,
    /// The arch a worker must build; `null`: any worker.
    pub arch: Option<String>,
    pub state: JobState,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    /// A queued job does not start before this (retry backoff).
    pub run_after: Timestamp,
    /// The worker id holding the lease of a running job.
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub cancel_requested: bool,
    pub dedup_key: Option<String>,
    /// The phase a running job last reported.
    pub phase: Option<String>,
    /// Lines of its log so far (the last line's sequence number).
    pub log_lines: i64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The whole error chain of the last failure, one cause per line.
    pub error: Option<String>,
    /// What the job was given.
    pub payload: serde_json::Value,
    /// What the job reported when it succeeded.
    pub result: Option<serde_json::Value>,
}

/// `POST /api/v1/jobs/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancelResult {
    pub job_id: i64,
    pub outcome: CancelOutcome,
    /// The job's state now: `cancelled`, or still `running` until its worker stops.
    pub state: JobState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CancelOutcome {
    /// The job was queued and is cancelled.
    Cancelled,
    /// The job runs; its worker stops it on its next heartbeat.
    Requested,
}

/// The payload of the `end` event of a live log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogEnd {
    pub job_id: i64,
    pub state: JobState,
    /// The last line's sequence number.
    pub log_lines: i64,
    pub error: Option<String>,
}

/// A worker: embedded in `arbor serve` or `arbor worker` on a build host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Worker {
    #[schema(example = "w_abcdefghijklmnop")]
    pub id: String,
    pub name: String,
    pub arches: Vec<String>,
    pub kind: WorkerKind,
    pub version: String,
    pub registered_at: Timestamp,
    pub last_seen: Timestamp,
    /// Seen within two lease durations.
    pub online: bool,
    pub current_job_id: Option<i64>,
}

/// An API token (never the token itself, which is shown once, when created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Who or what uses it, e.g. `ci` or `worker-aarch64-1`.
    pub name: String,
    /// `read`, `write` (compose, retry, cancel; includes read), `admin` (tokens, workers; includes write),
    /// or `worker` alone (the worker API only).
    pub scopes: Vec<Scope>,
    /// When it stops working; `null`: never.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// A created token and its secret, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: Token,
    /// `arbor_` and 32 characters: send it as `Authorization: Bearer ...`. Only its hash is stored.
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("secret", &"<secret>")
            .finish()
    }
}

/// What `POST /api/v1/hooks/git` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookResult {
    pub event: WebhookEventKind,
    #[schema(example = "GitHub")]
    pub forge: String,
    /// The forge's id of this delivery.
    pub delivery: Option<String>,
    /// What happens next, or why nothing does.
    pub message: String,
    /// The streams whose branch the push touched.
    pub streams: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEventKind {
    Push,
    Ping,
    Ignored,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`: whether this process can serve, check by check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<ReadinessCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadinessCheck {
    #[schema(example = "database")]
    pub name: String,
    pub ok: bool,
    /// What was found, and what to do when it is not ok.
    pub message: String,
}
