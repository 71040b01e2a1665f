//! `kill -9` of a process writing to a SQLite database mid-compose: the file stays sound, the queue state is
//! consistent, the reaper hands the job to another worker, and the commit ends with exactly one succeeded
//! build.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pipeline::queue::{ClaimRequest, Outcome, QueueOptions};
use pipeline::store::{BuildResult, BuildStatus, JobState, NewBuild, NewLogLine, StoreOptions};
use pipeline::{Clock, ManualClock, Queue, Store, SystemClock};
use sqlx::Connection;

use crate::harness::{claim_from, compose_job};

/// The database URL the child process writes to; set only for the child.
const CHILD_DATABASE: &str = "ARBOR_CRASH_TEST_DATABASE";
/// What the child prints once it holds the lease and has written.
const CHILD_READY: &str = "ARBOR-CRASH-CHILD-WRITING";
/// How long the child writes before it is killed: long enough to be in the middle of its loop.
const WRITE_BEFORE_KILL: Duration = Duration::from_millis(300);

/// Not a test of its own: the process `a_killed_writer_leaves_a_sound_database` starts and kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_killed_writer_leaves_a_sound_database"]
async fn crash_child_writer() {
    let Ok(url) = std::env::var(CHILD_DATABASE) else {
        return;
    };
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    let queue = Queue::new(store.clone(), QueueOptions::default());
    let claimed = queue
        .claim(ClaimRequest { worker_id: "w_doomed", arches: &["x86_64".into()], kinds: &["compose".into()] })
        .await
        .unwrap()
        .expect("the compose job");
    queue.set_phase(&claimed.lease, "importing packages").await.unwrap();
    let mut number = 0u64;
    loop {
        let now = SystemClock.now();
        let batch: Vec<NewLogLine> = (0..50)
            .map(|line| NewLogLine { time: now, line: format!("importing package {number}.{line}") })
            .collect();
        queue.append_logs(&claimed.lease, &batch).await.unwrap();
        queue.heartbeat(&claimed.lease).await.unwrap();
        let other = NewBuild {
            stream: "other".into(),
            arch: "x86_64".into(),
            git_commit: format!("other{number}"),
            git_subject: None,
        };
        store.create_build(&other, &compose_job("other", "x86_64", "x")).await.unwrap();
        if number == 0 {
            println!("{CHILD_READY}");
        }
        number += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writer_leaves_a_sound_database() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("arbor.db").display());
    let build = NewBuild {
        stream: "main".into(),
        arch: "x86_64".into(),
        git_commit: "aaa".into(),
        git_subject: Some("Update lockfiles".into()),
    };
    let created = {
        let store = Store::open(&url, StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let created = store.create_build(&build, &compose_job("main", "x86_64", "aaa")).await.unwrap();
        store.close().await;
        created
    };

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash::crash_child_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DATABASE, &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the child ended before writing");
        // libtest prints "test NAME ... " before the test's own output, on the same line.
        if line.contains(CHILD_READY) {
            break;
        }
    }
    std::thread::sleep(WRITE_BEFORE_KILL);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());

    let clock = ManualClock::starting_now();
    let store =
        Store::open(&url, StoreOptions { clock: std::sync::Arc::new(clock.clone()), ..Default::default() })
            .await
            .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.sqlite_integrity_check().await.unwrap().as_deref(), Some("ok"));
    assert_consistent(&url).await;
    let job = store.get_job(created.job_id).await.unwrap().unwrap();
    assert_eq!((job.state, job.lease_owner.as_deref()), (JobState::Running, Some("w_doomed")));
    assert!(job.log_lines >= 50);
    let last = store.read_logs(created.job_id, job.log_lines - 1, 10).await.unwrap();
    assert_eq!(
        last.iter().map(|line| line.seq).collect::<Vec<_>>(),
        [job.log_lines],
        "no line past the count"
    );

    // The dead worker's lease expires; the reaper requeues the job; another worker runs it to success.
    let queue = Queue::new(store.clone(), QueueOptions::default());
    clock.advance(QueueOptions::default().lease_duration + Duration::from_secs(1));
    assert_eq!(queue.reap().await.unwrap().requeued, 1);
    let requeued = store.get_job(created.job_id).await.unwrap().unwrap();
    clock.set(requeued.run_after);
    let claimed = claim_from(&queue, "w_survivor", &["x86_64"], &["compose"]).await.unwrap();
    assert_eq!((claimed.job.id, claimed.job.attempts), (created.job_id, 2));
    let outcome = Outcome::Succeeded {
        result: serde_json::json!({}),
        build: Some(Box::new(BuildResult::new(BuildStatus::Succeeded))),
    };
    queue.complete(&claimed.lease, outcome).await.unwrap();
    let builds = store.builds_of_commit("main", "aaa").await.unwrap();
    let succeeded: Vec<_> = builds.iter().filter(|build| build.status == BuildStatus::Succeeded).collect();
    assert_eq!(succeeded.len(), 1, "{builds:?}");
    assert_eq!(builds.len(), 1);
    assert_eq!(store.sqlite_integrity_check().await.unwrap().as_deref(), Some("ok"));
}

/// Foreign keys hold, every build's job exists, and running jobs have leases.
async fn assert_consistent(url: &str) {
    let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
    let violations: Vec<String> = sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM builds LEFT JOIN jobs ON jobs.id = builds.job_id WHERE jobs.id IS NULL",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    let leaseless: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE state = 'running' AND (lease_token IS NULL OR lease_expires IS NULL)",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(leaseless, 0);
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE log_lines <> (SELECT count(*) FROM job_logs WHERE job_id = jobs.id)",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
}
