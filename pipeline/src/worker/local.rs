//! The job source of embedded workers (inside `arbor serve`): the queue and the mirror directly, and the
//! server's own recording of completions.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::StreamSettings;
use crate::git::{CommitId, Mirror};
use crate::jobs::{Assignment, COMPOSE_KIND, ComposePayload, JobOutcome, complete_job};
use crate::queue::{ClaimRequest, Completed, HeartbeatAnswer, Lease, Queue};
use crate::store::{NewLogLine, NewWorker, WorkerKind};

use super::source::{
    JobSource, Registration, SourceError, SourceFuture, WorkerIdentity, claim_next, heartbeat_interval,
};

/// Jobs straight from the queue.
#[derive(Debug, Clone)]
pub struct LocalJobSource {
    queue: Queue,
    mirror: Arc<Mirror>,
    streams: Arc<Vec<StreamSettings>>,
}

impl LocalJobSource {
    pub fn new(queue: Queue, mirror: Arc<Mirror>, streams: Arc<Vec<StreamSettings>>) -> Self {
        LocalJobSource { queue, mirror, streams }
    }
}

/// A job's state as the protocol names it.
pub fn completed_state(completed: Completed) -> String {
    match completed {
        Completed::Finished(state) => state.as_str().to_string(),
        Completed::Retrying { .. } => "queued".to_string(),
    }
}

/// Writes a job's inputs from the mirror: a compose's commit tree, else an empty directory.
pub async fn export_inputs(
    mirror: &Mirror,
    assignment: &Assignment,
    directory: &Path,
) -> Result<(), SourceError> {
    if assignment.job.kind == COMPOSE_KIND {
        let payload: ComposePayload =
            serde_json::from_value(assignment.job.payload.clone()).map_err(|error| {
                SourceError::Protocol {
                    action: format!("reading job {}", assignment.job.id),
                    detail: error.to_string(),
                }
            })?;
        let commit = CommitId::parse(&payload.commit)?;
        mirror.export(&commit, directory).await?;
    } else {
        tokio::fs::create_dir_all(directory).await.map_err(|source| SourceError::Io {
            action: "creating",
            path: directory.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

impl JobSource for LocalJobSource {
    fn register<'a>(&'a self, identity: &'a WorkerIdentity) -> SourceFuture<'a, Registration> {
        Box::pin(async move {
            let worker = self
                .queue
                .store()
                .register_worker(&NewWorker {
                    name: identity.name.clone(),
                    arches: identity.arches.clone(),
                    kind: WorkerKind::Embedded,
                    version: identity.version.clone(),
                    token_id: None,
                })
                .await?;
            let lease_duration = self.queue.options().lease_duration;
            Ok(Registration {
                worker_id: worker.id,
                lease_duration,
                heartbeat_interval: heartbeat_interval(lease_duration),
            })
        })
    }

    fn claim<'a>(
        &'a self,
        worker_id: &'a str,
        arches: &'a [String],
        kinds: &'a [String],
        wait: Duration,
    ) -> SourceFuture<'a, Option<Assignment>> {
        Box::pin(async move {
            self.queue.store().touch_worker(worker_id).await?;
            let request = ClaimRequest { worker_id, arches, kinds };
            Ok(claim_next(&self.queue, &self.mirror, request, wait).await?)
        })
    }

    fn cancel_requests(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.queue.cancel_requests())
    }

    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> SourceFuture<'a, HeartbeatAnswer> {
        Box::pin(async move { Ok(self.queue.heartbeat(lease).await?) })
    }

    fn append_logs<'a>(&'a self, lease: &'a Lease, lines: &'a [NewLogLine]) -> SourceFuture<'a, i64> {
        Box::pin(async move { Ok(self.queue.append_logs(lease, lines).await?) })
    }

    fn set_phase<'a>(&'a self, lease: &'a Lease, phase: &'a str) -> SourceFuture<'a, ()> {
        Box::pin(async move { Ok(self.queue.set_phase(lease, phase).await?) })
    }

    fn prepare_inputs<'a>(&'a self, assignment: &'a Assignment, directory: &'a Path) -> SourceFuture<'a, ()> {
        Box::pin(async move { export_inputs(&self.mirror, assignment, directory).await })
    }

    fn complete<'a>(&'a self, lease: &'a Lease, outcome: JobOutcome) -> SourceFuture<'a, String> {
        Box::pin(async move {
            let completed = complete_job(&self.queue, &self.streams, lease, outcome).await?;
            Ok(completed_state(completed))
        })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> SourceFuture<'a, ()> {
        Box::pin(async move {
            self.queue.release(lease).await?;
            Ok(())
        })
    }
}
