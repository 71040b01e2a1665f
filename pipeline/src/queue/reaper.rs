//! Taking jobs back: the reaper requeues (or fails) jobs whose lease expired because their worker died or
//! lost contact, and cancellation ends a queued job at once or asks a running one to stop.

use super::Queue;
use crate::store::{JobState, StoreError};

/// Expired leases handled per statement batch: a reap after an outage handles them in rounds.
const REAP_BATCH: i64 = 500;

/// What one [`Queue::reap`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Queued again, to run at once.
    pub requeued: u64,
    /// Out of attempts.
    pub failed: u64,
    /// Cancellation had been asked.
    pub cancelled: u64,
}

/// What [`Queue::request_cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued and is cancelled now.
    Cancelled,
    /// The job runs; its worker sees the request on its next heartbeat.
    Requested,
    /// The job had ended already.
    AlreadyFinished(JobState),
    NotFound,
}

#[derive(Debug, sqlx::FromRow)]
struct ExpiredLease {
    id: i64,
    attempts: i64,
    max_attempts: i64,
    cancel_requested: bool,
    lease_token: String,
    lease_owner: Option<String>,
}

impl Queue {
    /// Takes back every job whose lease expired: queued again to run at once (its worker died or lost
    /// contact, which is not the job's fault; the attempt still counts, so a job that kills every worker
    /// it runs on fails after its attempts), or `failed` once out of attempts, or `cancelled` when
    /// cancellation was asked. Waiting workers are woken for the requeued jobs. Each change is guarded
    /// by the expired lease's token, so reaping twice, or in several processes at once, changes each job
    /// once.
    pub async fn reap(&self) -> Result<ReapReport, StoreError> {
        let store = self.store();
        let now = store.now();
        let mut report = ReapReport::default();
        loop {
            let expired = dispatch!(store, read, |pool, dialect| {
                sqlx::query_as::<_, ExpiredLease>(
                    "SELECT id, attempts, max_attempts, cancel_requested, lease_token, lease_owner FROM jobs \
                     WHERE state = 'running' AND lease_expires < $1 ORDER BY lease_expires LIMIT $2",
                )
                .bind(now)
                .bind(REAP_BATCH)
                .fetch_all(pool)
                .await
            })
            .map_err(|source| store.failed("looking for expired leases", source))?;
            let batch = expired.len() as i64;
            let mut changed = 0;
            for lease in expired {
                let owner = lease.lease_owner.as_deref().unwrap_or("an unknown worker");
                let note = format!(
                    "the lease of worker {owner} expired (no heartbeat) during attempt {} of {}",
                    lease.attempts, lease.max_attempts
                );
                let (state, run_after, build_status) = if lease.cancel_requested {
                    (JobState::Cancelled, None, "cancelled")
                } else if lease.attempts >= lease.max_attempts {
                    (JobState::Failed, None, "failed")
                } else {
                    (JobState::Queued, Some(now), "queued")
                };
                let finished_at = state.is_final().then_some(now);
                let reaped = dispatch!(store, write, |pool, dialect| {
                    async {
                        let mut transaction = pool.begin_with(dialect.begin()).await?;
                        let changed = sqlx::query(
                            "UPDATE jobs SET state = $3, run_after = COALESCE($4, run_after), error = $5, \
                             finished_at = $6, lease_token = NULL, lease_owner = NULL, lease_expires = NULL \
                             WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_expires < $7",
                        )
                        .bind(lease.id)
                        .bind(&lease.lease_token)
                        .bind(state.as_str())
                        .bind(run_after)
                        .bind(&note)
                        .bind(finished_at)
                        .bind(now)
                        .execute(&mut *transaction)
                        .await?
                        .rows_affected();
                        if changed > 0 {
                            let error = state.is_final().then_some(note.as_str());
                            sqlx::query(
                                "UPDATE builds SET status = $2, error = COALESCE($3, error), finished_at = $4 \
                                 WHERE job_id = $1 AND status = 'running'",
                            )
                            .bind(lease.id)
                            .bind(build_status)
                            .bind(error)
                            .bind(finished_at)
                            .execute(&mut *transaction)
                            .await?;
                        }
                        transaction.commit().await?;
                        Ok::<_, sqlx::Error>(changed > 0)
                    }
                    .await
                })
                .map_err(|source| store.failed(format!("taking back job {} from {owner}", lease.id), source))?;
                if !reaped {
                    continue;
                }
                store.builds_changed();
                changed += 1;
                tracing::warn!(job.id = lease.id, worker = owner, state = %state, "took back a job whose lease expired");
                match state {
                    JobState::Queued => report.requeued += 1,
                    JobState::Failed => report.failed += 1,
                    _ => report.cancelled += 1,
                }
            }
            // A full batch may have more behind it; a batch that changed nothing was taken by another reaper.
            if batch < REAP_BATCH || changed == 0 {
                if report.requeued > 0 {
                    self.wake_workers("requeued jobs of expired leases").await?;
                }
                return Ok(report);
            }
        }
    }

    /// Cancels a queued job at once, or asks a running one to stop: its worker sees it on its next
    /// heartbeat and cancels the compose (workers of this process's queue heartbeat at once).
    pub async fn request_cancel(&self, job_id: i64) -> Result<CancelOutcome, StoreError> {
        let store = self.store();
        let now = store.now();
        dispatch!(store, write, |pool, dialect| {
            async {
                let mut transaction = pool.begin_with(dialect.begin()).await?;
                let state: Option<String> =
                    sqlx::query_scalar(for_update!(dialect, "SELECT state FROM jobs WHERE id = $1"))
                        .bind(job_id)
                        .fetch_optional(&mut *transaction)
                        .await?;
                let outcome = match state.as_deref().and_then(JobState::parse) {
                    None => CancelOutcome::NotFound,
                    Some(JobState::Queued) => {
                        sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = $2 WHERE id = $1")
                            .bind(job_id)
                            .bind(now)
                            .execute(&mut *transaction)
                            .await?;
                        sqlx::query(
                            "UPDATE builds SET status = 'cancelled', finished_at = $2 \
                             WHERE job_id = $1 AND status = 'queued'",
                        )
                        .bind(job_id)
                        .bind(now)
                        .execute(&mut *transaction)
                        .await?;
                        CancelOutcome::Cancelled
                    }
                    Some(JobState::Running) => {
                        sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1")
                            .bind(job_id)
                            .execute(&mut *transaction)
                            .await?;
                        CancelOutcome::Requested
                    }
                    Some(state) => CancelOutcome::AlreadyFinished(state),
                };
                transaction.commit().await?;
                Ok::<_, sqlx::Error>(outcome)
            }
            .await
        })
        .map_err(|source| store.failed(format!("cancelling job {job_id}"), source))
        .inspect(|outcome| match outcome {
            CancelOutcome::Cancelled => store.builds_changed(),
            CancelOutcome::Requested => self.cancel_requests.send_modify(|count| *count += 1),
            _ => {}
        })
    }
}
