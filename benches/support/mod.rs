//! What the benchmarks share: composing with the arbor binary under GNU time, and the treefile and
//! `.repo` file that install every package of a corpus generation.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A fixed commit time, so composes are reproducible.
pub const SOURCE_DATE_EPOCH: &str = "1700000000";

pub struct Run {
    pub seconds: f64,
    pub peak_kilobytes: u64,
    pub stdout: String,
}

/// With `ARBOR_BENCH_LOG=DIRECTORY`, each compose runs with `RUST_LOG=info` and its log (the phases with
/// timestamps) is written to `DIRECTORY/compose-N.log`.
pub const LOG_DIRECTORY_VARIABLE: &str = "ARBOR_BENCH_LOG";

static COMPOSES_RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn compose(treefile: &Path, cache: &Path, repo: &Path) -> Run {
    let report = cache.with_extension("time");
    let log_directory = std::env::var_os(LOG_DIRECTORY_VARIABLE).map(PathBuf::from);
    let started = Instant::now();
    let mut command = Command::new("/usr/bin/time");
    if log_directory.is_some() {
        command.env("RUST_LOG", "info");
    }
    let output = command
        .arg("-o")
        .arg(&report)
        .arg("-f")
        .arg("%M")
        .arg(env!("CARGO_BIN_EXE_arbor"))
        .args(["compose", "tree", "--arch", "x86_64", "--no-lockfiles"])
        .arg(treefile)
        .arg("--repo")
        .arg(repo)
        .arg("--cachedir")
        .arg(cache)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .output()
        .expect("running arbor");
    let seconds = started.elapsed().as_secs_f64();
    if let Some(directory) = log_directory {
        let number = COMPOSES_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join(format!("compose-{number}.log")), &output.stderr).unwrap();
    }
    assert!(output.status.success(), "arbor failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let peak_kilobytes = std::fs::read_to_string(&report)
        .unwrap_or_default()
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or(0);
    Run { seconds, peak_kilobytes, stdout: String::from_utf8_lossy(&output.stdout).into_owned() }
}

pub fn package_names(repository: &Path) -> Vec<String> {
    let build: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repository.join("corpus-build.json")).expect("corpus-build.json"),
    )
    .unwrap();
    let mut names: Vec<String> = build["rpms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rpm| rpm["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

pub fn write_treefile(directory: &Path, packages: &[String]) -> PathBuf {
    let treefile = serde_json::json!({
        "ref": "bench/x86_64",
        "repos": ["corpus"],
        "packages": packages,
        "recommends": false,
    });
    let path = directory.join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&treefile).unwrap()).unwrap();
    path
}

pub fn write_repo_file(directory: &Path, repository: &Path) {
    std::fs::write(
        directory.join("corpus.repo"),
        format!("[corpus]\nname=corpus\nbaseurl=file://{}\ngpgcheck=0\n", repository.display()),
    )
    .unwrap();
}
