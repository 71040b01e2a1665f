//! What a worker does under its lease: heartbeats, log lines, phases, completion, and handing the job back.
//! Every statement carries `id = $job AND lease_token = $token AND state = 'running' AND lease_expires >=
//! $now`: a worker whose lease expired or passed to another one changes nothing and gets
//! [`StoreError::LeaseLost`].
//!
//! Ending a lease changes the job and its build together: on PostgreSQL in one statement (the build's
//! update in a data-modifying `WITH`, see `with_build!`), so a success or a cancellation is one round
//! trip; on SQLite in one transaction of the writer. A failure or a release depends on the job's row
//! (attempts left, cancellation asked): it reads the row first, and its update is guarded by the
//! `cancel_requested` it read, so a cancellation asked in between is never lost.

use super::{Lease, Queue};
use crate::clock::millis;
use crate::store::{BuildResult, BuildStatus, JobState, NewLogLine, StoreError};

/// Log rows per INSERT statement: 4 parameters each stays far below SQLite's 32,766 and PostgreSQL's
/// 65,535 parameters per statement.
const LOG_ROWS_PER_STATEMENT: usize = 1000;

/// What the job body reports when it ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        result: serde_json::Value,
        /// For a compose job: what its build recorded (`Succeeded` or `Unchanged`).
        build: Option<Box<BuildResult>>,
    },
    Failed {
        /// The whole error chain, one cause per line.
        error: String,
        /// A broken treefile fails at once; a registry 5xx or a network error retries.
        permanent: bool,
    },
    /// The job stopped because cancellation was asked.
    Cancelled,
}

/// Where a completed job ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    Finished(JobState),
    /// A transient failure with attempts left: queued again, to run from `run_after`.
    Retrying {
        run_after: i64,
    },
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// Stop the work (through the blocking door's cancellation) and complete with [`Outcome::Cancelled`].
    pub cancel_requested: bool,
    pub lease_expires: i64,
}

/// The fenced row of a job under a lease: what a failure's or a release's ending depends on.
#[derive(Debug, sqlx::FromRow)]
struct LeasedRow {
    attempts: i64,
    max_attempts: i64,
    cancel_requested: bool,
}

/// The statement that reads the row of a valid lease (no lock: the update that follows is guarded by the
/// `cancel_requested` read, and `attempts` and `max_attempts` do not change while the lease is valid).
const LEASED_ROW_SQL: &str = "SELECT attempts, max_attempts, cancel_requested FROM jobs \
     WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_expires >= $3";

/// The fenced update that ends a lease, returning the job's id when it changed the job. `$10`, when not
/// NULL, is the `cancel_requested` the ending was decided on: asked since, the update changes nothing.
/// The build statements below number their own parameters from `$11` and reuse `$4` (the error) and `$9`
/// (now).
macro_rules! end_job_sql {
    () => {
        "UPDATE jobs SET state = $2, run_after = COALESCE($3, run_after), error = COALESCE($4, error), \
         result = $5, finished_at = $6, lease_token = NULL, lease_owner = NULL, lease_expires = NULL, \
         attempts = attempts - $7 WHERE id = $1 AND lease_token = $8 AND state = 'running' \
         AND lease_expires >= $9 AND cancel_requested = COALESCE($10, cancel_requested) RETURNING id"
    };
}

/// The build of a job handed back: queued again.
macro_rules! requeue_build_sql {
    ($job_id:expr) => {
        concat!("UPDATE builds SET status = 'queued' WHERE job_id = ", $job_id, " AND status = 'running'")
    };
}

/// The build of a job that ended without a build result: `$11` its status, the job's error.
macro_rules! finish_build_sql {
    ($job_id:expr) => {
        concat!(
            "UPDATE builds SET status = $11, error = $4, finished_at = $9 WHERE job_id = ",
            $job_id,
            " AND status IN ('queued', 'running')"
        )
    };
}

/// The build of a compose that succeeded, with its result (`$11` to `$23`).
macro_rules! record_build_sql {
    ($job_id:expr) => {
        concat!(
            "UPDATE builds SET status = $11, previous_build_id = $12, version = $13, inputhash = $14, \
             ostree_commit = $15, image_reference = $16, manifest_digest = $17, packages = $18, \
             package_diff = $19, download_bytes = $20, image_bytes = $21, phases = $22, layers = $23, \
             finished_at = $9 \
             WHERE job_id = ",
            $job_id,
            " AND status IN ('queued', 'running')"
        )
    };
}

