//! The scratch space of composes: the tree in `CACHE/work/tree` (kept between composes, so that the next
//! one reuses what did not change, see `assemble::reuse`) and `CACHE/work/compose-PID/{mount,rpmdb}`, all
//! on the package cache's file system (the tree hardlinks cached objects). One compose per cache at a
//! time (an exclusive lock on `CACHE/work/lock`); whatever a killed run left behind (a FUSE mount, its
//! scratch directory) is cleared by the next one before it starts, and a tree in any state is corrected
//! by the next checkout.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::build::BuildError;

/// The mode of `/` in every composed tree.
const ROOT_DIRECTORY_MODE: u32 = 0o755;

/// Only the composing user may enter `CACHE/work`.
const WORK_DIRECTORY_MODE: u32 = 0o700;

/// The lock file and the kept tree, the only entries of `CACHE/work` that outlive a compose.
const LOCK_FILE: &str = "lock";
const TREE_DIRECTORY: &str = "tree";

#[derive(Debug)]
pub struct WorkDirectory {
    tree: PathBuf,
    directory: PathBuf,
    /// Holds the exclusive lock for as long as the compose runs.
    _lock: File,
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> BuildError {
    BuildError::Io { path: path.to_path_buf(), message: error.to_string() }
}

impl WorkDirectory {
    pub fn create(cache_directory: &Path) -> Result<WorkDirectory, BuildError> {
        let base = cache_directory.join("work");
        std::fs::create_dir_all(&base).map_err(|error| io_error(&base, error))?;
        // The kept tree holds set-user-ID programs and private files of the composed system between
        // composes: no other user may reach it.
        std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(WORK_DIRECTORY_MODE))
            .map_err(|error| io_error(&base, error))?;
        let lock_path = base.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(|error| io_error(&lock_path, error))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| io_error(&lock_path, "another compose is using this cache directory (locked)"))?;
        for mountpoint in crate::sandbox::cleanup_stale_mounts(&base)? {
            tracing::info!(path = %mountpoint.display(), "unmounted what an interrupted compose left mounted");
        }
        for entry in std::fs::read_dir(&base).map_err(|error| io_error(&base, error))? {
            let entry = entry.map_err(|error| io_error(&base, error))?;
            if entry.file_name() != LOCK_FILE && entry.file_name() != TREE_DIRECTORY {
                tracing::info!(path = %entry.path().display(), "removing what an interrupted compose left behind");
                remove(&entry.path())?;
            }
        }
        let directory = base.join(format!("compose-{}", std::process::id()));
        std::fs::create_dir_all(directory.join("mount")).map_err(|error| io_error(&directory, error))?;
        let tree = base.join(TREE_DIRECTORY);
        if !std::fs::symlink_metadata(&tree).is_ok_and(|metadata| metadata.is_dir()) {
            remove(&tree)?;
            std::fs::create_dir(&tree).map_err(|error| io_error(&tree, error))?;
        }
        // The root directory's mode goes into the commit: never let the umask (or a scriptlet) decide it.
        std::fs::set_permissions(&tree, std::os::unix::fs::PermissionsExt::from_mode(ROOT_DIRECTORY_MODE))
            .map_err(|error| io_error(&tree, error))?;
        Ok(WorkDirectory { tree, directory, _lock: lock })
    }

    /// The tree being composed: what the previous compose left until the checkout brings it up to date.
    pub fn root(&self) -> PathBuf {
        self.tree.clone()
    }

    pub fn mountpoint(&self) -> PathBuf {
        self.directory.join("mount")
    }

    /// Where the rpm database is recorded while the tree is assembled (created on first use).
    pub fn rpmdb_scratch(&self) -> PathBuf {
        self.directory.join("rpmdb")
    }
}

fn remove(path: &Path) -> Result<(), BuildError> {
    let is_directory = std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_dir());
    let result = if is_directory { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(path, error)),
    }
}

impl Drop for WorkDirectory {
    fn drop(&mut self) {
        if let Err(error) = remove(&self.directory) {
            tracing::warn!(%error, "could not remove the compose scratch directory");
        }
    }
}
