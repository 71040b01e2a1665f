//! The worker API served by axum on 127.0.0.1 against a SQLite store and a git mirror, driven by
//! `pipeline`'s remote worker: tokens and scopes, claims routed by arch, logs and completion, a compose's
//! inputs as a tar of its commit, a stale worker's report after its lease rejected, and a remote worker
//! killed with SIGKILL whose job another worker runs once the lease expired.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_testsupport::git::{TestFile, TestGitRemote};
use common::blocking::Cancellation;
use pipeline::config::Config;
use pipeline::git::{Credentials, Mirror};
use pipeline::jobs::{ComposeRequest, JobOutcome, NOOP_KIND, request_composes};
use pipeline::queue::{Backoff, NewJob, QueueOptions};
use pipeline::secret::Secret;
use pipeline::store::{JobState, NewToken, Scope, StoreOptions};
use pipeline::worker::{JobSource, RemoteJobSource, Worker, WorkerIdentity, WorkerSettings};
use pipeline::{Queue, Store, SystemClock};
use web::worker_api::routes;
use web::{AppParts, AppState};

/// Leases here are short: a killed worker's job runs again within seconds.
const LEASE: Duration = Duration::from_secs(2);
/// A job taken back from a dead worker runs again this soon.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How long a test waits for the service.
const PATIENCE: Duration = Duration::from_secs(60);
/// Set for the re-executed test binary that plays a remote worker: the server URL and the token.
const CHILD_SERVER: &str = "ARBOR_WORKER_CHILD_SERVER";
const CHILD_TOKEN: &str = "ARBOR_WORKER_CHILD_TOKEN";
const CHILD_STATE: &str = "ARBOR_WORKER_CHILD_STATE";

