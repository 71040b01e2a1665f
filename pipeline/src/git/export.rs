//! Writing the exact tree of a commit into a new directory: the blobs byte for byte (no attributes,
//! filters or line-ending conversion), executable bits and symlinks as committed. No index is used,
//! so any number of exports run at once, beside fetches.
//!
//! The tree is written into a staging directory next to the destination and renamed into place, so
//! the destination either holds the whole tree or does not exist (also when the export is cancelled).
//! The files are written by one blocking task (the blocking door): a cancelled export stops it between
//! files, and it removes the staging directory itself, so no write in flight outlives the cleanup.

use super::command::Running;
use super::{CommitId, GitError, Mirror};
use common::blocking::{Cancellation, run_blocking};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Writing a configuration repository's tree takes seconds; this only stops a hung export.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// git's file modes.
const MODE_REGULAR: &str = "100644";
const MODE_EXECUTABLE: &str = "100755";
const MODE_SYMLINK: &str = "120000";
const MODE_SUBMODULE: &str = "160000";
/// Permissions of written files and directories (independent of the umask).
const PERMISSIONS_REGULAR: u32 = 0o644;
const PERMISSIONS_EXECUTABLE: u32 = 0o755;

/// A commit's tree written into a directory of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedTree {
    pub commit: CommitId,
    pub directory: PathBuf,
    /// Files and symlinks written.
    pub files: usize,
}

/// One blob of the tree.
#[derive(Debug)]
struct Entry {
    kind: EntryKind,
    object: String,
    path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Regular,
    Executable,
    Symlink,
}

impl Mirror {
    /// Writes the tree of `commit` into `destination`, which must not exist (its parent is created).
    pub async fn export(&self, commit: &CommitId, destination: &Path) -> Result<ExportedTree, GitError> {
        self.require_commit(commit).await?;
        if tokio::fs::symlink_metadata(destination).await.is_ok() {
            return Err(GitError::DestinationExists { path: destination.to_path_buf() });
        }
        let entries = self.tree_entries(commit).await?;
        let parent =
            destination.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(parent).await.map_err(io_error("creating", parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".arbor-export-")
            .tempdir_in(parent)
            .map_err(io_error("creating a staging directory in", parent))?;
        let entries = Arc::new(entries);
        let work = self.write_entries(staging, Arc::clone(&entries));
        let staging = match tokio::time::timeout(EXPORT_TIMEOUT, work).await {
            Ok(result) => result?,
            Err(_) => {
                let command = format!("git cat-file --batch (export of {commit})");
                return Err(GitError::TimedOut { command, timeout: EXPORT_TIMEOUT });
            }
        };
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(PERMISSIONS_EXECUTABLE))
            .map_err(io_error("setting permissions of", staging.path()))?;
        // Never replaces a directory that appeared meanwhile (plain rename would replace an empty one).
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            staging.path(),
            rustix::fs::CWD,
            destination,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|error| match error {
            rustix::io::Errno::EXIST => GitError::DestinationExists { path: destination.to_path_buf() },
            error => io_error("moving the exported tree to", destination)(error.into()),
        })?;
        // Renamed away: nothing left for the guard to remove.
        let _ = staging.keep();
        let files = entries.len();
        Ok(ExportedTree { commit: commit.clone(), directory: destination.to_path_buf(), files })
    }

    /// The blobs of `commit`'s tree, checked: no submodules, no path that could leave the directory.
    async fn tree_entries(&self, commit: &CommitId) -> Result<Vec<Entry>, GitError> {
        let arguments = ["ls-tree", "-r", "-z", "--full-tree", commit.as_str()].map(OsStr::new);
        let output = self.runner.output(&arguments).await?;
        let mut entries = Vec::new();
        for record in output.split(|byte| *byte == 0).filter(|record| !record.is_empty()) {
            let unexpected = || GitError::UnexpectedOutput {
                command: "git ls-tree".into(),
                detail: String::from_utf8_lossy(record).into_owned(),
            };
            let tab = record.iter().position(|byte| *byte == b'\t').ok_or_else(unexpected)?;
            let (header, path) = (String::from_utf8_lossy(&record[..tab]), &record[tab + 1..]);
            let fields: Vec<&str> = header.split(' ').collect();
            let [mode, _kind, object] = fields.as_slice() else {
                return Err(unexpected());
            };
            let display_path = String::from_utf8_lossy(path).into_owned();
            let kind = match *mode {
                MODE_REGULAR => EntryKind::Regular,
                MODE_EXECUTABLE => EntryKind::Executable,
                MODE_SYMLINK => EntryKind::Symlink,
                MODE_SUBMODULE => {
                    return Err(GitError::Submodule { commit: commit.clone(), path: display_path });
                }
                _ => return Err(unexpected()),
            };
            if !is_safe_path(path) {
                return Err(GitError::UnsafePath { commit: commit.clone(), path: display_path });
            }
            entries.push(Entry {
                kind,
                object: (*object).to_string(),
                path: PathBuf::from(OsStr::from_bytes(path)),
            });
        }
        Ok(entries)
    }

    /// Streams the blobs through one `git cat-file --batch` and writes them under `staging`, which it
    /// hands back when every file is written (and removes otherwise).
    async fn write_entries(
        &self,
        staging: tempfile::TempDir,
        entries: Arc<Vec<Entry>>,
    ) -> Result<tempfile::TempDir, GitError> {
        let mut running: Running = self.runner.spawn(&[OsStr::new("cat-file"), OsStr::new("--batch")])?;
        let mut stdin = running.child.stdin.take().ok_or_else(|| missing_pipe("stdin"))?;
        let stdout = running.child.stdout.take().ok_or_else(|| missing_pipe("stdout"))?;
        let stdout = std::fs::File::from(
            stdout.into_owned_fd().map_err(io_error("reading", Path::new("git cat-file")))?,
        );
        let requests = {
            let entries = Arc::clone(&entries);
            async move {
                for entry in entries.iter() {
                    stdin.write_all(format!("{}\n", entry.object).as_bytes()).await?;
                }
                stdin.shutdown().await?;
                drop(stdin);
                Ok::<(), std::io::Error>(())
            }
        };
        // The staging directory lives on the blocking thread: dropped there (removing it) when the
        // writes fail or are cancelled, after the last write.
        let writes = run_blocking("writing the exported tree", move |cancellation| {
            write_objects(staging.path(), &entries, BufReader::new(stdout), cancellation).map(|()| staging)
        });
        let (requested, written) = tokio::join!(requests, writes);
        let staging = written.map_err(|error| GitError::Io {
            action: "writing the exported tree".into(),
            source: std::io::Error::other(error.to_string()),
        })??;
        requested.map_err(io_error("sending object ids to", Path::new("git cat-file")))?;
        let status =
            running.child.wait().await.map_err(io_error("waiting for", Path::new("git cat-file")))?;
        running.disarm();
        if !status.success() {
            let detail = format!("exited with {status}");
            return Err(GitError::UnexpectedOutput { command: "git cat-file --batch".into(), detail });
        }
        Ok(staging)
    }
}

