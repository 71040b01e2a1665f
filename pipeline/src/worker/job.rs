//! One claimed job on a worker: its work directory, heartbeat and reporter, the body for its kind, and
//! how it ends (completed, handed back at shutdown, or discarded once its lease is lost).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::blocking::{Cancellation, run_blocking};

use super::WorkerSettings;
use super::reporter::{JobSignals, heartbeat, report};
use super::source::{JobSource, Registration};
use crate::jobs::{
    Assignment, COMPOSE_KIND, ComposePayload, JOIN_KIND, JobContext, JobError, JobOutcome, JoinPayload,
    LogFields, LogSink, NOOP_KIND, compose, join, noop,
};

/// Attempts at reporting a completion while the server cannot be reached (the lease bounds them too).
const COMPLETE_ATTEMPTS: u32 = 6;
/// The first pause between them; it doubles.
const COMPLETE_RETRY_DELAY: Duration = Duration::from_millis(500);

/// How the job ended on this worker, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Succeeded,
    Failed,
    Cancelled,
    /// Handed back at shutdown.
    Released,
    /// The lease was lost; nothing reported.
    Discarded,
}

impl Ending {
    fn name(self) -> &'static str {
        match self {
            Ending::Succeeded => "succeeded",
            Ending::Failed => "failed",
            Ending::Cancelled => "cancelled",
            Ending::Released => "released",
            Ending::Discarded => "discarded",
        }
    }
}

/// Runs one claimed job to its end; returns the stream and the packages of a compose that succeeded
/// (what the package cache must keep).
pub(super) async fn run_job<S: JobSource>(
    source: &Arc<S>,
    settings: &WorkerSettings,
    registration: &Registration,
    assignment: Assignment,
    shutdown: &Cancellation,
) -> Option<(String, Vec<String>)> {
    let job = &assignment.job;
    let lease = assignment.lease.clone();
    let started = Instant::now();
    let work_directory = settings.state_directory.join("work").join(format!("job-{}", job.id));
    remove_directory(&work_directory).await;
    let signals = JobSignals::new();
    let fields = LogFields { job_id: job.id, build_id: job.build_id, stream: job.stream.clone() };
    let (log, phase, receiver) = LogSink::channel(fields);
    let reporter = tokio::spawn(report(Arc::clone(source), lease.clone(), receiver, signals.clone()));
    let heartbeats = tokio::spawn(heartbeat(
        Arc::clone(source),
        lease.clone(),
        registration.heartbeat_interval,
        signals.clone(),
    ));
    log.line(format!(
        "Job {} ({}), attempt {}, on worker {} ({})",
        job.id, job.kind, job.attempt, settings.identity.name, registration.worker_id
    ));
    let context = JobContext {
        job_id: job.id,
        build_id: job.build_id,
        cancellation: signals.cancellation.clone(),
        log,
        phase,
        work_directory: work_directory.clone(),
        cache_directory: settings.cache_directory.clone(),
        registry: settings.registry.clone(),
        source_date_epoch: job.source_date_epoch,
    };
    let (result, handing_back) = {
        let body = run_body(&**source, &assignment, &context);
        tokio::pin!(body);
        let mut handing_back = false;
        let result = tokio::select! {
            result = &mut body => result,
            () = shutdown.cancelled() => {
                context.log.line(format!(
                    "The worker is shutting down; waiting up to {:.0} s for the job",
                    settings.shutdown_grace.as_secs_f64()
                ));
                match tokio::time::timeout(settings.shutdown_grace, &mut body).await {
                    Ok(result) => result,
                    Err(_) => {
                        handing_back = true;
                        context.log.line("Handing the job back to the queue");
                        signals.cancellation.cancel();
                        body.await
                    }
                }
            }
        };
        (result, handing_back)
    };
    if let Err(JobError::Failed { chain, .. }) = &result {
        tracing::warn!(job.id = job.id, build.id = job.build_id, stream = job.stream.as_deref(), error = %chain, "the job failed");
    }
    let composed = composed_packages(job, &result);
    // Every sender of the job's log goes with the context; the reporter sends the rest and ends.
    drop(context);
    let _ = reporter.await;
    heartbeats.abort();
    let ending = finish(&**source, &assignment, result, handing_back, &signals).await;
    remove_directory(&work_directory).await;
    metrics::counter!("arbor_jobs_total", "kind" => job.kind.clone(), "outcome" => ending.name())
        .increment(1);
    metrics::histogram!("arbor_job_duration_seconds", "kind" => job.kind.clone())
        .record(started.elapsed().as_secs_f64());
    tracing::info!(
        job.id = job.id,
        build.id = job.build_id,
        stream = job.stream.as_deref(),
        outcome = ending.name(),
        "job ended"
    );
    composed
}

/// The stream and packages of a compose job that composed (an unchanged one reports none: the image it
/// found has the packages of the compose before).
fn composed_packages(
    job: &crate::jobs::AssignedJob,
    result: &Result<serde_json::Value, JobError>,
) -> Option<(String, Vec<String>)> {
    if job.kind != COMPOSE_KIND {
        return None;
    }
    let result: crate::jobs::ComposeResult = serde_json::from_value(result.as_ref().ok()?.clone()).ok()?;
    let stream = job.stream.clone()?;
    (!result.packages.is_empty()).then_some((stream, result.packages))
}

