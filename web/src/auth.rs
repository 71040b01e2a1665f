//! Who is asking, and whether they may: handlers state what they need with [`Require`]`<`[`Read`]`>`,
//! `Require<Write>`, `Require<Admin>` or `Require<Worker>` (the worker API), and get the [`Caller`].
//!
//! Rules:
//! - Credentials come from a [`CredentialSource`]: `Authorization: Bearer arbor_...`, or else the
//!   dashboard's session cookie (see [`crate::dashboard::session`]). The API accepts the cookie for GET
//!   and HEAD only (the pages' live logs read through it); anything else sent with it is refused (403
//!   `session_cookie`), because only the dashboard's own forms carry the CSRF token that makes a
//!   cookie-borne request safe, and those are handled by the dashboard.
//! - A presented credential that is malformed, unknown, revoked or expired is 401, even where anonymous
//!   access would be allowed: a client never silently loses its identity.
//! - No credential: 401, except GET and HEAD of `Require<Read>` endpoints when `[server] public-read` is
//!   on (the public API; never tokens, workers or the worker API).
//! - Scopes include the lower ones: `admin` ⊇ `write` ⊇ `read`. `worker` stands alone: a token with it is
//!   refused (403) everywhere but the worker API, and the worker API refuses every other token (403).
//! - Token lookups are cached for [`TOKEN_CACHE_TIME_TO_LIVE`]; revoking through the API forgets the
//!   token at once in this process, other processes stop accepting it within that time.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use pipeline::store::{Scope, Token, token_hash};

use crate::error::ApiError;
use crate::state::AppState;

