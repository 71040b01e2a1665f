//! One implementation per backend from one source: [`dispatch!`] expands a body once for SQLite and once for
//! PostgreSQL, with the backend's pool and [`Dialect`](crate::store::Dialect) bound to names, so both run the
//! same SQL text (sqlx's SQLite driver accepts `$1` placeholders) and the PostgreSQL-only clauses switch on
//! the dialect.

/// `dispatch!(store, read|write, |pool, dialect| body)`: runs `body` on the store's backend. SQLite reads go
/// to the reader pool, writes to the single writer connection; PostgreSQL has one pool.
macro_rules! dispatch {
    ($store:expr, $access:ident, |$pool:ident, $dialect:ident| $body:expr) => {
        match $store.backend() {
            $crate::store::Backend::Sqlite(sqlite) => {
                let $pool = dispatch!(@sqlite sqlite, $access);
                #[allow(unused_variables)]
                let $dialect = $crate::store::Dialect::Sqlite;
                $body
            }
            $crate::store::Backend::Postgres(postgres) => {
                let $pool = &postgres.pool;
                #[allow(unused_variables)]
                let $dialect = $crate::store::Dialect::Postgres;
                $body
            }
        }
    };
    (@sqlite $sqlite:ident, read) => {
        &$sqlite.reader
    };
    (@sqlite $sqlite:ident, write) => {
        &$sqlite.writer
    };
}

/// `for_update!(dialect, "SELECT ...")`: the statement as it is on SQLite (whose writing transaction holds
/// the database's write lock) and with `FOR UPDATE` on PostgreSQL (row locks).
macro_rules! for_update {
    ($dialect:expr, $sql:expr) => {
        match $dialect {
            $crate::store::Dialect::Sqlite => $sql,
            $crate::store::Dialect::Postgres => concat!($sql, " FOR UPDATE"),
        }
    };
}

/// A job's fenced change and the change of the build that follows it, as one statement on PostgreSQL:
/// `WITH job AS (JOB), build AS (BUILD) SELECT COLUMNS FROM job`, where BUILD takes the job's id from the
/// rows JOB returned, so it changes nothing when JOB changed nothing and both commit together in one round
/// trip. SQLite has no data-modifying `WITH`: there the caller runs JOB, then BUILD with the job's id as
/// `$1` when JOB returned a row, in one transaction of the writer connection.
///
/// `with_build!(dialect, JOB, BUILD_MACRO, COLUMNS)` → `(statement, Some(build statement))` on SQLite,
/// `(statement, None)` on PostgreSQL; `BUILD_MACRO!(JOB_ID)` writes the build's statement. Statements
/// built piece by piece use `with_build!(@prefix)`, `with_build!(@job_id)` and
/// `with_build!(@suffix BUILD, COLUMNS)`.
macro_rules! with_build {
    ($dialect:expr, $job:expr, $build:ident, $columns:expr) => {
        match $dialect {
            $crate::store::Dialect::Sqlite => ($job, Some($build!("$1"))),
            $crate::store::Dialect::Postgres => (
                concat!(with_build!(@prefix), $job, with_build!(@suffix $build!(with_build!(@job_id)), $columns)),
                None,
            ),
        }
    };
    (@prefix) => {
        "WITH job AS ("
    };
    (@job_id) => {
        "(SELECT id FROM job)"
    };
    (@suffix $build:expr, $columns:expr) => {
        concat!("), build AS (", $build, ") SELECT ", $columns, " FROM job")
    };
}
