//! Reusing the tree the previous compose left behind: everything in it that is exactly what a fresh
//! checkout of the new package set would create (the same cached object by inode, the same symlink target,
//! a directory with the same mode) stays, everything else (other packages' files, what scriptlets and
//! postprocessing wrote, private copies) is removed. Creating thousands of directories and symlinks and
//! deleting them again after the commit is most of an incremental compose's time on ext4; this makes it
//! proportional to what changed. The checks cover everything a fresh checkout decides, so a tree that a
//! killed run left in any state is brought to the same result.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::{AssembleError, Checkout, IMPLIED_DIRECTORY_MODE, TreeUnion, io_error};
use crate::pkgcache::PackageCache;
use crate::pkgcache::manifest::{EntryKind, ManifestEntry};
use common::ostree_format::loose_object_path;

/// Where ostree conventions put `/etc` at the end of a compose; moved back before pruning, so that the
/// configuration files of unchanged packages are reused instead of re-created.
const MOVED_CONFIGURATION_DIRECTORY: &str = "usr/etc";
const CONFIGURATION_DIRECTORY: &str = "etc";
const USR_DIRECTORY: &str = "usr";

/// What pruning found: the paths (relative to the root) that are already as a fresh checkout makes them.
#[derive(Debug, Default)]
pub(super) struct Reused {
    pub present: HashSet<String>,
    pub removed: usize,
}

/// Removes from `root` everything that a fresh checkout of `union` would not create identically and
/// records the reused files' objects in `checkout`.
pub(super) fn prune(
    cache: &PackageCache,
    union: &TreeUnion<'_>,
    root: &Path,
    checkout: &mut Checkout,
) -> Result<Reused, AssembleError> {
    let mut wanted: HashMap<&str, &ManifestEntry> = HashMap::with_capacity(union.entries.len());
    let mut implied_directories: HashSet<&str> = HashSet::new();
    for union_entry in union.entries.values() {
        let relative = union_entry.entry.relative_path();
        if relative.is_empty() {
            continue;
        }
        wanted.insert(relative, union_entry.entry);
        let mut parent = relative;
        while let Some(end) = parent.rfind('/') {
            parent = &parent[..end];
            if !implied_directories.insert(parent) {
                break;
            }
        }
    }
    move_configuration_back(root, &wanted)?;
    let owner = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    std::os::unix::fs::lchown(root, Some(owner.0), Some(owner.1)).map_err(|error| io_error(root, error))?;
    let objects_path = cache.path().join("objects");
    let objects = rustix::fs::open(&objects_path, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|error| io_error(&objects_path, error))?;
    let mut pruner =
        Pruner { objects, wanted, implied_directories, owner, checkout, reused: Reused::default() };
    pruner.walk(root, "")?;
    Ok(pruner.reused)
}

/// A previous compose moved `/etc` to `/usr/etc`; moving it back is one rename instead of re-creating
/// every configuration file (pruning then checks each of them as usual). Relative to directories opened
/// without following symlinks: a scriptlet may have left `/usr` a symlink to anywhere on the host.
fn move_configuration_back(root: &Path, wanted: &HashMap<&str, &ManifestEntry>) -> Result<(), AssembleError> {
    let wanted_at_etc =
        wanted.get(CONFIGURATION_DIRECTORY).is_some_and(|entry| entry.kind() == EntryKind::Directory);
    if !wanted_at_etc || wanted.contains_key(MOVED_CONFIGURATION_DIRECTORY) {
        return Ok(());
    }
    let directory = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
    let root_directory =
        rustix::fs::open(root, directory, Mode::empty()).map_err(|error| io_error(root, error))?;
    let Ok(usr) = rustix::fs::openat(&root_directory, USR_DIRECTORY, directory, Mode::empty()) else {
        return Ok(());
    };
    let is_directory = |parent: &OwnedFd, name: &str| {
        rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
    };
    let configuration_exists =
        rustix::fs::statat(&root_directory, CONFIGURATION_DIRECTORY, AtFlags::SYMLINK_NOFOLLOW).is_ok();
    if is_directory(&usr, CONFIGURATION_DIRECTORY) && !configuration_exists {
        rustix::fs::renameat(&usr, CONFIGURATION_DIRECTORY, &root_directory, CONFIGURATION_DIRECTORY)
            .map_err(|error| io_error(&root.join(MOVED_CONFIGURATION_DIRECTORY), error))?;
    }
    Ok(())
}

