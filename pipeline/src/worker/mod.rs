//! The worker runtime: one loop for embedded workers (in `arbor serve`, [`LocalJobSource`]) and remote
//! ones (`arbor worker`, [`RemoteJobSource`] over the worker [`protocol`]).
//!
//! [`Worker::run`] registers, then claims jobs (long poll) and runs each in a work directory of its own
//! (`STATE/work/job-<id>`): a heartbeat task every quarter lease (a cancel request raises the job's
//! [`Cancellation`]; a lost lease cancels and discards the job without reporting), a reporter that sends
//! log lines in batches and phase changes under the lease, the job body, and the completion. After each
//! job the package cache is pruned when it outgrew its size. Shutting down cancels the running job once
//! the grace period passed and hands it back to the queue without spending an attempt.

pub mod archive;
mod embedded;
mod job;
mod local;
pub mod protocol;
mod prune;
mod remote;
mod reporter;
mod source;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::blocking::Cancellation;
use image::registry::RegistryOptions;

pub use embedded::{embedded_worker_settings, host_arch, registry_options, run_embedded_workers};
pub use local::{LocalJobSource, completed_state, export_inputs};
pub use prune::prune_cache;
pub use remote::RemoteJobSource;
pub use source::{JobSource, Registration, SourceError, WorkerIdentity, claim_next, heartbeat_interval};

/// How long a claim waits for work before asking again.
pub const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// The first pause after a failed claim or registration (the server or database is unreachable); it
/// doubles up to [`RETRY_DELAY_CAP`].
const RETRY_DELAY: Duration = Duration::from_secs(1);
const RETRY_DELAY_CAP: Duration = Duration::from_secs(30);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub identity: WorkerIdentity,
    /// The job kinds it runs.
    pub kinds: Vec<String>,
    /// Work directories go under `STATE/work`.
    pub state_directory: PathBuf,
    /// Its own package cache.
    pub cache_directory: PathBuf,
    /// The cache is pruned down to this after a job that left it bigger.
    pub cache_max_size: u64,
    pub registry: RegistryOptions,
    /// How long one claim waits for work.
    pub claim_wait: Duration,
    /// How long a shutdown waits for the running job before cancelling it and handing it back.
    pub shutdown_grace: Duration,
}

/// One worker loop.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    /// Runs jobs from `source` until `shutdown` is raised; returns once the running job (if any) is
    /// completed or handed back.
    pub async fn run<S: JobSource>(source: Arc<S>, settings: WorkerSettings, shutdown: Cancellation) {
        let Some(registration) = register(&*source, &settings, &shutdown).await else {
            return;
        };
        let worker_id = registration.worker_id.clone();
        tracing::info!(worker = %worker_id, name = %settings.identity.name, arches = ?settings.identity.arches, "worker started");
        let mut delay = RETRY_DELAY;
        // The packages of each stream's last image this worker composed: pruning keeps them.
        let mut current_packages: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        while !shutdown.is_cancelled() {
            let claimed = tokio::select! {
                () = shutdown.cancelled() => break,
                claimed = source.claim(&worker_id, &settings.identity.arches, &settings.kinds, settings.claim_wait) => claimed,
            };
            match claimed {
                Ok(None) => delay = RETRY_DELAY,
                Ok(Some(assignment)) => {
                    delay = RETRY_DELAY;
                    let composed =
                        job::run_job(&source, &settings, &registration, assignment, &shutdown).await;
                    if let Some((stream, packages)) = composed {
                        current_packages.insert(stream, packages);
                    }
                    let keep = current_packages.values().flatten().cloned().collect();
                    prune_cache(&settings.cache_directory, settings.cache_max_size, keep).await;
                }
                Err(error) => {
                    tracing::warn!(worker = %worker_id, error = %error, "claiming a job failed; trying again");
                    if pause(&shutdown, delay).await {
                        break;
                    }
                    delay = (delay * 2).min(RETRY_DELAY_CAP);
                }
            }
        }
        tracing::info!(worker = %worker_id, "worker stopped");
    }
}

/// Registers, retrying until it works or `shutdown` is raised.
async fn register<S: JobSource>(
    source: &S,
    settings: &WorkerSettings,
    shutdown: &Cancellation,
) -> Option<Registration> {
    let mut delay = RETRY_DELAY;
    loop {
        match source.register(&settings.identity).await {
            Ok(registration) => return Some(registration),
            Err(error) => {
                tracing::warn!(name = %settings.identity.name, error = %error, "registering the worker failed; trying again");
                if pause(shutdown, delay).await {
                    return None;
                }
                delay = (delay * 2).min(RETRY_DELAY_CAP);
            }
        }
    }
}

/// Sleeps `delay`; `true` when `shutdown` was raised meanwhile.
async fn pause(shutdown: &Cancellation, delay: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}
