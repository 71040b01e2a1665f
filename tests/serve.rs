//! The server end to end, as an operator runs it: `arbor token create --config` makes the first token,
//! `arbor serve` runs as a process of its own against a real git remote, rpm-md repository and
//! registry on 127.0.0.1, and `arbor remote` drives it. A pushed commit becomes a succeeded build whose
//! image is in the registry, a commit that changes no input becomes an unchanged build, a server killed
//! with SIGKILL in the middle of a compose composes that commit exactly once after a restart (and its
//! SQLite database passes `PRAGMA integrity_check`), and SIGTERM stops it cleanly. Two servers on one
//! PostgreSQL database schedule through one of them (a webhook received by the other one reaches it),
//! and the other takes over when it is killed. A server without workers runs as an unprivileged user.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use arbor_testsupport::git::{TestFile, TestGitRemote};
use arbor_testsupport::registry::{http_request, http_request_with_body};
use arbor_testsupport::tools::require_tool;
use arbor_testsupport::{MinimalOs, TestRegistry, TestRepository, os_fixture};
use serde_json::Value;

/// The external programs a compose runs.
const COMPOSE_TOOLS: [&str; 6] = ["bwrap", "rofiles-fuse", "rpm", "createrepo_c", "ostree", "git"];
/// The stream (and branch) the test composes.
const STREAM: &str = "testing-devel";
/// The image repository inside the registry.
const IMAGE_REPOSITORY: &str = "exampleos/os";
/// How long the test waits for something the server does within seconds.
const PATIENCE: Duration = Duration::from_secs(240);
/// How often the test looks again.
const POLL: Duration = Duration::from_millis(200);
/// The lease of the test's server: a killed server's job runs again soon after the restart.
const LEASE_SECONDS: u64 = 5;

fn arbor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbor"));
    command.env_remove("ARBOR_URL").env_remove("ARBOR_TOKEN").env("NO_COLOR", "1");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The treefile of the test: the minimal OS, versioned `42.N`, with `extra` appended.
fn treefile(extra: &str) -> String {
    let packages = os_fixture::PACKAGE_NAMES.join(", ");
    format!(
        "ref: exampleos/x86_64/{STREAM}\nrepos: [test]\npackages: [{packages}]\n\
         automatic-version-prefix: \"42\"\n{extra}"
    )
}

/// A running `arbor serve` in a process group of its own; killed (the whole group) when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(config: &Path, log: &Path) -> Server {
        Server::start_as(config, log, None)
    }

    /// `arbor serve`, as `user` when one is given.
    fn start_as(config: &Path, log: &Path, user: Option<&Unprivileged>) -> Server {
        let output = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut command = arbor();
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .process_group(0);
        if let Some(user) = user {
            user.apply(&mut command);
        }
        Server { child: command.spawn().unwrap(), log: log.to_path_buf() }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, address: SocketAddr) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("arbor serve exited with {status} before it was ready:\n{}", self.log_text());
            }
            if http_request(address, "GET", "/readyz", &[]).is_ok_and(|response| response.status == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "arbor serve was not ready in time:\n{}", self.log_text());
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL to the server and everything it started (as systemd does to the unit's cgroup).
    fn kill_group(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "arbor serve did not stop on SIGTERM:\n{}", self.log_text());
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill_group();
        }
    }
}

