//! End-to-end tests of `arbor cache gc` through the binary, on caches filled by real composes (the compose
//! library's test support: the minimal OS plus test packages, `compose::tree`):
//!
//! - what it prints, in a dry run and for real, with `--keep-commit` protecting a commit's packages;
//! - bad `--max-size` and `--keep-commit` values are refused with the value named;
//! - collections killed with SIGKILL at many moments (right after the start, once the refs are gone,
//!   while objects are removed, while the kept tree is removed, at moments spread over a run) leave a
//!   package cache that passes `ostree fsck` and with which the next compose makes the same commit, and
//!   the next collection finishes the work.
//!
//! Needs root, bwrap, rofiles-fuse, rpm, createrepo_c and ostree (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../compose/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use arbor_testsupport::RpmSpec;
use support::*;

/// Packages of the tree whose collection is killed, and files in each: thousands of objects, so that
/// removing them takes long enough to be interrupted half-way.
const BULK_PACKAGES: usize = 24;
const FILES_PER_BULK_PACKAGE: usize = 120;

/// The moments of an uninterrupted collection at which others are killed, as fractions of its duration.
const KILL_FRACTIONS: [f64; 4] = [0.15, 0.35, 0.55, 0.75];

/// How often a test looks whether a running collection reached the moment it waits for.
const POLL_INTERVAL: Duration = Duration::from_micros(200);

/// How long a test waits for a collection to reach a moment before giving up.
const MOMENT_WAIT_LIMIT: Duration = Duration::from_secs(60);

/// The repository of the commit whose packages are kept (the minimal OS alone).
const KEPT_REPOSITORY: &str = "kept";

