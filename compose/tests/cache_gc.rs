//! Garbage collection of the package cache (`tree::pkgcache::gc`) on caches real composes filled through
//! `compose::tree`: after composes of two package sets, the least recently used packages go first and kept
//! ones never; what no ref reaches (the composed trees' commits) goes; the cache passes `ostree fsck`; a
//! later compose imports exactly the evicted packages again and makes the same commit; the kept tree goes
//! when it links evicted packages; downloads of evicted and unknown packages go, reused ones are marked
//! used; a dry run changes nothing; nothing runs while a compose holds the cache's lock; the worker's hook
//! does nothing under its maximum. Needs root, bwrap, rofiles-fuse, rpm, createrepo_c and ostree
//! (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arbor_testsupport::os_fixture;
use arbor_testsupport::tools::tool_stdout;
use arbor_testsupport::{RpmSpec, TestHttpServer, TestRepository};
use common::blocking::Cancellation;
use compose::ComposeSummary;
use support::*;
use tree::pkgcache::gc::{GcError, GcOptions, GcReport, collect_garbage, prune_if_over};

/// Packages in each of the two sets beyond the minimal OS.
const SET_SIZE: usize = 3;

/// Files of distinct content in each package, so that no two packages share an object.
const FILES_PER_PACKAGE: usize = 4;

/// How far back downloads are dated to tell reused ones from the rest.
const LONG_AGO: Duration = Duration::from_secs(24 * 60 * 60);

/// Older than garbage collection's grace for downloads of no cached package (an hour).
const STALE: Duration = Duration::from_secs(2 * 60 * 60);

fn set_names(set: &str) -> Vec<String> {
    (0..SET_SIZE).map(|index| format!("{set}-{index}")).collect()
}

fn set_package(name: &str) -> RpmSpec {
    (0..FILES_PER_PACKAGE).fold(package(name), |spec, file| {
        spec.file(&format!("/usr/share/{name}/file-{file}"), format!("{name} file {file}\n"), 0o644)
    })
}

fn nevra(name: &str) -> String {
    format!("{name}-{}-{}.noarch", os_fixture::VERSION, os_fixture::RELEASE)
}

fn treefile_of(set: &str) -> String {
    let names = set_names(set);
    treefile(&names.iter().map(String::as_str).collect::<Vec<_>>(), "")
}

/// A repository with the minimal OS and the sets `alpha` and `beta`, served from disk or over HTTP.
struct Fixture {
    _repository: TestRepository,
    _server: Option<TestHttpServer>,
    workspace: Workspace,
}

impl Fixture {
    fn new(over_http: bool) -> Fixture {
        let specs: Vec<RpmSpec> =
            set_names("alpha").iter().chain(&set_names("beta")).map(|name| set_package(name)).collect();
        let repository = repository_with(&specs);
        let server = over_http.then(|| TestHttpServer::serve(repository.path()).unwrap());
        let url = server.as_ref().map_or_else(|| repository.url(), TestHttpServer::url);
        let workspace = Workspace::new(&url, None);
        Fixture { _repository: repository, _server: server, workspace }
    }

    fn compose(&self, set: &str) -> ComposeSummary {
        self.workspace.compose(&treefile_of(set)).unwrap()
    }

    /// Composes `set` into a repository of its own (no parent: the same inputs give the same commit).
    fn compose_afresh(&self, set: &str, repository: &str) -> ComposeSummary {
        let mut request = self.workspace.request();
        request.repo = self.workspace.directory.path().join(repository);
        self.workspace.compose_with(&treefile_of(set), &request).unwrap()
    }

    fn collect(&self, options: &GcOptions) -> GcReport {
        collect_garbage(&self.workspace.cache(), options, &Cancellation::new()).unwrap()
    }

    fn package_refs(&self) -> BTreeSet<String> {
        ostree(&self.workspace.package_cache(), &["refs"])
            .lines()
            .filter(|line| line.starts_with("rpmostree/pkg/"))
            .map(str::to_string)
            .collect()
    }

