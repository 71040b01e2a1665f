//! [`TestHttpServer`]: a local HTTP/1.1 file server that misbehaves on purpose.
//!
//! It listens on `127.0.0.1` on a free port, serves the files of one directory with one thread per
//! connection (keep-alive and pipelining work), answers GET and HEAD with `Content-Length`, a strong
//! `ETag` (the quoted sha256 of the content), `Last-Modified` (the file's mtime), `304 Not Modified`
//! for a matching `If-None-Match` / `If-Modified-Since`, and `206` for a single `Range`.
//! [`Fault`]s are set per path prefix at run time; every request is recorded.
//!
//! ```no_run
//! use arbor_testsupport::{Fault, TestHttpServer};
//! use std::time::Duration;
//! # fn main() -> anyhow::Result<()> {
//! # let directory = std::path::Path::new("/tmp");
//! let server = TestHttpServer::serve(directory)?;
//! server.set_fault("/repodata/", Fault::FailTimes { status: 503, times: 2 });
//! server.set_fault("/Packages/", Fault::Delay(Duration::from_millis(200)));
//! // ... point the code under test at server.url() ...
//! assert_eq!(server.request_count("/repodata/repomd.xml"), 3);
//! assert!(server.max_in_flight() >= 2);
//! # Ok(()) }
//! ```
//!
//! Dropping the server stops accepting, closes every open connection (which also ends
//! [`Fault::Hang`] and [`Fault::Delay`]) and waits at most [`SHUTDOWN_GRACE`] for its threads.

mod connection;
mod fault;
pub mod http_date;
mod request;

pub(crate) use request::percent_decode;
mod response;
mod state;

pub use fault::Fault;
pub use request::RecordedRequest;

use anyhow::{Context, Result};
use fault::FaultRule;
use state::{ServerState, ShutdownSignal, lock};
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long dropping the server waits for its threads before leaving them detached.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How often a bounded join checks whether a thread has finished.
const JOIN_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How long the accept loop pauses after a failed accept.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// How long the self-connection that wakes the accept loop may take.
const WAKE_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The running server; stopped when dropped.
#[derive(Debug)]
pub struct TestHttpServer {
    address: SocketAddr,
    state: Arc<ServerState>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TestHttpServer {
    /// Starts serving the files under `root` on `127.0.0.1` on a free port.
    pub fn serve(root: &Path) -> Result<Self> {
        let root =
            root.canonicalize().with_context(|| format!("resolving served directory {}", root.display()))?;
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding a test HTTP server to 127.0.0.1:0")?;
        let address = listener.local_addr().context("reading the test HTTP server's address")?;
        let state = Arc::new(ServerState {
            root,
            started: Instant::now(),
            faults: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            request_arrived: Condvar::new(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            shutdown: ShutdownSignal::default(),
            open_connections: Mutex::new(HashMap::new()),
            connection_threads: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        let accept_thread = thread::Builder::new()
            .name(format!("test-http-accept-{}", address.port()))
            .spawn(move || accept_loop(listener, &accept_state))
            .context("starting the test HTTP server's accept thread")?;
        Ok(Self { address, state, accept_thread: Some(accept_thread) })
    }

    /// The socket address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// The URL of `path` (with or without a leading `/`) on this server.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}/{}", self.address, path.trim_start_matches('/'))
    }

    /// The directory being served.
    pub fn root(&self) -> &Path {
        &self.state.root
    }

    /// Applies `fault` to every request whose path starts with `prefix` (a missing leading `/` is
    /// added), replacing an earlier fault on the same prefix. The longest matching prefix wins.
    pub fn set_fault(&self, prefix: &str, fault: Fault) {
        self.insert_rule(FaultRule::new(prefix, fault, None));
    }

    /// Like [`set_fault`](Self::set_fault), but only for the next `requests` matching requests.
    pub fn set_fault_for_requests(&self, prefix: &str, fault: Fault, requests: usize) {
        self.insert_rule(FaultRule::new(prefix, fault, Some(requests)));
    }

    fn insert_rule(&self, rule: FaultRule) {
        let mut rules = lock(&self.state.faults);
        rules.retain(|existing| existing.prefix != rule.prefix);
        if rule.remaining != Some(0) {
            rules.push(rule);
        }
    }

    /// Removes the fault on `prefix`.
    pub fn clear_fault(&self, prefix: &str) {
        let prefix = FaultRule::new(prefix, Fault::NotFound, None).prefix;
        lock(&self.state.faults).retain(|rule| rule.prefix != prefix);
    }

    /// Removes every fault: the server behaves again.
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// The requests for exactly `path` (percent-decoded, without query).
    pub fn requests_for(&self, path: &str) -> Vec<RecordedRequest> {
        lock(&self.state.requests).iter().filter(|request| request.path == path).cloned().collect()
    }

    /// How many requests for exactly `path` arrived.
    pub fn request_count(&self, path: &str) -> usize {
        lock(&self.state.requests).iter().filter(|request| request.path == path).count()
    }

    /// Forgets the recorded requests and resets [`max_in_flight`](Self::max_in_flight) to the
    /// number of requests in flight now.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
        self.state.max_in_flight.store(self.state.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Waits until at least `count` requests were recorded in all; false if `timeout` passed first.
    pub fn wait_for_requests(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut requests = lock(&self.state.requests);
        while requests.len() < count {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            requests = self
                .state
                .request_arrived
                .wait_timeout(requests, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Requests being answered right now (including hanging and delayed ones).
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The largest number of requests that were in flight at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

fn accept_loop(listener: TcpListener, state: &Arc<ServerState>) {
    let mut next_connection: u64 = 0;
    for stream in listener.incoming() {
        if state.shutdown.is_triggered() {
            break;
        }
        let Ok(stream) = stream else {
            // Typically out of file descriptors: back off instead of spinning.
            thread::sleep(ACCEPT_ERROR_BACKOFF);
            continue;
        };
        let connection_number = next_connection;
        next_connection += 1;
        if let Ok(clone) = stream.try_clone() {
            lock(&state.open_connections).insert(connection_number, clone);
        }
        let thread_state = Arc::clone(state);
        let spawned = thread::Builder::new().name(format!("test-http-connection-{connection_number}")).spawn(
            move || {
                connection::serve(stream, connection_number, &thread_state);
                lock(&thread_state.open_connections).remove(&connection_number);
            },
        );
        match spawned {
            Ok(handle) => {
                let mut threads = lock(&state.connection_threads);
                threads.retain(|thread| !thread.is_finished());
                threads.push(handle);
            }
            Err(_) => {
                lock(&state.open_connections).remove(&connection_number);
            }
        }
    }
}

/// Joins `handle` if it finishes before `deadline`; otherwise leaves it detached.
fn join_until(handle: JoinHandle<()>, deadline: Instant) {
    while !handle.is_finished() && Instant::now() < deadline {
        thread::sleep(JOIN_POLL_INTERVAL);
    }
    if handle.is_finished() {
        let _ = handle.join();
    }
}

impl Drop for TestHttpServer {
    fn drop(&mut self) {
        self.state.shutdown.trigger();
        // Wake the accept loop, which checks the shutdown flag after each accepted connection.
        let _ = TcpStream::connect_timeout(&self.address, WAKE_CONNECT_TIMEOUT);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        if let Some(accept_thread) = self.accept_thread.take() {
            join_until(accept_thread, deadline);
        }
        for stream in lock(&self.state.open_connections).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *lock(&self.state.connection_threads));
        for thread in threads {
            join_until(thread, deadline);
        }
    }
}
