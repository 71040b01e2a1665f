//! Garbage collection of the package cache, between composes: the least recently used packages (see
//! [`super::usage`]) are evicted until the cache is no larger than a maximum, never those the caller
//! keeps (the packages of the stream's current builds); then everything no remaining ref reaches goes (the
//! commits of composed trees, which nothing reads after publishing, and what killed imports left), and the
//! downloaded RPMs of evicted packages and of no cached package. Without a maximum nothing is evicted:
//! only what no ref reaches and stale downloads of unknown packages go.
//!
//! It holds the cache's compose lock ([`CacheLock`]) throughout and fails at once while a compose holds
//! it. What it measures and how is in `inventory`; the choice in `plan`; the order of removal, which keeps
//! the cache usable after a kill at any point, in `sweep`.

mod inventory;
mod plan;
mod refs;
mod sweep;
mod unlink;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::blocking::Cancellation;
use ostree::gio;
use ostree::glib;

use super::PACKAGE_CACHE_DIRECTORY;
use crate::workdir::{CacheLock, CacheLockError, TREE_DIRECTORY, WORK_DIRECTORY};
use inventory::{DownloadedFile, Inventory, ObjectKind};
use plan::{Accounting, Candidate, PlannedObject};
use refs::{CachedRef, read_refs};

/// Downloads of no cached package are left alone while this young: a compose downloads its packages
/// before it takes the cache's lock and imports them, so one may be downloading them right now. (An hour
/// is far longer than any download phase, and short against how long a worker keeps its cache.)
const UNKNOWN_DOWNLOAD_GRACE: Duration = Duration::from_secs(60 * 60);

/// What to collect.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Evict least recently used packages until the cache is no larger; `None`: evict nothing.
    pub max_size: Option<u64>,
    /// NEVRAs (`name-[epoch:]version-release.arch`) never evicted.
    pub keep: BTreeSet<String>,
    /// Only report what would go.
    pub dry_run: bool,
}

/// Bytes on disk, each inode counted once at its allocated size (see `inventory`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSize {
    /// `pkgcache-repo/`: the objects (those the kept tree links to included) and the repository's files.
    pub package_cache: u64,
    /// Downloaded RPMs in `packages/`.
    pub downloads: u64,
    /// The kept tree's own entries: directories, symlinks, files composes wrote (not cached objects).
    pub kept_tree: u64,
}

impl CacheSize {
    pub fn total(&self) -> u64 {
        self.package_cache + self.downloads + self.kept_tree
    }
}

/// A package garbage collection removed from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictedPackage {
    pub nevra: String,
    pub branch: String,
    /// When a compose last used it.
    pub last_used: SystemTime,
    /// Its commit was unreadable or incomplete: it went whatever the size or the keep set (a compose
    /// would have failed on it; the next one imports it again).
    pub broken: bool,
}

/// What garbage collection did (or, in a dry run, would do).
#[derive(Debug, Clone)]
pub struct GcReport {
    pub dry_run: bool,
    pub max_size: Option<u64>,
    pub size_before: CacheSize,
    /// Measured again afterwards; in a dry run, what it would be at most (a real run may also free the
    /// ref directories ostree empties).
    pub size_after: CacheSize,
    /// `false` when the kept packages alone are larger than the maximum.
    pub target_reached: bool,
    pub packages_before: usize,
    /// Least recently used first.
    pub evicted: Vec<EvictedPackage>,
    /// Cached packages the keep set protected.
    pub protected: usize,
    /// Commits no ref reached (composed trees, imports a killed run left, evicted packages').
    pub commits_removed: usize,
    /// Loose objects removed, commits included, and their bytes.
    pub objects_removed: usize,
    pub object_bytes_removed: u64,
    pub downloads_removed: usize,
    pub download_bytes_removed: u64,
    /// Downloads that would have gone but a compose used them while this ran.
    pub downloads_in_use: usize,
    /// The kept tree was removed: it linked objects of evicted packages.
    pub tree_dropped: bool,
    /// Disk space released: removed inodes with no link left (an object a target repository on the same
    /// file system shares stays on disk, though it leaves the cache).
    pub bytes_freed: u64,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("garbage collection of the package cache: {0}")]
    Lock(#[from] CacheLockError),
    #[error(
        "package cache {path}: {message}; garbage collection stopped, the cache is usable as it is \
         (`ostree fsck --repo={path}` checks it)"
    )]
    Repository { path: PathBuf, message: String },
    #[error("garbage collection of the package cache: {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("garbage collection of the package cache was cancelled; the cache is usable as it is")]
    Cancelled,
}

