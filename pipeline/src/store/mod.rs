//! The state store: one [`Store`] over SQLite or PostgreSQL (sqlx, runtime queries, no `AnyPool`), opened
//! from a database URL and migrated from `migrations/sqlite` or `migrations/postgres`.
//!
//! Each method is written once and expanded per backend ([`dispatch!`](crate::dispatch)); the SQL text is
//! shared, and the PostgreSQL-only parts (`FOR UPDATE SKIP LOCKED`, `LISTEN`/`NOTIFY`, advisory locks)
//! switch on the [`Dialect`]. SQLite runs in WAL mode with one writer connection (so writers never see
//! `SQLITE_BUSY` from each other) and a small pool of readers.

mod builds;
mod cursor;
mod error;
mod image_indexes;
mod jobs;
mod logs;
mod streams;
mod tokens;
mod wake;
mod workers;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::clock::{Clock, SystemClock};
pub use builds::{
    Build, BuildFilter, BuildResult, BuildStatus, BuildSummary, CreatedBuild, Layer, NewBuild, Phase,
};
pub use cursor::{MAXIMUM_PAGE_SIZE, Page};
pub use error::StoreError;
pub use image_indexes::{ImageIndex, NewImageIndex};
pub(crate) use jobs::job_columns;
pub use jobs::{ActiveJobCount, Job, JobState, JobSummary, QueueOverview};
pub use logs::{LogLine, MAXIMUM_LOG_READ, NewLogLine};
/// The database driver's error, the source of [`StoreError::Query`] (to tell an unreachable database from
/// a refused statement without depending on sqlx).
pub use sqlx::Error as SqlxError;
pub use streams::Stream;
pub use tokens::{CreatedToken, LAST_USED_GRANULARITY, NewToken, Scope, Token, token_hash};
pub(crate) use wake::WakeSignal;
pub use workers::{NewWorker, Worker, WorkerKind};

/// How long a SQLite connection waits for another process's lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite reader connections: reads run in parallel in WAL mode; more than the cores buys nothing.
pub const DEFAULT_SQLITE_READERS: u32 = 8;
/// PostgreSQL connections of one process (the wake-up listener holds one more).
pub const DEFAULT_POSTGRES_CONNECTIONS: u32 = 16;
/// How long a request waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Where times come from.
    pub clock: Arc<dyn Clock>,
    /// SQLite reader connections.
    pub sqlite_readers: u32,
    /// PostgreSQL connections.
    pub postgres_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            clock: Arc::new(SystemClock),
            sqlite_readers: DEFAULT_SQLITE_READERS,
            postgres_connections: DEFAULT_POSTGRES_CONNECTIONS,
        }
    }
}

/// The state store; cheap to clone (clones share the pools).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    backend: Backend,
    /// The database for messages: the SQLite path, or PostgreSQL's user, host, port and database (never
    /// the password).
    database: String,
    clock: Arc<dyn Clock>,
    wake: WakeSignal,
    /// Bumped after every committed write to `builds` through this store (see
    /// [`Store::builds_generation`]).
    builds_generation: AtomicU64,
}

/// The database behind a [`Store`].
#[derive(Debug)]
pub(crate) enum Backend {
    Sqlite(SqliteBackend),
    Postgres(Box<PostgresBackend>),
}

#[derive(Debug)]
pub(crate) struct SqliteBackend {
    /// One connection: SQLite has one writer at a time, and queueing here avoids `SQLITE_BUSY`.
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    pub(crate) path: PathBuf,
}

#[derive(Debug)]
pub(crate) struct PostgresBackend {
    pub(crate) pool: PgPool,
    pub(crate) options: PgConnectOptions,
}

/// What [`Store::database_status`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseStatus {
    /// Versions of the migrations this arbor has that the database lacks (`arbor serve` applies them at
    /// start).
    pub pending_migrations: Vec<i64>,
}

/// Which SQL dialect a statement is for, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The statement that starts a writing transaction. SQLite takes the write lock at once, so a
    /// transaction that reads before it writes cannot fail to upgrade when another process writes.
    pub(crate) fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }
}