/// The service's surroundings and the way the test talks to it.
struct Fixture {
    remote: TestGitRemote,
    _repository: TestRepository,
    registry: TestRegistry,
    directory: tempfile::TempDir,
    config: PathBuf,
    address: SocketAddr,
    write_token: PathBuf,
    read_token: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        for tool in COMPOSE_TOOLS {
            require_tool(tool).expect("scripts/install-deps installs the compose tools");
        }
        let repository = MinimalOs::from_host().unwrap().repository_with(&[]).unwrap();
        let remote = TestGitRemote::new().unwrap();
        let files = [
            ("manifest.yaml", TestFile::text(&treefile(""))),
            (
                "test.repo",
                TestFile::text(&format!("[test]\nname=test\nbaseurl={}\ngpgcheck=0\n", repository.url())),
            ),
            ("README.md", TestFile::text("exampleos configuration\n")),
        ];
        remote.commit(STREAM, &files, "Start exampleos").unwrap();
        let registry = TestRegistry::start().unwrap();
        let directory = tempfile::tempdir().unwrap();
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = directory.path().join("arbor.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"{address}\"\nstate-dir = \"state\"\nworkers = 1\npublic-read = true\n\
                 shutdown-grace = \"2s\"\n\
                 [worker]\nlease-duration = \"{LEASE_SECONDS}s\"\nheartbeat-interval = \"1s\"\n\
                 [git]\nurl = \"{url}\"\npoll-interval = \"5s\"\n\
                 [registry]\ntls-verify = false\n\
                 [[streams]]\nname = \"{STREAM}\"\narches = [\"{arch}\"]\nimage = \"{host}/{IMAGE_REPOSITORY}\"\n",
                url = remote.file_url(),
                arch = os_fixture::ARCH,
                host = registry.host(),
            ),
        )
        .unwrap();
        let fixture = Fixture {
            remote,
            _repository: repository,
            registry,
            write_token: directory.path().join("write-token"),
            read_token: directory.path().join("read-token"),
            directory,
            config,
            address,
        };
        fixture.create_token("ci", &["read", "write"], &fixture.write_token);
        fixture.create_token("viewer", &["read"], &fixture.read_token);
        fixture
    }

    /// `arbor token create NAME --scope ... --config arbor.toml`, the token written to `path`.
    fn create_token(&self, name: &str, scopes: &[&str], path: &Path) {
        let mut command = arbor();
        command.args(["token", "create", name, "--config"]).arg(&self.config);
        for scope in scopes {
            command.args(["--scope", scope]);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "token create: {}", text(&output.stderr));
        let token = text(&output.stdout);
        assert!(token.trim().len() >= 32, "a token of some length: {token:?}");
        std::fs::write(path, token).unwrap();
    }

    fn start_server(&self) -> Server {
        let mut server = Server::start(&self.config, &self.directory.path().join("serve.log"));
        server.wait_ready(self.address);
        server
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `arbor remote ARGUMENTS --url URL [--token-file TOKEN]`.
    fn remote(&self, arguments: &[&str], token: Option<&Path>) -> Output {
        let mut command = arbor();
        command.arg("remote").args(arguments).args(["--url", &self.url()]);
        if let Some(token) = token {
            command.arg("--token-file").arg(token);
        }
        command.output().unwrap()
    }

    /// The stream's builds, newest first, as the API returns them.
    fn builds(&self) -> Vec<Value> {
        let output = self.remote(&["builds", STREAM, "--json", "--limit", "100"], None);
        assert!(output.status.success(), "remote builds: {}", text(&output.stderr));
        let page: Value = serde_json::from_slice(&output.stdout).unwrap();
        page["items"].as_array().cloned().unwrap_or_default()
    }

    fn builds_of(&self, commit: &str) -> Vec<Value> {
        self.builds().into_iter().filter(|build| build["git_commit"] == commit).collect()
    }

    /// Waits until a build of `commit` is in a state `accepted` takes; returns it.
    fn wait_for_build(
        &self,
        server: &Server,
        commit: &str,
        what: &str,
        accepted: &dyn Fn(&str) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(build) = self
                .builds_of(commit)
                .into_iter()
                .find(|build| accepted(build["status"].as_str().unwrap_or("")))
            {
                return build;
            }
            assert!(
                Instant::now() < deadline,
                "no build of {commit} {what} in time; builds: {:#?}\nserver log:\n{}",
                self.builds_of(commit),
                server.log_text()
            );
            std::thread::sleep(POLL);
        }
    }

    fn wait_for_final_build(&self, server: &Server, commit: &str) -> Value {
        self.wait_for_build(server, commit, "in a final status", &|status| {
            matches!(status, "succeeded" | "failed" | "unchanged" | "cancelled")
        })
    }

    /// `GET /api/v1/jobs/{id}` (read by a visitor: the server is public-read).
    fn job(&self, id: i64) -> Value {
        let response = http_request(self.address, "GET", &format!("/api/v1/jobs/{id}"), &[]).unwrap();
        assert_eq!(response.status, 200, "{}", text(&response.body));
        serde_json::from_slice(&response.body).unwrap()
    }

    /// The manifest digest the registry's `tag` names.
    fn tagged_digest(&self, tag: &str) -> String {
        let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
        let response = http_request(
            self.registry.address(),
            "HEAD",
            &format!("/v2/{IMAGE_REPOSITORY}/manifests/{tag}"),
            &[("Accept".to_string(), accept.to_string())],
        )
        .unwrap();
        assert_eq!(response.status, 200, "HEAD of the tag {tag}");
        let digest = response.headers.iter().find(|(name, _)| name == "docker-content-digest");
        digest.map(|(_, value)| value.clone()).expect("the registry names the digest")
    }

    fn database(&self) -> PathBuf {
        self.directory.path().join("state/arbor.db")
    }
}