/// What a job's end does to the job row and its build.
struct Transition {
    state: JobState,
    run_after: Option<i64>,
    error: Option<String>,
    result: Option<String>,
    build: BuildChange,
}

enum BuildChange {
    /// Back to queued (a retry or a release).
    Requeue,
    Finish(BuildStatus),
    Record(Box<BuildResult>, EncodedBuildResult),
}

/// How a lease ends: known from the outcome alone (one statement), or decided on the fenced row (a read,
/// then the update guarded by what was read).
enum Ending<'a> {
    Fixed(Transition),
    OnRow(Box<Decide<'a>>),
}

/// Decides an ending on the fenced row and the time.
type Decide<'a> = dyn Fn(&LeasedRow, i64) -> Result<Transition, StoreError> + Send + Sync + 'a;

impl Queue {
    /// Extends the lease; returns whether cancellation was asked.
    pub async fn heartbeat(&self, lease: &Lease) -> Result<HeartbeatAnswer, StoreError> {
        let store = self.store();
        let now = store.now();
        let lease_expires = now + millis(self.options.lease_duration);
        let cancel_requested: Option<bool> = dispatch!(store, write, |pool, dialect| {
            sqlx::query_scalar(
                "UPDATE jobs SET lease_expires = $3 WHERE id = $1 AND lease_token = $2 AND state = 'running' \
                 AND lease_expires >= $4 RETURNING cancel_requested",
            )
            .bind(lease.job_id)
            .bind(&lease.token)
            .bind(lease_expires)
            .bind(now)
            .fetch_optional(pool)
            .await
        })
        .map_err(|source| store.failed(format!("extending the lease of job {}", lease.job_id), source))?;
        let cancel_requested = cancel_requested.ok_or(StoreError::LeaseLost { job_id: lease.job_id })?;
        Ok(HeartbeatAnswer { cancel_requested, lease_expires })
    }

    /// Appends lines to the job's log (numbered on from the last line of any attempt); returns the last
    /// line's sequence number.
    pub async fn append_logs(&self, lease: &Lease, lines: &[NewLogLine]) -> Result<i64, StoreError> {
        let store = self.store();
        let now = store.now();
        let count = lines.len() as i64;
        let last = dispatch!(store, write, |pool, dialect| {
            async {
                let mut transaction = pool.begin_with(dialect.begin()).await?;
                let last: Option<i64> = sqlx::query_scalar(
                    "UPDATE jobs SET log_lines = log_lines + $3 WHERE id = $1 AND lease_token = $2 \
                     AND state = 'running' AND lease_expires >= $4 RETURNING log_lines",
                )
                .bind(lease.job_id)
                .bind(&lease.token)
                .bind(count)
                .bind(now)
                .fetch_optional(&mut *transaction)
                .await?;
                let Some(last) = last else {
                    return Ok(None);
                };
                let mut seq = last - count;
                for chunk in lines.chunks(LOG_ROWS_PER_STATEMENT) {
                    let mut query =
                        sqlx::QueryBuilder::new("INSERT INTO job_logs (job_id, seq, time, line) ");
                    query.push_values(chunk, |mut row, line| {
                        seq += 1;
                        row.push_bind(lease.job_id).push_bind(seq).push_bind(line.time).push_bind(&line.line);
                    });
                    query.build().persistent(false).execute(&mut *transaction).await?;
                }
                transaction.commit().await?;
                Ok::<_, sqlx::Error>(Some(last))
            }
            .await
        })
        .map_err(|source| store.failed(format!("appending to the log of job {}", lease.job_id), source))?;
        last.ok_or(StoreError::LeaseLost { job_id: lease.job_id })
    }

    /// Records the phase the job is in, for the dashboard.
    pub async fn set_phase(&self, lease: &Lease, phase: &str) -> Result<(), StoreError> {
        let store = self.store();
        let now = store.now();
        let changed = dispatch!(store, write, |pool, dialect| {
            sqlx::query(
                "UPDATE jobs SET phase = $3 WHERE id = $1 AND lease_token = $2 AND state = 'running' \
                 AND lease_expires >= $4",
            )
            .bind(lease.job_id)
            .bind(&lease.token)
            .bind(phase)
            .bind(now)
            .execute(pool)
            .await
            .map(|result| result.rows_affected())
        })
        .map_err(|source| store.failed(format!("recording the phase of job {}", lease.job_id), source))?;
        if changed == 0 {
            return Err(StoreError::LeaseLost { job_id: lease.job_id });
        }
        Ok(())
    }

