//! Builds: results recorded with the job's completion, the latest and last good build, cursor pagination,
//! and image indexes.

use std::collections::BTreeSet;

use pipeline::StoreError;
use pipeline::queue::Outcome;
use pipeline::store::{BuildFilter, BuildResult, BuildStatus, NewImageIndex, Phase};

use crate::harness::{Harness, both_backends};

both_backends!(
    a_succeeded_compose_records_its_build,
    latest_and_last_good_builds,
    cursor_pagination_is_stable_and_complete,
    image_indexes_are_recorded_per_commit,
);

fn result_with_image(commit: &str) -> BuildResult {
    BuildResult {
        version: Some("42.20231114.0".into()),
        inputhash: Some(format!("inputhash-{commit}")),
        ostree_commit: Some(format!("ostree-{commit}")),
        image_reference: Some(format!("registry.example/os:{commit}")),
        manifest_digest: Some("sha256:0123".into()),
        packages: Some(vec!["bash-5.2.15-1.fc39.x86_64".into(), "kernel-6.5.6-300.fc39.x86_64".into()]),
        package_diff: Some(serde_json::json!({"upgraded": [["kernel", "6.5.5", "6.5.6"]]})),
        download_bytes: Some(123_456),
        image_bytes: Some(987_654_321),
        phases: vec![Phase { name: "resolve".into(), started_at: crate::harness::START, duration_ms: 1200 }],
        ..BuildResult::new(BuildStatus::Succeeded)
    }
}

async fn run_compose(harness: &Harness, stream: &str, arch: &str, commit: &str, outcome: Outcome) -> i64 {
    let created = harness.compose(stream, arch, commit).await;
    let claimed = harness.claim("w_a", &[arch], &["compose"]).await.expect("the compose job");
    assert_eq!(claimed.job.id, created.job_id);
    harness.queue.complete(&claimed.lease, outcome).await.unwrap();
    created.build_id
}

fn success(build: BuildResult) -> Outcome {
    Outcome::Succeeded { result: serde_json::json!({}), build: Some(Box::new(build)) }
}

async fn a_succeeded_compose_records_its_build(harness: Harness) {
    let build_id = run_compose(&harness, "main", "x86_64", "aaa", success(result_with_image("aaa"))).await;
    let build = harness.store.get_build(build_id).await.unwrap().unwrap();
    let expected = result_with_image("aaa");
    assert_eq!(build.summary.status, BuildStatus::Succeeded);
    assert_eq!(build.summary.image_reference, expected.image_reference);
    assert_eq!(build.summary.download_bytes, Some(123_456));
    assert_eq!(build.packages, expected.packages);
    assert_eq!(build.package_diff, expected.package_diff);
    assert_eq!(build.phases, expected.phases);
    assert_eq!(build.summary.finished_at, Some(crate::harness::START));
    assert_eq!(build.error, None);
    assert!(harness.store.get_build(build_id + 1000).await.unwrap().is_none());
}

async fn latest_and_last_good_builds(harness: Harness) {
    assert!(harness.store.latest_build("main", "x86_64").await.unwrap().is_none());
    let good = run_compose(&harness, "main", "x86_64", "aaa", success(result_with_image("aaa"))).await;
    let unchanged_without_image = BuildResult::new(BuildStatus::Unchanged);
    let unchanged = run_compose(&harness, "main", "x86_64", "bbb", success(unchanged_without_image)).await;
    let failed = Outcome::Failed { error: "resolving packages\nno package bash".into(), permanent: true };
    let broken = run_compose(&harness, "main", "x86_64", "ccc", failed).await;
    run_compose(&harness, "main", "aarch64", "ccc", success(result_with_image("ccc"))).await;
    let latest = harness.store.latest_build("main", "x86_64").await.unwrap().unwrap();
    assert_eq!((latest.id, latest.status), (broken, BuildStatus::Failed));
    let broken_build = harness.store.get_build(broken).await.unwrap().unwrap();
    assert_eq!(broken_build.error.as_deref(), Some("resolving packages\nno package bash"));
    let last_good = harness.store.last_good_build("main", "x86_64").await.unwrap().unwrap();
    assert_eq!(last_good.summary.id, good, "an unchanged build without an image is not a base");
    assert_ne!(last_good.summary.id, unchanged);
    let of_commit = harness.store.builds_of_commit("main", "ccc").await.unwrap();
    let arches: BTreeSet<&str> = of_commit.iter().map(|build| build.arch.as_str()).collect();
    assert_eq!(arches, BTreeSet::from(["aarch64", "x86_64"]));
}

