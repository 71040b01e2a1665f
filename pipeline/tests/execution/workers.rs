//! The worker runtime on the queue: a graceful shutdown hands the running job back without spending an
//! attempt; three workers on one PostgreSQL database run thirty jobs exactly once each.

use std::sync::Arc;
use std::time::Duration;

use arbor_testsupport::TestPostgres;
use common::blocking::Cancellation;
use pipeline::git::{Credentials, Mirror};
use pipeline::jobs::NOOP_KIND;
use pipeline::queue::{NewJob, QueueOptions};
use pipeline::store::{JobState, StoreOptions};
use pipeline::worker::{LocalJobSource, Worker};
use pipeline::{Queue, Store};

use crate::harness::{LEASE, Service};

fn noop(duration: Duration) -> NewJob {
    NewJob::new(NOOP_KIND, serde_json::json!({ "duration_ms": duration.as_millis() as u64 }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_hands_the_job_back_and_the_next_worker_completes_it() {
    let mut service = Service::new(false).await;
    let job_id = service.queue.enqueue(&noop(Duration::from_secs(2))).await.unwrap().job_id;
    let stopping = Cancellation::new();
    let first =
        service.start_worker_with(service.local_source(), service.worker_settings("first"), stopping.clone());
    service
        .wait_for("the first worker to run the job", || async {
            let job = service.store.get_job(job_id).await.unwrap()?;
            (job.state == JobState::Running).then_some(())
        })
        .await;
    stopping.cancel();
    tokio::time::timeout(Duration::from_secs(30), first).await.unwrap().unwrap();
    let handed_back = service.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!((handed_back.state, handed_back.attempts), (JobState::Queued, 0), "no attempt spent");
    assert!(handed_back.lease_owner.is_none());

    service.start_worker("second");
    let done = service
        .wait_for("the second worker to complete the job", || async {
            let job = service.store.get_job(job_id).await.unwrap()?;
            (job.state == JobState::Succeeded).then_some(job)
        })
        .await;
    assert_eq!(done.attempts, 1);
    let log: Vec<String> =
        service.store.read_logs(job_id, 0, 100).await.unwrap().into_iter().map(|line| line.line).collect();
    assert!(log.iter().any(|line| line == "Handing the job back to the queue"), "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("Done"));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_postgresql_run_thirty_jobs_exactly_once() {
    const JOBS: usize = 30;
    let postgres = TestPostgres::start().unwrap();
    let url = postgres.create_database("workers").unwrap();
    let state = tempfile::tempdir().unwrap();
    let first = Store::open(&url, StoreOptions::default()).await.unwrap();
    first.migrate().await.unwrap();
    let queue = Queue::new(first.clone(), QueueOptions { lease_duration: LEASE, ..QueueOptions::default() });
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(queue.enqueue(&noop(Duration::from_millis(20))).await.unwrap().job_id);
    }
    let shutdown = Cancellation::new();
    let mut workers = Vec::new();
    for index in 0..3 {
        // Each worker as another process would be: a store of its own on the same database.
        let store = Store::open(&url, StoreOptions::default()).await.unwrap();
        let queue = Queue::new(store, QueueOptions { lease_duration: LEASE, ..QueueOptions::default() });
        let mirror = Mirror::open_or_create(
            &state.path().join(format!("server-{index}")),
            "file:///nowhere.git",
            Credentials::None,
        )
        .await
        .unwrap();
        let source = Arc::new(LocalJobSource::new(queue, Arc::new(mirror), Arc::new(Vec::new())));
        let mut settings = crate::harness::noop_worker_settings(state.path(), &format!("worker-{index}"));
        settings.claim_wait = Duration::from_millis(500);
        workers.push(tokio::spawn(Worker::run(source, settings, shutdown.clone())));
    }
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    loop {
        let mut done = 0;
        for id in &ids {
            if first.get_job(*id).await.unwrap().unwrap().state == JobState::Succeeded {
                done += 1;
            }
        }
        if done == JOBS {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{done} of {JOBS} jobs done");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap();
    }
    let mut owners = std::collections::BTreeSet::new();
    for id in &ids {
        let job = first.get_job(*id).await.unwrap().unwrap();
        assert_eq!(job.attempts, 1, "job {id} ran once");
        let log = first.read_logs(*id, 0, 100).await.unwrap();
        let runs = log.iter().filter(|line| line.line.starts_with("Waiting")).count();
        assert_eq!(runs, 1, "job {id}'s body ran once");
        let result: serde_json::Value = serde_json::from_str(job.result.as_deref().unwrap()).unwrap();
        assert_eq!(result["job_id"], *id);
        let header = &log[0].line;
        owners.insert(header.split(" on worker ").nth(1).unwrap().split(' ').next().unwrap().to_string());
    }
    assert!(owners.len() > 1, "the jobs were shared among the workers: {owners:?}");
}
