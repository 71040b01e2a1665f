//! `GET /api/v1/streams` and `GET /api/v1/streams/{name}`: each configured stream with its configuration,
//! the head the scheduler last saw, its git problem and last event, and per arch the newest build and
//! the last good one.

use axum::Json;
use axum::extract::State;
use futures_util::future::try_join_all;
use pipeline::api::{
    ArchBuilds, BuildSummary, ErrorResponse, GitProblem, Stream, StreamEvent, StreamHead, StreamList,
    Timestamp,
};
use pipeline::config::StreamSettings;
use pipeline::store;

use super::configured_stream;
use crate::auth::{Read, Require};
use crate::cache::StreamBuilds;
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

/// The configured streams.
///
/// In the configuration's order. Needs the `read` scope (or none with `public-read`).
#[utoipa::path(
    get,
    path = "/streams",
    tag = "streams",
    operation_id = "list_streams",
    responses(
        (status = 200, description = "Every configured stream", body = StreamList),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the read scope", body = ErrorResponse),
    ),
)]
pub(crate) async fn list_streams(
    _caller: Require<Read>,
    State(state): State<AppState>,
) -> Result<Json<StreamList>, ApiError> {
    stream_list(&state).await.map(Json)
}

/// Every configured stream, as `GET /api/v1/streams` answers (the dashboard's home page reads it too).
pub(crate) async fn stream_list(state: &AppState) -> Result<StreamList, ApiError> {
    let (rows, builds) = tokio::try_join!(
        async { state.store.list_streams().await.map_err(ApiError::from) },
        stream_builds(state)
    )?;
    let items = state
        .config
        .streams
        .iter()
        .zip(builds)
        .map(|(settings, builds)| {
            let row = rows.iter().find(|row| row.name == settings.name);
            stream_view(settings, row, builds)
        })
        .collect();
    Ok(StreamList { items, next_cursor: None })
}

/// One stream.
///
/// Needs the `read` scope (or none with `public-read`).
#[utoipa::path(
    get,
    path = "/streams/{name}",
    tag = "streams",
    operation_id = "get_stream",
    params(("name" = String, Path, description = "The stream's name")),
    responses(
        (status = 200, description = "The stream", body = Stream),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the read scope", body = ErrorResponse),
        (status = 404, description = "No such stream is configured", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_stream(
    _caller: Require<Read>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Stream>, ApiError> {
    stream(&state, &name).await.map(Json)
}

/// One configured stream, as `GET /api/v1/streams/{name}` answers.
pub(crate) async fn stream(state: &AppState, name: &str) -> Result<Stream, ApiError> {
    let settings = configured_stream(&state.config, name)?;
    let position = state.config.streams.iter().position(|stream| stream.name == name).unwrap_or_default();
    let (row, builds) = tokio::try_join!(
        async { state.store.get_stream(name).await.map_err(ApiError::from) },
        stream_builds(state)
    )?;
    let builds = builds.into_iter().nth(position).unwrap_or_default();
    Ok(stream_view(settings, row.as_ref(), builds))
}

/// Per configured stream and arch, the newest build and the last good one's id: from the cache while no
/// build was written since (see [`crate::cache`]), else two queries per stream and arch.
async fn stream_builds(state: &AppState) -> Result<StreamBuilds, ApiError> {
    // Read before the queries: a build written meanwhile makes what they read stale at once.
    let generation = state.store.builds_generation();
    if let Some(builds) = state.stream_builds.get(generation) {
        return Ok(builds);
    }
    if let Some(builds) = state.stream_builds.aged(generation) {
        // Only old (another process may have written since): one request reads them again, the others
        // keep getting them meanwhile.
        let Some(_refilling) = state.stream_builds.try_refilling() else {
            return Ok(builds);
        };
        return read_stream_builds(state, generation).await;
    }
    // One refill at a time: the others wait for it rather than all querying at once.
    let _refilling = state.stream_builds.refilling().await;
    let generation = state.store.builds_generation();
    if let Some(builds) = state.stream_builds.get(generation) {
        return Ok(builds);
    }
    read_stream_builds(state, generation).await
}

/// Reads every stream's builds and keeps them in the cache as of `generation`.
async fn read_stream_builds(state: &AppState, generation: u64) -> Result<StreamBuilds, ApiError> {
    let builds =
        try_join_all(state.config.streams.iter().map(|settings| arch_builds(state, settings))).await?;
    state.stream_builds.insert(generation, builds.clone());
    Ok(builds)
}

async fn arch_builds(state: &AppState, settings: &StreamSettings) -> Result<Vec<ArchBuilds>, ApiError> {
    try_join_all(settings.arches.iter().map(|arch| async move {
        let (latest, last_good_build_id) = tokio::try_join!(
            state.store.latest_build(&settings.name, arch),
            state.store.last_good_build_id(&settings.name, arch)
        )?;
        Ok::<_, ApiError>(ArchBuilds {
            arch: arch.clone(),
            latest: latest.as_ref().map(BuildSummary::from),
            last_good_build_id,
        })
    }))
    .await
}

/// The stream as the API shows it; `row` is `None` until the scheduler first saved the stream.
fn stream_view(settings: &StreamSettings, row: Option<&store::Stream>, builds: Vec<ArchBuilds>) -> Stream {
    Stream {
        name: settings.name.clone(),
        branch: settings.branch.clone(),
        treefile: settings.treefile.clone(),
        arches: settings.arches.clone(),
        image: settings.image.clone(),
        priority: settings.priority,
        head: row.and_then(|row| {
            Some(StreamHead {
                commit: row.head_commit.clone()?,
                subject: row.head_subject.clone(),
                seen_at: Timestamp::from_optional(row.head_seen_at),
            })
        }),
        git_error: row.and_then(|row| {
            Some(GitProblem {
                message: row.git_error.clone()?,
                since: Timestamp::from_optional(row.git_error_since),
                failures: row.git_failures,
                next_attempt_at: Timestamp::from_optional(row.git_next_attempt_at),
            })
        }),
        last_event: row.and_then(|row| {
            Some(StreamEvent {
                message: row.last_event.clone()?,
                at: Timestamp::from_optional(row.last_event_at),
            })
        }),
        builds,
    }
}
