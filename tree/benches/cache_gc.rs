//! Benchmark: what usage tracking and garbage collection of the package cache cost on a cache of a
//! worker's size, made up here: `PACKAGES` package commits of `FILES_PER_PACKAGE` small files each (about
//! 51,000 objects), a kept tree hardlinking the most recently used half, one download per package.
//!
//! - recording the use of every package (what each compose does): median of `ROUNDS`;
//! - the worker's check under its maximum (`prune_if_over`: one walk of the cache), median of `ROUNDS`;
//! - a dry run without a maximum (walk, refs, traversal of every package commit, plan);
//! - a real collection down to half the size, on a copy.
//!
//! Warm file system caches (the machine's page and dentry caches are shared with other work: they are
//! not dropped). Run with `cargo bench -p tree --bench cache_gc`; `ARBOR_BENCH_SCRATCH` picks the directory
//! (default /var/tmp).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::blocking::Cancellation;
use ostree::gio;
use ostree::glib::prelude::*;
use tree::file_object::{FileObjectMetadata, write_file_object};
use tree::pkgcache::gc::{GcOptions, collect_garbage, prune_if_over};
use tree::pkgcache::{PACKAGE_CACHE_DIRECTORY, metadata_keys, usage};

const PACKAGES: usize = 500;
const FILES_PER_PACKAGE: usize = 100;
const ROUNDS: usize = 9;
/// Downloads are small stand-ins: their number matters here, not their size.
const DOWNLOAD_BYTES: usize = 4096;
const FILE_MODE: u32 = 0o100_644;
const DIRECTORY_MODE: u32 = 0o755;

fn branch(index: usize) -> String {
    format!("rpmostree/pkg/package-{index:03}/1.0-1.x86__64")
}

fn checksum_hex(index: usize) -> String {
    format!("{index:064x}")
}

fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

/// Writes the cache: package commits with their metadata, refs used over time, downloads, kept tree.
fn make_cache(cache: &Path) {
    let repository_path = cache.join(PACKAGE_CACHE_DIRECTORY);
    std::fs::create_dir_all(&repository_path).unwrap();
    let repository = ostree::Repo::new_for_path(&repository_path);
    repository.create(ostree::RepoMode::BareUser, gio::Cancellable::NONE).unwrap();
    repository.set_disable_fsync(true);
    let xattrs = Vec::<(Vec<u8>, Vec<u8>)>::new().to_variant();
    let metadata = FileObjectMetadata { uid: 0, gid: 0, mode: FILE_MODE, xattrs: &xattrs };
    let directory = tree::pkgcache::import::directory_metadata(0, 0, DIRECTORY_MODE);
    let tree = cache.join("work/tree");
    repository.prepare_transaction(gio::Cancellable::NONE).unwrap();
    let directory_checksum = repository
        .write_metadata(ostree::ObjectType::DirMeta, None, &directory, gio::Cancellable::NONE)
        .unwrap()
        .to_hex();
    for package in 0..PACKAGES {
        let name = format!("package-{package:03}");
        let root = ostree::MutableTree::new();
        root.set_metadata_checksum(&directory_checksum);
        let share = root.ensure_dir(&name).unwrap();
        share.set_metadata_checksum(&directory_checksum);
        let kept_directory = tree.join("usr/share").join(&name);
        let in_tree = package >= PACKAGES / 2;
        if in_tree {
            std::fs::create_dir_all(&kept_directory).unwrap();
        }
        for file in 0..FILES_PER_PACKAGE {
            let content = format!("{name} file {file}\n");
            let checksum = write_file_object(
                &repository,
                &metadata,
                content.len() as u64,
                &mut content.as_bytes(),
                &mut |_| {},
            )
            .unwrap();
            share.replace_file(&format!("file-{file:03}"), &checksum).unwrap();
            if in_tree {
                let object = repository_path
                    .join("objects")
                    .join(common::ostree_format::loose_object_path(&checksum, "file"));
                std::fs::hard_link(object, kept_directory.join(format!("file-{file:03}"))).unwrap();
            }
        }
        let written = repository.write_mtree(&root, gio::Cancellable::NONE).unwrap();
        let written = written.downcast::<ostree::RepoFile>().unwrap();
        let commit_metadata = ostree::glib::VariantDict::new(None);
        commit_metadata.insert_value(metadata_keys::NEVRA, &format!("{name}-1.0-1.x86_64").to_variant());
        commit_metadata.insert_value(
            metadata_keys::REPODATA_CHECKSUM,
            &format!("sha256:{}", checksum_hex(package)).to_variant(),
        );
        let commit = repository
            .write_commit(None, None, None, Some(&commit_metadata.end()), &written, gio::Cancellable::NONE)
            .unwrap();
        repository.transaction_set_ref(None, &branch(package), Some(&commit));
    }
    repository.commit_transaction(gio::Cancellable::NONE).unwrap();
    // Older packages were used longer ago.
    let now = SystemTime::now();
    for package in 0..PACKAGES {
        let used = now - Duration::from_secs(((PACKAGES - package) * 60) as u64);
        usage::record_use(&repository_path, [branch(package).as_str()], used).unwrap();
    }
    let downloads = cache.join("packages");
    std::fs::create_dir_all(&downloads).unwrap();
    for package in 0..PACKAGES {
        let path = downloads.join(format!("sha256-{}.rpm", checksum_hex(package)));
        std::fs::write(path, vec![0u8; DOWNLOAD_BYTES]).unwrap();
    }
}

