//! Fetching the mirror and reporting what happened to every branch: new, advanced (fast-forward),
//! force-pushed (the old head is not an ancestor of the new one), deleted or unchanged; and telling
//! an unreachable remote from refused credentials and a missing repository.

use super::{CommitId, GitError, Mirror};
use std::collections::BTreeSet;
use std::ffi::OsStr;

/// Every branch, mirrored under the same name; branches deleted on the remote are pruned.
const BRANCH_REFSPEC: &str = "+refs/heads/*:refs/heads/*";

/// What a fetch did to one branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchChange {
    New,
    /// Fast-forward: the old head is an ancestor of the new one.
    Advanced,
    /// The old head is not an ancestor of the new one (history rewritten).
    ForcePushed,
    Deleted,
    Unchanged,
}

/// One branch's heads before and after a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchReport {
    pub branch: String,
    pub before: Option<CommitId>,
    pub after: Option<CommitId>,
    pub change: BranchChange,
}

/// Every branch of the mirror before or after a fetch, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchReport {
    pub branches: Vec<BranchReport>,
}

impl FetchReport {
    pub fn branch(&self, name: &str) -> Option<&BranchReport> {
        self.branches.iter().find(|report| report.branch == name)
    }

    /// The branches that are not [`BranchChange::Unchanged`].
    pub fn changes(&self) -> impl Iterator<Item = &BranchReport> {
        self.branches.iter().filter(|report| report.change != BranchChange::Unchanged)
    }
}

/// Classifies one branch from its heads; `old_is_ancestor` is only consulted when both exist and
/// differ. `None` when the branch exists on neither side.
pub fn classify(
    before: Option<&CommitId>,
    after: Option<&CommitId>,
    old_is_ancestor: bool,
) -> Option<BranchChange> {
    Some(match (before, after) {
        (None, None) => return None,
        (None, Some(_)) => BranchChange::New,
        (Some(_), None) => BranchChange::Deleted,
        (Some(before), Some(after)) if before == after => BranchChange::Unchanged,
        (Some(_), Some(_)) if old_is_ancestor => BranchChange::Advanced,
        (Some(_), Some(_)) => BranchChange::ForcePushed,
    })
}

/// Lower-case pieces of git's (LC_ALL=C) stderr that say the credentials were refused.
const AUTHENTICATION_MARKERS: &[&str] = &[
    "authentication failed",
    "terminal prompts disabled",
    "could not read username",
    "could not read password",
    "returned error: 401",
    "returned error: 403",
    "permission denied (publickey",
    "host key verification failed",
    "invalid username or password",
];
/// ... that there is no repository at the URL.
const NOT_FOUND_MARKERS: &[&str] = &[
    "does not appear to be a git repository",
    "repository not found",
    "' not found",
    "could not be found",
    "returned error: 404",
];
/// ... that the remote could not be reached or broke off.
const UNREACHABLE_MARKERS: &[&str] = &[
    "could not resolve host",
    "connection refused",
    "failed to connect",
    "couldn't connect",
    "timed out",
    "network is unreachable",
    "no route to host",
    "connection reset",
    "empty reply from server",
    "remote end hung up",
    "returned error: 5",
    "ssl",
    "tls",
    "early eof",
    "could not read from remote repository",
];

/// The typed error of a failed fetch, from git's stderr.
pub(super) fn classify_failure(url: &str, stderr: &str) -> GitError {
    let lower = stderr.to_ascii_lowercase();
    let has = |markers: &[&str]| markers.iter().any(|marker| lower.contains(marker));
    let (url, detail) = (url.to_string(), stderr.to_string());
    if has(AUTHENTICATION_MARKERS) {
        GitError::AuthenticationFailed { url, detail }
    } else if has(NOT_FOUND_MARKERS) {
        GitError::RepositoryNotFound { url, detail }
    } else if has(UNREACHABLE_MARKERS) {
        GitError::RemoteUnreachable { url, detail }
    } else {
        GitError::FetchFailed { url, detail }
    }
}

