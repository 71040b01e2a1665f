//! Reading jobs: one job, jobs by state (newest first, paginated), and the queue as the dashboard shows it
//! (what runs, what waits and for how long). Changing jobs is the queue's ([`crate::queue`]).

use std::fmt;

use super::cursor::{self, Page};
use super::{Store, StoreError};

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] =
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Whether the job is over (it never changes again).
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl TryFrom<String> for JobState {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        JobState::parse(&text).ok_or_else(|| format!("unknown job state {text:?}"))
    }
}

/// A job's row. The lease token is left out: it is the running worker's secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    /// JSON text; the job body parses it into its own payload type.
    pub payload: String,
    pub stream: Option<String>,
    pub arch: Option<String>,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_expires: Option<i64>,
    pub cancel_requested: bool,
    pub dedup_key: Option<String>,
    pub phase: Option<String>,
    pub log_lines: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The whole error chain of the last failure, one cause per line.
    pub error: Option<String>,
    /// JSON text of the job body's result.
    pub result: Option<String>,
}

/// The columns of [`Job`], as a literal for `concat!`.
macro_rules! job_columns {
    () => {
        "id, kind, payload, stream, arch, state, priority, attempts, max_attempts, run_after, lease_owner, \
         lease_expires, cancel_requested, dedup_key, phase, log_lines, created_at, started_at, finished_at, \
         error, result"
    };
}
pub(crate) use job_columns;

/// A running or queued job as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobSummary {
    pub job: Job,
    /// Queued: how long since it could run (`now - max(created_at, run_after)`, 0 while in backoff).
    /// Running: how long since it started.
    pub waiting_ms: i64,
}

/// What runs and what waits, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueOverview {
    pub running: Vec<JobSummary>,
    pub queued: Vec<JobSummary>,
}

/// How many jobs of a kind are in a state, for the queue depth metrics.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActiveJobCount {
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub kind: String,
    pub count: i64,
}

/// The letter of job cursors.
const CURSOR_KIND: char = 'j';
/// The most queued and running jobs the overview lists.
const OVERVIEW_LIMIT: i64 = 1000;

impl Store {
    /// One job.
    pub async fn get_job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        const SQL: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, Job>(SQL).bind(id).fetch_optional(pool).await
        })
        .map_err(|source| self.failed(format!("reading job {id}"), source))
    }

    /// Jobs in `state` (all states when `None`), newest first.
    pub async fn list_jobs(
        &self,
        state: Option<JobState>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Job>, StoreError> {
        const ALL: &str =
            concat!("SELECT ", job_columns!(), " FROM jobs WHERE id < $1 ORDER BY id DESC LIMIT $2");
        const IN_STATE: &str = concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id < $1 AND state = $3 ORDER BY id DESC LIMIT $2"
        );
        let before = cursor::decode(CURSOR_KIND, cursor)?;
        let fetch = cursor::fetch_limit(limit);
        let rows = dispatch!(self, read, |pool, dialect| {
            match state {
                None => sqlx::query_as::<_, Job>(ALL).bind(before).bind(fetch).fetch_all(pool).await,
                Some(state) => {
                    sqlx::query_as::<_, Job>(IN_STATE)
                        .bind(before)
                        .bind(fetch)
                        .bind(state.as_str())
                        .fetch_all(pool)
                        .await
                }
            }
        })
        .map_err(|source| {
            let state = state.map_or("all", JobState::as_str);
            self.failed(format!("listing jobs ({state})"), source)
        })?;
        Ok(cursor::page(rows, limit, CURSOR_KIND, |job| job.id))
    }

    /// Queued and running jobs counted by state and kind (kinds without such jobs are absent).
    pub async fn count_active_jobs(&self) -> Result<Vec<ActiveJobCount>, StoreError> {
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, ActiveJobCount>(
                "SELECT state, kind, COUNT(*) AS count FROM jobs WHERE state IN ('queued', 'running') \
                 GROUP BY state, kind ORDER BY state, kind",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(|source| self.failed("counting queued and running jobs", source))
    }

    /// Running jobs (longest running first) and queued ones (in claim order), with how long each waits.
    pub async fn queue_overview(&self) -> Result<QueueOverview, StoreError> {
        const RUNNING: &str = concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE state = 'running' ORDER BY started_at, id LIMIT $1"
        );
        const QUEUED: &str = concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id LIMIT $1"
        );
        let now = self.now();
        let (running, queued) = dispatch!(self, read, |pool, dialect| {
            async {
                let running = sqlx::query_as::<_, Job>(RUNNING).bind(OVERVIEW_LIMIT).fetch_all(pool).await?;
                let queued = sqlx::query_as::<_, Job>(QUEUED).bind(OVERVIEW_LIMIT).fetch_all(pool).await?;
                Ok::<_, sqlx::Error>((running, queued))
            }
            .await
        })
        .map_err(|source| self.failed("reading the running and queued jobs", source))?;
        let running = running
            .into_iter()
            .map(|job| JobSummary { waiting_ms: now - job.started_at.unwrap_or(now), job })
            .collect();
        let queued = queued
            .into_iter()
            .map(|job| JobSummary { waiting_ms: (now - job.created_at.max(job.run_after)).max(0), job })
            .collect();
        Ok(QueueOverview { running, queued })
    }
}
