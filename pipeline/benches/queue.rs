//! Queue and store benchmarks on SQLite and a throwaway PostgreSQL server, printed as numbers:
//!
//! - enqueue → claim latency of a worker waiting in `wait_for_work` (no polling delay), p50 and p99;
//! - 10,000 no-op jobs through 8 worker tasks (jobs/s);
//! - with 100,000 builds: opening and migrating the store, and `list_builds(limit 50)` at 64 concurrent
//!   tasks (p50 / p99).
//!
//! `cargo bench -p pipeline --bench queue`; `ARBOR_BENCH_BACKENDS=sqlite` (or `postgres`) runs one backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use arbor_testsupport::TestPostgres;
use pipeline::queue::{ClaimRequest, NewJob, Outcome, QueueOptions};
use pipeline::store::{BuildFilter, StoreOptions};
use pipeline::{Queue, Store};

/// Enqueue → claim round trips measured.
const LATENCY_SAMPLES: usize = 200;
/// The pause between latency samples, so the claimer is waiting (not busy) when the job arrives.
const LATENCY_GAP: Duration = Duration::from_millis(5);
const THROUGHPUT_JOBS: usize = 10_000;
const THROUGHPUT_WORKERS: usize = 8;
const BUILDS: usize = 100_000;
/// Builds inserted per statement when filling the database.
const BUILD_INSERT_BATCH: usize = 500;
/// NEVRAs per build's package list: a realistic row size that lists must not read.
const PACKAGES_PER_BUILD: usize = 40;
const LIST_CLIENTS: usize = 64;
const LIST_QUERIES_PER_CLIENT: usize = 50;
const LIST_LIMIT: u32 = 50;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let backends = std::env::var("ARBOR_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_string());
    for backend in backends.split(',') {
        let directory = tempfile::tempdir().unwrap();
        let (url, _server) = match backend {
            "sqlite" => (format!("sqlite://{}", directory.path().join("arbor.db").display()), None),
            "postgres" => {
                let server = TestPostgres::start().unwrap();
                (server.create_database("arbor_bench").unwrap(), Some(server))
            }
            other => panic!("unknown backend {other}"),
        };
        println!("== {backend}");
        let store = open(&url).await;
        store.migrate().await.unwrap();
        enqueue_to_claim_latency(&store, &url).await;
        throughput(&store, &url).await;
        builds_list(&store, &url).await;
        store.close().await;
    }
}

async fn open(url: &str) -> Store {
    Store::open(url, StoreOptions::default()).await.unwrap()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

async fn enqueue_to_claim_latency(store: &Store, url: &str) {
    // On PostgreSQL the claimer has a store of its own, so only NOTIFY can wake it, as in another process.
    // SQLite serves one process: one store, whose enqueues wake its waiters directly.
    let claimer_store = if store.is_postgres() { open(url).await } else { store.clone() };
    let claimer_queue = Queue::new(claimer_store, QueueOptions::default());
    let queue = Queue::new(store.clone(), QueueOptions::default());
    let (claimed_sender, mut claimed) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let claimer = tokio::spawn(async move {
        let kinds = strings(&["latency"]);
        let mut waiter = claimer_queue.waiter();
        let mut count = 0;
        while count < LATENCY_SAMPLES {
            let request = ClaimRequest { worker_id: "w_latency", arches: &[], kinds: &kinds };
            match claimer_queue.claim(request).await.unwrap() {
                Some(job) => {
                    claimed_sender.send(Instant::now()).unwrap();
                    claimer_queue.complete(&job.lease, noop()).await.unwrap();
                    count += 1;
                }
                None => {
                    waiter.wait_for_work(pipeline::queue::POLL_FALLBACK).await;
                }
            }
        }
    });
    let mut latencies = Vec::new();
    for _ in 0..LATENCY_SAMPLES {
        tokio::time::sleep(LATENCY_GAP).await;
        let start = Instant::now();
        queue.enqueue(&NewJob::new("latency", serde_json::json!({}))).await.unwrap();
        let claimed_at = claimed.recv().await.unwrap();
        latencies.push(claimed_at.duration_since(start));
    }
    claimer.await.unwrap();
    println!(
        "enqueue -> claim (waiting claimer): p50 {:.2} ms, p99 {:.2} ms ({LATENCY_SAMPLES} samples)",
        milliseconds(percentile(&mut latencies, 50)),
        milliseconds(percentile(&mut latencies, 99))
    );
}

fn noop() -> Outcome {
    Outcome::Succeeded { result: serde_json::json!({}), build: None }
}

async fn throughput(store: &Store, url: &str) {
    let queue = Queue::new(store.clone(), QueueOptions::default());
    let start = Instant::now();
    for _ in 0..THROUGHPUT_JOBS {
        queue.enqueue(&NewJob::new("noop", serde_json::json!({}))).await.unwrap();
    }
    let enqueue_time = start.elapsed();
    if store.is_postgres() {
        // A server's autovacuum analyzes the jobs table within a minute of such a burst (migration 0003
        // makes it eager for this table); the bench does not wait that minute. Without statistics the
        // planner takes the 10,000-row table for an empty one and every claim reads all of it: 742
        // jobs/s instead of about 4,000 on this machine.
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query("ANALYZE jobs").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..THROUGHPUT_WORKERS {
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let kinds = strings(&["noop"]);
            let worker_id = format!("w_bench{worker}");
            let mut done = 0usize;
            loop {
                let request = ClaimRequest { worker_id: &worker_id, arches: &[], kinds: &kinds };
                let Some(job) = queue.claim(request).await.unwrap() else {
                    return done;
                };
                queue.complete(&job.lease, noop()).await.unwrap();
                done += 1;
            }
        }));
    }
    let mut done = 0;
    for worker in workers {
        done += worker.await.unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(done, THROUGHPUT_JOBS);
    println!(
        "{THROUGHPUT_JOBS} no-op jobs through {THROUGHPUT_WORKERS} workers: {:.0} jobs/s ({:.2} s; enqueueing them \
         one by one took {:.2} s, {:.0} jobs/s)",
        THROUGHPUT_JOBS as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        enqueue_time.as_secs_f64(),
        THROUGHPUT_JOBS as f64 / enqueue_time.as_secs_f64()
    );
}

