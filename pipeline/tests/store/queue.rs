//! The queue: dedup and coalescing, routing, priority, concurrent claims, heartbeats, fencing, retries,
//! release, the reaper, cancellation, logs and the wake-up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pipeline::StoreError;
use pipeline::queue::{
    CancelOutcome, ClaimRequest, Completed, Dedup, EnqueueOutcome, NewJob, OnDuplicate, Outcome,
    RETRY_BACKOFF_BASE, Wake,
};
use pipeline::store::{BuildResult, BuildStatus, JobState, NewLogLine};

use crate::harness::{Harness, LEASE, both_backends, claim_from};

both_backends!(
    dedup_skips_a_queued_duplicate,
    coalescing_moves_the_queued_build_to_the_newer_commit,
    claims_route_by_arch_and_kind,
    claims_follow_priority_then_age,
    concurrent_claimers_never_share_a_job,
    heartbeats_extend_the_lease_and_carry_cancellation,
    a_stale_worker_loses_its_lease_everywhere,
    transient_failures_back_off_until_attempts_run_out,
    a_permanent_failure_fails_at_once,
    release_hands_back_without_spending_an_attempt,
    reaping_is_idempotent,
    cancelling_a_queued_job_ends_it_at_once,
    logs_are_fenced_numbered_across_attempts_and_resumable,
    an_enqueue_wakes_a_waiting_worker,
    three_workers_run_thirty_jobs_once_each,
);

fn job(kind: &str) -> NewJob {
    NewJob::new(kind, serde_json::json!({}))
}

fn lines(texts: &[&str]) -> Vec<NewLogLine> {
    texts.iter().map(|text| NewLogLine { time: crate::harness::START, line: text.to_string() }).collect()
}

fn failure(permanent: bool) -> Outcome {
    Outcome::Failed { error: "pushing the image\nregistry answered 503".to_string(), permanent }
}

fn succeeded() -> Outcome {
    Outcome::Succeeded { result: serde_json::json!({"ok": true}), build: None }
}

async fn dedup_skips_a_queued_duplicate(harness: Harness) {
    let dedup = Some(Dedup { key: "lockfile-bump:main".to_string(), on_duplicate: OnDuplicate::Skip });
    let first = harness.queue.enqueue(&NewJob { dedup: dedup.clone(), ..job("bump") }).await.unwrap();
    let payload = serde_json::json!({"second": true});
    let second = harness
        .queue
        .enqueue(&NewJob { dedup: dedup.clone(), ..NewJob::new("bump", payload) })
        .await
        .unwrap();
    assert_eq!(first.outcome, EnqueueOutcome::Created);
    assert_eq!(second.outcome, EnqueueOutcome::Deduplicated);
    assert_eq!(second.job_id, first.job_id);
    assert_eq!(harness.store.get_job(first.job_id).await.unwrap().unwrap().payload, "{}");
    // Once the job runs, the key is free again.
    harness.claim("w_a", &[], &["bump"]).await.unwrap();
    let third = harness.queue.enqueue(&NewJob { dedup, ..job("bump") }).await.unwrap();
    assert_eq!(third.outcome, EnqueueOutcome::Created);
    assert_ne!(third.job_id, first.job_id);
}

