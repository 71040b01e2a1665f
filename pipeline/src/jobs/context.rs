//! What a job body gets from the worker that runs it: the cancellation, where its log lines and phase
//! go, its work directory and the worker's cache, and how to reach the registry; and how it ends when it
//! does not succeed ([`JobError`]).

use std::path::PathBuf;

use common::blocking::Cancellation;
use image::registry::RegistryOptions;
use tokio::sync::mpsc;

use crate::clock::{Clock, SystemClock};
use crate::store::NewLogLine;

/// What the body of one job runs with.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub job_id: i64,
    /// The build a compose job records.
    pub build_id: Option<i64>,
    /// Raised when cancellation was asked, the lease was lost or the worker shuts down.
    pub cancellation: Cancellation,
    pub log: LogSink,
    pub phase: PhaseSink,
    /// The job's own directory; for a compose, the commit's tree is exported into it.
    pub work_directory: PathBuf,
    /// The worker's package cache (metadata, RPMs, the package and compose repositories).
    pub cache_directory: PathBuf,
    pub registry: RegistryOptions,
    /// Commit time and the time of every generated file: the git commit's committer time, so the same
    /// commit composes to the same ostree commit whenever and wherever it runs.
    pub source_date_epoch: Option<u64>,
}

/// What the worker's reporter receives from a running job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Line(NewLogLine),
    Phase(String),
}

/// The job's log: every line goes to the job's log in the database (batched by the worker) and to
/// tracing with the job's fields.
#[derive(Debug, Clone)]
pub struct LogSink {
    sender: mpsc::UnboundedSender<Report>,
    fields: LogFields,
}

/// The tracing fields of a job's lines.
#[derive(Debug, Clone, Default)]
pub struct LogFields {
    pub job_id: i64,
    pub build_id: Option<i64>,
    pub stream: Option<String>,
}

impl LogSink {
    /// A sink and the receiver the worker's reporter reads.
    pub fn channel(fields: LogFields) -> (LogSink, PhaseSink, mpsc::UnboundedReceiver<Report>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (LogSink { sender: sender.clone(), fields }, PhaseSink { sender }, receiver)
    }

    /// Appends one line (a line with newlines becomes several).
    pub fn line(&self, text: impl AsRef<str>) {
        let time = SystemClock.now();
        for line in text.as_ref().lines() {
            tracing::info!(
                job.id = self.fields.job_id,
                build.id = self.fields.build_id,
                stream = self.fields.stream.as_deref(),
                "{line}"
            );
            // The reporter is gone only once the job is over; a line after that has nowhere to go.
            let _ = self.sender.send(Report::Line(NewLogLine { time, line: line.to_string() }));
        }
    }
}

/// The job's current phase, for the dashboard.
#[derive(Debug, Clone)]
pub struct PhaseSink {
    sender: mpsc::UnboundedSender<Report>,
}

impl PhaseSink {
    pub fn set(&self, phase: &str) {
        let _ = self.sender.send(Report::Phase(phase.to_string()));
    }
}

/// Why a job body did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The whole error chain, one cause per line.
    #[error("{chain}")]
    Failed {
        chain: String,
        /// Trying again cannot help (a broken treefile), as opposed to an unreachable registry.
        permanent: bool,
    },
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    /// A failure described by `error` and its sources, one per line.
    pub fn failed(error: &(dyn std::error::Error + 'static), permanent: bool) -> JobError {
        JobError::Failed { chain: error_chain(error), permanent }
    }
}

/// `error` and each of its sources, one per line (a cause repeated by its wrapper is shown once).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut lines: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if lines.last().is_none_or(|last| !last.ends_with(&text)) {
            lines.push(text);
        }
        source = cause.source();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("pushing the image")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("uploading a layer: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn chains_list_one_cause_per_line_without_repeats() {
        let error = Outer(Middle(std::io::Error::other("connection refused")));
        assert_eq!(error_chain(&error), "pushing the image\nuploading a layer: connection refused");
    }

    #[tokio::test]
    async fn lines_and_phases_reach_the_reporter_in_order() {
        let (log, phase, mut receiver) = LogSink::channel(LogFields::default());
        log.line("one\ntwo");
        phase.set("resolving");
        let mut received = Vec::new();
        while let Ok(report) = receiver.try_recv() {
            received.push(match report {
                Report::Line(line) => line.line,
                Report::Phase(phase) => format!("phase {phase}"),
            });
        }
        assert_eq!(received, ["one", "two", "phase resolving"]);
    }
}
