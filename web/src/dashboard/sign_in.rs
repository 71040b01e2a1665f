//! Signing in with an API token (kept in the session cookie, see [`super::session`]) and signing out.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::components::Section;
use super::session::{
    Viewer, check_same_origin, ended_session_cookie, session_cookie, session_secret, verify_sign_in,
};
use super::streams::form_or_error;
use super::{Page, see_other};
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SignInQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignOutForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// Where to go after signing in: a path of this site only (never `//host` or a URL).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path,
        _ => "/",
    }
}

fn sign_in_form(
    viewer: &Viewer,
    next: &str,
    problem: Option<&str>,
    status: StatusCode,
    stale: bool,
) -> Response {
    let body = html! {
        div.narrow {
            h1 { "Sign in" }
            @if let Some(problem) = problem {
                div.banner.banner-error role="alert" { strong { "Not signed in" } (problem) }
            } @else if stale {
                div.banner.banner-warning role="status" { strong { "Your session ended" } "Its token was revoked or expired; sign in again." }
            }
            @if let Some(name) = &viewer.name {
                p { "You are signed in as " strong { (name) } ". Signing in again replaces that session." }
            }
            form.panel method="post" action="/sign-in" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required
                    placeholder="arbor_…" spellcheck="false";
                input type="hidden" name="next" value=(next);
                p.muted { "A token of the read, write or admin scope: " code { "arbor token create NAME --scope write" } ". "
                    "It is kept in a cookie scripts cannot read, for 36 hours or until the token is revoked." }
                button.button.button-primary type="submit" { "Sign in" }
            }
        }
    };
    let page =
        Page { title: "Sign in".into(), section: Section::None, breadcrumbs: Vec::new(), api: None, body };
    page.render(viewer, status)
}

/// `GET /sign-in`.
pub(crate) async fn sign_in_page(
    viewer: Viewer,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    let stale = viewer.name.is_none() && session_secret(&headers).is_some();
    sign_in_form(&viewer, local_path(query.next.as_deref()), None, StatusCode::OK, stale)
}

/// `POST /sign-in`: checks the token, starts the session, goes where the reader was going.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    form: Result<axum::Form<SignInForm>, FormRejection>,
) -> Result<Response, ApiError> {
    // Another site must not sign a reader in with its own token (login CSRF).
    check_same_origin(&headers)?;
    let form = form_or_error(form)?;
    let next = local_path(form.next.as_deref()).to_string();
    let secret = form.token.trim();
    match verify_sign_in(&state, secret).await {
        Ok(name) => {
            tracing::info!(token = %name, "signed in to the dashboard");
            let mut response = see_other(&next);
            response.headers_mut().insert(header::SET_COOKIE, session_cookie(secret, &headers)?);
            Ok(response)
        }
        Err(error) if error.status.is_client_error() => {
            Ok(sign_in_form(&viewer, &next, Some(&error.message), error.status, false))
        }
        Err(error) => Err(error),
    }
}

/// `POST /sign-out`: ends the session.
pub(crate) async fn sign_out(
    viewer: Viewer,
    headers: HeaderMap,
    form: Result<axum::Form<SignOutForm>, FormRejection>,
) -> Result<Response, ApiError> {
    check_same_origin(&headers)?;
    let form = form_or_error(form)?;
    // Signing out of a stale session needs no token; a live one needs its CSRF token.
    if viewer.csrf.is_some() && form.csrf != viewer.csrf {
        return Err(ApiError::forbidden("invalid_csrf_token", "reload the page and sign out again"));
    }
    let mut response = see_other("/");
    response.headers_mut().insert(header::SET_COOKIE, ended_session_cookie(&headers));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_signing_in() {
        for (next, expected) in [
            (Some("/builds/3"), "/builds/3"),
            (Some("//evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (None, "/"),
        ] {
            assert_eq!(local_path(next), expected, "{next:?}");
        }
    }
}