async fn coalescing_moves_the_queued_build_to_the_newer_commit(harness: Harness) {
    let first = harness.compose("main", "x86_64", "aaa").await;
    let second = harness.compose("main", "x86_64", "bbb").await;
    let other_arch = harness.compose("main", "aarch64", "bbb").await;
    assert_eq!(first.outcome, EnqueueOutcome::Created);
    assert_eq!(
        (second.outcome, second.job_id, second.build_id),
        (EnqueueOutcome::Coalesced, first.job_id, first.build_id)
    );
    assert_eq!(other_arch.outcome, EnqueueOutcome::Created);
    let build = harness.store.get_build(first.build_id).await.unwrap().unwrap();
    assert_eq!(build.summary.git_commit, "bbb");
    assert_eq!(build.summary.git_subject.as_deref(), Some("subject of bbb"));
    let job = harness.store.get_job(first.job_id).await.unwrap().unwrap();
    assert!(job.payload.contains("\"bbb\""), "{}", job.payload);
    // A running compose does not absorb newer commits: they get a build of their own.
    let claimed = harness.claim("w_a", &["x86_64"], &["compose"]).await.unwrap();
    assert_eq!(claimed.job.id, first.job_id);
    assert_eq!(
        harness.store.get_build(first.build_id).await.unwrap().unwrap().summary.status,
        BuildStatus::Running
    );
    let third = harness.compose("main", "x86_64", "ccc").await;
    assert_eq!(third.outcome, EnqueueOutcome::Created);
    assert_ne!(third.build_id, first.build_id);
}

async fn claims_route_by_arch_and_kind(harness: Harness) {
    let aarch64 =
        harness.queue.enqueue(&NewJob { arch: Some("aarch64".into()), ..job("compose") }).await.unwrap();
    let any = harness.queue.enqueue(&job("join")).await.unwrap();
    let x86 = harness.queue.enqueue(&NewJob { arch: Some("x86_64".into()), ..job("compose") }).await.unwrap();
    assert!(harness.claim("w_x", &["x86_64"], &["sign"]).await.is_none(), "no job of that kind");
    assert!(harness.claim("w_p", &["ppc64le"], &["compose"]).await.is_none(), "no job for that arch");
    let claimed = harness.claim("w_x", &["x86_64"], &["compose"]).await.unwrap();
    assert_eq!(claimed.job.id, x86.job_id);
    // A job of no arch goes to any worker that runs its kind.
    let claimed = harness.claim("w_p", &["ppc64le"], &["compose", "join"]).await.unwrap();
    assert_eq!(claimed.job.id, any.job_id);
    let claimed = harness.claim("w_a", &["s390x", "aarch64"], &["compose"]).await.unwrap();
    assert_eq!(claimed.job.id, aarch64.job_id);
    assert_eq!(claimed.job.lease_owner.as_deref(), Some("w_a"));
    assert_eq!(claimed.job.attempts, 1);
}

async fn claims_follow_priority_then_age(harness: Harness) {
    let low = harness.queue.enqueue(&job("compose")).await.unwrap();
    let high = harness.queue.enqueue(&NewJob { priority: 10, ..job("compose") }).await.unwrap();
    let low_later = harness.queue.enqueue(&job("compose")).await.unwrap();
    let high_later = harness.queue.enqueue(&NewJob { priority: 10, ..job("compose") }).await.unwrap();
    let mut order = Vec::new();
    while let Some(claimed) = harness.claim("w_a", &[], &["compose"]).await {
        order.push(claimed.job.id);
    }
    assert_eq!(order, [high.job_id, high_later.job_id, low.job_id, low_later.job_id]);
}

