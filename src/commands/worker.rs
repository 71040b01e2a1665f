//! `arbor worker`: a compose worker on a build host. It claims jobs of its arches from a server's worker
//! API (long poll), heartbeats, streams its log, reports results, and keeps its own package cache
//! within a size. It holds a worker token and registry credentials, never database credentials.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use common::blocking::Cancellation;
use pipeline::jobs::ALL_KINDS;
use pipeline::secret::SecretSource;
use pipeline::worker::{CLAIM_WAIT, RemoteJobSource, Worker, WorkerIdentity, WorkerSettings, host_arch};

use super::arguments::RegistryArgs;

/// How long a stopping worker lets its job run before cancelling it and handing it back.
const DEFAULT_SHUTDOWN_GRACE: &str = "30s";

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The server, e.g. https://arbor.example.com.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// A file holding a token with the `worker` scope (`arbor token create NAME --scope worker`).
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// Architectures this host builds (repeat); default: the host's.
    #[arg(long = "arch", value_name = "ARCH")]
    pub arches: Vec<String>,
    /// The worker's name in the dashboard; default: the host name.
    #[arg(long)]
    pub name: Option<String>,
    /// Work trees of running jobs.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/arbor-worker")]
    pub state_dir: PathBuf,
    /// The package cache (RPMs, the package ostree repository, the kept tree).
    #[arg(long, value_name = "DIR", default_value = "/var/cache/arbor-worker")]
    pub cache: PathBuf,
    /// Prune the package cache (least recently used packages first) down to this after each job.
    #[arg(long, value_name = "SIZE", default_value = "20GiB", value_parser = pipeline::config::parse_size)]
    pub max_cache_size: u64,
    /// How long a stop waits for the running job before cancelling it and handing it back.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_SHUTDOWN_GRACE, value_parser = pipeline::config::parse_duration)]
    pub shutdown_grace: Duration,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(arguments: WorkerArgs) -> anyhow::Result<ExitCode> {
    super::compose::runtime()?.block_on(work(arguments))
}

async fn work(arguments: WorkerArgs) -> anyhow::Result<ExitCode> {
    let token =
        SecretSource::File(arguments.token_file.clone()).load().context("reading the worker token")?;
    let source = RemoteJobSource::new(arguments.server.trim_end_matches('/'), token)
        .with_context(|| format!("connecting to {}", arguments.server))?;
    let arches =
        if arguments.arches.is_empty() { vec![host_arch().to_string()] } else { arguments.arches.clone() };
    let name = arguments.name.clone().unwrap_or_else(host_name);
    let settings = WorkerSettings {
        identity: WorkerIdentity { name, arches, version: env!("CARGO_PKG_VERSION").to_string() },
        kinds: ALL_KINDS.iter().map(|kind| kind.to_string()).collect(),
        state_directory: arguments.state_dir.clone(),
        cache_directory: arguments.cache.clone(),
        cache_max_size: arguments.max_cache_size,
        registry: arguments.registry.options(),
        claim_wait: CLAIM_WAIT,
        shutdown_grace: arguments.shutdown_grace,
    };
    let shutdown = Cancellation::new();
    let stop = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            super::serve::stop_signal().await;
            tracing::info!("stopping: the running job (if any) finishes or goes back to the queue");
            shutdown.cancel();
        })
    };
    Worker::run(Arc::new(source), settings, shutdown).await;
    stop.abort();
    Ok(ExitCode::SUCCESS)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_string())
}
