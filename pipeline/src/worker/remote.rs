//! The job source of `arbor worker`: the worker protocol over HTTP with a worker token; the inputs come
//! as a tar stream, unpacked safely. A 409 is a lost lease.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::jobs::{Assignment, JobOutcome};
use crate::queue::{HeartbeatAnswer, Lease};
use crate::secret::Secret;
use crate::store::NewLogLine;

use super::archive::unpack_safely;
use super::protocol::{
    API_PREFIX, ClaimRequestBody, ClaimResponse, CompleteBody, ErrorBody, HeartbeatResponse, LeaseBody,
    LogLineBody, LogsBody, LogsResponse, MAXIMUM_CLAIM_WAIT, PhaseBody, RegisterRequest, RegisterResponse,
    StateResponse,
};
use super::source::{JobSource, Registration, SourceError, SourceFuture, WorkerIdentity};
use common::blocking::run_blocking;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request other than a claim may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A claim's server-side wait plus this for the answer to arrive.
const CLAIM_SLACK: Duration = Duration::from_secs(15);
/// The largest inputs archive accepted: a configuration repository is far smaller.
const MAXIMUM_INPUTS_BYTES: usize = 1 << 30;

/// Jobs from an arbor server over the worker protocol.
#[derive(Debug, Clone)]
pub struct RemoteJobSource {
    client: reqwest::Client,
    /// `http(s)://HOST[:PORT]`, without a trailing slash.
    server: String,
    token: Secret,
}

impl RemoteJobSource {
    pub fn new(server: &str, token: Secret) -> Result<Self, SourceError> {
        let client =
            reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build().map_err(|error| {
                SourceError::Protocol {
                    action: "setting up the HTTP client".into(),
                    detail: error.to_string(),
                }
            })?;
        Ok(RemoteJobSource { client, server: server.trim_end_matches('/').to_string(), token })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{API_PREFIX}{path}", self.server)
    }

    /// Sends a request and returns the answer when it succeeded; 409 is a lost lease of `job_id`.
    async fn send(
        &self,
        action: &str,
        request: reqwest::RequestBuilder,
        job_id: Option<i64>,
    ) -> Result<reqwest::Response, SourceError> {
        let response = request.bearer_auth(self.token.expose()).send().await.map_err(|error| {
            SourceError::Unreachable {
                action: action.to_string(),
                url: self.server.clone(),
                detail: error.to_string(),
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == reqwest::StatusCode::CONFLICT
            && let Some(job_id) = job_id
        {
            return Err(SourceError::LeaseLost { job_id });
        }
        let text = response.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => ("unknown".to_string(), text),
        };
        Err(SourceError::Refused { action: action.to_string(), status: status.as_u16(), code, message })
    }

    async fn post<T: DeserializeOwned>(
        &self,
        action: &str,
        path: &str,
        body: &impl Serialize,
        job_id: Option<i64>,
    ) -> Result<T, SourceError> {
        let request = json(self.client.post(self.url(path)).timeout(REQUEST_TIMEOUT), body)?;
        let response = self.send(action, request, job_id).await?;
        parse(action, response).await
    }
}

/// The request with `body` as its JSON body.
fn json(
    request: reqwest::RequestBuilder,
    body: &impl Serialize,
) -> Result<reqwest::RequestBuilder, SourceError> {
    let bytes = serde_json::to_vec(body).map_err(|error| SourceError::Protocol {
        action: "encoding a request".into(),
        detail: error.to_string(),
    })?;
    Ok(request.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes))
}

async fn parse<T: DeserializeOwned>(action: &str, response: reqwest::Response) -> Result<T, SourceError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|error| SourceError::Protocol { action: action.to_string(), detail: error.to_string() })?;
    serde_json::from_slice(&bytes)
        .map_err(|error| SourceError::Protocol { action: action.to_string(), detail: error.to_string() })
}