async fn builds_list(store: &Store, url: &str) {
    let start = Instant::now();
    fill_builds(url).await;
    println!("filling {BUILDS} builds: {:.1} s", start.elapsed().as_secs_f64());
    let start = Instant::now();
    let reopened = open(url).await;
    reopened.migrate().await.unwrap();
    reopened.list_builds(&BuildFilter::default(), None, LIST_LIMIT).await.unwrap();
    println!(
        "open + migrate + first list with {BUILDS} builds: {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    reopened.close().await;
    for (label, filter) in [
        ("all streams", BuildFilter::default()),
        (
            "one stream and arch",
            BuildFilter { stream: Some("stream4".into()), arch: Some("x86_64".into()), ..Default::default() },
        ),
    ] {
        let mut clients = Vec::new();
        let started = Instant::now();
        for client in 0..LIST_CLIENTS {
            let store = store.clone();
            let filter = filter.clone();
            clients.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut cursor: Option<String> = None;
                for query in 0..LIST_QUERIES_PER_CLIENT {
                    // Every fifth query of a client follows the cursor; the rest read the first page.
                    let page_cursor = if (query + client) % 5 == 0 { cursor.clone() } else { None };
                    let start = Instant::now();
                    let page = store.list_builds(&filter, page_cursor.as_deref(), LIST_LIMIT).await.unwrap();
                    latencies.push(start.elapsed());
                    assert_eq!(page.items.len(), LIST_LIMIT as usize);
                    cursor = page.next_cursor;
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for client in clients {
            latencies.extend(client.await.unwrap());
        }
        let elapsed = started.elapsed();
        println!(
            "list_builds(limit {LIST_LIMIT}, {label}), {LIST_CLIENTS} concurrent clients: p50 {:.2} ms, p99 {:.2} ms \
             ({} queries, {:.0} queries/s)",
            milliseconds(percentile(&mut latencies, 50)),
            milliseconds(percentile(&mut latencies, 99)),
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64()
        );
    }
}

/// The same insertion on either pool type.
macro_rules! insert_builds {
    ($pool:expr, $packages:expr) => {{
        let mut inserted = 0;
        while inserted < BUILDS {
            let mut transaction = $pool.begin().await.unwrap();
            let mut query = sqlx::QueryBuilder::new(
                "INSERT INTO builds (stream, arch, git_commit, git_subject, status, version, ostree_commit, \
                 image_reference, manifest_digest, download_bytes, image_bytes, created_at, packages) ",
            );
            let batch = BUILD_INSERT_BATCH.min(BUILDS - inserted);
            query.push_values(inserted..inserted + batch, |mut row, number| {
                let status = if number % 10 == 0 { "failed" } else { "succeeded" };
                row.push_bind(format!("stream{}", number % 20))
                    .push_bind(if number % 2 == 0 { "x86_64" } else { "aarch64" })
                    .push_bind(format!("{number:040x}"))
                    .push_bind("Update lockfiles")
                    .push_bind(status)
                    .push_bind(format!("42.{number}"))
                    .push_bind(format!("{number:064x}"))
                    .push_bind(format!("registry.example/os:{number}"))
                    .push_bind(format!("sha256:{number:064x}"))
                    .push_bind(123_456_i64)
                    .push_bind(987_654_321_i64)
                    .push_bind(1_700_000_000_000_i64 + number as i64)
                    .push_bind($packages.clone());
            });
            query.build().execute(&mut *transaction).await.unwrap();
            transaction.commit().await.unwrap();
            inserted += batch;
        }
    }};
}

/// Inserts the builds in large transactions straight through sqlx (creating them one by one through the
/// store would take minutes and measures nothing of interest here).
async fn fill_builds(url: &str) {
    let packages: Vec<String> =
        (0..PACKAGES_PER_BUILD).map(|number| format!("package{number}-1.2.3-4.fc39.x86_64")).collect();
    let packages = serde_json::to_string(&packages).unwrap();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        insert_builds!(pool, packages);
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        insert_builds!(pool, packages);
        sqlx::query("ANALYZE builds").execute(&pool).await.unwrap();
    }
}

fn percentile(samples: &mut [Duration], percent: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * percent / 100).min(samples.len() - 1)]
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
