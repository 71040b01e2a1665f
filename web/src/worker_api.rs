//! The worker protocol's server side (`/api/v1/worker`, see `pipeline::worker::protocol`): remote
//! workers register, long-poll for jobs of their arches, heartbeat, stream log lines, fetch their inputs
//! as a tar of the commit's tree, and report the outcome, with a bearer token of scope `worker` and the
//! job's lease token. Workers never touch the database: every answer comes from the queue and the mirror
//! here, and completions are recorded here (`pipeline::jobs::complete_job`).

use std::io::Write;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::blocking::run_blocking;
use pipeline::config::KNOWN_ARCHES;
use pipeline::git::CommitId;
use pipeline::jobs::{COMPOSE_KIND, ComposePayload, RecordError, complete_job};
use pipeline::queue::{ClaimRequest, Lease};
use pipeline::store::{NewLogLine, NewWorker, StoreError, WorkerKind};
use pipeline::worker::archive::pack_directory;
use pipeline::worker::protocol::{
    API_PREFIX, ClaimRequestBody, ClaimResponse, CompleteBody, HeartbeatResponse, LeaseBody, LogsBody,
    LogsResponse, MAXIMUM_CLAIM_WAIT, PhaseBody, RegisterRequest, RegisterResponse, StateResponse,
};
use pipeline::worker::{SourceError, claim_next, completed_state, heartbeat_interval};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::auth::{Caller, Require, Worker};
use crate::error::ApiError;
use crate::extract::{Json as JsonBody, Path, Query};
use crate::state::AppState;

/// Chunks of an inputs archive in flight between the packing thread and the response.
const ARCHIVE_CHUNKS_IN_FLIGHT: usize = 16;
/// Bytes the packing thread buffers before it hands a chunk over.
const ARCHIVE_CHUNK_BYTES: usize = 64 * 1024;

/// The worker API's routes, with their full paths.
pub fn routes() -> Router<AppState> {
    let path = |suffix: &str| format!("{API_PREFIX}{suffix}");
    Router::new()
        .route(&path("/workers"), post(register))
        .route(&path("/jobs/claim"), post(claim))
        .route(&path("/jobs/{id}/heartbeat"), post(heartbeat))
        .route(&path("/jobs/{id}/logs"), post(append_logs))
        .route(&path("/jobs/{id}/phase"), post(set_phase))
        .route(&path("/jobs/{id}/inputs"), get(inputs))
        .route(&path("/jobs/{id}/complete"), post(complete))
        .route(&path("/jobs/{id}/release"), post(release))
}

impl From<RecordError> for ApiError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Store(error) => error.into(),
            RecordError::Result { .. } => ApiError::unprocessable("invalid_result", error.to_string()),
            error => ApiError::internal("recording the job's result", &error),
        }
    }
}

impl From<SourceError> for ApiError {
    fn from(error: SourceError) -> Self {
        match error {
            SourceError::LeaseLost { job_id } => lease_lost(job_id),
            error => ApiError::internal("handing out a job", &error),
        }
    }
}

/// 409: the job's lease expired or passed to another worker.
fn lease_lost(job_id: i64) -> ApiError {
    StoreError::LeaseLost { job_id }.into()
}

/// The caller's token (the worker API admits tokens of scope `worker` only).
fn token_id(caller: &Caller) -> Option<i64> {
    match caller {
        Caller::Authenticated(authenticated) => Some(authenticated.token_id),
        Caller::Anonymous => None,
    }
}