/// Collects garbage in the cache at `cache_directory` (the directory holding `pkgcache-repo`, `packages`
/// and `work`). Blocking (async callers go through `common::blocking::run_blocking_cancellable`); fails
/// with [`GcError::Lock`] at once while a compose uses the cache, and stops with [`GcError::Cancelled`]
/// between steps once `cancellation` is raised, leaving a usable cache.
pub fn collect_garbage(
    cache_directory: &Path,
    options: &GcOptions,
    cancellation: &Cancellation,
) -> Result<GcReport, GcError> {
    let started = (Instant::now(), SystemTime::now());
    let _lock = CacheLock::try_acquire(cache_directory)?;
    if !options.dry_run {
        sweep::remove_leftovers(cache_directory)?;
    }
    let inventory = Inventory::take(cache_directory, cancellation)?;
    collect_locked(cache_directory, options, inventory, started, cancellation)
}

/// For a worker after each job (blocking, like [`collect_garbage`]): when the cache is larger than
/// `max_size`, collects garbage as [`collect_garbage`] with `keep` and returns its report; else returns
/// `None` having changed nothing.
/// The check is one walk of the cache under its lock (`getdents` and `fstatat` of every object, download
/// and kept-tree entry: 0.3 s for 51,500 objects, 500 downloads and a 25,000-file kept tree on this
/// project's 2-core machine, see `tree/benches/cache_gc.rs`), cheap against a compose and with no
/// running total to keep right across crates and kills.
pub fn prune_if_over(
    cache_directory: &Path,
    max_size: u64,
    keep: &BTreeSet<String>,
    cancellation: &Cancellation,
) -> Result<Option<GcReport>, GcError> {
    let started = (Instant::now(), SystemTime::now());
    let _lock = CacheLock::try_acquire(cache_directory)?;
    let inventory = Inventory::take(cache_directory, cancellation)?;
    let size = inventory.size().total();
    if size <= max_size {
        tracing::debug!(
            size,
            max_size,
            elapsed_ms = started.0.elapsed().as_millis() as u64,
            "package cache within its maximum size"
        );
        return Ok(None);
    }
    sweep::remove_leftovers(cache_directory)?;
    let options = GcOptions { max_size: Some(max_size), keep: keep.clone(), dry_run: false };
    collect_locked(cache_directory, &options, inventory, started, cancellation).map(Some)
}

/// Collects with the lock held and the inventory taken; `started` is when the caller began (a download
/// used since then is left alone).
fn collect_locked(
    cache_directory: &Path,
    options: &GcOptions,
    inventory: Inventory,
    started: (Instant, SystemTime),
    cancellation: &Cancellation,
) -> Result<GcReport, GcError> {
    let now = started.1;
    let size_before = inventory.size();
    let repository_path = cache_directory.join(PACKAGE_CACHE_DIRECTORY);
    let repository = open_repository(&repository_path)?;
    let object_index: HashMap<(&str, ObjectKind), usize> = inventory
        .objects
        .iter()
        .enumerate()
        .map(|(index, object)| ((object.checksum.as_str(), object.kind), index))
        .collect();
    let (cached, rooted) = match &repository {
        Some(repository) => read_refs(repository, &repository_path, &object_index, cancellation)?,
        None => (Vec::new(), Vec::new()),
    };
    let (candidates, broken): (Vec<&CachedRef>, Vec<&CachedRef>) =
        cached.iter().partition(|package| package.objects.is_some());

    let mut accounting = Accounting {
        objects: inventory
            .objects
            .iter()
            .map(|object| PlannedObject {
                bytes: object.bytes,
                in_tree: inventory.tree_object_links.contains_key(&object.inode),
                rooted: false,
            })
            .collect(),
        tree_bytes: inventory.tree_own.values().map(|inode| inode.bytes).sum(),
        fixed_bytes: inventory.repository_bytes,
        stale_download_bytes: 0,
    };
    for index in rooted {
        accounting.objects[index].rooted = true;
    }
    let download_owner: HashMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .filter_map(|(index, package)| package.download.as_deref().map(|name| (name, index)))
        .collect();
    let broken_downloads: BTreeSet<&str> =
        broken.iter().filter_map(|package| package.download.as_deref()).collect();
    let mut planned: Vec<Candidate> = candidates
        .iter()
        .map(|package| Candidate {
            nevra: package.nevra.clone(),
            last_used: package.last_used,
            protected: options.keep.contains(&package.nevra),
            objects: package.objects.clone().unwrap_or_default(),
            download_bytes: 0,
        })
        .collect();
    // Downloads: a cached package's goes with it; one of no cached package (or partial) goes once it has
    // not been used for a while.
    let mut stale_downloads: Vec<&DownloadedFile> = Vec::new();
    for download in &inventory.downloads {
        match download_owner.get(download.name.as_str()) {
            Some(&owner) => planned[owner].download_bytes += download.bytes,
            // Goes with its package.
            None if broken_downloads.contains(download.name.as_str()) => {
                accounting.stale_download_bytes += download.bytes;
            }
            None if now.duration_since(download.modified).unwrap_or_default() >= UNKNOWN_DOWNLOAD_GRACE => {
                accounting.stale_download_bytes += download.bytes;
                stale_downloads.push(download);
            }
            None => accounting.fixed_bytes += download.bytes,
        }
    }

    let plan = plan::plan(&planned, &accounting, options.max_size);
    let evicted_candidates: BTreeSet<usize> = plan.evict.iter().copied().collect();
    let mut reachable: Vec<bool> = accounting.objects.iter().map(|object| object.rooted).collect();
    for (index, candidate) in planned.iter().enumerate() {
        if !evicted_candidates.contains(&index) {
            for &object in &candidate.objects {
                reachable[object] = true;
            }
        }
    }
    let mut evicted: Vec<EvictedPackage> =
        broken.iter().map(|package| evicted_package(package, true)).collect();
    evicted.extend(plan.evict.iter().map(|index| evicted_package(candidates[*index], false)));
    let download_of_branch: HashMap<&str, &str> = cached
        .iter()
        .filter_map(|package| Some((package.branch.as_str(), package.download.as_deref()?)))
        .collect();
    let evicted_downloads: BTreeSet<&str> = evicted
        .iter()
        .filter_map(|package| download_of_branch.get(package.branch.as_str()).copied())
        .collect();
    let removal = sweep::Removal {
        branches: evicted.iter().map(|package| package.branch.as_str()).collect(),
        objects: inventory
            .objects
            .iter()
            .zip(&reachable)
            .filter(|(_, kept)| !**kept)
            .map(|(object, _)| object)
            .collect(),
        downloads: inventory
            .downloads
            .iter()
            .filter(|download| evicted_downloads.contains(download.name.as_str()))
            .chain(stale_downloads.iter().copied())
            .collect(),
        drop_tree: plan.drop_tree,
    };

    let outcome = match (&repository, options.dry_run) {
        (_, true) => sweep::predict(&removal, &inventory),
        (repository, false) => {
            sweep::carry_out(repository.as_ref(), cache_directory, &removal, &inventory, now, cancellation)?
        }
    };
    let size_after = if options.dry_run {
        // Removed objects the kept tree still links stay on disk as the tree's own files.
        CacheSize {
            package_cache: size_before.package_cache - outcome.object_bytes_removed,
            downloads: size_before.downloads - outcome.download_bytes_removed,
            kept_tree: if plan.drop_tree {
                0
            } else {
                size_before.kept_tree + outcome.object_bytes_left_in_tree
            },
        }
    } else {
        Inventory::take(cache_directory, cancellation)?.size()
    };
    let report = GcReport {
        dry_run: options.dry_run,
        max_size: options.max_size,
        size_before,
        size_after,
        target_reached: plan.target_reached,
        packages_before: cached.len(),
        protected: planned.iter().filter(|candidate| candidate.protected).count(),
        evicted,
        commits_removed: outcome.commits_removed,
        objects_removed: outcome.objects_removed,
        object_bytes_removed: outcome.object_bytes_removed,
        downloads_removed: outcome.downloads_removed,
        download_bytes_removed: outcome.download_bytes_removed,
        downloads_in_use: outcome.downloads_in_use,
        tree_dropped: plan.drop_tree,
        bytes_freed: outcome.bytes_freed,
        elapsed: started.0.elapsed(),
    };
    log(&report);
    Ok(report)
}

