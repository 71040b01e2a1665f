//! Builds: a stream's builds page by page (served from [`crate::cache`]), one build, composing a
//! stream's branch head or a given commit, and retrying a failed or cancelled build.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use pipeline::api::{
    Build, BuildList, BuildRequest, BuildSummary, BuildsRequested, ErrorResponse, RequestedBuild,
};
use pipeline::config::StreamSettings;
use pipeline::git::{CommitId, GitError};
use pipeline::jobs::{ComposeRequest, RequestError, request_compose, request_composes};
use pipeline::store::{BuildFilter, BuildStatus, CreatedBuild};
use serde::Deserialize;

use super::{configured_stream, page_size};
use crate::auth::{Caller, Read, Require, Write};
use crate::cache::BuildListKey;
use crate::error::ApiError;
use crate::extract::{OptionalJson, Path, Query};
use crate::state::AppState;

/// The filters and page of `GET /api/v1/streams/{name}/builds`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuildListQuery {
    /// Only builds in this status.
    pub(crate) status: Option<BuildStatus>,
    /// Only builds of this arch.
    pub(crate) arch: Option<String>,
    /// The `next_cursor` of the previous page; none: the newest builds.
    pub(crate) cursor: Option<String>,
    /// Builds per page, 1 to 500 (default 50).
    pub(crate) limit: Option<u32>,
}

