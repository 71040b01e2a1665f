//! While a job runs: the heartbeat task (extends the lease, carries cancellation, notices a lost lease)
//! and the reporter task (log lines in batches and phase changes, under the lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::blocking::Cancellation;
use tokio::sync::mpsc;

use super::source::JobSource;
use crate::jobs::Report;
use crate::queue::Lease;
use crate::store::NewLogLine;

/// Log lines are sent at least this often while a job writes them (live logs stay live)...
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// ... or as soon as this many are waiting (a burst goes out in a few requests).
pub const FLUSH_LINES: usize = 500;
/// Lines kept while the server cannot be reached; beyond this the oldest unsent ones are dropped.
const MAXIMUM_PENDING_LINES: usize = 100_000;

/// What the job's helpers share: its cancellation and whether its lease is lost.
#[derive(Debug, Clone)]
pub struct JobSignals {
    pub cancellation: Cancellation,
    pub lease_lost: Arc<AtomicBool>,
}

impl JobSignals {
    pub fn new() -> Self {
        JobSignals { cancellation: Cancellation::new(), lease_lost: Arc::default() }
    }

    pub fn is_lease_lost(&self) -> bool {
        self.lease_lost.load(Ordering::SeqCst)
    }

    /// The lease is gone: stop the job; it is discarded.
    pub fn lose_lease(&self) {
        self.lease_lost.store(true, Ordering::SeqCst);
        self.cancellation.cancel();
    }
}

/// Heartbeats every `interval` until aborted or the lease is lost.
pub async fn heartbeat<S: JobSource>(source: Arc<S>, lease: Lease, interval: Duration, signals: JobSignals) {
    let mut cancel_requests = source.cancel_requests();
    loop {
        match cancel_requests.as_mut() {
            Some(requests) => tokio::select! {
                () = tokio::time::sleep(interval) => {}
                changed = requests.changed() => {
                    if changed.is_err() {
                        cancel_requests = None;
                    }
                }
            },
            None => tokio::time::sleep(interval).await,
        }
        match source.heartbeat(&lease).await {
            Ok(answer) if answer.cancel_requested => {
                if !signals.cancellation.is_cancelled() {
                    tracing::info!(job.id = lease.job_id, "cancellation requested; stopping the job");
                }
                signals.cancellation.cancel();
            }
            Ok(_) => {}
            Err(error) if error.is_lease_lost() => {
                tracing::warn!(job.id = lease.job_id, "the lease is lost; stopping and discarding the job");
                signals.lose_lease();
                return;
            }
            Err(error) => tracing::warn!(job.id = lease.job_id, error = %error, "a heartbeat failed"),
        }
    }
}

/// Sends the job's lines (every [`FLUSH_INTERVAL`] or [`FLUSH_LINES`]) and phases until every sender
/// is gone, then sends what is left.
pub async fn report<S: JobSource>(
    source: Arc<S>,
    lease: Lease,
    mut receiver: mpsc::UnboundedReceiver<Report>,
    signals: JobSignals,
) {
    let mut pending: Vec<NewLogLine> = Vec::new();
    let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            report = receiver.recv() => match report {
                Some(Report::Line(line)) => {
                    pending.push(line);
                    if pending.len() >= FLUSH_LINES {
                        flush(&*source, &lease, &mut pending, &signals).await;
                    }
                }
                Some(Report::Phase(phase)) => {
                    flush(&*source, &lease, &mut pending, &signals).await;
                    if !signals.is_lease_lost() {
                        match source.set_phase(&lease, &phase).await {
                            Err(error) if error.is_lease_lost() => signals.lose_lease(),
                            Err(error) => tracing::warn!(job.id = lease.job_id, error = %error, "recording the phase failed"),
                            Ok(()) => {}
                        }
                    }
                }
                None => {
                    flush(&*source, &lease, &mut pending, &signals).await;
                    return;
                }
            },
            _ = ticker.tick() => flush(&*source, &lease, &mut pending, &signals).await,
        }
    }
}

async fn flush<S: JobSource>(source: &S, lease: &Lease, pending: &mut Vec<NewLogLine>, signals: &JobSignals) {
    if pending.is_empty() {
        return;
    }
    if signals.is_lease_lost() {
        pending.clear();
        return;
    }
    while !pending.is_empty() {
        let batch = pending.len().min(FLUSH_LINES);
        match source.append_logs(lease, &pending[..batch]).await {
            Ok(_) => {
                pending.drain(..batch);
            }
            Err(error) if error.is_lease_lost() => {
                signals.lose_lease();
                pending.clear();
                return;
            }
            Err(error) => {
                tracing::warn!(job.id = lease.job_id, error = %error, "sending log lines failed; keeping them");
                if pending.len() > MAXIMUM_PENDING_LINES {
                    pending.drain(..pending.len() - MAXIMUM_PENDING_LINES);
                }
                return;
            }
        }
    }
}
