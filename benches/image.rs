//! Benchmark: chunked OCI images of the real-package corpus and its 12-week update schedule.
//!
//! - encapsulation of the generation-0 commit: wall time and size against a single-threaded `gzip -6` of
//!   the same uncompressed layers (target: at least 1.7x gzip's throughput, size within 5%);
//! - push of the generation-0 image to a local `docker-registry`, against `skopeo copy` of the same OCI
//!   directory to a second, empty registry (target: at most 1.0x skopeo's time), then the week-1 push
//!   (only changed layers are uploaded);
//! - update size: for each week N, the bytes a client holding week N-1 downloads to get week N (layers it
//!   lacks plus the config), against the ideal (compressed size of the packages that changed that week
//!   plus the commit layer) and a single-layer image (target: 12-week total at most 1.5x the ideal, with
//!   64 layers).
//!
//! `ARBOR_BENCH_COMPRESSION=zstd` makes zstd images (the ideal counts RPM payloads, which are zstd, so
//! this compares like with like). Needs `ARBOR_BENCH_CORPUS` with `gen0/` .. `gen12/` (`make corpus`; fewer generations give fewer
//! weeks), ostree, skopeo, docker-registry, gzip and /usr/bin/time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use arbor_testsupport::registry::TestRegistry;
use image::layout::{ImageManifest, OciDirectory};
use support::{compose, package_names, write_repo_file, write_treefile};

/// The weeks of the corpus schedule.
const WEEKS: usize = 12;
/// The image tag of generation N in the benchmark's OCI directory.
fn tag(generation: usize) -> String {
    format!("gen{generation}")
}

