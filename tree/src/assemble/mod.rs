//! Assembling the root filesystem from cached packages: the union of their manifests is checked first
//! (conflicting files name both packages, nothing may be written through a symlink), then every regular
//! file is hardlinked from the package cache, symlinks and directories are created (reusing what the
//! previous compose left that is still right, see [`reuse`]), and finally files that RPM gives to other
//! users are re-owned against the tree's own passwd and group.

mod reuse;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::capabilities::CAPABILITY_XATTR;
use crate::pkgcache::manifest::{EntryKind, FLAG_DOCUMENTATION};
use crate::pkgcache::{CachedPackage, ManifestEntry, PackageCache};

/// Directories a package implies but does not list get the usual mode.
const IMPLIED_DIRECTORY_MODE: u32 = 0o755;

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("file conflict: {path} differs between {first} and {second}")]
    Conflict { path: String, first: String, second: String },
    #[error("{package}: {path} would be written through the symlink {symlink} (from {symlink_package})")]
    ThroughSymlink { package: String, path: String, symlink: String, symlink_package: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> AssembleError {
    AssembleError::Io { path: path.to_path_buf(), message: error.to_string() }
}

/// One path of the assembled tree and the package it comes from.
#[derive(Debug, Clone, Copy)]
pub struct UnionEntry<'a> {
    pub package: usize,
    pub entry: &'a ManifestEntry,
}

/// The union of the packages' manifests, checked for conflicts.
#[derive(Debug)]
pub struct TreeUnion<'a> {
    pub entries: BTreeMap<&'a str, UnionEntry<'a>>,
}

