//! Waiting for work without polling: a worker that found nothing waits until an enqueue (or a job handed
//! back) bumps the wake generation, or until a slow poll interval passes. The generation seen is kept per
//! waiter, so a job enqueued between "found nothing" and "start waiting" wakes it at once.

use std::time::Duration;

use tokio::sync::watch;

/// How long a waiting worker sleeps when nothing wakes it: a NOTIFY lost while the listener reconnected
/// is made up for at most this late. (A job waiting out a retry delay wakes its workers when it comes
/// due: they sleep until [`Queue::next_due`](super::Queue::next_due) if that is sooner.)
pub const POLL_FALLBACK: Duration = Duration::from_secs(5);

/// Why [`WorkWaiter::wait_for_work`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A job may be available.
    Notified,
    /// The timeout passed; look anyway.
    TimedOut,
}

/// One worker loop's view of the wake generation.
#[derive(Debug)]
pub struct WorkWaiter {
    generation: watch::Receiver<u64>,
}

impl WorkWaiter {
    pub(crate) fn new(generation: watch::Receiver<u64>) -> Self {
        WorkWaiter { generation }
    }

    /// Returns when a job may be available: at once if one was enqueued since this waiter was made or last
    /// returned, else on the next enqueue, or after `timeout`.
    pub async fn wait_for_work(&mut self, timeout: Duration) -> Wake {
        match tokio::time::timeout(timeout, self.generation.changed()).await {
            Ok(Ok(())) => Wake::Notified,
            // The store is gone; nothing will wake this waiter again.
            Ok(Err(_)) => {
                tokio::time::sleep(timeout).await;
                Wake::TimedOut
            }
            Err(_) => Wake::TimedOut,
        }
    }
}