impl Store {
    /// Opens `sqlite:///absolute/path.db`, `sqlite:relative/path.db` (created if missing) or
    /// `postgres://USER@HOST:PORT/DATABASE`. Run [`migrate`](Self::migrate) before anything else.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let (backend, database) = if url.starts_with("sqlite:") {
            open_sqlite(url, &options).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            open_postgres(url, &options).await?
        } else {
            return Err(StoreError::UnsupportedUrl { url: url.to_string() });
        };
        let wake = match &backend {
            Backend::Sqlite(_) => WakeSignal::in_process(),
            Backend::Postgres(postgres) => WakeSignal::listening(&postgres.pool, &database)
                .await
                .map_err(|source| StoreError::Open { database: database.clone(), source })?,
        };
        let builds_generation = AtomicU64::new(0);
        let inner = StoreInner { backend, database, clock: options.clock, wake, builds_generation };
        Ok(Store { inner: Arc::new(inner) })
    }

    /// Applies the migrations the database lacks; a database that is up to date is left alone.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let error = |source| StoreError::Migrate { database: self.inner.database.clone(), source };
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => SQLITE_MIGRATOR.run(&sqlite.writer).await.map_err(error),
            Backend::Postgres(postgres) => POSTGRES_MIGRATOR.run(&postgres.pool).await.map_err(error),
        }
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => {
                sqlite.reader.close().await;
                sqlite.writer.close().await;
            }
            Backend::Postgres(postgres) => {
                self.inner.wake.stop_listening();
                postgres.pool.close().await
            }
        }
    }

    /// The database, for messages (no password).
    pub fn database(&self) -> &str {
        &self.inner.database
    }

    /// Whether this store is on PostgreSQL (several processes may share it).
    pub fn is_postgres(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres(_))
    }

    /// The SQLite database file, when on SQLite.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => Some(&sqlite.path),
            Backend::Postgres(_) => None,
        }
    }

    /// The current time of the store's clock (milliseconds since the Unix epoch).
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// A counter bumped after every committed write to builds made through this store or a clone of it
    /// (creating, coalescing, claiming, completing, releasing, reaping, cancelling): a cache of build
    /// lists is current while the generation it was filled at is. Writes by other processes (other
    /// `arbor serve` replicas on the same PostgreSQL database) do not bump it.
    pub fn builds_generation(&self) -> u64 {
        self.inner.builds_generation.load(Ordering::Acquire)
    }

    /// Records that builds changed; every method writing to `builds` calls it after committing.
    pub(crate) fn builds_changed(&self) {
        self.inner.builds_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the database answers, and which migrations it lacks (for readiness checks). An error means
    /// the database did not answer.
    pub async fn database_status(&self) -> Result<DatabaseStatus, StoreError> {
        let migrator = match &self.inner.backend {
            Backend::Sqlite(_) => &SQLITE_MIGRATOR,
            Backend::Postgres(_) => &POSTGRES_MIGRATOR,
        };
        dispatch!(self, read, |pool, dialect| sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await)
            .map_err(|source| self.failed("checking that the database answers", source))?;
        // A database never migrated has no migrations table: every migration is pending.
        let applied: Vec<i64> = dispatch!(self, read, |pool, dialect| {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await
        })
        .unwrap_or_default();
        let pending_migrations = migrator
            .iter()
            .filter(|migration| !migration.migration_type.is_down_migration())
            .map(|migration| migration.version)
            .filter(|version| !applied.contains(version))
            .collect();
        Ok(DatabaseStatus { pending_migrations })
    }

    /// Asks the scheduler to fetch the git remote now, wherever it runs: in this process on SQLite, in
    /// whichever replica leads on PostgreSQL (`NOTIFY arbor_fetch`, which this process hears too). If the
    /// notification cannot be sent, this process's scheduler is still asked and the error says why the
    /// others were not (their next poll fetches).
    pub async fn request_fetch(&self) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Sqlite(_) => {
                self.inner.wake.fetch_requests().notify_one();
                Ok(())
            }
            Backend::Postgres(postgres) => {
                let sent = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(wake::FETCH_CHANNEL)
                    .execute(&postgres.pool)
                    .await;
                sent.map(drop).map_err(|source| {
                    self.inner.wake.fetch_requests().notify_one();
                    self.failed("asking the scheduler to fetch the git remote", source)
                })
            }
        }
    }

    /// What the scheduler waits on for [`request_fetch`](Self::request_fetch)es (one permit is kept
    /// while it is busy, so a request during a fetch makes one more).
    pub fn fetch_requests(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(self.inner.wake.fetch_requests())
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(crate) fn wake(&self) -> &WakeSignal {
        &self.inner.wake
    }

    /// The error for a failed statement: what was being done, in which database.
    pub(crate) fn failed(&self, action: impl fmt::Display, source: sqlx::Error) -> StoreError {
        StoreError::Query { action: action.to_string(), database: self.inner.database.clone(), source }
    }

    pub(crate) fn json_error(&self, what: impl fmt::Display, source: serde_json::Error) -> StoreError {
        StoreError::Json { what: what.to_string(), database: self.inner.database.clone(), source }
    }

    pub(crate) fn unknown_value(&self, what: &'static str, value: &str) -> StoreError {
        StoreError::UnknownValue { what, database: self.inner.database.clone(), value: value.to_string() }
    }

    /// `PRAGMA integrity_check` on SQLite (`"ok"` when sound); `None` on PostgreSQL.
    pub async fn sqlite_integrity_check(&self) -> Result<Option<String>, StoreError> {
        let Backend::Sqlite(sqlite) = &self.inner.backend else {
            return Ok(None);
        };
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&sqlite.writer)
            .await
            .map_err(|source| self.failed("checking the integrity of the SQLite database", source))?;
        Ok(Some(rows.join("\n")))
    }
}