async fn cursor_pagination_is_stable_and_complete(harness: Harness) {
    const BUILDS: usize = 230;
    let mut created = Vec::new();
    for number in 0..BUILDS {
        let stream = if number % 3 == 0 { "next" } else { "main" };
        let arch = if number % 2 == 0 { "x86_64" } else { "aarch64" };
        // No dedup key: every build stays.
        let build = pipeline::store::NewBuild {
            stream: stream.into(),
            arch: arch.into(),
            git_commit: format!("commit{number}"),
            git_subject: None,
        };
        let job = pipeline::queue::NewJob::new("compose", serde_json::json!({}));
        created.push(harness.store.create_build(&build, &job).await.unwrap().build_id);
    }
    // All builds, 50 per page, while new builds arrive between pages: each old one exactly once, newest first.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = harness.store.list_builds(&BuildFilter::default(), cursor.as_deref(), 50).await.unwrap();
        seen.extend(page.items.iter().map(|build| build.id));
        pages += 1;
        harness.compose("late", "x86_64", &format!("late{pages}")).await;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected = created.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    assert_eq!(pages, BUILDS.div_ceil(50));
    // Filters combine, and pages of a filter are complete too.
    let filter =
        BuildFilter { stream: Some("main".into()), arch: Some("aarch64".into()), ..BuildFilter::default() };
    let mut filtered = Vec::new();
    let mut cursor = None;
    loop {
        let page = harness.store.list_builds(&filter, cursor.as_deref(), 7).await.unwrap();
        assert!(page.items.iter().all(|build| build.stream == "main" && build.arch == "aarch64"));
        filtered.extend(page.items.iter().map(|build| build.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected_count = (0..BUILDS).filter(|number| number % 3 != 0 && number % 2 == 1).count();
    assert_eq!(filtered.len(), expected_count);
    let queued = BuildFilter {
        status: Some(BuildStatus::Queued),
        git_commit: Some("commit7".into()),
        ..Default::default()
    };
    let page = harness.store.list_builds(&queued, None, 50).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next_cursor, None);
    let none = BuildFilter { status: Some(BuildStatus::Succeeded), ..Default::default() };
    assert!(harness.store.list_builds(&none, None, 50).await.unwrap().items.is_empty());
    match harness.store.list_builds(&BuildFilter::default(), Some("not-a-cursor"), 50).await {
        Err(StoreError::InvalidCursor { cursor }) => assert_eq!(cursor, "not-a-cursor"),
        other => panic!("expected InvalidCursor, got {other:?}"),
    }
}

async fn image_indexes_are_recorded_per_commit(harness: Harness) {
    let index = NewImageIndex {
        stream: "main".into(),
        git_commit: "aaa".into(),
        reference: "registry.example/os:main".into(),
        digest: "sha256:abcd".into(),
        build_ids: vec![1, 2],
    };
    let first = harness.store.record_image_index(&index).await.unwrap();
    let second = harness
        .store
        .record_image_index(&NewImageIndex { digest: "sha256:ef01".into(), ..index })
        .await
        .unwrap();
    assert!(second > first);
    let found = harness.store.get_image_index("main", "aaa").await.unwrap().unwrap();
    assert_eq!((found.id, found.digest.as_str(), found.build_ids), (second, "sha256:ef01", vec![1, 2]));
    assert!(harness.store.get_image_index("main", "bbb").await.unwrap().is_none());
}
