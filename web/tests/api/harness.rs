//! A server under test: a real database (a SQLite file or a throwaway PostgreSQL), a real git remote and
//! mirror, a configuration with two streams, tokens of every scope, and the router; requests go through
//! `tower::ServiceExt::oneshot`, or through a real listener on 127.0.0.1 ([`TestServer::listen`]).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use arbor_testsupport::{TestFile, TestGitRemote, TestPostgres};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use pipeline::config::Config;
use pipeline::git::{Credentials, Mirror};
use pipeline::queue::{ClaimRequest, ClaimedJob, Outcome, QueueOptions};
use pipeline::store::{NewToken, Scope, StoreOptions};
use pipeline::{ManualClock, Queue, Store};
use tempfile::TempDir;
use tower::ServiceExt;
use web::{AppParts, AppState};

/// The webhook secret of test servers that have one.
pub const WEBHOOK_SECRET: &str = "it-is-a-secret-to-everybody";
/// The stream with two arches, whose branch the remote has.
pub const STREAM: &str = "testing-devel";
/// The stream whose branch the remote does not have.
pub const UNFETCHED_STREAM: &str = "stable";
pub const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How a test server is set up.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub backend: Backend,
    pub public_read: bool,
    pub webhook_secret: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { backend: Backend::Sqlite, public_read: false, webhook_secret: true }
    }
}

/// Tokens of each scope.
#[derive(Debug)]
pub struct Tokens {
    pub read: String,
    pub write: String,
    pub admin: String,
    pub worker: String,
}

#[derive(Debug)]
pub struct TestServer {
    pub state: AppState,
    pub router: Router,
    pub store: Store,
    pub queue: Queue,
    pub clock: ManualClock,
    /// Kept alive (removed on drop), as is the directory.
    pub _remote: TestGitRemote,
    pub mirror: Arc<Mirror>,
    pub tokens: Tokens,
    /// The commits of [`STREAM`]'s branch, oldest first.
    pub commits: Vec<String>,
    pub postgres: Option<TestPostgres>,
    pub _directory: TempDir,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!("unexpected body ({error}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error's code and message, checking the error shape.
    pub fn error(&self) -> (String, String) {
        let body = self.json();
        let error = &body["error"];
        let code = error["code"].as_str().unwrap_or_else(|| panic!("no error code: {body}"));
        let message = error["message"].as_str().unwrap_or_else(|| panic!("no error message: {body}"));
        (code.to_string(), message.to_string())
    }

    /// Asserts the status and the error code; returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        let (actual, message) = self.error();
        assert_eq!(actual, code, "{message}");
        message
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with(Options::default()).await
    }

    pub async fn with(options: Options) -> TestServer {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let (url, postgres) = match options.backend {
            Backend::Sqlite => (format!("sqlite://{}", directory.path().join("arbor.db").display()), None),
            Backend::Postgres => {
                let server = TestPostgres::start().expect("a throwaway PostgreSQL server");
                (server.create_database("arbor_web").expect("a test database"), Some(server))
            }
        };
        let remote = TestGitRemote::new().expect("a test git remote");
        let mut commits = Vec::new();
        for number in 1..=3 {
            let file = TestFile::text(&format!("ref: exampleos/{number}\n"));
            commits.push(
                remote
                    .commit(STREAM, &[("manifest.yaml", file)], &format!("Change {number}"))
                    .expect("commit"),
            );
        }
        let secret_file = directory.path().join("webhook-secret");
        std::fs::write(&secret_file, WEBHOOK_SECRET).expect("the webhook secret file");
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = configuration(directory.path(), &url, &remote.file_url(), options);
        let clock = ManualClock::starting_now();
        let store =
            Store::open(&url, StoreOptions { clock: Arc::new(clock.clone()), ..StoreOptions::default() })
                .await
                .expect("open the store");
        store.migrate().await.expect("migrations");
        for stream in &config.streams {
            store.upsert_stream(&stream.name, &stream.branch).await.expect("save a stream");
        }
        let queue = Queue::new(store.clone(), QueueOptions::default());
        let mirror = Mirror::open_or_create(&config.server.state_dir, &config.git.url, Credentials::None)
            .await
            .expect("the mirror");
        mirror.fetch().await.expect("fetch the mirror");
        let mirror = Arc::new(mirror);
        let state = AppState::new(AppParts {
            config: Arc::new(config),
            store: store.clone(),
            queue: queue.clone(),
            mirror: mirror.clone(),
            clock: Arc::new(clock.clone()),
        })
        .expect("the application state");
        let tokens = Tokens {
            read: token(&store, "reader", &[Scope::Read]).await,
            write: token(&store, "ci", &[Scope::Write]).await,
            admin: token(&store, "operator", &[Scope::Admin]).await,
            worker: token(&store, "builder-1", &[Scope::Worker]).await,
        };
        let router = web::router(state.clone());
        TestServer {
            state,
            router,
            store,
            queue,
            clock,
            _remote: remote,
            mirror,
            tokens,
            commits,
            postgres,
            _directory: directory,
        }
    }

