//! Reading job logs from a sequence number on, so a live log (SSE) resumes after `Last-Event-ID`.
//! Appending is fenced by the lease and belongs to the queue ([`crate::queue::Queue::append_logs`]).

use super::{Store, StoreError};

/// A line to append to a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogLine {
    pub time: i64,
    pub line: String,
}

/// A line of a job's log; `seq` counts 1, 2, 3... per job, across attempts.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct LogLine {
    pub seq: i64,
    pub time: i64,
    pub line: String,
}

/// The most lines one read returns.
pub const MAXIMUM_LOG_READ: u32 = 10_000;

impl Store {
    /// Lines of job `job_id`'s log after `after_seq` (0 for all), oldest first, at most `limit`.
    pub async fn read_logs(
        &self,
        job_id: i64,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>, StoreError> {
        let limit = i64::from(limit.clamp(1, MAXIMUM_LOG_READ));
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, LogLine>(
                "SELECT seq, time, line FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(job_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(|source| self.failed(format!("reading the log of job {job_id}"), source))
    }
}
