//! Signing in to the dashboard and acting through it: the session cookie, the CSRF token of its forms,
//! and who is looking ([`Viewer`]).
//!
//! - Signing in takes an API token (of the read, write or admin scope) and keeps it in the cookie
//!   `arbor_session`: `HttpOnly` (scripts never see it), `SameSite=Strict` (other sites' requests do not
//!   carry it), `Path=/`, and `Secure` when the request came over TLS (`X-Forwarded-Proto: https` from
//!   the proxy in front). A session is exactly as good as its token: revoking or expiring the token ends
//!   it, in every replica, and nothing is kept on the server.
//! - Every form of a signed-in user carries the CSRF token, a hash of the session's secret that only a
//!   page served to this browser can know; actions check it, and also refuse requests a browser marks as
//!   cross-site (`Sec-Fetch-Site`) or whose `Origin` is another host. The JSON API refuses the cookie for
//!   anything but reading (see [`crate::auth`]).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use pipeline::store::{Scope, token_hash};

use crate::auth::{self, Caller, Credential, CredentialSource};
use crate::error::ApiError;
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "arbor_session";
/// How long a browser keeps a session: a working day and a half; the token's own expiry ends it sooner.
pub const SESSION_MAX_AGE_SECONDS: u64 = 36 * 3600;
/// What the token is hashed with to make the CSRF token (so the two never coincide).
const CSRF_CONTEXT: &str = "arbor-dashboard-csrf:";

/// Who is looking: a visitor (read only, when `public-read` allows it) or a signed-in user.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    /// The signed-in token's name.
    pub name: Option<String>,
    /// May see the pages (signed in, or `public-read`).
    pub can_read: bool,
    /// May compose, retry and cancel.
    pub can_write: bool,
    /// May see everything about workers.
    pub is_admin: bool,
    /// The session's CSRF token, put into every form.
    pub csrf: Option<String>,
}

impl Viewer {
    fn anonymous(public_read: bool) -> Viewer {
        Viewer {
            caller: Caller::Anonymous,
            name: None,
            can_read: public_read,
            can_write: false,
            is_admin: false,
            csrf: None,
        }
    }

    /// 401 (which pages answer by sending people to sign in) unless the viewer may read.
    pub fn require_read(&self) -> Result<(), ApiError> {
        if self.can_read {
            Ok(())
        } else {
            Err(ApiError::unauthorized("missing_token", "sign in with a token to see this page"))
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    /// Never fails: a stale or invalid session is a visitor (the sign-in page says so).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, ApiError> {
        let public_read = state.config.server.public_read;
        let caller = auth::identify(parts, state).await.unwrap_or(Caller::Anonymous);
        let Caller::Authenticated(authenticated) = &caller else {
            return Ok(Viewer::anonymous(public_read));
        };
        if authenticated.scopes.contains(&Scope::Worker) {
            return Ok(Viewer::anonymous(public_read));
        }
        let csrf = match authenticated.source {
            CredentialSource::SessionCookie => {
                session_secret(&parts.headers).map(|secret| csrf_token(&secret))
            }
            CredentialSource::BearerToken => None,
        };
        Ok(Viewer {
            name: Some(authenticated.name.clone()),
            can_read: auth::grants(&authenticated.scopes, Scope::Read),
            can_write: auth::grants(&authenticated.scopes, Scope::Write),
            is_admin: auth::grants(&authenticated.scopes, Scope::Admin),
            csrf,
            caller,
        })
    }
}

impl OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Viewer>, ApiError> {
        <Viewer as FromRequestParts<AppState>>::from_request_parts(parts, state).await.map(Some)
    }
}

/// The secret of the session cookie, if the request has one.
pub(crate) fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// The CSRF token of a session.
pub(crate) fn csrf_token(secret: &str) -> String {
    token_hash(&format!("{CSRF_CONTEXT}{secret}"))
}

