//! What a worker does under its lease: heartbeats, log lines, phases, completion, and handing the job back.
//! Every statement carries `id = $job AND lease_token = $token AND state = 'running' AND lease_expires >=
//! $now`: a worker whose lease expired or passed to another one changes nothing and gets
//! [`StoreError::LeaseLost`].

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

/// The fenced row of a job under a lease.
#[derive(Debug, sqlx::FromRow)]
struct LeasedRow {
    attempts: i64,
    max_attempts: i64,
    cancel_requested: bool,
}

/// The statement that reads (and on PostgreSQL locks) the row of a valid lease.
macro_rules! leased_row_sql {
    ($dialect:expr) => {
        for_update!(
            $dialect,
            "SELECT attempts, max_attempts, cancel_requested FROM jobs \
             WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_expires >= $3"
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
    Record(Box<BuildResult>),
}

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
    /// succeeding compose records its [`BuildResult`] in the same transaction.
    pub async fn complete(&self, lease: &Lease, outcome: Outcome) -> Result<Completed, StoreError> {
        let backoff = self.options.backoff;
        let decide = |row: &LeasedRow, now: i64| -> Result<Transition, StoreError> {
            Ok(match &outcome {
                Outcome::Succeeded { result, build } => Transition {
                    state: JobState::Succeeded,
                    run_after: None,
                    error: None,
                    result: Some(result.to_string()),
                    build: match build {
                        Some(build) => BuildChange::Record(build.clone()),
                        None => BuildChange::Finish(BuildStatus::Succeeded),
                    },
                },
                Outcome::Cancelled => cancelled(None),
                Outcome::Failed { error, .. } if row.cancel_requested => cancelled(Some(error.clone())),
                Outcome::Failed { error, permanent } if *permanent || row.attempts >= row.max_attempts => {
                    failed(error.clone())
                }
                Outcome::Failed { error, .. } => Transition {
                    state: JobState::Queued,
                    run_after: Some(now + backoff.delay(row.attempts)?),
                    error: Some(error.clone()),
                    result: None,
                    build: BuildChange::Requeue,
                },
            })
        };
        let transition = self.end_lease(lease, "completing", decide).await?;
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
        let (state, _) = self.end_lease(lease, "releasing", decide).await?;
        if state == JobState::Queued {
            self.store().wake().bump();
        }
        Ok(state)
    }

    /// Ends a lease in one transaction: reads the fenced row, decides, updates the job and its build.
    async fn end_lease(
        &self,
        lease: &Lease,
        action: &str,
        decide: impl Fn(&LeasedRow, i64) -> Result<Transition, StoreError>,
    ) -> Result<(JobState, Option<i64>), StoreError> {
        let store = self.store();
        let now = store.now();
        let releasing = action == "releasing";
        let ended = dispatch!(store, write, |pool, dialect| {
            async {
                let mut transaction = pool.begin_with(dialect.begin()).await.map_err(Ended::Database)?;
                let row: Option<LeasedRow> = sqlx::query_as(leased_row_sql!(dialect))
                    .bind(lease.job_id)
                    .bind(&lease.token)
                    .bind(now)
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(Ended::Database)?;
                let Some(row) = row else {
                    return Err(Ended::LeaseLost);
                };
                let transition = decide(&row, now).map_err(Ended::Store)?;
                let finished_at = transition.state.is_final().then_some(now);
                sqlx::query(
                    "UPDATE jobs SET state = $2, run_after = COALESCE($3, run_after), error = COALESCE($4, error), \
                     result = $5, finished_at = $6, lease_token = NULL, lease_owner = NULL, lease_expires = NULL, \
                     attempts = attempts - $7 WHERE id = $1",
                )
                .bind(lease.job_id)
                .bind(transition.state.as_str())
                .bind(transition.run_after)
                .bind(transition.error.as_deref())
                .bind(transition.result.as_deref())
                .bind(finished_at)
                .bind(i64::from(releasing && transition.state == JobState::Queued))
                .execute(&mut *transaction)
                .await
                .map_err(Ended::Database)?;
                match &transition.build {
                    BuildChange::Requeue => {
                        sqlx::query("UPDATE builds SET status = 'queued' WHERE job_id = $1 AND status = 'running'")
                            .bind(lease.job_id)
                            .execute(&mut *transaction)
                            .await
                            .map_err(Ended::Database)?;
                    }
                    BuildChange::Finish(status) => {
                        sqlx::query(
                            "UPDATE builds SET status = $2, error = $3, finished_at = $4 \
                             WHERE job_id = $1 AND status IN ('queued', 'running')",
                        )
                        .bind(lease.job_id)
                        .bind(status.as_str())
                        .bind(transition.error.as_deref())
                        .bind(now)
                        .execute(&mut *transaction)
                        .await
                        .map_err(Ended::Database)?;
                    }
                    BuildChange::Record(build) => {
                        let encoded = EncodedBuildResult::new(build).map_err(Ended::Json)?;
                        sqlx::query(
                            "UPDATE builds SET status = $2, previous_build_id = $3, version = $4, inputhash = $5, \
                             ostree_commit = $6, image_reference = $7, manifest_digest = $8, packages = $9, \
                             package_diff = $10, download_bytes = $11, image_bytes = $12, phases = $13, \
                             finished_at = $14 WHERE job_id = $1 AND status IN ('queued', 'running')",
                        )
                        .bind(lease.job_id)
                        .bind(build.status.as_str())
                        .bind(build.previous_build_id)
                        .bind(build.version.as_deref())
                        .bind(build.inputhash.as_deref())
                        .bind(build.ostree_commit.as_deref())
                        .bind(build.image_reference.as_deref())
                        .bind(build.manifest_digest.as_deref())
                        .bind(encoded.packages)
                        .bind(encoded.package_diff)
                        .bind(build.download_bytes)
                        .bind(build.image_bytes)
                        .bind(encoded.phases)
                        .bind(now)
                        .execute(&mut *transaction)
                        .await
                        .map_err(Ended::Database)?;
                    }
                }
                if releasing && transition.state == JobState::Queued && dialect == crate::store::Dialect::Postgres {
                    sqlx::query("NOTIFY arbor_jobs").execute(&mut *transaction).await.map_err(Ended::Database)?;
                }
                transaction.commit().await.map_err(Ended::Database)?;
                Ok((transition.state, transition.run_after))
            }
            .await
        });
        if ended.is_ok() {
            store.builds_changed();
        }
        ended.map_err(|ended| match ended {
            Ended::Database(source) => store.failed(format!("{action} job {}", lease.job_id), source),
            Ended::LeaseLost => StoreError::LeaseLost { job_id: lease.job_id },
            Ended::Store(error) => error,
            Ended::Json(source) => {
                store.json_error(format!("the build result of job {}", lease.job_id), source)
            }
        })
    }
}

/// Why ending a lease failed, inside its transaction.
enum Ended {
    Database(sqlx::Error),
    LeaseLost,
    Store(StoreError),
    Json(serde_json::Error),
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
}

impl EncodedBuildResult {
    fn new(build: &BuildResult) -> Result<Self, serde_json::Error> {
        Ok(EncodedBuildResult {
            packages: build.packages.as_ref().map(serde_json::to_string).transpose()?,
            package_diff: build.package_diff.as_ref().map(|diff| diff.to_string()),
            phases: if build.phases.is_empty() { None } else { Some(serde_json::to_string(&build.phases)?) },
        })
    }
}
