//! The API under load, printed as numbers, on SQLite and on a throwaway PostgreSQL server:
//!
//! - a database with 100,000 builds over 10 streams (inserted by one statement in one transaction);
//! - startup: opening and migrating the store, saving the streams, opening the mirror, building the state
//!   and the router, and the first answer;
//! - the bench process's resident memory (VmRSS) once started and idle, and after the load (this process
//!   holds what `arbor serve` holds: runtime, pools, caches, but no scheduler or embedded worker);
//! - `GET /api/v1/streams/{name}/builds?limit=50` over the 10 streams from 64 keep-alive connections for
//!   10 s (wrk, with a read token): p50, p99 and requests per second, with the build-list cache and without.
//!
//! - the dashboard's pages with 1,000 jobs besides (see `api/dashboard.rs`): p99 per page from 16
//!   connections, the home page's compressed size, and a 100,000-line live log streamed whole.
//!
//! `cargo bench -p web --bench api` (release); `ARBOR_BENCH_BACKENDS=sqlite` (or `postgres`) runs one
//! backend, `ARBOR_BENCH_SECONDS` changes the load's duration. wrk and git come from scripts/install-deps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arbor_testsupport::{TestFile, TestGitRemote, TestPostgres};
use pipeline::config::Config;
use pipeline::git::{Credentials, Mirror};
use pipeline::store::{Layer, NewToken, Scope, StoreOptions};
use pipeline::{Queue, QueueOptions, Store, SystemClock};
use web::{AppParts, AppState};

#[path = "api/dashboard.rs"]
mod dashboard;