async fn register(
    State(state): State<AppState>,
    worker: Require<Worker>,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> Result<Response, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_request", message);
    if body.arches.is_empty() {
        return Err(invalid("a worker builds at least one arch".to_string()));
    }
    if let Some(unknown) = body.arches.iter().find(|arch| !KNOWN_ARCHES.contains(&arch.as_str())) {
        return Err(invalid(format!("unknown arch {unknown:?} (known: {})", KNOWN_ARCHES.join(", "))));
    }
    let worker = state
        .store
        .register_worker(&NewWorker {
            name: body.name,
            arches: body.arches,
            kind: WorkerKind::Remote,
            version: body.version,
            token_id: token_id(worker.caller()),
        })
        .await?;
    let lease_duration = state.queue.options().lease_duration;
    let answer = RegisterResponse {
        id: worker.id,
        lease_duration_ms: millis(lease_duration),
        heartbeat_interval_ms: millis(heartbeat_interval(lease_duration)),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn claim(
    State(state): State<AppState>,
    _worker: Require<Worker>,
    JsonBody(body): JsonBody<ClaimRequestBody>,
) -> Result<Response, ApiError> {
    if !state.store.touch_worker(&body.worker_id).await? {
        let message = format!("no worker {} is registered; register first", body.worker_id);
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_worker", message));
    }
    let wait = Duration::from_millis(body.wait_ms).min(MAXIMUM_CLAIM_WAIT);
    let request = ClaimRequest { worker_id: &body.worker_id, arches: &body.arches, kinds: &body.kinds };
    match claim_next(&state.queue, &state.mirror, request, wait).await? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(assignment) => {
            let answer = ClaimResponse {
                job: assignment.job,
                lease_token: assignment.lease.token,
                lease_expires_at: assignment.lease_expires_at,
            };
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        }
    }
}

async fn heartbeat(
    State(state): State<AppState>,
    _worker: Require<Worker>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let answer = state.queue.heartbeat(&Lease { job_id: id, token: body.lease_token }).await?;
    Ok(Json(HeartbeatResponse {
        cancel_requested: answer.cancel_requested,
        lease_expires_at: answer.lease_expires,
    }))
}

async fn append_logs(
    State(state): State<AppState>,
    _worker: Require<Worker>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<LogsBody>,
) -> Result<Json<LogsResponse>, ApiError> {
    let lines: Vec<NewLogLine> =
        body.lines.into_iter().map(|line| NewLogLine { time: line.time, line: line.line }).collect();
    let last = state.queue.append_logs(&Lease { job_id: id, token: body.lease_token }, &lines).await?;
    state.log_events.appended(id);
    Ok(Json(LogsResponse { next_seq: last + 1 }))
}

async fn set_phase(
    State(state): State<AppState>,
    _worker: Require<Worker>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<PhaseBody>,
) -> Result<StatusCode, ApiError> {
    state.queue.set_phase(&Lease { job_id: id, token: body.lease_token }, &body.phase).await?;
    Ok(StatusCode::OK)
}

async fn complete(
    State(state): State<AppState>,
    _worker: Require<Worker>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<CompleteBody>,
) -> Result<Json<StateResponse>, ApiError> {
    let lease = Lease { job_id: id, token: body.lease_token };
    let completed = complete_job(&state.queue, &state.config.streams, &lease, body.outcome).await?;
    state.log_events.appended(id);
    Ok(Json(StateResponse { state: completed_state(completed) }))
}

async fn release(
    State(state): State<AppState>,
    _worker: Require<Worker>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<Json<StateResponse>, ApiError> {
    let job_state = state.queue.release(&Lease { job_id: id, token: body.lease_token }).await?;
    state.log_events.appended(id);
    Ok(Json(StateResponse { state: job_state.as_str().to_string() }))
}

#[derive(Debug, Deserialize)]
struct InputsQuery {
    lease_token: String,
}

/// The job's inputs as `application/x-tar`: the compose commit's tree exported from the mirror (an empty
/// archive for other jobs), packed on a blocking thread while it streams.
async fn inputs(
    State(state): State<AppState>,
    _worker: Require<Worker>,
    Path(id): Path<i64>,
    Query(query): Query<InputsQuery>,
) -> Result<Response, ApiError> {
    // Proves the lease (and extends it: exporting a large tree takes a while).
    state.queue.heartbeat(&Lease { job_id: id, token: query.lease_token }).await?;
    let job = state.store.get_job(id).await?.ok_or_else(|| lease_lost(id))?;
    let staging = tempfile::Builder::new()
        .prefix("arbor-inputs-")
        .tempdir_in(state.config.server.state_dir.join("work"))
        .or_else(|_| tempfile::tempdir())
        .map_err(|error| ApiError::internal("making a directory for the job's inputs", &error))?;
    let tree = staging.path().join("tree");
    if job.kind == COMPOSE_KIND {
        let payload: ComposePayload = serde_json::from_str(&job.payload)
            .map_err(|error| ApiError::internal("reading the job", &error))?;
        let commit = CommitId::parse(&payload.commit)
            .map_err(|error| ApiError::internal("reading the job", &error))?;
        let exported = state.mirror.export(&commit, &tree).await;
        exported.map_err(|error| ApiError::internal("exporting the commit from the git mirror", &error))?;
    } else {
        std::fs::create_dir_all(&tree)
            .map_err(|error| ApiError::internal("making a directory for the job's inputs", &error))?;
    }
    let (sender, mut receiver) = mpsc::channel::<Bytes>(ARCHIVE_CHUNKS_IN_FLIGHT);
    tokio::spawn(run_blocking("packing the job's inputs", move |_| {
        // The staging directory lives until the archive is written.
        let _staging = staging;
        let writer = std::io::BufWriter::with_capacity(ARCHIVE_CHUNK_BYTES, ChannelWriter(sender));
        if let Err(error) = pack_directory(&tree, writer) {
            // The response ends early; the worker sees a truncated archive and fails the attempt.
            tracing::warn!(job.id = id, %error, "packing the job's inputs failed");
        }
    }));
    let stream = futures_util::stream::poll_fn(move |context| {
        receiver.poll_recv(context).map(|chunk| chunk.map(Ok::<Bytes, std::io::Error>))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(response)
}

/// Hands written bytes to the response stream; fails once the client went away.
struct ChannelWriter(mpsc::Sender<Bytes>);

impl Write for ChannelWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buffer))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the worker went away"))?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
