//! The events in verified webhook bodies: pushes (`ref`, `before`, `after`; GitHub's `deleted`;
//! an all-zero `after` for a deletion on every forge), GitHub's ping, and everything else ignored.

use super::{Forge, PushEvent, WebhookError, WebhookEvent};
use crate::git::CommitId;
use serde_json::Value;

/// What an ignored event is told.
const IGNORED_REASON: &str = "arbor acts on push events only; the next fetch sees every branch change";

pub(super) fn parse(
    forge: Forge,
    event: &str,
    delivery: Option<String>,
    body: &[u8],
) -> Result<WebhookEvent, WebhookError> {
    let is_push = match forge {
        Forge::GitHub if event == "ping" => return Ok(WebhookEvent::Ping { forge, delivery }),
        Forge::GitHub | Forge::Gitea | Forge::Forgejo => event == "push",
        // A system hook carries the project event's body; its object_kind tells which.
        Forge::GitLab => matches!(event, "Push Hook" | "Tag Push Hook" | "System Hook"),
    };
    if !is_push {
        return Ok(ignored(forge, event, delivery));
    }
    let document: Value = serde_json::from_slice(body).map_err(|error| WebhookError::MalformedJson {
        forge,
        message: error.to_string().split(" at line ").next().unwrap_or_default().to_string(),
        line: error.line(),
        column: error.column(),
    })?;
    if forge == Forge::GitLab {
        match document.get("object_kind").and_then(Value::as_str) {
            Some("push" | "tag_push") => {}
            Some(_) if event == "System Hook" => return Ok(ignored(forge, event, delivery)),
            Some(kind) => {
                let message = format!("\"{kind}\" in a \"{event}\"");
                return Err(WebhookError::InvalidField { forge, field: "object_kind", message });
            }
            None => return Err(WebhookError::MissingField { forge, field: "object_kind" }),
        }
    }
    let reference = string_field(forge, &document, "ref")?;
    if !reference.starts_with("refs/") {
        let message = format!("\"{reference}\" is not a full reference (refs/heads/... or refs/tags/...)");
        return Err(WebhookError::InvalidField { forge, field: "ref", message });
    }
    let before = commit_field(forge, &document, "before")?;
    let after = commit_field(forge, &document, "after")?;
    let deleted = document.get("deleted").and_then(Value::as_bool).unwrap_or(false) || after.is_none();
    Ok(WebhookEvent::Push(PushEvent {
        forge,
        reference: reference.to_string(),
        before,
        after,
        deleted,
        delivery,
    }))
}

fn ignored(forge: Forge, event: &str, delivery: Option<String>) -> WebhookEvent {
    WebhookEvent::Ignored { forge, event: event.to_string(), delivery, reason: IGNORED_REASON.to_string() }
}

fn string_field<'a>(forge: Forge, document: &'a Value, field: &'static str) -> Result<&'a str, WebhookError> {
    match document.get(field) {
        None | Some(Value::Null) => Err(WebhookError::MissingField { forge, field }),
        Some(Value::String(text)) => Ok(text),
        Some(other) => {
            let message = format!("must be a string, found {other}");
            Err(WebhookError::InvalidField { forge, field, message })
        }
    }
}

/// A commit id field; `None` for git's all-zero id (no commit: created or deleted reference).
fn commit_field(
    forge: Forge,
    document: &Value,
    field: &'static str,
) -> Result<Option<CommitId>, WebhookError> {
    let text = string_field(forge, document, field)?;
    let commit = CommitId::parse(text).map_err(|error| WebhookError::InvalidField {
        forge,
        field,
        message: error.to_string(),
    })?;
    Ok((!commit.is_zero()).then_some(commit))
}