/// How long a looked-up token is trusted without asking the database again.
pub const TOKEN_CACHE_TIME_TO_LIVE: Duration = Duration::from_secs(5);
/// Tokens cached at most (a server has a few dozen); past it the cache starts over.
const TOKEN_CACHE_CAPACITY: usize = 1024;
/// Every arbor token starts with it; anything else is refused without a database lookup.
const TOKEN_PREFIX: &str = "arbor_";

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer arbor_...`.
    BearerToken,
    /// The dashboard's session cookie (which holds a token).
    SessionCookie,
}

/// A credential as presented; the secret is never printed.
pub(crate) struct Credential {
    pub(crate) source: CredentialSource,
    pub(crate) secret: String,
}

/// A caller whose credential was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub token_id: i64,
    /// The token's name, for logs.
    pub name: String,
    pub scopes: Vec<Scope>,
    pub source: CredentialSource,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credential, allowed by `public-read`.
    Anonymous,
    Authenticated(Authenticated),
}

impl Caller {
    /// The token's name, or `anonymous`, for logs.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Authenticated(authenticated) => &authenticated.name,
        }
    }
}

/// What an endpoint needs; see the module documentation.
pub trait Requirement: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// Reading streams, builds, jobs and logs (anonymous GETs allowed with `public-read`).
#[derive(Debug)]
pub struct Read;
/// Composing, retrying, cancelling.
#[derive(Debug)]
pub struct Write;
/// Tokens and workers.
#[derive(Debug)]
pub struct Admin;
/// The worker API.
#[derive(Debug)]
pub struct Worker;

impl Requirement for Read {
    const SCOPE: Scope = Scope::Read;
}
impl Requirement for Write {
    const SCOPE: Scope = Scope::Write;
}
impl Requirement for Admin {
    const SCOPE: Scope = Scope::Admin;
}
impl Requirement for Worker {
    const SCOPE: Scope = Scope::Worker;
}

/// An extractor that fails with 401 or 403 unless the caller meets `R`.
#[derive(Debug)]
pub struct Require<R: Requirement>(pub Caller, PhantomData<R>);

impl<R: Requirement> Require<R> {
    pub fn caller(&self) -> &Caller {
        &self.0
    }
}

impl<S, R> FromRequestParts<S> for Require<R>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    R: Requirement,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let caller = identify(parts, &state).await?;
        if let Caller::Authenticated(authenticated) = &caller
            && authenticated.source == CredentialSource::SessionCookie
            && parts.method != Method::GET
            && parts.method != Method::HEAD
        {
            return Err(ApiError::forbidden(
                "session_cookie",
                "the dashboard's session cookie is accepted for reading only: send Authorization: Bearer \
                 arbor_... (or use the dashboard's buttons)",
            ));
        }
        authorize(&caller, R::SCOPE, &parts.method, state.config.server.public_read)?;
        Ok(Require(caller, PhantomData))
    }
}

/// Whether `scopes` grant `required` (higher scopes include lower ones; `worker` only itself).
pub fn grants(scopes: &[Scope], required: Scope) -> bool {
    let granting: &[Scope] = match required {
        Scope::Read => &[Scope::Read, Scope::Write, Scope::Admin],
        Scope::Write => &[Scope::Write, Scope::Admin],
        Scope::Admin => &[Scope::Admin],
        Scope::Worker => &[Scope::Worker],
    };
    scopes.iter().any(|scope| granting.contains(scope))
}

/// The caller of this request, verified once per request (kept in the request's extensions).
pub(crate) async fn identify(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
    if let Some(caller) = parts.extensions.get::<Caller>() {
        return Ok(caller.clone());
    }
    let caller = match credential(parts)? {
        None => Caller::Anonymous,
        Some(credential) => Caller::Authenticated(verify(state, credential).await?),
    };
    if let Caller::Authenticated(authenticated) = &caller {
        tracing::Span::current().record("token", authenticated.name.as_str());
    }
    parts.extensions.insert(caller.clone());
    Ok(caller)
}

/// The credential the request presents, if any.
fn credential(parts: &Parts) -> Result<Option<Credential>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(crate::dashboard::session::session_secret(&parts.headers)
            .map(|secret| Credential { source: CredentialSource::SessionCookie, secret }));
    };
    let malformed = || {
        ApiError::unauthorized(
            "invalid_authorization",
            "the Authorization header must be `Bearer arbor_...` (an arbor API token)",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, secret) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || secret.trim().is_empty() {
        return Err(malformed());
    }
    Ok(Some(Credential { source: CredentialSource::BearerToken, secret: secret.trim().to_string() }))
}

pub(crate) async fn verify(state: &AppState, credential: Credential) -> Result<Authenticated, ApiError> {
    let invalid = || {
        ApiError::unauthorized(
            "invalid_token",
            "the token is unknown, revoked or expired: create another with `arbor token create` (or \
             POST /api/v1/tokens with an admin token)",
        )
    };
    if !credential.secret.starts_with(TOKEN_PREFIX) {
        return Err(invalid());
    }
    let hash = token_hash(&credential.secret);
    let now = state.now();
    let token = match state.tokens.get(&hash, now) {
        Some(token) => token,
        None => {
            let token = state.store.authenticate_token(&credential.secret).await?.ok_or_else(invalid)?;
            state.tokens.insert(hash, token.clone());
            token
        }
    };
    Ok(Authenticated {
        token_id: token.id,
        name: token.name,
        scopes: token.scopes,
        source: credential.source,
    })
}

fn authorize(caller: &Caller, required: Scope, method: &Method, public_read: bool) -> Result<(), ApiError> {
    let authenticated = match caller {
        Caller::Anonymous => {
            let anonymous_read =
                required == Scope::Read && public_read && (method == Method::GET || method == Method::HEAD);
            return if anonymous_read {
                Ok(())
            } else {
                Err(ApiError::unauthorized(
                    "missing_token",
                    format!(
                        "this endpoint needs a token with the {required} scope: send Authorization: Bearer \
                         arbor_... (create one with `arbor token create`)"
                    ),
                ))
            };
        }
        Caller::Authenticated(authenticated) => authenticated,
    };
    let is_worker_token = authenticated.scopes.contains(&Scope::Worker);
    if required != Scope::Worker && is_worker_token {
        return Err(ApiError::forbidden(
            "worker_token",
            format!(
                "token {:?} is a worker token, valid only on the worker API (/api/v1/worker/...); use a token \
                 with the {required} scope here",
                authenticated.name
            ),
        ));
    }
    if !grants(&authenticated.scopes, required) {
        let message = if required == Scope::Worker {
            format!(
                "this is the worker API: it needs a token with the worker scope, and token {:?} is not one",
                authenticated.name
            )
        } else {
            let has = authenticated.scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(" ");
            format!(
                "token {:?} has the scopes [{has}]; this endpoint needs {required}{}",
                authenticated.name,
                match required {
                    Scope::Read => " (or write or admin)",
                    Scope::Write => " (or admin)",
                    _ => "",
                }
            )
        };
        return Err(ApiError::forbidden("missing_scope", message));
    }
    Ok(())
}

/// Tokens recently verified, by hash (the plaintext is not kept).
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<String, (Token, Instant)>>,
}

impl TokenCache {
    pub(crate) fn new() -> Self {
        TokenCache::default()
    }

    /// The token, if verified less than [`TOKEN_CACHE_TIME_TO_LIVE`] ago and not expired since.
    fn get(&self, hash: &str, now: i64) -> Option<Token> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (token, verified_at) = entries.get(hash)?;
        let fresh = verified_at.elapsed() < TOKEN_CACHE_TIME_TO_LIVE;
        let unexpired = token.expires_at.is_none_or(|expires_at| expires_at > now);
        (fresh && unexpired).then(|| token.clone())
    }

    fn insert(&self, hash: String, token: Token) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= TOKEN_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(hash, (token, Instant::now()));
    }

    /// Forgets a token (it was revoked).
    pub(crate) fn forget(&self, token_id: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|_, (token, _)| token.id != token_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(scopes: &[Scope]) -> Caller {
        Caller::Authenticated(Authenticated {
            token_id: 1,
            name: "ci".into(),
            scopes: scopes.to_vec(),
            source: CredentialSource::BearerToken,
        })
    }

    #[test]
    fn scopes_include_the_lower_ones_and_worker_stands_alone() {
        use Scope::*;
        let table = [
            (&[Read][..], [true, false, false, false]),
            (&[Write][..], [true, true, false, false]),
            (&[Admin][..], [true, true, true, false]),
            (&[Worker][..], [false, false, false, true]),
        ];
        for (scopes, expected) in table {
            for (required, granted) in [Read, Write, Admin, Worker].into_iter().zip(expected) {
                assert_eq!(grants(scopes, required), granted, "{scopes:?} for {required}");
            }
        }
    }

    #[test]
    fn authorization_answers() {
        let get = Method::GET;
        let post = Method::POST;
        let status =
            |result: Result<(), ApiError>| result.map_err(|error| (error.status.as_u16(), error.code));
        assert_eq!(status(authorize(&Caller::Anonymous, Scope::Read, &get, true)), Ok(()));
        assert_eq!(
            status(authorize(&Caller::Anonymous, Scope::Read, &get, false)),
            Err((401, "missing_token"))
        );
        assert_eq!(
            status(authorize(&Caller::Anonymous, Scope::Write, &post, true)),
            Err((401, "missing_token"))
        );
        assert_eq!(
            status(authorize(&Caller::Anonymous, Scope::Admin, &get, true)),
            Err((401, "missing_token"))
        );
        assert_eq!(
            status(authorize(&Caller::Anonymous, Scope::Worker, &get, true)),
            Err((401, "missing_token"))
        );
        assert_eq!(
            status(authorize(&caller(&[Scope::Read]), Scope::Write, &post, false)),
            Err((403, "missing_scope"))
        );
        assert_eq!(
            status(authorize(&caller(&[Scope::Worker]), Scope::Read, &get, true)),
            Err((403, "worker_token"))
        );
        assert_eq!(
            status(authorize(&caller(&[Scope::Admin]), Scope::Worker, &post, true)),
            Err((403, "missing_scope"))
        );
        assert_eq!(status(authorize(&caller(&[Scope::Worker]), Scope::Worker, &post, false)), Ok(()));
    }
}