fn assert_succeeded(build: &Value, server: &Server) {
    assert_eq!(build["status"], "succeeded", "build: {build:#}\nserver log:\n{}", server.log_text());
}

#[test]
fn a_server_composes_pushed_commits_survives_sigkill_and_stops_on_sigterm() {
    let fixture = Fixture::new();
    let server = fixture.start_server();

    // The first commit composes into an image in the registry, tagged with the stream and the version.
    let first = fixture.remote.head(STREAM).unwrap().unwrap();
    let build = fixture.wait_for_final_build(&server, &first);
    assert_succeeded(&build, &server);
    assert_eq!(build["version"], "42.0");
    assert!(build["manifest_digest"].as_str().unwrap().starts_with("sha256:"), "{build:#}");
    assert!(fixture.registry.tag_exists(IMAGE_REPOSITORY, STREAM).unwrap());
    assert!(fixture.registry.tag_exists(IMAGE_REPOSITORY, "42.0").unwrap());

    // `arbor remote` shows it to a visitor as a table, and the build's phases.
    let streams = fixture.remote(&["streams"], None);
    assert!(streams.status.success(), "{}", text(&streams.stderr));
    let streams = text(&streams.stdout);
    assert!(streams.contains(STREAM) && streams.contains("succeeded"), "{streams}");
    let shown = fixture.remote(&["build", &build["id"].to_string()], None);
    let shown = text(&shown.stdout);
    assert!(shown.contains("phase") && shown.contains("42.0"), "{shown}");

    // A commit that changes no input of the compose: an unchanged build, no new version.
    let readme = [("README.md", TestFile::text("exampleos configuration, reworded\n"))];
    let no_op = fixture.remote.commit(STREAM, &readme, "Reword the README").unwrap();
    let build = fixture.wait_for_final_build(&server, &no_op);
    assert_eq!(build["status"], "unchanged", "{build:#}\n{}", server.log_text());

    // Reading needs no token here (public-read), acting does: none is 401, a read token 403.
    let anonymous =
        http_request(fixture.address, "POST", &format!("/api/v1/streams/{STREAM}/builds"), &[]).unwrap();
    assert_eq!(anonymous.status, 401, "{}", text(&anonymous.body));
    let refused = fixture.remote(&["compose", STREAM], Some(&fixture.read_token));
    assert!(!refused.status.success());
    let refused = text(&refused.stderr);
    assert!(refused.contains("403") || refused.contains("scope"), "{refused}");

    // A change of the treefile composes; the server is killed while it does.
    let changed =
        [("manifest.yaml", TestFile::text(&treefile("add-commit-metadata:\n  exampleos.variant: server\n")))];
    let second = fixture.remote.commit(STREAM, &changed, "Record the variant").unwrap();
    let running = fixture.wait_for_build(&server, &second, "running", &|status| status == "running");
    let job_id = running["job_id"].as_i64().unwrap();
    let deadline = Instant::now() + PATIENCE;
    while fixture.job(job_id)["phase"].is_null() {
        assert!(Instant::now() < deadline, "the compose job reported no phase:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut server = server;
    server.kill_group();
    drop(server);

    // Restarted, the server composes that commit again once its lease has run out, and only once.
    let server = fixture.start_server();
    let build = fixture.wait_for_final_build(&server, &second);
    assert_succeeded(&build, &server);
    assert_eq!(build["version"], "42.1");
    let builds = fixture.builds_of(&second);
    assert_eq!(builds.len(), 1, "one build of the commit: {builds:#?}");
    assert_eq!(
        Some(fixture.tagged_digest(STREAM)),
        build["manifest_digest"].as_str().map(str::to_string),
        "the stream's tag names the build's whole image"
    );
    let job = fixture.job(job_id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["attempts"], 2, "the killed attempt and the one after the restart: {job:#}");

    // Compose now through the API, waiting with the build's log: the inputs are unchanged.
    let composed = fixture.remote(&["compose", STREAM, "--wait"], Some(&fixture.write_token));
    assert!(composed.status.success(), "{}\n{}", text(&composed.stderr), server.log_text());
    assert!(text(&composed.stdout).contains("unchanged"), "{}", text(&composed.stdout));

    // SIGTERM stops the server cleanly; its database is sound.
    let status = server.terminate();
    assert!(status.success(), "arbor serve exited with {status}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let integrity = runtime.block_on(async {
        let url = format!("sqlite://{}", fixture.database().display());
        let store = pipeline::Store::open(&url, pipeline::store::StoreOptions::default()).await.unwrap();
        let integrity = store.sqlite_integrity_check().await.unwrap();
        store.close().await;
        integrity
    });
    assert_eq!(integrity.as_deref(), Some("ok"));
}

#[test]
fn a_bad_configuration_is_refused_with_file_line_and_key() {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("arbor.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nworkerz = 2\n[git]\nurl = \"file:///nowhere.git\"\n",
    )
    .unwrap();
    let output = arbor().args(["serve", "--config"]).arg(&config).output().unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("arbor.toml:3"), "{stderr}");
    assert!(stderr.contains("workerz"), "{stderr}");

    let missing =
        arbor().args(["serve", "--config"]).arg(directory.path().join("absent.toml")).output().unwrap();
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("absent.toml"), "{}", text(&missing.stderr));
}

