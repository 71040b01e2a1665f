//! Streams, tokens, job lists and the queue overview, migrations, and closing the store.

use std::time::Duration;

use pipeline::queue::{NewJob, QueueOptions};
use pipeline::store::{JobState, NewToken, Scope, StoreOptions};
use pipeline::{Store, StoreError};

use crate::harness::{Backend, Harness, START, both_backends};

both_backends!(
    streams_are_upserted_and_record_heads_errors_and_events,
    tokens_store_only_their_hash,
    jobs_list_by_state_and_the_overview_shows_waits,
    migrating_again_changes_nothing,
    closing_a_store_returns,
    closing_the_store_returns,
);

/// A bound for a hang, not a measurement.
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);

async fn streams_are_upserted_and_record_heads_errors_and_events(harness: Harness) {
    let store = &harness.store;
    store.upsert_stream("main", "main").await.unwrap();
    store.upsert_stream("next", "next").await.unwrap();
    store.upsert_stream("main", "rawhide").await.unwrap();
    harness.clock.advance(Duration::from_secs(1));
    store
        .record_stream_git_error("main", "fetching origin: connection refused", START + 30_000)
        .await
        .unwrap();
    harness.clock.advance(Duration::from_secs(1));
    store.record_stream_git_error("main", "fetching origin: timed out", START + 90_000).await.unwrap();
    let failing = store.get_stream("main").await.unwrap().unwrap();
    assert_eq!(failing.branch, "rawhide");
    assert_eq!(failing.git_failures, 2);
    assert_eq!(failing.git_error_since, Some(START + 1000), "the first failure in a row");
    assert_eq!(failing.git_error.as_deref(), Some("fetching origin: timed out"));
    store.record_stream_head("main", "abc123", "Update lockfiles").await.unwrap();
    store.record_stream_event("main", "force-pushed from 000 to abc123").await.unwrap();
    let healthy = store.get_stream("main").await.unwrap().unwrap();
    assert_eq!(
        (healthy.head_commit.as_deref(), healthy.head_subject.as_deref()),
        (Some("abc123"), Some("Update lockfiles"))
    );
    assert_eq!((healthy.git_error, healthy.git_failures, healthy.git_next_attempt_at), (None, 0, None));
    assert_eq!(healthy.last_event.as_deref(), Some("force-pushed from 000 to abc123"));
    let names: Vec<String> =
        store.list_streams().await.unwrap().into_iter().map(|stream| stream.name).collect();
    assert_eq!(names, ["main", "next"]);
    assert!(store.get_stream("missing").await.unwrap().is_none());
}

async fn tokens_store_only_their_hash(harness: Harness) {
    let store = &harness.store;
    let new = NewToken {
        name: "ci".into(),
        scopes: vec![Scope::Write, Scope::Read, Scope::Write],
        expires_at: None,
    };
    let created = store.create_token(&new).await.unwrap();
    assert!(
        created.plaintext.starts_with("arbor_") && created.plaintext.len() == 38,
        "{}",
        created.plaintext
    );
    assert_eq!(created.token.scopes, [Scope::Read, Scope::Write]);
    assert!(!format!("{created:?}").contains(&created.plaintext), "Debug hides the token");
    let found = store.authenticate_token(&created.plaintext).await.unwrap().unwrap();
    assert_eq!((found.id, found.last_used_at), (created.token.id, Some(START)));
    assert!(found.has_scope(Scope::Write) && !found.has_scope(Scope::Admin));
    // Used again within the minute: last_used_at is not written again.
    harness.clock.advance(Duration::from_secs(30));
    assert_eq!(
        store.authenticate_token(&created.plaintext).await.unwrap().unwrap().last_used_at,
        Some(START)
    );
    harness.clock.advance(Duration::from_secs(31));
    assert_eq!(
        store.authenticate_token(&created.plaintext).await.unwrap().unwrap().last_used_at,
        Some(START + 61_000)
    );
    assert!(store.authenticate_token("arbor_notatoken").await.unwrap().is_none());
    // Expiry and revocation.
    let expiring =
        NewToken { name: "short".into(), scopes: vec![Scope::Read], expires_at: Some(START + 120_000) };
    let expiring = store.create_token(&expiring).await.unwrap();
    assert!(store.authenticate_token(&expiring.plaintext).await.unwrap().is_some());
    harness.clock.set(START + 120_000);
    assert!(store.authenticate_token(&expiring.plaintext).await.unwrap().is_none(), "expired");
    assert!(store.revoke_token(created.token.id).await.unwrap());
    assert!(!store.revoke_token(created.token.id).await.unwrap(), "revoked already");
    assert!(store.authenticate_token(&created.plaintext).await.unwrap().is_none(), "revoked");
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].revoked_at, Some(START + 120_000));
    // Only the hash is stored.
    let secret = created.plaintext.trim_start_matches("arbor_");
    match harness.backend {
        Backend::Sqlite => {
            store.close().await;
            for file in std::fs::read_dir(harness.directory.path()).unwrap() {
                let path = file.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                let found = bytes.windows(secret.len()).any(|window| window == secret.as_bytes());
                assert!(!found, "the token is in {}", path.display());
                let hash = pipeline::store::token_hash(&created.plaintext);
                if path.extension().is_none() {
                    // The database file itself (after the WAL was checkpointed at close) holds the hash.
                    assert!(bytes.windows(hash.len()).any(|window| window == hash.as_bytes()));
                }
            }
        }
        Backend::Postgres => {
            let rows = test_database_rows(&harness.url, "SELECT tokens::text FROM tokens").await;
            assert_eq!(rows.len(), 2);
            assert!(rows.iter().all(|row| !row.contains(secret)), "{rows:?}");
            assert!(rows.iter().any(|row| row.contains(&pipeline::store::token_hash(&created.plaintext))));
        }
    }
}

