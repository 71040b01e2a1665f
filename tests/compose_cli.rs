//! End-to-end tests of `arbor compose tree` and `arbor compose diff` through the binary, on RPM
//! repositories built by the test-support library on top of its minimal OS (`filesystem`, `setup`,
//! the host's shell):
//!
//! - a compose with its compose.json and lockfile, a dry run, an unchanged compose and an upgrade
//!   shown by `compose diff`;
//! - composes killed with SIGKILL at many moments (right after the start, while importing, while the
//!   import commits, while the tree is written, while publishing, at moments spread over a compose,
//!   while a scriptlet runs): both repositories stay consistent, the next compose succeeds with the
//!   same commit, reuses the package cache and unmounts what the killed one left mounted;
//! - the committed tree is the tree `dnf --installroot` installs from the same packages, apart from
//!   the rpm database, dnf's own state and the layout ostree needs.
//!
//! Needs root, bwrap, rofiles-fuse, rpm, createrepo_c, ostree and dnf (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use arbor_testsupport::os_fixture::{self, GROUP_NAME, USER_NAME};
use arbor_testsupport::tools::{require_tool, tool_stdout};
use arbor_testsupport::{MinimalOs, RpmSpec, TestRepository};

/// The external programs every compose runs (and `ldd`, which the shell fixture needs).
const COMPOSE_TOOLS: [&str; 6] = ["bwrap", "rofiles-fuse", "rpm", "createrepo_c", "ostree", "ldd"];

/// The architecture every test composes for.
const ARCH: &str = os_fixture::ARCH;

/// The branch every test composes.
const REFERENCE: &str = "arbor/cli-test/x86_64/base";

/// The id of the one repository of every treefile (`test.repo`).
const REPOSITORY_ID: &str = "test";

/// `SOURCE_DATE_EPOCH` of every compose (2024-01-01T00:00:00Z): commits are reproducible.
const SOURCE_DATE_EPOCH: u64 = 1_704_067_200;

/// The prefix of the package cache's branches (`rpmostree/pkg/NAME/EVR.ARCH`).
const PACKAGE_CACHE_BRANCH_PREFIX: &str = "rpmostree/pkg/";

/// rpm-ostree's `pkgdiff` change types, as compose.json writes them.
const PACKAGE_ADDED: u64 = 0;
const PACKAGE_UPGRADED: u64 = 2;

/// Permission bits of the files the test packages ship.
const FILE_MODE: u16 = 0o644;
const EXECUTABLE_MODE: u16 = 0o755;
const SETUID_EXECUTABLE_MODE: u16 = 0o4755;
const SETGID_DIRECTORY_MODE: u16 = 0o2775;
const PRIVATE_FILE_MODE: u16 = 0o600;
const PRIVATE_DIRECTORY_MODE: u16 = 0o750;

/// How often a test looks whether a running compose reached the moment it waits for.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How long a test waits for a running compose to reach a moment before giving up.
const MOMENT_WAIT_LIMIT: Duration = Duration::from_secs(60);

/// How long the processes of a killed compose may take to disappear.
const EXIT_WAIT_LIMIT: Duration = Duration::from_secs(10);

fn require_tools(tools: &[&str]) {
    for tool in tools {
        require_tool(tool).unwrap();
    }
}

/// A package of the tests: version 1.0, release 1, noarch unless changed.
fn package(name: &str) -> RpmSpec {
    RpmSpec::new(name, os_fixture::VERSION, os_fixture::RELEASE)
}

/// A repository holding the minimal OS and `packages`.
fn repository_with(packages: &[RpmSpec]) -> TestRepository {
    require_tools(&COMPOSE_TOOLS);
    MinimalOs::from_host().unwrap().repository_with(packages).unwrap()
}

/// The names of the minimal OS followed by `packages`.
fn with_minimal_os<'a>(packages: &[&'a str]) -> Vec<&'a str> {
    os_fixture::PACKAGE_NAMES.iter().copied().chain(packages.iter().copied()).collect()
}

