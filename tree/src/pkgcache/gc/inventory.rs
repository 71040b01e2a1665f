//! What the cache holds on disk, counted as `du` counts: every inode once, at its allocated size
//! (`st_blocks` x 512, so a 100-byte object costs its 4 KiB block), under `pkgcache-repo/` (the objects
//! and the repository's own files: refs, state, tmp, config), `packages/` (downloaded RPMs, finished or
//! partial) and `work/tree` (the kept tree: its hardlinks to cached objects count once, with the objects;
//! its directories, symlinks and the files scriptlets and postprocessing wrote count as the tree's own).
//! Repository metadata, libsolv caches and a compose's scratch directory are not counted: garbage
//! collection does not manage them, and they are small. One pass of `getdents` + `fstatat` over all of it.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::blocking::Cancellation;

use super::{CacheSize, GcError};

/// `st_blocks` counts 512-byte units whatever the file system's block size.
const BLOCK_UNIT_BYTES: u64 = 512;

/// Entries walked between two looks at the cancellation.
const ENTRIES_PER_CANCELLATION_CHECK: usize = 4096;

/// Hex digits of a SHA-256 checksum, and of the `objects/XX` directory names that hold their first two.
const CHECKSUM_HEX_DIGITS: usize = 64;
const OBJECT_DIRECTORY_HEX_DIGITS: usize = 2;

/// A file, by device and inode number: hardlinks are one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Inode {
    device: u64,
    number: u64,
}

impl Inode {
    fn of(metadata: &Metadata) -> Inode {
        Inode { device: metadata.dev(), number: metadata.ino() }
    }
}

/// The kinds of loose object garbage collection knows; anything else in `objects/` is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ObjectKind {
    Commit,
    /// A commit's detached metadata: goes with its commit.
    CommitMeta,
    DirTree,
    DirMeta,
    File,
}

impl ObjectKind {
    fn from_extension(extension: &str) -> Option<ObjectKind> {
        Some(match extension {
            "commit" => ObjectKind::Commit,
            "commitmeta" => ObjectKind::CommitMeta,
            "dirtree" => ObjectKind::DirTree,
            "dirmeta" => ObjectKind::DirMeta,
            "file" => ObjectKind::File,
            _ => return None,
        })
    }

    /// The kind of an object libostree's traversal names.
    pub(super) fn of(object_type: ostree::ObjectType) -> Option<ObjectKind> {
        Some(match object_type {
            ostree::ObjectType::Commit => ObjectKind::Commit,
            ostree::ObjectType::CommitMeta => ObjectKind::CommitMeta,
            ostree::ObjectType::DirTree => ObjectKind::DirTree,
            ostree::ObjectType::DirMeta => ObjectKind::DirMeta,
            ostree::ObjectType::File => ObjectKind::File,
            _ => return None,
        })
    }
}

/// One loose object.
#[derive(Debug, Clone)]
pub(super) struct ObjectFile {
    pub checksum: String,
    pub kind: ObjectKind,
    /// Relative to `objects/`: `ab/cdef….file`.
    pub relative_path: String,
    pub inode: Inode,
    pub bytes: u64,
    /// `st_nlink`: the object itself, the kept tree's links, and links from outside the cache (a target
    /// repository that publishing hardlinked into).
    pub links: u64,
}

/// One file in `packages/`.
#[derive(Debug, Clone)]
pub(super) struct DownloadedFile {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub links: u64,
    pub modified: SystemTime,
}

/// An inode of the kept tree that is not a cached object.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TreeInode {
    pub bytes: u64,
    pub links_in_tree: u64,
    pub links: u64,
}

#[derive(Debug, Default)]
pub(super) struct Inventory {
    pub objects: Vec<ObjectFile>,
    /// Everything else under `pkgcache-repo/`, directories included.
    pub repository_bytes: u64,
    pub downloads: Vec<DownloadedFile>,
    /// Cached objects the kept tree links to, with the number of its links to each.
    pub tree_object_links: HashMap<Inode, u64>,
    pub tree_own: HashMap<Inode, TreeInode>,
}