async fn concurrent_claimers_never_share_a_job(harness: Harness) {
    const JOBS: usize = 40;
    const CLAIMERS: usize = 4;
    for _ in 0..JOBS {
        harness.queue.enqueue(&job("compose")).await.unwrap();
    }
    let mut tasks = Vec::new();
    for claimer in 0..CLAIMERS {
        // Each claimer has its own store, as separate processes would.
        let queue = pipeline::Queue::new(harness.another_store().await, *harness.queue.options());
        tasks.push(tokio::spawn(async move {
            let worker = format!("w_{claimer}");
            let mut claimed = Vec::new();
            while let Some(job) = claim_from(&queue, &worker, &[], &["compose"]).await {
                claimed.push(job.job.id);
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), JOBS, "every job claimed once: {all:?}");
    assert_eq!(distinct.len(), JOBS);
}

async fn heartbeats_extend_the_lease_and_carry_cancellation(harness: Harness) {
    let enqueued = harness.queue.enqueue(&job("compose")).await.unwrap();
    let claimed = harness.claim("w_a", &[], &["compose"]).await.unwrap();
    let expires = claimed.job.lease_expires.unwrap();
    harness.clock.advance(LEASE / 2);
    let answer = harness.queue.heartbeat(&claimed.lease).await.unwrap();
    assert!(!answer.cancel_requested);
    assert_eq!(answer.lease_expires, expires + (LEASE / 2).as_millis() as i64);
    // Past the first expiry but inside the extended lease, the job is not reaped.
    harness.clock.advance(LEASE * 3 / 4);
    assert_eq!(harness.queue.reap().await.unwrap().requeued, 0);
    assert_eq!(harness.queue.request_cancel(enqueued.job_id).await.unwrap(), CancelOutcome::Requested);
    assert!(harness.queue.heartbeat(&claimed.lease).await.unwrap().cancel_requested);
    let completed = harness.queue.complete(&claimed.lease, Outcome::Cancelled).await.unwrap();
    assert_eq!(completed, Completed::Finished(JobState::Cancelled));
    assert_eq!(
        harness.queue.request_cancel(enqueued.job_id).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobState::Cancelled)
    );
    assert_eq!(harness.queue.request_cancel(999_999).await.unwrap(), CancelOutcome::NotFound);
}

fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T, StoreError>, job_id: i64) {
    match result {
        Err(StoreError::LeaseLost { job_id: lost }) => assert_eq!(lost, job_id),
        other => panic!("expected LeaseLost for job {job_id}, got {other:?}"),
    }
}

async fn a_stale_worker_loses_its_lease_everywhere(harness: Harness) {
    let created = harness.compose("main", "x86_64", "aaa").await;
    let stale = harness.claim("w_stale", &["x86_64"], &["compose"]).await.unwrap();
    harness.queue.append_logs(&stale.lease, &lines(&["resolving"])).await.unwrap();
    // The worker stops heartbeating: past its lease it can record nothing, even before the reaper ran.
    harness.clock.advance(LEASE + Duration::from_secs(1));
    let job_id = created.job_id;
    assert_lease_lost(harness.queue.heartbeat(&stale.lease).await, job_id);
    assert_lease_lost(harness.queue.append_logs(&stale.lease, &lines(&["late"])).await, job_id);
    assert_lease_lost(harness.queue.set_phase(&stale.lease, "late").await, job_id);
    assert_lease_lost(harness.queue.complete(&stale.lease, succeeded()).await, job_id);
    let report = harness.queue.reap().await.unwrap();
    assert_eq!(report.requeued, 1);
    let requeued = harness.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(requeued.state, JobState::Queued);
    assert!(requeued.error.as_deref().unwrap().contains("w_stale"), "{:?}", requeued.error);
    assert_eq!(
        harness.store.get_build(created.build_id).await.unwrap().unwrap().summary.status,
        BuildStatus::Queued
    );
    harness.clock.set(requeued.run_after);
    let fresh = harness.claim("w_fresh", &["x86_64"], &["compose"]).await.unwrap();
    assert_eq!(fresh.job.id, job_id);
    assert_eq!(fresh.job.attempts, 2);
    // The stale worker wakes up and reports: rejected, and nothing changes.
    assert_lease_lost(harness.queue.heartbeat(&stale.lease).await, job_id);
    assert_lease_lost(harness.queue.append_logs(&stale.lease, &lines(&["zombie"])).await, job_id);
    assert_lease_lost(harness.queue.complete(&stale.lease, failure(true)).await, job_id);
    harness.queue.heartbeat(&fresh.lease).await.unwrap();
    let completed = harness.queue.complete(&fresh.lease, succeeded()).await.unwrap();
    assert_eq!(completed, Completed::Finished(JobState::Succeeded));
    let log: Vec<String> =
        harness.store.read_logs(job_id, 0, 100).await.unwrap().into_iter().map(|line| line.line).collect();
    assert_eq!(log, ["resolving"]);
    assert_eq!(
        harness.store.get_build(created.build_id).await.unwrap().unwrap().summary.status,
        BuildStatus::Succeeded
    );
    // Completing twice is a lost lease too: the token was cleared.
    assert_lease_lost(harness.queue.complete(&fresh.lease, succeeded()).await, job_id);
}

async fn transient_failures_back_off_until_attempts_run_out(harness: Harness) {
    let created = harness.compose("main", "x86_64", "aaa").await;
    let mut run_afters = Vec::new();
    for attempt in 1..=3 {
        let claimed = harness.claim("w_a", &["x86_64"], &["compose"]).await.expect("claimable");
        assert_eq!(claimed.job.attempts, attempt);
        let now = harness.clock_now();
        match harness.queue.complete(&claimed.lease, failure(false)).await.unwrap() {
            Completed::Retrying { run_after } => {
                let base = RETRY_BACKOFF_BASE.as_millis() as i64 * (1 << (attempt - 1));
                assert!(
                    (now + base..=now + base + base / 4).contains(&run_after),
                    "attempt {attempt}: {run_after}"
                );
                // Not before its time; a worker that found nothing knows when to look again.
                assert!(harness.claim("w_a", &["x86_64"], &["compose"]).await.is_none());
                let arches = ["x86_64".to_string()];
                let kinds = ["compose".to_string()];
                let request = ClaimRequest { worker_id: "w_a", arches: &arches, kinds: &kinds };
                assert_eq!(harness.queue.next_due(request).await.unwrap(), Some(run_after));
                let other_arch = ["aarch64".to_string()];
                let request = ClaimRequest { worker_id: "w_b", arches: &other_arch, kinds: &kinds };
                assert_eq!(harness.queue.next_due(request).await.unwrap(), None, "not for other arches");
                harness.clock.set(run_after);
                run_afters.push(run_after);
            }
            Completed::Finished(state) => {
                assert_eq!((attempt, state), (3, JobState::Failed));
            }
        }
    }
    assert_eq!(run_afters.len(), 2);
    let job = harness.store.get_job(created.job_id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Failed, 3));
    let build = harness.store.get_build(created.build_id).await.unwrap().unwrap();
    assert_eq!(build.summary.status, BuildStatus::Failed);
    assert_eq!(build.error.as_deref(), Some("pushing the image\nregistry answered 503"));
}

