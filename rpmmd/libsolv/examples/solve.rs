//! Loads one rpm-md repository and depsolves some specs, printing timings: a quick manual check
//! of scale (e.g. on `rpm-corpus synth-metadata` output).
//!
//! `cargo run --release -p libsolv --example solve -- PRIMARY [FILELISTS] -- SPEC...`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use libsolv::{Pool, Request};

/// Architecture the example pool is created for.
const ARCH: &str = "x86_64";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let separator = arguments.iter().position(|argument| argument == "--").unwrap_or(arguments.len());
    let (files, specs) = arguments.split_at(separator);
    let specs: Vec<String> = specs.iter().skip(1).cloned().collect();
    let Some(primary) = files.first().map(PathBuf::from) else {
        eprintln!("usage: solve PRIMARY [FILELISTS] -- SPEC...");
        return ExitCode::FAILURE;
    };
    let filelists = files.get(1).map(PathBuf::from);

    let started = Instant::now();
    let mut pool = match Pool::new(ARCH) {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let repo = match pool.add_rpmmd_repo("repo", 0, &primary, filelists.as_deref(), None) {
        Ok(repo) => repo,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    pool.prepare();
    let loaded = started.elapsed();
    let package_count = pool.solvables(repo).len();

    let cache = std::env::temp_dir().join(format!("libsolv-example-{}.solv", std::process::id()));
    let cache_started = Instant::now();
    let cache_result = pool.write_solv_cache(repo, &cache);
    let cache_written = cache_started.elapsed();
    let _ = std::fs::remove_file(&cache);
    if let Err(error) = cache_result {
        eprintln!("{error}");
    }

    let solve_started = Instant::now();
    let result = pool.solve(&Request { install: specs, ..Request::default() });
    let solved = solve_started.elapsed();
    println!(
        "{package_count} packages; load+prepare {loaded:?}; write cache {cache_written:?}; solve {solved:?}"
    );
    match result {
        Ok(transaction) => {
            println!("{} packages to install", transaction.install.len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{problems}");
            ExitCode::FAILURE
        }
    }
}
