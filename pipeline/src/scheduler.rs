//! The scheduler: only the process holding [`Leadership`] runs it (another takes over when it dies). It
//! fetches the mirror every poll interval and whenever a webhook says so; a stream branch that is new,
//! advanced or force-pushed gets a compose per arch, a deleted one an event; a failing remote is shown on
//! every stream and retried with backoff, never a crash. A stream head without any build (a fresh server,
//! a request that failed) gets one. Expired leases are reaped every half lease.

use std::sync::Arc;
use std::time::Duration;

use common::blocking::Cancellation;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock::millis;
use crate::config::{Config, StreamSettings};
use crate::git::{BranchChange, BranchReport, CommitId, GitError, Mirror, remote_retry_delay};
use crate::jobs::{ComposeRequest, RequestError, request_composes};
use crate::leadership::{ACQUIRE_RETRY_INTERVAL, Leadership, LeadershipError, SchedulerLease};
use crate::queue::Queue;
use crate::random;
use crate::store::{Store, StoreError};

/// The scheduler's lock file next to a SQLite database (in the state directory).
const LOCK_FILE: &str = "scheduler.lock";
/// Resolution of the jitter sample of retry delays.
const JITTER_STEPS: u64 = 1000;

/// What went wrong handling one stream after a fetch (logged; the next poll tries again).
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// Git polling, compose requests and the reaper, in the leading process.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Store,
    queue: Queue,
    mirror: Arc<Mirror>,
    config: Arc<Config>,
}

impl Scheduler {
    /// Becomes the leader (retrying), schedules while leading, and starts over when leadership is lost;
    /// returns when `shutdown` is raised. A [`Store::request_fetch`] (a webhook, in any replica) fetches at
    /// once.
    pub async fn run(
        store: Store,
        queue: Queue,
        mirror: Arc<Mirror>,
        config: Arc<Config>,
        shutdown: Cancellation,
    ) {
        let fetch_now = store.fetch_requests();
        let leadership = Leadership::new(&store, config.server.state_dir.join(LOCK_FILE));
        let scheduler = Scheduler { store, queue, mirror, config };
        loop {
            let mut lease = tokio::select! {
                () = shutdown.cancelled() => return,
                lease = leadership.acquire(ACQUIRE_RETRY_INTERVAL) => match lease {
                    Ok(lease) => lease,
                    Err(error) => {
                        tracing::warn!(%error, "could not become the scheduler; trying again");
                        continue;
                    }
                },
            };
            let led = scheduler.lead(&mut lease, &fetch_now, &shutdown).await;
            lease.release().await;
            match led {
                Ok(()) => return,
                Err(error) => tracing::warn!(%error, "lost the scheduler lock; trying to take it again"),
            }
        }
    }

