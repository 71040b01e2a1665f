//! What the dashboard tests share: a server with real builds in it (recorded through the queue and the
//! compose job's own completion code), served on 127.0.0.1, and a headless Chromium.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use arbor_testsupport::browser::{ColourScheme, TestBrowser};
use pipeline::api::BuildsRequested;
use pipeline::jobs::payload::{ComposeResult, ComposeStatus};
use pipeline::jobs::record::complete_compose;
use pipeline::queue::{ClaimRequest, ClaimedJob, Lease};
use pipeline::store::{Layer, NewLogLine, NewWorker, Phase, WorkerKind};
use pipeline::{Clock, SystemClock};
use tokio::runtime::Runtime;

use crate::harness::{ARCHES, Options, STREAM, TestServer, failed};

/// Rounds of composes recorded before the tests look (each builds every arch).
const ROUNDS: usize = 8;
/// Log lines of each recorded compose.
const LOG_LINES: usize = 60;
/// Log lines the running job has when a test starts.
pub const RUNNING_LOG_LINES: i64 = 50;
const HOUR: Duration = Duration::from_secs(3600);
/// How often a recorded compose heartbeats (well within the lease).
const HEARTBEAT_SECONDS: u64 = 10;

/// What the fixture recorded.
#[derive(Debug)]
pub struct Data {
    /// A succeeded build with a package diff against the previous one.
    pub succeeded_build: i64,
    pub previous_build: i64,
    pub failed_build: i64,
    /// The running compose (x86_64) and its lease.
    pub running_job: i64,
    pub running_lease: Lease,
    pub queued_job: i64,
}

/// A test server with data, listening on 127.0.0.1, and the runtime it runs on.
#[derive(Debug)]
pub struct Fixture {
    pub runtime: Runtime,
    pub server: TestServer,
    pub data: Data,
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Fixture {
    pub fn start(options: Options) -> Fixture {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let server = runtime.block_on(TestServer::with(options));
        let data = runtime.block_on(populate(&server));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("a free port");
        let address = listener.local_addr().expect("the address");
        let mut fixture = Fixture { runtime, server, data, address, stop: None, task: None };
        fixture.serve(listener);
        fixture
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = self.server.router.clone();
        let _guard = self.runtime.enter();
        self.task = Some(tokio::spawn(web::serve(listener, router, async move {
            let _ = stopped.await;
        })));
        self.stop = Some(stop);
    }

    /// Stops serving gracefully (live logs end, their browsers reconnect), runs `meanwhile`, then serves
    /// again on the same address.
    pub fn restart(&mut self, meanwhile: impl FnOnce(&Fixture)) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self.runtime.block_on(task);
        }
        meanwhile(self);
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind(self.address))
            .expect("the same address again");
        self.serve(listener);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Appends lines to the running job's log as its worker would, and wakes live logs.
    pub fn append_running_log(&self, lines: impl IntoIterator<Item = String>) {
        let lines: Vec<NewLogLine> = lines.into_iter().map(|line| NewLogLine { time: now(), line }).collect();
        self.runtime
            .block_on(self.server.queue.append_logs(&self.data.running_lease, &lines))
            .expect("append");
        self.server.state.log_events.appended(self.data.running_lease.job_id);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn now() -> i64 {
    SystemClock.now()
}

/// The browser, or a failure naming scripts/install-deps.
pub fn browser() -> TestBrowser {
    TestBrowser::start().unwrap_or_else(|error| {
        panic!("the dashboard tests need chromium and chromium-driver: {error:#} (run scripts/install-deps)")
    })
}

/// `target/screenshots/NAME-WIDTHxHEIGHT-SCHEME.png` in the workspace.
pub fn screenshot_path(name: &str, size: (u32, u32), scheme: ColourScheme) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots").join(format!(
        "{name}-{}x{}-{}.png",
        size.0,
        size.1,
        scheme.name()
    ))
}

