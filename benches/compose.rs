//! Benchmark: `arbor compose tree` against the stock-tools baseline (`dnf --installroot install` of every
//! package, then `ostree commit`, ../shared/bench/baseline-compose) on the real-package corpus:
//!
//! - baseline: generation 0, everything installed;
//! - arbor cold: empty package cache (RPMs are local `file://`, so nothing is downloaded);
//! - arbor incremental: generation 1 after generation 0 (only changed packages are imported);
//! - arbor unchanged: generation 1 again (stops at the input hash);
//! - peak memory of each arbor run (GNU time's maximum resident set size);
//! - both generations' packages are read once before anything is measured (RPMs already downloaded, in
//!   the page cache for every run);
//! - cold, incremental and unchanged are measured in `ARBOR_BENCH_ROUNDS` (3) rounds, each in a fresh
//!   cache, and the medians are compared with the targets;
//! - tree equivalence: arbor's generation-0 commit against the baseline's (files, modes, owners, symlink
//!   targets, contents), apart from the rpmdb, dnf's own state and the /etc -> /usr/etc move.
//!
//! Needs `ARBOR_BENCH_CORPUS` with `gen0/` and `gen1/` (`make corpus`), dnf, ostree and /usr/bin/time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod support;

use support::{compose, package_names, write_repo_file, write_treefile};

fn main() {
    let corpus =
        PathBuf::from(std::env::var("ARBOR_BENCH_CORPUS").expect("set ARBOR_BENCH_CORPUS (make bench does)"));
    let generation0 = corpus.join("gen0").canonicalize().expect("gen0 corpus");
    let generation1 = corpus.join("gen1").canonicalize().expect("gen1 corpus");
    let scratch =
        tempfile::tempdir_in(std::env::var_os("ARBOR_BENCH_SCRATCH").unwrap_or("/var/tmp".into())).unwrap();
    let packages = package_names(&generation0);
    // Both generations' packages are read once first, so that every run finds them in the page cache
    // (the baseline's dnf run would otherwise warm generation 0 only, and the first incremental compose
    // would measure the disk).
    for generation in [&generation0, &generation1] {
        read_every_file(&generation.join("Packages"));
    }

    let baseline_directory = scratch.path().join("baseline");
    let started = Instant::now();
    let output = Command::new("../shared/bench/baseline-compose")
        .arg(&generation0)
        .arg(&baseline_directory)
        .output()
        .expect("running ../shared/bench/baseline-compose");
    assert!(output.status.success(), "baseline failed: {}", String::from_utf8_lossy(&output.stderr));
    let baseline_seconds = started.elapsed().as_secs_f64();
    let baseline_line = String::from_utf8_lossy(&output.stdout).trim().to_string();
    println!(
        "baseline (dnf --installroot + ostree commit), {} packages: {baseline_seconds:.2} s  [{baseline_line}]",
        packages.len()
    );

    let treefile_directory = scratch.path().join("treefile");
    std::fs::create_dir_all(&treefile_directory).unwrap();
    let treefile = write_treefile(&treefile_directory, &packages);
    let rounds: usize =
        std::env::var(ROUNDS_VARIABLE).ok().and_then(|value| value.parse().ok()).unwrap_or(ROUNDS);
    let mut colds = Vec::new();
    let mut incrementals = Vec::new();
    // Every round in its own cache and repository, all kept until the end: deleting a round's files
    // would make the next round's inode allocation slower on a file system without a journal.
    for round in 1..=rounds {
        let cache = scratch.path().join(format!("cache-{round}"));
        let repo = scratch.path().join(format!("repo-{round}"));
        write_repo_file(&treefile_directory, &generation0);
        let cold = compose(&treefile, &cache, &repo);
        println!(
            "round {round}: arbor cold (empty package cache):  {:7.2} s  {:6} MB peak  = {:.2}x baseline",
            cold.seconds,
            cold.peak_kilobytes / 1024,
            cold.seconds / baseline_seconds
        );
        if round == 1 {
            let equivalence =
                compare_trees(&baseline_directory.join("repo"), "baseline", &repo, "bench/x86_64");
            println!("tree equivalence with the baseline: {equivalence}");
        }

        write_repo_file(&treefile_directory, &generation1);
        let incremental = compose(&treefile, &cache, &repo);
        println!(
            "round {round}: arbor incremental (gen 0 -> gen 1): {:7.2} s  {:6} MB peak  = {:.0}% of this round's cold",
            incremental.seconds,
            incremental.peak_kilobytes / 1024,
            100.0 * incremental.seconds / cold.seconds
        );
        let unchanged = compose(&treefile, &cache, &repo);
        println!(
            "round {round}: arbor unchanged inputs:             {:7.2} s  {:6} MB peak  (target < 2 s)",
            unchanged.seconds,
            unchanged.peak_kilobytes / 1024
        );
        assert!(
            unchanged.stdout.contains("No changes since"),
            "the third compose should stop early: {}",
            unchanged.stdout
        );
        colds.push(cold.seconds);
        incrementals.push(incremental.seconds);
    }
    let (cold, incremental) = (median(&mut colds), median(&mut incrementals));
    println!(
        "median of {rounds} rounds: cold {cold:.2} s = {:.2}x baseline (target <= 0.5x); \
         incremental {incremental:.2} s = {:.0}% of cold (target <= 25%)",
        cold / baseline_seconds,
        100.0 * incremental / cold
    );
}

