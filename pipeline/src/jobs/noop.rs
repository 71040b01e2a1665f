//! A job that does nothing but wait and log: for tests and benchmarks of the queue, the workers and
//! the worker protocol without composing anything.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::context::{JobContext, JobError};

/// What a no-op job carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoopPayload {
    /// How long the job runs.
    #[serde(default)]
    pub duration_ms: u64,
}

/// Waits `payload.duration_ms` (or until cancelled) and reports the job's id.
pub async fn run(context: &JobContext, payload: &NoopPayload) -> Result<serde_json::Value, JobError> {
    context.phase.set("waiting");
    context.log.line(format!("Waiting {} ms", payload.duration_ms));
    tokio::select! {
        () = context.cancellation.cancelled() => Err(JobError::Cancelled),
        () = tokio::time::sleep(Duration::from_millis(payload.duration_ms)) => {
            context.log.line("Done");
            Ok(serde_json::json!({ "job_id": context.job_id }))
        }
    }
}
