//! The dashboard: server-rendered HTML pages (maud) over the same functions the JSON API answers with,
//! a small stylesheet and script embedded in the binary, sign-in with a token, and actions (compose,
//! retry, cancel) behind CSRF-checked forms.
//!
//! - Pages: [`streams`] (home, one stream), [`build`] (one build), [`compare`] (two builds), [`job`]
//!   (live log, cancel), [`queue`] (jobs and workers), [`sign_in`]; [`errors`]: 404 and 500 pages.
//! - [`components`]: the frame and the pieces pages are made of; [`session`]: cookies, CSRF, [`Viewer`];
//!   [`assets`]: the embedded files.
//! - Every page also answers `Accept: application/json` with what the API gives (or, for pages made of
//!   several API calls, the list of those calls), and names its API call in a `Link` header.

pub(crate) mod assets;
mod build;
mod compare;
pub(crate) mod components;
pub(crate) mod errors;
mod job;
mod layers;
mod queue;
pub(crate) mod session;
mod sign_in;
mod streams;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Serialize;

use self::components::{Frame, Section};
pub use self::session::Viewer;
use crate::state::AppState;

/// What pages may load: only this server's own files; no inline script or style, no frames, forms only
/// to this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The dashboard's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(streams::home))
        .route("/streams/{name}", get(streams::stream_page))
        .route("/streams/{name}/compose", post(streams::compose_now))
        .route("/builds/{id}", get(build::build_page))
        .route("/builds/{id}/retry", post(build::retry))
        .route("/compare", get(compare::compare_page))
        .route("/jobs/{id}", get(job::job_page))
        .route("/jobs/{id}/cancel", post(job::cancel))
        .route("/queue", get(queue::queue_page))
        .route("/sign-in", get(sign_in::sign_in_page).post(sign_in::sign_in))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/{hash}/{name}", get(assets::serve_asset))
}

/// Whether the client asked for JSON rather than a page.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or_default();
    accept.contains("application/json") && !accept.contains("text/html")
}

/// Whether the client takes HTML (browsers say so first).
pub(crate) fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A page to send.
#[derive(Debug)]
pub(crate) struct Page {
    pub title: String,
    pub section: Section,
    pub breadcrumbs: Vec<(String, String)>,
    /// The API call whose data this is.
    pub api: Option<String>,
    pub body: Markup,
}

impl Page {
    /// The page as an HTML answer framed for `viewer`.
    pub fn render(self, viewer: &Viewer, status: StatusCode) -> Response {
        let frame = Frame {
            title: &self.title,
            section: self.section,
            breadcrumbs: &self.breadcrumbs,
            viewer,
            api: self.api.as_deref(),
        };
        let markup = components::page(&frame, self.body);
        let mut response = (status, markup.into_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        secure_headers(headers);
        if let Some(link) = self.api.and_then(|api| api_link(&api)) {
            headers.insert(header::LINK, link);
        }
        response
    }
}

/// The headers of every page: the policy above, no sniffing, no caching by shared caches, and no
/// referrer to other hosts.
pub(crate) fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept, Cookie"));
}

/// `Link: <api>; rel="alternate"; type="application/json"`.
fn api_link(api: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("<{api}>; rel=\"alternate\"; type=\"application/json\"")).ok()
}

/// The JSON answer of a page asked for with `Accept: application/json`: the API's value, with the
/// `Link` to the API call that gives it.
pub(crate) fn json_answer<T: Serialize>(api: &str, value: &T) -> Response {
    let mut response = axum::Json(value).into_response();
    if let Some(link) = api_link(api) {
        response.headers_mut().insert(header::LINK, link);
    }
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Cookie"));
    response
}

/// A `303 See Other` to `location` (after a form).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `/path?key=value&...` with the values percent-encoded, leaving out empty ones.
pub(crate) fn href(path: &str, query: &[(&str, Option<&str>)]) -> String {
    let mut text = path.to_string();
    let mut separator = '?';
    for (key, value) in query {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            text.push(separator);
            text.push_str(key);
            text.push('=');
            text.push_str(&percent_encode(value));
            separator = '&';
        }
    }
    text
}

fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_their_values_and_skip_empty_ones() {
        assert_eq!(
            href("/streams/a", &[("status", Some("failed")), ("arch", None)]),
            "/streams/a?status=failed"
        );
        assert_eq!(href("/x", &[("cursor", Some("b:1/2=")), ("arch", Some(""))]), "/x?cursor=b%3A1%2F2%3D");
    }

    #[test]
    fn json_is_what_scripts_ask_for_and_html_what_browsers_do() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(wants_json(&headers) && !accepts_html(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(!wants_json(&headers) && accepts_html(&headers));
    }
}
