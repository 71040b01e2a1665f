//! Benchmark: depsolving with arbor against dnf 4 on the same repository and package set.
//!
//! - synthetic 60,000-package repository (`rpm-corpus synth-metadata`), install of its 2,000-name sample:
//!   in-process cold (empty caches: metadata copy + verify + parse + solve), warm (solv cache present,
//!   resolution cache bypassed) and a resolution-cache hit; then whole processes of the release
//!   `arbor compose resolve` (`ARBOR_BIN`): warm solve (`--no-resolution-cache`), a miss (the entry
//!   removed before each run: solve + cache write) and a hit, output to /dev/null;
//! - the real-package corpus (generation 0, about 470 packages), everything installed: warm; skipped
//!   with a message when `gen0/` is missing.
//!
//! Needs `ARBOR_BENCH_CORPUS` pointing at the directory `make bench` prepares (`synth/`, `gen0/`), and
//! `ARBOR_BIN` for the whole-process figures (`make bench` builds and passes target/release/arbor).
//! dnf runs as `dnf --installroot --assumeno install`, with weak dependencies off on both sides.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rpmmd::fetch::{FetchOptions, Fetcher};
use rpmmd::resolution_cache::RESOLUTIONS_DIRECTORY;
use rpmmd::resolve::{LockSettings, Resolution, ResolutionCacheMode, ResolutionOrigin, resolve_with};
use treefiles::{FileSystemLoader, Flattened, LoadOptions};

const COLD_RUNS: usize = 3;
/// Enough for a median that one burst of this machine's noise does not move (a warm run of the
/// synthetic repository takes about 0.15 s).
const WARM_RUNS: usize = 15;
/// Targets of the synthetic install, as a whole process: warm solve, and unchanged inputs.
const WHOLE_PROCESS_SOLVE_TARGET: Duration = Duration::from_millis(200);
const WHOLE_PROCESS_HIT_TARGET: Duration = Duration::from_millis(50);

