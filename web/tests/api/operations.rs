//! Operations: `/healthz`, `/readyz` (and its 503s), `/metrics` in a well-formed exposition format,
//! workers, and a graceful shutdown with a live log open.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::Method;
use pipeline::api::{BuildsRequested, Readiness, WorkerList};
use pipeline::store::{NewWorker, WorkerKind};

use crate::harness::{Backend, Options, STREAM, TestServer};

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start().await;
    let health = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((health.status.as_u16(), health.json()), (200, serde_json::json!({"status": "ok"})));
    let ready = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let readiness: Readiness = ready.parse();
    let names: Vec<&str> = readiness.checks.iter().map(|check| check.name.as_str()).collect();
    assert_eq!(names, ["database", "migrations", "git_mirror"]);
    assert!(readiness.ready && readiness.checks.iter().all(|check| check.ok));

    let mirror = server.mirror.directory().to_path_buf();
    let moved = mirror.with_extension("moved");
    std::fs::rename(&mirror, &moved).unwrap();
    let response = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(response.status, 503);
    let readiness: Readiness = response.parse();
    let mirror_check = readiness.checks.iter().find(|check| check.name == "git_mirror").unwrap();
    assert!(!mirror_check.ok && mirror_check.message.contains("restart arbor"), "{}", mirror_check.message);
    std::fs::rename(&moved, &mirror).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_when_the_database_is_gone() {
    let mut server = TestServer::with(Options { backend: Backend::Postgres, ..Options::default() }).await;
    assert_eq!(server.call(Method::GET, "/readyz", None, None).await.status, 200);
    drop(server.postgres.take());
    let response = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(response.status, 503, "{}", response.text());
    let readiness: Readiness = response.parse();
    assert!(!readiness.ready);
    let database = &readiness.checks[0];
    assert_eq!(database.name, "database");
    assert!(!database.ok, "{}", database.message);
}

#[tokio::test]
async fn a_closed_database_is_503_unavailable() {
    let server = TestServer::start().await;
    server.store.close().await;
    let message =
        server.get("/api/v1/builds/1", &server.tokens.read).await.assert_error(503, "database_unavailable");
    assert!(message.contains("try again"), "{message}");
    assert_eq!(server.call(Method::GET, "/readyz", None, None).await.status, 503);
}

#[tokio::test]
async fn readiness_names_missing_migrations() {
    let server = TestServer::start().await;
    let path = server.store.sqlite_path().unwrap().to_path_buf();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations").execute(&pool).await.unwrap();
    let readiness: Readiness = server.call(Method::GET, "/readyz", None, None).await.parse();
    let migrations = readiness.checks.iter().find(|check| check.name == "migrations").unwrap();
    assert!(!migrations.ok);
    assert!(migrations.message.starts_with("migrations 1"), "{}", migrations.message);
}

#[tokio::test]
async fn workers_are_listed_with_whether_they_are_online() {
    let server = TestServer::start().await;
    let new = |name: &str| NewWorker {
        name: name.into(),
        arches: vec!["x86_64".into()],
        kind: WorkerKind::Remote,
        version: "0.1.0".into(),
        token_id: None,
    };
    let old = server.store.register_worker(&new("old")).await.unwrap();
    server.clock.advance(Duration::from_secs(3 * 60));
    let fresh = server.store.register_worker(&new("fresh")).await.unwrap();
    let list: WorkerList = server.get("/api/v1/workers", &server.tokens.admin).await.parse();
    let online: Vec<(String, bool)> =
        list.items.iter().map(|worker| (worker.id.clone(), worker.online)).collect();
    assert_eq!(online, [(fresh.id, true), (old.id, false)]);
}

/// The labels of one series of a histogram, without `le`.
type SeriesLabels = Vec<(String, String)>;