async fn a_permanent_failure_fails_at_once(harness: Harness) {
    let created = harness.compose("main", "x86_64", "aaa").await;
    let claimed = harness.claim("w_a", &["x86_64"], &["compose"]).await.unwrap();
    let completed = harness.queue.complete(&claimed.lease, failure(true)).await.unwrap();
    assert_eq!(completed, Completed::Finished(JobState::Failed));
    let job = harness.store.get_job(created.job_id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts, job.finished_at), (JobState::Failed, 1, Some(harness.clock_now())));
    assert_eq!(
        harness.store.get_build(created.build_id).await.unwrap().unwrap().summary.status,
        BuildStatus::Failed
    );
}

async fn release_hands_back_without_spending_an_attempt(harness: Harness) {
    let created = harness.compose("main", "x86_64", "aaa").await;
    let claimed = harness.claim("w_a", &["x86_64"], &["compose"]).await.unwrap();
    assert_eq!(harness.queue.release(&claimed.lease).await.unwrap(), JobState::Queued);
    let job = harness.store.get_job(created.job_id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts, job.lease_owner), (JobState::Queued, 0, None));
    assert_eq!(
        harness.store.get_build(created.build_id).await.unwrap().unwrap().summary.status,
        BuildStatus::Queued
    );
    assert_lease_lost(harness.queue.heartbeat(&claimed.lease).await, created.job_id);
    // Runnable at once, by another worker.
    let again = harness.claim("w_b", &["x86_64"], &["compose"]).await.unwrap();
    assert_eq!((again.job.id, again.job.attempts), (created.job_id, 1));
}