fn main() {
    let corpus =
        PathBuf::from(std::env::var("ARBOR_BENCH_CORPUS").expect("set ARBOR_BENCH_CORPUS (make bench does)"));
    let generations: Vec<PathBuf> = (0..=WEEKS)
        .map(|generation| corpus.join(format!("gen{generation}")))
        .take_while(|path| path.join("repodata/repomd.xml").exists())
        .map(|path| path.canonicalize().unwrap())
        .collect();
    assert!(generations.len() >= 2, "need at least gen0 and gen1 in {}", corpus.display());
    let scratch =
        tempfile::tempdir_in(std::env::var_os("ARBOR_BENCH_SCRATCH").unwrap_or("/var/tmp".into())).unwrap();
    let treefile_directory = scratch.path().join("treefile");
    std::fs::create_dir_all(&treefile_directory).unwrap();
    let treefile = write_treefile(&treefile_directory, &package_names(&generations[0]));
    let cache = scratch.path().join("cache");
    let repo = scratch.path().join("repo");
    let images = scratch.path().join("images");
    let compression = std::env::var("ARBOR_BENCH_COMPRESSION").unwrap_or_else(|_| "gzip".to_string());
    println!("layer compression: {compression}");

    write_repo_file(&treefile_directory, &generations[0]);
    let composed = compose(&treefile, &cache, &repo);
    println!("composed generation 0 in {:.1} s", composed.seconds);

    // Encapsulation against gzip -6 of the same bytes.
    let started = Instant::now();
    encapsulate(&repo, &oci(&images, 0), None, &compression);
    let encapsulate_seconds = started.elapsed().as_secs_f64();
    let directory = OciDirectory::open(&images).unwrap();
    let manifest = read_manifest(&directory, &tag(0));
    let compressed: u64 = manifest.layers.iter().map(|layer| layer.size).sum();
    let uncompressed_file = scratch.path().join("layers.tar");
    let uncompressed = decompress_layers(&directory, &manifest, &uncompressed_file, &compression);
    let started = Instant::now();
    let gzip =
        Command::new("gzip").args(["-6", "-c"]).arg(&uncompressed_file).output().expect("running gzip");
    let gzip_seconds = started.elapsed().as_secs_f64();
    assert!(gzip.status.success());
    std::fs::remove_file(&uncompressed_file).unwrap();
    println!(
        "encapsulate gen0: {:.1} s for {} MB uncompressed ({:.0} MB/s); gzip -6: {:.1} s ({:.0} MB/s) \
         => {:.2}x gzip's throughput (target >= 1.7x)",
        encapsulate_seconds,
        uncompressed >> 20,
        uncompressed as f64 / encapsulate_seconds / 1e6,
        gzip_seconds,
        uncompressed as f64 / gzip_seconds / 1e6,
        gzip_seconds / encapsulate_seconds
    );
    println!(
        "  size: {} layers, {} MB; gzip -6 {} MB => {:.3}x (target within 5%)",
        manifest.layers.len(),
        compressed >> 20,
        gzip.stdout.len() >> 20,
        compressed as f64 / gzip.stdout.len() as f64
    );

    // Push against skopeo, each to an empty registry.
    let ours = TestRegistry::start().expect("starting docker-registry");
    let theirs = TestRegistry::start().expect("starting docker-registry");
    let started = Instant::now();
    let pushed = arbor(&[
        "image",
        "copy",
        &oci(&images, 0),
        &format!("registry:{}/bench/os:gen0", ours.address()),
        "--tls-verify=false",
    ]);
    let arbor_push = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let status = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(oci(&images, 0))
        .arg(format!("docker://{}/bench/os:gen0", theirs.address()))
        .status()
        .expect("running skopeo");
    let skopeo_push = started.elapsed().as_secs_f64();
    assert!(status.success());
    println!(
        "push gen0 ({} MB): arbor {:.1} s, skopeo copy {:.1} s => {:.2}x skopeo (target <= 1.0x)",
        compressed >> 20,
        arbor_push,
        skopeo_push,
        arbor_push / skopeo_push
    );
    println!("  {}", pushed.lines().find(|line| line.contains("pushed")).unwrap_or("").trim());

    // The weekly updates.
    println!("week  changed  ideal MB  arbor MB  ratio  single-layer MB  layers  push (blobs)");
    let mut totals = (0u64, 0u64, 0u64);
    for week in 1..generations.len() {
        write_repo_file(&treefile_directory, &generations[week]);
        compose(&treefile, &cache, &repo);
        encapsulate(&repo, &oci(&images, week), Some(&oci(&images, week - 1)), &compression);
        let old = read_manifest(&directory, &tag(week - 1));
        let new = read_manifest(&directory, &tag(week));
        let old_digests: BTreeSet<&str> = old.layers.iter().map(|layer| layer.digest.as_str()).collect();
        let download: u64 = new
            .layers
            .iter()
            .filter(|layer| !old_digests.contains(layer.digest.as_str()))
            .map(|layer| layer.size)
            .sum::<u64>()
            + new.config.size;
        let (changed, changed_bytes) = changed_packages(&generations[week - 1], &generations[week]);
        let ideal = changed_bytes + new.layers[0].size + new.config.size;
        let single_layer: u64 = new.layers.iter().map(|layer| layer.size).sum();
        let push = if week == 1 {
            let output = arbor(&[
                "image",
                "copy",
                &oci(&images, week),
                &format!("registry:{}/bench/os:gen1", ours.address()),
                "--tls-verify=false",
            ]);
            output.lines().find(|line| line.contains("pushed")).unwrap_or("").trim().to_string()
        } else {
            String::new()
        };
        println!(
            "{week:4}  {changed:7}  {:8.1}  {:8.1}  {:5.2}  {:15.1}  {:6}  {push}",
            mb(ideal),
            mb(download),
            download as f64 / ideal as f64,
            mb(single_layer),
            new.layers.len()
        );
        totals.0 += ideal;
        totals.1 += download;
        totals.2 += single_layer;
    }
    println!(
        "total over {} weeks: ideal {:.1} MB, arbor {:.1} MB = {:.2}x ideal (target <= 1.5x); \
         single layer {:.1} MB = {:.2}x ideal",
        generations.len() - 1,
        mb(totals.0),
        mb(totals.1),
        totals.1 as f64 / totals.0 as f64,
        mb(totals.2),
        totals.2 as f64 / totals.0 as f64
    );
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn oci(directory: &Path, generation: usize) -> String {
    format!("oci:{}:{}", directory.display(), tag(generation))
}

fn arbor(arguments: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_arbor")).args(arguments).output().expect("running arbor");
    assert!(
        output.status.success(),
        "arbor {arguments:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `arbor image encapsulate` of the benchmark's branch into `output`.
fn encapsulate(repo: &Path, output: &str, previous: Option<&str>, compression: &str) {
    let mut arguments = vec![
        "image",
        "encapsulate",
        "--repo",
        path(repo),
        "bench/x86_64",
        "--output",
        output,
        "--compression",
        compression,
    ];
    if let Some(previous) = previous {
        arguments.extend(["--previous-build", previous]);
    }
    arbor(&arguments);
}

fn read_manifest(directory: &OciDirectory, tag: &str) -> ImageManifest {
    let descriptor = directory.resolve(Some(tag)).unwrap();
    directory.read_manifest(&descriptor).unwrap()
}

/// Writes every layer, decompressed, into one file (what gzip compresses in comparison); returns its size.
fn decompress_layers(
    directory: &OciDirectory,
    manifest: &ImageManifest,
    output: &Path,
    compression: &str,
) -> u64 {
    let mut file = std::fs::File::create(output).unwrap();
    let mut total = 0;
    for layer in &manifest.layers {
        let blob = directory.open_blob(&layer.digest).unwrap();
        total += if compression == "zstd" {
            std::io::copy(&mut zstd::stream::read::Decoder::new(blob).unwrap(), &mut file).unwrap()
        } else {
            std::io::copy(&mut flate2::read::GzDecoder::new(blob), &mut file).unwrap()
        };
    }
    total
}

/// The packages whose version changed (or that appeared) from `old` to `new`, and their compressed RPM
/// sizes. By NEVRA, not by RPM checksum: the corpus rebuilds earlier updates with a new build time in the
/// header but the same payload, which is no change to the tree.
fn changed_packages(old: &Path, new: &Path) -> (usize, u64) {
    let read = |generation: &Path| -> BTreeMap<String, (String, u64)> {
        let build: serde_json::Value =
            serde_json::from_slice(&std::fs::read(generation.join("corpus-build.json")).unwrap()).unwrap();
        build["rpms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rpm| {
                (
                    rpm["name"].as_str().unwrap().to_string(),
                    (rpm["nevra"].as_str().unwrap().to_string(), rpm["size"].as_u64().unwrap()),
                )
            })
            .collect()
    };
    let (old, new) = (read(old), read(new));
    let changed: Vec<u64> = new
        .iter()
        .filter(|(name, (nevra, _))| old.get(*name).map(|(previous, _)| previous) != Some(nevra))
        .map(|(_, (_, size))| *size)
        .collect();
    (changed.len(), changed.iter().sum())
}