impl Inventory {
    /// Walks the package cache repository, the downloads and the kept tree of `cache_directory`.
    pub fn take(cache_directory: &Path, cancellation: &Cancellation) -> Result<Inventory, GcError> {
        let mut walker = Walker { cancellation, entries: 0 };
        let mut inventory = Inventory::default();
        let repository = cache_directory.join(super::PACKAGE_CACHE_DIRECTORY);
        let objects = repository.join("objects");
        let mut repository_inodes: HashMap<Inode, u64> = HashMap::new();
        walker.walk(&repository, &mut |path, metadata| {
            if path.parent().and_then(Path::parent) == Some(objects.as_path())
                && let Some(object) = object_file(path, metadata)
            {
                inventory.objects.push(object);
            } else {
                repository_inodes.insert(Inode::of(metadata), allocated(metadata));
            }
        })?;
        inventory.repository_bytes = repository_inodes.values().sum();

        let downloads = cache_directory.join(rpmmd::download::DOWNLOADED_PACKAGES_DIRECTORY);
        walker.walk(&downloads, &mut |path, metadata| {
            if metadata.is_file() && path.parent() == Some(downloads.as_path()) {
                inventory.downloads.push(DownloadedFile {
                    name: path
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: path.to_path_buf(),
                    bytes: allocated(metadata),
                    links: metadata.nlink(),
                    modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        })?;

        let object_inodes: std::collections::HashSet<Inode> =
            inventory.objects.iter().map(|object| object.inode).collect();
        let tree = super::kept_tree(cache_directory);
        walker.walk(&tree, &mut |_, metadata| {
            let inode = Inode::of(metadata);
            if object_inodes.contains(&inode) {
                *inventory.tree_object_links.entry(inode).or_default() += 1;
            } else {
                let entry = inventory.tree_own.entry(inode).or_default();
                entry.bytes = allocated(metadata);
                entry.links = metadata.nlink();
                entry.links_in_tree += 1;
            }
        })?;
        Ok(inventory)
    }

    pub fn size(&self) -> CacheSize {
        CacheSize {
            package_cache: self.repository_bytes
                + self.objects.iter().map(|object| object.bytes).sum::<u64>(),
            downloads: self.downloads.iter().map(|download| download.bytes).sum(),
            kept_tree: self.tree_own.values().map(|inode| inode.bytes).sum(),
        }
    }
}

fn allocated(metadata: &Metadata) -> u64 {
    metadata.blocks() * BLOCK_UNIT_BYTES
}

/// `objects/ab/cdef….EXTENSION` as an object, if it is one of the kinds garbage collection knows.
fn object_file(path: &Path, metadata: &Metadata) -> Option<ObjectFile> {
    let prefix = path.parent()?.file_name()?.to_str()?;
    let name = path.file_name()?.to_str()?;
    let (rest, extension) = name.split_once('.')?;
    let kind = ObjectKind::from_extension(extension)?;
    let checksum = format!("{prefix}{rest}");
    let hex = |text: &str| text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    if prefix.len() != OBJECT_DIRECTORY_HEX_DIGITS
        || checksum.len() != CHECKSUM_HEX_DIGITS
        || !hex(&checksum)
        || metadata.is_dir()
    {
        return None;
    }
    Some(ObjectFile {
        relative_path: format!("{prefix}/{name}"),
        checksum,
        kind,
        inode: Inode::of(metadata),
        bytes: allocated(metadata),
        links: metadata.nlink(),
    })
}

struct Walker<'a> {
    cancellation: &'a Cancellation,
    entries: usize,
}

impl Walker<'_> {
    /// Calls `visit` for `root` and everything below it, without following symlinks. What disappears
    /// while it walks (or was never there) is skipped.
    fn walk(&mut self, root: &Path, visit: &mut dyn FnMut(&Path, &Metadata)) -> Result<(), GcError> {
        let metadata = match std::fs::symlink_metadata(root) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(io_error(root, error)),
        };
        visit(root, &metadata);
        if metadata.is_dir() { self.walk_directory(root, visit) } else { Ok(()) }
    }

    fn walk_directory(
        &mut self,
        directory: &Path,
        visit: &mut dyn FnMut(&Path, &Metadata),
    ) -> Result<(), GcError> {
        let entries = match std::fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(io_error(directory, error)),
        };
        for entry in entries {
            let entry = entry.map_err(|error| io_error(directory, error))?;
            self.entries += 1;
            if self.entries.is_multiple_of(ENTRIES_PER_CANCELLATION_CHECK) && self.cancellation.is_cancelled()
            {
                return Err(GcError::Cancelled);
            }
            let path = entry.path();
            // Relative to the open directory (fstatat), not following symlinks.
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io_error(&path, error)),
            };
            visit(&path, &metadata);
            if metadata.is_dir() {
                self.walk_directory(&path, visit)?;
            }
        }
        Ok(())
    }
}

fn io_error(path: &Path, error: io::Error) -> GcError {
    GcError::Io { path: path.to_path_buf(), message: error.to_string() }
}
