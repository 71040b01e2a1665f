//! The dashboard's part of the API benchmark: 1,000 jobs (10 running, 10 queued, the rest done; the
//! first running one with a 100,000-line log) next to the 100,000 builds, then every page from 16
//! keep-alive connections (p99 per page, as a browser asks: HTML, compressed), the home page's
//! compressed size and whether it names another host, and the time to stream the 100,000-line log as
//! Server-Sent Events.

use std::time::Instant;

use super::{BUILDS, load_paths};

const JOBS: i64 = 1_000;
const LOG_LINES: i64 = 100_000;
/// Connections of the page load, as the issue asks.
const PAGE_CLIENTS: usize = 16;
/// The server time every page must stay under at p99.
const PAGE_BUDGET_MS: f64 = 30.0;
/// The home page's compressed size must stay under this.
const HOME_BUDGET_BYTES: usize = 100 * 1024;

/// Adds the jobs and the long log (one statement each, as the builds are made).
pub async fn fill_jobs(url: &str) {
    let started = Instant::now();
    const SQLITE_JOBS: &str = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $1 - 1) \
        INSERT INTO jobs (kind, payload, stream, arch, state, priority, attempts, max_attempts, run_after, \
        lease_owner, lease_expires, phase, created_at, started_at, finished_at) \
        SELECT 'compose', '{\"stream\": \"stream' || (i % 10) || '\", \"tags\": [\"stream' || (i % 10) || '\"], \
        \"tag_version\": true}', 'stream' || (i % 10), CASE (i / 10) % 2 WHEN 0 THEN 'x86_64' ELSE 'aarch64' END, \
        CASE i % 100 WHEN 0 THEN 'running' WHEN 1 THEN 'queued' ELSE 'succeeded' END, 0, 1, 3, \
        1700000000000 + i * 1000, CASE i % 100 WHEN 0 THEN 'w_bench' END, \
        CASE i % 100 WHEN 0 THEN 9999999999999 END, CASE i % 100 WHEN 0 THEN 'downloading' END, \
        1700000000000 + i * 1000, CASE i % 100 WHEN 1 THEN NULL ELSE 1700000000000 + i * 1000 END, \
        CASE i % 100 WHEN 0 THEN NULL WHEN 1 THEN NULL ELSE 1700000000000 + i * 1000 + 600000 END FROM n";
    const SQLITE_LOG: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
        INSERT INTO job_logs (job_id, seq, time, line) SELECT 1, i, 1700000000000 + i, \
        'Importing package ' || i || ' of the compose into the package cache (rpmostree/pkg/...)' FROM n";
    const POSTGRES_JOBS: &str = "INSERT INTO jobs (kind, payload, stream, arch, state, priority, attempts, \
        max_attempts, run_after, lease_owner, lease_expires, phase, created_at, started_at, finished_at) \
        SELECT 'compose', '{\"stream\": \"stream' || (i % 10) || '\", \"tags\": [\"stream' || (i % 10) || '\"], \
        \"tag_version\": true}', 'stream' || (i % 10), CASE (i / 10) % 2 WHEN 0 THEN 'x86_64' ELSE 'aarch64' END, \
        CASE i % 100 WHEN 0 THEN 'running' WHEN 1 THEN 'queued' ELSE 'succeeded' END, 0, 1, 3, \
        1700000000000 + i * 1000, CASE i % 100 WHEN 0 THEN 'w_bench' END, \
        CASE i % 100 WHEN 0 THEN 9999999999999 END, CASE i % 100 WHEN 0 THEN 'downloading' END, \
        1700000000000 + i * 1000, CASE i % 100 WHEN 1 THEN NULL ELSE 1700000000000 + i * 1000 END, \
        CASE i % 100 WHEN 0 THEN NULL WHEN 1 THEN NULL ELSE 1700000000000 + i * 1000 + 600000 END \
        FROM generate_series(0, $1::bigint - 1) AS i";
    const POSTGRES_LOG: &str = "INSERT INTO job_logs (job_id, seq, time, line) SELECT 1, i, 1700000000000 + i, \
        'Importing package ' || i || ' of the compose into the package cache (rpmostree/pkg/...)' \
        FROM generate_series(1, $1::bigint) AS i";
    const LINK: &str = "UPDATE builds SET job_id = id WHERE id <= $1";
    const COUNT: &str = "UPDATE jobs SET log_lines = $1 WHERE id = 1";
    let statements = if url.starts_with("sqlite:") {
        [(SQLITE_JOBS, JOBS), (SQLITE_LOG, LOG_LINES), (LINK, JOBS), (COUNT, LOG_LINES)]
    } else {
        [(POSTGRES_JOBS, JOBS), (POSTGRES_LOG, LOG_LINES), (LINK, JOBS), (COUNT, LOG_LINES)]
    };
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for (statement, value) in statements {
            sqlx::query(statement).bind(value).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for (statement, value) in statements {
            sqlx::query(statement).bind(value).execute(&pool).await.unwrap();
        }
        sqlx::query("ANALYZE jobs").execute(&pool).await.unwrap();
        pool.close().await;
    }
    println!("adding {JOBS} jobs and a {LOG_LINES}-line log: {:.1} s", started.elapsed().as_secs_f64());
}