/// Rows of a query as text, straight from the test database.
async fn test_database_rows(url: &str, sql: &'static str) -> Vec<String> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(sql).fetch_all(&mut connection).await.unwrap()
}

async fn jobs_list_by_state_and_the_overview_shows_waits(harness: Harness) {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(harness.queue.enqueue(&NewJob::new("compose", serde_json::json!({}))).await.unwrap().job_id);
    }
    harness.clock.advance(Duration::from_secs(10));
    let running = harness.claim("w_a", &[], &["compose"]).await.unwrap();
    harness.clock.advance(Duration::from_secs(5));
    let queued = harness.store.list_jobs(Some(JobState::Queued), None, 3).await.unwrap();
    assert_eq!(queued.items.iter().map(|job| job.id).collect::<Vec<_>>(), [ids[4], ids[3], ids[2]]);
    let rest =
        harness.store.list_jobs(Some(JobState::Queued), queued.next_cursor.as_deref(), 3).await.unwrap();
    assert_eq!(rest.items.iter().map(|job| job.id).collect::<Vec<_>>(), [ids[1]]);
    assert_eq!(rest.next_cursor, None);
    let all = harness.store.list_jobs(None, None, 50).await.unwrap();
    assert_eq!(all.items.len(), 5);
    let overview = harness.store.queue_overview().await.unwrap();
    assert_eq!(overview.running.len(), 1);
    assert_eq!((overview.running[0].job.id, overview.running[0].waiting_ms), (running.job.id, 5000));
    assert_eq!(overview.queued.len(), 4);
    assert!(overview.queued.iter().all(|summary| summary.waiting_ms == 15_000));
    assert!(matches!(
        harness.store.list_jobs(None, Some("b1"), 5).await,
        Err(StoreError::InvalidCursor { .. })
    ));
}

async fn migrating_again_changes_nothing(harness: Harness) {
    harness.compose("main", "x86_64", "aaa").await;
    // A second start: migrating again succeeds and keeps the data.
    let again = harness.another_store().await;
    again.migrate().await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.list_builds(&Default::default(), None, 10).await.unwrap().items.len(), 1);
}

/// On PostgreSQL the wake-up listener holds a connection of the pool; closing must give it back rather than
/// wait for it forever.
async fn closing_a_store_returns(harness: Harness) {
    let store = harness.another_store().await;
    store.list_streams().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), store.close()).await.expect("closing the store returns");
    tokio::time::timeout(Duration::from_secs(10), harness.store.close())
        .await
        .expect("closing the store returns");
}

#[tokio::test]
async fn unsupported_urls_are_refused_with_the_forms_that_work() {
    let error = Store::open("mysql://localhost/arbor", StoreOptions::default()).await.unwrap_err();
    assert!(matches!(error, StoreError::UnsupportedUrl { .. }));
    assert!(error.to_string().contains("sqlite:///PATH"), "{error}");
}

#[tokio::test]
async fn relative_sqlite_urls_open_relative_to_the_working_directory_which_is_created() {
    // nextest runs each test in a process of its own, so changing the directory affects no other test.
    let directory = tempfile::tempdir().unwrap();
    std::env::set_current_dir(directory.path()).unwrap();
    // The directory of a new server's state is created with the database.
    let store = Store::open("sqlite:state/arbor.db", StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.sqlite_path(), Some(std::path::Path::new("state/arbor.db")));
    assert!(directory.path().join("state/arbor.db").is_file());
    assert_eq!(store.sqlite_integrity_check().await.unwrap().as_deref(), Some("ok"));
}

async fn closing_the_store_returns(harness: Harness) {
    // A store that has listened for job notifications (PostgreSQL) and queued work closes too.
    let queue = pipeline::Queue::new(harness.another_store().await, QueueOptions::default());
    queue.enqueue(&NewJob::new("compose", serde_json::json!({}))).await.unwrap();
    for store in [queue.store(), &harness.store] {
        let closed = tokio::time::timeout(CLOSE_DEADLINE, store.close()).await;
        assert!(closed.is_ok(), "closing {} did not return within {CLOSE_DEADLINE:?}", store.database());
    }
}