/// Writes each blob `git cat-file --batch` sends under `root`, checking `cancellation` between files.
fn write_objects(
    root: &Path,
    entries: &[Entry],
    mut objects: BufReader<std::fs::File>,
    cancellation: &Cancellation,
) -> Result<(), GitError> {
    let mut created_directories: BTreeSet<PathBuf> = BTreeSet::new();
    let mut header = String::new();
    for entry in entries {
        if cancellation.is_cancelled() {
            return Err(GitError::Io {
                action: format!("writing {} (cancelled)", root.display()),
                source: std::io::Error::from(std::io::ErrorKind::Interrupted),
            });
        }
        header.clear();
        objects.read_line(&mut header).map_err(io_error("reading", Path::new("git cat-file")))?;
        let fields: Vec<&str> = header.trim_end().split(' ').collect();
        let size = match fields.as_slice() {
            [object, "blob", size] if *object == entry.object => size.parse::<u64>().ok(),
            _ => None,
        };
        let Some(size) = size else {
            let detail = format!("\"{}\" for blob {}", header.trim_end(), entry.object);
            return Err(GitError::UnexpectedOutput { command: "git cat-file --batch".into(), detail });
        };
        let path = root.join(&entry.path);
        if let Some(directory) = path.parent()
            && created_directories.insert(directory.to_path_buf())
        {
            std::fs::create_dir_all(directory).map_err(io_error("creating", directory))?;
        }
        let mut content = (&mut objects).take(size);
        match entry.kind {
            EntryKind::Symlink => {
                let mut target = Vec::new();
                content.read_to_end(&mut target).map_err(io_error("reading", Path::new("git cat-file")))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(io_error("creating", &path))?;
            }
            EntryKind::Regular | EntryKind::Executable => {
                let permissions = if entry.kind == EntryKind::Executable {
                    PERMISSIONS_EXECUTABLE
                } else {
                    PERMISSIONS_REGULAR
                };
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(permissions)
                    .open(&path)
                    .map_err(io_error("creating", &path))?;
                std::io::copy(&mut content, &mut file).map_err(io_error("writing", &path))?;
                file.flush().map_err(io_error("writing", &path))?;
                // The mode given to open() is masked by the umask; the exported tree's modes are git's.
                file.set_permissions(std::fs::Permissions::from_mode(permissions))
                    .map_err(io_error("setting permissions of", &path))?;
            }
        }
        let mut newline = [0u8; 1];
        objects.read_exact(&mut newline).map_err(io_error("reading", Path::new("git cat-file")))?;
    }
    Ok(())
}

/// Whether a tree path stays inside the export: no empty, `.`, `..` or `.git` components.
fn is_safe_path(path: &[u8]) -> bool {
    !path.is_empty()
        && path.split(|byte| *byte == b'/').all(|component| {
            !component.is_empty()
                && component != b"."
                && component != b".."
                && !component.eq_ignore_ascii_case(b".git")
        })
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> GitError {
    let action = format!("{action} {}", path.display());
    move |source| GitError::Io { action, source }
}

fn missing_pipe(name: &str) -> GitError {
    GitError::UnexpectedOutput { command: "git cat-file --batch".into(), detail: format!("no {name} pipe") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for safe in ["manifest.yaml", "os/overlay.d/15fcos/usr/bin/x", ".gitignore", "a/.github/x"] {
            assert!(is_safe_path(safe.as_bytes()), "{safe}");
        }
        for unsafe_path in ["", "../x", "a/../../x", "a//b", "./a", ".git/config", "a/.GIT/hooks/x", "/abs"] {
            assert!(!is_safe_path(unsafe_path.as_bytes()), "{unsafe_path}");
        }
    }
}