    /// Sends a request through the router.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("the body").to_bytes();
        TestResponse { status, headers, body }
    }

    /// `method path` with a bearer token and a JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .expect("a request"),
            None => request.body(Body::empty()).expect("a request"),
        };
        self.send(request).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Option<serde_json::Value>) -> TestResponse {
        self.call(Method::POST, path, Some(token), body).await
    }

    /// Claims the next compose job of `arch`, as a worker would.
    pub async fn claim(&self, arch: &str) -> ClaimedJob {
        let arches = vec![arch.to_string()];
        let kinds = vec!["compose".to_string()];
        let request = ClaimRequest { worker_id: "w_test", arches: &arches, kinds: &kinds };
        self.queue.claim(request).await.expect("claim").expect("a job to claim")
    }

    /// Claims and ends the compose of `arch`.
    pub async fn finish(&self, arch: &str, outcome: Outcome) -> ClaimedJob {
        let claimed = self.claim(arch).await;
        self.queue.complete(&claimed.lease, outcome).await.expect("complete");
        claimed
    }

    /// Serves the router on 127.0.0.1 until the returned sender is dropped or sent to.
    pub async fn listen(&self) -> Listening {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("the address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = self.router.clone();
        let task = tokio::spawn(web::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Listening { base: format!("http://{address}"), stop: Some(stop), task }
    }
}

/// A router served on a real socket.
#[derive(Debug)]
pub struct Listening {
    pub base: String,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn token(store: &Store, name: &str, scopes: &[Scope]) -> String {
    let new = NewToken { name: name.to_string(), scopes: scopes.to_vec(), expires_at: None };
    store.create_token(&new).await.expect("a token").plaintext
}

fn configuration(directory: &Path, database: &str, remote: &str, options: Options) -> Config {
    let secret = if options.webhook_secret {
        format!("webhook-secret-file = \"{}\"", directory.join("webhook-secret").display())
    } else {
        String::new()
    };
    let text = format!(
        r#"
[server]
state-dir = "{state}"
database = "{database}"
public-read = {public_read}

[git]
url = "{remote}"
{secret}

[[streams]]
name = "{STREAM}"
arches = ["x86_64", "aarch64"]
image = "registry.example.com/os/exampleos"

[[streams]]
name = "{UNFETCHED_STREAM}"
branch = "release/stable"
arches = ["x86_64"]
image = "registry.example.com/os/exampleos"
priority = 10
"#,
        state = directory.join("state").display(),
        public_read = options.public_read,
    );
    Config::parse(&text, &directory.join("arbor.toml")).unwrap_or_else(|errors| panic!("{errors}"))
}

/// A succeeded compose outcome without a recorded build result.
pub fn succeeded() -> Outcome {
    Outcome::Succeeded { result: serde_json::json!({"status": "succeeded"}), build: None }
}

/// A permanent failure.
pub fn failed() -> Outcome {
    Outcome::Failed { error: "the treefile is broken\nline 3: unknown key".to_string(), permanent: true }
}

/// Runs each named `async fn NAME(server: TestServer)` on SQLite and on PostgreSQL, as `NAME::sqlite` and
/// `NAME::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let options = crate::harness::Options { backend: crate::harness::Backend::Sqlite, ..Default::default() };
                    super::$name(crate::harness::TestServer::with(options).await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let options = crate::harness::Options { backend: crate::harness::Backend::Postgres, ..Default::default() };
                    super::$name(crate::harness::TestServer::with(options).await).await;
                }
            }
        )*
    };
}
pub(crate) use both_backends;
