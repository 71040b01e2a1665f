//! The git mirror of the remote holding the treefiles, and the work trees jobs compose from.
//!
//! Every operation runs the `git` program (see [`command`]): git2's https and ssh transports would
//! need OpenSSL and libssh2 builds, while the git CLI speaks file://, http(s):// and ssh:// as every
//! CI system does. The mirror is a bare repository at `STATE_DIR/git/mirror.git`, fetched with
//! `+refs/heads/*:refs/heads/*` and `--prune`; jobs export exact commits into directories of their own
//! without touching any index, so they run concurrently with each other and with fetches.
//!
//! Cancellation: every method is a future; dropping it kills the git processes it started.

mod backoff;
mod command;
mod export;
mod fetch;

pub use backoff::{
    REMOTE_RETRY_BASE, REMOTE_RETRY_CAP, REMOTE_RETRY_JITTER, backoff_delay, remote_retry_delay,
};
pub use export::ExportedTree;
pub use fetch::{BranchChange, BranchReport, FetchReport, classify};

use crate::secret::Secret;
use command::GitRunner;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a fetch may take before it is stopped (a first fetch of a large repository included).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(String);

impl CommitId {
    /// Checks and wraps `text`.
    pub fn parse(text: &str) -> Result<CommitId, GitError> {
        let valid_length = matches!(text.len(), 40 | 64);
        if valid_length && text.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)) {
            Ok(CommitId(text.to_string()))
        } else {
            Err(GitError::InvalidCommitId { text: text.to_string() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }

    /// Whether this is git's all-zero id (a created branch's "before", a deleted one's "after").
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|byte| byte == b'0')
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// How arbor authenticates to the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    /// HTTP basic authentication with the token as password, sent as an `http.<url>.extraHeader`
    /// given to git through `GIT_CONFIG_*` environment variables (never on the command line).
    Token {
        username: String,
        token: Secret,
    },
    /// An ssh key through `GIT_SSH_COMMAND`; host keys checked against `known_hosts_file`.
    SshKey {
        key_file: PathBuf,
        known_hosts_file: PathBuf,
        accept_new_host_keys: bool,
    },
}

/// One commit's description for streams, builds and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub commit: CommitId,
    pub subject: String,
    pub author_name: String,
    pub author_email: String,
    /// Milliseconds since the Unix epoch.
    pub author_time: i64,
    pub committer_time: i64,
}

/// A git operation failed. Remote failures ([`GitError::is_remote_failure`]) are retried with
/// [`remote_retry_delay`]; none of them is fatal for the service.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot reach the git remote {url}: {detail}; arbor retries with backoff")]
    RemoteUnreachable { url: String, detail: String },
    #[error(
        "the git remote {url} refused arbor's credentials: {detail}; check [git] token-file / token-env \
         / token-username or ssh-key-file / known-hosts-file"
    )]
    AuthenticationFailed { url: String, detail: String },
    #[error("there is no git repository at {url}: {detail}; check [git] url")]
    RepositoryNotFound { url: String, detail: String },
    #[error("fetching from {url} failed: {detail}")]
    FetchFailed { url: String, detail: String },
    #[error("`{command}` did not finish within {timeout:?} and was stopped")]
    TimedOut { command: String, timeout: Duration },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed { command: String, status: String, stderr: String },
    #[error("cannot run `git`: {source}; install git (scripts/install-deps does)")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("\"{text}\" is not a full commit id (40 or 64 lowercase hexadecimal digits)")]
    InvalidCommitId { text: String },
    #[error("commit {commit} is not in the mirror (fetch first, or it was never pushed)")]
    UnknownCommit { commit: CommitId },
    #[error(
        "commit {commit} has a submodule at \"{path}\"; arbor does not fetch submodules, so the tree would \
         be incomplete: vendor the files instead"
    )]
    Submodule { commit: CommitId, path: String },
    #[error("commit {commit} has an entry \"{path}\" that cannot be written safely")]
    UnsafePath { commit: CommitId, path: String },
    #[error("{path} already exists; a work tree is exported into a new directory")]
    DestinationExists { path: PathBuf },
    #[error("`{command}` printed something unexpected: {detail}")]
    UnexpectedOutput { command: String, detail: String },
}

impl GitError {
    /// Whether the remote failed (unreachable, refused, missing, stalled): show it on the streams and
    /// retry later; the mirror is unchanged.
    pub fn is_remote_failure(&self) -> bool {
        matches!(
            self,
            GitError::RemoteUnreachable { .. }
                | GitError::AuthenticationFailed { .. }
                | GitError::RepositoryNotFound { .. }
                | GitError::FetchFailed { .. }
                | GitError::TimedOut { .. }
        )
    }
}

/// The bare mirror of the remote in the state directory.
#[derive(Debug)]
pub struct Mirror {
    url: String,
    runner: GitRunner,
    fetch_timeout: Duration,
    /// One fetch at a time: concurrent fetches would contend for the same ref locks.
    fetch_lock: tokio::sync::Mutex<()>,
}

impl Mirror {
    /// Opens `STATE_DIR/git/mirror.git`, creating it (and `STATE_DIR/git/home`, git's `HOME`) when
    /// missing. Nothing is fetched yet.
    pub async fn open_or_create(
        state_dir: &Path,
        url: &str,
        credentials: Credentials,
    ) -> Result<Mirror, GitError> {
        let git_root = state_dir.join("git");
        for path in [git_root.clone(), git_root.join("home")] {
            tokio::fs::create_dir_all(&path)
                .await
                .map_err(|source| GitError::Io { action: format!("creating {}", path.display()), source })?;
        }
        // Absolute, since git runs with GIT_DIR and may change its directory.
        let git_root = tokio::fs::canonicalize(&git_root)
            .await
            .map_err(|source| GitError::Io { action: format!("resolving {}", git_root.display()), source })?;
        let (directory, home) = (git_root.join("mirror.git"), git_root.join("home"));
        let runner = GitRunner::new(&directory, &home, url, &credentials);
        if !tokio::fs::try_exists(directory.join("HEAD")).await.unwrap_or(false) {
            create_mirror(&runner, &directory).await?;
        }
        Ok(Mirror {
            url: url.to_string(),
            runner,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            fetch_lock: Default::default(),
        })
    }

