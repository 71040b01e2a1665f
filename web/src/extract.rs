//! Extractors whose rejections are [`ApiError`]s that say what was wrong: [`Json`] (and [`OptionalJson`],
//! where an empty body means the defaults), [`Query`] and [`Path`]. Body size limits are set per route
//! with [`body_limit`], and an oversized body is a 413 naming the limit.

use axum::Extension;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};

use crate::error::ApiError;

/// The body limit of routes that set none: JSON requests of the public API are small.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The body limit in force for a request, set next to axum's `DefaultBodyLimit` by [`body_limit`] so
/// that a 413 can say what the limit is.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The layers limiting request bodies to `bytes`: axum's (which every body extractor obeys, the worker
/// API's too) and the [`BodyLimit`] that messages name.
pub type BodyLimitLayers = ServiceBuilder<Stack<Extension<BodyLimit>, Stack<DefaultBodyLimit, Identity>>>;

/// The layers that limit request bodies of the routes below them to `bytes` (inner limits win).
pub fn body_limit(bytes: usize) -> BodyLimitLayers {
    ServiceBuilder::new().layer(DefaultBodyLimit::max(bytes)).layer(Extension(BodyLimit(bytes)))
}

/// A JSON request body (`Content-Type: application/json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// A JSON request body that may be empty (then `T::default()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = read_body(request, state).await?;
        parse_json(body.content_type_ok, &body.bytes).map(Json)
    }
}

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = read_body(request, state).await?;
        if body.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(body.content_type_ok, &body.bytes).map(OptionalJson)
    }
}

struct Body {
    bytes: Bytes,
    content_type_ok: bool,
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Body, ApiError> {
    let content_type_ok = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_json_content_type);
    let limit = request.extensions().get::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |limit| limit.0);
    let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            payload_too_large(limit)
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("reading the request body failed: {}", rejection.body_text()),
            )
        }
    })?;
    Ok(Body { bytes, content_type_ok })
}

/// The 413 answer for a body over `limit` bytes.
pub fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than the {limit} bytes this endpoint accepts"),
    )
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn parse_json<T: DeserializeOwned>(content_type_ok: bool, bytes: &[u8]) -> Result<T, ApiError> {
    if !content_type_ok {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON: send Content-Type: application/json",
        ));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        let (code, what) = match error.classify() {
            serde_json::error::Category::Data => {
                ("invalid_body", "does not have the fields this endpoint takes")
            }
            _ => ("invalid_json", "is not valid JSON"),
        };
        ApiError::bad_request(
            code,
            format!(
                "the request body {what}: {error} (the OpenAPI document at /api/v1/openapi.json describes it)"
            ),
        )
    })
}

/// A query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::try_from_uri(&parts.uri).map(|query| Query(query.0)).map_err(|rejection| {
            let text = rejection.body_text();
            let detail = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
            ApiError::bad_request("invalid_query", format!("the query string is not valid here: {detail}"))
        })
    }
}

/// Path parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state).await.map(|path| Path(path.0)).map_err(
            |rejection| {
                let text = rejection.body_text();
                let detail = text.strip_prefix("Invalid URL: ").unwrap_or(&text);
                ApiError::bad_request("invalid_path", format!("the path is not valid here: {detail}"))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        for (value, json) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            assert_eq!(is_json_content_type(value), json, "{value}");
        }
    }
}
