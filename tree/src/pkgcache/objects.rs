//! Content objects of the bare-user package cache, written by arbor itself instead of through libostree:
//! the object checksum is computed with the CPU's SHA instructions (libostree on Debian hashes with GLib's
//! portable SHA-256, which was the largest single cost of an import), and an object the repository already
//! has is not written again. The on-disk form is ostree's bare-user one: the content with permissions
//! `(mode & 0775) | 0400` (0644 for symlinks, whose content is the target), modification time 0, and the
//! real owner, mode and extended attributes in the `user.ostreemeta` attribute; the checksum is SHA-256 of
//! the length-prefixed file header `(uuuusa(ayay))` followed by the content.
//!
//! As in ostree's own transactions, objects are staged first (a locked directory in the repository's
//! `tmp/`) and moved into `objects/` by [`ObjectStager::publish`] after a `syncfs` (unless the repository
//! disables fsync), so a power cut never leaves a named object without its data. A run killed before
//! publishing leaves only its staging directory, which the next run removes.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use common::ostree_format::{MODE_SYMLINK, loose_object_path};
use ostree::glib;
use ostree::glib::prelude::*;
use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, Timespec, Timestamps};
use sha2::{Digest, Sha256};

use crate::file_object::{ContentError, INLINE_FILE_LIMIT, read_exactly, stream_exactly};

/// The attribute in which bare-user repositories keep an object's owner, mode and extended attributes.
const BARE_USER_METADATA_XATTR: &str = "user.ostreemeta";
/// Names of staging directories in the repository's `tmp/`.
const STAGING_PREFIX: &str = "arbor-staging-";
/// ostree's mtime for every object of a bare repository (checkouts by hardlink show it).
const OBJECT_MODIFICATION_TIME: i64 = 0;
/// Content files need at least owner read permission, and never get write or sticky bits for others.
const CONTENT_PERMISSION_MASK: u32 = 0o775;
const OWNER_READ: u32 = 0o400;
/// Permissions of the object that stores a symlink (as libostree leaves them).
const SYMLINK_OBJECT_PERMISSIONS: u32 = 0o644;
const SYMLINK_PERMISSIONS: u32 = 0o777;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("{action} in {directory}: {source}")]
    Write { action: &'static str, directory: String, source: io::Error },
}

/// Owner, full `st_mode` and extended attributes (`a(ayay)`) of a regular file object.
#[derive(Debug)]
pub struct ObjectMetadata<'a> {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub xattrs: &'a glib::Variant,
}

/// Writes content objects into one staging directory, from any number of threads.
#[derive(Debug)]
pub struct ObjectStager {
    objects: OwnedFd,
    /// Removed on drop; empty once published.
    staging_directory: tempfile::TempDir,
    /// Held open with an exclusive `flock` for as long as the run lives, so that no other run removes it.
    staging: OwnedFd,
    staged: Mutex<HashSet<String>>,
    sync_before_publishing: bool,
    temporary_names: AtomicU64,
}