/// A parsed text exposition: families with their type, and samples.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Exposition {
    /// Parses and checks the Prometheus text format (0.0.4): HELP and TYPE once per family and before
    /// its samples, valid names and labels, numeric values, counters ending in `_total`, histogram buckets
    /// cumulative with a `+Inf` bucket equal to `_count`.
    fn parse(text: &str) -> Exposition {
        let valid_name = |name: &str| {
            let mut characters = name.chars();
            characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
                && characters.all(|character| {
                    character.is_ascii_alphanumeric() || character == '_' || character == ':'
                })
        };
        let mut exposition = Exposition::default();
        let mut helped = BTreeSet::new();
        for line in text.lines().filter(|line| !line.is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(valid_name(name) && helped.insert(name.to_string()), "HELP: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("TYPE: {line}"));
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
                assert!(
                    exposition.types.insert(name.to_string(), kind.to_string()).is_none(),
                    "TYPE twice: {line}"
                );
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "a counter without _total: {line}");
                }
            } else {
                assert!(!line.starts_with('#'), "an unknown comment: {line}");
                let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample: {line}"));
                let value: f64 = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    "NaN" => f64::NAN,
                    number => number.parse().unwrap_or_else(|_| panic!("value: {line}")),
                };
                let (name, labels) = match series.split_once('{') {
                    None => (series, BTreeMap::new()),
                    Some((name, rest)) => {
                        let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("labels: {line}"));
                        let mut labels = BTreeMap::new();
                        for pair in body.split("\",").filter(|pair| !pair.is_empty()) {
                            let (key, value) =
                                pair.split_once("=\"").unwrap_or_else(|| panic!("label: {line}"));
                            assert!(valid_name(key), "label name: {line}");
                            labels.insert(key.to_string(), value.trim_end_matches('"').to_string());
                        }
                        (name, labels)
                    }
                };
                assert!(valid_name(name), "name: {line}");
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| {
                        name.strip_suffix(suffix).filter(|base| {
                            exposition.types.get(*base).is_some_and(|kind| kind == "histogram")
                        })
                    })
                    .unwrap_or(name);
                assert!(exposition.types.contains_key(family), "a sample before its TYPE: {line}");
                exposition.samples.push((name.to_string(), labels, value));
            }
        }
        for (family, kind) in &exposition.types {
            if kind != "histogram" {
                continue;
            }
            let mut series: BTreeMap<SeriesLabels, Vec<(f64, f64)>> = BTreeMap::new();
            for (name, labels, value) in &exposition.samples {
                if *name == format!("{family}_bucket") {
                    let bound = labels["le"].parse::<f64>().unwrap_or(f64::INFINITY);
                    let key = labels
                        .iter()
                        .filter(|(key, _)| *key != "le")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    series.entry(key).or_default().push((bound, *value));
                }
            }
            for (key, buckets) in series {
                assert!(
                    buckets.windows(2).all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1),
                    "{family} {key:?}"
                );
                let (last_bound, last_count) = *buckets.last().unwrap();
                assert!(last_bound.is_infinite(), "{family} {key:?} has no +Inf bucket");
                let count = exposition.value(
                    &format!("{family}_count"),
                    &key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
                );
                assert_eq!(Some(last_count), count, "{family} {key:?}");
            }
        }
        exposition
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(sample, sample_labels, _)| {
                sample == name
                    && labels
                        .iter()
                        .all(|(key, value)| sample_labels.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|(_, _, value)| *value)
    }
}

async fn scrape(server: &TestServer) -> (Exposition, String) {
    let response = server.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = response.text();
    (Exposition::parse(&text), text)
}

