//! Registry transfer: push an OCI image layout to a registry and pull images back.
//!
//! The distribution-spec endpoints are driven directly with `reqwest`, which gives control over what
//! matters for multi-gigabyte images: blobs stream from their files (never whole into memory),
//! large blobs go up in [`UPLOAD_CHUNK_BYTES`] PATCH chunks, several at a time; every request has a
//! stall timeout; failures are retried with backoff (5xx, 429 with `Retry-After`, dropped
//! connections, timeouts), a failed blob upload restarting with a new upload session.
//!
//! A push checks which blobs the registry already has (HEAD) and uploads only the missing ones; the
//! child manifests of an index follow by digest, and the tag is written last, only once everything
//! it references is confirmed present, so a tag never names a partial image.
//!
//! Credentials come from the containers/docker auth files ([`auth`]); basic auth and the bearer
//! token flow are supported, and no secret ever reaches an error message or a log line.

pub mod auth;
mod client;
mod layout;
mod pull;
mod push;
mod reference;
mod retry;

pub use auth::{AuthEnvironment, AuthFileCandidate, AuthFileSource, Credentials, auth_file_candidates};
pub use layout::{DOCKER_MANIFEST_LIST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE};
pub use pull::{MAXIMUM_FETCHED_BLOB_BYTES, PulledManifest, fetch_blob, fetch_manifest, pull_to_layout};
pub use push::{PushReport, push_layout};
pub use reference::{DEFAULT_REGISTRY, DEFAULT_TAG, RegistryReference};
pub use retry::RetryPolicy;

use std::path::PathBuf;
use std::time::Duration;

/// Blobs up to this size go up in one PUT; larger ones in PATCH chunks of this size. 16 MiB keeps
/// each request short enough to fit under the request-size limits of proxies and CDNs in front of
/// registries (often 32-100 MiB) while costing only one extra round trip per 16 MiB.
pub const UPLOAD_CHUNK_BYTES: u64 = 16 * 1024 * 1024;
/// Blobs transferred at the same time by default: enough to hide per-request latency, few enough
/// not to trip registries' per-client rate limits.
pub const DEFAULT_CONCURRENT_UPLOADS: usize = 4;
/// How long establishing a connection (TCP and TLS) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may go without progress (no body bytes sent or received, no answer) by
/// default. Generous because a registry may verify and move a multi-gigabyte blob on object storage
/// before it answers the final PUT of an upload.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(180);

/// How to talk to a registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `--authfile`: the only auth file consulted when set (it must exist).
    pub auth_file: Option<PathBuf>,
    /// Verify TLS certificates. When false, invalid certificates are accepted and a registry that
    /// does not speak TLS is reached over plain HTTP.
    pub tls_verify: bool,
    /// Blobs transferred at the same time (uploads on push, downloads on pull); at least 1.
    pub concurrent_uploads: usize,
    pub retry: RetryPolicy,
    /// How long connecting to the registry may take.
    pub connect_timeout: Duration,
    /// How long one request may go without any progress before it fails as a timeout.
    pub request_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            auth_file: None,
            tls_verify: true,
            concurrent_uploads: DEFAULT_CONCURRENT_UPLOADS,
            retry: RetryPolicy::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// HTTP 408 Request Timeout, retried like a 5xx.
const REQUEST_TIMEOUT_STATUS: u16 = 408;
/// HTTP 429 Too Many Requests, retried after the server's `Retry-After`.
const TOO_MANY_REQUESTS_STATUS: u16 = 429;
/// The first server-error status; 5xx answers are retried.
const FIRST_SERVER_ERROR_STATUS: u16 = 500;
/// The distribution-spec error code of an upload session the registry forgot (e.g. after a
/// restart): restarting the upload fixes it.
const BLOB_UPLOAD_UNKNOWN: &str = "BLOB_UPLOAD_UNKNOWN";

/// Everything that can go wrong talking to a registry or reading and writing a layout.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("auth file {}: {reason}", path.display())]
    AuthFile { path: PathBuf, reason: String },
    /// 401: never carries the secret, only where it came from.
    #[error("authentication failed for {registry} ({hint})")]
    AuthenticationFailed { registry: String, hint: String },
    #[error("access to {registry}/{repository} denied (HTTP 403{detail}); {hint}")]
    Denied { registry: String, repository: String, detail: String, hint: String },
    #[error("{method} {url}: HTTP {status}{detail}")]
    Status {
        method: String,
        url: String,
        status: u16,
        /// The registry's error code (`BLOB_UNKNOWN`, ...), when it sent one.
        code: Option<String>,
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("{method} {url}: {detail}")]
    Transport { method: String, url: String, detail: String },
    #[error("{method} {url}: the registry did not answer for {}s (timed out)", timeout.as_secs_f64())]
    Timeout { method: String, url: String, timeout: Duration },
    #[error("{url}: {detail}")]
    Protocol { url: String, detail: String },
    #[error("{what}: gave up after {attempts} attempts: {last}")]
    GaveUp { what: String, attempts: u32, last: Box<RegistryError> },
    #[error("{registry}/{repository}: {reference} not found")]
    NotFound { registry: String, repository: String, reference: String },
    #[error("{url}: digest mismatch: expected {expected}, received content has {actual}")]
    DigestMismatch { url: String, expected: String, actual: String },
    #[error("{url}: {what} larger than {limit} bytes")]
    TooLarge { url: String, what: &'static str, limit: u64 },
    #[error("{url}: invalid manifest: {reason}")]
    InvalidManifest { url: String, reason: String },
    /// A layout directory that is not a valid OCI image layout; `path` names the offending file.
    #[error("malformed OCI layout: {}: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("destination {destination} names digest {expected}, but the layout's image is {actual}")]
    DestinationDigest { destination: String, expected: String, actual: String },
    #[error("setting up the HTTP client: {0}")]
    Client(String),
}

impl RegistryError {
    /// Whether trying again may succeed: server errors, 408, 429, broken connections, timeouts,
    /// corrupted transfers and forgotten upload sessions.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, code, .. } => {
                *status >= FIRST_SERVER_ERROR_STATUS
                    || *status == TOO_MANY_REQUESTS_STATUS
                    || *status == REQUEST_TIMEOUT_STATUS
                    || code.as_deref() == Some(BLOB_UPLOAD_UNKNOWN)
            }
            Self::Transport { .. }
            | Self::Timeout { .. }
            | Self::Protocol { .. }
            | Self::DigestMismatch { .. } => true,
            _ => false,
        }
    }

    /// The pause the registry asked for (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The error of the last attempt when retries were exhausted, else this error.
    pub fn last_attempt(&self) -> &Self {
        match self {
            Self::GaveUp { last, .. } => last.last_attempt(),
            other => other,
        }
    }

    /// Whether this is (or, after retries, ended in) a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.last_attempt(), Self::Timeout { .. })
    }

    /// Whether authentication failed.
    pub fn is_authentication_failure(&self) -> bool {
        matches!(self.last_attempt(), Self::AuthenticationFailed { .. })
    }

    fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io { path: path.to_path_buf(), source }
    }
}