    /// Schedules until shutdown (`Ok`) or until leadership is lost.
    async fn lead(
        &self,
        lease: &mut SchedulerLease,
        fetch_now: &Notify,
        shutdown: &Cancellation,
    ) -> Result<(), LeadershipError> {
        for stream in &self.config.streams {
            if let Err(error) = self.store.upsert_stream(&stream.name, &stream.branch).await {
                tracing::warn!(stream = %stream.name, %error, "could not save the stream");
            }
        }
        let reap_interval = self.queue.options().lease_duration / 2;
        let mut reap_at = Instant::now() + reap_interval;
        let mut failures: u32 = 0;
        let mut poll_at = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = fetch_now.notified() => {
                    failures = self.poll(failures).await;
                    poll_at = self.next_poll(failures);
                }
                () = tokio::time::sleep_until(poll_at) => {
                    failures = self.poll(failures).await;
                    poll_at = self.next_poll(failures);
                }
                () = tokio::time::sleep_until(reap_at) => {
                    if let Err(error) = self.queue.reap().await {
                        tracing::warn!(%error, "reaping expired leases failed");
                    }
                    lease.check().await?;
                    reap_at = Instant::now() + reap_interval;
                }
            }
        }
    }

    /// When to fetch next: after the poll interval, or after the backoff of a failing remote.
    fn next_poll(&self, failures: u32) -> Instant {
        if failures == 0 {
            Instant::now() + self.config.git.poll_interval
        } else {
            Instant::now() + retry_delay(failures)
        }
    }

    /// Fetches and schedules what changed; returns the failures in a row (0 after a success).
    async fn poll(&self, failures: u32) -> u32 {
        let report = match self.mirror.fetch().await {
            Ok(report) => report,
            Err(error) => {
                let failures = failures.saturating_add(1);
                let delay = retry_delay(failures);
                tracing::warn!(%error, failures, retry_in = ?delay, "fetching the git remote failed");
                let next_attempt_at = self.store.now() + millis(delay);
                for stream in &self.config.streams {
                    let recorded = self
                        .store
                        .record_stream_git_error(&stream.name, &error.to_string(), next_attempt_at)
                        .await;
                    if let Err(error) = recorded {
                        tracing::warn!(stream = %stream.name, %error, "could not record the git error");
                    }
                }
                return failures;
            }
        };
        for stream in &self.config.streams {
            let handled = match report.branch(&stream.branch) {
                Some(branch) => self.branch_changed(stream, branch).await,
                None => Ok(()),
            };
            let caught_up = match handled {
                Ok(()) => self.build_head_if_unbuilt(stream, failures > 0).await,
                Err(error) => Err(error),
            };
            if let Err(error) = caught_up {
                tracing::warn!(stream = %stream.name, %error, "scheduling the stream failed; the next poll tries again");
            }
        }
        0
    }

    /// Requests composes of a new, advanced or force-pushed branch's head; records force-pushes and
    /// deletions on the stream.
    async fn branch_changed(
        &self,
        stream: &StreamSettings,
        branch: &BranchReport,
    ) -> Result<(), StreamError> {
        match (branch.change, &branch.before, &branch.after) {
            (BranchChange::Deleted, before, _) => {
                let was = before.as_ref().map_or("unknown".to_string(), |before| before.short().to_string());
                let event = format!(
                    "branch {} was deleted (its head was {was}); nothing is built until it exists again",
                    stream.branch
                );
                tracing::warn!(stream = %stream.name, "{event}");
                self.store.record_stream_event(&stream.name, &event).await?;
            }
            (BranchChange::New | BranchChange::Advanced | BranchChange::ForcePushed, before, Some(after)) => {
                if branch.change == BranchChange::ForcePushed {
                    let was = before.as_ref().map_or("unknown", |before| before.short());
                    let event = format!("force-pushed from {was} to {}", after.short());
                    tracing::warn!(stream = %stream.name, "{event}");
                    self.store.record_stream_event(&stream.name, &event).await?;
                }
                self.request(stream, after).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A head that has no build at all gets one; a stream whose git error just cleared records its head
    /// again (clearing the error).
    async fn build_head_if_unbuilt(
        &self,
        stream: &StreamSettings,
        recovering: bool,
    ) -> Result<(), StreamError> {
        let Some(head) = self.mirror.head(&stream.branch).await? else {
            return Ok(());
        };
        if self.store.builds_of_commit(&stream.name, head.as_str()).await?.is_empty() {
            return self.request(stream, &head).await;
        }
        let row = self.store.get_stream(&stream.name).await?;
        if recovering || row.is_some_and(|row| row.git_error.is_some() || row.head_commit.is_none()) {
            let information = self.mirror.commit_info(&head).await?;
            self.store.record_stream_head(&stream.name, head.as_str(), &information.subject).await?;
        }
        Ok(())
    }

    /// Records `commit` as the stream's head and requests its composes.
    async fn request(&self, stream: &StreamSettings, commit: &CommitId) -> Result<(), StreamError> {
        let information = self.mirror.commit_info(commit).await?;
        self.store.record_stream_head(&stream.name, commit.as_str(), &information.subject).await?;
        let request = ComposeRequest {
            stream,
            commit: commit.as_str(),
            subject: Some(information.subject),
            force: false,
        };
        request_composes(&self.store, &request).await?;
        Ok(())
    }
}

/// The backoff after `failures` failed fetches in a row.
fn retry_delay(failures: u32) -> Duration {
    let sample = random::up_to(JITTER_STEPS).unwrap_or(0) as f64 / JITTER_STEPS as f64;
    remote_retry_delay(failures, sample)
}