    fn object_count(&self) -> usize {
        let objects = self.workspace.package_cache().join("objects");
        std::fs::read_dir(objects)
            .unwrap()
            .map(|directory| std::fs::read_dir(directory.unwrap().path()).unwrap().count())
            .sum()
    }

    fn has_commit(&self, commit: &str) -> bool {
        let repository = format!("--repo={}", self.workspace.package_cache().display());
        tool_stdout("ostree", &[repository, "show".to_string(), commit.to_string()]).is_ok()
    }

    /// The NEVRAs of the commit the target's ref points to, as `--keep-commit` reads them.
    fn published_packages(&self) -> BTreeSet<String> {
        let (_, information) = tree::commit_information(&self.workspace.target(), REFERENCE).unwrap();
        information.packages.iter().map(tree::ListedPackage::nevra).collect()
    }

    fn downloads(&self) -> BTreeMap<String, SystemTime> {
        let directory = self.workspace.cache().join("packages");
        let Ok(entries) = std::fs::read_dir(directory) else { return BTreeMap::new() };
        entries
            .map(|entry| {
                let entry = entry.unwrap();
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.metadata().unwrap().modified().unwrap(),
                )
            })
            .collect()
    }
}

fn evicted(report: &GcReport) -> Vec<String> {
    report.evicted.iter().map(|package| package.nevra.clone()).collect()
}

fn set_modified(path: &Path, time: SystemTime) {
    std::fs::File::open(path).unwrap().set_modified(time).unwrap();
}

#[test]
fn least_recently_used_packages_go_first_kept_ones_never_and_come_back_the_same() {
    let fixture = Fixture::new(false);
    let first = fixture.compose("alpha");
    let second = fixture.compose("beta");
    let objects_before = fixture.object_count();
    let refs_before = fixture.package_refs();
    assert_eq!(refs_before.len(), os_fixture::PACKAGE_NAMES.len() + 2 * SET_SIZE);

    // One byte too many once what no ref reaches is gone: the least recently used package goes, one that
    // only the first compose used.
    let size = fixture.collect(&GcOptions { dry_run: true, ..GcOptions::default() }).size_after.total();
    let one_over =
        fixture.collect(&GcOptions { max_size: Some(size - 1), dry_run: true, ..GcOptions::default() });
    assert_eq!(one_over.evicted.len(), 1, "{:?}", evicted(&one_over));
    assert!(one_over.evicted[0].nevra.starts_with("alpha-"), "{:?}", evicted(&one_over));

    // Everything may go but the published commit's packages and alpha-0.
    let mut keep = fixture.published_packages();
    keep.insert(nevra("alpha-0"));
    let predicted = fixture.collect(&GcOptions { max_size: Some(0), keep: keep.clone(), dry_run: true });
    let report = fixture.collect(&GcOptions { max_size: Some(0), keep: keep.clone(), dry_run: false });
    assert_eq!(evicted(&predicted), evicted(&report), "the dry run said what would go");
    assert_eq!(predicted.objects_removed, report.objects_removed);
    // At most: ostree also removes the ref directories it empties.
    assert!(report.size_after.total() <= predicted.size_after.total(), "{predicted:?}\n{report:?}");
    assert_eq!(predicted.size_after.kept_tree, report.size_after.kept_tree);
    assert_eq!(evicted(&report), [nevra("alpha-1"), nevra("alpha-2")], "least recently used first");
    assert!(!report.target_reached, "the kept packages alone are larger than 0 bytes");
    assert_eq!(report.protected, keep.len());
    assert_eq!(report.commits_removed, 4, "two composed trees and two evicted packages");
    assert!(!report.tree_dropped, "the kept tree links only packages that stay");
    assert!(report.size_after.total() < report.size_before.total(), "{report:?}");
    assert!(report.bytes_freed > 0);
    for commit in [&first.commit, &second.commit] {
        assert!(!fixture.has_commit(commit.as_deref().unwrap()), "composed commits are unreferenced");
    }
    let refs_after = fixture.package_refs();
    assert_eq!(refs_before.difference(&refs_after).count(), 2);
    assert!(refs_after.iter().all(|branch| !branch.contains("alpha-1") && !branch.contains("alpha-2")));
    let objects_after = fixture.object_count();
    assert_eq!(objects_before - objects_after, report.objects_removed, "{objects_before} -> {objects_after}");
    assert!(report.objects_removed >= 2 * FILES_PER_PACKAGE, "{report:?}");
    assert_fsck_clean(&fixture.workspace.package_cache());

    // Nothing more to do: collecting again removes nothing.
    let again = fixture.collect(&GcOptions { max_size: Some(0), keep, dry_run: false });
    assert!(again.evicted.is_empty() && again.objects_removed == 0, "{again:?}");

    let recomposed = fixture.compose_afresh("alpha", "again");
    assert_eq!(recomposed.import.imported, 2, "exactly the evicted packages are imported again");
    assert_eq!(recomposed.import.cache_hits, os_fixture::PACKAGE_NAMES.len() + 1);
    assert_eq!(recomposed.commit, first.commit, "the same commit as before the collection");
    assert_fsck_clean(&fixture.workspace.package_cache());
}

