//! The job queue, in the store's database: explicit leases rather than transaction locks.
//!
//! - [`Queue::enqueue`] inserts a job, deduplicated or coalesced on its key, and wakes waiting workers
//!   (PostgreSQL `NOTIFY arbor_jobs` in the enqueue transaction; in-process on SQLite).
//! - [`Queue::claim`] takes the best queued job a worker may run (its kinds; its arches or none) in one
//!   statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL) with a new random lease token: the fencing token.
//! - While it runs, [`Queue::heartbeat`] extends the lease and returns whether cancellation was asked; log
//!   appends, phase updates and completion carry the token and fail with [`StoreError::LeaseLost`] once the
//!   lease expired or passed to another worker, changing nothing.
//! - Transient failures retry after a backoff with jitter until `max_attempts`; permanent ones fail at
//!   once. [`Queue::release`] hands a job back at shutdown without spending an attempt; [`Queue::reap`]
//!   requeues jobs of workers that stopped heartbeating. The build of a compose job follows its job.

mod backoff;
mod lease;
mod reaper;
mod waiter;

use std::time::Duration;

pub use backoff::{Backoff, RETRY_BACKOFF_BASE, RETRY_BACKOFF_CAP};
pub use lease::{Completed, HeartbeatAnswer, Outcome};
pub use reaper::{CancelOutcome, ReapReport};
pub use waiter::{POLL_FALLBACK, Wake, WorkWaiter};

use crate::clock::millis;
use crate::random;
use crate::store::{Job, Store, StoreError, job_columns};

/// How long a claim lasts without a heartbeat. Workers heartbeat every quarter of it, so a lease survives
/// a few lost heartbeats, and a dead worker's job runs again within about a minute.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(60);
/// Attempts of a job unless its kind says otherwise: one try and two retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// How the queue hands out and takes back work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    pub lease_duration: Duration,
    pub backoff: Backoff,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions { lease_duration: DEFAULT_LEASE_DURATION, backoff: Backoff::default() }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// `compose`, `join`, ...
    pub kind: String,
    pub payload: serde_json::Value,
    pub stream: Option<String>,
    /// The arch a worker must build; `None`: any worker may run it.
    pub arch: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    pub max_attempts: u32,
    pub dedup: Option<Dedup>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        NewJob {
            kind: kind.into(),
            payload,
            stream: None,
            arch: None,
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            dedup: None,
        }
    }
}

/// At most one queued job per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    pub key: String,
    pub on_duplicate: OnDuplicate,
}

/// What enqueueing does when a job with the same key is still queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    /// Keep the queued job as it is.
    Skip,
    /// Give the queued job the new payload (e.g. a newer commit of the same stream and arch).
    Coalesce,
}

/// What [`Queue::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnqueueOutcome {
    Created,
    /// A job with the key was queued already and stays as it was.
    Deduplicated,
    /// A job with the key was queued already and got the new payload.
    Coalesced,
}

/// A job with its key: `(job id, outcome)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub job_id: i64,
    pub outcome: EnqueueOutcome,
}

/// Which jobs a worker may run.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub worker_id: &'a str,
    /// Jobs of these arches, and jobs of no arch.
    pub arches: &'a [String],
    pub kinds: &'a [String],
}

/// The right to run one attempt of a job: its id and the fencing token every report carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: i64,
    pub token: String,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Lease").field("job_id", &self.job_id).field("token", &"<secret>").finish()
    }
}

/// A claimed job and its lease.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job: Job,
    pub lease: Lease,
}

/// Appends the condition on jobs a [`ClaimRequest`] may take: one of its kinds, and of no arch or one of
/// its arches.
macro_rules! push_claimable {
    ($query:ident, $request:expr) => {{
        $query.push(" AND kind IN (");
        let mut kinds = $query.separated(", ");
        for kind in $request.kinds {
            kinds.push_bind(kind);
        }
        $query.push(") AND (arch IS NULL");
        if !$request.arches.is_empty() {
            $query.push(" OR arch IN (");
            let mut arches = $query.separated(", ");
            for arch in $request.arches {
                arches.push_bind(arch);
            }
            $query.push(")");
        }
        $query.push(")");
    }};
}

/// The build of a claimed job: running from the claim's time.
macro_rules! start_build_sql {
    ($job_id:expr, $started_at:expr) => {
        concat!(
            "UPDATE builds SET status = 'running', started_at = ",
            $started_at,
            " WHERE job_id = ",
            $job_id,
            " AND status = 'queued'"
        )
    };
}

