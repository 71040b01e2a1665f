//! Streams and builds: the stream views, composing now (per arch, coalescing), composing a given commit,
//! pagination, filters, one build, retries, and the build-list cache never serving stale pages.

use std::collections::BTreeSet;

use axum::http::Method;
use pipeline::api::{Build, BuildList, BuildsRequested, RequestOutcome, Stream, StreamList};
use pipeline::queue::Outcome;
use pipeline::store::{BuildResult, BuildStatus};
use serde_json::json;

use crate::harness::{ARCHES, STREAM, TestServer, UNFETCHED_STREAM, both_backends, failed, succeeded};

both_backends!(
    composing_now_makes_a_build_per_arch_and_a_second_request_coalesces,
    the_cursor_walks_every_build_once
);

async fn composing_now_makes_a_build_per_arch_and_a_second_request_coalesces(server: TestServer) {
    let path = format!("/api/v1/streams/{STREAM}/builds");
    let first = server.post(&path, &server.tokens.write, None).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let first: BuildsRequested = first.parse();
    let head = server.commits.last().unwrap();
    assert_eq!((first.stream.as_str(), first.commit.as_str()), (STREAM, head.as_str()));
    assert_eq!(first.subject.as_deref(), Some("Change 3"));
    assert_eq!(first.builds.iter().map(|build| build.arch.as_str()).collect::<Vec<_>>(), ARCHES);
    for requested in &first.builds {
        assert_eq!(requested.outcome, RequestOutcome::Created);
        assert_eq!(requested.build.status, BuildStatus::Queued);
        assert_eq!(requested.build.git_commit, *head);
        assert_eq!(requested.build.job_id, Some(requested.job_id));
    }

    // The same request while both are queued joins them.
    let second: BuildsRequested = server.post(&path, &server.tokens.write, Some(json!({}))).await.parse();
    for (first, second) in first.builds.iter().zip(&second.builds) {
        assert_eq!(second.outcome, RequestOutcome::Coalesced);
        assert_eq!((second.build.id, second.job_id), (first.build.id, first.job_id));
    }

    // An older commit for one arch takes over that arch's queued build.
    let older = &server.commits[0];
    let body = json!({"commit": older, "arch": "aarch64", "force": true});
    let third: BuildsRequested = server.post(&path, &server.tokens.write, Some(body)).await.parse();
    assert_eq!(third.builds.len(), 1);
    assert_eq!(third.builds[0].outcome, RequestOutcome::Coalesced);
    assert_eq!(third.builds[0].build.git_commit, *older);
    assert_eq!(third.builds[0].build.id, first.builds[1].build.id);
    assert_eq!(third.subject.as_deref(), Some("Change 1"));
    let job = server.store.get_job(third.builds[0].job_id).await.unwrap().unwrap();
    let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
    assert_eq!((payload["commit"].as_str(), payload["force"].as_bool()), (Some(older.as_str()), Some(true)));

    // A running compose is not joined: the next request makes a new build.
    server.claim("x86_64").await;
    let fourth: BuildsRequested = server.post(&path, &server.tokens.write, None).await.parse();
    assert_eq!(fourth.builds[0].outcome, RequestOutcome::Created);
    assert_ne!(fourth.builds[0].build.id, first.builds[0].build.id);
}

async fn the_cursor_walks_every_build_once(server: TestServer) {
    let path = format!("/api/v1/streams/{STREAM}/builds");
    let mut created = BTreeSet::new();
    for round in 0..7 {
        let requested: BuildsRequested = server.post(&path, &server.tokens.write, None).await.parse();
        created.extend(requested.builds.iter().map(|build| build.build.id));
        for arch in ARCHES {
            server.finish(arch, if round % 3 == 0 { failed() } else { succeeded() }).await;
        }
    }
    assert_eq!(created.len(), 14);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(cursor) => format!("{path}?limit=3&cursor={cursor}"),
            None => format!("{path}?limit=3"),
        };
        let page: BuildList = server.get(&url, &server.tokens.read).await.parse();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|build| build.id));
        pages += 1;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 14, "no build twice: {seen:?}");
    assert!(seen.windows(2).all(|pair| pair[0] > pair[1]), "newest first: {seen:?}");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), created);

    // Filters.
    let failed_x86: BuildList =
        server.get(&format!("{path}?status=failed&arch=x86_64"), &server.tokens.read).await.parse();
    assert_eq!(failed_x86.items.len(), 3);
    assert!(
        failed_x86.items.iter().all(|build| build.status == BuildStatus::Failed && build.arch == "x86_64")
    );
    let none: BuildList =
        server.get(&format!("/api/v1/streams/{UNFETCHED_STREAM}/builds"), &server.tokens.read).await.parse();
    assert_eq!((none.items.len(), none.next_cursor), (0, None));
}

