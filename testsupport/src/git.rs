//! [`TestGitRemote`]: a bare git repository in a temporary directory that tests commit to, rewrite
//! and delete branches of, and serve over `file://` or over HTTP through `git http-backend`
//! ([`GitHttpServer`], optionally requiring a token, stoppable to play a remote that is down).
//!
//! Commits are made with git's plumbing (no work tree) with fixed author and committer names and
//! dates, so a test's commits have the same ids on every run.
//!
//! ```no_run
//! use arbor_testsupport::git::{TestFile, TestGitRemote};
//! # fn main() -> anyhow::Result<()> {
//! let remote = TestGitRemote::new()?;
//! let first = remote.commit("testing-devel", &[("manifest.yaml", TestFile::text("ref: x\n"))], "Start")?;
//! let server = remote.serve_http_with_token("arbor", "s3cret")?;
//! // ... fetch server.url() with the token, then rewrite history:
//! remote.force_push("testing-devel", &[("manifest.yaml", TestFile::text("ref: y\n"))], "Rewrite")?;
//! # Ok(()) }
//! ```

mod http;

pub use http::{GitHttpRequest, GitHttpServer};

use crate::tools::require_tool;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::TempDir;

/// The bare repository's directory name, and so the last path component of its URLs.
pub const REPOSITORY_NAME: &str = "remote.git";
/// 2026-01-01T00:00:00Z: the date of a remote's first commit; each later one is a minute later.
const FIRST_COMMIT_TIME: u64 = 1_767_225_600;
const SECONDS_BETWEEN_COMMITS: u64 = 60;
/// The null object id; with mode 0 it removes a path from the index.
const ZERO_OBJECT: &str = "0000000000000000000000000000000000000000";
const AUTHOR_NAME: &str = "Arbor Test";
const AUTHOR_EMAIL: &str = "test@arbor.invalid";

/// A file of a test commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestFile {
    Regular(Vec<u8>),
    Executable(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
    /// A submodule (gitlink) at this commit id.
    Submodule(String),
    /// Removes the path from the tree.
    Removed,
}

impl TestFile {
    pub fn text(content: &str) -> TestFile {
        TestFile::Regular(content.as_bytes().to_vec())
    }

    pub fn script(content: &str) -> TestFile {
        TestFile::Executable(content.as_bytes().to_vec())
    }

    fn mode(&self) -> &'static str {
        match self {
            TestFile::Regular(_) => "100644",
            // Mode 0 removes the path in `update-index --index-info`.
            TestFile::Removed => "0",
            TestFile::Executable(_) => "100755",
            TestFile::Symlink(_) => "120000",
            TestFile::Submodule(_) => "160000",
        }
    }

    fn content(&self) -> &[u8] {
        match self {
            TestFile::Regular(content) | TestFile::Executable(content) => content,
            TestFile::Symlink(target) => target.as_bytes(),
            TestFile::Submodule(_) | TestFile::Removed => &[],
        }
    }
}

/// A bare repository that plays the git remote; removed when dropped.
#[derive(Debug)]
pub struct TestGitRemote {
    directory: TempDir,
    repository: PathBuf,
    /// Where the repository is moved by [`TestGitRemote::take_offline`].
    offline: PathBuf,
    commits: AtomicU64,
}

impl TestGitRemote {
    /// Creates an empty bare repository.
    pub fn new() -> Result<TestGitRemote> {
        require_tool("git")?;
        let directory = tempfile::Builder::new().prefix("arbor-git-remote-").tempdir()?;
        let repository = directory.path().join(REPOSITORY_NAME);
        let offline = directory.path().join("offline.git");
        std::fs::create_dir_all(directory.path().join("home"))?;
        let remote = TestGitRemote { directory, repository, offline, commits: AtomicU64::new(0) };
        remote.git_text(&["init", "--bare", "--quiet", &remote.repository.to_string_lossy()])?;
        Ok(remote)
    }

    /// The bare repository.
    pub fn path(&self) -> &Path {
        &self.repository
    }

