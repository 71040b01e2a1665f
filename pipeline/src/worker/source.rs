//! Where a worker gets its jobs and reports on them: one trait, [`JobSource`], with the queue itself for
//! embedded workers ([`super::LocalJobSource`]) and the worker protocol for remote ones
//! ([`super::RemoteJobSource`]); and the claim the server side of both runs ([`claim_next`]).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::git::{GitError, Mirror};
use crate::jobs::{AssignError, Assignment, JobOutcome, RecordError, assign, error_chain};
use crate::queue::{ClaimRequest, HeartbeatAnswer, Lease, Outcome, POLL_FALLBACK, Queue};
use crate::store::{NewLogLine, StoreError};

use super::archive::ArchiveError;

/// What a worker tells the server about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerIdentity {
    pub name: String,
    pub arches: Vec<String>,
    /// The arbor version it runs.
    pub version: String,
}

/// What registering gave the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub worker_id: String,
    pub lease_duration: Duration,
    /// A quarter of the lease: a lease survives a few lost heartbeats.
    pub heartbeat_interval: Duration,
}

/// The heartbeat interval of a lease: a quarter of it.
pub fn heartbeat_interval(lease_duration: Duration) -> Duration {
    lease_duration / 4
}

/// Why a job source call failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The lease expired or passed to another worker: stop the job and discard it without reporting.
    #[error("job {job_id}: the lease is lost; the job is discarded here")]
    LeaseLost { job_id: i64 },
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Record(RecordError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{action}: cannot reach the arbor server at {url}: {detail}")]
    Unreachable { action: String, url: String, detail: String },
    #[error("{action}: the arbor server answered {status} ({code}): {message}")]
    Refused { action: String, status: u16, code: String, message: String },
    #[error("{action}: the arbor server answered something unexpected: {detail}")]
    Protocol { action: String, detail: String },
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, SourceError::LeaseLost { .. })
    }
}

impl From<StoreError> for SourceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::LeaseLost { job_id } => SourceError::LeaseLost { job_id },
            error => SourceError::Store(error),
        }
    }
}

impl From<RecordError> for SourceError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Store(error) => error.into(),
            error => SourceError::Record(error),
        }
    }
}

/// Jobs and reports, wherever they go. Every report carries the lease; a lost lease is
/// [`SourceError::LeaseLost`].
pub trait JobSource: Send + Sync + 'static {
    fn register<'a>(&'a self, identity: &'a WorkerIdentity) -> SourceFuture<'a, Registration>;

    /// The next job of `kinds` for `arches` (and jobs of no arch), waiting up to `wait` for one.
    fn claim<'a>(
        &'a self,
        worker_id: &'a str,
        arches: &'a [String],
        kinds: &'a [String],
        wait: Duration,
    ) -> SourceFuture<'a, Option<Assignment>>;

    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> SourceFuture<'a, HeartbeatAnswer>;

    /// Changes when a running job may have been asked to stop, for a source that can tell at once (in
    /// the server's process); the worker then heartbeats without waiting for the interval.
    fn cancel_requests(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Returns the sequence number of the last line appended.
    fn append_logs<'a>(&'a self, lease: &'a Lease, lines: &'a [NewLogLine]) -> SourceFuture<'a, i64>;

    fn set_phase<'a>(&'a self, lease: &'a Lease, phase: &'a str) -> SourceFuture<'a, ()>;

    /// Writes the job's inputs into `directory`, which does not exist yet: the commit's tree for a
    /// compose, an empty directory otherwise.
    fn prepare_inputs<'a>(&'a self, assignment: &'a Assignment, directory: &'a Path) -> SourceFuture<'a, ()>;

    /// Ends the job; returns its state afterwards (`queued` for a retry).
    fn complete<'a>(&'a self, lease: &'a Lease, outcome: JobOutcome) -> SourceFuture<'a, String>;

    /// Hands the job back at shutdown without spending an attempt.
    fn release<'a>(&'a self, lease: &'a Lease) -> SourceFuture<'a, ()>;
}

/// What [`JobSource`]'s methods return: boxed, so that workers generic over the source stay `Send`.
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// Claims the next job for a worker, waiting up to `wait` on the queue's wake-up, and describes it
/// ([`assign`]). A job that cannot be described (a broken payload, a commit gone from the mirror) is
/// failed and the next one claimed.
pub async fn claim_next(
    queue: &Queue,
    mirror: &Mirror,
    request: ClaimRequest<'_>,
    wait: Duration,
) -> Result<Option<Assignment>, StoreError> {
    let deadline = Instant::now() + wait;
    // Made before the first look, so an enqueue between the look and the wait is not missed.
    let mut waiter = queue.waiter();
    loop {
        if let Some(claimed) = queue.claim(request).await? {
            let lease = claimed.lease.clone();
            match assign(queue.store(), mirror, claimed).await {
                Ok(assignment) => {
                    queue.store().set_worker_job(request.worker_id, Some(lease.job_id)).await?;
                    return Ok(Some(assignment));
                }
                Err(error) => {
                    fail_unassignable(queue, &lease, &error).await?;
                    continue;
                }
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(None);
        }
        let mut wait = remaining.min(POLL_FALLBACK);
        if let Some(due) = queue.next_due(request).await? {
            let until_due = u64::try_from(due - queue.store().now()).unwrap_or(0);
            wait = wait.min(Duration::from_millis(until_due));
        }
        waiter.wait_for_work(wait).await;
    }
}

async fn fail_unassignable(queue: &Queue, lease: &Lease, error: &AssignError) -> Result<(), StoreError> {
    tracing::warn!(job.id = lease.job_id, error = %error_chain(error), "could not hand a claimed job out");
    let outcome = Outcome::Failed { error: error_chain(error), permanent: error.is_permanent() };
    match queue.complete(lease, outcome).await {
        Ok(_) | Err(StoreError::LeaseLost { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}