/// The webhook secret of the servers sharing a database.
const WEBHOOK_SECRET: &str = "shared webhook secret";

/// `arbor.toml` of one of several servers sharing `database`: its own address and state directory, no
/// embedded workers (the test watches the scheduler, not composes), a webhook secret, and an hour
/// between polls, so that a commit is fetched within the test only when a webhook or a new leader asks.
fn shared_database_config(
    directory: &Path,
    name: &str,
    database: &str,
    remote: &TestGitRemote,
) -> (PathBuf, SocketAddr) {
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = directory.join(format!("{name}.toml"));
    let secret = directory.join("webhook-secret");
    std::fs::write(&secret, WEBHOOK_SECRET).unwrap();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{address}\"\nstate-dir = \"{name}-state\"\nworkers = 0\npublic-read = true\n\
             database = \"{database}\"\n\
             [git]\nurl = \"{url}\"\npoll-interval = \"1h\"\nwebhook-secret-file = \"{secret}\"\n\
             [[streams]]\nname = \"{STREAM}\"\narches = [\"{arch}\"]\nimage = \"registry.invalid/{IMAGE_REPOSITORY}\"\n",
            url = remote.file_url(),
            arch = os_fixture::ARCH,
            secret = secret.display(),
        ),
    )
    .unwrap();
    (config, address)
}

/// Sends `server` GitLab's push event of `commit` on the stream's branch (GitLab's token header: the
/// secret itself), which it accepts.
fn send_push_webhook(address: SocketAddr, commit: &str) {
    let body = serde_json::json!({
        "object_kind": "push",
        "ref": format!("refs/heads/{STREAM}"),
        "before": "0000000000000000000000000000000000000000",
        "after": commit,
    });
    let headers = [
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Gitlab-Event".to_string(), "Push Hook".to_string()),
        ("X-Gitlab-Token".to_string(), WEBHOOK_SECRET.to_string()),
    ];
    let body = serde_json::to_vec(&body).unwrap();
    let response = http_request_with_body(address, "POST", "/api/v1/hooks/git", &headers, &body).unwrap();
    assert_eq!(response.status, 202, "{}", text(&response.body));
}

