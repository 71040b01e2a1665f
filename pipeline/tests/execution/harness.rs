//! A whole compose service in one test: a git remote with a treefile repository, an rpm-md repository of
//! the minimal OS, a registry (optionally behind a fault proxy), a SQLite store, the mirror, the
//! scheduler and embedded workers, all on 127.0.0.1 and stopped when the harness is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_testsupport::git::{TestFile, TestGitRemote};
use arbor_testsupport::tools::require_tool;
use arbor_testsupport::{FaultProxy, MinimalOs, TestRegistry, TestRepository, os_fixture};
use common::blocking::Cancellation;
use image::registry::{RegistryOptions, RegistryReference, RetryPolicy, fetch_manifest};
use pipeline::config::Config;
use pipeline::git::{Credentials, Mirror};
use pipeline::queue::{Backoff, QueueOptions};
use pipeline::store::{Build, BuildFilter, BuildStatus, StoreOptions};
use pipeline::worker::{JobSource, LocalJobSource, Worker, WorkerIdentity, WorkerSettings, host_arch};
use pipeline::{Queue, Scheduler, Store};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The external programs a compose runs.
const COMPOSE_TOOLS: [&str; 6] = ["bwrap", "rofiles-fuse", "rpm", "createrepo_c", "ostree", "git"];
/// The stream (and branch) every test composes.
pub const STREAM: &str = "testing-devel";
/// The image repository inside the registry.
pub const REPOSITORY: &str = "exampleos/os";
/// Leases of the tests: short, so that a dead worker's job runs again within seconds.
pub const LEASE: Duration = Duration::from_secs(5);
/// Retries of the tests come after a second, not half a minute.
pub const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// How long a test waits for something the service does in seconds.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The treefile of the tests: the minimal OS, versioned `42.N`.
pub fn treefile(extra: &str) -> String {
    let packages = os_fixture::PACKAGE_NAMES.join(", ");
    format!(
        "ref: exampleos/x86_64/{STREAM}\nrepos: [test]\npackages: [{packages}]\n\
         automatic-version-prefix: \"42\"\n{extra}"
    )
}

/// The files of a commit composing the minimal OS from `repository_url`.
pub fn config_files(repository_url: &str, treefile_text: &str) -> Vec<(&'static str, TestFile)> {
    vec![
        ("manifest.yaml", TestFile::text(treefile_text)),
        ("test.repo", TestFile::text(&format!("[test]\nname=test\nbaseurl={repository_url}\ngpgcheck=0\n"))),
        ("README.md", TestFile::text("exampleos configuration\n")),
    ]
}

/// The service's parts.
pub struct Service {
    pub remote: TestGitRemote,
    pub repository: TestRepository,
    pub registry: TestRegistry,
    /// In front of the registry when the test breaks it; the stream's image goes through it then.
    pub proxy: Option<FaultProxy>,
    pub state: tempfile::TempDir,
    pub config: Arc<Config>,
    pub store: Store,
    pub queue: Queue,
    pub mirror: Arc<Mirror>,
    /// The store's fetch requests (what a webhook asks for).
    pub fetch_now: Arc<Notify>,
    pub shutdown: Cancellation,
    tasks: Vec<JoinHandle<()>>,
}

