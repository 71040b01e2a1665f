//! Inserting a job inside a caller's transaction, with deduplication or coalescing on its key; shared by
//! [`Queue::enqueue`](crate::queue::Queue::enqueue) and [`Store::create_build`](crate::Store::create_build),
//! which inserts the build row in the same transaction.

/// `enqueue_job!(transaction, dialect, &NewJob, now)` → `Result<(job id, EnqueueOutcome), sqlx::Error>`.
///
/// With a dedup key, a queued job with the same key is looked up (and locked on PostgreSQL): `Skip`
/// returns it unchanged, `Coalesce` gives it the new payload (and the higher priority). Otherwise the job
/// is inserted with `ON CONFLICT (dedup_key) WHERE state = 'queued' DO NOTHING`; when a concurrent
/// enqueue inserted the same key in between, nothing is inserted and the look-up runs again. A created job
/// sends `NOTIFY arbor_jobs` on PostgreSQL (delivered at commit); the caller wakes this process's waiters
/// after committing.
macro_rules! enqueue_job {
    ($transaction:expr, $dialect:expr, $job:expr, $now:expr) => {{
        let enqueued: Result<(i64, $crate::queue::EnqueueOutcome), sqlx::Error> = async {
            use $crate::queue::{EnqueueOutcome, OnDuplicate};
            let transaction = $transaction;
            let job: &$crate::queue::NewJob = $job;
            let now: i64 = $now;
            let payload = job.payload.to_string();
            loop {
                if let Some(dedup) = &job.dedup {
                    let existing: Option<i64> = sqlx::query_scalar(for_update!(
                        $dialect,
                        "SELECT id FROM jobs WHERE dedup_key = $1 AND state = 'queued'"
                    ))
                    .bind(&dedup.key)
                    .fetch_optional(&mut **transaction)
                    .await?;
                    if let Some(id) = existing {
                        if dedup.on_duplicate == OnDuplicate::Skip {
                            return Ok((id, EnqueueOutcome::Deduplicated));
                        }
                        sqlx::query(
                            "UPDATE jobs SET payload = $2, \
                             priority = CASE WHEN $3 > priority THEN $3 ELSE priority END WHERE id = $1",
                        )
                        .bind(id)
                        .bind(&payload)
                        .bind(job.priority)
                        .execute(&mut **transaction)
                        .await?;
                        return Ok((id, EnqueueOutcome::Coalesced));
                    }
                }
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO jobs (kind, payload, stream, arch, state, priority, max_attempts, run_after, \
                     dedup_key, created_at) VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $7) \
                     ON CONFLICT (dedup_key) WHERE state = 'queued' DO NOTHING RETURNING id",
                )
                .bind(&job.kind)
                .bind(&payload)
                .bind(job.stream.as_deref())
                .bind(job.arch.as_deref())
                .bind(job.priority)
                .bind(i64::from(job.max_attempts.max(1)))
                .bind(now)
                .bind(job.dedup.as_ref().map(|dedup| dedup.key.as_str()))
                .fetch_optional(&mut **transaction)
                .await?;
                if let Some(id) = inserted {
                    if $dialect == $crate::store::Dialect::Postgres {
                        sqlx::query("NOTIFY arbor_jobs").execute(&mut **transaction).await?;
                    }
                    return Ok((id, EnqueueOutcome::Created));
                }
            }
        }
        .await;
        enqueued
    }};
}