impl ObjectStager {
    /// Starts staging for the bare-user repository at `path`, removing staging directories of runs that
    /// ended without publishing.
    pub fn begin(repo: &ostree::Repo, path: &Path) -> Result<ObjectStager, ObjectError> {
        let temporary = path.join("tmp");
        let failed = |action: &'static str, source: io::Error| ObjectError::Write {
            action,
            directory: temporary.display().to_string(),
            source,
        };
        remove_abandoned_staging(&temporary)
            .map_err(|source| failed("removing abandoned staging", source))?;
        let staging_directory = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(&temporary)
            .map_err(|source| failed("creating a staging directory", source))?;
        let staging =
            open_directory(staging_directory.path()).map_err(|source| failed("opening staging", source))?;
        rustix::fs::flock(&staging, FlockOperation::NonBlockingLockExclusive)
            .map_err(|source| failed("locking staging", source.into()))?;
        let objects =
            open_directory(&path.join("objects")).map_err(|source| failed("opening objects/", source))?;
        Ok(ObjectStager {
            objects,
            staging_directory,
            staging,
            staged: Mutex::new(HashSet::new()),
            sync_before_publishing: !repo.is_disable_fsync(),
            temporary_names: AtomicU64::new(0),
        })
    }

    /// Writes exactly `size` bytes from `content` (more or fewer is an error) as a regular file object and
    /// returns its checksum. `observe` sees every byte, in order, before the object is stored.
    pub fn write_regular(
        &self,
        metadata: &ObjectMetadata<'_>,
        size: u64,
        content: &mut dyn Read,
        observe: &mut dyn FnMut(&[u8]),
    ) -> Result<String, ObjectError> {
        let header = file_header(metadata.uid, metadata.gid, metadata.mode, "", metadata.xattrs);
        let permissions = (metadata.mode & CONTENT_PERMISSION_MASK) | OWNER_READ;
        // Small files are hashed before anything is written, so that a file the repository already has
        // costs no write at all; larger ones are streamed into a temporary file while hashed.
        if size <= INLINE_FILE_LIMIT {
            let bytes = read_exactly(content, size)?;
            observe(&bytes);
            let checksum = object_checksum(&header, &bytes);
            if !self.has(&checksum) {
                let mut file = self.temporary_object()?;
                file.write_all(&bytes).map_err(|source| self.write_error("writing an object", source))?;
                self.store(file, &checksum, metadata, permissions)?;
            }
            return Ok(checksum);
        }
        let mut file = self.temporary_object()?;
        let mut hasher = Sha256::new();
        hasher.update(&header);
        stream_exactly(content, size, |bytes| {
            observe(bytes);
            hasher.update(bytes);
            file.write_all(bytes).map_err(|source| self.write_error("writing an object", source))
        })?;
        let checksum = hex::encode(hasher.finalize());
        if !self.has(&checksum) {
            self.store(file, &checksum, metadata, permissions)?;
        }
        Ok(checksum)
    }

    /// Writes a symlink object (owned by root, as every symlink in the package cache) and returns its
    /// checksum.
    pub fn write_symlink(&self, target: &str) -> Result<String, ObjectError> {
        let no_xattrs = Vec::<(Vec<u8>, Vec<u8>)>::new().to_variant();
        let mode = MODE_SYMLINK | SYMLINK_PERMISSIONS;
        let checksum = symlink_checksum(0, 0, target);
        if !self.has(&checksum) {
            let mut file = self.temporary_object()?;
            file.write_all(target.as_bytes())
                .map_err(|source| self.write_error("writing an object", source))?;
            let metadata = ObjectMetadata { uid: 0, gid: 0, mode, xattrs: &no_xattrs };
            self.store(file, &checksum, &metadata, SYMLINK_OBJECT_PERMISSIONS)?;
        }
        Ok(checksum)
    }

    /// Makes the staged objects durable (unless the repository disables fsync) and moves them into
    /// `objects/`. Returns how many objects were new.
    pub fn publish(self) -> Result<usize, ObjectError> {
        let staged = self.staged.into_inner().unwrap_or_else(|poison| poison.into_inner());
        let directory = self.staging_directory.path().display().to_string();
        let failed = |action: &'static str, source: io::Error| ObjectError::Write {
            action,
            directory: directory.clone(),
            source,
        };
        if self.sync_before_publishing && !staged.is_empty() {
            rustix::fs::syncfs(&self.staging)
                .map_err(|source| failed("syncing the file system", source.into()))?;
        }
        let mut prefixes_made = [false; 256];
        for checksum in &staged {
            let prefix = &checksum[..2];
            let prefix_index = usize::from_str_radix(prefix, 16).unwrap_or(0);
            if !prefixes_made[prefix_index] {
                match rustix::fs::mkdirat(&self.objects, prefix, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => prefixes_made[prefix_index] = true,
                    Err(source) => return Err(failed("creating an object directory", source.into())),
                }
            }
            rustix::fs::renameat(&self.staging, staged_name(checksum), &self.objects, loose_path(checksum))
                .map_err(|source| failed("moving an object into objects/", source.into()))?;
        }
        Ok(staged.len())
    }

    /// Whether the repository or this run's staging already has the object.
    fn has(&self, checksum: &str) -> bool {
        if self.staged.lock().unwrap_or_else(|poison| poison.into_inner()).contains(checksum) {
            return true;
        }
        rustix::fs::statat(&self.objects, loose_path(checksum), AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    fn temporary_object(&self) -> Result<TemporaryObject, ObjectError> {
        let permissions = Mode::from_raw_mode(SYMLINK_OBJECT_PERMISSIONS);
        let anonymous = OFlags::WRONLY | OFlags::CLOEXEC | OFlags::TMPFILE;
        match rustix::fs::openat(&self.staging, ".", anonymous, permissions) {
            Ok(descriptor) => return Ok(TemporaryObject { file: File::from(descriptor), name: None }),
            // File systems without O_TMPFILE: a named temporary file, renamed into place.
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {}
            Err(source) => return Err(self.write_error("creating an object", source.into())),
        }
        let name = format!("tmp-{}", self.temporary_names.fetch_add(1, Ordering::Relaxed));
        let named = OFlags::WRONLY | OFlags::CLOEXEC | OFlags::CREATE | OFlags::EXCL;
        let descriptor = rustix::fs::openat(&self.staging, name.as_str(), named, permissions)
            .map_err(|source| self.write_error("creating an object", source.into()))?;
        Ok(TemporaryObject { file: File::from(descriptor), name: Some(name) })
    }

    /// Gives the temporary file its bare-user metadata and links it into staging under its checksum.
    fn store(
        &self,
        object: TemporaryObject,
        checksum: &str,
        metadata: &ObjectMetadata<'_>,
        permissions: u32,
    ) -> Result<(), ObjectError> {
        let failed =
            |action: &'static str, source: rustix::io::Errno| self.write_error(action, source.into());
        let file = object.file.as_fd();
        // `(uuua(ayay))`, built from parts: a tuple holding a `glib::Variant` would box it as `v`.
        let bare_user_metadata = glib::Variant::tuple_from_iter([
            metadata.uid.to_be().to_variant(),
            metadata.gid.to_be().to_variant(),
            metadata.mode.to_be().to_variant(),
            metadata.xattrs.clone(),
        ]);
        rustix::fs::fsetxattr(
            file,
            BARE_USER_METADATA_XATTR,
            bare_user_metadata.data(),
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|source| failed("setting user.ostreemeta", source))?;
        rustix::fs::fchmod(file, Mode::from_raw_mode(permissions))
            .map_err(|source| failed("chmod", source))?;
        let times = Timestamps {
            last_access: Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
            last_modification: Timespec { tv_sec: OBJECT_MODIFICATION_TIME, tv_nsec: 0 },
        };
        rustix::fs::futimens(file, &times).map_err(|source| failed("setting the mtime", source))?;
        let name = staged_name(checksum);
        let linked = match &object.name {
            None => rustix::fs::linkat(
                rustix::fs::CWD,
                format!("/proc/self/fd/{}", file.as_raw_fd()),
                &self.staging,
                name.as_str(),
                AtFlags::SYMLINK_FOLLOW,
            ),
            Some(temporary) => {
                rustix::fs::renameat(&self.staging, temporary.as_str(), &self.staging, name.as_str())
            }
        };
        match linked {
            // Another thread stored the same object meanwhile.
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(source) => return Err(failed("linking an object", source)),
        }
        self.staged.lock().unwrap_or_else(|poison| poison.into_inner()).insert(checksum.to_string());
        Ok(())
    }

    fn write_error(&self, action: &'static str, source: io::Error) -> ObjectError {
        ObjectError::Write { action, directory: self.staging_directory.path().display().to_string(), source }
    }
}

struct TemporaryObject {
    file: File,
    /// Set when the file system has no O_TMPFILE and the file has a name in staging.
    name: Option<String>,
}

impl TemporaryObject {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }
}