async fn reaping_is_idempotent(harness: Harness) {
    let once = harness.queue.enqueue(&NewJob { max_attempts: 1, ..job("compose") }).await.unwrap();
    let twice = harness.queue.enqueue(&job("compose")).await.unwrap();
    harness.claim("w_dead", &[], &["compose"]).await.unwrap();
    harness.claim("w_dead", &[], &["compose"]).await.unwrap();
    assert_eq!(harness.queue.reap().await.unwrap(), Default::default(), "nothing expired yet");
    harness.clock.advance(LEASE + Duration::from_millis(1));
    let first = harness.queue.reap().await.unwrap();
    assert_eq!((first.requeued, first.failed, first.cancelled), (1, 1, 0));
    let second = harness.queue.reap().await.unwrap();
    assert_eq!(second, Default::default());
    // Another process's reaper finds nothing either.
    let other = pipeline::Queue::new(harness.another_store().await, *harness.queue.options());
    assert_eq!(other.reap().await.unwrap(), Default::default());
    assert_eq!(harness.store.get_job(once.job_id).await.unwrap().unwrap().state, JobState::Failed);
    let requeued = harness.store.get_job(twice.job_id).await.unwrap().unwrap();
    assert_eq!(requeued.state, JobState::Queued);
    // Its worker died, which is not the job's fault: another worker may take it at once.
    let retaken = harness.claim("w_alive", &[], &["compose"]).await.expect("claimable at once");
    assert_eq!((retaken.job.id, retaken.job.attempts), (twice.job_id, 2));
}