/// The builds of `commit` a server's API shows.
fn builds_shown(address: SocketAddr, commit: &str) -> Vec<Value> {
    let response =
        http_request(address, "GET", &format!("/api/v1/streams/{STREAM}/builds?limit=100"), &[]).unwrap();
    assert_eq!(response.status, 200, "{}", text(&response.body));
    let page: Value = serde_json::from_slice(&response.body).unwrap();
    page["items"].as_array().unwrap().iter().filter(|build| build["git_commit"] == commit).cloned().collect()
}

#[test]
fn two_servers_on_one_postgresql_schedule_once_and_the_survivor_takes_over() {
    let postgres = arbor_testsupport::TestPostgres::start().unwrap();
    let database = postgres.create_database("arbor_failover").unwrap();
    let remote = TestGitRemote::new().unwrap();
    let files = [("manifest.yaml", TestFile::text(&treefile(""))), ("README.md", TestFile::text("one\n"))];
    let first = remote.commit(STREAM, &files, "Start exampleos").unwrap();
    let directory = tempfile::tempdir().unwrap();
    let (config_a, address_a) = shared_database_config(directory.path(), "a", &database, &remote);
    let (config_b, address_b) = shared_database_config(directory.path(), "b", &database, &remote);
    let mut server_a = Server::start(&config_a, &directory.path().join("a.log"));
    server_a.wait_ready(address_a);
    // A has had its first scheduling pass (the first commit has its build) before B starts.
    let deadline = Instant::now() + PATIENCE;
    while builds_shown(address_a, &first).is_empty() {
        assert!(Instant::now() < deadline, "server A scheduled nothing:\n{}", server_a.log_text());
        std::thread::sleep(POLL);
    }
    let mut server_b = Server::start(&config_b, &directory.path().join("b.log"));
    server_b.wait_ready(address_b);

    // Both see every build (one database); a new commit gets one build, not one per server. The push's
    // webhook goes to B, which does not schedule: A fetches at once all the same.
    let second = remote.commit(STREAM, &[("README.md", TestFile::text("two\n"))], "Second").unwrap();
    send_push_webhook(address_b, &second);
    let deadline = Instant::now() + PATIENCE;
    while builds_shown(address_b, &second).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no build of the second commit after B's webhook:\n{}",
            server_a.log_text()
        );
        std::thread::sleep(POLL);
    }
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(builds_shown(address_a, &second).len(), 1, "one scheduler: one build of the commit");
    const LEADING: &str = "this process runs the scheduler";
    assert!(server_a.log_text().contains(LEADING), "A leads:\n{}", server_a.log_text());
    assert!(!server_b.log_text().contains(LEADING), "B waits while A leads:\n{}", server_b.log_text());

    // The leader dies; the other server takes the scheduler lock and schedules the next commit.
    server_a.kill_group();
    let third = remote.commit(STREAM, &[("README.md", TestFile::text("three\n"))], "Third").unwrap();
    let deadline = Instant::now() + PATIENCE;
    while builds_shown(address_b, &third).is_empty() {
        assert!(Instant::now() < deadline, "server B did not take over:\n{}", server_b.log_text());
        std::thread::sleep(POLL);
    }
    assert_eq!(builds_shown(address_b, &third).len(), 1);
    assert!(server_b.log_text().contains(LEADING), "B leads now:\n{}", server_b.log_text());
    let status = server_b.terminate();
    assert!(status.success(), "arbor serve exited with {status}");
}

/// The user an unprivileged server runs as: `nobody` when the test runs as root (then the test's files
/// are handed to it), or the test's own user otherwise (which is unprivileged already).
struct Unprivileged {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl Unprivileged {
    /// `None` when the test does not run as root.
    fn nobody(home: &Path) -> Option<Unprivileged> {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
            return None;
        }
        let id = |flag: &str| -> u32 {
            let output = Command::new("id").args([flag, "nobody"]).output().unwrap();
            assert!(output.status.success(), "this test needs the user nobody: {}", text(&output.stderr));
            text(&output.stdout).trim().parse().unwrap()
        };
        Some(Unprivileged { uid: id("-u"), gid: id("-g"), home: home.to_path_buf() })
    }