    /// Sets how long a fetch may take (`[git] fetch-timeout`).
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Mirror {
        self.fetch_timeout = timeout;
        self
    }

    /// The bare repository.
    pub fn directory(&self) -> &Path {
        self.runner.git_dir()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every branch of the mirror and its head.
    pub async fn branches(&self) -> Result<std::collections::BTreeMap<String, CommitId>, GitError> {
        let arguments = ["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/"].map(OsStr::new);
        let output = self.runner.output(&arguments).await?;
        let text = String::from_utf8_lossy(&output);
        let mut branches = std::collections::BTreeMap::new();
        for line in text.lines() {
            let parsed = line.split_once(' ').and_then(|(commit, reference)| {
                Some((reference.strip_prefix("refs/heads/")?.to_string(), CommitId::parse(commit).ok()?))
            });
            let Some((branch, commit)) = parsed else {
                let detail = format!("line \"{line}\"");
                return Err(GitError::UnexpectedOutput { command: "git for-each-ref".into(), detail });
            };
            branches.insert(branch, commit);
        }
        Ok(branches)
    }

    /// The head of `branch` in the mirror, `None` when the mirror has no such branch.
    pub async fn head(&self, branch: &str) -> Result<Option<CommitId>, GitError> {
        let reference = format!("refs/heads/{branch}^{{commit}}");
        let arguments = ["rev-parse", "--verify", "--quiet", "--end-of-options", &reference].map(OsStr::new);
        let finished = self.runner.run(&arguments, false, command::LOCAL_COMMAND_TIMEOUT).await?;
        if !finished.status.success() {
            return Ok(None);
        }
        CommitId::parse(String::from_utf8_lossy(&finished.stdout).trim()).map(Some)
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub async fn is_ancestor(&self, ancestor: &CommitId, descendant: &CommitId) -> Result<bool, GitError> {
        for commit in [ancestor, descendant] {
            self.require_commit(commit).await?;
        }
        let arguments =
            ["merge-base", "--is-ancestor", ancestor.as_str(), descendant.as_str()].map(OsStr::new);
        let finished = self.runner.run(&arguments, false, command::LOCAL_COMMAND_TIMEOUT).await?;
        match finished.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => finished.success(&arguments).map(|_| false),
        }
    }

    /// Subject, author and times of `commit`.
    pub async fn commit_info(&self, commit: &CommitId) -> Result<CommitInfo, GitError> {
        self.require_commit(commit).await?;
        let format = "--format=%H%x00%s%x00%an%x00%ae%x00%at%x00%ct";
        let arguments =
            ["show", "--no-patch", "--no-show-signature", format, commit.as_str()].map(OsStr::new);
        let output = self.runner.output(&arguments).await?;
        let text = String::from_utf8_lossy(&output);
        let fields: Vec<&str> = text.trim_end_matches('\n').split('\0').collect();
        let unexpected =
            || GitError::UnexpectedOutput { command: "git show".into(), detail: text.to_string() };
        let [id, subject, author_name, author_email, author_time, committer_time] = fields.as_slice() else {
            return Err(unexpected());
        };
        let seconds =
            |text: &str| text.parse::<i64>().map(|seconds| seconds * 1000).map_err(|_| unexpected());
        Ok(CommitInfo {
            commit: CommitId::parse(id)?,
            subject: (*subject).to_string(),
            author_name: (*author_name).to_string(),
            author_email: (*author_email).to_string(),
            author_time: seconds(author_time)?,
            committer_time: seconds(committer_time)?,
        })
    }

    /// Fails with [`GitError::UnknownCommit`] unless `commit` is a commit in the mirror.
    async fn require_commit(&self, commit: &CommitId) -> Result<(), GitError> {
        let object = format!("{commit}^{{commit}}");
        let arguments = ["cat-file", "-e", &object].map(OsStr::new);
        let finished = self.runner.run(&arguments, false, command::LOCAL_COMMAND_TIMEOUT).await?;
        if finished.status.success() {
            Ok(())
        } else {
            Err(GitError::UnknownCommit { commit: commit.clone() })
        }
    }
}

/// `git init --bare` without templates (no sample hooks), with automatic gc in the foreground so that
/// no detached process outlives a fetch's timeout.
async fn create_mirror(runner: &GitRunner, directory: &Path) -> Result<(), GitError> {
    let arguments =
        [OsStr::new("init"), OsStr::new("--bare"), OsStr::new("--template="), directory.as_os_str()];
    runner.output(&arguments).await?;
    for (key, value) in [("gc.autoDetach", "false"), ("core.logAllRefUpdates", "false")] {
        runner.output(&["config", key, value].map(OsStr::new)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids() {
        let sha1 = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(CommitId::parse(sha1).unwrap().short(), "0123456789ab");
        assert!(CommitId::parse(&"a".repeat(64)).is_ok());
        assert!(CommitId::parse(&"0".repeat(40)).unwrap().is_zero());
        for invalid in ["", "0123", &sha1.to_uppercase(), &format!("{sha1}0"), "--upload-pack=x"] {
            assert!(CommitId::parse(invalid).is_err(), "{invalid}");
        }
    }
}