/// The package set of round `round`: a realistic base with versions that move, a package added at
/// round 3 and one removed at round 5.
fn packages(round: usize, arch: &str) -> Vec<String> {
    let mut packages: Vec<String> = [
        "bash-5.2.26-3",
        "bootc-1.1.2-1",
        "coreutils-9.4-6",
        "dbus-1.14.10-3",
        "glibc-2.39-6",
        "NetworkManager-1.46.0-1",
        "openssh-9.6p1-1",
        "ostree-2024.5-1",
        "podman-5.0.2-1",
        "rpm-4.19.1-1",
        "shadow-utils-4.15.1-2",
        "sudo-1.9.15-2",
        "systemd-255.4-1",
        "util-linux-2.40-3",
        "vim-minimal-9.1.158-1",
    ]
    .iter()
    .map(|package| format!("{package}.fc41.{arch}"))
    .collect();
    packages.push(format!("kernel-6.{}.{}-200.fc41.{arch}", 8 + round / 3, round));
    packages.push(format!("linux-firmware-2024{:02}01-1.fc41.noarch", 1 + round / FIRMWARE_ROUNDS));
    if round >= 3 {
        packages.push(format!("toolbox-0.0.99.5-{}.fc41.{arch}", round));
    }
    if round < 5 {
        packages.push(format!("nano-7.2-{}.fc41.{arch}", 6 - round.min(2)));
    }
    packages.sort();
    packages
}

fn compose_result(round: usize, arch: &str, started: i64) -> ComposeResult {
    let hex =
        |seed: usize| format!("{:016x}", (seed as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)).repeat(4);
    let digest = format!("sha256:{}", hex(round * 7 + arch.len()));
    let phase_lengths = [
        ("resolving", 4_200),
        ("downloading", 61_000),
        ("assembling", 95_000),
        ("committing", 38_000),
        ("encapsulating", 72_000),
        ("pushing", 25_000 + round as i64 * 3_000),
    ];
    let mut at = started;
    let phases = phase_lengths
        .iter()
        .map(|(name, duration_ms)| {
            let phase = Phase { name: name.to_string(), started_at: at, duration_ms: *duration_ms };
            at += duration_ms;
            phase
        })
        .collect();
    ComposeResult {
        status: ComposeStatus::Succeeded,
        version: Some(format!("41.20261201.{round}")),
        inputhash: Some(hex(round * 13 + 5)),
        ostree_commit: Some(hex(round * 17 + arch.len() * 3)),
        image_reference: Some(format!("registry.example.com/os/exampleos@{digest}")),
        manifest_digest: Some(digest),
        packages: packages(round, arch),
        download_bytes: Some(download_bytes(round)),
        image_bytes: Some(LAYER_SIZES.iter().sum::<i64>() as u64),
        phases,
        layers: layers(round, arch, &hex),
    }
}

/// The sizes of [`layers`]: the commit, the kernel, linux-firmware, the rest of the OS.
const LAYER_SIZES: [i64; 4] = [2_400_000, 36_000_000, 410_000_000, 1_400_000_000];
/// linux-firmware is updated every this many rounds (the kernel every round).
const FIRMWARE_ROUNDS: usize = 3;

/// What a client of the previous round's image downloads: the layers whose digest changed (the commit
/// and the kernel every round, linux-firmware when it was updated), everything for the first round.
fn download_bytes(round: usize) -> u64 {
    let [commit, kernel, firmware, rest] = LAYER_SIZES;
    let bytes = match round {
        0 => commit + kernel + firmware + rest,
        _ if round.is_multiple_of(FIRMWARE_ROUNDS) => commit + kernel + firmware,
        _ => commit + kernel,
    };
    bytes as u64
}

/// An image's layers, as chunked images of an OS look: the commit (new every round; it also holds the
/// packages that came and went, toolbox and nano), the kernel (upgraded every round), linux-firmware
/// (every [`FIRMWARE_ROUNDS`]) and the rest, which never changes.
fn layers(round: usize, arch: &str, hex: &dyn Fn(usize) -> String) -> Vec<Layer> {
    let [commit_size, kernel_size, firmware_size, rest_size] = LAYER_SIZES;
    let layer = |seed: usize, size: i64, description: &str, components: &[&str]| Layer {
        digest: format!("sha256:{}", hex(seed)),
        size,
        description: description.to_string(),
        components: components.iter().map(|component| component.to_string()).collect(),
    };
    vec![
        layer(round * 31 + arch.len(), commit_size, "ostree commit", &[]),
        layer(round * 37 + arch.len() + 1, kernel_size, "kernel and 1 more", &["kernel", "kernel-core"]),
        layer(
            1_000 + round / FIRMWARE_ROUNDS * 41 + arch.len(),
            firmware_size,
            "linux-firmware",
            &["linux-firmware"],
        ),
        layer(
            2_000 + arch.len(),
            rest_size,
            "bash and 13 more",
            &["bash", "bootc", "coreutils", "dbus", "glibc"],
        ),
    ]
}