/// The inputs, then the body of the job's kind; the result as the protocol reports it.
async fn run_body<S: JobSource>(
    source: &S,
    assignment: &Assignment,
    context: &JobContext,
) -> Result<serde_json::Value, JobError> {
    let job = &assignment.job;
    context.phase.set("preparing");
    let prepared = tokio::select! {
        () = context.cancellation.cancelled() => return Err(JobError::Cancelled),
        prepared = source.prepare_inputs(assignment, &context.work_directory) => prepared,
    };
    if let Err(error) = prepared {
        if error.is_lease_lost() {
            return Err(JobError::Cancelled);
        }
        let failure = JobError::failed(&error, false);
        context.log.line(format!("error: preparing the inputs: {failure}"));
        return Err(failure);
    }
    let encode = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map_err(|error| JobError::failed(&error, true))
    };
    match job.kind.as_str() {
        COMPOSE_KIND => {
            let payload: ComposePayload = parse_payload(job.id, &job.payload)?;
            let (context, previous) = (context.clone(), job.previous.clone());
            let result = on_own_thread("compose", context.cancellation.clone(), move || async move {
                compose::run(&context, &payload, previous).await
            })
            .await?;
            encode(serde_json::to_value(result))
        }
        JOIN_KIND => {
            let payload: JoinPayload = parse_payload(job.id, &job.payload)?;
            let context = context.clone();
            let result = on_own_thread("join", context.cancellation.clone(), move || async move {
                join::run(&context, &payload).await
            })
            .await?;
            encode(serde_json::to_value(result))
        }
        NOOP_KIND => noop::run(context, &parse_payload(job.id, &job.payload)?).await,
        other => Err(JobError::Failed {
            chain: format!("this worker does not run jobs of kind {other:?}"),
            permanent: true,
        }),
    }
}

/// Runs the future `make` returns on a thread of its own, with a runtime of its own. The engine's compose
/// and push futures are not `Send` in a way the compiler can prove once they sit inside a worker that is
/// generic over its job source and spawned (their stream combinators borrow across awaits), so they
/// never move between threads: each runs where it was made. Dropping the returned future raises
/// `cancellation`, which the job body observes.
async fn on_own_thread<T, Body, Make>(
    what: &'static str,
    cancellation: Cancellation,
    make: Make,
) -> Result<T, JobError>
where
    T: Send + 'static,
    Body: Future<Output = Result<T, JobError>>,
    Make: FnOnce() -> Body + Send + 'static,
{
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    let spawned = std::thread::Builder::new().name(format!("arbor-{what}")).spawn(move || {
        let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => span.in_scope(|| runtime.block_on(make())),
            Err(error) => Err(JobError::failed(&error, false)),
        };
        let _ = sender.send(result);
    });
    if let Err(error) = spawned {
        return Err(JobError::failed(&error, false));
    }
    struct CancelOnDrop(Option<Cancellation>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if let Some(cancellation) = self.0.take() {
                cancellation.cancel();
            }
        }
    }
    let mut guard = CancelOnDrop(Some(cancellation));
    let result = receiver.await.unwrap_or_else(|_| {
        Err(JobError::Failed {
            chain: format!("the {what} thread ended without a result (it panicked)"),
            permanent: false,
        })
    });
    guard.0 = None;
    result
}

fn parse_payload<T: serde::de::DeserializeOwned>(
    job_id: i64,
    payload: &serde_json::Value,
) -> Result<T, JobError> {
    serde_json::from_value(payload.clone()).map_err(|error| JobError::Failed {
        chain: format!("job {job_id} has an invalid payload\n{error}"),
        permanent: true,
    })
}

/// Reports how the job ended: nothing once the lease is lost, a release when handing back, else the
/// completion (retried while the server cannot be reached).
async fn finish<S: JobSource>(
    source: &S,
    assignment: &Assignment,
    result: Result<serde_json::Value, JobError>,
    handing_back: bool,
    signals: &JobSignals,
) -> Ending {
    let lease = &assignment.lease;
    if signals.is_lease_lost() {
        return Ending::Discarded;
    }
    if handing_back {
        return match source.release(lease).await {
            Ok(()) => Ending::Released,
            Err(error) => {
                tracing::warn!(job.id = lease.job_id, error = %error, "handing the job back failed; the reaper will");
                Ending::Discarded
            }
        };
    }
    let (outcome, ending) = match result {
        Ok(result) => (JobOutcome::Succeeded { result }, Ending::Succeeded),
        Err(JobError::Failed { chain, permanent }) => {
            (JobOutcome::Failed { error: chain, permanent }, Ending::Failed)
        }
        Err(JobError::Cancelled) => (JobOutcome::Cancelled {}, Ending::Cancelled),
    };
    let mut delay = COMPLETE_RETRY_DELAY;
    for attempt in 1..=COMPLETE_ATTEMPTS {
        match source.complete(lease, outcome.clone()).await {
            Ok(state) => {
                tracing::debug!(job.id = lease.job_id, state, "completed");
                return ending;
            }
            Err(error) if error.is_lease_lost() => {
                tracing::warn!(
                    job.id = lease.job_id,
                    "the lease was lost before the job completed; discarded"
                );
                return Ending::Discarded;
            }
            Err(error) => {
                tracing::warn!(job.id = lease.job_id, attempt, error = %error, "reporting the completion failed");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    Ending::Discarded
}

/// Removes a work directory (a leftover of an earlier attempt, or the job's own when it ends).
async fn remove_directory(directory: &Path) {
    let directory: PathBuf = directory.to_path_buf();
    let removed =
        run_blocking("removing a work directory", move |_| match std::fs::remove_dir_all(&directory) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err((directory, error)),
            _ => Ok(()),
        })
        .await;
    if let Ok(Err((directory, error))) = removed {
        tracing::warn!(directory = %directory.display(), %error, "could not remove a work directory");
    }
}