impl<'a> TreeUnion<'a> {
    /// Builds the union in installation order. Identical files (the same object and owner) from several
    /// packages are allowed; directories may be listed by several packages (the first one's mode wins, as
    /// in rpm's shared-directory handling); anything else at the same path is a conflict.
    pub fn build(packages: &'a [CachedPackage], documentation: bool) -> Result<TreeUnion<'a>, AssembleError> {
        let mut entries: BTreeMap<&'a str, UnionEntry<'a>> = BTreeMap::new();
        for (index, package) in packages.iter().enumerate() {
            for entry in &package.manifest {
                if !documentation && entry.flags & FLAG_DOCUMENTATION != 0 {
                    continue;
                }
                match entries.get(entry.path.as_str()) {
                    None => {
                        entries.insert(entry.path.as_str(), UnionEntry { package: index, entry });
                    }
                    Some(existing) => {
                        let same = match (existing.entry.kind(), entry.kind()) {
                            (EntryKind::Directory, EntryKind::Directory) => true,
                            (EntryKind::Directory, _) | (_, EntryKind::Directory) => false,
                            // As rpm: the same content and mode (the object) and the same owner names.
                            _ => {
                                existing.entry.checksum == entry.checksum
                                    && existing.entry.user == entry.user
                                    && existing.entry.group == entry.group
                            }
                        };
                        if !same {
                            return Err(AssembleError::Conflict {
                                path: entry.path.clone(),
                                first: packages[existing.package].identity.nevra.clone(),
                                second: package.identity.nevra.clone(),
                            });
                        }
                    }
                }
            }
        }
        let union = TreeUnion { entries };
        union.check_symlink_parents(packages)?;
        Ok(union)
    }

    /// RPM would write a file below a symlinked directory through the link, possibly out of the root;
    /// we refuse such trees.
    fn check_symlink_parents(&self, packages: &[CachedPackage]) -> Result<(), AssembleError> {
        for (path, union_entry) in &self.entries {
            let mut end = 0;
            while let Some(offset) = path[end + 1..].find('/') {
                end += 1 + offset;
                let parent = &path[..end];
                if let Some(parent_entry) = self.entries.get(parent)
                    && parent_entry.entry.kind() == EntryKind::Symlink
                {
                    return Err(AssembleError::ThroughSymlink {
                        package: packages[union_entry.package].identity.nevra.clone(),
                        path: path.to_string(),
                        symlink: parent.to_string(),
                        symlink_package: packages[parent_entry.package].identity.nevra.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every path a package installs (for file triggers and `remove-from-packages`), by package name.
    pub fn files_by_package(&self, packages: &[CachedPackage]) -> BTreeMap<String, Vec<String>> {
        let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for package in packages {
            files.entry(package.identity.name.clone()).or_default();
        }
        for (path, union_entry) in &self.entries {
            files
                .entry(packages[union_entry.package].identity.name.clone())
                .or_default()
                .push(path.to_string());
        }
        files
    }
}

/// The checked-out tree: which inode is which cached object, so the commit can reuse objects of files
/// nothing changed.
#[derive(Debug, Default)]
pub struct Checkout {
    pub object_by_inode: HashMap<(u64, u64), String>,
    /// Files hardlinked from the package cache, including those reused from the previous tree.
    pub files_linked: usize,
    /// Paths the previous compose's tree already had right, and paths removed from it.
    pub paths_reused: usize,
    pub paths_removed: usize,
}

/// Makes the tree under `root` (a directory on the package cache's file system, empty or what the previous
/// compose left) exactly what a fresh checkout of `union` gives.
pub fn checkout(cache: &PackageCache, union: &TreeUnion<'_>, root: &Path) -> Result<Checkout, AssembleError> {
    let mut checkout = Checkout::default();
    let reused = reuse::prune(cache, union, root, &mut checkout)?;
    checkout.paths_reused = reused.present.len();
    checkout.paths_removed = reused.removed;
    // Parents that already exist are found by `create_dir` failing once each.
    let mut created_directories: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (path, union_entry) in &union.entries {
        let entry = union_entry.entry;
        let relative = entry.relative_path();
        if relative.is_empty() || reused.present.contains(relative) {
            continue;
        }
        ensure_parents(root, relative, &mut created_directories)?;
        let destination = root.join(relative);
        match entry.kind() {
            EntryKind::Directory => {
                if created_directories.insert(relative.to_string()) {
                    std::fs::create_dir(&destination).map_err(|error| io_error(&destination, error))?;
                }
                set_mode(&destination, entry.permissions())?;
            }
            EntryKind::Symlink => {
                std::os::unix::fs::symlink(&entry.target, &destination)
                    .map_err(|error| io_error(&destination, error))?;
            }
            EntryKind::Regular => {
                let object = cache.object_path(&entry.checksum);
                std::fs::hard_link(&object, &destination).map_err(|error| {
                    io_error(&destination, format!("hardlinking {} ({path}): {error}", object.display()))
                })?;
                let metadata =
                    std::fs::symlink_metadata(&destination).map_err(|error| io_error(&destination, error))?;
                checkout.object_by_inode.insert((metadata.dev(), metadata.ino()), entry.checksum.clone());
                checkout.files_linked += 1;
            }
        }
    }
    Ok(checkout)
}

fn ensure_parents(
    root: &Path,
    relative: &str,
    created: &mut std::collections::HashSet<String>,
) -> Result<(), AssembleError> {
    let mut end = 0;
    while let Some(offset) = relative[end..].find('/') {
        let parent = &relative[..end + offset];
        end += offset + 1;
        if created.contains(parent) {
            continue;
        }
        let directory = root.join(parent);
        match std::fs::create_dir(&directory) {
            Ok(()) => set_mode(&directory, IMPLIED_DIRECTORY_MODE)?,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error(&directory, error)),
        }
        created.insert(parent.to_string());
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), AssembleError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|error| io_error(path, error))
}

/// Looks owner names up in the tree's users and groups.
pub trait OwnerLookup {
    fn user_id(&self, name: &str) -> Option<u32>;
    fn group_id(&self, name: &str) -> Option<u32>;
}

impl OwnerLookup for crate::passwd::PasswdDatabase {
    fn user_id(&self, name: &str) -> Option<u32> {
        crate::passwd::PasswdDatabase::user_id(self, name)
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        crate::passwd::PasswdDatabase::group_id(self, name)
    }
}

/// What the ownership pass did.
#[derive(Debug, Default, Clone)]
pub struct OwnershipReport {
    pub files_changed: usize,
    /// `(package, path, user or group)` that the tree does not define; those stay root-owned, as rpm does.
    pub unknown_owners: Vec<(String, String, String)>,
}

/// Gives files that RPM assigns to other users their owner, resolved against the tree's own users (after
/// the %pre scriptlets created them). A hardlinked file is copied first so the cached object stays intact.
pub fn apply_ownership(
    root: &Path,
    union: &TreeUnion<'_>,
    packages: &[CachedPackage],
    owners: &dyn OwnerLookup,
) -> Result<OwnershipReport, AssembleError> {
    let mut report = OwnershipReport::default();
    for (path, union_entry) in &union.entries {
        let entry = union_entry.entry;
        if !entry.has_non_root_owner() {
            continue;
        }
        let package = &packages[union_entry.package].identity.nevra;
        let uid = owners.user_id(&entry.user).unwrap_or_else(|| {
            report.unknown_owners.push((package.clone(), path.to_string(), entry.user.clone()));
            0
        });
        let gid = owners.group_id(&entry.group).unwrap_or_else(|| {
            report.unknown_owners.push((package.clone(), path.to_string(), entry.group.clone()));
            0
        });
        if uid == 0 && gid == 0 {
            continue;
        }
        refuse_symlinks_on_the_way(root, entry)?;
        let destination = root.join(entry.relative_path());
        let mut capability = None;
        if entry.kind() == EntryKind::Regular {
            capability = read_capability(&destination)?;
            break_hardlink(&destination)?;
        }
        std::os::unix::fs::lchown(&destination, Some(uid), Some(gid))
            .map_err(|error| io_error(&destination, error))?;
        if entry.kind() != EntryKind::Symlink {
            // chown clears set-user-ID, set-group-ID and capabilities: put them back.
            set_mode(&destination, entry.permissions())?;
        }
        if let Some(value) = capability {
            set_capability(&destination, &value)?;
        }
        report.files_changed += 1;
    }
    Ok(report)
}

/// Fails when a scriptlet has put a symlink where the manifest has a directory or a file, on the way to
/// `entry` or at it: the ownership pass runs on the host, where following that link would change the
/// owner and mode of a file outside the tree.
fn refuse_symlinks_on_the_way(root: &Path, entry: &ManifestEntry) -> Result<(), AssembleError> {
    let components: Vec<&str> = entry.relative_path().split('/').collect();
    let mut path = root.to_path_buf();
    for (index, component) in components.iter().enumerate() {
        path.push(component);
        if index + 1 == components.len() && entry.kind() == EntryKind::Symlink {
            break;
        }
        let metadata = std::fs::symlink_metadata(&path).map_err(|error| io_error(&path, error))?;
        if metadata.file_type().is_symlink() {
            let message =
                format!("a scriptlet made this a symlink; not following it to give {} its owner", entry.path);
            return Err(io_error(&path, message));
        }
    }
    Ok(())
}

/// Replaces a (hardlinked) file by a private copy with the same content, mode and capabilities.
pub fn break_hardlink(path: &Path) -> Result<(), AssembleError> {
    let metadata = std::fs::symlink_metadata(path).map_err(|error| io_error(path, error))?;
    if metadata.nlink() <= 1 {
        return Ok(());
    }
    let capability = read_capability(path)?;
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.arbor-copy"));
    std::fs::copy(path, &temporary).map_err(|error| io_error(&temporary, error))?;
    set_mode(&temporary, metadata.mode() & 0o7777)?;
    if let Some(value) = capability {
        set_capability(&temporary, &value)?;
    }
    std::fs::rename(&temporary, path).map_err(|error| io_error(path, error))
}

fn set_capability(path: &Path, value: &[u8]) -> Result<(), AssembleError> {
    rustix::fs::setxattr(path, CAPABILITY_XATTR, value, rustix::fs::XattrFlags::empty())
        .map_err(|error| io_error(path, format!("setting {CAPABILITY_XATTR}: {error}")))
}

/// The file's `security.capability`, if any.
pub fn read_capability(path: &Path) -> Result<Option<Vec<u8>>, AssembleError> {
    let mut buffer = vec![0u8; 64];
    match rustix::fs::lgetxattr(path, CAPABILITY_XATTR, &mut buffer) {
        Ok(length) => {
            buffer.truncate(length);
            Ok(Some(buffer))
        }
        Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(None),
        Err(error) => Err(io_error(path, format!("reading {CAPABILITY_XATTR}: {error}"))),
    }
}