impl Service {
    /// Everything but the scheduler and workers; the remote has a first commit on [`STREAM`].
    pub async fn new(with_proxy: bool) -> Service {
        for tool in COMPOSE_TOOLS {
            require_tool(tool).expect("scripts/install-deps installs the compose tools");
        }
        let repository = MinimalOs::from_host().unwrap().repository_with(&[]).unwrap();
        let remote = TestGitRemote::new().unwrap();
        remote.commit(STREAM, &config_files(&repository.url(), &treefile("")), "Start exampleos").unwrap();
        let registry = TestRegistry::start().unwrap();
        let proxy = with_proxy.then(|| FaultProxy::start(registry.address()).unwrap());
        let host = proxy.as_ref().map_or_else(|| registry.host(), FaultProxy::host);
        let state = tempfile::tempdir().unwrap();
        let config_path = state.path().join("arbor.toml");
        let text = format!(
            "[server]\nstate-dir = \"{state}\"\nworkers = 1\nshutdown-grace = \"0s\"\n\
             [worker]\nlease-duration = \"{lease}s\"\nheartbeat-interval = \"1s\"\n\
             [git]\nurl = \"{url}\"\npoll-interval = \"1h\"\n\
             [registry]\ntls-verify = false\n\
             [[streams]]\nname = \"{STREAM}\"\narches = [\"{arch}\"]\nimage = \"{host}/{REPOSITORY}\"\n",
            state = state.path().display(),
            lease = LEASE.as_secs(),
            url = remote.file_url(),
            arch = host_arch(),
        );
        std::fs::write(&config_path, &text).unwrap();
        let config = Arc::new(Config::load(&config_path).unwrap());
        let store = Store::open(&config.server.database.url, StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let backoff = Backoff { base: RETRY_BACKOFF, cap: RETRY_BACKOFF };
        let queue = Queue::new(store.clone(), QueueOptions { lease_duration: LEASE, backoff });
        let mirror = Arc::new(
            Mirror::open_or_create(&config.server.state_dir, &config.git.url, Credentials::None)
                .await
                .unwrap(),
        );
        let fetch_now = store.fetch_requests();
        Service {
            remote,
            repository,
            registry,
            proxy,
            state,
            config,
            store,
            queue,
            mirror,
            fetch_now,
            shutdown: Cancellation::new(),
            tasks: Vec::new(),
        }
    }

    pub fn stream(&self) -> &pipeline::config::StreamSettings {
        &self.config.streams[0]
    }

    /// Starts the scheduler.
    pub fn start_scheduler(&mut self) {
        let task = Scheduler::run(
            self.store.clone(),
            self.queue.clone(),
            Arc::clone(&self.mirror),
            Arc::clone(&self.config),
            self.shutdown.clone(),
        );
        self.tasks.push(tokio::spawn(task));
    }

    /// The settings of an embedded worker of this service named `name`.
    pub fn worker_settings(&self, name: &str) -> WorkerSettings {
        let mut settings = pipeline::worker::embedded_worker_settings(&self.config, 0);
        settings.identity = WorkerIdentity {
            name: name.to_string(),
            arches: vec![host_arch().to_string()],
            version: "test".to_string(),
        };
        settings.kinds.push(pipeline::jobs::NOOP_KIND.to_string());
        settings.cache_directory = self.state.path().join("cache").join(name);
        // A registry that is down fails the push after two quick tries, not after minutes.
        settings.registry = RegistryOptions {
            retry: RetryPolicy {
                attempts: 2,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(100),
            },
            ..settings.registry
        };
        settings
    }

    /// The job source of embedded workers.
    pub fn local_source(&self) -> Arc<LocalJobSource> {
        Arc::new(LocalJobSource::new(
            self.queue.clone(),
            Arc::clone(&self.mirror),
            Arc::new(self.config.streams.clone()),
        ))
    }

    /// Starts a worker on `source` that stops with `shutdown`.
    pub fn start_worker_with<S: JobSource>(
        &mut self,
        source: Arc<S>,
        settings: WorkerSettings,
        shutdown: Cancellation,
    ) -> JoinHandle<()> {
        tokio::spawn(Worker::run(source, settings, shutdown))
    }

    /// Starts an embedded worker that stops with the service.
    pub fn start_worker(&mut self, name: &str) {
        let task =
            self.start_worker_with(self.local_source(), self.worker_settings(name), self.shutdown.clone());
        self.tasks.push(task);
    }

    /// Commits `files` on the stream's branch and tells the scheduler (as a webhook would).
    pub fn push(&self, files: &[(&str, TestFile)], message: &str) -> String {
        let commit = self.remote.commit(STREAM, files, message).unwrap();
        self.fetch_now.notify_one();
        commit
    }

    /// Waits until the builds of `commit` include one in a final status; returns it.
    pub async fn finished_build(&self, commit: &str) -> Build {
        self.wait_for(&format!("a finished build of {commit}"), || async {
            let page = self
                .store
                .list_builds(
                    &BuildFilter { git_commit: Some(commit.to_string()), ..BuildFilter::default() },
                    None,
                    10,
                )
                .await
                .unwrap();
            let finished = page.items.into_iter().find(|build| {
                matches!(
                    build.status,
                    BuildStatus::Succeeded
                        | BuildStatus::Failed
                        | BuildStatus::Unchanged
                        | BuildStatus::Cancelled
                )
            })?;
            self.store.get_build(finished.id).await.unwrap()
        })
        .await
    }

    /// Polls `check` until it gives a value, failing the test after [`PATIENCE`].
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The digest `tag` names in the registry (asked directly, not through the proxy).
    pub async fn tag_digest(&self, tag: &str) -> Option<String> {
        let reference =
            RegistryReference::parse(&format!("{}/{REPOSITORY}:{tag}", self.registry.host())).unwrap();
        let options = RegistryOptions { tls_verify: false, ..RegistryOptions::default() };
        fetch_manifest(&reference, &options).await.ok().map(|manifest| manifest.digest)
    }

    pub fn state_path(&self) -> &Path {
        self.state.path()
    }

    /// The work directories left under the state directory.
    pub fn work_directories(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.state.path().join("work")) {
            Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Whether every task of the service still runs (none crashed).
    pub fn all_running(&self) -> bool {
        self.tasks.iter().all(|task| !task.is_finished())
    }

    /// Stops the scheduler and workers and waits for them.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(PATIENCE, task).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Settings of a worker that runs no-op jobs only, with its directories under `state`.
pub fn noop_worker_settings(state: &Path, name: &str) -> WorkerSettings {
    WorkerSettings {
        identity: WorkerIdentity {
            name: name.to_string(),
            arches: vec![host_arch().to_string()],
            version: "test".into(),
        },
        kinds: vec![pipeline::jobs::NOOP_KIND.to_string()],
        state_directory: state.join(name),
        cache_directory: state.join(name).join("cache"),
        cache_max_size: u64::MAX,
        registry: RegistryOptions::default(),
        claim_wait: Duration::from_secs(1),
        shutdown_grace: Duration::ZERO,
    }
}