    /// `file:///.../remote.git`.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.repository.display())
    }

    /// Commits `files` on top of `branch`'s head (creating the branch when it does not exist):
    /// the head's tree with these paths added, replaced or [`TestFile::Removed`]. Returns the commit id.
    pub fn commit(&self, branch: &str, files: &[(&str, TestFile)], message: &str) -> Result<String> {
        let parent = self.head(branch)?;
        let commit = self.make_commit(parent.as_deref(), parent.as_deref(), files, message)?;
        self.set_branch(branch, &commit)?;
        Ok(commit)
    }

    /// Commits exactly the files of `directory` (symlinks and executable bits included) on top of
    /// `branch`'s head.
    pub fn commit_directory(&self, branch: &str, directory: &Path, message: &str) -> Result<String> {
        let parent = self.head(branch)?;
        let index = tempfile::Builder::new().prefix("arbor-git-index-").tempdir()?;
        let index_file = index.path().join("index");
        let mut add =
            self.command(&["--work-tree", &directory.to_string_lossy(), "add", "--all", "--force", "."]);
        add.env("GIT_INDEX_FILE", &index_file).current_dir(directory);
        run(add, None)?;
        let mut write_tree = self.command(&["write-tree"]);
        write_tree.env("GIT_INDEX_FILE", &index_file);
        let tree = run(write_tree, None)?;
        let commit = self.commit_tree(&tree, parent.as_deref(), message)?;
        self.set_branch(branch, &commit)?;
        Ok(commit)
    }

    /// Rewrites `branch`'s history: replaces its head by a new commit with the head's parent (none for
    /// a root commit) and the head's tree changed by `files`, so the old head is no ancestor of the
    /// new one. Returns the new commit id.
    pub fn force_push(&self, branch: &str, files: &[(&str, TestFile)], message: &str) -> Result<String> {
        let Some(head) = self.head(branch)? else {
            bail!("branch {branch} does not exist; there is no history to rewrite");
        };
        let parent = self.git_text(&["rev-parse", "--verify", "--quiet", &format!("{head}^")]).ok();
        let commit = self.make_commit(Some(&head), parent.as_deref(), files, message)?;
        self.set_branch(branch, &commit)?;
        Ok(commit)
    }

    /// Points `branch` at `commit`, whatever it pointed at before.
    pub fn set_branch(&self, branch: &str, commit: &str) -> Result<()> {
        self.git_text(&["update-ref", &format!("refs/heads/{branch}"), commit]).map(drop)
    }

    pub fn delete_branch(&self, branch: &str) -> Result<()> {
        self.git_text(&["update-ref", "-d", &format!("refs/heads/{branch}")]).map(drop)
    }

    /// The head of `branch`, `None` when it does not exist.
    pub fn head(&self, branch: &str) -> Result<Option<String>> {
        let mut command =
            self.command(&["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")]);
        command.stderr(Stdio::null());
        let output = command.output().context("running git rev-parse")?;
        Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
    }

    /// Moves the repository away, so that its `file://` URL has no repository ("remote down").
    pub fn take_offline(&self) -> Result<()> {
        std::fs::rename(&self.repository, &self.offline).context("moving the test remote away")
    }

    /// Undoes [`TestGitRemote::take_offline`].
    pub fn bring_online(&self) -> Result<()> {
        std::fs::rename(&self.offline, &self.repository).context("moving the test remote back")
    }

    /// Serves the repository at [`GitHttpServer::url`] through `git http-backend`.
    pub fn serve_http(&self) -> Result<GitHttpServer> {
        GitHttpServer::start(self.directory.path(), REPOSITORY_NAME, None)
    }

    /// Like [`TestGitRemote::serve_http`], answering 401 unless a request carries HTTP basic
    /// authentication with `username` and `token`.
    pub fn serve_http_with_token(&self, username: &str, token: &str) -> Result<GitHttpServer> {
        GitHttpServer::start(self.directory.path(), REPOSITORY_NAME, Some((username, token)))
    }

    /// A commit whose tree is `base`'s tree changed by `files`, with parent `parent`.
    fn make_commit(
        &self,
        base: Option<&str>,
        parent: Option<&str>,
        files: &[(&str, TestFile)],
        message: &str,
    ) -> Result<String> {
        let index = tempfile::Builder::new().prefix("arbor-git-index-").tempdir()?;
        let index_file = index.path().join("index");
        let with_index = |arguments: &[&str]| {
            let mut command = self.command(arguments);
            command.env("GIT_INDEX_FILE", &index_file);
            command
        };
        run(with_index(&["read-tree", base.unwrap_or("--empty")]), None)?;
        // Blobs written in one `hash-object` call, the index changed in one `update-index` call.
        let blobs: Vec<&TestFile> = files
            .iter()
            .map(|(_, file)| file)
            .filter(|file| !matches!(file, TestFile::Removed | TestFile::Submodule(_)))
            .collect();
        let mut blob_paths = String::new();
        for (number, file) in blobs.iter().enumerate() {
            let path = index.path().join(format!("blob-{number}"));
            std::fs::write(&path, file.content())?;
            blob_paths.push_str(&format!("{}\n", path.display()));
        }
        let hashed = run(
            self.command(&["hash-object", "-w", "--no-filters", "--stdin-paths"]),
            Some(blob_paths.as_bytes()),
        )?;
        let mut objects = hashed.lines();
        let mut index_info = String::new();
        for (path, file) in files {
            if path.contains('\n') {
                bail!("test file paths cannot contain line breaks: {path:?}");
            }
            let object = match file {
                TestFile::Removed => ZERO_OBJECT.to_string(),
                TestFile::Submodule(commit) => commit.clone(),
                _ => objects.next().context("git hash-object printed too few ids")?.to_string(),
            };
            index_info.push_str(&format!("{} {object}\t{path}\n", file.mode()));
        }
        run(with_index(&["update-index", "--index-info"]), Some(index_info.as_bytes()))?;
        let tree = run(with_index(&["write-tree"]), None)?;
        self.commit_tree(&tree, parent, message)
    }

    fn commit_tree(&self, tree: &str, parent: Option<&str>, message: &str) -> Result<String> {
        let mut arguments = vec!["commit-tree", tree, "-m", message];
        if let Some(parent) = parent {
            arguments.extend(["-p", parent]);
        }
        let number = self.commits.fetch_add(1, Ordering::SeqCst);
        let date = format!("@{} +0000", FIRST_COMMIT_TIME + number * SECONDS_BETWEEN_COMMITS);
        let mut command = self.command(&arguments);
        command
            .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
            .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
            .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
            .env("GIT_COMMITTER_DATE", &date);
        run(command, None)
    }

    /// `git` in the repository, with no user or system configuration.
    fn command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new("git");
        command
            .args(arguments)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.directory.path().join("home"))
            .env("GIT_DIR", &self.repository)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("LC_ALL", "C");
        command
    }

    fn git_text(&self, arguments: &[&str]) -> Result<String> {
        run(self.command(arguments), None)
    }
}