    /// Ends the attempt. A transient failure with attempts left queues the job again after a backoff; a
    /// job asked to cancel that fails transiently is cancelled instead. The build follows, and a
    /// succeeding compose records its [`BuildResult`] with the job's completion (one statement on
    /// PostgreSQL, one transaction on SQLite).
    pub async fn complete(&self, lease: &Lease, outcome: Outcome) -> Result<Completed, StoreError> {
        let backoff = self.options.backoff;
        let ending = match &outcome {
            Outcome::Succeeded { result, build } => Ending::Fixed(Transition {
                state: JobState::Succeeded,
                run_after: None,
                error: None,
                result: Some(result.to_string()),
                build: match build {
                    Some(build) => {
                        let encoded = EncodedBuildResult::new(build).map_err(|source| {
                            let what = format!("the build result of job {}", lease.job_id);
                            self.store().json_error(what, source)
                        })?;
                        BuildChange::Record(build.clone(), encoded)
                    }
                    None => BuildChange::Finish(BuildStatus::Succeeded),
                },
            }),
            Outcome::Cancelled => Ending::Fixed(cancelled(None)),
            Outcome::Failed { error, permanent } => Ending::OnRow(Box::new(move |row, now| {
                Ok(if row.cancel_requested {
                    cancelled(Some(error.clone()))
                } else if *permanent || row.attempts >= row.max_attempts {
                    failed(error.clone())
                } else {
                    Transition {
                        state: JobState::Queued,
                        run_after: Some(now + backoff.delay(row.attempts)?),
                        error: Some(error.clone()),
                        result: None,
                        build: BuildChange::Requeue,
                    }
                })
            })),
        };
        let transition = self.end_lease(lease, "completing", ending).await?;
        Ok(match transition {
            (JobState::Queued, Some(run_after)) => Completed::Retrying { run_after },
            (state, _) => Completed::Finished(state),
        })
    }

    /// Hands a running job back at shutdown: queued again at once, the attempt not counted (a job asked
    /// to cancel is cancelled instead).
    pub async fn release(&self, lease: &Lease) -> Result<JobState, StoreError> {
        let decide = |row: &LeasedRow, now: i64| -> Result<Transition, StoreError> {
            if row.cancel_requested {
                return Ok(cancelled(None));
            }
            Ok(Transition {
                state: JobState::Queued,
                run_after: Some(now),
                error: None,
                result: None,
                build: BuildChange::Requeue,
            })
        };
        let (state, _) = self.end_lease(lease, "releasing", Ending::OnRow(Box::new(decide))).await?;
        if state == JobState::Queued {
            self.wake_workers(&format!("released job {}", lease.job_id)).await?;
        }
        Ok(state)
    }

    /// Ends a lease: the job's fenced update and its build's together. An ending decided on the row reads
    /// it first and guards the update with what it read; when cancellation was asked in between, the
    /// update changes nothing and the ending is decided again.
    async fn end_lease(
        &self,
        lease: &Lease,
        action: &str,
        ending: Ending<'_>,
    ) -> Result<(JobState, Option<i64>), StoreError> {
        let store = self.store();
        let now = store.now();
        let query_failed = |source| store.failed(format!("{action} job {}", lease.job_id), source);
        // This loop ends: `cancel_requested` only ever turns true, so a second guarded update misses only
        // when the lease is lost, and the read after that finds no row.
        loop {
            let decided;
            let (transition, seen_cancel_requested) = match &ending {
                Ending::Fixed(transition) => (transition, None),
                Ending::OnRow(decide) => {
                    let row: Option<LeasedRow> = dispatch!(store, read, |pool, dialect| {
                        sqlx::query_as(LEASED_ROW_SQL)
                            .bind(lease.job_id)
                            .bind(&lease.token)
                            .bind(now)
                            .fetch_optional(pool)
                            .await
                    })
                    .map_err(query_failed)?;
                    let Some(row) = row else {
                        return Err(StoreError::LeaseLost { job_id: lease.job_id });
                    };
                    decided = decide(&row, now)?;
                    (&decided, Some(row.cancel_requested))
                }
            };
            let refund = action == "releasing" && transition.state == JobState::Queued;
            let changed = self.apply_ending(lease, transition, seen_cancel_requested, refund, now).await;
            if changed.map_err(query_failed)? {
                store.builds_changed();
                return Ok((transition.state, transition.run_after));
            }
            if seen_cancel_requested.is_none() {
                return Err(StoreError::LeaseLost { job_id: lease.job_id });
            }
        }
    }