/// A treefile installing exactly `packages` (no weak dependencies).
fn treefile(packages: &[&str]) -> String {
    format!(
        "ref: {REFERENCE}\nrepos: [{REPOSITORY_ID}]\nrecommends: false\npackages: [{}]\n",
        packages.join(", ")
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ostree --repo=REPOSITORY ARGUMENTS...`, its standard output (panics when it fails).
fn ostree(repository: &Path, arguments: &[&str]) -> String {
    let mut all = vec![format!("--repo={}", repository.display())];
    all.extend(arguments.iter().map(|argument| argument.to_string()));
    tool_stdout("ostree", &all).unwrap()
}

/// `ostree fsck` succeeds and finds nothing corrupted: every object is intact, every ref points to a
/// commit that exists.
fn assert_fsck_clean(repository: &Path) {
    let output = ostree(repository, &["fsck"]);
    assert!(!output.contains("corrupt"), "{}: {output}", repository.display());
}

/// The branches of `repository`.
fn refs(repository: &Path) -> BTreeSet<String> {
    ostree(repository, &["refs"]).lines().map(str::to_string).collect()
}

/// The paths of `/proc/self/mountinfo` whose file system is FUSE, with the kernel's octal escapes
/// (`\040` for a space, ...) decoded.
fn fuse_mounts() -> Vec<PathBuf> {
    /// Mount point field of a mountinfo line; the file system type follows the `-` separator.
    const MOUNTPOINT_FIELD: usize = 4;
    /// The octal escapes of mountinfo have three digits.
    const ESCAPE_DIGITS: usize = 3;
    const OCTAL: u32 = 8;
    let unescape = |field: &str| -> PathBuf {
        let mut bytes = Vec::new();
        let mut rest = field.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            let escaped = (first == b'\\' && tail.len() >= ESCAPE_DIGITS)
                .then(|| std::str::from_utf8(&tail[..ESCAPE_DIGITS]).ok())
                .flatten()
                .and_then(|digits| u8::from_str_radix(digits, OCTAL).ok());
            match escaped {
                Some(byte) => {
                    bytes.push(byte);
                    rest = &tail[ESCAPE_DIGITS..];
                }
                None => {
                    bytes.push(first);
                    rest = tail;
                }
            }
        }
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().position(|field| *field == "-")?;
            let filesystem_type = fields.get(separator + 1)?;
            (*filesystem_type == "fuse" || filesystem_type.starts_with("fuse."))
                .then(|| unescape(fields[MOUNTPOINT_FIELD]))
        })
        .collect()
}

/// The FUSE mounts at or under `directory`.
fn fuse_mounts_under(directory: &Path) -> Vec<PathBuf> {
    let directory = directory.canonicalize().unwrap_or_else(|_| directory.to_path_buf());
    fuse_mounts().into_iter().filter(|mountpoint| mountpoint.starts_with(&directory)).collect()
}

/// What a compose that succeeded wrote to compose.json and printed.
struct Composed {
    summary: serde_json::Value,
    stdout: String,
    stderr: String,
}

/// One place to compose in: the treefile directory with its `.repo` file, the cache, the target
/// repository and the files a compose writes (compose.json, lockfile, output), all in one temporary
/// directory.
struct Workspace {
    directory: tempfile::TempDir,
}

impl Workspace {
    /// A workspace whose treefile is `manifest` and uses the repository at `url`.
    fn new(url: &str, manifest: &str) -> Workspace {
        let workspace = Workspace { directory: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(workspace.treefile_directory()).unwrap();
        std::fs::create_dir_all(workspace.output_directory()).unwrap();
        std::fs::write(
            workspace.treefile_directory().join(format!("{REPOSITORY_ID}.repo")),
            format!("[{REPOSITORY_ID}]\nname={REPOSITORY_ID}\nbaseurl={url}\ngpgcheck=0\n"),
        )
        .unwrap();
        workspace.write_treefile(manifest);
        workspace
    }

    fn treefile_directory(&self) -> PathBuf {
        self.directory.path().join("treefile")
    }

    fn treefile(&self) -> PathBuf {
        self.treefile_directory().join("manifest.yaml")
    }

    fn write_treefile(&self, manifest: &str) {
        std::fs::write(self.treefile(), manifest).unwrap();
    }

    /// Where compose.json, lockfiles and the output of background composes go: not next to the
    /// treefile, where a lockfile would be read by the next compose.
    fn output_directory(&self) -> PathBuf {
        self.directory.path().join("output")
    }

    fn cache(&self) -> PathBuf {
        self.directory.path().join("cache")
    }

    fn package_cache(&self) -> PathBuf {
        self.cache().join("pkgcache-repo")
    }

    fn work_directory(&self) -> PathBuf {
        self.cache().join("work")
    }

    fn target(&self) -> PathBuf {
        self.directory.path().join("repo")
    }

    /// `arbor compose tree TREEFILE --arch x86_64 --repo R --cachedir C EXTRA...` with
    /// `SOURCE_DATE_EPOCH` set.
    fn compose_command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arbor"));
        command
            .args(["compose", "tree"])
            .arg(self.treefile())
            .args(["--arch", ARCH, "--repo"])
            .arg(self.target())
            .arg("--cachedir")
            .arg(self.cache())
            .args(extra)
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH.to_string())
            .env_remove("RUST_LOG")
            .env_remove("ARBOR_LOG");
        command
    }

    fn compose(&self, extra: &[&str]) -> Output {
        self.compose_command(extra).output().expect("running arbor")
    }

    /// A compose that must succeed, writing compose.json to `name`.json in the output directory.
    fn compose_successfully(&self, name: &str) -> Composed {
        self.compose_successfully_with(name, &[])
    }

    /// [`Workspace::compose_successfully`] with `extra` arguments.
    fn compose_successfully_with(&self, name: &str, extra: &[&str]) -> Composed {
        let json_path = self.output_directory().join(format!("{name}.json"));
        let mut arguments = vec!["--write-composejson-to", json_path.to_str().unwrap()];
        arguments.extend(extra);
        let output = self.compose(&arguments);
        assert!(output.status.success(), "{name}: {}{}", text(&output.stdout), text(&output.stderr));
        Composed {
            summary: serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap(),
            stdout: text(&output.stdout),
            stderr: text(&output.stderr),
        }
    }

    /// Starts a compose in its own process group (so that killing the group also kills
    /// rofiles-fuse and bwrap), its output going to `name`.stdout and `name`.stderr.
    fn spawn_compose(&self, name: &str) -> Child {
        let output = |extension: &str| {
            Stdio::from(File::create(self.output_directory().join(format!("{name}.{extension}"))).unwrap())
        };
        self.compose_command(&[])
            .stdout(output("stdout"))
            .stderr(output("stderr"))
            .process_group(0)
            .spawn()
            .expect("starting arbor")
    }

    /// The commit the reference points to in the target repository, if it has the reference.
    fn published_commit(&self) -> Option<String> {
        if !self.target().join("config").exists() {
            return None;
        }
        refs(&self.target())
            .contains(REFERENCE)
            .then(|| ostree(&self.target(), &["rev-parse", REFERENCE]).trim().to_string())
    }

    /// The packages the package cache has a branch for (imported completely).
    fn cached_packages(&self) -> usize {
        if !self.package_cache().join("config").exists() {
            return 0;
        }
        refs(&self.package_cache())
            .iter()
            .filter(|name| name.starts_with(PACKAGE_CACHE_BRANCH_PREFIX))
            .count()
    }

    /// The names in the cache's scratch directory (only `lock` between composes).
    fn scratch_entries(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.work_directory()) else { return Vec::new() };
        let mut names: Vec<String> =
            entries.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }
}

// ---------------------------------------------------------------------------------------------------
// A compose, a dry run, an unchanged compose and an upgrade, through the command line

/// `app` at `version`: a program, a `%config` file and a `%post` that leaves a mark.
fn app_package(version: &str) -> RpmSpec {
    RpmSpec::new("app", version, os_fixture::RELEASE)
        .requires("libapp")
        .file("/usr/bin/app", format!("#!/bin/sh\necho app {version}\n"), EXECUTABLE_MODE)
        .config_file("/etc/app/app.conf", "verbose=0\n", FILE_MODE)
        .post_install_script("echo \"configured $1\" > /usr/share/app-configured\n")
}

fn libapp_package() -> RpmSpec {
    package("libapp").requires("filesystem").file("/usr/share/libapp/data", "library data\n", FILE_MODE)
}

/// Installed only in the dry run.
fn extra_package() -> RpmSpec {
    package("extra").requires("filesystem").file("/usr/share/extra", "extra\n", FILE_MODE)
}

/// The packages of the command-line tree, besides the minimal OS.
const APP_NAMES: [&str; 2] = ["app", "libapp"];

#[test]
fn compose_tree_commits_reports_and_diffs_through_the_command_line() {
    let mut repository = repository_with(&[app_package("1.0"), libapp_package(), extra_package()]);
    let names = with_minimal_os(&APP_NAMES);
    let workspace = Workspace::new(&repository.url(), &treefile(&names));
    let lockfile_path = workspace.output_directory().join("manifest-lock.json");
    let json_path = workspace.output_directory().join("compose.json");

    // A first compose: the summary, compose.json and the lockfile.
    let output = workspace.compose(&[
        "--write-composejson-to",
        json_path.to_str().unwrap(),
        "--write-lockfile-to",
        lockfile_path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let commit = workspace.published_commit().expect("the ref exists after the compose");
    assert!(stdout.contains(&format!("Committed {REFERENCE} => {commit}")), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(summary["ref"], REFERENCE);
    assert_eq!(summary["ostree-commit"], commit.as_str());
    assert_eq!(summary["ostree-timestamp"], SOURCE_DATE_EPOCH);
    let inputhash = summary["rpm-ostree-inputhash"].as_str().unwrap();
    assert!(stdout.contains(inputhash), "{stdout}");
    assert_eq!(summary["arbor-packages"], names.len());
    assert_eq!(summary["arbor-packages-imported"], names.len());
    assert_eq!(summary["arbor-package-cache-hits"], 0);
    for count in ["ostree-n-content-total", "ostree-n-content-written"] {
        assert!(summary[count].as_u64().unwrap() > 0, "{count}: {summary}");
    }
    let added: BTreeSet<&str> = summary["pkgdiff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| {
            assert_eq!(change[1], PACKAGE_ADDED, "{change}");
            change[0].as_str().unwrap()
        })
        .collect();
    assert_eq!(added, names.iter().copied().collect(), "a first commit adds every package");

    let lockfile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lockfile_path).unwrap()).unwrap();
    let locked: BTreeSet<&str> =
        lockfile["packages"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(locked, names.iter().copied().collect());
    assert_eq!(lockfile["packages"]["app"]["evra"], "1.0-1.noarch");
    assert_eq!(lockfile["packages"]["shell"]["evra"], format!("1.0-1.{ARCH}"));
    let shown = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(["lockfile", "show"])
        .arg(&lockfile_path)
        .output()
        .unwrap();
    assert!(shown.status.success(), "arbor reads its own lockfile back: {}", text(&shown.stderr));
    assert_eq!(ostree(&workspace.target(), &["cat", &commit, "/usr/share/app-configured"]), "configured 1\n");

    // A dry run with another package set lists it and changes nothing.
    let cached_before = refs(&workspace.package_cache());
    workspace.write_treefile(&treefile(&with_minimal_os(&["app", "libapp", "extra"])));
    let output = workspace.compose(&["--dry-run"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for nevra in ["extra-1.0-1.noarch", "app-1.0-1.noarch", &format!("shell-1.0-1.{ARCH}")] {
        assert!(stdout.lines().any(|line| line == nevra), "{nevra}: {stdout}");
    }
    assert!(stdout.contains("dry run: nothing composed"), "{stdout}");
    assert!(stdout.contains("extra 1.0-1.noarch"), "the change: {stdout}");
    assert_eq!(workspace.published_commit().as_deref(), Some(commit.as_str()), "the ref did not move");
    assert_eq!(ostree(&workspace.target(), &["log", REFERENCE]).matches("commit ").count(), 1);
    assert_eq!(refs(&workspace.package_cache()), cached_before, "nothing was imported");

    // The same inputs again: nothing to do.
    workspace.write_treefile(&treefile(&names));
    let output = workspace.compose(&[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains(&format!("No changes since {commit}")), "{}", text(&output.stdout));
    assert_eq!(workspace.published_commit().as_deref(), Some(commit.as_str()), "the ref did not move");

    // A newer app: only it is imported, and compose diff shows the upgrade.
    repository.add_package(&app_package("1.1")).unwrap();
    repository.write_metadata().unwrap();
    let summary = workspace.compose_successfully("upgrade").summary;
    let upgraded = workspace.published_commit().unwrap();
    assert_ne!(upgraded, commit);
    assert_eq!(summary["ostree-commit"], upgraded.as_str());
    assert_eq!(summary["arbor-previous-commit"], commit.as_str());
    assert_eq!(
        (summary["arbor-packages-imported"].as_u64(), summary["arbor-package-cache-hits"].as_u64()),
        (Some(1), Some(names.len() as u64 - 1))
    );
    assert_eq!(
        summary["pkgdiff"],
        serde_json::json!([["app", PACKAGE_UPGRADED, [["1.0-1", "noarch"], ["1.1-1", "noarch"]]]])
    );
    assert_eq!(ostree(&workspace.target(), &["rev-parse", &format!("{REFERENCE}^")]).trim(), commit);
    let diff = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(["compose", "diff", "--repo"])
        .arg(workspace.target())
        .args([&commit, &upgraded])
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", text(&diff.stderr));
    insta::assert_snapshot!("package_upgrade_diff", text(&diff.stdout));
    assert_fsck_clean(&workspace.target());
    assert_fsck_clean(&workspace.package_cache());
}

// ---------------------------------------------------------------------------------------------------
// Composes killed with SIGKILL

/// The packages of the tree that is killed: enough content that a debug build takes seconds over it.
const BULK_PACKAGES: usize = 40;

/// Small files in every bulk package.
const FILES_PER_BULK_PACKAGE: usize = 40;

/// Lines of the small files: from one line to this many, a few KiB at most.
const MOST_LINES_PER_SMALL_FILE: usize = 100;

/// Every this many packages, one carries a big file; every this many (from the second), one a `%post`.
const BIG_FILE_EVERY: usize = 20;
const SCRIPTLET_EVERY: usize = 13;

/// The size of the big files: a few MiB, more than importing reads in one piece (and as much as
/// building the fixture can afford: a debug build of the `rpm` crate writes a few MiB per second).
const BIG_FILE_SIZE: usize = 3 << 20;

/// The moments of an uninterrupted run at which composes are killed, as fractions of its duration.
const KILL_FRACTIONS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];

/// How many composes are started for one of [`KILL_FRACTIONS`] at most, while they end too early.
const FRACTION_ATTEMPTS: usize = 2;

/// Entries the package cache's staging directory has when the import is well under way.
const STAGING_ENTRIES_MID_IMPORT: usize = 32;

/// How long the `%post` of the sleeper package sleeps: ample time to kill it, little time to wait
/// for when the compose runs to its end.
const SCRIPTLET_SLEEP_SECONDS: u32 = 2;

/// What the sleeper's `%post` writes before it sleeps.
const SLEEPER_MARK: &str = "usr/share/sleeper-started";

fn bulk_name(index: usize) -> String {
    format!("bulk-{index:02}")
}

/// `bulk-NN`: many small files of varying size, some with a big file or a `%post`.
fn bulk_package(index: usize) -> RpmSpec {
    let name = bulk_name(index);
    let mut spec = package(&name).requires("filesystem");
    for file in 0..FILES_PER_BULK_PACKAGE {
        let lines = 1 + (index * FILES_PER_BULK_PACKAGE + file) % MOST_LINES_PER_SMALL_FILE;
        let content: String = (0..lines).map(|line| format!("{name} file {file} line {line}\n")).collect();
        spec = spec.file(&format!("/usr/share/{name}/file-{file:03}"), content, FILE_MODE);
    }
    if index.is_multiple_of(BIG_FILE_EVERY) {
        let pattern = format!("{name} big file\n");
        let content: Vec<u8> = pattern.bytes().cycle().take(BIG_FILE_SIZE).collect();
        spec = spec.file(&format!("/usr/share/{name}/big"), content, FILE_MODE);
    }
    if index % SCRIPTLET_EVERY == 1 {
        spec = spec.post_install_script(&format!("echo \"post $1\" > /usr/share/{name}/post\n"));
    }
    spec
}

/// The treefile of the tree that is killed.
fn bulk_treefile() -> String {
    let names: Vec<String> = (0..BULK_PACKAGES).map(bulk_name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    treefile(&with_minimal_os(&names))
}

/// The processes of process group `group` that are still alive (zombies are dead: in some
/// containers nothing reaps the orphaned children of a killed compose).
fn live_processes_in_group(group: u32) -> Vec<u32> {
    /// Fields of `/proc/PID/stat` after the parenthesized command name.
    const STATE_FIELD: usize = 0;
    const GROUP_FIELD: usize = 2;
    let group = group.to_string();
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((_, after_name)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.get(GROUP_FIELD) == Some(&group.as_str()) && fields.get(STATE_FIELD) != Some(&"Z") {
            live.push(pid);
        }
    }
    live
}

/// Sends SIGKILL to the whole process group of `child` (arbor, rofiles-fuse, bwrap and what runs in
/// it), reaps arbor and waits until no process of the group is left.
fn kill_process_group(child: &mut Child) {
    let group = child.id();
    let killed = Command::new("kill").args(["-s", "KILL", "--", &format!("-{group}")]).status().unwrap();
    assert!(killed.success(), "kill -s KILL -- -{group}");
    child.wait().unwrap();
    let deadline = Instant::now() + EXIT_WAIT_LIMIT;
    while !live_processes_in_group(group).is_empty() {
        assert!(Instant::now() < deadline, "processes of group {group} survived SIGKILL");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Starts a compose of `workspace` and kills it once `reached` says that it got to `moment`. A
/// compose that ends first fails the test, unless it succeeded and `may_end_first` (a moment
/// estimated from the duration of other composes): then returns how long it took.
fn kill_when(
    workspace: &Workspace,
    moment: &str,
    may_end_first: bool,
    reached: impl Fn() -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    let mut child = workspace.spawn_compose(moment);
    while !reached() {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = workspace.output_directory().join(format!("{moment}.stderr"));
            let stderr = std::fs::read_to_string(stderr).unwrap_or_default();
            assert!(
                status.success() && may_end_first,
                "the compose ended ({status}) before {moment}: {stderr}"
            );
            eprintln!("the compose ended before {moment}");
            return Some(started.elapsed());
        }
        assert!(started.elapsed() < MOMENT_WAIT_LIMIT, "the compose did not get to {moment}");
        std::thread::sleep(POLL_INTERVAL);
    }
    kill_process_group(&mut child);
    eprintln!(
        "killed at {moment}: {} packages in the package cache, ref published: {}",
        workspace.cached_packages(),
        workspace.published_commit().is_some()
    );
    None
}

/// Whether `directory` exists and has an entry.
fn has_entries(directory: &Path) -> bool {
    std::fs::read_dir(directory).is_ok_and(|mut entries| entries.next().is_some())
}

/// The entries of the package cache's ostree staging directories: objects written by a transaction
/// that has not committed yet.
fn staging_entries(workspace: &Workspace) -> usize {
    let Ok(entries) = std::fs::read_dir(workspace.package_cache().join("tmp")) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("staging-"))
        .map(|entry| std::fs::read_dir(entry.path()).map_or(0, Iterator::count))
        .sum()
}

/// Whether a compose of `workspace` has checked the tree out into its kept tree directory.
fn checked_out(workspace: &Workspace) -> bool {
    workspace.work_directory().join("tree/usr").exists()
}

/// After a compose of `workspace` was killed at `moment`: both repositories pass `ostree fsck`, the
/// ref is absent or names a complete commit, and a compose run to its end succeeds (committing
/// `expected_commit` when given: killing changes nothing in the result), reuses every package the
/// killed run finished importing and leaves no mount and no scratch files. Returns that compose.
fn assert_recovers(workspace: &Workspace, moment: &str, expected_commit: Option<&str>) -> Composed {
    if workspace.target().join("config").exists() {
        assert_fsck_clean(&workspace.target());
    }
    if workspace.package_cache().join("config").exists() {
        assert_fsck_clean(&workspace.package_cache());
    }
    let published = workspace.published_commit();
    if let Some(commit) = &published {
        let partial = workspace.target().join(format!("state/{commit}.commitpartial"));
        assert!(!partial.exists(), "{moment}: the ref names a partial commit");
        if let Some(expected) = expected_commit {
            assert_eq!(commit, expected, "{moment}: the ref names the finished commit");
        }
    }
    let cached = workspace.cached_packages();

    let composed = workspace.compose_successfully(&format!("recovery after {moment}"));
    let commit = composed.summary["ostree-commit"].as_str().unwrap().to_string();
    if let Some(expected) = expected_commit {
        assert_eq!(commit, expected, "{moment}: the commit of an uninterrupted run");
    }
    if published.is_some() {
        assert!(composed.stdout.contains("No changes since"), "{moment}: {}", composed.stdout);
    } else {
        assert_eq!(
            composed.summary["arbor-package-cache-hits"], cached,
            "{moment}: the package cache is reused"
        );
    }
    assert_eq!(workspace.published_commit(), Some(commit), "{moment}");
    assert_fsck_clean(&workspace.target());
    assert_fsck_clean(&workspace.package_cache());
    assert_eq!(
        fuse_mounts_under(&workspace.work_directory()),
        Vec::<PathBuf>::new(),
        "{moment}: mounts left"
    );
    assert_eq!(
        workspace.scratch_entries(),
        ["lock", "tree"],
        "{moment}: scratch files left (the tree is kept)"
    );
    composed
}

/// A moment to kill a compose at.
struct KillMoment<'a> {
    name: &'a str,
    /// How to tell from the workspace that the compose got there.
    reached: &'a dyn Fn(&Workspace) -> bool,
    /// How many packages the package cache holds by then, where that is certain.
    cached: Option<usize>,
}

#[test]
fn a_compose_killed_at_any_moment_leaves_consistent_repositories() {
    require_tools(&["kill"]);
    let repository = repository_with(&(0..BULK_PACKAGES).map(bulk_package).collect::<Vec<_>>());
    let manifest = bulk_treefile();
    let new_workspace = || Workspace::new(&repository.url(), &manifest);
    let package_count = os_fixture::PACKAGE_NAMES.len() + BULK_PACKAGES;

    let started = Instant::now();
    let uninterrupted_workspace = new_workspace();
    let uninterrupted = uninterrupted_workspace.compose_successfully("uninterrupted").summary;
    let first_duration = started.elapsed();
    let expected_commit = uninterrupted["ostree-commit"].as_str().unwrap().to_string();
    let expected = Some(expected_commit.as_str());
    assert_eq!(uninterrupted["arbor-packages-imported"], package_count);

    // Right after the start. The compose after it starts from nothing too: the shorter of the two is
    // how long a compose takes, over which the kills at the end are spread.
    let workspace = new_workspace();
    kill_when(&workspace, "the start", false, || true);
    assert_eq!(workspace.cached_packages(), 0);
    let started = Instant::now();
    assert_recovers(&workspace, "the start", expected);
    let mut duration = first_duration.min(started.elapsed());

    let moments = [
        // Objects staged; packages are imported in one transaction, so none is in the cache yet.
        KillMoment {
            name: "importing",
            reached: &|workspace| staging_entries(workspace) >= STAGING_ENTRIES_MID_IMPORT,
            cached: Some(0),
        },
        // ostree moves the staged objects into place one by one, in directory order: commit objects
        // can be there before their trees.
        KillMoment {
            name: "committing the import",
            reached: &|workspace| has_entries(&workspace.package_cache().join("objects")),
            cached: None,
        },
        // The tree checked out (so every package imported) and its objects being staged.
        KillMoment {
            name: "writing the tree",
            reached: &|workspace| checked_out(workspace) && staging_entries(workspace) > 0,
            cached: Some(package_count),
        },
        // Publishing hardlinks objects into the target for a few milliseconds, too short to aim a kill
        // at; composer's publish tests cover an interruption there, the kills spread over a compose
        // below may land in it.
    ];
    for moment in moments {
        let workspace = new_workspace();
        kill_when(&workspace, moment.name, false, || (moment.reached)(&workspace));
        if let Some(cached) = moment.cached {
            assert_eq!(workspace.cached_packages(), cached, "packages in the cache at {}", moment.name);
        }
        assert_recovers(&workspace, moment.name, expected);
    }

    for fraction in KILL_FRACTIONS {
        let moment = format!("{:.0}% of a compose", fraction * 100.0);
        // A compose that ends before the moment shows that composes got faster (as other tests
        // finished): the moment is tried again, spread over the duration of that compose.
        for _ in 0..FRACTION_ATTEMPTS {
            let workspace = new_workspace();
            let delay = duration.mul_f64(fraction);
            let started = Instant::now();
            let ended = kill_when(&workspace, &moment, true, || started.elapsed() >= delay);
            assert_recovers(&workspace, &moment, expected);
            match ended {
                Some(took) => duration = took,
                None => break,
            }
        }
    }

    // Killed after the import transaction, before clearing the partial marks of the packages it
    // imported (the state files are what that leaves): the packages are complete and reused.
    let workspace = &uninterrupted_workspace;
    let package_cache = workspace.package_cache();
    let branches = refs(&package_cache);
    let package_branches = branches.iter().filter(|name| name.starts_with(PACKAGE_CACHE_BRANCH_PREFIX));
    for branch in package_branches {
        let commit = ostree(&package_cache, &["rev-parse", branch]);
        std::fs::write(package_cache.join(format!("state/{}.commitpartial", commit.trim())), "").unwrap();
    }
    let forced = workspace.compose_successfully_with("after marks were left", &["--force-nocache"]).summary;
    assert_eq!(forced["arbor-package-cache-hits"], package_count);
    assert!(!has_entries(&package_cache.join("state")), "the marks are cleared");
    assert_fsck_clean(&package_cache);
}

/// Whether the sleeper's `%post` has started in a compose of `workspace`.
fn sleeper_started(workspace: &Workspace) -> bool {
    workspace.work_directory().join("tree").join(SLEEPER_MARK).exists()
}

#[test]
fn a_compose_killed_while_a_scriptlet_runs_leaves_no_mount_behind() {
    require_tools(&["kill", "sleep"]);
    let sleep = package("host-sleep").arch(ARCH).host_executables(["/usr/bin/sleep"]).unwrap();
    let sleeper = package("sleeper").requires("host-sleep").post_install_script(&format!(
        "echo started > /{SLEEPER_MARK}\nsleep {SCRIPTLET_SLEEP_SECONDS}\necho done > /usr/share/sleeper-done\n"
    ));
    let repository = repository_with(&[sleep, sleeper]);
    let workspace =
        Workspace::new(&repository.url(), &treefile(&with_minimal_os(&["host-sleep", "sleeper"])));

    kill_when(&workspace, "a scriptlet", false, || sleeper_started(&workspace));
    let left_mounted = fuse_mounts_under(&workspace.work_directory());
    assert_eq!(left_mounted.len(), 1, "a kill -9 leaves rofiles-fuse's mount behind: {left_mounted:?}");
    assert_eq!(workspace.published_commit(), None);

    let composed = assert_recovers(&workspace, "a scriptlet", None);
    assert!(
        composed.stderr.contains("unmounting a FUSE mount left behind"),
        "the next compose unmounted it: {}",
        composed.stderr
    );
    let commit = composed.summary["ostree-commit"].as_str().unwrap();
    assert_eq!(ostree(&workspace.target(), &["cat", commit, "/usr/share/sleeper-done"]), "done\n");
}

// ---------------------------------------------------------------------------------------------------
// The same tree as dnf installs

/// The ref of the dnf tree in its scratch repository.
const DNF_REFERENCE: &str = "dnf";

/// What the comparison fixture's scriptlets write, besides what its packages ship.
const TOOLS_SCRIPTLET_OUTPUT: [&str; 3] =
    ["/usr/share/tools-pre", "/usr/share/tools-post", "/usr/share/tools-posttrans"];

/// The packages of the comparison, besides the minimal OS: what a tree can hold (setuid, setgid, a file
/// of `alice`, symlinks, hardlinks, `%config`, `%ghost`, `%doc`, an identical file in two packages,
/// state under /var) and scriptlets that behave the same under rpm and under arbor.
fn comparison_packages() -> Vec<RpmSpec> {
    let tools = package("tools")
        .arch(ARCH)
        .requires("setup")
        .file("/usr/bin/privileged", "#!/bin/sh\necho privileged\n", SETUID_EXECUTABLE_MODE)
        .file("/usr/bin/tool", "#!/bin/sh\necho tool\n", EXECUTABLE_MODE)
        .file("/usr/bin/pinger", "#!/bin/sh\necho ping\n", EXECUTABLE_MODE)
        .file_capabilities("/usr/bin/pinger", "cap_net_raw=ep")
        .symlink("/usr/bin/tool-link", "tool")
        .symlink("/usr/bin/tool-absolute", "/usr/bin/tool")
        .hardlink("/usr/bin/tool-twin", "/usr/bin/tool")
        .directory("/usr/share/team", SETGID_DIRECTORY_MODE)
        .file_owned("/usr/share/team/notes", "alice's notes\n", PRIVATE_FILE_MODE, USER_NAME, GROUP_NAME)
        .config_file("/etc/tools/tools.conf", "setting=1\n", FILE_MODE)
        .ghost("/etc/tools/state", FILE_MODE)
        .doc_file("/usr/share/doc/tools/README", "read me\n")
        .file("/usr/share/licenses/shared/LICENSE", "shared license\n", FILE_MODE)
        .directory_owned("/var/lib/tools", PRIVATE_DIRECTORY_MODE, USER_NAME, GROUP_NAME)
        .pre_install_script(&format!("echo \"pre $1\" > {}\n", TOOLS_SCRIPTLET_OUTPUT[0]))
        .post_install_script(&format!(
            "echo \"post $1\" > {}\necho appended-by-post >> /etc/tools/tools.conf\n",
            TOOLS_SCRIPTLET_OUTPUT[1]
        ))
        .post_transaction_script(&format!("echo \"posttrans $1\" > {}\n", TOOLS_SCRIPTLET_OUTPUT[2]));
    let tools_data = package("tools-data")
        .requires("filesystem")
        .file("/usr/share/licenses/shared/LICENSE", "shared license\n", FILE_MODE)
        .file("/usr/share/tools-data/table", "1 2 3\n", FILE_MODE);
    vec![tools, tools_data]
}

const COMPARISON_NAMES: [&str; 2] = ["tools", "tools-data"];

/// Every path of a committed tree as `ostree ls -R -C` lists it: type and mode, owner, and for
/// directories their metadata object, for the rest their content object (which covers content, mode,
/// owner and extended attributes such as file capabilities), and the target of symlinks.
fn listing(repository: &Path, revision: &str) -> BTreeMap<String, String> {
    /// Fields of a listing line: mode, uid, gid, size, then for directories the tree and metadata
    /// checksums and the path, for the rest the content checksum, the path and `-> TARGET`.
    const MODE: usize = 0;
    const UID: usize = 1;
    const GID: usize = 2;
    const CONTENT: usize = 4;
    const DIRECTORY_METADATA: usize = 5;
    const DIRECTORY_PATH: usize = 6;
    const PATH: usize = 5;
    const TARGET: usize = 7;
    ostree(repository, &["ls", "-R", "-C", revision])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let owner = format!("{} {}:{}", fields[MODE], fields[UID], fields[GID]);
            if fields[MODE].starts_with('d') {
                (fields[DIRECTORY_PATH].to_string(), format!("{owner} {}", fields[DIRECTORY_METADATA]))
            } else {
                let target = fields.get(TARGET).map(|target| format!(" -> {target}")).unwrap_or_default();
                (fields[PATH].to_string(), format!("{owner} {}{target}", fields[CONTENT]))
            }
        })
        .collect()
}

/// Whether `path` is `prefix` or under it.
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The rpm databases, which differ by design: dnf's at `/usr/lib/sysimage/rpm` (where the
/// `.rpmmacros` of [`dnf_tree`] puts it), arbor's at `/usr/share/rpm` as rpm-ostree has it, with a
/// symlink at `/usr/lib/sysimage/rpm`.
const RPM_DATABASES: [&str; 2] = ["/usr/lib/sysimage/rpm", "/usr/share/rpm"];

/// dnf's own state, which no package ships: module configuration, caches, history and logs.
const DNF_STATE: [&str; 7] = [
    "/etc/dnf",
    "/var/cache",
    "/var/lib/dnf",
    "/var/log/dnf.log",
    "/var/log/dnf.librepo.log",
    "/var/log/dnf.rpm.log",
    "/var/log/hawkey.log",
];

/// What arbor's postprocessing adds for ostree, as rpm-ostree does, and dnf does not have:
/// - the top-level directories of every ostree tree and the top-level symlinks into /var and /run
///   (`/tmp` among them: a symlink to `sysroot/tmp` without `tmp-is-dir`, where dnf has the
///   `filesystem` package's directory), and `/usr/local` -> `../var/usrlocal`;
/// - `/etc/machine-id`, empty, for systemd's first boot (`machineid-compat`);
/// - `/usr/lib/passwd` and `/usr/lib/group`: the users and groups but root, moved out of /etc (their
///   content is checked against dnf's /etc/passwd and /etc/group);
/// - the tmpfiles.d file that recreates /var (its content is checked against dnf's /var).
const OSTREE_LAYOUT: [&str; 19] = [
    "/boot",
    "/dev",
    "/proc",
    "/run",
    "/sys",
    "/sysroot",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/ostree",
    "/root",
    "/srv",
    "/tmp",
    "/usr/local",
    "/etc/machine-id",
    "/usr/lib/passwd",
    "/usr/lib/group",
    "/usr/lib/tmpfiles.d",
];

/// The tmpfiles.d file in which arbor records what /var holds (ostree leaves /var to the system).
const AUTOVAR_CONF: &str = "/usr/lib/tmpfiles.d/arbor-autovar.conf";

/// The /var directories the top-level symlinks of [`OSTREE_LAYOUT`] point to: arbor's tmpfiles.d
/// creates them, dnf's tree has no such link.
const LAYOUT_VAR_DIRECTORIES: [&str; 6] =
    ["/var/home", "/var/mnt", "/var/opt", "/var/roothome", "/var/srv", "/var/usrlocal"];

/// The user and group databases that arbor splits between /etc and /usr/lib.
const ACCOUNT_FILES: [&str; 2] = ["passwd", "group"];

/// `listing` with /usr/etc seen at /etc (arbor moves it), without the paths that differ by design
/// ([`RPM_DATABASES`], [`DNF_STATE`], [`OSTREE_LAYOUT`]), without what is under /var (compared with
/// arbor's tmpfiles.d instead) and without the content of /etc/passwd and /etc/group (compared line
/// by line instead).
fn comparable(listing: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let account_files: Vec<String> = ACCOUNT_FILES.iter().map(|name| format!("/etc/{name}")).collect();
    listing
        .iter()
        .map(|(path, entry)| {
            let path = path.strip_prefix("/usr/etc").map_or(path.clone(), |rest| format!("/etc{rest}"));
            let entry = match entry.rsplit_once(' ') {
                Some((owner, _content)) if account_files.contains(&path) => owner.to_string(),
                _ => entry.clone(),
            };
            (path, entry)
        })
        .filter(|(path, _)| {
            let excluded = RPM_DATABASES.iter().chain(&DNF_STATE).chain(&OSTREE_LAYOUT);
            !excluded.into_iter().any(|prefix| is_under(path, prefix)) && !path.starts_with("/var/")
        })
        .collect()
}

/// The differences between two comparable listings, one line each.
fn differences(dnf: &BTreeMap<String, String>, arbor: &BTreeMap<String, String>) -> Vec<String> {
    let paths: BTreeSet<&String> = dnf.keys().chain(arbor.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| match (dnf.get(path), arbor.get(path)) {
            (Some(theirs), Some(ours)) if theirs == ours => None,
            (Some(theirs), Some(ours)) => Some(format!("{path}: dnf {theirs}, arbor {ours}")),
            (Some(theirs), None) => Some(format!("{path}: only dnf has it ({theirs})")),
            (None, Some(ours)) => Some(format!("{path}: only arbor has it ({ours})")),
            (None, None) => None,
        })
        .collect()
}

/// The lines of a file of a commit, sorted.
fn sorted_lines(repository: &Path, revision: &str, path: &str) -> Vec<String> {
    let mut lines: Vec<String> =
        ostree(repository, &["cat", revision, path]).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Names by id from the lines of a passwd or group file (`name:x:id:...`).
fn names_by_id(lines: &[String]) -> BTreeMap<String, String> {
    const NAME_FIELD: usize = 0;
    const ID_FIELD: usize = 2;
    lines
        .iter()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some((fields.get(ID_FIELD)?.to_string(), fields.get(NAME_FIELD)?.to_string()))
        })
        .collect()
}

/// The `d` lines arbor's tmpfiles.d must have for dnf's /var: each directory with its mode and
/// owner by name, plus [`LAYOUT_VAR_DIRECTORIES`] (taken from arbor's file: they have no dnf
/// counterpart). Panics on anything under /var that is not a directory (package files under /var
/// are not part of an ostree commit).
fn expected_var_lines(
    dnf: &BTreeMap<String, String>,
    users: &BTreeMap<String, String>,
    groups: &BTreeMap<String, String>,
    arbor_lines: &[String],
) -> Vec<String> {
    /// `d01777` → `1777`: the file type letter and the leading digit of ostree's five.
    const MODE_DIGITS: std::ops::RangeFrom<usize> = 2..;
    let mut lines: Vec<String> = dnf
        .iter()
        .filter(|(path, _)| path.starts_with("/var/"))
        .filter(|(path, _)| !DNF_STATE.iter().any(|prefix| is_under(path, prefix)))
        .map(|(path, entry)| {
            let (mode, owner) = entry.split_once(' ').unwrap();
            assert!(mode.starts_with('d'), "{path} is under /var but not a directory: {entry}");
            let (uid, gid) = owner.split_once(' ').unwrap().0.split_once(':').unwrap();
            format!("d {path} {} {} {} - -", &mode[MODE_DIGITS], users[uid], groups[gid])
        })
        .collect();
    lines.extend(
        arbor_lines
            .iter()
            .filter(|line| {
                LAYOUT_VAR_DIRECTORIES.iter().any(|path| line.split_whitespace().nth(1) == Some(path))
            })
            .cloned(),
    );
    lines.sort();
    lines
}

/// Installs `packages` from the repository at `url` with `dnf --installroot` into `directory/root`
/// and commits that root into the bare-user repository `directory/repo` on [`DNF_REFERENCE`].
fn dnf_tree(url: &str, packages: &[&str], directory: &Path) -> PathBuf {
    /// The mode of `/` in arbor's trees; a fresh temporary directory would be private.
    const ROOT_MODE: u32 = 0o755;
    let root = directory.join("root");
    let home = directory.join("home");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(ROOT_MODE)).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    // Debian's rpm keeps its database in ~/.rpmdb unless told otherwise.
    std::fs::write(home.join(".rpmmacros"), "%_dbpath /usr/lib/sysimage/rpm\n").unwrap();
    let output = Command::new("dnf")
        .arg("-y")
        .arg(format!("--installroot={}", root.display()))
        .args(["--releasever=1", "--setopt=reposdir=/dev/null", "--nogpgcheck"])
        .arg(format!("--repofrompath=fixture,{url}"))
        .args(["--setopt=install_weak_deps=False", "--setopt=keepcache=False"])
        .arg("install")
        .args(packages)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(output.status.success(), "dnf install: {}{}", text(&output.stdout), text(&output.stderr));
    let repository = directory.join("repo");
    ostree(&repository, &["init", "--mode=bare-user"]);
    ostree(
        &repository,
        &["commit", "-b", DNF_REFERENCE, "-s", "dnf", &format!("--tree=dir={}", root.display())],
    );
    repository
}

#[test]
fn the_committed_tree_is_the_tree_dnf_installs() {
    require_tools(&["dnf"]);
    let repository = repository_with(&comparison_packages());
    let names = with_minimal_os(&COMPARISON_NAMES);
    let workspace = Workspace::new(&repository.url(), &treefile(&names));
    let commit =
        workspace.compose_successfully("compose").summary["ostree-commit"].as_str().unwrap().to_string();
    let dnf_repository = dnf_tree(&repository.url(), &names, &workspace.directory.path().join("dnf"));

    let dnf = listing(&dnf_repository, DNF_REFERENCE);
    let arbor = listing(&workspace.target(), &commit);
    for path in TOOLS_SCRIPTLET_OUTPUT {
        assert!(dnf.contains_key(path), "dnf ran the scriptlets: {path}");
    }
    let capabilities = ostree(&dnf_repository, &["ls", "-X", DNF_REFERENCE, "/usr/bin/pinger"]);
    assert!(capabilities.contains("security.capability"), "rpm set the file capabilities: {capabilities}");
    let differences = differences(&comparable(&dnf), &comparable(&arbor));
    assert!(differences.is_empty(), "arbor's tree differs from dnf's:\n{}", differences.join("\n"));

    // /etc/passwd and /etc/group: split in two, the same lines.
    let mut accounts = Vec::new();
    for name in ACCOUNT_FILES {
        let theirs = sorted_lines(&dnf_repository, DNF_REFERENCE, &format!("/etc/{name}"));
        let mut ours = sorted_lines(&workspace.target(), &commit, &format!("/usr/etc/{name}"));
        ours.extend(sorted_lines(&workspace.target(), &commit, &format!("/usr/lib/{name}")));
        ours.sort();
        assert_eq!(ours, theirs, "/etc/{name} and /usr/lib/{name} together are dnf's /etc/{name}");
        accounts.push(names_by_id(&theirs));
    }

    // /var: what dnf installs there, arbor's tmpfiles.d creates at boot.
    let autovar: Vec<String> = sorted_lines(&workspace.target(), &commit, AUTOVAR_CONF)
        .into_iter()
        .filter(|line| !line.starts_with('#'))
        .collect();
    assert_eq!(autovar, expected_var_lines(&dnf, &accounts[0], &accounts[1], &autovar));
    assert_eq!(arbor.keys().filter(|path| path.starts_with("/var/")).count(), 0, "arbor's /var is empty");
}
