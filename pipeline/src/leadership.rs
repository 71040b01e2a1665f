//! Which `arbor serve` process runs the scheduler (git polling, timers): exactly one at a time per database.
//!
//! On PostgreSQL the leader holds a session-level `pg_try_advisory_lock` on a connection of its own (not
//! from the pool, so it is never handed to a request). When that connection dies — the process was
//! killed, or the network failed — PostgreSQL releases the lock and another process's [`Leadership::acquire`]
//! takes it. On SQLite there is one process per database file; a lock file held with `flock` keeps a second
//! process on the same file from scheduling too.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::store::{Backend, Store};

/// The advisory lock key of the scheduler: "arbor" and "sc" in ASCII, so it is recognizable in `pg_locks`.
pub const SCHEDULER_LOCK_KEY: i64 = 0x0061_7262_6f72_7363;
/// How often a process that is not the leader tries to become it.
pub const ACQUIRE_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// How long a leadership check may take before the connection counts as dead.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LeadershipError {
    #[error("connecting to {database} for the scheduler lock")]
    Connect {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("taking the scheduler lock in {database}")]
    Lock {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the connection holding the scheduler lock in {database} failed: stop scheduling")]
    Lost {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the connection holding the scheduler lock in {database} did not answer within {CHECK_TIMEOUT:?}"
    )]
    Unresponsive { database: String },
    #[error("opening the scheduler lock file {path}")]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Becoming the scheduler's process.
#[derive(Debug, Clone)]
pub struct Leadership {
    store: Store,
    lock_file: PathBuf,
}

/// Held while this process is the leader; dropping it gives leadership up.
#[derive(Debug)]
pub struct SchedulerLease {
    holder: Holder,
    database: String,
}

#[derive(Debug)]
enum Holder {
    /// The connection whose session holds the advisory lock.
    Postgres(PgConnection),
    /// The locked file (the lock goes with the open file).
    LockFile { _file: File },
}

impl Leadership {
    /// `lock_file` (e.g. `STATE_DIR/scheduler.lock`) is used on SQLite only.
    pub fn new(store: &Store, lock_file: impl Into<PathBuf>) -> Self {
        Leadership { store: store.clone(), lock_file: lock_file.into() }
    }

    /// Becomes the leader if no other process is.
    pub async fn try_acquire(&self) -> Result<Option<SchedulerLease>, LeadershipError> {
        let database = self.store.database().to_string();
        match self.store.backend() {
            Backend::Postgres(postgres) => {
                let mut connection = PgConnection::connect_with(&postgres.options)
                    .await
                    .map_err(|source| LeadershipError::Connect { database: database.clone(), source })?;
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(SCHEDULER_LOCK_KEY)
                    .fetch_one(&mut connection)
                    .await
                    .map_err(|source| LeadershipError::Lock { database: database.clone(), source })?;
                if !locked {
                    let _ = connection.close().await;
                    return Ok(None);
                }
                tracing::info!(database, "this process runs the scheduler (advisory lock taken)");
                Ok(Some(SchedulerLease { holder: Holder::Postgres(connection), database }))
            }
            Backend::Sqlite(_) => {
                let Some(file) = lock_file(&self.lock_file)? else {
                    return Ok(None);
                };
                tracing::info!(database, lock_file = %self.lock_file.display(), "this process runs the scheduler");
                Ok(Some(SchedulerLease { holder: Holder::LockFile { _file: file }, database }))
            }
        }
    }

    /// Waits until this process is the leader, trying every `retry`.
    pub async fn acquire(&self, retry: Duration) -> Result<SchedulerLease, LeadershipError> {
        loop {
            match self.try_acquire().await {
                Ok(Some(lease)) => return Ok(lease),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "could not try for the scheduler lock; trying again")
                }
            }
            tokio::time::sleep(retry).await;
        }
    }
}

/// Opens and locks the lock file; `None` when another process holds it.
fn lock_file(path: &Path) -> Result<Option<File>, LeadershipError> {
    let error = |source| LeadershipError::LockFile { path: path.to_path_buf(), source };
    let file = File::options().create(true).truncate(false).write(true).open(path).map_err(error)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(source)) => Err(error(source)),
    }
}

impl SchedulerLease {
    /// Checks that leadership is still held: on PostgreSQL, that the locking connection still answers.
    /// An error means the lock may be gone; stop scheduling and [`Leadership::acquire`] again.
    pub async fn check(&mut self) -> Result<(), LeadershipError> {
        let Holder::Postgres(connection) = &mut self.holder else {
            return Ok(());
        };
        let database = &self.database;
        match tokio::time::timeout(CHECK_TIMEOUT, connection.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(LeadershipError::Lost { database: database.clone(), source }),
            Err(_) => Err(LeadershipError::Unresponsive { database: database.clone() }),
        }
    }

    /// Returns when leadership is lost, checking every `interval`.
    pub async fn lost(&mut self, interval: Duration) -> LeadershipError {
        loop {
            tokio::time::sleep(interval).await;
            if let Err(error) = self.check().await {
                tracing::warn!(error = %error, "lost the scheduler lock");
                return error;
            }
        }
    }

    /// Gives leadership up at once (dropping the lease does too, when the connection closes).
    pub async fn release(self) {
        if let Holder::Postgres(mut connection) = self.holder {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SCHEDULER_LOCK_KEY)
                .execute(&mut connection)
                .await;
            let _ = connection.close().await;
        }
    }
}
