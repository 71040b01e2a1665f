//! What can go wrong in the store and the queue, each error saying what was being done and in which
//! database.

/// An error of the store or the queue.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database URL {url:?} is not supported: use sqlite:///PATH, sqlite:RELATIVE-PATH or postgres://..."
    )]
    UnsupportedUrl { url: String },
    #[error("creating the database's directory {directory}")]
    CreateDirectory {
        directory: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the database {database}")]
    Open {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the database {database} (is it from a newer arbor?)")]
    Migrate {
        database: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("{action} in the database {database}")]
    Query {
        action: String,
        database: String,
        #[source]
        source: sqlx::Error,
    },
    /// The worker's lease on the job expired or passed to another worker (its fencing token no longer
    /// matches), or the job ended: nothing was changed, and the worker must stop and discard its work.
    #[error(
        "job {job_id}: the lease is lost (it expired, or the job ended or runs elsewhere); stop and discard"
    )]
    LeaseLost { job_id: i64 },
    #[error("the page cursor {cursor:?} was not issued by this server (start again without a cursor)")]
    InvalidCursor { cursor: String },
    #[error("{what} in the database {database} is not valid JSON")]
    Json {
        what: String,
        database: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} in the database {database}: unknown value {value:?}")]
    UnknownValue { what: &'static str, database: String, value: String },
    #[error("reading random bytes from the operating system for {what}")]
    Random {
        what: &'static str,
        #[source]
        source: getrandom::Error,
    },
}
