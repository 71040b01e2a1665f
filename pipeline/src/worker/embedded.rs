//! The workers inside `arbor serve`: `[server] workers` loops on the queue itself, each with its own
//! package cache (`CACHE/worker-N`), building the host's arch.

use std::sync::Arc;

use common::blocking::Cancellation;
use image::registry::RegistryOptions;

use super::local::LocalJobSource;
use super::{CLAIM_WAIT, Worker, WorkerIdentity, WorkerSettings};
use crate::config::Config;
use crate::git::Mirror;
use crate::jobs::ALL_KINDS;
use crate::queue::Queue;

/// The rpm name of the arch this process runs on.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "x86" => "i686",
        other => other,
    }
}

/// How workers reach the registry: `[registry]`.
pub fn registry_options(config: &Config) -> RegistryOptions {
    RegistryOptions {
        auth_file: config.registry.authfile.clone(),
        tls_verify: config.registry.tls_verify,
        ..RegistryOptions::default()
    }
}

/// The settings of embedded worker `index` (0-based).
pub fn embedded_worker_settings(config: &Config, index: u32) -> WorkerSettings {
    WorkerSettings {
        identity: WorkerIdentity {
            name: format!("embedded-{}", index + 1),
            arches: vec![host_arch().to_string()],
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        kinds: ALL_KINDS.iter().map(|kind| kind.to_string()).collect(),
        state_directory: config.server.state_dir.clone(),
        cache_directory: config.cache.directory.join(format!("worker-{}", index + 1)),
        cache_max_size: config.cache.max_size,
        registry: registry_options(config),
        claim_wait: CLAIM_WAIT,
        shutdown_grace: config.server.shutdown_grace,
    }
}

/// Runs the configured embedded workers until `shutdown`; returns once each handed back or finished
/// its job.
pub async fn run_embedded_workers(
    queue: Queue,
    mirror: Arc<Mirror>,
    config: Arc<Config>,
    shutdown: Cancellation,
) {
    let streams = Arc::new(config.streams.clone());
    let source = Arc::new(LocalJobSource::new(queue, mirror, streams));
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..config.server.workers {
        let settings = embedded_worker_settings(&config, index);
        workers.spawn(Worker::run(Arc::clone(&source), settings, shutdown.clone()));
    }
    while workers.join_next().await.is_some() {}
}
