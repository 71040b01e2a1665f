//! Which local package files (`file://` repositories) were already hashed and found to match their
//! repository checksum, so that a compose does not hash hundreds of unchanged RPMs again. A file counts as
//! verified only while its device, inode, size, modification and change times are what they were when it
//! was hashed: any write, replacement or `touch` changes the change time (which no one can set back), and
//! the file is hashed again. Downloaded packages need no record: they live in the cache under their
//! checksum and only ever get there verified.
//!
//! The record is one JSON file in the cache directory, replaced atomically; a missing, unreadable or
//! corrupt record only means that every file is hashed once more.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The record's file name in the cache directory; the version is part of the name so that a format change
/// starts a new record.
const RECORD_FILE_NAME: &str = "verified-package-files.v1.json";

/// What must not have changed since a file was hashed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FileIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified_nanoseconds: i128,
    changed_nanoseconds: i128,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> FileIdentity {
        let nanoseconds =
            |seconds: i64, nanoseconds: i64| i128::from(seconds) * 1_000_000_000 + i128::from(nanoseconds);
        FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified_nanoseconds: nanoseconds(metadata.mtime(), metadata.mtime_nsec()),
            changed_nanoseconds: nanoseconds(metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct VerifiedFile {
    /// `algorithm:hex`, as the repository metadata gave it.
    checksum: String,
    identity: FileIdentity,
}

/// The files verified by earlier runs (read once) and by this one (written by [`VerifiedFiles::save`]).
#[derive(Debug)]
pub struct VerifiedFiles {
    path: Option<PathBuf>,
    earlier: BTreeMap<PathBuf, VerifiedFile>,
    now: Mutex<BTreeMap<PathBuf, VerifiedFile>>,
}

impl VerifiedFiles {
    /// The record kept in `cache_directory` (an empty one when it cannot be read).
    pub fn load(cache_directory: &Path) -> VerifiedFiles {
        let path = cache_directory.join(RECORD_FILE_NAME);
        let earlier = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        VerifiedFiles { path: Some(path), earlier, now: Mutex::new(BTreeMap::new()) }
    }

    /// A record that remembers nothing and is never saved.
    pub fn none() -> VerifiedFiles {
        VerifiedFiles { path: None, earlier: BTreeMap::new(), now: Mutex::new(BTreeMap::new()) }
    }

    /// Whether `path`, as it is now (`metadata`), was found to have `checksum` by an earlier run. A file
    /// that was keeps being recorded.
    pub fn is_verified(&self, path: &Path, metadata: &std::fs::Metadata, checksum: &str) -> bool {
        let identity = FileIdentity::of(metadata);
        let verified =
            self.earlier.get(path).is_some_and(|file| file.checksum == checksum && file.identity == identity);
        if verified {
            self.record(path, identity, checksum);
        }
        verified
    }

    /// Records that `path`, as it was before hashing (`metadata`), has `checksum`.
    pub fn verified(&self, path: &Path, metadata: &std::fs::Metadata, checksum: &str) {
        self.record(path, FileIdentity::of(metadata), checksum);
    }

    fn record(&self, path: &Path, identity: FileIdentity, checksum: &str) {
        let file = VerifiedFile { checksum: checksum.to_string(), identity };
        self.now.lock().unwrap_or_else(|poison| poison.into_inner()).insert(path.to_path_buf(), file);
    }

    /// Replaces the record with the files verified in this run (so that it never grows beyond one package
    /// set). Failing to save only costs hashing again next time, so it is a warning, not an error.
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        let now = self.now.lock().unwrap_or_else(|poison| poison.into_inner());
        if *now == self.earlier {
            return;
        }
        let result = serde_json::to_vec(&*now).map_err(std::io::Error::other).and_then(|bytes| {
            let directory = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(directory)?;
            let mut temporary = tempfile::NamedTempFile::new_in(directory)?;
            std::io::Write::write_all(&mut temporary, &bytes)?;
            temporary.persist(path).map_err(|error| error.error)?;
            Ok(())
        });
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "could not save which package files are verified");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKSUM: &str = "sha256:00ff";

    fn metadata(path: &Path) -> std::fs::Metadata {
        std::fs::symlink_metadata(path).unwrap()
    }

    #[test]
    fn a_verified_file_is_remembered_until_it_changes() {
        let directory = tempfile::tempdir().unwrap();
        let package = directory.path().join("a.rpm");
        std::fs::write(&package, b"package").unwrap();

        let first = VerifiedFiles::load(directory.path());
        assert!(!first.is_verified(&package, &metadata(&package), CHECKSUM));
        first.verified(&package, &metadata(&package), CHECKSUM);
        first.save();

        let second = VerifiedFiles::load(directory.path());
        assert!(second.is_verified(&package, &metadata(&package), CHECKSUM));
        assert!(!second.is_verified(&package, &metadata(&package), "sha256:0000"), "another checksum");
        second.save();

        // Same size, content rewritten: the change time moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&package, b"PACKAGE").unwrap();
        let third = VerifiedFiles::load(directory.path());
        assert!(!third.is_verified(&package, &metadata(&package), CHECKSUM));
    }

    #[test]
    fn a_corrupt_record_verifies_nothing_and_is_replaced() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join(RECORD_FILE_NAME), b"{not json").unwrap();
        let package = directory.path().join("a.rpm");
        std::fs::write(&package, b"package").unwrap();
        let record = VerifiedFiles::load(directory.path());
        assert!(!record.is_verified(&package, &metadata(&package), CHECKSUM));
        record.verified(&package, &metadata(&package), CHECKSUM);
        record.save();
        assert!(VerifiedFiles::load(directory.path()).is_verified(&package, &metadata(&package), CHECKSUM));
    }

    #[test]
    fn only_this_runs_files_are_kept() {
        let directory = tempfile::tempdir().unwrap();
        let (old, new) = (directory.path().join("old.rpm"), directory.path().join("new.rpm"));
        std::fs::write(&old, b"old").unwrap();
        std::fs::write(&new, b"new").unwrap();
        let first = VerifiedFiles::load(directory.path());
        first.verified(&old, &metadata(&old), CHECKSUM);
        first.save();
        let second = VerifiedFiles::load(directory.path());
        second.verified(&new, &metadata(&new), CHECKSUM);
        second.save();
        let third = VerifiedFiles::load(directory.path());
        assert!(!third.is_verified(&old, &metadata(&old), CHECKSUM));
        assert!(third.is_verified(&new, &metadata(&new), CHECKSUM));
    }
}
