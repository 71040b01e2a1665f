//! Carrying out garbage collection in an order that leaves a usable cache after a kill at any moment:
//!
//! 1. the refs of evicted packages go, in one ostree transaction: a ref is there with its whole commit, or
//!    gone (the next compose imports the package again);
//! 2. then the commits no ref reaches, with their detached metadata and partial marks, and the file
//!    system is synced: from here on no commit in the repository names an object that is about to go, so
//!    `ostree fsck` (which checks every commit, referenced or not) stays clean;
//! 3. then the other unreachable objects (directory trees and metadata, files): nothing reachable names
//!    them, and a package being imported again writes the ones it needs anew (imports look objects up by
//!    name, and a name is there only with its content);
//! 4. then the downloads of evicted and unknown packages: each is unlinked whole (and composes verify
//!    what they download), and one that a compose used since this run started is left;
//! 5. last the kept tree, when it links evicted objects: renamed aside, then removed; a tree half-removed
//!    by a kill is corrected by the next checkout like any other, and what was set aside is removed by the
//!    next compose or garbage collection.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Instant, SystemTime};

use common::blocking::Cancellation;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::inventory::{DownloadedFile, Inventory, ObjectFile, ObjectKind};
use super::{GcError, PACKAGE_CACHE_DIRECTORY, WORK_DIRECTORY, kept_tree, unlink};
use crate::pkgcache::usage::LOCAL_REFS_DIRECTORY;

/// Where a dropped tree is set aside in `CACHE/work` while it is removed. The next compose removes any
/// entry of `CACHE/work` but the lock and the tree, so a kill while removing leaves nothing for good.
const DROPPED_TREE: &str = "tree-dropped-by-gc";

/// Where ostree marks a commit as partial, relative to the repository.
fn commit_partial_path(checksum: &str) -> String {
    format!("state/{checksum}.commitpartial")
}

/// What goes.
#[derive(Debug)]
pub(super) struct Removal<'a> {
    pub branches: Vec<&'a str>,
    pub objects: Vec<&'a ObjectFile>,
    pub downloads: Vec<&'a DownloadedFile>,
    pub drop_tree: bool,
}

/// What went.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub commits_removed: usize,
    pub objects_removed: usize,
    pub object_bytes_removed: u64,
    /// Bytes of removed objects that the kept tree (which stays) still links.
    pub object_bytes_left_in_tree: u64,
    pub downloads_removed: usize,
    pub download_bytes_removed: u64,
    pub downloads_in_use: usize,
    pub bytes_freed: u64,
}

/// What [`carry_out`] would do, changing nothing.
pub(super) fn predict(removal: &Removal<'_>, inventory: &Inventory) -> Outcome {
    let mut outcome = Outcome::default();
    for object in &removal.objects {
        outcome.count_object(object, inventory, removal.drop_tree);
    }
    for download in &removal.downloads {
        outcome.count_download(download);
    }
    outcome.count_tree(inventory, removal.drop_tree);
    outcome
}

impl Outcome {
    fn count_object(&mut self, object: &ObjectFile, inventory: &Inventory, drop_tree: bool) {
        self.objects_removed += 1;
        self.commits_removed += usize::from(object.kind == ObjectKind::Commit);
        self.object_bytes_removed += object.bytes;
        let tree_links = inventory.tree_object_links.get(&object.inode).copied().unwrap_or(0);
        if tree_links == 0 || drop_tree {
            // The object's own link and the tree's are all the cache has; more are a target repository's.
            if object.links == 1 + tree_links {
                self.bytes_freed += object.bytes;
            }
        } else {
            self.object_bytes_left_in_tree += object.bytes;
        }
    }

    fn count_download(&mut self, download: &DownloadedFile) {
        self.downloads_removed += 1;
        self.download_bytes_removed += download.bytes;
        if download.links == 1 {
            self.bytes_freed += download.bytes;
        }
    }

    fn count_tree(&mut self, inventory: &Inventory, drop_tree: bool) {
        if drop_tree {
            self.bytes_freed += inventory
                .tree_own
                .values()
                .filter(|inode| inode.links == inode.links_in_tree)
                .map(|inode| inode.bytes)
                .sum::<u64>();
        }
    }
}

