//! The state shared by the server handle, its accept loop and its connection threads.

use super::fault::FaultRule;
use super::request::{RecordedRequest, RequestHead};
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Locks `mutex`, also after a panic in another thread (test state stays inspectable).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Set once when the server is dropped; waiters wake up immediately.
#[derive(Debug, Default)]
pub(super) struct ShutdownSignal {
    triggered: Mutex<bool>,
    changed: Condvar,
}

impl ShutdownSignal {
    pub fn trigger(&self) {
        *lock(&self.triggered) = true;
        self.changed.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        *lock(&self.triggered)
    }

    /// Waits until shutdown or until `timeout` passed (forever for `None`); true on shutdown.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let mut triggered = lock(&self.triggered);
        while !*triggered {
            match deadline {
                None => triggered = self.changed.wait(triggered).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        return false;
                    };
                    let (guard, _) =
                        self.changed.wait_timeout(triggered, left).unwrap_or_else(PoisonError::into_inner);
                    triggered = guard;
                }
            }
        }
        true
    }
}

/// State shared by the server handle, the accept loop and the connection threads.
#[derive(Debug)]
pub(super) struct ServerState {
    pub root: PathBuf,
    pub started: Instant,
    pub faults: Mutex<Vec<FaultRule>>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub request_arrived: Condvar,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub shutdown: ShutdownSignal,
    pub open_connections: Mutex<HashMap<u64, TcpStream>>,
    pub connection_threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Decrements the in-flight count when a request has been answered (or abandoned).
pub(super) struct InFlightGuard<'a>(&'a AtomicUsize);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ServerState {
    pub fn begin_request(&self) -> InFlightGuard<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlightGuard(&self.in_flight)
    }

    pub fn record(&self, head: &RequestHead, connection: u64) {
        let received_at = Instant::now();
        let request = RecordedRequest {
            method: head.method.clone(),
            path: head.path.clone(),
            target: head.target.clone(),
            headers: head.headers.clone(),
            received_at,
            since_start: received_at.duration_since(self.started),
            connection,
        };
        lock(&self.requests).push(request);
        self.request_arrived.notify_all();
    }
}