/// Loads every page and prints what it measured.
pub async fn measure(base: &str, token: &str, seconds: u64, directory: &std::path::Path) {
    // Builds of stream3 have ids 4, 14, 24, ...; those up to JOBS have a job.
    let newest = BUILDS - 6;
    let with_job = JOBS - 6;
    let pages = [
        ("streams (home)", vec!["/".to_string()]),
        ("stream", (0..10).map(|stream| format!("/streams/stream{stream}")).collect()),
        ("stream, failed only", vec!["/streams/stream3?status=failed&arch=x86_64".to_string()]),
        ("build", vec![format!("/builds/{newest}"), format!("/builds/{with_job}")]),
        ("compare", vec![format!("/compare?stream=stream3&from={}&to={newest}", newest - 10)]),
        ("job (100,000-line log)", vec!["/jobs/1".to_string()]),
        ("queue and workers", vec!["/queue".to_string()]),
    ];
    let client = reqwest::Client::new();
    for (_, paths) in &pages {
        for path in paths {
            let response = client
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
    }
    for (name, paths) in &pages {
        let result = load_paths(base, token, paths, PAGE_CLIENTS, true, seconds, directory);
        let verdict = if result.p99_ms < PAGE_BUDGET_MS { "within" } else { "OVER" };
        println!(
            "dashboard {name}, {PAGE_CLIENTS} connections, {seconds} s: p50 {:.2} ms, p99 {:.2} ms ({verdict} \
             {PAGE_BUDGET_MS} ms), {:.0} requests/s",
            result.p50_ms, result.p99_ms, result.requests_per_second
        );
    }
    let home = client
        .get(format!("{base}/"))
        .bearer_auth(token)
        .header("accept", "text/html")
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    let encoding = home.headers().get("content-encoding").map(|value| value.to_str().unwrap().to_string());
    let compressed = home.bytes().await.unwrap().len();
    let plain = client
        .get(format!("{base}/"))
        .bearer_auth(token)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let other_hosts = plain.matches("://").count();
    println!(
        "dashboard home page: {compressed} bytes transferred ({}; {} bytes uncompressed; budget {HOME_BUDGET_BYTES}), \
         references to other hosts: {other_hosts}",
        encoding.as_deref().unwrap_or("not compressed"),
        plain.len()
    );
    let started = Instant::now();
    let mut response = client
        .get(format!("{base}/api/v1/jobs/1/log"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut events = 0;
    let mut carry = String::new();
    while events < LOG_LINES {
        let Some(chunk) = response.chunk().await.unwrap() else { break };
        carry.push_str(&String::from_utf8_lossy(&chunk));
        let complete = carry.rfind('\n').map_or(0, |index| index + 1);
        events += carry[..complete].lines().filter(|line| line.starts_with("id:")).count() as i64;
        carry.drain(..complete);
    }
    println!(
        "live log of {LOG_LINES} lines as Server-Sent Events: all {events} events in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}