fn main() {
    // `RUST_LOG=info` shows the phases (metadata, load, prepare, solve) of every run.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let corpus =
        PathBuf::from(std::env::var("ARBOR_BENCH_CORPUS").expect("set ARBOR_BENCH_CORPUS (make bench does)"));
    let scratch = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let resolve_once = |fetcher: &Fetcher, flattened: &Flattened, mode: ResolutionCacheMode| {
        runtime.block_on(resolve_with(fetcher, flattened, &LockSettings::default(), mode)).unwrap()
    };

    let synth = corpus.join("synth");
    let sample: Vec<String> = std::fs::read_to_string(synth.join("install-sample.txt"))
        .expect("synth/install-sample.txt")
        .lines()
        .map(str::to_string)
        .collect();
    let treefile = write_treefile(scratch.path(), "synth", &synth, &sample);
    let flattened = treefiles::load(&FileSystemLoader, &treefile, &LoadOptions::for_arch("x86_64")).unwrap();

    let mut cold = Vec::new();
    let mut resolution = None;
    for run in 0..COLD_RUNS {
        let fetcher =
            Fetcher::new(FetchOptions::new(scratch.path().join(format!("cold-cache-{run}")))).unwrap();
        let start = Instant::now();
        resolution = Some(resolve_once(&fetcher, &flattened, ResolutionCacheMode::Bypassed).resolution);
        cold.push(start.elapsed());
    }
    let resolution: Resolution = resolution.unwrap();
    let warm_cache = scratch.path().join("cold-cache-0");
    let warm_fetcher = Fetcher::new(FetchOptions::new(&warm_cache)).unwrap();
    let warm = time_runs(WARM_RUNS, || {
        resolve_once(&warm_fetcher, &flattened, ResolutionCacheMode::Bypassed);
    });
    resolve_once(&warm_fetcher, &flattened, ResolutionCacheMode::Enabled);
    let hits = time_runs(WARM_RUNS, || {
        let outcome = resolve_once(&warm_fetcher, &flattened, ResolutionCacheMode::Enabled);
        assert_eq!(outcome.origin, ResolutionOrigin::Cached, "an unchanged resolve answers from the cache");
    });
    println!(
        "arbor synth 60k, install {} names -> {} packages, in-process: cold median {} (target < 1.5 s), warm median {} (target < 200 ms; {}), resolution-cache hit median {} ({})",
        sample.len(),
        resolution.packages.len(),
        show(median(&cold)),
        show(median(&warm)),
        spread(&warm),
        show(median(&hits)),
        spread(&hits),
    );
    match std::env::var_os("ARBOR_BIN") {
        Some(binary) => whole_process(Path::new(&binary), &treefile, &warm_cache, resolution.packages.len()),
        None => println!(
            "arbor synth 60k, whole process: skipped (set ARBOR_BIN to a release arbor; make bench does)"
        ),
    }

    match dnf_times(&synth, &sample, scratch.path()) {
        Some((dnf_cold, dnf_warm, dnf_count)) => println!(
            "dnf   synth 60k, install {} names -> {dnf_count} packages: cold {}, warm median {}; arbor warm / dnf warm = {:.3} (target <= 0.5)",
            sample.len(),
            show(dnf_cold),
            show(dnf_warm),
            median(&warm).as_secs_f64() / dnf_warm.as_secs_f64()
        ),
        None => println!("dnf: not installed (scripts/install-deps installs it); no comparison"),
    }

    let generation = corpus.join("gen0");
    if !generation.join("repodata/repomd.xml").exists() {
        println!(
            "arbor real corpus gen0: skipped ({} has no repository; `make corpus` builds it, which needs network access)",
            generation.display()
        );
        return;
    }
    let names = corpus_package_names(&generation);
    let treefile = write_treefile(scratch.path(), "real", &generation, &names);
    let flattened = treefiles::load(&FileSystemLoader, &treefile, &LoadOptions::for_arch("x86_64")).unwrap();
    let fetcher = Fetcher::new(FetchOptions::new(scratch.path().join("real-cache"))).unwrap();
    let first = resolve_once(&fetcher, &flattened, ResolutionCacheMode::Bypassed).resolution;
    let warm = time_runs(WARM_RUNS, || {
        resolve_once(&fetcher, &flattened, ResolutionCacheMode::Bypassed);
    });
    println!(
        "arbor real corpus gen0, install {} names -> {} packages: warm median {} (target < 100 ms)",
        names.len(),
        first.packages.len(),
        show(median(&warm))
    );
}

/// `arbor compose resolve` as a whole process (start, cache load, solve, output to /dev/null) with the
/// warm cache of the in-process runs: solving, a resolution-cache miss and a hit.
fn whole_process(binary: &Path, treefile: &Path, cache: &Path, packages: usize) {
    let command = |extra: &[&str]| {
        let mut command = Command::new(binary);
        command
            .args(["compose", "resolve"])
            .arg(treefile)
            .args(["--arch", "x86_64", "--cachedir"])
            .arg(cache)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    };
    let output = command(&[]).stdout(Stdio::piped()).output().expect("running ARBOR_BIN");
    assert!(output.status.success(), "{} compose resolve failed", binary.display());
    let summary = format!("{packages} packages (");
    assert!(String::from_utf8_lossy(&output.stdout).contains(&summary), "arbor resolved another set");
    let run = |extra: &[&str], before: &dyn Fn()| {
        // One run unmeasured first: the binary and its libraries into the page cache.
        before();
        assert!(command(extra).status().unwrap().success());
        (0..WARM_RUNS)
            .map(|_| {
                before();
                let start = Instant::now();
                assert!(command(extra).status().unwrap().success());
                start.elapsed()
            })
            .collect::<Vec<Duration>>()
    };
    let solve = run(&["--no-resolution-cache"], &|| {});
    let resolutions = cache.join(RESOLUTIONS_DIRECTORY);
    let miss = run(&[], &|| {
        let _ = std::fs::remove_dir_all(&resolutions);
    });
    let hit = run(&[], &|| {});
    println!(
        "arbor synth 60k, whole process (`arbor compose resolve`): warm solve median {} (target < {}; {}), miss + cache write median {} ({}), resolution-cache hit median {} (target < {}; {})",
        show(median(&solve)),
        show(WHOLE_PROCESS_SOLVE_TARGET),
        spread(&solve),
        show(median(&miss)),
        spread(&miss),
        show(median(&hit)),
        show(WHOLE_PROCESS_HIT_TARGET),
        spread(&hit),
    );
}