/// A stream's builds, newest first.
///
/// Cursor pagination: pass the answer's `next_cursor` as `cursor` for the next page; pages stay stable while
/// new builds arrive. Needs the `read` scope (or none with `public-read`).
#[utoipa::path(
    get,
    path = "/streams/{name}/builds",
    tag = "builds",
    operation_id = "list_stream_builds",
    params(("name" = String, Path, description = "The stream's name"), BuildListQuery),
    responses(
        (status = 200, description = "One page of builds", body = BuildList),
        (status = 400, description = "A malformed filter, cursor or limit", body = ErrorResponse),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the read scope", body = ErrorResponse),
        (status = 404, description = "No such stream is configured", body = ErrorResponse),
    ),
)]
pub(crate) async fn list_stream_builds(
    _caller: Require<Read>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<BuildListQuery>,
) -> Result<Response, ApiError> {
    let body = build_list_json(&state, name, query).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// One page of a stream's builds as the JSON `GET /api/v1/streams/{name}/builds` answers, from the
/// build-list cache when it can (the dashboard's stream page reads the same page).
pub(crate) async fn build_list_json(
    state: &AppState,
    name: String,
    query: BuildListQuery,
) -> Result<Bytes, ApiError> {
    configured_stream(&state.config, &name)?;
    let limit = page_size(query.limit)?;
    let key =
        BuildListKey { stream: name, arch: query.arch, status: query.status, cursor: query.cursor, limit };
    // Read before the query: a write racing with it makes the page stale at once (see crate::cache).
    let generation = state.store.builds_generation();
    if let Some(body) = state.build_lists.get(&key, generation) {
        return Ok(body);
    }
    if let Some(body) = state.build_lists.aged(&key, generation) {
        // Only old (another process may have written since): one request reads it again, the others
        // keep getting it meanwhile.
        return match state.build_lists.try_refilling(&key) {
            None => Ok(body),
            Some(_refilling) => read_build_list(state, key, generation).await,
        };
    }
    // One refill of a page at a time: the others wait for it rather than all querying at once.
    let _refilling = state.build_lists.refilling(&key).await;
    let generation = state.store.builds_generation();
    match state.build_lists.get(&key, generation) {
        Some(body) => Ok(body),
        None => read_build_list(state, key, generation).await,
    }
}

/// Reads a page of builds and keeps it in the cache as of `generation`.
async fn read_build_list(state: &AppState, key: BuildListKey, generation: u64) -> Result<Bytes, ApiError> {
    let filter = BuildFilter {
        stream: Some(key.stream.clone()),
        arch: key.arch.clone(),
        status: key.status,
        git_commit: None,
    };
    let page = state.store.list_builds(&filter, key.cursor.as_deref(), key.limit).await?;
    let list = BuildList {
        items: page.items.iter().map(BuildSummary::from).collect(),
        next_cursor: page.next_cursor,
    };
    let body = Bytes::from(
        serde_json::to_vec(&list).map_err(|error| ApiError::internal("writing a build list", &error))?,
    );
    state.build_lists.insert(key, generation, body.clone());
    Ok(body)
}

/// One build with everything recorded about it.
///
/// Needs the `read` scope (or none with `public-read`).
#[utoipa::path(
    get,
    path = "/builds/{id}",
    tag = "builds",
    operation_id = "get_build",
    params(("id" = i64, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build", body = Build),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the read scope", body = ErrorResponse),
        (status = 404, description = "No such build", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_build(
    _caller: Require<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Build>, ApiError> {
    build(&state, id).await.map(Json)
}

/// One build, as `GET /api/v1/builds/{id}` answers.
pub(crate) async fn build(state: &AppState, id: i64) -> Result<Build, ApiError> {
    let build = state.store.get_build(id).await?.ok_or_else(|| unknown_build(id))?;
    Ok(Build::from(&build))
}

/// Composes a stream's branch head, or a given commit, for every arch or one.
///
/// A compose of the same stream and arch that is still queued takes this commit instead (`coalesced`).
/// The body may be empty: the branch head, every arch. Needs the `write` scope.
#[utoipa::path(
    post,
    path = "/streams/{name}/builds",
    tag = "builds",
    operation_id = "request_builds",
    params(("name" = String, Path, description = "The stream's name")),
    request_body(content = BuildRequest, description = "What to compose (optional)"),
    responses(
        (status = 202, description = "The builds are queued", body = BuildsRequested),
        (status = 400, description = "The body is not valid JSON of this shape", body = ErrorResponse),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the write scope", body = ErrorResponse),
        (status = 404, description = "No such stream is configured", body = ErrorResponse),
        (status = 409, description = "The mirror has not fetched the stream's branch yet", body = ErrorResponse),
        (status = 413, description = "The body is too large", body = ErrorResponse),
        (status = 422, description = "The commit is not in the mirror, or the arch is not the stream's", body = ErrorResponse),
    ),
)]
pub(crate) async fn request_builds(
    caller: Require<Write>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    OptionalJson(request): OptionalJson<BuildRequest>,
) -> Result<(StatusCode, Json<BuildsRequested>), ApiError> {
    let answer = compose(&state, &name, &request, caller.caller()).await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Queues the composes `request` asks for (the API's and the dashboard's "compose now").
pub(crate) async fn compose(
    state: &AppState,
    name: &str,
    request: &BuildRequest,
    caller: &Caller,
) -> Result<BuildsRequested, ApiError> {
    let stream = configured_stream(&state.config, name)?;
    if let Some(arch) = &request.arch {
        check_arch(stream, arch)?;
    }
    let commit = match &request.commit {
        None => state
            .mirror
            .head(&stream.branch)
            .await
            .map_err(|error| git_failure("reading the branch head", &error))?
            .ok_or_else(|| {
                ApiError::conflict(
                    "branch_not_fetched",
                    format!(
                        "the mirror has no branch {:?} yet: the scheduler fetches the remote every {:?} and on \
                         webhooks; push the branch, or give a commit",
                        stream.branch, state.config.git.poll_interval
                    ),
                )
            })?,
        Some(text) => CommitId::parse(text)
            .map_err(|error| ApiError::unprocessable("invalid_commit", error.to_string()))?,
    };
    let info = state.mirror.commit_info(&commit).await.map_err(|error| match error {
        GitError::UnknownCommit { .. } => ApiError::unprocessable(
            "unknown_commit",
            format!("{error}; composes are of commits the server's mirror has"),
        ),
        other => git_failure("reading the commit", &other),
    })?;
    let compose = ComposeRequest {
        stream,
        commit: commit.as_str(),
        subject: Some(info.subject.clone()),
        force: request.force,
    };
    let created: Vec<(String, CreatedBuild)> = match &request.arch {
        Some(arch) => {
            vec![(arch.clone(), request_compose(&state.store, &compose, arch).await.map_err(request_failed)?)]
        }
        None => {
            let created = request_composes(&state.store, &compose).await.map_err(request_failed)?;
            stream.arches.iter().cloned().zip(created).collect()
        }
    };
    let answer = requested(state, stream, commit.as_str(), Some(info.subject), created).await?;
    for build in &answer.builds {
        tracing::info!(
            stream = %stream.name,
            build.id = build.build.id,
            job.id = build.job_id,
            commit = %commit,
            outcome = ?build.outcome,
            caller = caller.name(),
            "compose requested"
        );
    }
    Ok(answer)
}

/// Builds a failed or cancelled build's commit and arch again, as a new build.
///
/// The failed build stays as it was. Needs the `write` scope.
#[utoipa::path(
    post,
    path = "/builds/{id}/retry",
    tag = "builds",
    operation_id = "retry_build",
    params(("id" = i64, Path, description = "The build's id")),
    responses(
        (status = 202, description = "The new build is queued", body = BuildsRequested),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the write scope", body = ErrorResponse),
        (status = 404, description = "No such build", body = ErrorResponse),
        (status = 409, description = "The build did not fail, its stream or arch is no longer configured, or another commit's compose is queued", body = ErrorResponse),
    ),
)]
pub(crate) async fn retry_build(
    caller: Require<Write>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<BuildsRequested>), ApiError> {
    let answer = retry(&state, id, caller.caller()).await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Queues a failed or cancelled build again (the API's and the dashboard's "retry").
pub(crate) async fn retry(state: &AppState, id: i64, caller: &Caller) -> Result<BuildsRequested, ApiError> {
    let build = state.store.get_build(id).await?.ok_or_else(|| unknown_build(id))?.summary;
    if !matches!(build.status, BuildStatus::Failed | BuildStatus::Cancelled) {
        return Err(ApiError::conflict(
            "not_retryable",
            format!(
                "build {id} is {}: only failed or cancelled builds are retried; to compose its commit again, POST \
                 /api/v1/streams/{}/builds with {{\"commit\": \"{}\", \"arch\": \"{}\", \"force\": true}}",
                build.status, build.stream, build.git_commit, build.arch
            ),
        ));
    }
    let stream = state.config.stream(&build.stream).ok_or_else(|| {
        ApiError::conflict(
            "stream_not_configured",
            format!("build {id}'s stream {:?} is no longer configured", build.stream),
        )
    })?;
    if !stream.arches.contains(&build.arch) {
        return Err(ApiError::conflict(
            "arch_not_configured",
            format!(
                "stream {} no longer builds {} (it builds {})",
                stream.name,
                build.arch,
                stream.arches.join(", ")
            ),
        ));
    }
    // A queued compose of this stream and arch would take the retried commit instead of its own.
    let queued = BuildFilter {
        stream: Some(build.stream.clone()),
        arch: Some(build.arch.clone()),
        status: Some(BuildStatus::Queued),
        git_commit: None,
    };
    if let Some(other) = state.store.list_builds(&queued, None, 1).await?.items.first()
        && other.git_commit != build.git_commit
    {
        return Err(ApiError::conflict(
            "compose_queued",
            format!(
                "build {} of {} ({}) is queued for commit {}; retry after it started, or cancel its job first \
                 (POST /api/v1/jobs/{}/cancel)",
                other.id,
                build.stream,
                build.arch,
                other.git_commit,
                other.job_id.unwrap_or_default()
            ),
        ));
    }
    let compose = ComposeRequest {
        stream,
        commit: &build.git_commit,
        subject: build.git_subject.clone(),
        force: false,
    };
    let created = request_compose(&state.store, &compose, &build.arch).await.map_err(request_failed)?;
    let answer = requested(
        state,
        stream,
        &build.git_commit,
        build.git_subject.clone(),
        vec![(build.arch.clone(), created)],
    )
    .await?;
    tracing::info!(
        stream = %build.stream,
        build.id = created.build_id,
        job.id = created.job_id,
        retried = id,
        caller = caller.name(),
        "retry requested"
    );
    Ok(answer)
}

/// The answer to a compose request: each build as it is now.
async fn requested(
    state: &AppState,
    stream: &StreamSettings,
    commit: &str,
    subject: Option<String>,
    created: Vec<(String, CreatedBuild)>,
) -> Result<BuildsRequested, ApiError> {
    let mut builds = Vec::with_capacity(created.len());
    for (arch, created) in created {
        let build =
            state.store.get_build(created.build_id).await?.ok_or_else(|| unknown_build(created.build_id))?;
        builds.push(RequestedBuild {
            arch,
            build: BuildSummary::from(&build.summary),
            job_id: created.job_id,
            outcome: created.outcome.into(),
        });
    }
    Ok(BuildsRequested { stream: stream.name.clone(), commit: commit.to_string(), subject, builds })
}

fn check_arch(stream: &StreamSettings, arch: &str) -> Result<(), ApiError> {
    if stream.arches.iter().any(|known| known == arch) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "unknown_arch",
            format!(
                "stream {} does not build {arch:?} (it builds {})",
                stream.name,
                stream.arches.join(", ")
            ),
        ))
    }
}

fn request_failed(error: RequestError) -> ApiError {
    match error {
        RequestError::UnknownArch { .. } => ApiError::unprocessable("unknown_arch", error.to_string()),
        RequestError::Store(error) => error.into(),
        RequestError::Payload(error) => ApiError::internal("encoding the compose payload", &error),
    }
}

fn git_failure(action: &str, error: &GitError) -> ApiError {
    ApiError::internal(&format!("{action} in the git mirror"), error)
}

pub(crate) fn unknown_build(id: i64) -> ApiError {
    ApiError::not_found(format!("no build {id}"))
}