    /// Hands `path` and everything below it to the user.
    fn own(&self, path: &Path) {
        let status =
            Command::new("chown").arg("-R").arg(format!("{}:{}", self.uid, self.gid)).arg(path).status();
        assert!(status.unwrap().success(), "chown of {}", path.display());
    }

    fn apply(&self, command: &mut Command) {
        // Rust clears the supplementary groups when root changes the user.
        command.uid(self.uid).gid(self.gid).env("HOME", &self.home);
    }
}

/// The effective user id of process `pid` (`Uid:` in /proc/PID/status).
fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// With `workers = 0` the server needs no privilege: as `nobody` (when the test runs as root) it
/// migrates its database, mirrors the remote, schedules the branch head and answers the API and the
/// dashboard; only workers compose.
#[test]
fn a_server_without_workers_runs_as_an_unprivileged_user() {
    let remote = TestGitRemote::new().unwrap();
    let files = [("manifest.yaml", TestFile::text(&treefile(""))), ("README.md", TestFile::text("one\n"))];
    let head = remote.commit(STREAM, &files, "Start exampleos").unwrap();
    let directory = tempfile::tempdir().unwrap();
    let home = directory.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = directory.path().join("arbor.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{address}\"\nstate-dir = \"state\"\nworkers = 0\npublic-read = false\n\
             [git]\nurl = \"{url}\"\npoll-interval = \"5s\"\n\
             [[streams]]\nname = \"{STREAM}\"\narches = [\"{arch}\"]\nimage = \"registry.invalid/{IMAGE_REPOSITORY}\"\n",
            url = remote.file_url(),
            arch = os_fixture::ARCH,
        ),
    )
    .unwrap();
    let user = Unprivileged::nobody(&home);
    if let Some(user) = &user {
        user.own(directory.path());
        user.own(remote.path().parent().unwrap());
    }
    let mut create = arbor();
    create.args(["token", "create", "viewer", "--scope", "read", "--config"]).arg(&config);
    if let Some(user) = &user {
        user.apply(&mut create);
    }
    let created = create.output().unwrap();
    assert!(created.status.success(), "token create as the server's user: {}", text(&created.stderr));
    let token = text(&created.stdout).trim().to_string();

    let mut server = Server::start_as(&config, &directory.path().join("serve.log"), user.as_ref());
    server.wait_ready(address);
    if let Some(user) = &user {
        assert_eq!(process_uid(server.child.id()), user.uid, "arbor serve runs as nobody");
    }
    let authorization = [("Authorization".to_string(), format!("Bearer {token}"))];
    let deadline = Instant::now() + PATIENCE;
    let build = loop {
        let response =
            http_request(address, "GET", &format!("/api/v1/streams/{STREAM}/builds"), &authorization)
                .unwrap();
        assert_eq!(response.status, 200, "{}", text(&response.body));
        let page: Value = serde_json::from_slice(&response.body).unwrap();
        if let Some(build) = page["items"].as_array().and_then(|items| items.first()).cloned() {
            break build;
        }
        assert!(Instant::now() < deadline, "the head was not scheduled:\n{}", server.log_text());
        std::thread::sleep(POLL);
    };
    assert_eq!(
        (build["git_commit"].as_str(), build["status"].as_str()),
        (Some(head.as_str()), Some("queued"))
    );
    let mut page_headers = authorization.to_vec();
    page_headers.push(("Accept".to_string(), "text/html".to_string()));
    let page = http_request(address, "GET", &format!("/streams/{STREAM}"), &page_headers).unwrap();
    assert_eq!(page.status, 200, "{}", text(&page.body));
    let log = server.log_text();
    assert!(!log.contains("ERROR"), "no errors as an unprivileged user:\n{log}");
    let status = server.terminate();
    assert!(status.success(), "arbor serve exited with {status}");
}