fn evicted_package(package: &CachedRef, broken: bool) -> EvictedPackage {
    EvictedPackage {
        nevra: package.nevra.clone(),
        branch: package.branch.clone(),
        last_used: package.last_used,
        broken,
    }
}

fn log(report: &GcReport) {
    for package in &report.evicted {
        tracing::debug!(
            package.nevra = %package.nevra,
            broken = package.broken,
            last_used = %common::time::format_utc(unix_seconds(package.last_used)),
            "evicted from the package cache"
        );
    }
    tracing::info!(
        dry_run = report.dry_run,
        size_before = report.size_before.total(),
        size_after = report.size_after.total(),
        max_size = report.max_size,
        target_reached = report.target_reached,
        packages_before = report.packages_before,
        packages_evicted = report.evicted.len(),
        packages_protected = report.protected,
        commits_removed = report.commits_removed,
        objects_removed = report.objects_removed,
        object_bytes_removed = report.object_bytes_removed,
        downloads_removed = report.downloads_removed,
        download_bytes_removed = report.download_bytes_removed,
        tree_dropped = report.tree_dropped,
        bytes_freed = report.bytes_freed,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "package cache garbage collected"
    );
}

/// The package cache repository, if there is one.
fn open_repository(path: &Path) -> Result<Option<ostree::Repo>, GcError> {
    if !path.join("config").exists() {
        return Ok(None);
    }
    let repository = ostree::Repo::new_for_path(path);
    repository.open(gio::Cancellable::NONE).map_err(|error| repository_error(path, error))?;
    Ok(Some(repository))
}

fn repository_error(path: &Path, error: glib::Error) -> GcError {
    GcError::Repository { path: path.to_path_buf(), message: error.to_string() }
}

/// Seconds since the epoch, for people and logs.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |duration| duration.as_secs())
}

/// `CACHE/work/tree`.
fn kept_tree(cache_directory: &Path) -> PathBuf {
    cache_directory.join(WORK_DIRECTORY).join(TREE_DIRECTORY)
}
