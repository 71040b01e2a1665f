//! Composes end to end: a commit built, pushed and recorded; an unrelated change found unchanged; a
//! broken treefile failing at once with file:line; a registry that is down failing transiently and the
//! retry succeeding; a running compose cancelled.

use arbor_testsupport::git::TestFile;
use arbor_testsupport::registry::ProxyFault;
use pipeline::store::{BuildStatus, JobState};

use crate::harness::{STREAM, Service, config_files, treefile};

/// Packages beyond the minimal OS in the cancellation test.
const BULK_PACKAGES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_composed_pushed_and_recorded_and_an_unrelated_change_is_unchanged() {
    let mut service = Service::new(false).await;
    service.start_scheduler();
    service.start_worker("embedded-1");
    let first = service.remote.head(STREAM).unwrap().unwrap();

    let build = service.finished_build(&first).await;
    assert_eq!(build.summary.status, BuildStatus::Succeeded, "{:?}", build.error);
    let summary = &build.summary;
    assert_eq!(summary.git_subject.as_deref(), Some("Start exampleos"));
    assert_eq!(summary.version.as_deref(), Some("42.0"));
    let digest = summary.manifest_digest.clone().unwrap();
    assert_eq!(
        summary.image_reference.as_deref(),
        Some(format!("{}@{digest}", service.stream().image).as_str())
    );
    assert!(summary.ostree_commit.is_some() && summary.inputhash.is_some());
    assert!(summary.download_bytes.unwrap() > 0 && summary.image_bytes.unwrap() > 0);
    let packages = build.packages.clone().unwrap();
    assert_eq!(packages.len(), arbor_testsupport::os_fixture::PACKAGE_NAMES.len());
    assert!(packages.windows(2).all(|pair| pair[0] < pair[1]), "sorted NEVRAs: {packages:?}");
    let phases: Vec<&str> = build.phases.iter().map(|phase| phase.name.as_str()).collect();
    assert_eq!(phases.first(), Some(&"resolving"));
    assert_eq!(phases.last(), Some(&"writing"));
    let layers = build.layers.clone().expect("the image's layers are recorded");
    assert!(layers.len() >= 2, "a commit layer and package layers: {layers:?}");
    assert!(layers.iter().all(|layer| layer.digest.starts_with("sha256:") && layer.size > 0), "{layers:?}");
    assert_eq!(
        layers.iter().map(|layer| layer.size).sum::<i64>(),
        summary.image_bytes.unwrap(),
        "the layers make up the image"
    );
    assert_eq!(service.tag_digest("42.0").await.as_deref(), Some(digest.as_str()));
    assert_eq!(service.tag_digest(STREAM).await.as_deref(), Some(digest.as_str()));
    let job = service.store.get_job(summary.job_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    let log: Vec<String> =
        service.store.read_logs(job.id, 0, 1000).await.unwrap().into_iter().map(|line| line.line).collect();
    for expected in ["Resolved 3 packages", "Importing packages...", "Pushed "] {
        assert!(
            log.iter().any(|line| line.contains(expected)),
            "{expected:?} in the log:\n{}",
            log.join("\n")
        );
    }
    assert!(service.work_directories().is_empty(), "work directories are removed");

    let second =
        service.push(&[("README.md", TestFile::text("exampleos, the example OS\n"))], "Reword the README");
    let unchanged = service.finished_build(&second).await;
    assert_eq!(unchanged.summary.status, BuildStatus::Unchanged, "{:?}", unchanged.error);
    assert_eq!(unchanged.summary.previous_build_id, Some(summary.id));
    assert_eq!(unchanged.summary.manifest_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(unchanged.summary.image_reference, summary.image_reference);
    assert_eq!(unchanged.packages.as_ref(), Some(&packages));
    assert_eq!(unchanged.layers.as_ref(), Some(&layers), "an unchanged build shows its image's layers");
    assert_eq!(unchanged.summary.version.as_deref(), Some("42.0"));
    assert_eq!(service.tag_digest(STREAM).await.as_deref(), Some(digest.as_str()), "nothing was pushed");
    assert_eq!(service.tag_digest("42.1").await, None);
    let stream = service.store.get_stream(STREAM).await.unwrap().unwrap();
    assert_eq!(stream.head_commit.as_deref(), Some(second.as_str()));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_treefile_fails_at_once_with_file_and_line_and_leaves_the_tag_alone() {
    let mut service = Service::new(false).await;
    service.start_scheduler();
    service.start_worker("embedded-1");
    let first = service.remote.head(STREAM).unwrap().unwrap();
    let good = service.finished_build(&first).await;
    assert_eq!(good.summary.status, BuildStatus::Succeeded, "{:?}", good.error);
    let digest = good.summary.manifest_digest.clone().unwrap();

    let broken =
        service.push(&[("manifest.yaml", TestFile::text(&treefile("packges-extra: [x]\n")))], "Break it");
    let failed = service.finished_build(&broken).await;
    assert_eq!(failed.summary.status, BuildStatus::Failed);
    let error = failed.error.clone().unwrap();
    assert!(error.contains("manifest.yaml:"), "the error names file:line: {error}");
    assert!(
        !error.contains(&service.state_path().display().to_string()),
        "paths are the repository's: {error}"
    );
    let job = service.store.get_job(failed.summary.job_id.unwrap()).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1), "a permanent failure is not retried");
    assert_eq!(job.error.as_deref(), Some(error.as_str()));
    assert_eq!(
        service.tag_digest(STREAM).await.as_deref(),
        Some(digest.as_str()),
        "the stream's tag is untouched"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_is_down_fails_the_build_transiently_and_the_retry_succeeds() {
    let mut service = Service::new(true).await;
    let proxy = service.proxy.as_ref().unwrap();
    proxy.add_fault("*", "/v2/", ProxyFault::Status(503), None);
    service.start_scheduler();
    service.start_worker("embedded-1");
    let first = service.remote.head(STREAM).unwrap().unwrap();

    // The failed attempt is recorded on the job, which waits for its retry; the build waits with it.
    let job = service
        .wait_for("the first attempt to fail", || async {
            let builds = service.store.builds_of_commit(STREAM, &first).await.unwrap();
            let job = service.store.get_job(builds.first()?.job_id?).await.unwrap()?;
            (job.state == JobState::Queued && job.error.is_some()).then_some(job)
        })
        .await;
    let error = job.error.clone().unwrap();
    assert!(error.contains("503"), "the error says what the registry answered: {error}");
    assert!(job.run_after > service.store.now(), "the retry waits for its backoff");
    let job_id = job.id;
    assert_eq!(service.store.build_of_job(job_id).await.unwrap().unwrap().status, BuildStatus::Queued);
    service.proxy.as_ref().unwrap().clear_faults();
    let retried = service
        .wait_for("the retry to succeed", || async {
            let job = service.store.get_job(job_id).await.unwrap().unwrap();
            (job.state == JobState::Succeeded).then_some(job)
        })
        .await;
    assert_eq!(retried.attempts, 2, "the first retry succeeds");
    let build = service.store.build_of_job(job_id).await.unwrap().unwrap();
    assert_eq!(build.status, BuildStatus::Succeeded);
    assert_eq!(service.tag_digest(STREAM).await, build.manifest_digest);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_compose_stops_and_pushes_nothing() {
    let mut service = Service::new(false).await;
    service.start_scheduler();
    // Many packages keep the compose busy long enough for the cancel request to reach it (at the next
    // heartbeat, a quarter lease later).
    let bulk: Vec<String> = (0..BULK_PACKAGES).map(|index| format!("bulk-{index}")).collect();
    for name in &bulk {
        let spec = arbor_testsupport::RpmSpec::new(name, "1.0", "1").file(
            &format!("/usr/share/bulk/{name}"),
            "bulk\n",
            0o644,
        );
        service.repository.add_package(&spec).unwrap();
    }
    service.repository.write_metadata().unwrap();
    let treefile_text = treefile("").replace("packages: [", &format!("packages: [{}, ", bulk.join(", ")));
    let busy = service.push(&config_files(&service.repository.url(), &treefile_text), "Add bulk packages");
    // The first commit's queued compose moves to the new one before any worker could take it.
    service
        .wait_for("the scheduler to see the push", || async {
            let builds = service.store.builds_of_commit(STREAM, &busy).await.unwrap();
            (!builds.is_empty()).then_some(())
        })
        .await;
    service.start_worker("embedded-1");
    let job_id = service
        .wait_for("the compose to import packages", || async {
            let builds = service.store.builds_of_commit(STREAM, &busy).await.unwrap();
            let job = service.store.get_job(builds.first()?.job_id?).await.unwrap()?;
            let phase = job.phase.as_deref()?;
            ["downloading", "importing"].contains(&phase).then_some(job.id)
        })
        .await;
    service.queue.request_cancel(job_id).await.unwrap();
    let build = service.finished_build(&busy).await;
    assert_eq!(build.summary.status, BuildStatus::Cancelled);
    let job = service.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    let log: Vec<String> =
        service.store.read_logs(job_id, 0, 1000).await.unwrap().into_iter().map(|line| line.line).collect();
    assert_eq!(service.tag_digest(STREAM).await, None, "nothing was pushed:\n{}", log.join("\n"));
    service
        .wait_for("the work directory to go", || async {
            service.work_directories().is_empty().then_some(())
        })
        .await;
    service.stop().await;
}