fn write_treefile(scratch: &Path, name: &str, repository: &Path, packages: &[String]) -> PathBuf {
    let directory = scratch.join(format!("treefile-{name}"));
    std::fs::create_dir_all(&directory).unwrap();
    let repository = std::fs::canonicalize(repository).unwrap();
    std::fs::write(
        directory.join("corpus.repo"),
        format!("[corpus]\nbaseurl=file://{}\ngpgcheck=0\n", repository.display()),
    )
    .unwrap();
    let manifest =
        serde_json::json!({"ref": "bench", "repos": ["corpus"], "recommends": false, "packages": packages});
    let path = directory.join("manifest.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    path
}

fn corpus_package_names(generation: &Path) -> Vec<String> {
    let build: serde_json::Value = serde_json::from_slice(
        &std::fs::read(generation.join("corpus-build.json")).expect("gen0/corpus-build.json"),
    )
    .unwrap();
    build["rpms"].as_array().unwrap().iter().map(|rpm| rpm["name"].as_str().unwrap().to_string()).collect()
}

/// dnf --assumeno install: (cold time, warm median, packages it would install).
fn dnf_times(repository: &Path, packages: &[String], scratch: &Path) -> Option<(Duration, Duration, usize)> {
    Command::new("dnf").arg("--version").output().ok()?;
    let root = scratch.join("dnf-root");
    let home = scratch.join("dnf-home");
    std::fs::create_dir_all(&home).unwrap();
    // Debian's rpm keeps its database under ~/.rpmdb unless told otherwise.
    std::fs::write(home.join(".rpmmacros"), "%_dbpath /usr/lib/sysimage/rpm\n").unwrap();
    let repository = std::fs::canonicalize(repository).unwrap();
    let run = || {
        let start = Instant::now();
        let output = Command::new("dnf")
            .env("HOME", &home)
            .args(["--assumeno", "--installroot"])
            .arg(&root)
            .args([
                "--releasever=1",
                "--setopt=reposdir=/dev/null",
                "--nogpgcheck",
                "--setopt=install_weak_deps=False",
            ])
            .arg(format!("--repofrompath=corpus,file://{}", repository.display()))
            .arg("--setopt=cachedir=/dnf-cache")
            .arg("install")
            .args(packages)
            .output()
            .expect("running dnf");
        let elapsed = start.elapsed();
        let text = String::from_utf8_lossy(&output.stdout);
        let count = text
            .lines()
            .find_map(|line| {
                line.trim()
                    .strip_prefix("Install ")
                    .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or_else(|| {
                panic!(
                    "dnf did not report an install count:\n{text}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        (elapsed, count)
    };
    let (cold, count) = run();
    let warm: Vec<Duration> = (0..3).map(|_| run().0).collect();
    Some((cold, median(&warm), count))
}

fn time_runs(runs: usize, mut work: impl FnMut()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect()
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// "N runs MIN..MAX".
fn spread(times: &[Duration]) -> String {
    format!(
        "{} runs {}..{}",
        times.len(),
        show(times.iter().copied().min().unwrap_or_default()),
        show(times.iter().copied().max().unwrap_or_default())
    )
}

fn show(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", duration.as_secs_f64())
    }
}
