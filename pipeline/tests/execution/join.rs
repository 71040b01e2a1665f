//! The join job of a multi-arch stream against a real registry: the per-arch images are pulled, joined
//! into one OCI image index with a platform per image, and the index is pushed as `:<version>` and then
//! `:<stream>`; an image that is gone fails the join and moves no tag.

use arbor_testsupport::TestRegistry;
use arbor_testsupport::registry::{http_request, random_layers, tag_test_image, write_test_image};
use common::blocking::Cancellation;
use image::registry::{RegistryOptions, RegistryReference, push_layout};
use pipeline::jobs::{JobContext, JobError, JoinPayload, LogFields, LogSink, Report, join};
use serde_json::Value;

const REPOSITORY: &str = "exampleos/os";
const STREAM: &str = "testing-devel";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

fn options() -> RegistryOptions {
    RegistryOptions { tls_verify: false, ..RegistryOptions::default() }
}

/// Pushes a small image of `architecture` as `:<tag>`; returns `HOST/REPOSITORY@DIGEST`.
async fn push_image(
    registry: &TestRegistry,
    directory: &std::path::Path,
    architecture: &str,
    seed: u64,
) -> String {
    let layout = directory.join(architecture);
    let image = write_test_image(&layout, &random_layers(seed, &[4096, 8192]), architecture).unwrap();
    tag_test_image(&layout, "build", &image).unwrap();
    let text = format!("{}/{REPOSITORY}:{STREAM}-{architecture}", registry.host());
    let destination = RegistryReference::parse(&text).unwrap();
    push_layout(&layout, Some("build"), &destination, &options()).await.unwrap();
    format!("{}/{REPOSITORY}@{}", registry.host(), image.manifest_digest)
}

fn context(directory: &std::path::Path) -> (JobContext, tokio::sync::mpsc::UnboundedReceiver<Report>) {
    let (log, phase, reports) = LogSink::channel(LogFields::default());
    let context = JobContext {
        job_id: 1,
        build_id: None,
        cancellation: Cancellation::new(),
        log,
        phase,
        work_directory: directory.join("work"),
        cache_directory: directory.join("cache"),
        registry: options(),
        source_date_epoch: None,
    };
    std::fs::create_dir_all(&context.work_directory).unwrap();
    (context, reports)
}

fn manifest(registry: &TestRegistry, tag: &str) -> (u16, Value) {
    let accept = format!("{INDEX_MEDIA_TYPE}, application/vnd.oci.image.manifest.v1+json");
    let response = http_request(
        registry.address(),
        "GET",
        &format!("/v2/{REPOSITORY}/manifests/{tag}"),
        &[("Accept".to_string(), accept)],
    )
    .unwrap();
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

#[tokio::test]
async fn a_join_pushes_an_index_of_every_arch_with_the_stream_tag_last() {
    let registry = TestRegistry::start().unwrap();
    let directory = tempfile::tempdir().unwrap();
    let amd64 = push_image(&registry, directory.path(), "amd64", 1).await;
    let arm64 = push_image(&registry, directory.path(), "arm64", 2).await;
    let payload = JoinPayload {
        stream: STREAM.to_string(),
        commit: "0".repeat(40),
        image: format!("{}/{REPOSITORY}", registry.host()),
        build_ids: vec![1, 2],
        images: vec![amd64.clone(), arm64.clone()],
        tags: vec!["42.1".to_string(), STREAM.to_string()],
    };
    let (context, mut reports) = context(directory.path());
    let joined = join::run(&context, &payload).await.unwrap();
    assert_eq!(joined.tags, ["42.1", STREAM]);
    assert!(joined.image_reference.ends_with(&joined.digest), "{joined:?}");

    for tag in ["42.1", STREAM] {
        let (status, index) = manifest(&registry, tag);
        assert_eq!(status, 200, "the index is tagged :{tag}");
        assert_eq!(index["mediaType"], INDEX_MEDIA_TYPE, "{index:#}");
        let entries = index["manifests"].as_array().unwrap();
        let platforms: Vec<(&str, &str)> = entries
            .iter()
            .map(|entry| {
                (entry["platform"]["architecture"].as_str().unwrap(), entry["digest"].as_str().unwrap())
            })
            .collect();
        let digest = |reference: &str| reference.rsplit_once('@').unwrap().1.to_string();
        assert_eq!(platforms, [("amd64", digest(&amd64).as_str()), ("arm64", digest(&arm64).as_str())]);
    }
    let mut lines = Vec::new();
    let mut phases = Vec::new();
    while let Ok(report) = reports.try_recv() {
        match report {
            Report::Line(line) => lines.push(line.line),
            Report::Phase(phase) => phases.push(phase),
        }
    }
    assert_eq!(phases, ["pulling", "joining", "writing"]);
    assert!(lines.last().unwrap().ends_with(&format!(":{STREAM}")), "the stream's tag moves last: {lines:?}");
}

#[tokio::test]
async fn a_join_of_an_image_that_is_gone_fails_and_moves_no_tag() {
    let registry = TestRegistry::start().unwrap();
    let directory = tempfile::tempdir().unwrap();
    let amd64 = push_image(&registry, directory.path(), "amd64", 3).await;
    let missing = format!("{}/{REPOSITORY}@sha256:{}", registry.host(), "e".repeat(64));
    let payload = JoinPayload {
        stream: STREAM.to_string(),
        commit: "0".repeat(40),
        image: format!("{}/{REPOSITORY}", registry.host()),
        build_ids: vec![1, 2],
        images: vec![amd64, missing.clone()],
        tags: vec!["42.2".to_string(), STREAM.to_string()],
    };
    let (context, _reports) = context(directory.path());
    let error = join::run(&context, &payload).await.unwrap_err();
    let JobError::Failed { chain: message, .. } = &error else { panic!("a failure, not {error:?}") };
    assert!(message.contains(&"e".repeat(12)), "the error names the image: {message}");
    assert_eq!(manifest(&registry, "42.2").0, 404);
    assert_eq!(manifest(&registry, STREAM).0, 404);
}
