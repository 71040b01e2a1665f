//! The `[git]` section: the remote's URL, polling, and the credentials that fit its kind of URL.

use super::reader::{Document, Table};
use super::sections::{duration, path, secret_key, secret_source, with_section};
use super::values::{RemoteKind, UrlProblem, classify_git_url};
use super::{GitCredentialSettings, GitSettings};
use crate::git::DEFAULT_FETCH_TIMEOUT;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A minute: new commits show up within a minute without webhooks, and a forge sees one small
/// request per minute.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Polling faster than this only loads the forge; use webhooks for immediate reaction.
const MINIMUM_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// The user name sent with a token; GitHub, GitLab and Forgejo accept any for personal tokens.
const DEFAULT_TOKEN_USERNAME: &str = "arbor";

const GIT_KEYS: &[&str] = &[
    "url",
    "poll-interval",
    "fetch-timeout",
    "token-file",
    "token-env",
    "token-username",
    "ssh-key-file",
    "known-hosts-file",
    "strict-host-key-checking",
    "webhook-secret-file",
    "webhook-secret-env",
];

pub(super) fn read_git(
    document: &mut Document,
    root: Table,
    base: &Path,
    state_dir: Option<&PathBuf>,
) -> Option<GitSettings> {
    if !root.contains("git") {
        let hint = "a [git] section with the \"url\" of the repository holding the treefiles";
        root.missing(document, "git", hint);
        return None;
    }
    with_section(document, root, "git", |document, table| {
        table.check_keys(document, GIT_KEYS);
        let url =
            table.required_string(document, "url", "the URL of the git repository holding the treefiles");
        let remote_kind = url.as_ref().and_then(|url| match classify_git_url(url.value) {
            Ok(kind) => Some(kind),
            Err(UrlProblem::Credentials) => {
                let message = "must not carry a user name, password or token: put the token in a file \
                               named by \"token-file\" (or a variable named by \"token-env\") and the user \
                               name in \"token-username\"";
                document.invalid(url.span.clone(), table.key("url"), message);
                None
            }
            Err(UrlProblem::Invalid(message)) => {
                document.invalid(url.span.clone(), table.key("url"), message);
                None
            }
        });
        let poll_interval =
            duration(document, table, "poll-interval", DEFAULT_POLL_INTERVAL, MINIMUM_POLL_INTERVAL);
        let fetch_timeout =
            duration(document, table, "fetch-timeout", DEFAULT_FETCH_TIMEOUT, Duration::from_secs(1));
        let webhook_secret = secret_source(document, table, base, "webhook-secret");
        let credentials =
            remote_kind.and_then(|kind| read_credentials(document, table, base, kind, state_dir));
        Some(GitSettings {
            url: url?.value.to_string(),
            remote_kind: remote_kind?,
            poll_interval: poll_interval?,
            fetch_timeout: fetch_timeout?,
            credentials: credentials?,
            webhook_secret: webhook_secret.ok()?.map(|source| source.value),
        })
    })
}

/// The credentials, checked against the kind of remote they are for.
fn read_credentials(
    document: &mut Document,
    table: Table,
    base: &Path,
    kind: RemoteKind,
    state_dir: Option<&PathBuf>,
) -> Option<GitCredentialSettings> {
    let token = secret_source(document, table, base, "token");
    let token_username = table.string(document, "token-username");
    let ssh_key_file = path(document, table, base, "ssh-key-file");
    let known_hosts_file = path(document, table, base, "known-hosts-file");
    let strict = table.boolean(document, "strict-host-key-checking");
    let mut wrong_kind = |key: &str, needs: &str| {
        if let Some(value) = table.value(key) {
            let message = format!("applies to {needs} remotes only, and [git] \"url\" is {}", describe(kind));
            document.invalid(value.span(), table.key(key), message);
            true
        } else {
            false
        }
    };
    match kind {
        RemoteKind::File => {
            let keys = ["token-file", "token-env", "token-username", "ssh-key-file", "known-hosts-file"];
            let misplaced = keys.iter().filter(|key| wrong_kind(key, "https:// or ssh://")).count();
            let misplaced = misplaced + usize::from(wrong_kind("strict-host-key-checking", "ssh://"));
            (misplaced == 0).then_some(GitCredentialSettings::None)
        }
        RemoteKind::Http { .. } | RemoteKind::Https => {
            let misplaced = ["ssh-key-file", "known-hosts-file", "strict-host-key-checking"]
                .iter()
                .filter(|key| wrong_kind(key, "ssh://"))
                .count();
            if misplaced > 0 {
                return None;
            }
            let Some(token) = token.ok()? else {
                if table.contains("token-username") {
                    let message = "needs a token: set \"token-file\" or \"token-env\"";
                    document.invalid(
                        table.value("token-username")?.span(),
                        table.key("token-username"),
                        message,
                    );
                    return None;
                }
                return Some(GitCredentialSettings::None);
            };
            if kind == (RemoteKind::Http { loopback: false }) {
                let message = "would send the token unencrypted over http://; use an https:// URL";
                document.invalid(token.span, table.key(&secret_key("token", &token.value)), message);
                return None;
            }
            let username = match token_username {
                Some(name) if name.value.is_empty() || name.value.contains(':') => {
                    document.invalid(
                        name.span,
                        table.key("token-username"),
                        "must be non-empty, without \":\"",
                    );
                    return None;
                }
                Some(name) => name.value.to_string(),
                None if table.contains("token-username") => return None,
                None => DEFAULT_TOKEN_USERNAME.to_string(),
            };
            Some(GitCredentialSettings::Token { username, token: token.value })
        }
        RemoteKind::Ssh => {
            let misplaced = ["token-file", "token-env", "token-username"]
                .iter()
                .filter(|key| wrong_kind(key, "https://"))
                .count();
            let strict = if table.contains("strict-host-key-checking") { strict? } else { true };
            if !table.contains("ssh-key-file") {
                table.missing(
                    document,
                    "ssh-key-file",
                    "an ssh:// remote needs the private key arbor fetches with",
                );
            }
            let known_hosts_file = match known_hosts_file {
                Some(file) => Some(file),
                None if table.contains("known-hosts-file") => None,
                None if strict => {
                    let hint = "an ssh:// remote needs the host's public key (a known_hosts file), or \
                                strict-host-key-checking = false to trust it on first use";
                    table.missing(document, "known-hosts-file", hint);
                    None
                }
                None => state_dir.map(|state_dir| state_dir.join("git").join("known_hosts")),
            };
            if misplaced > 0 || token.is_err() {
                return None;
            }
            Some(GitCredentialSettings::SshKey {
                key_file: ssh_key_file?,
                known_hosts_file: known_hosts_file?,
                accept_new_host_keys: !strict,
            })
        }
    }
}

fn describe(kind: RemoteKind) -> &'static str {
    match kind {
        RemoteKind::File => "a file:// URL",
        RemoteKind::Http { .. } => "an http:// URL",
        RemoteKind::Https => "an https:// URL",
        RemoteKind::Ssh => "an ssh remote",
    }
}
