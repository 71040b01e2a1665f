//! `POST /api/v1/hooks/git`: push events of GitHub, GitLab and Gitea/Forgejo wake the scheduler's fetch.
//!
//! The body (at most [`MAXIMUM_BODY_BYTES`]) is checked against the configured secret before anything of
//! it is read; a missing or wrong signature is 401 and nothing happens. The payload's commits are never
//! trusted: a push to a stream's branch only makes the scheduler fetch now, and the fetch decides what is
//! composed. Without a configured secret every request is refused (403).

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use bytes::Bytes;
use pipeline::api::{ErrorResponse, WebhookEventKind, WebhookResult};
use pipeline::webhook::{MAXIMUM_BODY_BYTES, WebhookError, WebhookEvent, WebhookHeaders, receive};

use crate::error::ApiError;
use crate::extract::payload_too_large;
use crate::state::AppState;

/// Receives a forge's webhook.
///
/// Authenticated by the webhook secret (`X-Hub-Signature-256`, `X-Gitea-Signature`, `X-Forgejo-Signature`
/// or `X-Gitlab-Token`), not by a token. A push to a stream's branch makes the scheduler fetch now (202);
/// GitHub's ping is 200; other events are 202 with why they are ignored.
#[utoipa::path(
    post,
    path = "/hooks/git",
    tag = "webhooks",
    operation_id = "receive_git_webhook",
    security(()),
    request_body(content = String, content_type = "application/json", description = "The forge's event, as it sent it"),
    responses(
        (status = 200, description = "A ping: the secret matches", body = WebhookResult),
        (status = 202, description = "A push (a fetch follows) or an ignored event", body = WebhookResult),
        (status = 400, description = "Not a forge's webhook, or a malformed event", body = ErrorResponse),
        (status = 401, description = "The signature or token is missing or does not match the secret", body = ErrorResponse),
        (status = 403, description = "No webhook secret is configured", body = ErrorResponse),
        (status = 413, description = "The body is larger than 25 MiB", body = ErrorResponse),
    ),
)]
pub(crate) async fn receive_git_webhook(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<WebhookResult>), ApiError> {
    let Some(secret) = state.webhook_secret.clone() else {
        return Err(ApiError::forbidden(
            "webhooks_disabled",
            "webhooks are not configured on this server: set [git] webhook-secret-file or webhook-secret-env in \
             arbor.toml (and the same secret on the forge), then restart arbor",
        ));
    };
    let headers: WebhookHeaders = request
        .headers()
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|value| (name.as_str(), value)))
        .collect();
    let body = Bytes::from_request(request, &state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            payload_too_large(MAXIMUM_BODY_BYTES)
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("reading the webhook body failed: {}", rejection.body_text()),
            )
        }
    })?;
    let event = match receive(&headers, &body, &secret) {
        Ok(event) => event,
        Err(error) => {
            metrics::counter!(pipeline::metrics::WEBHOOKS_TOTAL, "forge" => "unknown", "outcome" => "refused").increment(1);
            tracing::warn!(error = %error, "refused a webhook");
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return Err(ApiError::new(status, error_code(&error), error.to_string()));
        }
    };
    let (status, result) = match event {
        WebhookEvent::Ping { forge, delivery } => (
            StatusCode::OK,
            WebhookResult {
                event: WebhookEventKind::Ping,
                forge: forge.to_string(),
                delivery,
                message: "the secret matches; pushes to the streams' branches make arbor fetch at once"
                    .into(),
                streams: Vec::new(),
            },
        ),
        WebhookEvent::Ignored { forge, event, delivery, reason } => (
            StatusCode::ACCEPTED,
            WebhookResult {
                event: WebhookEventKind::Ignored,
                forge: forge.to_string(),
                delivery,
                message: format!("the {event:?} event is ignored: {reason}"),
                streams: Vec::new(),
            },
        ),
        WebhookEvent::Push(push) => {
            let streams: Vec<String> = match push.branch() {
                Some(branch) => state
                    .config
                    .streams
                    .iter()
                    .filter(|stream| stream.branch == branch)
                    .map(|stream| stream.name.clone())
                    .collect(),
                None => Vec::new(),
            };
            let (event, message) = if streams.is_empty() {
                let branches = state
                    .config
                    .streams
                    .iter()
                    .map(|stream| stream.branch.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    WebhookEventKind::Ignored,
                    format!("no stream builds {}: the streams build the branches {branches}", push.reference),
                )
            } else {
                if let Err(error) = state.store.request_fetch().await {
                    tracing::warn!(
                        error = %crate::error::chain(&error),
                        "could not tell the other replicas about the push; the scheduler's next poll fetches"
                    );
                }
                (
                    WebhookEventKind::Push,
                    format!(
                        "fetching the remote now; {} get composes if the branch moved",
                        streams.join(", ")
                    ),
                )
            };
            tracing::info!(
                forge = %push.forge,
                reference = %push.reference,
                delivery = push.delivery.as_deref().unwrap_or(""),
                streams = %streams.join(","),
                "webhook push"
            );
            let result = WebhookResult {
                event,
                forge: push.forge.to_string(),
                delivery: push.delivery,
                message,
                streams,
            };
            (StatusCode::ACCEPTED, result)
        }
    };
    let outcome = match result.event {
        WebhookEventKind::Push => "push",
        WebhookEventKind::Ping => "ping",
        WebhookEventKind::Ignored => "ignored",
    };
    metrics::counter!(pipeline::metrics::WEBHOOKS_TOTAL, "forge" => result.forge.clone(), "outcome" => outcome)
        .increment(1);
    Ok((status, Json(result)))
}

fn error_code(error: &WebhookError) -> &'static str {
    match error {
        WebhookError::UnknownForge => "unknown_forge",
        WebhookError::MissingSignature { .. } => "missing_signature",
        WebhookError::BadSignature { .. } => "bad_signature",
        WebhookError::PayloadTooLarge { .. } => "payload_too_large",
        WebhookError::MalformedJson { .. } => "invalid_json",
        WebhookError::MissingField { .. } | WebhookError::InvalidField { .. } => "invalid_event",
        WebhookError::NotAPush { .. } => "not_a_push",
    }
}