/// The job queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Queue {
    store: Store,
    options: QueueOptions,
    /// Bumped when this process asks a running job to stop, so workers in the process look at once
    /// instead of at their next heartbeat.
    cancel_requests: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Queue {
    pub fn new(store: Store, options: QueueOptions) -> Self {
        let cancel_requests = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
        Queue { store, options, cancel_requests }
    }

    /// Changes when this process asked a running job to stop ([`Queue::request_cancel`]).
    pub fn cancel_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cancel_requests.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// Enqueues a job (see [`Dedup`]) and wakes waiting workers when it is new.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
        let store = &self.store;
        let now = store.now();
        let (job_id, outcome) = dispatch!(store, write, |pool, dialect| {
            async {
                let mut transaction = pool.begin_with(dialect.begin()).await?;
                let enqueued = enqueue_job!(&mut transaction, dialect, job, now)?;
                transaction.commit().await?;
                Ok::<_, sqlx::Error>(enqueued)
            }
            .await
        })
        .map_err(|source| store.failed(format!("enqueueing a {} job", job.kind), source))?;
        if outcome == EnqueueOutcome::Created {
            store.wake().bump();
        }
        Ok(Enqueued { job_id, outcome })
    }

    /// Claims the queued job the worker should run next (highest priority, then oldest) whose time has
    /// come, or `None`. The job becomes `running` with a new lease; its build, if any, `running` too: in
    /// the same statement on PostgreSQL (one round trip, see `with_build!`), in the same transaction on
    /// SQLite.
    pub async fn claim(&self, request: ClaimRequest<'_>) -> Result<Option<ClaimedJob>, StoreError> {
        if request.kinds.is_empty() {
            return Ok(None);
        }
        let store = &self.store;
        let token =
            random::lease_token().map_err(|source| StoreError::Random { what: "a lease token", source })?;
        let now = store.now();
        let lease_expires = now + millis(self.options.lease_duration);
        let job = dispatch!(store, write, |pool, dialect| {
            async {
                let postgres = dialect == crate::store::Dialect::Postgres;
                let mut query = sqlx::QueryBuilder::new(if postgres { with_build!(@prefix) } else { "" });
                query.push("UPDATE jobs SET state = 'running', lease_token = ").push_bind(&token);
                query.push(", lease_owner = ").push_bind(request.worker_id);
                query.push(", lease_expires = ").push_bind(lease_expires);
                query.push(", started_at = ").push_bind(now);
                query.push(", attempts = attempts + 1, phase = NULL WHERE id = (SELECT id FROM jobs WHERE ");
                query.push("state = 'queued' AND run_after <= ").push_bind(now);
                push_claimable!(query, request);
                query.push(" ORDER BY priority DESC, id LIMIT 1");
                if postgres {
                    query.push(" FOR UPDATE SKIP LOCKED");
                }
                query.push(concat!(") AND state = 'queued' RETURNING ", job_columns!()));
                if postgres {
                    query.push(with_build!(
                        @suffix
                        start_build_sql!(with_build!(@job_id), "(SELECT started_at FROM job)"),
                        job_columns!()
                    ));
                    return query.build_query_as::<Job>().fetch_optional(pool).await;
                }
                let mut transaction = pool.begin_with(dialect.begin()).await?;
                let job = query.build_query_as::<Job>().fetch_optional(&mut *transaction).await?;
                if let Some(job) = &job {
                    sqlx::query(start_build_sql!("$1", "$2"))
                        .bind(job.id)
                        .bind(now)
                        .execute(&mut *transaction)
                        .await?;
                }
                transaction.commit().await?;
                Ok::<_, sqlx::Error>(job)
            }
            .await
        })
        .map_err(|source| store.failed(format!("claiming a job for worker {}", request.worker_id), source))?;
        if let Some(job) = &job {
            store.builds_changed();
            tracing::debug!(
                job.id = job.id,
                job.kind = job.kind,
                worker = request.worker_id,
                "claimed a job"
            );
        }
        Ok(job.map(|job| ClaimedJob { lease: Lease { job_id: job.id, token }, job }))
    }

    /// When the next queued job `request` could claim comes due (a retry waiting out its backoff), if
    /// one waits: a worker that found nothing sleeps until then rather than a whole poll interval.
    pub async fn next_due(&self, request: ClaimRequest<'_>) -> Result<Option<i64>, StoreError> {
        if request.kinds.is_empty() {
            return Ok(None);
        }
        let store = &self.store;
        let now = store.now();
        dispatch!(store, read, |pool, dialect| {
            let mut query = sqlx::QueryBuilder::new("SELECT MIN(run_after) FROM jobs WHERE state = 'queued'");
            query.push(" AND run_after > ").push_bind(now);
            push_claimable!(query, request);
            query.build_query_scalar::<Option<i64>>().fetch_one(pool).await
        })
        .map_err(|source| store.failed("looking for jobs waiting out a retry delay", source))
    }

    /// Wakes waiting workers in every process (`NOTIFY arbor_jobs` on PostgreSQL) for jobs queued again
    /// outside an enqueue; called after the change is committed, so woken workers find them.
    pub(crate) async fn wake_workers(&self, what: &str) -> Result<(), StoreError> {
        let store = &self.store;
        if store.is_postgres() {
            dispatch!(store, write, |pool, dialect| {
                sqlx::query("NOTIFY arbor_jobs").execute(pool).await.map(drop)
            })
            .map_err(|source| store.failed(format!("waking workers for {what}"), source))?;
        }
        store.wake().bump();
        Ok(())
    }

    /// A waiter for [`WorkWaiter::wait_for_work`]; each worker loop holds its own.
    pub fn waiter(&self) -> WorkWaiter {
        WorkWaiter::new(self.store.wake().subscribe())
    }
}