const BUILDS: i64 = 100_000;
const STREAMS: usize = 10;
/// NEVRAs in each build's package list: a realistic row that lists must not read.
const PACKAGES_PER_BUILD: usize = 40;
/// Layers of each build's image: ostree-ext's default chunking makes 64.
const LAYERS_PER_BUILD: usize = 64;
const CLIENTS: usize = 64;
/// wrk threads by default (ARBOR_BENCH_LOAD_THREADS).
const LOAD_THREADS: usize = 2;
const DEFAULT_SECONDS: u64 = 10;
const PAGE: &str = "limit=50";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    require_wrk();
    let seconds: u64 = std::env::var("ARBOR_BENCH_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let backends = std::env::var("ARBOR_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_string());
    let remote = TestGitRemote::new().unwrap();
    remote.commit("main", &[("manifest.yaml", TestFile::text("ref: exampleos\n"))], "First").unwrap();
    for backend in backends.split(',') {
        let directory = tempfile::tempdir().unwrap();
        let (url, _server) = match backend {
            "sqlite" => (format!("sqlite://{}", directory.path().join("arbor.db").display()), None),
            "postgres" => {
                let server = TestPostgres::start().unwrap();
                (server.create_database("arbor_bench").unwrap(), Some(server))
            }
            other => panic!("unknown backend {other} (sqlite or postgres)"),
        };
        println!("== {backend}");
        let config = Arc::new(configuration(directory.path(), &url, &remote.file_url()));
        fill(&config, &url).await;
        dashboard::fill_jobs(&url).await;

        let started = Instant::now();
        let state = start(&config, &url).await;
        let router = web::router(state.clone());
        let first = tower::ServiceExt::oneshot(
            router.clone(),
            axum::http::Request::get("/readyz").body(axum::body::Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(first.status(), 200);
        println!(
            "startup with {BUILDS} builds and {STREAMS} streams (open + migrate + streams + mirror + state + router + \
             first answer): {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        let token = state
            .store
            .create_token(&NewToken { name: "bench".into(), scopes: vec![Scope::Read], expires_at: None })
            .await
            .unwrap()
            .plaintext;
        println!(
            "resident memory once started, idle: {:.1} MiB (this process: runtime, pools, state)",
            resident_mib()
        );

        for (label, state) in
            [("cached", state.clone()), ("uncached", state.clone().without_build_list_cache())]
        {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(web::serve(listener, web::router(state), async move {
                let _ = stopped.await;
            }));
            check_page(&base, &token).await;
            let cpu_before = cpu_seconds();
            let result = load(&base, &token, seconds, directory.path());
            let cpu = cpu_seconds() - cpu_before;
            let requests = result.requests_per_second * seconds as f64;
            println!(
                "GET /api/v1/streams/{{name}}/builds?{PAGE}, {CLIENTS} connections, {seconds} s, {label}: p50 {:.2} ms, \
                 p99 {:.2} ms, {:.0} requests/s, server CPU {:.0} µs per request",
                result.p50_ms,
                result.p99_ms,
                result.requests_per_second,
                cpu / requests * 1e6
            );
            stop.send(()).unwrap();
            server.await.unwrap().unwrap();
        }
        println!("resident memory after the load: {:.1} MiB", resident_mib());
        {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(web::serve(listener, web::router(state.clone()), async move {
                let _ = stopped.await;
            }));
            dashboard::measure(&base, &token, seconds, directory.path()).await;
            stop.send(()).unwrap();
            server.await.unwrap().unwrap();
        }
        state.store.close().await;
    }
}

fn require_wrk() {
    let found = Command::new("wrk").arg("--version").output().is_ok();
    assert!(found, "wrk is missing: run scripts/install-deps (it installs the wrk package)");
}

fn configuration(directory: &std::path::Path, database: &str, remote: &str) -> Config {
    let mut text = format!(
        "[server]\nstate-dir = \"{}\"\ndatabase = \"{database}\"\n\n[git]\nurl = \"{remote}\"\n",
        directory.join("state").display()
    );
    for stream in 0..STREAMS {
        text.push_str(&format!(
            "\n[[streams]]\nname = \"stream{stream}\"\nbranch = \"main\"\narches = [\"x86_64\", \"aarch64\"]\n\
             image = \"registry.example.com/os/exampleos\"\n"
        ));
    }
    Config::parse(&text, &directory.join("arbor.toml")).unwrap_or_else(|errors| panic!("{errors}"))
}

/// What `arbor serve` does before it answers.
async fn start(config: &Arc<Config>, url: &str) -> AppState {
    let store = Store::open(url, StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    for stream in &config.streams {
        store.upsert_stream(&stream.name, &stream.branch).await.unwrap();
    }
    let mirror =
        Mirror::open_or_create(&config.server.state_dir, &config.git.url, Credentials::None).await.unwrap();
    let queue = Queue::new(store.clone(), QueueOptions::default());
    AppState::new(AppParts {
        config: config.clone(),
        store,
        queue,
        mirror: Arc::new(mirror),
        clock: Arc::new(SystemClock),
    })
    .unwrap()
}

/// Creates the schema, the streams and the mirror, then 100,000 builds in one statement.
async fn fill(config: &Arc<Config>, url: &str) {
    let started = Instant::now();
    let state = start(config, url).await;
    state.store.close().await;
    let packages: Vec<String> =
        (0..PACKAGES_PER_BUILD).map(|number| format!("package{number}-1.2.3-4.fc41.x86_64")).collect();
    let packages = serde_json::to_string(&packages).unwrap();
    // The same layers in every build (a client of the previous build downloads none), so the build
    // page's download and layer table are worked out over 64 layers of both builds.
    let layers: Vec<Layer> = (0..LAYERS_PER_BUILD)
        .map(|number| Layer {
            digest: format!("sha256:{number:064x}"),
            size: 20_000_000,
            description: format!("package{number} and 1 more"),
            components: vec![format!("package{number}"), format!("package{}", number + LAYERS_PER_BUILD)],
        })
        .collect();
    let layers = serde_json::to_string(&layers).unwrap();
    // Stream i % 10, arch alternating per round of streams, one build in ten failed.
    const SQLITE: &str = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $1 - 1) \
        INSERT INTO builds (stream, arch, git_commit, git_subject, status, version, ostree_commit, image_reference, \
        manifest_digest, download_bytes, image_bytes, created_at, started_at, finished_at, packages, layers) \
        SELECT 'stream' || (i % 10), CASE (i / 10) % 2 WHEN 0 THEN 'x86_64' ELSE 'aarch64' END, printf('%040x', i), \
        'Update lockfiles', CASE WHEN i % 10 = 9 THEN 'failed' ELSE 'succeeded' END, '42.' || i, printf('%064x', i), \
        'registry.example.com/os/exampleos@sha256:' || printf('%064x', i), 'sha256:' || printf('%064x', i), \
        123456, 987654321, 1700000000000 + i * 1000, 1700000000000 + i * 1000, 1700000000000 + i * 1000 + 600000, $2, $3 \
        FROM n";
    const POSTGRES: &str = "INSERT INTO builds (stream, arch, git_commit, git_subject, status, version, ostree_commit, \
        image_reference, manifest_digest, download_bytes, image_bytes, created_at, started_at, finished_at, packages, \
        layers) \
        SELECT 'stream' || (i % 10), CASE (i / 10) % 2 WHEN 0 THEN 'x86_64' ELSE 'aarch64' END, lpad(to_hex(i), 40, '0'), \
        'Update lockfiles', CASE WHEN i % 10 = 9 THEN 'failed' ELSE 'succeeded' END, '42.' || i, lpad(to_hex(i), 64, '0'), \
        'registry.example.com/os/exampleos@sha256:' || lpad(to_hex(i), 64, '0'), 'sha256:' || lpad(to_hex(i), 64, '0'), \
        123456, 987654321, 1700000000000 + i * 1000, 1700000000000 + i * 1000, 1700000000000 + i * 1000 + 600000, $2, $3 \
        FROM generate_series(0, $1::bigint - 1) AS i";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(SQLITE).bind(BUILDS).bind(&packages).bind(&layers).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(POSTGRES).bind(BUILDS).bind(&packages).bind(&layers).execute(&pool).await.unwrap();
        sqlx::query("ANALYZE builds").execute(&pool).await.unwrap();
        pool.close().await;
    }
    println!("creating the database with {BUILDS} builds: {:.1} s", started.elapsed().as_secs_f64());
}

/// One page answers with 50 builds, so the load measures real pages.
async fn check_page(base: &str, token: &str) {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/streams/stream3/builds?{PAGE}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: pipeline::api::BuildList = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(page.items.len(), 50);
    assert!(page.next_cursor.is_some());
}

struct LoadResult {
    p50_ms: f64,
    p99_ms: f64,
    requests_per_second: f64,
}

/// Runs wrk over the streams' first pages and reads its latency distribution.
fn load(base: &str, token: &str, seconds: u64, directory: &std::path::Path) -> LoadResult {
    let paths: Vec<String> =
        (0..STREAMS).map(|stream| format!("/api/v1/streams/stream{stream}/builds?{PAGE}")).collect();
    load_paths(base, token, &paths, CLIENTS, false, seconds, directory)
}

/// Runs wrk with `clients` connections over `paths` in turn (with the read token; `as_browser`: asking
/// for what a browser asks for, HTML, compressed) and reads its latency distribution.
fn load_paths(
    base: &str,
    token: &str,
    paths: &[String],
    clients: usize,
    as_browser: bool,
    seconds: u64,
    directory: &std::path::Path,
) -> LoadResult {
    let paths = paths.iter().map(|path| format!("\"{path}\"")).collect::<Vec<_>>().join(", ");
    let browser_headers = if as_browser {
        ", [\"Accept\"] = \"text/html,application/xhtml+xml\", [\"Accept-Encoding\"] = \"br, gzip\""
    } else {
        ""
    };
    let script = format!(
        "local paths = {{{paths}}}\nlocal counter = 0\nrequest = function()\n  counter = counter + 1\n  \
         return wrk.format(\"GET\", paths[counter % #paths + 1], {{[\"Authorization\"] = \"Bearer {token}\"\
         {browser_headers}}})\nend\n"
    );
    let script_path = directory.join("paths.lua");
    std::fs::write(&script_path, script).unwrap();
    let threads: usize = std::env::var("ARBOR_BENCH_LOAD_THREADS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(LOAD_THREADS);
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &clients.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
        ])
        .arg("-s")
        .arg(&script_path)
        .arg(base)
        .output()
        .expect("running wrk");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(!text.contains("Non-2xx"), "some requests failed:\n{text}");
    let percentile = |label: &str| {
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{text}"));
        milliseconds(line.split_whitespace().nth(1).unwrap())
    };
    let requests_per_second = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("{text}"));
    LoadResult { p50_ms: percentile("50%"), p99_ms: percentile("99%"), requests_per_second }
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.01s`.
fn milliseconds(text: &str) -> f64 {
    let (number, factor) = if let Some(number) = text.strip_suffix("us") {
        (number, 0.001)
    } else if let Some(number) = text.strip_suffix("ms") {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1000.0)
    } else {
        panic!("unexpected duration {text}");
    };
    number.parse::<f64>().unwrap() * factor
}

/// User and system CPU time of this process (the server), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    /// Linux reports these times in clock ticks of 1/100 s (USER_HZ) on every architecture it supports.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks = |index: usize| fields[index - 3].parse::<f64>().unwrap();
    (ticks(14) + ticks(15)) / TICKS_PER_SECOND
}

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kilobytes: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kilobytes / 1024.0
}