/// Whether the request came over TLS (as the proxy in front says).
fn is_secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that starts a session with `secret`.
pub(crate) fn session_cookie(secret: &str, headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    let secure = if is_secure(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_MAX_AGE_SECONDS}{secure}"
    ))
    .map_err(|_| ApiError::bad_request("invalid_token", "a token is letters, digits and `_` only"))
}

/// The `Set-Cookie` value that ends the session.
pub(crate) fn ended_session_cookie(headers: &HeaderMap) -> HeaderValue {
    let secure = if is_secure(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static("arbor_session=; Path=/; Max-Age=0"))
}

/// Refuses a form another site sent: a browser's `Sec-Fetch-Site: cross-site` or `same-site`, or an
/// `Origin` whose host is not this one.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = || {
        ApiError::forbidden(
            "cross_site_request",
            "this form was sent from another site, so it is refused; use the dashboard's own pages",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|value| value.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refused());
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Err(refused());
        }
    }
    Ok(())
}

/// Checks that a form of a signed-in user may act: same origin, the session's CSRF token, and the write
/// scope. Returns the caller, for logs.
pub(crate) fn authorize_action<'a>(
    viewer: &'a Viewer,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<&'a Caller, ApiError> {
    check_same_origin(headers)?;
    let Some(expected) = &viewer.csrf else {
        return Err(ApiError::unauthorized("missing_token", "sign in to do this"));
    };
    if csrf != Some(expected.as_str()) {
        return Err(ApiError::forbidden(
            "invalid_csrf_token",
            "the form's CSRF token does not match this session (the page was older than the session, or another \
             site sent it); reload the page and try again",
        ));
    }
    if !viewer.can_write {
        return Err(ApiError::forbidden(
            "missing_scope",
            "your token has the read scope only: sign in with a write token to compose, retry or cancel",
        ));
    }
    Ok(&viewer.caller)
}

/// Checks a token offered on the sign-in page: known, not revoked or expired, not a worker token.
pub(crate) async fn verify_sign_in(state: &AppState, secret: &str) -> Result<String, ApiError> {
    let credential =
        Credential { source: CredentialSource::SessionCookie, secret: secret.trim().to_string() };
    let authenticated = auth::verify(state, credential).await?;
    if authenticated.scopes.contains(&Scope::Worker) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "worker_token",
            "worker tokens are for the worker API only; sign in with a read, write or admin token",
        ));
    }
    Ok(authenticated.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "theme=dark; arbor_session=arbor_abc ; other=1")]);
        assert_eq!(session_secret(&map).as_deref(), Some("arbor_abc"));
        assert_eq!(session_secret(&headers(&[("cookie", "arbor_session=")])), None);
        assert_eq!(session_secret(&HeaderMap::new()), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_tls() {
        let plain = session_cookie("arbor_x", &HeaderMap::new()).unwrap();
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"), "{plain}");
        assert!(!plain.contains("Secure"), "{plain}");
        let tls = session_cookie("arbor_x", &headers(&[("x-forwarded-proto", "https")])).unwrap();
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn cross_site_forms_are_refused() {
        let table = [
            (vec![], true),
            (vec![("sec-fetch-site", "same-origin")], true),
            (vec![("sec-fetch-site", "cross-site")], false),
            (vec![("sec-fetch-site", "same-site")], false),
            (vec![("host", "arbor.example.com"), ("origin", "https://arbor.example.com")], true),
            (vec![("host", "arbor.example.com"), ("origin", "https://evil.example.net")], false),
            (vec![("host", "arbor.example.com"), ("origin", "null")], false),
        ];
        for (pairs, allowed) in table {
            assert_eq!(check_same_origin(&headers(&pairs)).is_ok(), allowed, "{pairs:?}");
        }
    }

    #[test]
    fn csrf_tokens_differ_from_the_secret_and_between_sessions() {
        assert_ne!(csrf_token("arbor_a"), csrf_token("arbor_b"));
        assert!(!csrf_token("arbor_a").contains("arbor_a"));
    }
}