async fn cancelling_a_queued_job_ends_it_at_once(harness: Harness) {
    let created = harness.compose("main", "x86_64", "aaa").await;
    assert_eq!(harness.queue.request_cancel(created.job_id).await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(harness.store.get_job(created.job_id).await.unwrap().unwrap().state, JobState::Cancelled);
    assert_eq!(
        harness.store.get_build(created.build_id).await.unwrap().unwrap().summary.status,
        BuildStatus::Cancelled
    );
    assert!(harness.claim("w_a", &["x86_64"], &["compose"]).await.is_none());
    // A running job asked to cancel whose worker dies ends cancelled, not requeued.
    let running = harness.compose("main", "x86_64", "bbb").await;
    harness.claim("w_a", &["x86_64"], &["compose"]).await.unwrap();
    assert_eq!(harness.queue.request_cancel(running.job_id).await.unwrap(), CancelOutcome::Requested);
    harness.clock.advance(LEASE * 2);
    assert_eq!(harness.queue.reap().await.unwrap().cancelled, 1);
    assert_eq!(
        harness.store.get_build(running.build_id).await.unwrap().unwrap().summary.status,
        BuildStatus::Cancelled
    );
}

async fn logs_are_fenced_numbered_across_attempts_and_resumable(harness: Harness) {
    let enqueued = harness.queue.enqueue(&job("compose")).await.unwrap();
    let first = harness.claim("w_a", &[], &["compose"]).await.unwrap();
    assert_eq!(harness.queue.append_logs(&first.lease, &lines(&["one", "two"])).await.unwrap(), 2);
    assert_eq!(harness.queue.append_logs(&first.lease, &[]).await.unwrap(), 2);
    harness.queue.set_phase(&first.lease, "downloading").await.unwrap();
    assert_eq!(
        harness.store.get_job(enqueued.job_id).await.unwrap().unwrap().phase.as_deref(),
        Some("downloading")
    );
    harness.queue.complete(&first.lease, failure(false)).await.unwrap();
    harness.clock.advance(Duration::from_secs(3600));
    let second = harness.claim("w_b", &[], &["compose"]).await.unwrap();
    assert_eq!(second.job.phase, None, "a new attempt starts without a phase");
    let many: Vec<String> = (0..2500).map(|number| format!("line {number}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(harness.queue.append_logs(&second.lease, &lines(&many)).await.unwrap(), 2502);
    let all = harness.store.read_logs(enqueued.job_id, 0, 10_000).await.unwrap();
    assert_eq!(all.len(), 2502);
    assert!(all.iter().zip(1..).all(|(line, seq)| line.seq == seq), "numbered 1, 2, 3...");
    // A reconnecting reader (SSE Last-Event-ID) resumes after the last line it saw.
    let resumed = harness.store.read_logs(enqueued.job_id, 2, 3).await.unwrap();
    let texts: Vec<&str> = resumed.iter().map(|line| line.line.as_str()).collect();
    assert_eq!(texts, ["line 0", "line 1", "line 2"]);
    assert_eq!(resumed[0].seq, 3);
}

async fn an_enqueue_wakes_a_waiting_worker(harness: Harness) {
    // With nothing enqueued, the wait times out. (Later, a wake-up may come twice for one enqueue: once
    // in-process, once from NOTIFY; waking for nothing is harmless.)
    let mut waiter = harness.queue.waiter();
    assert_eq!(waiter.wait_for_work(Duration::from_millis(20)).await, Wake::TimedOut);
    assert!(harness.claim("w_a", &[], &["compose"]).await.is_none());
    let queue = harness.queue.clone();
    let enqueuer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        queue.enqueue(&job("compose")).await.unwrap()
    });
    // Far longer than the test takes: a wake-up that did not come shows as a timeout.
    assert_eq!(waiter.wait_for_work(Duration::from_secs(60)).await, Wake::Notified);
    let enqueued = enqueuer.await.unwrap();
    assert_eq!(harness.claim("w_a", &[], &["compose"]).await.unwrap().job.id, enqueued.job_id);
    // An enqueue between "found nothing" and "wait" is not lost.
    let mut waiter = harness.queue.waiter();
    harness.queue.enqueue(&job("compose")).await.unwrap();
    assert_eq!(waiter.wait_for_work(Duration::from_secs(60)).await, Wake::Notified);
}

async fn three_workers_run_thirty_jobs_once_each(harness: Harness) {
    const JOBS: usize = 30;
    const WORKERS: usize = 3;
    let mut enqueued = BTreeSet::new();
    for number in 0..JOBS {
        let created = harness.compose(&format!("stream{number}"), "x86_64", "aaa").await;
        enqueued.insert(created.job_id);
    }
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let queue = pipeline::Queue::new(harness.another_store().await, *harness.queue.options());
        tasks.push(tokio::spawn(async move {
            let name = format!("w_worker{worker}");
            let mut ran = Vec::new();
            let mut waiter = queue.waiter();
            loop {
                match claim_from(&queue, &name, &["x86_64"], &["compose"]).await {
                    Some(claimed) => {
                        queue.append_logs(&claimed.lease, &lines(&["composing"])).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        queue.heartbeat(&claimed.lease).await.unwrap();
                        let build = BuildResult::new(BuildStatus::Succeeded);
                        let outcome = Outcome::Succeeded {
                            result: serde_json::json!({}),
                            build: Some(Box::new(build)),
                        };
                        queue.complete(&claimed.lease, outcome).await.unwrap();
                        ran.push(claimed.job.id);
                    }
                    None => {
                        if waiter.wait_for_work(Duration::from_millis(100)).await == Wake::TimedOut {
                            return ran;
                        }
                    }
                }
            }
        }));
    }
    let mut runs: BTreeMap<i64, usize> = BTreeMap::new();
    for task in tasks {
        for job_id in task.await.unwrap() {
            *runs.entry(job_id).or_default() += 1;
        }
    }
    assert_eq!(runs.keys().copied().collect::<BTreeSet<_>>(), enqueued);
    assert!(runs.values().all(|count| *count == 1), "{runs:?}");
    for job_id in enqueued {
        let job = harness.store.get_job(job_id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts, job.log_lines), (JobState::Succeeded, 1, 1));
    }
}

impl Harness {
    fn clock_now(&self) -> i64 {
        use pipeline::Clock;
        self.clock.now()
    }
}