struct Pruner<'a, 'union> {
    /// The package cache's `objects/` directory, to find the inode of each object.
    objects: OwnedFd,
    wanted: HashMap<&'union str, &'union ManifestEntry>,
    implied_directories: HashSet<&'union str>,
    /// Who owns what a fresh checkout creates (the ownership pass runs later, on both kinds of tree).
    owner: (u32, u32),
    checkout: &'a mut Checkout,
    reused: Reused,
}

enum Verdict {
    Keep,
    KeepDirectory,
    Remove,
}

impl Pruner<'_, '_> {
    fn walk(&mut self, directory: &Path, prefix: &str) -> Result<(), AssembleError> {
        let entries = std::fs::read_dir(directory).map_err(|error| io_error(directory, error))?;
        for entry in entries {
            let entry = entry.map_err(|error| io_error(directory, error))?;
            let path = entry.path();
            // Relative to the open directory (no path lookup from the root); does not follow symlinks.
            let metadata = entry.metadata().map_err(|error| io_error(&path, error))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                self.remove(&path, &metadata)?;
                continue;
            };
            let relative = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            match self.verdict(&relative, &path, &metadata)? {
                Verdict::Remove => self.remove(&path, &metadata)?,
                Verdict::Keep => {
                    self.reused.present.insert(relative);
                }
                Verdict::KeepDirectory => {
                    self.walk(&path, &relative)?;
                    self.reused.present.insert(relative);
                }
            }
        }
        Ok(())
    }

    fn verdict(
        &mut self,
        relative: &str,
        path: &Path,
        metadata: &Metadata,
    ) -> Result<Verdict, AssembleError> {
        let owned_as_created = (metadata.uid(), metadata.gid()) == self.owner;
        let Some(entry) = self.wanted.get(relative) else {
            if metadata.is_dir() && self.implied_directories.contains(relative) {
                self.fix_directory(path, metadata, IMPLIED_DIRECTORY_MODE)?;
                return Ok(Verdict::KeepDirectory);
            }
            return Ok(Verdict::Remove);
        };
        let file_type = metadata.file_type();
        Ok(match entry.kind() {
            EntryKind::Directory if file_type.is_dir() => {
                self.fix_directory(path, metadata, entry.permissions())?;
                Verdict::KeepDirectory
            }
            EntryKind::Symlink if file_type.is_symlink() && owned_as_created => {
                let target = std::fs::read_link(path).map_err(|error| io_error(path, error))?;
                if target.as_os_str() == entry.target.as_str() { Verdict::Keep } else { Verdict::Remove }
            }
            EntryKind::Regular if file_type.is_file() => {
                let object = loose_object_path(&entry.checksum, "file");
                match rustix::fs::statat(&self.objects, object.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stored) if (stored.st_dev, stored.st_ino) == (metadata.dev(), metadata.ino()) => {
                        self.checkout
                            .object_by_inode
                            .insert((metadata.dev(), metadata.ino()), entry.checksum.clone());
                        self.checkout.files_linked += 1;
                        Verdict::Keep
                    }
                    _ => Verdict::Remove,
                }
            }
            _ => Verdict::Remove,
        })
    }

    /// Gives a reused directory the owner and mode a fresh one would have.
    fn fix_directory(&self, path: &Path, metadata: &Metadata, mode: u32) -> Result<(), AssembleError> {
        if (metadata.uid(), metadata.gid()) != self.owner {
            std::os::unix::fs::lchown(path, Some(self.owner.0), Some(self.owner.1))
                .map_err(|error| io_error(path, error))?;
        }
        if metadata.mode() & 0o7777 != mode || (metadata.uid(), metadata.gid()) != self.owner {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|error| io_error(path, error))?;
        }
        Ok(())
    }

    fn remove(&mut self, path: &Path, metadata: &Metadata) -> Result<(), AssembleError> {
        let result =
            if metadata.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
        result
            .map_err(|error| io_error(path, format!("removing what the previous compose left: {error}")))?;
        tracing::trace!(path = %path.display(), "removed from the previous tree");
        self.reused.removed += 1;
        Ok(())
    }
}