#[test]
fn the_kept_tree_goes_when_it_links_evicted_packages() {
    let fixture = Fixture::new(false);
    let first = fixture.compose("alpha");
    let report = fixture.collect(&GcOptions { max_size: Some(0), ..GcOptions::default() });
    assert_eq!(report.evicted.len(), os_fixture::PACKAGE_NAMES.len() + SET_SIZE);
    assert!(report.tree_dropped, "{report:?}");
    assert_eq!(report.size_after.kept_tree, 0);
    assert!(!fixture.workspace.kept_tree().exists());
    assert!(fixture.package_refs().is_empty());
    assert_eq!(fixture.object_count(), 0, "no ref reaches any object");
    assert_fsck_clean(&fixture.workspace.package_cache());

    let recomposed = fixture.compose_afresh("alpha", "again");
    assert_eq!(recomposed.import.imported, os_fixture::PACKAGE_NAMES.len() + SET_SIZE);
    assert_eq!(recomposed.commit, first.commit);
    fixture.workspace.assert_scratch_space_is_clean();
}

#[test]
fn downloads_of_evicted_and_unknown_packages_go_and_reused_ones_are_marked_used() {
    let fixture = Fixture::new(true);
    fixture.compose("alpha");
    let long_ago = SystemTime::now() - LONG_AGO;
    let packages = fixture.workspace.cache().join("packages");
    for name in fixture.downloads().keys() {
        set_modified(&packages.join(name), long_ago);
    }
    fixture.compose("beta");
    let downloads = fixture.downloads();
    assert_eq!(downloads.len(), os_fixture::PACKAGE_NAMES.len() + 2 * SET_SIZE, "{downloads:?}");
    let reused = downloads.values().filter(|modified| **modified > long_ago).count();
    assert_eq!(
        reused,
        os_fixture::PACKAGE_NAMES.len() + SET_SIZE,
        "the second compose's packages are marked"
    );

    // A download whose import never happened, and one a compose may be making right now.
    let stale = packages.join(format!("sha256-{}.rpm", "0".repeat(64)));
    let fresh = packages.join(format!("sha256-{}.rpm", "1".repeat(64)));
    std::fs::write(&stale, "stale").unwrap();
    std::fs::write(&fresh, "fresh").unwrap();
    set_modified(&stale, SystemTime::now() - STALE);

    let keep = fixture.published_packages();
    let report = fixture.collect(&GcOptions { max_size: Some(0), keep, dry_run: false });
    assert_eq!(report.evicted.len(), SET_SIZE);
    assert_eq!(report.downloads_removed, SET_SIZE + 1, "{report:?}");
    let left = fixture.downloads();
    assert_eq!(left.len(), os_fixture::PACKAGE_NAMES.len() + SET_SIZE + 1);
    assert!(left.values().all(|modified| *modified > long_ago), "only the alpha set's downloads went");
    assert!(fresh.exists() && !stale.exists());

    // The next compose of the alpha set downloads its packages again and imports them.
    let recomposed = fixture.compose("alpha");
    assert_eq!(recomposed.import.imported, SET_SIZE);
    assert_fsck_clean(&fixture.workspace.package_cache());
}

