//! Tokens (admin): list, create (the secret is in the answer, once), revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pipeline::api::{CreatedToken, ErrorResponse, Token, TokenList, TokenRequest};
use pipeline::store::{NewToken, Scope};

use crate::auth::{Admin, Require};
use crate::error::ApiError;
use crate::extract::{Json as JsonBody, Path};
use crate::state::AppState;

/// The longest token name: names are for people reading lists and logs.
const MAXIMUM_NAME_LENGTH: usize = 100;

/// Every token, newest first, revoked and expired ones too.
///
/// Needs the `admin` scope.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    responses(
        (status = 200, description = "Every token (never their secrets)", body = TokenList),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the admin scope", body = ErrorResponse),
    ),
)]
pub(crate) async fn list_tokens(
    _caller: Require<Admin>,
    State(state): State<AppState>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.store.list_tokens().await?;
    Ok(Json(TokenList { items: tokens.iter().map(Token::from).collect(), next_cursor: None }))
}

/// Creates a token.
///
/// The answer holds its secret, which is shown this once (only its hash is stored). A worker token has
/// the `worker` scope alone. Needs the `admin` scope.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    operation_id = "create_token",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token and its secret", body = CreatedToken),
        (status = 400, description = "The body is not valid JSON of this shape", body = ErrorResponse),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the admin scope", body = ErrorResponse),
        (status = 422, description = "An empty name, no scopes, worker with other scopes, or an expiry in the past", body = ErrorResponse),
    ),
)]
pub(crate) async fn create_token(
    caller: Require<Admin>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAXIMUM_NAME_LENGTH {
        return Err(ApiError::unprocessable(
            "invalid_name",
            format!("a token needs a name of 1 to {MAXIMUM_NAME_LENGTH} characters saying who uses it"),
        ));
    }
    if request.scopes.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_scopes",
            "a token needs scopes: read, write (includes read), admin (includes write), or worker alone",
        ));
    }
    if request.scopes.contains(&Scope::Worker) && request.scopes.iter().any(|scope| *scope != Scope::Worker) {
        return Err(ApiError::unprocessable(
            "invalid_scopes",
            "a worker token has the worker scope alone (it is valid only on the worker API); create another \
             token for the rest",
        ));
    }
    if let Some(expires_at) = request.expires_at
        && expires_at.milliseconds() <= state.now()
    {
        return Err(ApiError::unprocessable(
            "invalid_expiry",
            format!("expires_at {expires_at} is in the past"),
        ));
    }
    let new = NewToken {
        name: name.to_string(),
        scopes: request.scopes,
        expires_at: request.expires_at.map(|expires_at| expires_at.milliseconds()),
    };
    let created = state.store.create_token(&new).await?;
    tracing::info!(
        token.id = created.token.id,
        name,
        caller = caller.caller().name(),
        "token created through the API"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken { token: Token::from(&created.token), secret: created.plaintext }),
    ))
}

/// Revokes a token: it stops working at once in this process, within seconds in other replicas.
///
/// Needs the `admin` scope.
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    operation_id = "revoke_token",
    params(("id" = i64, Path, description = "The token's id")),
    responses(
        (status = 200, description = "The token, revoked", body = Token),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the admin scope", body = ErrorResponse),
        (status = 404, description = "No such token", body = ErrorResponse),
        (status = 409, description = "The token was revoked already", body = ErrorResponse),
    ),
)]
pub(crate) async fn revoke_token(
    caller: Require<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Token>, ApiError> {
    if !state.store.revoke_token(id).await? {
        let tokens = state.store.list_tokens().await?;
        return Err(match tokens.iter().find(|token| token.id == id) {
            Some(token) => ApiError::conflict(
                "already_revoked",
                format!("token {id} ({:?}) was revoked already", token.name),
            ),
            None => ApiError::not_found(format!("no token {id}")),
        });
    }
    state.tokens.forget(id);
    let tokens = state.store.list_tokens().await?;
    let token = tokens
        .iter()
        .find(|token| token.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no token {id}")))?;
    tracing::info!(token.id = id, name = %token.name, caller = caller.caller().name(), "token revoked through the API");
    Ok(Json(Token::from(token)))
}