async fn open_sqlite(url: &str, options: &StoreOptions) -> Result<(Backend, String), StoreError> {
    let database = url.to_string();
    let error = |source| StoreError::Open { database: database.clone(), source };
    let connect_options = SqliteConnectOptions::from_str(url)
        .map_err(error)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    let path = connect_options.get_filename().to_path_buf();
    let database = format!("sqlite:{}", path.display());
    // A new server's state directory may not exist yet: the file is created, and so is its directory.
    if let Some(directory) = path.parent().filter(|directory| !directory.as_os_str().is_empty()) {
        std::fs::create_dir_all(directory)
            .map_err(|source| StoreError::CreateDirectory { directory: directory.to_path_buf(), source })?;
    }
    let error = |source| StoreError::Open { database: database.clone(), source };
    // The writer connects first: it creates the file and switches it to WAL before any reader opens it.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(connect_options.clone())
        .await
        .map_err(error)?;
    let reader = SqlitePoolOptions::new()
        .max_connections(options.sqlite_readers.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(connect_options.read_only(true));
    Ok((Backend::Sqlite(SqliteBackend { writer, reader, path }), database))
}

async fn open_postgres(url: &str, options: &StoreOptions) -> Result<(Backend, String), StoreError> {
    let error = |source| StoreError::Open { database: redact_postgres_url(url), source };
    let connect_options = PgConnectOptions::from_str(url).map_err(error)?;
    let database = format!(
        "postgres://{}@{}:{}/{}",
        connect_options.get_username(),
        connect_options.get_host(),
        connect_options.get_port(),
        connect_options.get_database().unwrap_or_default()
    );
    let pool = PgPoolOptions::new()
        .max_connections(options.postgres_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(connect_options.clone())
        .await
        .map_err(|source| StoreError::Open { database: database.clone(), source })?;
    Ok((Backend::Postgres(Box::new(PostgresBackend { pool, options: connect_options })), database))
}

/// The URL without its password, for messages about a URL that did not even parse.
fn redact_postgres_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        for (url, shown) in [
            ("postgres://arbor:secret@db:5432/arbor", "postgres://arbor@db:5432/arbor"),
            ("postgres://db/arbor", "postgres://db/arbor"),
            ("postgresql://arbor@db/arbor", "postgresql://arbor@db/arbor"),
        ] {
            assert_eq!(redact_postgres_url(url), shown);
        }
    }
}
