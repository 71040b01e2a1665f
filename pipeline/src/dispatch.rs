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
