//! Streams (one per branch): upserted from the configuration at start, with the head the scheduler last
//! saw, the git error it is backing off from, and the last notable event (e.g. a force-push).

use super::{Store, StoreError};

/// A stream's row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Stream {
    pub name: String,
    pub branch: String,
    pub head_commit: Option<String>,
    pub head_subject: Option<String>,
    pub head_seen_at: Option<i64>,
    /// What failed and what to do, while fetching keeps failing.
    pub git_error: Option<String>,
    pub git_error_since: Option<i64>,
    pub git_failures: i64,
    pub git_next_attempt_at: Option<i64>,
    pub last_event: Option<String>,
    pub last_event_at: Option<i64>,
    pub updated_at: i64,
}

/// The columns of [`Stream`], as a literal for `concat!`.
macro_rules! stream_columns {
    () => {
        "name, branch, head_commit, head_subject, head_seen_at, git_error, git_error_since, git_failures, \
         git_next_attempt_at, last_event, last_event_at, updated_at"
    };
}

impl Store {
    /// Creates the stream or updates its branch (configuration is the source of truth for both).
    pub async fn upsert_stream(&self, name: &str, branch: &str) -> Result<(), StoreError> {
        let now = self.now();
        dispatch!(self, write, |pool, dialect| {
            sqlx::query(
                "INSERT INTO streams (name, branch, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET branch = excluded.branch, updated_at = excluded.updated_at \
                 WHERE streams.branch <> excluded.branch",
            )
            .bind(name)
            .bind(branch)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|source| self.failed(format!("saving stream {name}"), source))?;
        Ok(())
    }

    /// Records the head commit the scheduler saw; a successful fetch also clears the git error.
    pub async fn record_stream_head(
        &self,
        name: &str,
        commit: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        dispatch!(self, write, |pool, dialect| {
            sqlx::query(
                "UPDATE streams SET head_commit = $2, head_subject = $3, head_seen_at = $4, git_error = NULL, \
                 git_error_since = NULL, git_failures = 0, git_next_attempt_at = NULL, updated_at = $4 \
                 WHERE name = $1",
            )
            .bind(name)
            .bind(commit)
            .bind(subject)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|source| self.failed(format!("recording the head of stream {name}"), source))?;
        Ok(())
    }

    /// Records a failed fetch: the message (what failed, what to do), one more failure, and when to try
    /// again. `git_error_since` keeps the time of the first failure in a row.
    pub async fn record_stream_git_error(
        &self,
        name: &str,
        message: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        dispatch!(self, write, |pool, dialect| {
            sqlx::query(
                "UPDATE streams SET git_error = $2, git_error_since = COALESCE(git_error_since, $3), \
                 git_failures = git_failures + 1, git_next_attempt_at = $4, updated_at = $3 WHERE name = $1",
            )
            .bind(name)
            .bind(message)
            .bind(now)
            .bind(next_attempt_at)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|source| self.failed(format!("recording the git error of stream {name}"), source))?;
        Ok(())
    }

    /// Records a notable event of the stream, e.g. "force-pushed from abc to def".
    pub async fn record_stream_event(&self, name: &str, event: &str) -> Result<(), StoreError> {
        let now = self.now();
        dispatch!(self, write, |pool, dialect| {
            sqlx::query(
                "UPDATE streams SET last_event = $2, last_event_at = $3, updated_at = $3 WHERE name = $1",
            )
            .bind(name)
            .bind(event)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|source| self.failed(format!("recording an event of stream {name}"), source))?;
        Ok(())
    }

    /// Every stream, by name.
    pub async fn list_streams(&self) -> Result<Vec<Stream>, StoreError> {
        const SQL: &str = concat!("SELECT ", stream_columns!(), " FROM streams ORDER BY name");
        dispatch!(self, read, |pool, dialect| sqlx::query_as::<_, Stream>(SQL).fetch_all(pool).await)
            .map_err(|source| self.failed("listing streams", source))
    }

    /// One stream, if it exists.
    pub async fn get_stream(&self, name: &str) -> Result<Option<Stream>, StoreError> {
        const SQL: &str = concat!("SELECT ", stream_columns!(), " FROM streams WHERE name = $1");
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, Stream>(SQL).bind(name).fetch_optional(pool).await
        })
        .map_err(|source| self.failed(format!("reading stream {name}"), source))
    }
}