/// Removes what `removal` names from the cache at `cache_directory`, in the order the module explains.
pub(super) fn carry_out(
    repository: Option<&ostree::Repo>,
    cache_directory: &Path,
    removal: &Removal<'_>,
    inventory: &Inventory,
    started: SystemTime,
    cancellation: &Cancellation,
) -> Result<Outcome, GcError> {
    let mut outcome = Outcome::default();
    let mut step = Instant::now();
    let mut done = |what: &'static str| {
        let elapsed_ms = step.elapsed().as_millis() as u64;
        tracing::debug!(step = what, elapsed_ms, "garbage collection step done");
        step = Instant::now();
    };
    if let Some(repository) = repository {
        let repository_path = cache_directory.join(PACKAGE_CACHE_DIRECTORY);
        let repository_directory = open_directory(&repository_path)?;
        let objects_path = repository_path.join("objects");
        let objects = open_directory(&objects_path)?;
        let sync = |directory: &OwnedFd, path: &Path| -> Result<(), GcError> {
            if repository.is_disable_fsync() {
                return Ok(());
            }
            rustix::fs::syncfs(directory).map_err(|error| io_error(path, error.into()))
        };
        check(cancellation)?;
        remove_refs(&repository_directory, &repository_path, &removal.branches)?;
        sync(&repository_directory, &repository_path)?;
        done("refs");

        // Commits go whole, uncancelled: then none is left naming an object that goes next.
        check(cancellation)?;
        let (commits, others): (Vec<&ObjectFile>, Vec<&ObjectFile>) = removal
            .objects
            .iter()
            .partition(|object| matches!(object.kind, ObjectKind::Commit | ObjectKind::CommitMeta));
        let paths: Vec<&str> = commits.iter().map(|object| object.relative_path.as_str()).collect();
        unlink::unlink_all(&objects, &objects_path, &paths, &Cancellation::new())?;
        let marks: Vec<String> = commits
            .iter()
            .filter(|object| object.kind == ObjectKind::Commit)
            .map(|object| commit_partial_path(&object.checksum))
            .collect();
        let marks: Vec<&str> = marks.iter().map(String::as_str).collect();
        unlink::unlink_all(&repository_directory, &repository_path, &marks, &Cancellation::new())?;
        for object in &commits {
            outcome.count_object(object, inventory, removal.drop_tree);
        }
        if !commits.is_empty() {
            sync(&objects, &objects_path)?;
        }
        done("commits");

        let paths: Vec<&str> = others.iter().map(|object| object.relative_path.as_str()).collect();
        unlink::unlink_all(&objects, &objects_path, &paths, cancellation)?;
        for object in &others {
            outcome.count_object(object, inventory, removal.drop_tree);
        }
        done("objects");
    }
    check(cancellation)?;
    for download in &removal.downloads {
        // A compose may reuse a download without holding the lock (it downloads first); it marks the
        // file used, and then it stays.
        let in_use = std::fs::symlink_metadata(&download.path)
            .ok()
            .and_then(|metadata| metadata.modified().ok())
            .is_some_and(|modified| modified >= started);
        if in_use {
            outcome.downloads_in_use += 1;
            continue;
        }
        match std::fs::remove_file(&download.path) {
            Ok(()) => outcome.count_download(download),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&download.path, error)),
        }
    }
    done("downloads");
    if removal.drop_tree {
        check(cancellation)?;
        let tree = kept_tree(cache_directory);
        let aside = cache_directory.join(WORK_DIRECTORY).join(DROPPED_TREE);
        unlink::remove_tree(&aside, cancellation)?;
        match std::fs::rename(&tree, &aside) {
            Ok(()) => unlink::remove_tree(&aside, cancellation)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&tree, error)),
        }
        outcome.count_tree(inventory, true);
        done("kept tree");
    }
    Ok(outcome)
}

fn check(cancellation: &Cancellation) -> Result<(), GcError> {
    if cancellation.is_cancelled() { Err(GcError::Cancelled) } else { Ok(()) }
}

/// Removes what an interrupted garbage collection or import left: a tree set aside, abandoned staging
/// directories of imports. Only with the cache's lock held.
pub(super) fn remove_leftovers(cache_directory: &Path) -> Result<(), GcError> {
    unlink::remove_tree(&cache_directory.join(WORK_DIRECTORY).join(DROPPED_TREE), &Cancellation::new())?;
    let temporary = cache_directory.join(PACKAGE_CACHE_DIRECTORY).join("tmp");
    crate::pkgcache::objects::remove_abandoned_staging(&temporary)
        .map_err(|error| io_error(&temporary, error))
}

/// Removes the ref files of `branches` (a local branch is its file: ostree reads nothing else for it)
/// and the package directories left empty, as ostree's own ref deletion does; faster than an ostree
/// transaction, which syncs each ref's directory apart (9 ms a ref here). The caller syncs once.
fn remove_refs(repository: &OwnedFd, repository_path: &Path, branches: &[&str]) -> Result<(), GcError> {
    let files: Vec<String> =
        branches.iter().map(|branch| format!("{LOCAL_REFS_DIRECTORY}/{branch}")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    unlink::unlink_all(repository, repository_path, &files, &Cancellation::new())?;
    let parents: BTreeSet<&str> =
        files.iter().filter_map(|file| file.rsplit_once('/')).map(|(parent, _)| parent).collect();
    for parent in parents {
        match rustix::fs::unlinkat(repository, parent, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => {}
            Err(error) => return Err(io_error(&repository_path.join(parent), error.into())),
        }
    }
    Ok(())
}

fn open_directory(path: &Path) -> Result<OwnedFd, GcError> {
    rustix::fs::open(path, OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY, Mode::empty())
        .map_err(|error| io_error(path, error.into()))
}

fn io_error(path: &Path, error: io::Error) -> GcError {
    GcError::Io { path: path.to_path_buf(), message: error.to_string() }
}
