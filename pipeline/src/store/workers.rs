//! Workers: embedded ones (in `arbor serve`) and remote ones (`arbor worker`), with the arches they build,
//! when they were last seen and the job they run.

use super::{Store, StoreError};
use crate::random;

/// Where a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerKind {
    /// A task inside `arbor serve`.
    Embedded,
    /// `arbor worker` on a build host, over the worker API.
    Remote,
}

impl WorkerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerKind::Embedded => "embedded",
            WorkerKind::Remote => "remote",
        }
    }
}

impl TryFrom<String> for WorkerKind {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "embedded" => Ok(WorkerKind::Embedded),
            "remote" => Ok(WorkerKind::Remote),
            _ => Err(format!("unknown worker kind {text:?}")),
        }
    }
}

/// A worker to register.
#[derive(Debug, Clone)]
pub struct NewWorker {
    pub name: String,
    pub arches: Vec<String>,
    pub kind: WorkerKind,
    /// The arbor version it runs.
    pub version: String,
    /// The worker token it authenticated with (remote workers).
    pub token_id: Option<i64>,
}

/// A worker's row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Worker {
    pub id: String,
    pub name: String,
    pub arches: Vec<String>,
    pub kind: WorkerKind,
    pub version: String,
    pub registered_at: i64,
    pub last_seen: i64,
    pub current_job_id: Option<i64>,
    pub token_id: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct WorkerRow {
    id: String,
    name: String,
    arches: String,
    #[sqlx(try_from = "String")]
    kind: WorkerKind,
    version: String,
    registered_at: i64,
    last_seen: i64,
    current_job_id: Option<i64>,
    token_id: Option<i64>,
}

impl Store {
    /// Registers a worker under a new random id (`w_` + 16 base32 characters) and returns it.
    pub async fn register_worker(&self, worker: &NewWorker) -> Result<Worker, StoreError> {
        let id = random::worker_id().map_err(|source| StoreError::Random { what: "a worker id", source })?;
        let arches = serde_json::to_string(&worker.arches)
            .map_err(|source| self.json_error("worker arches", source))?;
        let now = self.now();
        dispatch!(self, write, |pool, dialect| {
            sqlx::query(
                "INSERT INTO workers (id, name, arches, kind, version, registered_at, last_seen, token_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
            )
            .bind(&id)
            .bind(&worker.name)
            .bind(&arches)
            .bind(worker.kind.as_str())
            .bind(&worker.version)
            .bind(now)
            .bind(worker.token_id)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|source| self.failed(format!("registering worker {}", worker.name), source))?;
        Ok(Worker {
            id,
            name: worker.name.clone(),
            arches: worker.arches.clone(),
            kind: worker.kind,
            version: worker.version.clone(),
            registered_at: now,
            last_seen: now,
            current_job_id: None,
            token_id: worker.token_id,
        })
    }

    /// Records that the worker is alive; `false` when no such worker is registered.
    pub async fn touch_worker(&self, id: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let result = dispatch!(self, write, |pool, dialect| {
            sqlx::query("UPDATE workers SET last_seen = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map(|result| result.rows_affected())
        })
        .map_err(|source| self.failed(format!("recording a heartbeat of worker {id}"), source))?;
        Ok(result > 0)
    }

    /// Records the job the worker runs now (`None` when idle); also counts as seeing it.
    pub async fn set_worker_job(&self, id: &str, job_id: Option<i64>) -> Result<bool, StoreError> {
        let now = self.now();
        let result = dispatch!(self, write, |pool, dialect| {
            sqlx::query("UPDATE workers SET current_job_id = $2, last_seen = $3 WHERE id = $1")
                .bind(id)
                .bind(job_id)
                .bind(now)
                .execute(pool)
                .await
                .map(|result| result.rows_affected())
        })
        .map_err(|source| self.failed(format!("recording the job of worker {id}"), source))?;
        Ok(result > 0)
    }

    /// The name of worker `id`, if it registered.
    pub async fn worker_name(&self, id: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, read, |pool, dialect| {
            sqlx::query_scalar("SELECT name FROM workers WHERE id = $1").bind(id).fetch_optional(pool).await
        })
        .map_err(|source| self.failed(format!("reading the name of worker {id}"), source))
    }

    /// Every worker, most recently seen first.
    pub async fn list_workers(&self) -> Result<Vec<Worker>, StoreError> {
        let rows = dispatch!(self, read, |pool, dialect| {
            sqlx::query_as::<_, WorkerRow>(
                // The job recorded at the claim counts only while the worker still holds it: it ended,
                // or went back to the queue, or to another worker, without the worker saying so.
                "SELECT id, name, arches, kind, version, registered_at, last_seen, \
                 (SELECT jobs.id FROM jobs WHERE jobs.id = workers.current_job_id \
                  AND jobs.state = 'running' AND jobs.lease_owner = workers.id) AS current_job_id, token_id \
                 FROM workers ORDER BY last_seen DESC, id",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(|source| self.failed("listing workers", source))?;
        rows.into_iter()
            .map(|row| {
                let arches = serde_json::from_str(&row.arches)
                    .map_err(|source| self.json_error(format!("the arches of worker {}", row.id), source))?;
                Ok(Worker {
                    id: row.id,
                    name: row.name,
                    arches,
                    kind: row.kind,
                    version: row.version,
                    registered_at: row.registered_at,
                    last_seen: row.last_seen,
                    current_job_id: row.current_job_id,
                    token_id: row.token_id,
                })
            })
            .collect()
    }
}