fn main() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).init();
    }
    let scratch =
        tempfile::tempdir_in(std::env::var_os("ARBOR_BENCH_SCRATCH").unwrap_or("/var/tmp".into())).unwrap();
    let cache = scratch.path().join("cache");
    let started = Instant::now();
    make_cache(&cache);
    let objects: usize = std::fs::read_dir(cache.join(PACKAGE_CACHE_DIRECTORY).join("objects"))
        .unwrap()
        .map(|directory| std::fs::read_dir(directory.unwrap().path()).unwrap().count())
        .sum();
    println!(
        "cache: {PACKAGES} packages, {objects} objects, {PACKAGES} downloads, kept tree of {} files \
         (made in {:.1} s)",
        PACKAGES / 2 * FILES_PER_PACKAGE,
        started.elapsed().as_secs_f64()
    );

    let repository = cache.join(PACKAGE_CACHE_DIRECTORY);
    let branches: Vec<String> = (0..PACKAGES).map(branch).collect();
    let recording: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            usage::record_use(&repository, branches.iter().map(String::as_str), SystemTime::now()).unwrap();
            started.elapsed()
        })
        .collect();
    println!(
        "recording the use of {PACKAGES} packages: {} us (median of {ROUNDS})",
        median(recording).as_micros()
    );

    let cancellation = Cancellation::new();
    let keep = BTreeSet::new();
    let checks: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            assert!(prune_if_over(&cache, u64::MAX, &keep, &cancellation).unwrap().is_none());
            started.elapsed()
        })
        .collect();
    println!(
        "the worker's check under its maximum: {:.1} ms (median of {ROUNDS})",
        median(checks).as_secs_f64() * 1e3
    );

    let dry_runs: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let options = GcOptions { dry_run: true, ..GcOptions::default() };
            let started = Instant::now();
            collect_garbage(&cache, &options, &cancellation).unwrap();
            started.elapsed()
        })
        .collect();
    let report =
        collect_garbage(&cache, &GcOptions { dry_run: true, ..GcOptions::default() }, &cancellation).unwrap();
    println!(
        "a dry run (walk, refs, traversal, plan): {:.1} ms (median of {ROUNDS}); size {} bytes",
        median(dry_runs).as_secs_f64() * 1e3,
        report.size_before.total()
    );

    let half = report.size_before.total() / 2;
    let options = GcOptions { max_size: Some(half), ..GcOptions::default() };
    let started = Instant::now();
    let report = collect_garbage(&cache, &options, &cancellation).unwrap();
    println!(
        "collecting down to half: {:.1} ms; {} packages evicted, {} objects and {} downloads removed, \
         kept tree dropped: {}, {} -> {} bytes",
        started.elapsed().as_secs_f64() * 1e3,
        report.evicted.len(),
        report.objects_removed,
        report.downloads_removed,
        report.tree_dropped,
        report.size_before.total(),
        report.size_after.total()
    );
}
