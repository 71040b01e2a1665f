//! The scratch space of composes: the tree in `CACHE/work/tree` (kept between composes, so that the next
//! one reuses what did not change, see `assemble::reuse`) and `CACHE/work/compose-PID/{mount,rpmdb}`, all
//! on the package cache's file system (the tree hardlinks cached objects). One compose (or garbage
//! collection of the package cache) per cache at a time: an exclusive lock on `CACHE/work/lock`, see
//! [`CacheLock`]; whatever a killed run left behind (a FUSE mount, its scratch directory) is cleared by
//! the next one before it starts, and a tree in any state is corrected by the next checkout.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::build::BuildError;

/// The cache's scratch directory, beside the package cache.
pub(crate) const WORK_DIRECTORY: &str = "work";

/// The mode of `/` in every composed tree.
const ROOT_DIRECTORY_MODE: u32 = 0o755;

/// Only the composing user may enter `CACHE/work`.
const WORK_DIRECTORY_MODE: u32 = 0o700;

/// The lock file and the kept tree, the only entries of `CACHE/work` that outlive a compose.
const LOCK_FILE: &str = "lock";
pub(crate) const TREE_DIRECTORY: &str = "tree";

#[derive(Debug, thiserror::Error)]
pub enum CacheLockError {
    #[error(
        "{path}: a compose or a garbage collection is using this cache directory (it holds the lock); \
         try again when it has finished"
    )]
    Busy { path: PathBuf },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// The exclusive lock on a cache directory (`CACHE/work/lock`), held by a compose from before it touches
/// the package cache until it has published, and by garbage collection while it runs; released when
/// dropped (or when the process dies: it is an `flock`).
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl CacheLock {
    /// Takes the lock without waiting: [`CacheLockError::Busy`] while someone else holds it. Creates
    /// `CACHE/work` (private to the composing user) if needed.
    pub fn try_acquire(cache_directory: &Path) -> Result<CacheLock, CacheLockError> {
        let io = |path: &Path, error: std::io::Error| CacheLockError::Io {
            path: path.to_path_buf(),
            message: error.to_string(),
        };
        let base = cache_directory.join(WORK_DIRECTORY);
        std::fs::create_dir_all(&base).map_err(|error| io(&base, error))?;
        // The kept tree holds set-user-ID programs and private files of the composed system between
        // composes: no other user may reach it.
        std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(WORK_DIRECTORY_MODE))
            .map_err(|error| io(&base, error))?;
        let lock_path = base.join(LOCK_FILE);
        let file = File::create(&lock_path).map_err(|error| io(&lock_path, error))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(CacheLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(CacheLockError::Busy { path: lock_path }),
            Err(error) => Err(io(&lock_path, error.into())),
        }
    }
}

#[derive(Debug)]
pub struct WorkDirectory {
    tree: PathBuf,
    directory: PathBuf,
    /// Held for as long as the compose runs.
    _lock: CacheLock,
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> BuildError {
    BuildError::Io { path: path.to_path_buf(), message: error.to_string() }
}

impl WorkDirectory {
    pub fn create(cache_directory: &Path) -> Result<WorkDirectory, BuildError> {
        let lock = CacheLock::try_acquire(cache_directory)?;
        let base = cache_directory.join(WORK_DIRECTORY);
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