/// Every path under `directory` with its kind, size and modification time (the lock file aside: taking
/// the lock recreates it).
fn snapshot(directory: &Path) -> BTreeMap<PathBuf, (bool, u64, SystemTime)> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if entry.path().ends_with("work/lock") {
                continue;
            }
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            entries.insert(entry.path(), (metadata.is_dir(), metadata.len(), metadata.modified().unwrap()));
        }
    }
    entries
}

#[test]
fn a_dry_run_changes_nothing() {
    let fixture = Fixture::new(false);
    fixture.compose("alpha");
    fixture.compose("beta");
    let before = snapshot(&fixture.workspace.cache());
    let report = fixture.collect(&GcOptions { max_size: Some(0), keep: BTreeSet::new(), dry_run: true });
    assert!(report.dry_run);
    assert_eq!(report.evicted.len(), os_fixture::PACKAGE_NAMES.len() + 2 * SET_SIZE);
    assert!(report.tree_dropped && report.objects_removed > 0, "{report:?}");
    assert!(report.size_after.total() < report.size_before.total(), "{report:?}");
    assert_eq!(snapshot(&fixture.workspace.cache()), before, "a dry run touches nothing");
}

#[test]
fn nothing_is_collected_while_a_compose_holds_the_cache() {
    let sleep = package("host-sleep").arch(os_fixture::ARCH).host_executables(["/usr/bin/sleep"]).unwrap();
    let sleeper = package("sleeper")
        .requires("host-sleep")
        .post_install_script("echo started > /usr/share/sleeper-started\nsleep 2\n");
    let repository = repository_with(&[sleep, sleeper]);
    let workspace = Workspace::new(&repository.url(), None);
    let request = workspace.request();
    let mark = workspace.kept_tree().join("usr/share/sleeper-started");
    std::thread::scope(|scope| {
        let composing =
            scope.spawn(|| workspace.compose_with(&treefile(&["host-sleep", "sleeper"], ""), &request));
        while !mark.exists() {
            assert!(!composing.is_finished(), "the compose ended before its scriptlet ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        let error =
            collect_garbage(&workspace.cache(), &GcOptions::default(), &Cancellation::new()).unwrap_err();
        assert!(matches!(error, GcError::Lock(tree::CacheLockError::Busy { .. })), "{error}");
        let message = error.to_string().replace(&workspace.cache().display().to_string(), "CACHE");
        insta::assert_snapshot!(message, @"garbage collection of the package cache: CACHE/work/lock: a compose or a garbage collection is using this cache directory (it holds the lock); try again when it has finished");
        let hook = prune_if_over(&workspace.cache(), 0, &BTreeSet::new(), &Cancellation::new());
        assert!(matches!(hook, Err(GcError::Lock(_))), "the worker's hook waits its turn too");
        composing.join().unwrap().unwrap();
    });
    let report = collect_garbage(&workspace.cache(), &GcOptions::default(), &Cancellation::new()).unwrap();
    assert_eq!(report.commits_removed, 1, "once the compose is done, its tree's commit goes");
}

#[test]
fn the_workers_hook_does_nothing_under_its_maximum() {
    let fixture = Fixture::new(false);
    fixture.compose("alpha");
    let before = snapshot(&fixture.workspace.cache());
    let cache = fixture.workspace.cache();
    let none = prune_if_over(&cache, u64::MAX, &BTreeSet::new(), &Cancellation::new()).unwrap();
    assert!(none.is_none());
    assert_eq!(snapshot(&cache), before);
    let keep = fixture.published_packages();
    let report = prune_if_over(&cache, 1, &keep, &Cancellation::new()).unwrap().expect("over its maximum");
    assert!(report.evicted.is_empty(), "every package is kept");
    assert_eq!(report.commits_removed, 1, "the composed tree's commit goes");
    assert_fsck_clean(&fixture.workspace.package_cache());
}