/// A served worker API and what it runs on.
struct Server {
    url: String,
    store: Store,
    queue: Queue,
    config: Arc<Config>,
    mirror: Arc<Mirror>,
    remote: TestGitRemote,
    token: String,
    state: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Server {
        let state = tempfile::tempdir().unwrap();
        let remote = TestGitRemote::new().unwrap();
        remote
            .commit(
                "testing-devel",
                &[
                    ("manifest.yaml", TestFile::text("ref: exampleos/x86_64/testing-devel\n")),
                    ("overlay/usr/bin/hello", TestFile::script("#!/bin/sh\necho hello\n")),
                    ("overlay/etc/link", TestFile::Symlink("../usr/bin/hello".into())),
                ],
                "Start",
            )
            .unwrap();
        let path = state.path().join("arbor.toml");
        let text = format!(
            "[server]\nstate-dir = \"{}\"\n[git]\nurl = \"{}\"\n[[streams]]\nname = \"testing-devel\"\n\
             arches = [\"x86_64\"]\nimage = \"registry.example.com/os/exampleos\"\n",
            state.path().display(),
            remote.file_url()
        );
        std::fs::write(&path, text).unwrap();
        let config = Arc::new(Config::load(&path).unwrap());
        let store = Store::open(&config.server.database.url, StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let backoff = Backoff { base: RETRY_BACKOFF, cap: RETRY_BACKOFF };
        let queue = Queue::new(store.clone(), QueueOptions { lease_duration: LEASE, backoff });
        let mirror = Mirror::open_or_create(&config.server.state_dir, &config.git.url, Credentials::None)
            .await
            .unwrap();
        mirror.fetch().await.unwrap();
        let mirror = Arc::new(mirror);
        let token = store
            .create_token(&NewToken {
                name: "build-host".into(),
                scopes: vec![Scope::Worker],
                expires_at: None,
            })
            .await
            .unwrap()
            .plaintext;
        let api = AppState::new(AppParts {
            config: Arc::clone(&config),
            store: store.clone(),
            queue: queue.clone(),
            mirror: Arc::clone(&mirror),
            clock: Arc::new(SystemClock),
        })
        .unwrap();
        let router = axum::Router::new().merge(routes()).with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server { url, store, queue, config, mirror, remote, token, state, server }
    }

    fn source(&self) -> Arc<RemoteJobSource> {
        Arc::new(RemoteJobSource::new(&self.url, Secret::new(self.token.clone())).unwrap())
    }

    async fn noop(&self, arch: Option<&str>, duration: Duration) -> i64 {
        let mut job =
            NewJob::new(NOOP_KIND, serde_json::json!({ "duration_ms": duration.as_millis() as u64 }));
        job.arch = arch.map(str::to_string);
        self.queue.enqueue(&job).await.unwrap().job_id
    }

    async fn wait_for_state(&self, job_id: i64, state: JobState) -> pipeline::store::Job {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let job = self.store.get_job(job_id).await.unwrap().unwrap();
            if job.state == state {
                return job;
            }
            assert!(Instant::now() < deadline, "job {job_id} never became {state} (it is {})", job.state);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn settings(state: &std::path::Path, name: &str) -> WorkerSettings {
    WorkerSettings {
        identity: WorkerIdentity { name: name.into(), arches: vec!["x86_64".into()], version: "test".into() },
        kinds: vec![NOOP_KIND.to_string()],
        state_directory: state.join(name),
        cache_directory: state.join(name).join("cache"),
        cache_max_size: u64::MAX,
        registry: Default::default(),
        claim_wait: Duration::from_secs(2),
        shutdown_grace: Duration::ZERO,
    }
}

/// POSTs `body` to the worker API with `token`; the status and the JSON answer.
async fn post(
    server: &Server,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/v1/worker{path}", server.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_need_the_worker_scope() {
    let server = Server::start().await;
    let body = serde_json::json!({"name": "w", "arches": ["x86_64"], "version": "1"});
    let (status, answer) = post(&server, "/workers", None, body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("missing_token")));
    let reader = server
        .store
        .create_token(&NewToken { name: "reader".into(), scopes: vec![Scope::Read], expires_at: None })
        .await
        .unwrap();
    let (status, answer) = post(&server, "/workers", Some(&reader.plaintext), body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("missing_scope")));
    let (status, answer) = post(&server, "/workers", Some(&server.token), body).await;
    assert_eq!(status, 201);
    assert_eq!(answer["lease_duration_ms"], 2000);
    assert_eq!(answer["heartbeat_interval_ms"], 500);
    let bad = serde_json::json!({"name": "w", "arches": ["vax"], "version": "1"});
    let (status, answer) = post(&server, "/workers", Some(&server.token), bad).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_claims_only_its_arch_streams_its_log_and_completes() {
    let server = Server::start().await;
    let other_arch = server.noop(Some("aarch64"), Duration::ZERO).await;
    let own_arch = server.noop(Some("x86_64"), Duration::from_millis(600)).await;
    let any_arch = server.noop(None, Duration::ZERO).await;
    let shutdown = Cancellation::new();
    let worker = tokio::spawn(Worker::run(
        server.source(),
        settings(server.state.path(), "remote-1"),
        shutdown.clone(),
    ));
    for job_id in [own_arch, any_arch] {
        let job = server.wait_for_state(job_id, JobState::Succeeded).await;
        assert_eq!(job.attempts, 1);
        let log: Vec<String> =
            server.store.read_logs(job_id, 0, 100).await.unwrap().into_iter().map(|line| line.line).collect();
        assert!(log[0].contains("on worker remote-1"), "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("Done"));
    }
    assert_eq!(server.store.get_job(other_arch).await.unwrap().unwrap().state, JobState::Queued);
    shutdown.cancel();
    worker.await.unwrap();
    let workers = server.store.list_workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].kind, pipeline::store::WorkerKind::Remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_job_hands_its_commit_tree_to_a_remote_worker() {
    let server = Server::start().await;
    let commit = server.remote.head("testing-devel").unwrap().unwrap();
    let stream = &server.config.streams[0];
    let request = ComposeRequest { stream, commit: &commit, subject: Some("Start".into()), force: false };
    let created = request_composes(&server.store, &request).await.unwrap();
    let source = server.source();
    let identity =
        WorkerIdentity { name: "remote-1".into(), arches: vec!["x86_64".into()], version: "test".into() };
    let registration = source.register(&identity).await.unwrap();
    let kinds = vec![pipeline::jobs::COMPOSE_KIND.to_string()];
    let assignment = source
        .claim(&registration.worker_id, &identity.arches, &kinds, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(assignment.job.build_id, Some(created[0].build_id));
    assert_eq!(assignment.job.previous, None);
    assert!(assignment.job.source_date_epoch.is_some(), "the commit's time travels with the job");
    let tree = server.state.path().join("inputs");
    source.prepare_inputs(&assignment, &tree).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(tree.join("manifest.yaml")).unwrap(),
        "ref: exampleos/x86_64/testing-devel\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(tree.join("overlay/usr/bin/hello")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(tree.join("overlay/etc/link")).unwrap(),
        std::path::Path::new("../usr/bin/hello")
    );
    let failure = JobOutcome::Failed { error: "stopping here".into(), permanent: true };
    assert_eq!(source.complete(&assignment.lease, failure).await.unwrap(), "failed");
    let build = server.store.get_build(created[0].build_id).await.unwrap().unwrap();
    assert_eq!(build.error.as_deref(), Some("stopping here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_workers_report_after_its_lease_is_rejected_and_changes_nothing() {
    let server = Server::start().await;
    let job_id = server.noop(None, Duration::ZERO).await;
    let source = server.source();
    let identity =
        WorkerIdentity { name: "stale".into(), arches: vec!["x86_64".into()], version: "test".into() };
    let registration = source.register(&identity).await.unwrap();
    let kinds = vec![NOOP_KIND.to_string()];
    let stale = source
        .claim(&registration.worker_id, &identity.arches, &kinds, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
    // Before any reaper ran, and after it gave the job to another worker: rejected both times.
    let token = &stale.lease.token;
    let done =
        serde_json::json!({"lease_token": token, "outcome": {"succeeded": {"result": {"stale": true}}}});
    let (status, answer) =
        post(&server, &format!("/jobs/{job_id}/complete"), Some(&server.token), done.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("lease_lost")));
    server.queue.reap().await.unwrap();
    let fresh =
        source.claim(&registration.worker_id, &identity.arches, &kinds, PATIENCE).await.unwrap().unwrap();
    assert_eq!(fresh.job.attempt, 2);
    for (path, body) in [
        ("complete", done),
        ("logs", serde_json::json!({"lease_token": token, "lines": [{"time": 1, "line": "zombie"}]})),
        ("heartbeat", serde_json::json!({"lease_token": token})),
        ("phase", serde_json::json!({"lease_token": token, "phase": "zombie"})),
        ("release", serde_json::json!({"lease_token": token})),
    ] {
        let (status, answer) =
            post(&server, &format!("/jobs/{job_id}/{path}"), Some(&server.token), body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("lease_lost")), "{path}");
    }
    let job = server.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!((job.state, job.result, job.phase, job.log_lines), (JobState::Running, None, None, 0));
    assert!(matches!(source.heartbeat(&stale.lease).await, Err(error) if error.is_lease_lost()));
    assert_eq!(source.complete(&fresh.lease, JobOutcome::Cancelled {}).await.unwrap(), "cancelled");
}

/// Not a test of its own: the remote worker process that `a_killed_remote_worker` starts and kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_killed_remote_workers_job_runs_again_on_another_worker"]
async fn remote_worker_child() {
    let (Ok(url), Ok(token), Ok(state)) =
        (std::env::var(CHILD_SERVER), std::env::var(CHILD_TOKEN), std::env::var(CHILD_STATE))
    else {
        return;
    };
    let source = Arc::new(RemoteJobSource::new(&url, Secret::new(token)).unwrap());
    println!("ARBOR-WORKER-CHILD-STARTED");
    Worker::run(source, settings(std::path::Path::new(&state), "doomed"), Cancellation::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_remote_workers_job_runs_again_on_another_worker() {
    let server = Server::start().await;
    let job_id = server.noop(None, Duration::from_secs(3)).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["remote_worker_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_SERVER, &server.url)
        .env(CHILD_TOKEN, &server.token)
        .env(CHILD_STATE, server.state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ARBOR-WORKER-CHILD-STARTED") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the child worker ended before starting");
    }
    let running = server.wait_for_state(job_id, JobState::Running).await;
    assert_eq!(running.attempts, 1);
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());

    let shutdown = Cancellation::new();
    let worker = tokio::spawn(Worker::run(
        server.source(),
        settings(server.state.path(), "survivor"),
        shutdown.clone(),
    ));
    let deadline = Instant::now() + PATIENCE;
    let done = loop {
        server.queue.reap().await.unwrap();
        let job = server.store.get_job(job_id).await.unwrap().unwrap();
        if job.state == JobState::Succeeded {
            break job;
        }
        assert!(Instant::now() < deadline, "the job never ran again (it is {})", job.state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.attempts, 2, "the killed attempt and the one that finished");
    let log: Vec<String> =
        server.store.read_logs(job_id, 0, 100).await.unwrap().into_iter().map(|line| line.line).collect();
    assert!(log.iter().any(|line| line.contains("on worker doomed")), "{log:?}");
    assert!(log.iter().any(|line| line.contains("attempt 2, on worker survivor")), "{log:?}");
    shutdown.cancel();
    worker.await.unwrap();
    let _ = &server.mirror;
}
