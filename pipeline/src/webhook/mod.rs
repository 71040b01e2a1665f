//! Webhooks of GitHub, GitLab and Gitea/Forgejo: which forge sent a request, whether it carries the
//! configured secret, and what it says. Pure functions of headers, body and secret.
//!
//! A webhook only wakes the fetcher up: the mirror's fetch is the truth about branches, so the
//! commit ids in a payload are never trusted beyond choosing what to fetch first. The signature is
//! checked on the raw body before it is parsed.

mod payload;
mod signature;

pub use signature::verify;

use crate::git::CommitId;
use crate::secret::Secret;
use std::fmt;

/// GitHub's limit on payloads; the web layer should refuse larger bodies before reading them.
pub const MAXIMUM_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The forge that sent a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
}

impl fmt::Display for Forge {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(match self {
            Forge::GitHub => "GitHub",
            Forge::GitLab => "GitLab",
            Forge::Gitea => "Gitea",
            Forge::Forgejo => "Forgejo",
        })
    }
}

/// The request headers, names compared case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct WebhookHeaders {
    entries: Vec<(String, String)>,
}

impl WebhookHeaders {
    pub fn new() -> WebhookHeaders {
        WebhookHeaders::default()
    }

    pub fn insert(&mut self, name: &str, value: &str) {
        self.entries.push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.entries.iter().find(|(header, _)| *header == name).map(|(_, value)| value.as_str())
    }

    /// The first non-empty value of `name`.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|value| !value.is_empty())
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for WebhookHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> WebhookHeaders {
        let mut headers = WebhookHeaders::new();
        for (name, value) in pairs {
            headers.insert(name.as_ref(), value.as_ref());
        }
        headers
    }
}

/// A verified webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    Push(PushEvent),
    /// GitHub's `ping`, sent when a webhook is created.
    Ping {
        forge: Forge,
        delivery: Option<String>,
    },
    /// An event arbor does not act on (issues, pull requests, ...), with why.
    Ignored {
        forge: Forge,
        event: String,
        delivery: Option<String>,
        reason: String,
    },
}

impl WebhookEvent {
    /// The push, or [`WebhookError::NotAPush`].
    pub fn into_push(self) -> Result<PushEvent, WebhookError> {
        match self {
            WebhookEvent::Push(push) => Ok(push),
            WebhookEvent::Ping { forge, .. } => Err(WebhookError::NotAPush { forge, event: "ping".into() }),
            WebhookEvent::Ignored { forge, event, .. } => Err(WebhookError::NotAPush { forge, event }),
        }
    }
}

/// A push to a branch or tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub forge: Forge,
    /// The full reference, e.g. `refs/heads/testing-devel`.
    pub reference: String,
    /// The old head; `None` when the reference was created.
    pub before: Option<CommitId>,
    /// The new head; `None` when the reference was deleted.
    pub after: Option<CommitId>,
    pub deleted: bool,
    /// The forge's id of this delivery (to recognize redeliveries).
    pub delivery: Option<String>,
}

impl PushEvent {
    /// The branch name, when the push was to a branch (not a tag).
    pub fn branch(&self) -> Option<&str> {
        self.reference.strip_prefix("refs/heads/")
    }
}

/// Why a webhook request was refused. [`WebhookError::status`] is the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "no X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event or X-Forgejo-Event header: not a webhook of a \
         forge arbor knows"
    )]
    UnknownForge,
    #[error(
        "the {forge} webhook has no {header} header: set the webhook's secret on {forge} to the one arbor \
         reads from [git] webhook-secret-file / webhook-secret-env"
    )]
    MissingSignature { forge: Forge, header: &'static str },
    #[error(
        "the {forge} webhook's {header} does not match the configured secret: set the same secret on \
         {forge} and in [git] webhook-secret-file / webhook-secret-env"
    )]
    BadSignature { forge: Forge, header: &'static str },
    #[error("the webhook body has {bytes} bytes, more than the {limit} accepted")]
    PayloadTooLarge { bytes: usize, limit: usize },
    #[error("the {forge} webhook body is not valid JSON: {message} at line {line}, column {column}")]
    MalformedJson { forge: Forge, message: String, line: usize, column: usize },
    #[error("the {forge} push event has no \"{field}\"")]
    MissingField { forge: Forge, field: &'static str },
    #[error("the {forge} push event's \"{field}\" is invalid: {message}")]
    InvalidField { forge: Forge, field: &'static str, message: String },
    #[error("the {forge} \"{event}\" event is not a push")]
    NotAPush { forge: Forge, event: String },
}

impl WebhookError {
    /// 401 for a missing or wrong secret, 413 for an oversized body, 400 otherwise; the event is
    /// never acted on.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::MissingSignature { .. } | WebhookError::BadSignature { .. } => 401,
            WebhookError::PayloadTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// The forge and its event name, from the event headers. Forgejo and Gitea also send GitHub's
/// headers, so their own are looked at first.
pub fn detect_forge(headers: &WebhookHeaders) -> Result<(Forge, String), WebhookError> {
    let candidates = [
        (Forge::Forgejo, "X-Forgejo-Event"),
        (Forge::Gitea, "X-Gitea-Event"),
        (Forge::GitLab, "X-Gitlab-Event"),
        (Forge::GitHub, "X-GitHub-Event"),
    ];
    candidates
        .iter()
        .find_map(|(forge, header)| headers.non_empty(header).map(|event| (*forge, event.to_string())))
        .ok_or(WebhookError::UnknownForge)
}

/// Detects the forge, verifies the secret on the raw body, then parses the event.
pub fn receive(headers: &WebhookHeaders, body: &[u8], secret: &Secret) -> Result<WebhookEvent, WebhookError> {
    if body.len() > MAXIMUM_BODY_BYTES {
        return Err(WebhookError::PayloadTooLarge { bytes: body.len(), limit: MAXIMUM_BODY_BYTES });
    }
    let (forge, event) = detect_forge(headers)?;
    verify(forge, headers, body, secret)?;
    payload::parse(forge, &event, delivery(forge, headers), body)
}

/// The delivery id header of `forge` (GitLab: the retry-stable `Idempotency-Key`, else the event UUID).
fn delivery(forge: Forge, headers: &WebhookHeaders) -> Option<String> {
    let names: &[&str] = match forge {
        Forge::GitHub => &["X-GitHub-Delivery"],
        Forge::GitLab => &["Idempotency-Key", "X-Gitlab-Event-UUID"],
        Forge::Gitea => &["X-Gitea-Delivery"],
        Forge::Forgejo => &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
    };
    names.iter().find_map(|name| headers.non_empty(name)).map(str::to_string)
}

#[cfg(test)]
mod tests;
