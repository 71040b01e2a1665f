//! Latencies of the job execution side, printed as numbers (targets from the issue):
//!
//! - a webhook push (the scheduler's `fetch_now`) → its compose job `running` on an embedded worker
//!   (target < 1 s);
//! - a commit with unchanged inputs (only the README changed) → its build recorded `unchanged`
//!   (target < 5 s).
//!
//! Real everything, as in `tests/execution`: a git remote, an rpm-md repository of the minimal OS,
//! docker-registry, a SQLite store, the scheduler and one embedded worker. Needs root and the compose
//! tools (scripts/install-deps). `cargo bench -p pipeline --bench execution`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[allow(dead_code)]
#[path = "../tests/execution/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use arbor_testsupport::git::TestFile;
use pipeline::store::{BuildStatus, JobState};

use harness::{STREAM, Service};

/// Pushes measured (after a first compose that is not).
const SAMPLES: usize = 10;
/// How often the bench looks at the database.
const POLL: Duration = Duration::from_millis(2);

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut service = Service::new(false).await;
    service.start_scheduler();
    service.start_worker("embedded-1");
    let first = service.remote.head(STREAM).unwrap().unwrap();
    let build = service.finished_build(&first).await;
    assert_eq!(build.summary.status, BuildStatus::Succeeded, "{:?}", build.error);

    let mut to_running = Vec::new();
    let mut to_unchanged = Vec::new();
    for sample in 0..SAMPLES {
        let readme = TestFile::text(&format!("exampleos, revision {sample}\n"));
        let commit = service.remote.commit(STREAM, &[("README.md", readme)], "Reword the README").unwrap();
        let pushed = Instant::now();
        service.fetch_now.notify_one();
        let mut running = None;
        let unchanged = loop {
            let builds = service.store.builds_of_commit(STREAM, &commit).await.unwrap();
            if let Some(build) = builds.first() {
                if running.is_none()
                    && let Some(job_id) = build.job_id
                {
                    let job = service.store.get_job(job_id).await.unwrap().unwrap();
                    if job.state != JobState::Queued {
                        running = Some(pushed.elapsed());
                    }
                }
                if build.status == BuildStatus::Unchanged {
                    break pushed.elapsed();
                }
                assert!(
                    matches!(build.status, BuildStatus::Queued | BuildStatus::Running),
                    "sample {sample}: build {} is {}",
                    build.id,
                    build.status
                );
            }
            tokio::time::sleep(POLL).await;
        };
        to_running.push(running.unwrap_or(unchanged));
        to_unchanged.push(unchanged);
    }
    report("webhook push → compose job running (target < 1 s)", &mut to_running);
    report("unchanged commit pushed → build unchanged (target < 5 s)", &mut to_unchanged);
    service.stop().await;
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let milliseconds = |duration: Duration| duration.as_secs_f64() * 1000.0;
    println!(
        "{what}: p50 {:.0} ms, max {:.0} ms over {} pushes",
        milliseconds(samples[samples.len() / 2]),
        milliseconds(samples[samples.len() - 1]),
        samples.len()
    );
}