fn arbor(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(arguments)
        .env_remove("RUST_LOG")
        .env_remove("ARBOR_LOG")
        .output()
        .expect("running arbor")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn bulk_name(index: usize) -> String {
    format!("bulk-{index:02}")
}

fn bulk_package(index: usize) -> RpmSpec {
    let name = bulk_name(index);
    (0..FILES_PER_BULK_PACKAGE).fold(package(&name), |spec, file| {
        spec.file(&format!("/usr/share/{name}/file-{file:03}"), format!("{name} file {file}\n"), 0o644)
    })
}

fn bulk_treefile() -> String {
    let names: Vec<String> = (0..BULK_PACKAGES).map(bulk_name).collect();
    treefile(&names.iter().map(String::as_str).collect::<Vec<_>>(), "")
}

/// A workspace whose cache holds the minimal OS (also composed into `kept`, whose packages are kept)
/// and the bulk packages, whose tree is the kept one: a collection evicts the bulk packages, removes
/// two composed commits and the kept tree.
struct Fixture {
    _repository: arbor_testsupport::TestRepository,
    workspace: Workspace,
    bulk_commit: String,
}

impl Fixture {
    fn new() -> Fixture {
        let specs: Vec<RpmSpec> = (0..BULK_PACKAGES).map(bulk_package).collect();
        let repository = repository_with(&specs);
        let workspace = Workspace::new(&repository.url(), None);
        let mut kept = workspace.request();
        kept.repo = workspace.directory.path().join(KEPT_REPOSITORY);
        workspace.compose_with(&treefile(&[], ""), &kept).unwrap();
        let bulk = workspace.compose(&bulk_treefile()).unwrap();
        Fixture { _repository: repository, workspace, bulk_commit: bulk.commit.unwrap() }
    }

    fn keep_argument(&self) -> String {
        format!("{}:{REFERENCE}", self.workspace.directory.path().join(KEPT_REPOSITORY).display())
    }

    fn gc_command(&self, cache: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arbor"));
        command
            .args(["cache", "gc", "--cachedir"])
            .arg(cache)
            .args(["--max-size", "0", "--keep-commit", &self.keep_argument()])
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("ARBOR_LOG");
        command
    }

    /// Composes the bulk tree from `cache` into a repository of its own: the commit it made before.
    fn assert_composes_the_same(&self, cache: &Path, moment: &str) {
        let mut request = self.workspace.request();
        request.cache_directory = cache.to_path_buf();
        request.repo = cache.with_extension("target");
        let summary = self.workspace.compose_with(&bulk_treefile(), &request);
        let summary = summary.unwrap_or_else(|error| panic!("composing after a kill at {moment}: {error}"));
        assert_eq!(summary.commit.as_deref(), Some(self.bulk_commit.as_str()), "after a kill at {moment}");
    }
}

fn copy_directory(source: &Path, destination: &Path) {
    // Hardlinks between the kept tree and the objects, extended attributes and times as they are.
    let status = Command::new("cp").arg("-a").arg(source).arg(destination).status().unwrap();
    assert!(status.success(), "cp -a {} {}", source.display(), destination.display());
}

fn bulk_ref(cache: &Path, index: usize) -> PathBuf {
    cache.join(format!("pkgcache-repo/refs/heads/rpmostree/pkg/{}/1.0-1.noarch", bulk_name(index)))
}

fn object_path(cache: &Path, checksum: &str, extension: &str) -> PathBuf {
    cache.join("pkgcache-repo/objects").join(&checksum[..2]).join(format!("{}.{extension}", &checksum[2..]))
}

#[test]
fn gc_prints_what_it_would_do_and_what_it_did() {
    let fixture = Fixture::new();
    let cache = fixture.workspace.cache();
    let output = fixture.gc_command(&cache, &["--dry-run"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = text(&output.stdout);
    assert!(printed.contains("Evicted in a real run (least recently used first):"), "{printed}");
    assert!(printed.contains("(dry run: nothing removed)"), "{printed}");
    assert!(
        printed.contains(&format!(
            "packages   {} cached, {BULK_PACKAGES} would be evicted, 3 kept as asked",
            BULK_PACKAGES + 3
        )),
        "{printed}"
    );
    assert!(printed.contains("kept tree  would be removed"), "{printed}");
    assert!(printed.contains("warning: the packages kept as asked are larger than --max-size"), "{printed}");
    assert!(bulk_ref(&cache, 0).exists(), "a dry run removes nothing");

    let output = fixture.gc_command(&cache, &[]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = text(&output.stdout);
    for index in 0..BULK_PACKAGES {
        assert!(printed.contains(&format!("  {}-1.0-1.noarch  last used ", bulk_name(index))), "{printed}");
    }
    assert!(printed.contains(&format!("{BULK_PACKAGES} evicted, 3 kept as asked")), "{printed}");
    let commits = BULK_PACKAGES + 2;
    assert!(
        printed.contains(&format!("{commits} of them commits")),
        "the evicted packages' and two composed trees': {printed}"
    );
    assert!(!bulk_ref(&cache, 0).exists());
    assert_fsck_clean(&fixture.workspace.package_cache());
}

#[test]
fn bad_values_are_refused_with_the_value_named() {
    let output = arbor(&["cache", "gc", "--max-size", "20gib"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("\"20gib\" is not a size"), "{}", text(&output.stderr));
    let output = arbor(&["cache", "gc", "--keep-commit", "no-revision"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("\"no-revision\" is not REPO:REV"), "{}", text(&output.stderr));
    let directory = tempfile::tempdir().unwrap();
    let missing = format!("{}:ref", directory.path().join("none").display());
    let cache = directory.path().join("cache");
    let output = arbor(&["cache", "gc", "--cachedir", cache.to_str().unwrap(), "--keep-commit", &missing]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("reading the packages of ref in"), "{}", text(&output.stderr));
}

/// A moment of a collection: a name and whether a running one has got there.
struct Moment<'a> {
    name: String,
    reached: Box<dyn Fn(Duration) -> bool + 'a>,
}

#[test]
fn a_gc_killed_at_any_moment_leaves_a_cache_the_next_compose_uses() {
    let fixture = Fixture::new();
    let pristine = fixture.workspace.directory.path().join("pristine");
    copy_directory(&fixture.workspace.cache(), &pristine);
    let scratch = fixture.workspace.directory.path().join("scratch");

    // How long an uninterrupted collection takes, for the kills spread over one.
    copy_directory(&pristine, &scratch);
    let started = Instant::now();
    let output = fixture.gc_command(&scratch, &[]).stdout(Stdio::null()).output().unwrap();
    let duration = started.elapsed();
    assert!(output.status.success(), "{}", text(&output.stderr));
    eprintln!("an uninterrupted collection took {} ms", duration.as_millis());
    std::fs::remove_dir_all(&scratch).unwrap();

    let first_ref = bulk_ref(&scratch, 0);
    let composed_commit = object_path(&scratch, &fixture.bulk_commit, "commit");
    let aside = scratch.join("work/tree-dropped-by-gc");
    let mut moments: Vec<Moment<'_>> = vec![
        Moment { name: "the start".into(), reached: Box::new(|_| true) },
        Moment { name: "the refs are gone".into(), reached: Box::new(|_| !first_ref.exists()) },
        Moment { name: "objects are being removed".into(), reached: Box::new(|_| !composed_commit.exists()) },
        Moment { name: "the kept tree is being removed".into(), reached: Box::new(|_| aside.exists()) },
    ];
    for fraction in KILL_FRACTIONS {
        let delay = duration.mul_f64(fraction);
        moments.push(Moment {
            name: format!("{} ms ({fraction} of a run)", delay.as_millis()),
            reached: Box::new(move |elapsed| elapsed >= delay),
        });
    }
    let mut killed_runs = 0;
    for moment in &moments {
        copy_directory(&pristine, &scratch);
        let started = Instant::now();
        let mut child =
            fixture.gc_command(&scratch, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut ended = false;
        while !(moment.reached)(started.elapsed()) {
            if child.try_wait().unwrap().is_some() {
                ended = true;
                break;
            }
            assert!(started.elapsed() < MOMENT_WAIT_LIMIT, "the collection did not get to {}", moment.name);
            std::thread::sleep(POLL_INTERVAL);
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let killed = !ended && !status.success();
        killed_runs += usize::from(killed);
        eprintln!(
            "{}: {}; refs {}, composed commit {}, tree set aside {}",
            moment.name,
            if killed { "killed" } else { "it had finished" },
            if first_ref.exists() { "there" } else { "gone" },
            if composed_commit.exists() { "there" } else { "gone" },
            aside.exists()
        );
        assert_fsck_clean(&scratch.join("pkgcache-repo"));
        fixture.assert_composes_the_same(&scratch, &moment.name);
        assert_fsck_clean(&scratch.join("pkgcache-repo"));
        // The next collection finishes what the killed one started.
        let output = fixture.gc_command(&scratch, &[]).output().unwrap();
        assert!(output.status.success(), "after a kill at {}: {}", moment.name, text(&output.stderr));
        assert_fsck_clean(&scratch.join("pkgcache-repo"));
        std::fs::remove_dir_all(&scratch).unwrap();
        std::fs::remove_dir_all(scratch.with_extension("target")).unwrap();
    }
    assert!(
        killed_runs * 2 >= moments.len(),
        "only {killed_runs} of {} collections were killed",
        moments.len()
    );
}
