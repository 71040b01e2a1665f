//! Endings that race: completions and releases against cancellations (an ending decided on the job's row
//! is guarded by what it read), and stale completions, which must leave the build alone.

use std::time::Duration;

use pipeline::queue::Outcome;
use pipeline::store::{BuildResult, BuildStatus, JobState};

use crate::harness::{Harness, LEASE, both_backends};

both_backends!(
    a_job_asked_to_cancel_is_cancelled_by_a_transient_failure_and_by_a_release,
    failures_and_releases_racing_cancellations_end_cancelled,
    a_stale_completion_leaves_the_build_alone,
);

/// Jobs raced: enough for some cancellations to land between an ending's read and its update.
const RACED_JOBS: usize = 40;

fn transient_failure() -> Outcome {
    Outcome::Failed { error: "pushing the image\nregistry answered 503".to_string(), permanent: false }
}

async fn a_job_asked_to_cancel_is_cancelled_by_a_transient_failure_and_by_a_release(harness: Harness) {
    for release in [false, true] {
        let created = harness.compose("main", "x86_64", if release { "bbb" } else { "aaa" }).await;
        let claimed = harness.claim("w_a", &["x86_64"], &["compose"]).await.unwrap();
        harness.queue.request_cancel(created.job_id).await.unwrap();
        if release {
            assert_eq!(harness.queue.release(&claimed.lease).await.unwrap(), JobState::Cancelled);
        } else {
            let completed = harness.queue.complete(&claimed.lease, transient_failure()).await.unwrap();
            assert_eq!(completed, pipeline::queue::Completed::Finished(JobState::Cancelled));
        }
        let job = harness.store.get_job(created.job_id).await.unwrap().unwrap();
        assert_eq!((job.state, job.lease_owner), (JobState::Cancelled, None));
        let build = harness.store.get_build(created.build_id).await.unwrap().unwrap();
        assert_eq!(build.summary.status, BuildStatus::Cancelled);
        assert_eq!(build.summary.finished_at, Some(crate::harness::START));
    }
}

async fn failures_and_releases_racing_cancellations_end_cancelled(harness: Harness) {
    let mut created = Vec::new();
    for number in 0..RACED_JOBS {
        created.push(harness.compose(&format!("stream{number}"), "x86_64", "aaa").await);
    }
    // The cancellations come from another store, as from another process.
    let cancelling = pipeline::Queue::new(harness.another_store().await, *harness.queue.options());
    let mut leases = Vec::new();
    for build in &created {
        let claimed = harness.claim("w_a", &["x86_64"], &["compose"]).await.unwrap();
        assert_eq!(claimed.job.id, build.job_id);
        leases.push(claimed);
    }
    let mut races = Vec::new();
    for (number, claimed) in leases.into_iter().enumerate() {
        let canceller = cancelling.clone();
        let queue = harness.queue.clone();
        let job_id = claimed.job.id;
        races.push(tokio::spawn(async move {
            let cancel = tokio::spawn(async move { canceller.request_cancel(job_id).await.unwrap() });
            if number % 2 == 0 {
                queue.complete(&claimed.lease, transient_failure()).await.unwrap();
            } else {
                queue.release(&claimed.lease).await.unwrap();
            }
            cancel.await.unwrap();
        }));
    }
    for race in races {
        race.await.unwrap();
    }
    // Whichever came first, the job ends cancelled: cancelled by the ending that saw the request, or
    // cancelled at once by the request that found it queued again. Never queued with a request pending.
    for build in created {
        let job = harness.store.get_job(build.job_id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Cancelled, "job {}", build.job_id);
        let status = harness.store.get_build(build.build_id).await.unwrap().unwrap().summary.status;
        assert_eq!(status, BuildStatus::Cancelled, "build {}", build.build_id);
    }
}

async fn a_stale_completion_leaves_the_build_alone(harness: Harness) {
    let created = harness.compose("main", "x86_64", "aaa").await;
    let stale = harness.claim("w_stale", &["x86_64"], &["compose"]).await.unwrap();
    harness.clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(harness.queue.reap().await.unwrap().requeued, 1);
    let requeued = harness.store.get_job(created.job_id).await.unwrap().unwrap();
    harness.clock.set(requeued.run_after);
    let fresh = harness.claim("w_fresh", &["x86_64"], &["compose"]).await.unwrap();
    let result = BuildResult {
        image_reference: Some("registry.example/os:stale".into()),
        packages: Some(vec!["bash-5.2.15-1.fc39.x86_64".into()]),
        ..BuildResult::new(BuildStatus::Succeeded)
    };
    let outcomes = [
        Outcome::Succeeded { result: serde_json::json!({}), build: Some(Box::new(result)) },
        Outcome::Succeeded { result: serde_json::json!({}), build: None },
        Outcome::Cancelled,
        Outcome::Failed { error: "stale".into(), permanent: true },
        transient_failure(),
    ];
    for outcome in outcomes {
        assert!(harness.queue.complete(&stale.lease, outcome).await.is_err());
    }
    assert!(harness.queue.release(&stale.lease).await.is_err());
    let build = harness.store.get_build(created.build_id).await.unwrap().unwrap();
    assert_eq!(
        (build.summary.status, build.summary.image_reference, build.packages),
        (BuildStatus::Running, None, None)
    );
    assert_eq!(build.error, None);
    let job = harness.store.get_job(created.job_id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.lease_owner.as_deref(), job.attempts),
        (JobState::Running, Some("w_fresh"), 2)
    );
    harness.queue.complete(&fresh.lease, Outcome::Cancelled).await.unwrap();
    let build = harness.store.get_build(created.build_id).await.unwrap().unwrap();
    assert_eq!(build.summary.status, BuildStatus::Cancelled);
}
