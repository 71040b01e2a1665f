//! Scheduler leadership: one leader per database; when its connection dies, another process takes over.

use std::time::Duration;

use pipeline::Leadership;
use sqlx::Connection;

use crate::harness::{Backend, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_one_leader_and_another_takes_over_when_its_connection_dies() {
    let harness = Harness::new(Backend::Postgres).await;
    let lock_file = harness.directory.path().join("unused.lock");
    let first = Leadership::new(&harness.store, &lock_file);
    let second = Leadership::new(&harness.another_store().await, &lock_file);
    let mut leader = first.try_acquire().await.unwrap().expect("the first process leads");
    assert!(second.try_acquire().await.unwrap().is_none(), "only one leader");
    leader.check().await.unwrap();
    // The leader's connection dies (as when its process is killed or its network fails).
    let mut admin = sqlx::PgConnection::connect(&harness.url).await.unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(pipeline::leadership::SCHEDULER_LOCK_KEY)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated, [true]);
    assert!(leader.check().await.is_err(), "the old leader notices");
    let taken = tokio::time::timeout(Duration::from_secs(30), second.acquire(Duration::from_millis(50)))
        .await
        .expect("the second process takes over")
        .unwrap();
    assert!(first.try_acquire().await.unwrap().is_none());
    taken.release().await;
    let again = first.try_acquire().await.unwrap().expect("released leadership is free again");
    drop(again);
}

#[tokio::test]
async fn on_sqlite_a_lock_file_keeps_a_second_process_from_scheduling() {
    let harness = Harness::new(Backend::Sqlite).await;
    let lock_file = harness.directory.path().join("scheduler.lock");
    let first = Leadership::new(&harness.store, &lock_file);
    let second = Leadership::new(&harness.another_store().await, &lock_file);
    let mut leader = first.try_acquire().await.unwrap().expect("the first process leads");
    leader.check().await.unwrap();
    assert!(second.try_acquire().await.unwrap().is_none(), "only one leader");
    drop(leader);
    assert!(second.try_acquire().await.unwrap().is_some(), "the lock goes with the lease");
}

/// A webhook may reach any replica; the scheduler runs in one. A fetch request made through one store
/// is heard by every store on the database (the leader's included), and on SQLite by the process's own.
#[tokio::test]
async fn on_postgres_a_fetch_request_reaches_every_replica() {
    let harness = Harness::new(Backend::Postgres).await;
    let other_replica = harness.another_store().await;
    let heard_there = other_replica.fetch_requests();
    let heard_here = harness.store.fetch_requests();
    harness.store.request_fetch().await.unwrap();
    let wait = Duration::from_secs(10);
    tokio::time::timeout(wait, heard_there.notified()).await.expect("the other replica hears the request");
    tokio::time::timeout(wait, heard_here.notified()).await.expect("the asking replica hears it too");
}

#[tokio::test]
async fn on_sqlite_a_fetch_request_wakes_the_process_scheduler() {
    let harness = Harness::new(Backend::Sqlite).await;
    let requests = harness.store.fetch_requests();
    harness.store.request_fetch().await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), requests.notified()).await.expect("the request is kept");
}