async fn compose(server: &TestServer, commit: &str, arch: Option<&str>) -> BuildsRequested {
    let body = serde_json::json!({"commit": commit, "arch": arch, "force": true});
    let response =
        server.post(&format!("/api/v1/streams/{STREAM}/builds"), &server.tokens.write, Some(body)).await;
    assert_eq!(response.status, 202, "{}", response.text());
    response.parse()
}

async fn log(server: &TestServer, claimed: &ClaimedJob, lines: usize, prefix: &str) {
    let lines: Vec<NewLogLine> = (1..=lines)
        .map(|number| NewLogLine { time: server.clock.now(), line: format!("{prefix} step {number}: done") })
        .collect();
    server.queue.append_logs(&claimed.lease, &lines).await.expect("append logs");
}

/// Records [`ROUNDS`] rounds of composes of both arches (the last aarch64 one fails), then a running
/// x86_64 compose with a log and a queued aarch64 one, and two workers.
async fn populate(server: &TestServer) -> Data {
    let start = now() - (ROUNDS as i64 + 2) * 3_600_000;
    let head = server.commits.last().expect("commits");
    server.store.record_stream_head(STREAM, head, "Change 3").await.expect("the branch head");
    server.clock.set(start);
    let mut builds = Vec::new();
    let mut failed_build = 0;
    for round in 0..ROUNDS {
        let commit = &server.commits[round % server.commits.len()];
        let requested = compose(server, commit, None).await;
        for arch in ARCHES {
            let claimed = server.claim(arch).await;
            let build = requested.builds.iter().find(|build| build.arch == arch).expect("a build per arch");
            server.queue.set_phase(&claimed.lease, "assembling").await.expect("phase");
            log(server, &claimed, LOG_LINES, &format!("[{arch}] compose")).await;
            let started = server.clock.now();
            // The compose takes minutes; its worker heartbeats meanwhile, as a real one does.
            for _ in 0..(290 + (round as u64 * 37) % 120) / HEARTBEAT_SECONDS {
                server.clock.advance(Duration::from_secs(HEARTBEAT_SECONDS));
                server.queue.heartbeat(&claimed.lease).await.expect("heartbeat");
            }
            if round == ROUNDS - 1 && arch == "aarch64" {
                server.queue.complete(&claimed.lease, failed()).await.expect("fail");
                failed_build = build.build.id;
            } else {
                complete_compose(&server.queue, &claimed.lease, &compose_result(round, arch, started))
                    .await
                    .expect("complete the compose");
                if arch == "x86_64" {
                    builds.push(build.build.id);
                }
            }
        }
        server.clock.advance(HOUR);
    }
    // The running compose started 40 s ago, within its lease.
    server.clock.set(now() - 40_000);
    let store = &server.store;
    let builder = NewWorker {
        name: "builder-x86-1".into(),
        arches: vec!["x86_64".into()],
        kind: WorkerKind::Remote,
        version: "0.1.0".into(),
        token_id: None,
    };
    let worker = store.register_worker(&builder).await.expect("a worker");
    let running = compose(server, &server.commits[0], Some("x86_64")).await;
    let (arches, kinds) = (vec!["x86_64".to_string()], vec!["compose".to_string()]);
    let request = ClaimRequest { worker_id: &worker.id, arches: &arches, kinds: &kinds };
    let claimed = server.queue.claim(request).await.expect("claim").expect("the running compose");
    store.set_worker_job(&worker.id, Some(claimed.lease.job_id)).await.expect("its job");
    server.queue.set_phase(&claimed.lease, "downloading").await.expect("phase");
    log(server, &claimed, RUNNING_LOG_LINES as usize, "[x86_64] running").await;
    let queued = compose(server, &server.commits[1], Some("x86_64")).await;
    let arm = NewWorker { name: "builder-arm-1".into(), arches: vec!["aarch64".into()], ..builder };
    store.register_worker(&arm).await.expect("another worker");
    server.clock.set(now());
    server.queue.heartbeat(&claimed.lease).await.expect("heartbeat");
    Data {
        succeeded_build: builds[builds.len() - 1],
        previous_build: builds[builds.len() - 2],
        failed_build,
        running_job: running.builds[0].job_id,
        running_lease: claimed.lease,
        queued_job: queued.builds[0].job_id,
    }
}