    /// The fenced update of the job and its build's (one statement on PostgreSQL, one transaction on
    /// SQLite); whether the job changed. `refund`: the attempt is not counted.
    async fn apply_ending(
        &self,
        lease: &Lease,
        transition: &Transition,
        seen_cancel_requested: Option<bool>,
        refund: bool,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let finished_at = transition.state.is_final().then_some(now);
        // The parameters of `end_job_sql!` and of the build statement, in their numbering.
        macro_rules! bound {
            ($query:expr) => {{
                let query = $query
                    .bind(lease.job_id)
                    .bind(transition.state.as_str())
                    .bind(transition.run_after)
                    .bind(transition.error.as_deref())
                    .bind(transition.result.as_deref())
                    .bind(finished_at)
                    .bind(i64::from(refund))
                    .bind(&lease.token)
                    .bind(now)
                    .bind(seen_cancel_requested);
                match &transition.build {
                    BuildChange::Requeue => query,
                    BuildChange::Finish(status) => query.bind(status.as_str()),
                    BuildChange::Record(build, encoded) => query
                        .bind(build.status.as_str())
                        .bind(build.previous_build_id)
                        .bind(build.version.as_deref())
                        .bind(build.inputhash.as_deref())
                        .bind(build.ostree_commit.as_deref())
                        .bind(build.image_reference.as_deref())
                        .bind(build.manifest_digest.as_deref())
                        .bind(encoded.packages.as_deref())
                        .bind(encoded.package_diff.as_deref())
                        .bind(build.download_bytes)
                        .bind(build.image_bytes)
                        .bind(encoded.phases.as_deref())
                        .bind(encoded.layers.as_deref()),
                }
            }};
        }
        let changed: Option<i64> = dispatch!(self.store(), write, |pool, dialect| {
            let (job_sql, build_sql) = match &transition.build {
                BuildChange::Requeue => with_build!(dialect, end_job_sql!(), requeue_build_sql, "id"),
                BuildChange::Finish(_) => with_build!(dialect, end_job_sql!(), finish_build_sql, "id"),
                BuildChange::Record(..) => with_build!(dialect, end_job_sql!(), record_build_sql, "id"),
            };
            match build_sql {
                None => bound!(sqlx::query_scalar(job_sql)).fetch_optional(pool).await,
                Some(build_sql) => {
                    async {
                        let mut transaction = pool.begin_with(dialect.begin()).await?;
                        let changed =
                            bound!(sqlx::query_scalar(job_sql)).fetch_optional(&mut *transaction).await?;
                        if changed.is_some() {
                            bound!(sqlx::query(build_sql)).execute(&mut *transaction).await?;
                        }
                        transaction.commit().await?;
                        Ok(changed)
                    }
                    .await
                }
            }
        })?;
        Ok(changed.is_some())
    }
}

fn cancelled(error: Option<String>) -> Transition {
    Transition {
        state: JobState::Cancelled,
        run_after: None,
        error,
        result: None,
        build: BuildChange::Finish(BuildStatus::Cancelled),
    }
}

fn failed(error: String) -> Transition {
    Transition {
        state: JobState::Failed,
        run_after: None,
        error: Some(error),
        result: None,
        build: BuildChange::Finish(BuildStatus::Failed),
    }
}

/// The JSON columns of a build result.
struct EncodedBuildResult {
    packages: Option<String>,
    package_diff: Option<String>,
    phases: Option<String>,
    layers: Option<String>,
}

impl EncodedBuildResult {
    fn new(build: &BuildResult) -> Result<Self, serde_json::Error> {
        Ok(EncodedBuildResult {
            packages: build.packages.as_ref().map(serde_json::to_string).transpose()?,
            package_diff: build.package_diff.as_ref().map(|diff| diff.to_string()),
            phases: if build.phases.is_empty() { None } else { Some(serde_json::to_string(&build.phases)?) },
            layers: build.layers.as_ref().map(serde_json::to_string).transpose()?,
        })
    }
}
