//! Workers: registration, heartbeats and the job each runs.

use std::time::Duration;

use pipeline::store::{NewWorker, WorkerKind};

use crate::harness::{Harness, START, both_backends};

both_backends!(workers_register_heartbeat_and_show_their_job);

async fn workers_register_heartbeat_and_show_their_job(harness: Harness) {
    let store = &harness.store;
    let new = NewWorker {
        name: "builder-1".into(),
        arches: vec!["x86_64".into(), "aarch64".into()],
        kind: WorkerKind::Remote,
        version: "0.1.0".into(),
        token_id: None,
    };
    let first = store.register_worker(&new).await.unwrap();
    let second = store
        .register_worker(&NewWorker { name: "embedded".into(), kind: WorkerKind::Embedded, ..new })
        .await
        .unwrap();
    assert!(first.id.starts_with("w_") && first.id.len() == 18, "{}", first.id);
    assert_ne!(first.id, second.id);
    harness.clock.advance(Duration::from_secs(10));
    assert!(store.touch_worker(&first.id).await.unwrap());
    assert!(!store.touch_worker("w_unknown").await.unwrap());
    assert_eq!(store.worker_name(&first.id).await.unwrap().as_deref(), Some("builder-1"));
    assert_eq!(store.worker_name("w_unknown").await.unwrap(), None);
    let job =
        harness.queue.enqueue(&pipeline::queue::NewJob::new("compose", serde_json::json!({}))).await.unwrap();
    let claimed = harness.claim(&second.id, &[], &["compose"]).await.unwrap();
    assert_eq!(claimed.job.id, job.job_id);
    assert!(store.set_worker_job(&second.id, Some(job.job_id)).await.unwrap());
    let workers = store.list_workers().await.unwrap();
    assert_eq!(workers.len(), 2);
    let listed_first = workers.iter().find(|worker| worker.id == first.id).unwrap();
    assert_eq!((listed_first.last_seen, listed_first.registered_at), (START + 10_000, START));
    assert_eq!(listed_first.arches, ["x86_64", "aarch64"]);
    let listed_second = workers.iter().find(|worker| worker.id == second.id).unwrap();
    assert_eq!((listed_second.kind, listed_second.current_job_id), (WorkerKind::Embedded, Some(job.job_id)));
    // Once the job ends the worker runs nothing, though it did not say so.
    let outcome = pipeline::queue::Outcome::Succeeded { result: serde_json::json!({}), build: None };
    harness.queue.complete(&claimed.lease, outcome).await.unwrap();
    let workers = store.list_workers().await.unwrap();
    let listed_second = workers.iter().find(|worker| worker.id == second.id).unwrap();
    assert_eq!(listed_second.current_job_id, None, "the job ended");
    assert!(store.set_worker_job(&second.id, None).await.unwrap());
}
