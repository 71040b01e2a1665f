//! The JSON API under `/api/v1`: one module per resource, each handler annotated for the OpenAPI
//! document. Bodies are [`pipeline::api`]'s types.

pub(crate) mod builds;
pub(crate) mod jobs;
pub(crate) mod logs;
pub(crate) mod streams;
pub(crate) mod tokens;
pub(crate) mod workers;

use pipeline::config::{Config, StreamSettings};
use pipeline::store::MAXIMUM_PAGE_SIZE;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// Items per page when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// The routes answered within the request timeout.
pub(crate) fn timed_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(streams::list_streams))
        .routes(routes!(streams::get_stream))
        .routes(routes!(builds::list_stream_builds, builds::request_builds))
        .routes(routes!(builds::get_build))
        .routes(routes!(builds::retry_build))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(workers::list_workers))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
}

/// The routes without a deadline: a live log lasts as long as its job.
pub(crate) fn untimed_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(logs::job_log))
}

/// The page size asked for, checked.
pub(crate) fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) if (1..=MAXIMUM_PAGE_SIZE).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit={limit} is out of range: ask for 1 to {MAXIMUM_PAGE_SIZE} items per page"),
        )),
    }
}

/// The configured stream called `name`, or 404 naming the streams there are.
pub(crate) fn configured_stream<'a>(config: &'a Config, name: &str) -> Result<&'a StreamSettings, ApiError> {
    config.stream(name).ok_or_else(|| {
        let known = config.streams.iter().map(|stream| stream.name.as_str()).collect::<Vec<_>>().join(", ");
        ApiError::not_found(format!("no stream {name:?} is configured (the streams are: {known})"))
    })
}
