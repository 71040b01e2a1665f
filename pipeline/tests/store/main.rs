//! Tests of the store, the queue and leadership against real databases: a SQLite file in a temporary
//! directory and a throwaway PostgreSQL server (testsupport), each case on both unless it is about one.
// The cases are async fns that the backend macro calls from #[tokio::test]s, which clippy does not see as tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod builds;
mod crash;
mod leadership;
mod queue;
mod races;
mod records;
mod workers;
