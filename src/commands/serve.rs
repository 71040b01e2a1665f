//! `arbor serve`: the compose server in one process — the HTTP API (and the worker API), the scheduler
//! (git polling, the reaper; only while this process holds the scheduler lock) and the embedded
//! workers — until SIGTERM or SIGINT, then a graceful stop that hands running jobs back to the queue.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use common::blocking::Cancellation;
use pipeline::config::Config;
use pipeline::git::Mirror;
use pipeline::queue::{Backoff, QueueOptions};
use pipeline::scheduler::Scheduler;
use pipeline::store::StoreOptions;
use pipeline::{Queue, Store, SystemClock};
use web::{AppParts, AppState};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The server's configuration (see examples/arbor.toml).
    #[arg(long, value_name = "FILE", default_value = "/etc/arbor/arbor.toml")]
    pub config: PathBuf,
    /// Run the database migrations and exit.
    #[arg(long)]
    pub migrate_only: bool,
}

/// Reads the configuration, printing every problem with its file, line and key.
pub fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::FAILURE
    })
}

/// Opens the configured database and applies the migrations it lacks.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.server.database.connection_url().context("reading the database password")?;
    let store = Store::open(url.expose(), StoreOptions::default()).await.context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

pub fn run(arguments: ServeArgs, config: Config) -> anyhow::Result<ExitCode> {
    super::compose::runtime()?.block_on(serve(arguments, config))
}

async fn serve(arguments: ServeArgs, config: Config) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    tracing::info!(database = store.database(), "database ready");
    if arguments.migrate_only {
        println!("{}: migrations applied", store.database());
        return Ok(ExitCode::SUCCESS);
    }
    for stream in &config.streams {
        store.upsert_stream(&stream.name, &stream.branch).await?;
    }
    let credentials = config.git.credentials().context("reading the git credentials")?;
    let mirror = Mirror::open_or_create(&config.server.state_dir, &config.git.url, credentials)
        .await
        .with_context(|| format!("setting up the git mirror in {}", config.server.state_dir.display()))?
        .with_fetch_timeout(config.git.fetch_timeout);
    let mirror = Arc::new(mirror);
    let options = QueueOptions { lease_duration: config.worker.lease_duration, backoff: Backoff::default() };
    let queue = Queue::new(store.clone(), options);
    let config = Arc::new(config);
    let state = AppState::new(AppParts {
        config: Arc::clone(&config),
        store: store.clone(),
        queue: queue.clone(),
        mirror: Arc::clone(&mirror),
        clock: Arc::new(SystemClock),
    })?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {} ([server] listen)", config.server.listen))?;

    let shutdown = Cancellation::new();
    let scheduler = tokio::spawn(Scheduler::run(
        store.clone(),
        queue.clone(),
        Arc::clone(&mirror),
        Arc::clone(&config),
        shutdown.clone(),
    ));
    let workers = tokio::spawn(pipeline::worker::run_embedded_workers(
        queue.clone(),
        Arc::clone(&mirror),
        Arc::clone(&config),
        shutdown.clone(),
    ));
    tracing::info!(
        listen = %config.server.listen,
        streams = config.streams.len(),
        workers = config.server.workers,
        "arbor serve started"
    );
    let stop = {
        let shutdown = shutdown.clone();
        async move {
            stop_signal().await;
            tracing::info!("stopping: running jobs are handed back to the queue");
            shutdown.cancel();
        }
    };
    let served = web::serve(listener, web::router(state), stop).await;
    // The HTTP side stopped (a signal, or it failed): stop the rest and wait for the jobs to be handed back.
    shutdown.cancel();
    let _ = workers.await;
    let _ = scheduler.await;
    store.close().await;
    served.context("serving HTTP")?;
    tracing::info!("arbor serve stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM (systemd, kill) or SIGINT (Ctrl-C).
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot listen for SIGTERM and SIGINT; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
