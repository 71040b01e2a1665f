//! [`router`]: every route of `arbor serve` (the API, the worker API, the dashboard's pages) and the
//! layers around them — request ids, traces with `http.method` / `http.route` / `status`, request
//! metrics, panics answered as JSON 500s (pages for browsers, see [`crate::dashboard::errors`]), the
//! `Authorization` and `Cookie` headers kept out of logs, gzip/br compression (never of live logs), body
//! limits (1 MiB by default, 25 MiB for webhooks, 8 MiB for the worker API), and a deadline on every
//! route but live logs and the worker API (whose claims long-poll).

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tower::ServiceBuilder;
use tower_http::CompressionLevel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{DEFAULT_BODY_LIMIT, body_limit};
use crate::openapi::{ApiDoc, OPENAPI_PATH};
use crate::state::AppState;
use crate::{api, dashboard, health, hooks, metrics, worker_api};

/// The body limit of the worker API: log uploads come in batches of up to 500 lines.
pub const WORKER_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Compression level of answers (gzip and brotli). Their libraries' defaults are slow: brotli's is 11,
/// its slowest, which took milliseconds per dashboard page; 4 compresses a 20 KB page about as well as
/// gzip -9 in a fraction of the time.
const COMPRESSION_LEVEL: CompressionLevel = CompressionLevel::Precise(4);
/// How long a request of the public API may take (live logs and the worker API have no deadline).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The router of `arbor serve`.
pub fn router(state: AppState) -> Router {
    let (routes, document) = documented_routes();
    let document = Bytes::from(document.to_pretty_json().unwrap_or_else(|error| {
        tracing::error!(%error, "writing the OpenAPI document failed");
        String::from("{}")
    }));
    routes
        .route(
            OPENAPI_PATH,
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], document) }),
        )
        // ==== The worker API (the execution side's module): tokens of scope worker only (Require<Worker>),
        // larger bodies, no deadline.
        .merge(worker_api::routes().layer(body_limit(WORKER_BODY_LIMIT)))
        // ====
        .merge(dashboard::routes().layer(middleware::from_fn(deadline)))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(request_span).on_response(
                    |response: &Response, latency: Duration, span: &Span| {
                        span.record("status", response.status().as_u16());
                        tracing::debug!(latency_ms = latency.as_secs_f64() * 1000.0, "answered");
                    },
                ))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(middleware::from_fn(metrics::record_request))
                .layer(CompressionLayer::new().quality(COMPRESSION_LEVEL))
                // Inside compression, so it reads error bodies as they were written.
                .layer(middleware::from_fn(dashboard::errors::html_errors))
                .layer(CatchPanicLayer::custom(panicked))
                .layer(body_limit(DEFAULT_BODY_LIMIT)),
        )
        .with_state(state)
}

/// The documented routes and their OpenAPI document.
pub(crate) fn documented_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let hooks = OpenApiRouter::new()
        .routes(routes!(hooks::receive_git_webhook))
        .layer(body_limit(pipeline::webhook::MAXIMUM_BODY_BYTES));
    let api =
        api::timed_routes().merge(hooks).layer(middleware::from_fn(deadline)).merge(api::untimed_routes());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api)
        .routes(routes!(health::health))
        .routes(routes!(health::readiness))
        .routes(routes!(metrics::render_metrics))
        .split_for_parts()
}

fn request_span(request: &Request) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let request_id =
        request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or("");
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.route = route,
        http.path = request.uri().path(),
        request_id,
        status = tracing::field::Empty,
        token = tracing::field::Empty,
    )
}

/// Stops a request of the public API that takes longer than [`REQUEST_TIMEOUT`].
async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {REQUEST_TIMEOUT:?} and was stopped; try again"),
        )
        .into_response(),
    }
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "there is no {method} {}; the API is described at {OPENAPI_PATH}",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not answer {method}; the API is described at {OPENAPI_PATH}", uri.path()),
    )
}

fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = detail, "a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed while answering (a bug); its log has the details",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn panics_are_answered_as_json_500s() {
        let response = panicked(Box::new("index out of bounds"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
    }
}
