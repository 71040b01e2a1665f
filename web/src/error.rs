//! Every error answer of the API: one [`ApiError`] with an HTTP status, a stable code and a message for
//! people that says what was wrong and, where there is something to do, what to do next; sent as
//! `{"error": {"code": ..., "message": ...}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pipeline::StoreError;
use pipeline::api::{ErrorDetail, ErrorResponse};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// 400: the request itself is malformed (JSON, query, path, header).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no usable credentials.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403: the credentials do not allow this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404 `not_found`: no such stream, build, job, token or route.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the thing exists but is in a state that does not allow this.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed, but a value does not refer to anything that can be used.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 500 `internal`: logged with its whole chain; the answer names what was being done only.
    pub fn internal(action: &str, error: &(dyn std::error::Error + 'static)) -> ApiError {
        tracing::error!(error = %chain(error), "{action} failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{action} failed inside the server; its log has the details"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse { error: ErrorDetail { code: self.code.to_string(), message: self.message.clone() } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    /// A foreign cursor is the client's mistake (400), a lost lease the worker's (409); a database that
    /// does not answer is 503 (try again); everything else is the server's (500). Database names and
    /// addresses stay in the log.
    fn from(error: StoreError) -> ApiError {
        match &error {
            StoreError::InvalidCursor { .. } => ApiError::bad_request("invalid_cursor", error.to_string()),
            // A worker's lease expired or passed to another worker (the worker API): it must let go.
            StoreError::LeaseLost { .. } => {
                ApiError::conflict(pipeline::worker::protocol::LEASE_LOST, error.to_string())
            }
            StoreError::Query { action, source, .. } if is_unavailable(source) => {
                tracing::error!(error = %chain(&error), "the database did not answer");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    format!("{action}: the database did not answer; try again shortly"),
                )
            }
            StoreError::Query { action, .. } => ApiError::internal(action, &error),
            _ => ApiError::internal("reading the database", &error),
        }
    }
}

/// Whether the database could not be reached (rather than refusing a statement).
fn is_unavailable(error: &pipeline::store::SqlxError) -> bool {
    use pipeline::store::SqlxError;
    matches!(error, SqlxError::PoolTimedOut | SqlxError::PoolClosed | SqlxError::Io(_) | SqlxError::Tls(_))
}

/// The error and its causes, one per line, as the habits ask for logs.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push('\n');
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_are_json_with_code_and_message() {
        let response = ApiError::not_found("no build 7").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"error":{"code":"not_found","message":"no build 7"}}"#);
    }

    #[test]
    fn unauthorized_answers_name_the_scheme() {
        let response = ApiError::unauthorized("missing_token", "send a token").into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