/// Runs `command` (feeding `input` to its stdin) and returns its trimmed stdout, or fails with stderr.
fn run(mut command: Command, input: Option<&[u8]>) -> Result<String> {
    command.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let description = format!("{command:?}");
    let mut child = command.spawn().with_context(|| format!("starting {description}"))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input).with_context(|| format!("writing to {description}"))?;
    }
    let output = child.wait_with_output().with_context(|| format!("waiting for {description}"))?;
    if !output.status.success() {
        bail!("{description} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_reproducible_and_directories_keep_modes_and_symlinks() {
        let make = || {
            let remote = TestGitRemote::new().unwrap();
            let first = remote.commit("main", &[("a.txt", TestFile::text("a\n"))], "First").unwrap();
            (remote, first)
        };
        let ((remote, first), (_other, same)) = (make(), make());
        assert_eq!(first, same, "fixed names and dates give the same commit id");

        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            directory.path().join("run.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("run.sh", directory.path().join("link")).unwrap();
        let commit = remote.commit_directory("main", directory.path(), "Directory").unwrap();
        let listing = remote.git_text(&["ls-tree", "-r", &commit]).unwrap();
        let modes: Vec<(&str, &str)> = listing
            .lines()
            .map(|line| (line.split(' ').next().unwrap(), line.rsplit('\t').next().unwrap()))
            .collect();
        assert_eq!(modes, [("120000", "link"), ("100755", "run.sh")]);
        assert_eq!(remote.git_text(&["rev-parse", &format!("{commit}^")]).unwrap(), first);
    }
}
