//! When each cached package was last used: the modification time of its branch's ref file
//! (`refs/heads/rpmostree/pkg/<name>/<evr>.<arch>`). Every compose sets it for every package it uses (a
//! cache hit or a fresh import), so garbage collection ([`super::gc`]) evicts the least recently used
//! packages first. ostree reads only a ref file's content, never its times, and the time goes with the
//! ref: an evicted package takes its usage with it, a re-imported one starts afresh. Setting it is one
//! `utimensat` per package relative to an open `refs/heads` (0.44 ms for 500 packages, see
//! `tree/benches/cache_gc.rs`), with no file to keep consistent with the refs.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

/// Where a bare repository keeps its local branches.
pub(crate) const LOCAL_REFS_DIRECTORY: &str = "refs/heads";

/// The ref file of `branch` in the repository at `repository`.
pub fn ref_path(repository: &Path, branch: &str) -> PathBuf {
    repository.join(LOCAL_REFS_DIRECTORY).join(branch)
}

/// Records that the packages on `branches` were used at `now`. Returns how many refs were updated; a
/// branch without a ref file is skipped (counted out), any other failure stops with the error.
pub fn record_use<'a>(
    repository: &Path,
    branches: impl IntoIterator<Item = &'a str>,
    now: SystemTime,
) -> io::Result<usize> {
    let refs = open_refs(repository)?;
    let time = timespec(now);
    let timestamps = Timestamps { last_access: time, last_modification: time };
    let mut recorded = 0;
    for branch in branches {
        match rustix::fs::utimensat(&refs, branch, &timestamps, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(()) => recorded += 1,
            Err(rustix::io::Errno::NOENT) => {}
            Err(error) => {
                return Err(io::Error::new(
                    io::Error::from(error).kind(),
                    format!("{}: {error}", ref_path(repository, branch).display()),
                ));
            }
        }
    }
    Ok(recorded)
}

/// When the package on `branch` was last used, `None` when it has no ref.
pub fn last_used(repository: &Path, branch: &str) -> io::Result<Option<SystemTime>> {
    match std::fs::symlink_metadata(ref_path(repository, branch)) {
        Ok(metadata) => metadata.modified().map(Some),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn open_refs(repository: &Path) -> io::Result<OwnedFd> {
    let path = repository.join(LOCAL_REFS_DIRECTORY);
    rustix::fs::open(&path, OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY, Mode::empty()).map_err(
        |error| io::Error::new(io::Error::from(error).kind(), format!("{}: {error}", path.display())),
    )
}

fn timespec(time: SystemTime) -> Timespec {
    let since_epoch = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timespec { tv_sec: since_epoch.as_secs() as i64, tv_nsec: since_epoch.subsec_nanos().into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_use_is_the_ref_files_modification_time() {
        let directory = tempfile::tempdir().unwrap();
        let branch = "rpmostree/pkg/bash/5.2-1.x86__64";
        let path = ref_path(directory.path(), branch);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "0123\n").unwrap();
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let recorded = record_use(directory.path(), [branch, "rpmostree/pkg/gone/1-1.noarch"], then).unwrap();
        assert_eq!(recorded, 1, "the branch without a ref is skipped");
        assert_eq!(last_used(directory.path(), branch).unwrap(), Some(then));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0123\n", "the ref itself is unchanged");
        assert_eq!(last_used(directory.path(), "rpmostree/pkg/gone/1-1.noarch").unwrap(), None);
    }
}