impl JobSource for RemoteJobSource {
    fn register<'a>(&'a self, identity: &'a WorkerIdentity) -> SourceFuture<'a, Registration> {
        Box::pin(async move {
            let body = RegisterRequest {
                name: identity.name.clone(),
                arches: identity.arches.clone(),
                version: identity.version.clone(),
            };
            let registered: RegisterResponse =
                self.post("registering the worker", "/workers", &body, None).await?;
            Ok(Registration {
                worker_id: registered.id,
                lease_duration: Duration::from_millis(registered.lease_duration_ms),
                heartbeat_interval: Duration::from_millis(registered.heartbeat_interval_ms),
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
            let wait = wait.min(MAXIMUM_CLAIM_WAIT);
            let body = ClaimRequestBody {
                worker_id: worker_id.to_string(),
                arches: arches.to_vec(),
                kinds: kinds.to_vec(),
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            };
            let action = "claiming a job";
            let request = json(self.client.post(self.url("/jobs/claim")).timeout(wait + CLAIM_SLACK), &body)?;
            let response = self.send(action, request, None).await?;
            if response.status() == reqwest::StatusCode::NO_CONTENT {
                return Ok(None);
            }
            let claimed: ClaimResponse = parse(action, response).await?;
            Ok(Some(Assignment {
                lease: Lease { job_id: claimed.job.id, token: claimed.lease_token },
                lease_expires_at: claimed.lease_expires_at,
                job: claimed.job,
            }))
        })
    }

    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> SourceFuture<'a, HeartbeatAnswer> {
        Box::pin(async move {
            let body = LeaseBody { lease_token: lease.token.clone() };
            let path = format!("/jobs/{}/heartbeat", lease.job_id);
            let answer: HeartbeatResponse =
                self.post("sending a heartbeat", &path, &body, Some(lease.job_id)).await?;
            Ok(HeartbeatAnswer {
                cancel_requested: answer.cancel_requested,
                lease_expires: answer.lease_expires_at,
            })
        })
    }

    fn append_logs<'a>(&'a self, lease: &'a Lease, lines: &'a [NewLogLine]) -> SourceFuture<'a, i64> {
        Box::pin(async move {
            let body = LogsBody {
                lease_token: lease.token.clone(),
                lines: lines
                    .iter()
                    .map(|line| LogLineBody { time: line.time, line: line.line.clone() })
                    .collect(),
            };
            let path = format!("/jobs/{}/logs", lease.job_id);
            let answer: LogsResponse =
                self.post("appending log lines", &path, &body, Some(lease.job_id)).await?;
            Ok(answer.next_seq - 1)
        })
    }

    fn set_phase<'a>(&'a self, lease: &'a Lease, phase: &'a str) -> SourceFuture<'a, ()> {
        Box::pin(async move {
            let body = PhaseBody { lease_token: lease.token.clone(), phase: phase.to_string() };
            let path = format!("/jobs/{}/phase", lease.job_id);
            let request = json(self.client.post(self.url(&path)).timeout(REQUEST_TIMEOUT), &body)?;
            self.send("recording the phase", request, Some(lease.job_id)).await.map(drop)
        })
    }

    fn prepare_inputs<'a>(&'a self, assignment: &'a Assignment, directory: &'a Path) -> SourceFuture<'a, ()> {
        Box::pin(async move {
            let action = "fetching the job's inputs";
            let lease = &assignment.lease;
            let url = self.url(&format!("/jobs/{}/inputs?lease_token={}", lease.job_id, lease.token));
            let request = self.client.get(url).timeout(REQUEST_TIMEOUT);
            let response = self.send(action, request, Some(lease.job_id)).await?;
            let mut body = response.bytes_stream();
            let mut archive = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|error| SourceError::Protocol {
                    action: action.to_string(),
                    detail: error.to_string(),
                })?;
                if archive.len() + chunk.len() > MAXIMUM_INPUTS_BYTES {
                    let detail = format!("the inputs archive is larger than {MAXIMUM_INPUTS_BYTES} bytes");
                    return Err(SourceError::Protocol { action: action.to_string(), detail });
                }
                archive.extend_from_slice(&chunk);
            }
            let destination = directory.to_path_buf();
            run_blocking("unpacking the job's inputs", move |_| {
                unpack_safely(archive.as_slice(), &destination)
            })
            .await
            .map_err(|error| SourceError::Protocol {
                action: action.to_string(),
                detail: error.to_string(),
            })??;
            Ok(())
        })
    }

    fn complete<'a>(&'a self, lease: &'a Lease, outcome: JobOutcome) -> SourceFuture<'a, String> {
        Box::pin(async move {
            let body = CompleteBody { lease_token: lease.token.clone(), outcome };
            let path = format!("/jobs/{}/complete", lease.job_id);
            let answer: StateResponse =
                self.post("completing the job", &path, &body, Some(lease.job_id)).await?;
            Ok(answer.state)
        })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> SourceFuture<'a, ()> {
        Box::pin(async move {
            let body = LeaseBody { lease_token: lease.token.clone() };
            let path = format!("/jobs/{}/release", lease.job_id);
            let _: StateResponse =
                self.post("handing the job back", &path, &body, Some(lease.job_id)).await?;
            Ok(())
        })
    }
}