/// ostree's file header, as hashed in front of the content: big-endian length, four bytes of padding, then
/// the `(uuuusa(ayay))` variant of uid, gid, mode (big-endian), rdev 0, symlink target and xattrs.
fn file_header(uid: u32, gid: u32, mode: u32, symlink_target: &str, xattrs: &glib::Variant) -> Vec<u8> {
    let variant = glib::Variant::tuple_from_iter([
        uid.to_be().to_variant(),
        gid.to_be().to_variant(),
        mode.to_be().to_variant(),
        0u32.to_variant(),
        symlink_target.to_variant(),
        xattrs.clone(),
    ]);
    let data = variant.data();
    let mut header = Vec::with_capacity(8 + data.len());
    header.extend_from_slice(&(data.len() as u32).to_be_bytes());
    header.extend_from_slice(&[0u8; 4]);
    header.extend_from_slice(data);
    header
}

/// The checksum of the object of a symlink to `target` owned by `uid` / `gid`, without extended attributes
/// (as libostree's `write_symlink` computes it, by writing the object).
pub fn symlink_checksum(uid: u32, gid: u32, target: &str) -> String {
    let no_xattrs = Vec::<(Vec<u8>, Vec<u8>)>::new().to_variant();
    object_checksum(&file_header(uid, gid, MODE_SYMLINK | SYMLINK_PERMISSIONS, target, &no_xattrs), &[])
}

