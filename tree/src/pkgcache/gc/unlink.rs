//! Removing many files at once. An unlink costs the file system's metadata latency more than the CPU
//! (about 0.2-1 ms each on this project's machines, whose ext4 discards freed blocks online), so they run
//! on several threads: eight `rm` processes over 16 directories took a quarter of the time one took.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::blocking::Cancellation;
use rustix::fs::AtFlags;
use rustix::io::Errno;

use super::GcError;

/// Threads unlinking at once: enough to keep the file system busy, few enough not to starve a machine
/// that also composes (they mostly wait).
const REMOVAL_THREADS: usize = 4;

/// Files removed between two looks at the cancellation, per thread.
const FILES_PER_CANCELLATION_CHECK: usize = 256;

/// How deep a dropped tree is split into pieces that threads remove whole (`usr/share/doc`, ...).
const TREE_SPLIT_DEPTH: usize = 3;

/// Unlinks every path of `relative` (relative to `directory`, which is `directory_path`), on several
/// threads; one that is already gone is fine.
pub(super) fn unlink_all(
    directory: &OwnedFd,
    directory_path: &Path,
    relative: &[&str],
    cancellation: &Cancellation,
) -> Result<(), GcError> {
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<GcError>> = Mutex::new(None);
    let failed = |error: GcError| {
        failure.lock().unwrap_or_else(|poison| poison.into_inner()).get_or_insert(error);
    };
    std::thread::scope(|scope| {
        for _ in 0..REMOVAL_THREADS.min(relative.len()) {
            scope.spawn(|| {
                let mut done: usize = 0;
                loop {
                    done += 1;
                    if done.is_multiple_of(FILES_PER_CANCELLATION_CHECK) && cancellation.is_cancelled() {
                        return failed(GcError::Cancelled);
                    }
                    let Some(path) = relative.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
                    if let Err(error) = unlink_if_present(directory, path) {
                        return failed(io_error(&directory_path.join(path), error));
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|poison| poison.into_inner()) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

pub(super) fn unlink_if_present(directory: &OwnedFd, relative: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(directory, relative, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Removes the directory tree at `path` (nothing there is fine), its pieces on several threads.
pub(super) fn remove_tree(path: &Path, cancellation: &Cancellation) -> Result<(), GcError> {
    let mut pieces = Vec::new();
    split(path, TREE_SPLIT_DEPTH, &mut pieces);
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<GcError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..REMOVAL_THREADS.min(pieces.len()) {
            scope.spawn(|| {
                while let Some(piece) = pieces.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result =
                        if cancellation.is_cancelled() { Err(GcError::Cancelled) } else { remove(piece) };
                    if let Err(error) = result {
                        failure.lock().unwrap_or_else(|poison| poison.into_inner()).get_or_insert(error);
                        return;
                    }
                }
            });
        }
    });
    if let Some(error) = failure.into_inner().unwrap_or_else(|poison| poison.into_inner()) {
        return Err(error);
    }
    remove(path)
}

/// The entries `depth` levels below `directory` (and shallower files), which can be removed apart.
fn split(directory: &Path, depth: usize, pieces: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else { return };
    for entry in entries.flatten() {
        let is_directory = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if is_directory && depth > 1 {
            split(&entry.path(), depth - 1, pieces);
        } else {
            pieces.push(entry.path());
        }
    }
}

fn remove(path: &Path) -> Result<(), GcError> {
    let is_directory = std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_dir());
    let result = if is_directory { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(path, error)),
    }
}

fn io_error(path: &Path, error: io::Error) -> GcError {
    GcError::Io { path: path.to_path_buf(), message: error.to_string() }
}
