//! Error pages: an error answered to a browser (which accepts HTML) outside the API becomes a page in
//! the dashboard's style that says what happened and what to do next; 401 sends the reader to sign in.
//! Scripts (and everything under `/api/`) keep the API's JSON errors unchanged.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use maud::html;
use pipeline::api::ErrorResponse;

use super::components::{Section, problem};
use super::session::Viewer;
use super::{Page, accepts_html, href, see_other};
use crate::auth::Caller;

/// Paths whose errors stay JSON whatever the client accepts.
const MACHINE_PREFIXES: [&str; 4] = ["/api/", "/healthz", "/readyz", "/metrics"];
/// The largest error body read back to turn into a page (error bodies are a few hundred bytes).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The middleware that turns JSON errors into pages for browsers.
pub(crate) async fn html_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let for_people = accepts_html(request.headers())
        && !MACHINE_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix) || path == prefix.trim_end_matches('/'));
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !for_people || !(status.is_client_error() || status.is_server_error()) || !is_json {
        return response;
    }
    if status == StatusCode::UNAUTHORIZED {
        return see_other(&href("/sign-in", &[("next", Some(&path))]));
    }
    let (parts, body) = response.into_parts();
    let bytes = match http_body_util::Limited::new(body, ERROR_BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let message = serde_json::from_slice::<ErrorResponse>(&bytes)
        .map(|error| error.error.message)
        .unwrap_or_else(|_| String::from("the server could not answer"));
    error_page(status, &path, &message)
}

/// `text` with its first letter in upper case (messages are written to follow a colon).
fn capitalised(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

/// The page for an error `status` at `path`.
pub(crate) fn error_page(status: StatusCode, path: &str, message: &str) -> Response {
    let message = message.trim_end_matches('.');
    let viewer = Viewer {
        caller: Caller::Anonymous,
        name: None,
        can_read: false,
        can_write: false,
        is_admin: false,
        csrf: None,
    };
    let message = capitalised(message);
    let (heading, explanation) = match status.as_u16() {
        // The router's own answer speaks of the API; a reader needs less.
        404 if message.starts_with("There is no ") => (
            "Not found",
            format!("There is no page at {path}. Check the address, or start again from the streams."),
        ),
        404 => ("Not found", format!("{message}.")),
        403 => ("Not allowed", format!("{message}.")),
        400 | 422 => ("That request is not valid", format!("{message}.")),
        409 => ("Not possible now", format!("{message}.")),
        500..=599 => ("Something went wrong on the server", server_error_explanation(&message)),
        _ => ("The request failed", format!("{message}.")),
    };
    let next = html! {
        p { "What you can do next:" }
        ul {
            li { a href="/" { "See every stream" } }
            li { a href="/queue" { "See the queue and the workers" } }
            @if status == StatusCode::FORBIDDEN {
                li { a href="/sign-in" { "Sign in with another token" } }
            }
        }
        p.muted { "Status " (status.as_u16()) }
    };
    Page {
        title: heading.to_string(),
        section: Section::None,
        breadcrumbs: Vec::new(),
        api: None,
        body: problem(heading, &explanation, next),
    }
    .render(&viewer, status)
}

/// What a 5xx page says: the message, then what to do, unless the message says it already.
fn server_error_explanation(message: &str) -> String {
    let mut explanation = format!("{message}.");
    let lowercase = message.to_lowercase();
    if !lowercase.contains("try again") {
        explanation.push_str(" Try again in a moment.");
    }
    if !lowercase.contains("log") {
        explanation.push_str(" If it keeps failing, the server's log has the details.");
    }
    explanation
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn error_pages_say_what_happened_and_what_to_do() {
        let table = [
            (
                StatusCode::NOT_FOUND,
                "there is no GET /x; the API is described at ...",
                "There is no page at /x",
            ),
            (StatusCode::NOT_FOUND, "no build 7", "No build 7."),
            (StatusCode::INTERNAL_SERVER_ERROR, "reading the database failed", "Try again in a moment"),
        ];
        for (status, message, expected) in table {
            let response = error_page(status, "/x", message);
            assert_eq!(response.status(), status);
            let text = body(response).await;
            assert!(text.contains(expected) && text.contains("See every stream"), "{text}");
        }
    }

    #[test]
    fn server_errors_say_what_to_do_once() {
        let table = [
            (
                "reading the database failed",
                "Reading the database failed. Try again in a moment. If it keeps failing, the server's log \
                 has the details.",
            ),
            (
                "reading the database failed inside the server; its log has the details",
                "Reading the database failed inside the server; its log has the details. Try again in a moment.",
            ),
            (
                "listing builds: the database did not answer; try again shortly",
                "Listing builds: the database did not answer; try again shortly. If it keeps failing, the \
                 server's log has the details.",
            ),
        ];
        for (message, expected) in table {
            assert_eq!(server_error_explanation(&capitalised(message)), expected);
        }
    }
}