fn object_checksum(header: &[u8], content: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(header);
    hasher.update(content);
    hex::encode(hasher.finalize())
}

/// A content object's place, relative to `objects/`.
fn loose_path(checksum: &str) -> String {
    loose_object_path(checksum, "file")
}

fn staged_name(checksum: &str) -> String {
    format!("{checksum}.file")
}

fn open_directory(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(Into::into)
}

/// Staging directories that no live run holds locked: left by a run that was killed.
pub(crate) fn remove_abandoned_staging(temporary: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(temporary) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
            continue;
        }
        let Ok(directory) = open_directory(&entry.path()) else { continue };
        if rustix::fs::flock(&directory, FlockOperation::NonBlockingLockExclusive).is_ok() {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_is_length_prefixed_and_padded() {
        let no_xattrs = Vec::<(Vec<u8>, Vec<u8>)>::new().to_variant();
        let header = file_header(0, 0, MODE_SYMLINK | SYMLINK_PERMISSIONS, "usr/bin", &no_xattrs);
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        assert_eq!(length, header.len() - 8);
        assert_eq!(&header[4..8], &[0, 0, 0, 0]);
        assert_eq!(u32::from_be_bytes([header[16], header[17], header[18], header[19]]), 0o120_777);
    }

    #[test]
    fn loose_paths_split_the_checksum() {
        let checksum = "ab".to_string() + &"0".repeat(62);
        assert_eq!(loose_path(&checksum), format!("ab/{}.file", "0".repeat(62)));
    }

    fn bare_user_repository(path: &Path) -> ostree::Repo {
        let repo = ostree::Repo::new_for_path(path);
        repo.create(ostree::RepoMode::BareUser, ostree::gio::Cancellable::NONE).unwrap();
        repo
    }

    /// The same objects through libostree and through the stager: same checksums, and `ostree fsck`
    /// accepts the stager's objects (it rehashes each from its content and user.ostreemeta).
    #[test]
    fn objects_match_libostree_and_pass_fsck() {
        let directory = tempfile::tempdir().unwrap();
        let ours = directory.path().join("ours");
        let reference = bare_user_repository(&directory.path().join("libostree"));
        let repo = bare_user_repository(&ours);
        let capability = vec![(b"security.capability\0".to_vec(), vec![1u8, 0, 0, 2, 0, 32, 0, 0])];
        let with_capability = capability.to_variant();
        let none = Vec::<(Vec<u8>, Vec<u8>)>::new().to_variant();
        let large: Vec<u8> =
            (0..(INLINE_FILE_LIMIT as usize + 12_345)).map(|index| (index % 251) as u8).collect();
        let files: [(u32, u32, u32, &glib::Variant, &[u8]); 4] = [
            (0, 0, 0o100_644, &none, b"hello\n"),
            (0, 0, 0o104_755, &with_capability, b"#!/bin/sh\n"),
            (1000, 5, 0o100_600, &none, b""),
            (0, 0, 0o100_755, &none, &large),
        ];
        let stager = ObjectStager::begin(&repo, &ours).unwrap();
        let mut checksums = Vec::new();
        for (uid, gid, mode, xattrs, content) in files {
            let metadata = ObjectMetadata { uid, gid, mode, xattrs };
            let mut observed = 0;
            let checksum = stager
                .write_regular(&metadata, content.len() as u64, &mut &content[..], &mut |bytes| {
                    observed += bytes.len()
                })
                .unwrap();
            assert_eq!(observed, content.len());
            let expected = reference
                .write_regfile_inline(
                    None,
                    uid,
                    gid,
                    mode,
                    Some(xattrs),
                    content,
                    ostree::gio::Cancellable::NONE,
                )
                .unwrap();
            assert_eq!(checksum, expected.as_str(), "mode {mode:o}");
            checksums.push(checksum);
        }
        let symlink = stager.write_symlink("../lib/libfoo.so.1").unwrap();
        let expected = reference
            .write_symlink(None, 0, 0, None, "../lib/libfoo.so.1", ostree::gio::Cancellable::NONE)
            .unwrap();
        assert_eq!(symlink, expected.as_str());
        // Written again: found in staging, not staged twice.
        let again = stager
            .write_regular(
                &ObjectMetadata { uid: 0, gid: 0, mode: 0o100_644, xattrs: &none },
                6,
                &mut &b"hello\n"[..],
                &mut |_| {},
            )
            .unwrap();
        assert_eq!(again, checksums[0]);
        assert!(matches!(
            stager.write_regular(
                &ObjectMetadata { uid: 0, gid: 0, mode: 0o100_644, xattrs: &none },
                10,
                &mut &b"short"[..],
                &mut |_| {}
            ),
            Err(ObjectError::Content(ContentError::Shorter { expected: 10, found: 5 }))
        ));
        assert_eq!(stager.publish().unwrap(), 5);
        assert_eq!(
            std::fs::read_dir(ours.join("tmp"))
                .unwrap()
                .filter(|entry| entry
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(STAGING_PREFIX))
                .count(),
            0
        );
        for checksum in checksums.iter().chain([&symlink]) {
            assert!(
                repo.has_object(ostree::ObjectType::File, checksum, ostree::gio::Cancellable::NONE).unwrap()
            );
        }
        // fsck checks the objects of commits: commit a tree holding them all.
        let tree = ostree::MutableTree::new();
        let directory_metadata = repo
            .write_metadata(
                ostree::ObjectType::DirMeta,
                None,
                &super::super::import::directory_metadata(0, 0, 0o755),
                ostree::gio::Cancellable::NONE,
            )
            .unwrap();
        tree.set_metadata_checksum(&directory_metadata.to_hex());
        for (number, checksum) in checksums.iter().chain([&symlink]).enumerate() {
            tree.replace_file(&format!("file{number}"), checksum).unwrap();
        }
        repo.prepare_transaction(ostree::gio::Cancellable::NONE).unwrap();
        let root = repo.write_mtree(&tree, ostree::gio::Cancellable::NONE).unwrap();
        let root = root.downcast::<ostree::RepoFile>().unwrap();
        let commit =
            repo.write_commit(None, None, None, None, &root, ostree::gio::Cancellable::NONE).unwrap();
        repo.transaction_set_ref(None, "test", Some(&commit));
        repo.commit_transaction(ostree::gio::Cancellable::NONE).unwrap();
        let fsck = std::process::Command::new("ostree")
            .arg(format!("--repo={}", ours.display()))
            .arg("fsck")
            .output()
            .expect("running ostree fsck (scripts/install-deps installs ostree)");
        assert!(
            fsck.status.success(),
            "ostree fsck: {}{}",
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
    }

    #[test]
    fn abandoned_staging_is_removed_and_live_staging_kept() {
        let directory = tempfile::tempdir().unwrap();
        let repo = bare_user_repository(directory.path());
        let abandoned = directory.path().join("tmp").join(format!("{STAGING_PREFIX}killed"));
        std::fs::create_dir_all(&abandoned).unwrap();
        std::fs::write(abandoned.join("partial.file"), b"x").unwrap();
        let live = ObjectStager::begin(&repo, directory.path()).unwrap();
        assert!(!abandoned.exists());
        let second = ObjectStager::begin(&repo, directory.path()).unwrap();
        assert!(live.staging_directory.path().exists(), "a live run's staging must survive another run");
        drop(second);
        drop(live);
    }
}