impl Mirror {
    /// Fetches every branch from the remote and reports each branch's change. On failure the mirror
    /// is as before and the error says whether the remote is unreachable, refused the credentials or
    /// has no repository.
    pub async fn fetch(&self) -> Result<FetchReport, GitError> {
        let _one_fetch_at_a_time = self.fetch_lock.lock().await;
        let before = self.branches().await?;
        let arguments = [
            "fetch",
            "--prune",
            "--no-tags",
            "--quiet",
            "--no-write-fetch-head",
            "--end-of-options",
            &self.url,
            BRANCH_REFSPEC,
        ]
        .map(OsStr::new);
        let finished = self.runner.run(&arguments, true, self.fetch_timeout).await?;
        if !finished.status.success() {
            return Err(classify_failure(&self.url, &finished.stderr));
        }
        let after = self.branches().await?;
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let mut branches = Vec::new();
        for name in names {
            let (old, new) = (before.get(name), after.get(name));
            let old_is_ancestor = match (old, new) {
                (Some(old), Some(new)) if old != new => self.is_ancestor(old, new).await?,
                _ => false,
            };
            if let Some(change) = classify(old, new, old_is_ancestor) {
                branches.push(BranchReport {
                    branch: name.clone(),
                    before: old.cloned(),
                    after: new.cloned(),
                    change,
                });
            }
        }
        Ok(FetchReport { branches })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifications() {
        let a = CommitId::parse(&"a".repeat(40)).unwrap();
        let b = CommitId::parse(&"b".repeat(40)).unwrap();
        let cases = [
            (None, None, false, None),
            (None, Some(&a), false, Some(BranchChange::New)),
            (Some(&a), None, false, Some(BranchChange::Deleted)),
            (Some(&a), Some(&a), false, Some(BranchChange::Unchanged)),
            (Some(&a), Some(&b), true, Some(BranchChange::Advanced)),
            (Some(&a), Some(&b), false, Some(BranchChange::ForcePushed)),
        ];
        for (before, after, old_is_ancestor, expected) in cases {
            assert_eq!(classify(before, after, old_is_ancestor), expected, "{before:?} -> {after:?}");
        }
    }

    #[test]
    fn failures_are_told_apart() {
        let cases = [
            (
                "fatal: unable to access 'http://127.0.0.1:1/r.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server",
                "unreachable",
            ),
            (
                "fatal: unable to access 'https://nowhere.invalid/r.git/': Could not resolve host: nowhere.invalid",
                "unreachable",
            ),
            (
                "fatal: unable to access 'http://127.0.0.1:5/r.git/': The requested URL returned error: 502",
                "unreachable",
            ),
            (
                "fatal: could not read Username for 'http://127.0.0.1:5': terminal prompts disabled",
                "authentication",
            ),
            (
                "remote: Invalid username or password.\nfatal: Authentication failed for 'https://h/r.git/'",
                "authentication",
            ),
            (
                "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
                "authentication",
            ),
            (
                "fatal: '/tmp/x/remote.git' does not appear to be a git repository\nfatal: Could not read from remote repository.",
                "not found",
            ),
            ("remote: Repository not found.\nfatal: repository 'https://h/r.git/' not found", "not found"),
            (
                "ssh: connect to host h port 22: Connection refused\nfatal: Could not read from remote repository.",
                "unreachable",
            ),
            ("fatal: something else entirely", "other"),
        ];
        for (stderr, expected) in cases {
            let kind = match classify_failure("URL", stderr) {
                GitError::RemoteUnreachable { .. } => "unreachable",
                GitError::AuthenticationFailed { .. } => "authentication",
                GitError::RepositoryNotFound { .. } => "not found",
                GitError::FetchFailed { .. } => "other",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(kind, expected, "{stderr}");
        }
    }
}