/// Counters are per process and tests may share one (`cargo test`): compare before and after.
#[tokio::test]
async fn metrics_are_well_formed_and_count_requests_and_the_queue() {
    let server = TestServer::start().await;
    let route = "/api/v1/streams/{name}/builds";
    let listed_labels = [("method", "GET"), ("route", route), ("status", "2xx")];
    let missing_labels = [("method", "GET"), ("route", "/api/v1/builds/{id}"), ("status", "4xx")];
    let jobs_labels = [("kind", "compose"), ("outcome", "succeeded")];
    let (before, _) = scrape(&server).await;
    let count = |exposition: &Exposition, name: &str, labels: &[(&str, &str)]| {
        exposition.value(name, labels).unwrap_or(0.0)
    };

    let requested: BuildsRequested =
        server.post(&format!("/api/v1/streams/{STREAM}/builds"), &server.tokens.write, None).await.parse();
    assert_eq!(requested.builds.len(), 2);
    server.claim("x86_64").await;
    server
        .store
        .register_worker(&NewWorker {
            name: "embedded-1".into(),
            arches: vec!["x86_64".into()],
            kind: WorkerKind::Embedded,
            version: "0.1.0".into(),
            token_id: None,
        })
        .await
        .unwrap();
    for _ in 0..3 {
        server.get(&format!("/api/v1/streams/{STREAM}/builds?limit=5"), &server.tokens.read).await;
    }
    server.get("/api/v1/builds/999", &server.tokens.read).await;
    metrics::counter!(pipeline::metrics::JOBS_TOTAL, "kind" => "compose", "outcome" => "succeeded")
        .increment(1);
    metrics::histogram!(pipeline::metrics::JOB_DURATION_SECONDS, "kind" => "compose").record(42.0);

    let (after, text) = scrape(&server).await;
    let grew =
        |name: &str, labels: &[(&str, &str)]| count(&after, name, labels) - count(&before, name, labels);
    assert!(grew("arbor_http_requests_total", &listed_labels) >= 3.0, "{text}");
    assert!(grew("arbor_http_requests_total", &missing_labels) >= 1.0, "{text}");
    assert!(grew("arbor_jobs_total", &jobs_labels) >= 1.0, "{text}");
    assert_eq!(after.types["arbor_http_request_duration_seconds"], "histogram");
    assert!(
        after
            .value("arbor_http_request_duration_seconds_bucket", &[("route", route), ("le", "0.0005")])
            .is_some(),
        "{text}"
    );
    assert_eq!(after.types["arbor_job_duration_seconds"], "histogram");
    assert_eq!(after.value("arbor_jobs_queued", &[("kind", "compose")]), Some(1.0));
    assert_eq!(after.value("arbor_jobs_running", &[("kind", "compose")]), Some(1.0));
    assert_eq!(after.value("arbor_jobs_queued", &[("kind", "join")]), Some(0.0));
    assert_eq!(after.value("arbor_workers_online", &[]), Some(1.0));
    assert!(text.contains("# HELP arbor_http_requests_total "), "{text}");
    for sample in &after.samples {
        let route = sample.1.get("route").map(String::as_str).unwrap_or("");
        assert!(!route.contains("999"), "routes are patterns, never paths with ids: {sample:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_live_logs_and_finishes_requests() {
    let server = TestServer::start().await;
    let mut listening = server.listen().await;
    let job_id = server
        .post(&format!("/api/v1/streams/{STREAM}/builds"), &server.tokens.write, None)
        .await
        .parse::<BuildsRequested>()
        .builds[0]
        .job_id;
    let client = reqwest::Client::new();
    let health = client.get(format!("{}/healthz", listening.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let live = client
        .get(format!("{}/api/v1/jobs/{job_id}/log", listening.base))
        .header("accept", "text/event-stream")
        .bearer_auth(&server.tokens.read)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let started = std::time::Instant::now();
    listening.stop.take().unwrap().send(()).unwrap();
    // The live log ends (the job still runs): its body completes.
    let rest =
        tokio::time::timeout(Duration::from_secs(5), live.bytes()).await.expect("the live log ends").unwrap();
    assert!(rest.is_empty() || rest.starts_with(b":"), "{rest:?}");
    let served = tokio::time::timeout(Duration::from_secs(5), &mut listening.task)
        .await
        .expect("serve returns")
        .unwrap();
    served.unwrap();
    assert!(started.elapsed() < web::serve::SHUTDOWN_DRAIN, "stopped without waiting out the drain");
    assert!(client.get(format!("{}/healthz", listening.base)).send().await.is_err(), "no longer listening");
}
