//! The worker protocol's messages (HTTP under [`API_PREFIX`], JSON bodies, a bearer token with scope
//! `worker`), shared by the server's handlers and [`super::RemoteJobSource`]. Modelled on
//! osbuild-composer's worker API: workers register, long-poll for a job of their arches, heartbeat,
//! stream their log lines, and report the outcome, and never hold database credentials.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{AssignedJob, JobOutcome};

/// Where the worker API lives.
pub const API_PREFIX: &str = "/api/v1/worker";
/// The longest a claim waits for work before answering 204: long enough that idle workers cost
/// little, short enough for proxies and load balancers that close idle requests after a minute.
pub const MAXIMUM_CLAIM_WAIT: Duration = Duration::from_secs(30);
/// The error code of a report whose lease expired or passed to another worker (HTTP 409).
pub const LEASE_LOST: &str = "lease_lost";

/// `POST /workers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub name: String,
    pub arches: Vec<String>,
    pub version: String,
}

/// The answer to [`RegisterRequest`] (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub id: String,
    pub lease_duration_ms: u64,
    pub heartbeat_interval_ms: u64,
}

/// `POST /jobs/claim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequestBody {
    pub worker_id: String,
    pub arches: Vec<String>,
    pub kinds: Vec<String>,
    /// How long the server may wait for a job (at most [`MAXIMUM_CLAIM_WAIT`]).
    #[serde(default)]
    pub wait_ms: u64,
}

/// The answer to a claim that got a job (201; 204 without a body when none came).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResponse {
    pub job: AssignedJob,
    pub lease_token: String,
    pub lease_expires_at: i64,
}

/// `POST /jobs/{id}/heartbeat` and `POST /jobs/{id}/release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBody {
    pub lease_token: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub cancel_requested: bool,
    pub lease_expires_at: i64,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineBody {
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    pub line: String,
}

/// `POST /jobs/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsBody {
    pub lease_token: String,
    pub lines: Vec<LogLineBody>,
}

/// The answer to [`LogsBody`]: the sequence number the next line gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsResponse {
    pub next_seq: i64,
}

/// `POST /jobs/{id}/phase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseBody {
    pub lease_token: String,
    pub phase: String,
}

/// `POST /jobs/{id}/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteBody {
    pub lease_token: String,
    pub outcome: JobOutcome,
}

/// The job's state after a completion or a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResponse {
    pub state: String,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_tagged_as_the_protocol_says() {
        let cases = [
            (
                JobOutcome::Succeeded { result: serde_json::json!({"x": 1}) },
                r#"{"succeeded":{"result":{"x":1}}}"#,
            ),
            (
                JobOutcome::Failed { error: "a\nb".into(), permanent: true },
                r#"{"failed":{"error":"a\nb","permanent":true}}"#,
            ),
            (JobOutcome::Cancelled {}, r#"{"cancelled":{}}"#),
        ];
        for (outcome, text) in cases {
            assert_eq!(serde_json::to_string(&outcome).unwrap(), text);
            assert_eq!(serde_json::from_str::<JobOutcome>(text).unwrap(), outcome);
        }
    }
}
