//! A fresh database per test on either backend, a manual clock, and `both_backends!` to run a case on each.

use std::time::Duration;

use arbor_testsupport::TestPostgres;
use pipeline::queue::{ClaimRequest, ClaimedJob, NewJob, QueueOptions};
use pipeline::store::{CreatedBuild, NewBuild, StoreOptions};
use pipeline::{ManualClock, Queue, Store};
use std::sync::Arc;
use tempfile::TempDir;

/// The tests' start time: 2023-11-14, a fixed instant so no test depends on the wall clock.
pub const START: i64 = 1_700_000_000_000;
/// A short lease for the tests (the clock is stepped, nothing waits for it).
pub const LEASE: Duration = Duration::from_secs(60);

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store on a fresh database and a queue over it.
#[derive(Debug)]
pub struct Harness {
    pub backend: Backend,
    pub url: String,
    pub clock: ManualClock,
    pub store: Store,
    pub queue: Queue,
    /// The server of a PostgreSQL test, running until the harness is dropped.
    _postgres: Option<TestPostgres>,
    pub directory: TempDir,
}

impl Harness {
    pub async fn new(backend: Backend) -> Harness {
        let directory = tempfile::tempdir().expect("temporary directory");
        let (url, postgres) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", directory.path().join("arbor.db").display()), None),
            Backend::Postgres => {
                let server = TestPostgres::start().expect("a throwaway PostgreSQL server");
                (server.create_database("arbor_test").expect("a test database"), Some(server))
            }
        };
        let clock = ManualClock::new(START);
        let store = open(&url, &clock).await;
        store.migrate().await.expect("migrations");
        let queue =
            Queue::new(store.clone(), QueueOptions { lease_duration: LEASE, ..QueueOptions::default() });
        Harness { backend, url, clock, store, queue, _postgres: postgres, directory }
    }

    /// Another store on the same database (as another `arbor serve` process would open it), same clock.
    pub async fn another_store(&self) -> Store {
        open(&self.url, &self.clock).await
    }

    /// Claims the next job of `kinds` for a worker of `arches`.
    pub async fn claim(&self, worker: &str, arches: &[&str], kinds: &[&str]) -> Option<ClaimedJob> {
        claim_from(&self.queue, worker, arches, kinds).await
    }

    /// Creates a compose build and its job, coalescing per stream and arch.
    pub async fn compose(&self, stream: &str, arch: &str, commit: &str) -> CreatedBuild {
        let build = NewBuild {
            stream: stream.to_string(),
            arch: arch.to_string(),
            git_commit: commit.to_string(),
            git_subject: Some(format!("subject of {commit}")),
        };
        self.store.create_build(&build, &compose_job(stream, arch, commit)).await.expect("create build")
    }
}

pub async fn open(url: &str, clock: &ManualClock) -> Store {
    let options = StoreOptions { clock: Arc::new(clock.clone()), ..StoreOptions::default() };
    Store::open(url, options).await.expect("open the store")
}

pub async fn claim_from(queue: &Queue, worker: &str, arches: &[&str], kinds: &[&str]) -> Option<ClaimedJob> {
    let arches: Vec<String> = arches.iter().map(|arch| arch.to_string()).collect();
    let kinds: Vec<String> = kinds.iter().map(|kind| kind.to_string()).collect();
    queue.claim(ClaimRequest { worker_id: worker, arches: &arches, kinds: &kinds }).await.expect("claim")
}

/// A compose job that coalesces into a queued compose of the same stream and arch.
pub fn compose_job(stream: &str, arch: &str, commit: &str) -> NewJob {
    NewJob {
        dedup: Some(pipeline::queue::Dedup {
            key: format!("compose:{stream}:{arch}"),
            on_duplicate: pipeline::queue::OnDuplicate::Coalesce,
        }),
        ..NewJob::new("compose", serde_json::json!({"stream": stream, "arch": arch, "commit": commit}))
    }
}

/// Runs each named `async fn NAME(harness: Harness)` once on SQLite and once on PostgreSQL, as the tests
/// `NAME::sqlite` and `NAME::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::harness::Harness::new(crate::harness::Backend::Sqlite).await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::harness::Harness::new(crate::harness::Backend::Postgres).await).await;
                }
            }
        )*
    };
}
pub(crate) use both_backends;