#[tokio::test]
async fn a_given_commit_must_be_in_the_mirror_and_the_branch_fetched() {
    let server = TestServer::start().await;
    let path = format!("/api/v1/streams/{STREAM}/builds");
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    let message = server
        .post(&path, &server.tokens.write, Some(json!({"commit": unknown})))
        .await
        .assert_error(422, "unknown_commit");
    assert!(message.contains(unknown), "{message}");
    let message = server
        .post(&path, &server.tokens.write, Some(json!({"commit": "main"})))
        .await
        .assert_error(422, "invalid_commit");
    assert!(message.contains("40 or 64 lowercase hexadecimal digits"), "{message}");
    let message = server
        .post(&path, &server.tokens.write, Some(json!({"arch": "s390x"})))
        .await
        .assert_error(422, "unknown_arch");
    assert!(message.contains("x86_64, aarch64"), "{message}");
    let message = server
        .post(&format!("/api/v1/streams/{UNFETCHED_STREAM}/builds"), &server.tokens.write, None)
        .await
        .assert_error(409, "branch_not_fetched");
    assert!(message.contains("release/stable"), "{message}");
    server
        .post("/api/v1/streams/nope/builds", &server.tokens.write, None)
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        server.store.list_builds(&Default::default(), None, 10).await.unwrap().items.len(),
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn streams_show_configuration_head_and_builds_per_arch() {
    let server = TestServer::start().await;
    let head = server.commits.last().unwrap().clone();
    server.store.record_stream_head(STREAM, &head, "Change 3").await.unwrap();
    server.store.record_stream_event(STREAM, "force-pushed from aaa to bbb").await.unwrap();
    server.store.record_stream_git_error(UNFETCHED_STREAM, "cannot reach the remote", 0).await.unwrap();
    server.post(&format!("/api/v1/streams/{STREAM}/builds"), &server.tokens.write, None).await;
    let mut result = BuildResult::new(BuildStatus::Succeeded);
    result.image_reference = Some("registry.example.com/os/exampleos@sha256:00".into());
    let claimed = server.claim("x86_64").await;
    server
        .queue
        .complete(&claimed.lease, Outcome::Succeeded { result: json!({}), build: Some(Box::new(result)) })
        .await
        .unwrap();
    // A newer build of x86_64 queued after the good one.
    server
        .post(
            &format!("/api/v1/streams/{STREAM}/builds"),
            &server.tokens.write,
            Some(json!({"arch": "x86_64"})),
        )
        .await;

    let list: StreamList = server.get("/api/v1/streams", &server.tokens.read).await.parse();
    assert_eq!(
        list.items.iter().map(|stream| stream.name.as_str()).collect::<Vec<_>>(),
        [STREAM, UNFETCHED_STREAM]
    );
    let stream = &list.items[0];
    assert_eq!((stream.branch.as_str(), stream.treefile.as_str()), (STREAM, "manifest.yaml"));
    assert_eq!(stream.arches, ARCHES);
    assert_eq!(stream.image, "registry.example.com/os/exampleos");
    let stream_head = stream.head.as_ref().unwrap();
    assert_eq!(
        (stream_head.commit.as_str(), stream_head.subject.as_deref()),
        (head.as_str(), Some("Change 3"))
    );
    assert_eq!(stream.last_event.as_ref().unwrap().message, "force-pushed from aaa to bbb");
    assert_eq!(stream.git_error, None);
    let x86 = &stream.builds[0];
    assert_eq!(x86.arch, "x86_64");
    assert_eq!(x86.latest.as_ref().unwrap().status, BuildStatus::Queued);
    let good = server.store.get_build(x86.last_good_build_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(good.summary.status, BuildStatus::Succeeded);
    let aarch64 = &stream.builds[1];
    assert_eq!(
        (aarch64.latest.as_ref().unwrap().status, aarch64.last_good_build_id),
        (BuildStatus::Queued, None)
    );

    let stable = &list.items[1];
    assert_eq!((stable.branch.as_str(), stable.priority, stable.head.clone()), ("release/stable", 10, None));
    let problem = stable.git_error.as_ref().unwrap();
    assert_eq!((problem.message.as_str(), problem.failures), ("cannot reach the remote", 1));

    let one: Stream = server.get(&format!("/api/v1/streams/{STREAM}"), &server.tokens.read).await.parse();
    assert_eq!(&one, stream);
    let message =
        server.get("/api/v1/streams/nope", &server.tokens.read).await.assert_error(404, "not_found");
    assert!(message.contains("testing-devel, stable"), "{message}");
}

#[tokio::test]
async fn one_build_and_retries() {
    let server = TestServer::start().await;
    let requested: BuildsRequested =
        server.post(&format!("/api/v1/streams/{STREAM}/builds"), &server.tokens.write, None).await.parse();
    server.finish("x86_64", failed()).await;
    server.finish("aarch64", succeeded()).await;
    let failed_id = requested.builds[0].build.id;
    let succeeded_id = requested.builds[1].build.id;

    let build: Build = server.get(&format!("/api/v1/builds/{failed_id}"), &server.tokens.read).await.parse();
    assert_eq!(build.summary.status, BuildStatus::Failed);
    assert_eq!(build.error.as_deref(), Some("the treefile is broken\nline 3: unknown key"));
    assert!(build.summary.finished_at.is_some());
    let raw = server.get(&format!("/api/v1/builds/{failed_id}"), &server.tokens.read).await.json();
    assert!(raw["created_at"].as_str().unwrap().ends_with('Z'), "RFC 3339 UTC: {raw}");
    assert_eq!(raw["phases"], json!([]));
    server.get("/api/v1/builds/999999", &server.tokens.read).await.assert_error(404, "not_found");
    server.get("/api/v1/builds/abc", &server.tokens.read).await.assert_error(400, "invalid_path");

    let retried: BuildsRequested =
        server.post(&format!("/api/v1/builds/{failed_id}/retry"), &server.tokens.write, None).await.parse();
    assert_eq!(retried.builds.len(), 1);
    let new = &retried.builds[0];
    assert_eq!(
        (new.arch.as_str(), new.outcome, new.build.status),
        ("x86_64", RequestOutcome::Created, BuildStatus::Queued)
    );
    assert_ne!(new.build.id, failed_id);
    assert_eq!(new.build.git_commit, build.summary.git_commit);
    let unchanged = server.store.get_build(failed_id).await.unwrap().unwrap();
    assert_eq!(unchanged.summary.status, BuildStatus::Failed, "the failed build stays as it was");

    let message = server
        .post(&format!("/api/v1/builds/{succeeded_id}/retry"), &server.tokens.write, None)
        .await
        .assert_error(409, "not_retryable");
    assert!(message.contains("is succeeded") && message.contains("\"force\": true"), "{message}");
    server
        .post("/api/v1/builds/999999/retry", &server.tokens.write, None)
        .await
        .assert_error(404, "not_found");

    // A retry would move another commit's queued compose to its own commit: refused.
    server.finish("x86_64", failed()).await;
    let older = server.commits[0].clone();
    let other: BuildsRequested = server
        .post(
            &format!("/api/v1/streams/{STREAM}/builds"),
            &server.tokens.write,
            Some(json!({"commit": older, "arch": "x86_64"})),
        )
        .await
        .parse();
    let message = server
        .post(&format!("/api/v1/builds/{}/retry", new.build.id), &server.tokens.write, None)
        .await
        .assert_error(409, "compose_queued");
    assert!(message.contains(&format!("/api/v1/jobs/{}/cancel", other.builds[0].job_id)), "{message}");
}

#[tokio::test]
async fn build_lists_are_never_stale_within_the_process() {
    let server = TestServer::start().await;
    let path = format!("/api/v1/streams/{STREAM}/builds?limit=10");
    let empty: BuildList = server.get(&path, &server.tokens.read).await.parse();
    assert!(empty.items.is_empty());
    // Served from the cache now; every kind of build write must show at once.
    server.post(&format!("/api/v1/streams/{STREAM}/builds"), &server.tokens.write, None).await;
    let statuses = |list: BuildList| {
        list.items.iter().map(|build| (build.arch.clone(), build.status)).collect::<Vec<_>>()
    };
    let queued = statuses(server.get(&path, &server.tokens.read).await.parse());
    assert_eq!(
        queued,
        [("aarch64".to_string(), BuildStatus::Queued), ("x86_64".to_string(), BuildStatus::Queued)]
    );
    let claimed = server.claim("x86_64").await;
    let running = statuses(server.get(&path, &server.tokens.read).await.parse());
    assert_eq!(running[1], ("x86_64".to_string(), BuildStatus::Running));
    server.queue.complete(&claimed.lease, failed()).await.unwrap();
    let ended = statuses(server.get(&path, &server.tokens.read).await.parse());
    assert_eq!(ended[1], ("x86_64".to_string(), BuildStatus::Failed));
    let aarch64_job = server
        .store
        .list_jobs(None, None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|job| job.arch.as_deref() == Some("aarch64"))
        .unwrap();
    server
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{}/cancel", aarch64_job.id),
            Some(&server.tokens.write),
            None,
        )
        .await;
    let cancelled = statuses(server.get(&path, &server.tokens.read).await.parse());
    assert_eq!(cancelled[0], ("aarch64".to_string(), BuildStatus::Cancelled));
}