fn read_every_file(directory: &Path) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_every_file(&path);
        } else {
            std::io::copy(&mut std::fs::File::open(&path).unwrap(), &mut std::io::sink()).unwrap();
        }
    }
}

/// How many times cold, incremental and unchanged composes are measured (each in a fresh cache); the
/// medians are compared with the targets, because this machine's speed varies by a quarter between runs.
const ROUNDS: usize = 3;
const ROUNDS_VARIABLE: &str = "ARBOR_BENCH_ROUNDS";

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Paths the comparison leaves out, each for a reason that is by design:
/// - package-manager state: the rpmdb lives elsewhere, dnf keeps its own state, caches and logs;
/// - `/var`: arbor turns it into tmpfiles.d entries (ostree convention), so its content is not in the tree;
/// - `/etc/passwd` and `/etc/group`: split between /etc and /usr/lib (nss-altfiles), `/etc/machine-id`;
/// - the ostree top-level layout: `/home`, `/root`, `/srv`, `/mnt`, `/media`, `/opt`, `/ostree`, `/sysroot`,
///   `/tmp` and `/usr/local` become symlinks or mount points.
fn ignored(path: &str) -> bool {
    const IGNORED_PREFIXES: [&str; 21] = [
        "/usr/lib/sysimage/rpm",
        "/usr/share/rpm",
        "/var",
        "/root",
        "/usr/lib/tmpfiles.d/arbor-autovar.conf",
        "/etc/passwd",
        "/etc/group",
        "/usr/lib/passwd",
        "/usr/lib/group",
        "/etc/machine-id",
        "/home",
        "/srv",
        "/mnt",
        "/media",
        "/opt",
        "/ostree",
        "/sysroot",
        "/tmp",
        "/usr/local",
        "/usr/lib/opt",
        "/etc/nsswitch.conf",
    ];
    IGNORED_PREFIXES.iter().any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// `ostree ls -R -C` as path → (type+mode, uid, gid, checksum or target).
fn listing(repo: &Path, reference: &str) -> BTreeMap<String, String> {
    let output = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["ls", "-R", "-C", reference])
        .output()
        .expect("running ostree ls");
    assert!(output.status.success(), "ostree ls: {}", String::from_utf8_lossy(&output.stderr));
    let mut entries = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Files: MODE UID GID SIZE CHECKSUM PATH [-> TARGET]; directories carry two checksums.
        let Some(path_index) = fields.iter().position(|field| field.starts_with('/')) else { continue };
        let (mode, uid, gid, checksum) = (fields[0], fields[1], fields[2], fields[path_index - 1]);
        let path = fields[path_index];
        let path = path.strip_prefix("/usr/etc").map_or(path.to_string(), |rest| format!("/etc{rest}"));
        let target = fields.get(path_index + 2).copied().unwrap_or("");
        let value = if mode.starts_with('d') {
            format!("{mode} {uid} {gid}")
        } else {
            format!("{mode} {uid} {gid} {checksum} {target}")
        };
        entries.insert(path, value);
    }
    entries
}

fn compare_trees(baseline_repo: &Path, baseline_ref: &str, repo: &Path, reference: &str) -> String {
    let baseline = listing(baseline_repo, baseline_ref);
    let ours = listing(repo, reference);
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    let mut different = Vec::new();
    for (path, value) in &baseline {
        if ignored(path) {
            continue;
        }
        match ours.get(path) {
            None => missing.push(path.clone()),
            Some(other) if other != value => {
                different.push(format!("{path}: baseline {value}, arbor {other}"))
            }
            Some(_) => {}
        }
    }
    for path in ours.keys() {
        if !ignored(path) && !baseline.contains_key(path) {
            extra.push(path.clone());
        }
    }
    let compared = baseline.keys().filter(|path| !ignored(path)).count();
    let mut report = format!(
        "{compared} paths compared: {} missing in arbor, {} only in arbor, {} different",
        missing.len(),
        extra.len(),
        different.len()
    );
    for line in missing.iter().take(5).map(|path| format!("missing {path}")).chain(
        extra.iter().take(5).map(|path| format!("extra {path}")).chain(different.iter().take(5).cloned()),
    ) {
        report.push_str("\n    ");
        report.push_str(&line);
    }
    report
}
