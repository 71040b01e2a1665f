//! The one way blocking work (libsolv, libostree, compression, big file I/O) leaves the async runtime:
//! `spawn_blocking` with the caller's tracing span and a cancellation flag that is raised when the
//! caller stops waiting (its future is dropped), so long work can stop early.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Raised when the caller no longer wants the result; blocking work checks it between steps, async
/// work waits on [`Cancellation::cancelled`]. Cancelling one also cancels every [`Cancellation::child`]
/// made from it, so a job's cancellation reaches each blocking phase it starts.
#[derive(Debug, Clone, Default)]
pub struct Cancellation(Arc<CancellationState>);

#[derive(Debug, Default)]
struct CancellationState {
    cancelled: AtomicBool,
    waiters: tokio::sync::Notify,
    children: Mutex<Vec<Weak<CancellationState>>>,
}

impl CancellationState {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.waiters.notify_waiters();
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|poison| poison.into_inner()));
        for child in children.iter().filter_map(Weak::upgrade) {
            child.cancel();
        }
    }
}

impl Cancellation {
    pub fn new() -> Cancellation {
        Cancellation::default()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// A cancellation that is raised with this one (or on its own).
    pub fn child(&self) -> Cancellation {
        let child = Cancellation::new();
        {
            let mut children = self.0.children.lock().unwrap_or_else(|poison| poison.into_inner());
            children.retain(|existing| existing.strong_count() > 0);
            children.push(Arc::downgrade(&child.0));
        }
        // Raised after registering: a cancel racing with this call reaches the child either way.
        if self.is_cancelled() {
            child.cancel();
        }
        child
    }

    /// Returns once the cancellation is raised.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.waiters.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} failed: {message}")]
pub struct BlockingError {
    pub what: &'static str,
    pub message: String,
}

/// Cancels when dropped unless disarmed: the caller's future went away before the work finished.
struct CancelOnDrop(Option<Cancellation>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancellation) = self.0.take() {
            cancellation.cancel();
        }
    }
}

/// Runs `work` on the blocking thread pool inside the current span.
pub async fn run_blocking<T, F>(what: &'static str, work: F) -> Result<T, BlockingError>
where
    T: Send + 'static,
    F: FnOnce(&Cancellation) -> T + Send + 'static,
{
    run_blocking_cancellable(what, &Cancellation::new(), work).await
}

/// Runs `work` on the blocking thread pool inside the current span, with a cancellation that is raised
/// when `parent` is (a job was cancelled) or when the caller stops waiting.
pub async fn run_blocking_cancellable<T, F>(
    what: &'static str,
    parent: &Cancellation,
    work: F,
) -> Result<T, BlockingError>
where
    T: Send + 'static,
    F: FnOnce(&Cancellation) -> T + Send + 'static,
{
    let span = tracing::Span::current();
    let cancellation = parent.child();
    let mut guard = CancelOnDrop(Some(cancellation.clone()));
    let handle = tokio::task::spawn_blocking(move || span.in_scope(|| work(&cancellation)));
    let result = handle.await;
    guard.0 = None;
    result.map_err(|error| {
        let message = if error.is_panic() { "the work panicked".to_string() } else { error.to_string() };
        BlockingError { what, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_in_the_callers_span_and_returns() {
        let value = run_blocking("adding", |_| 40 + 2).await.unwrap();
        assert_eq!(value, 42);
    }

    #[tokio::test]
    async fn dropping_the_caller_cancels_the_work() {
        let (started_sender, started) = std::sync::mpsc::channel();
        let (observed_sender, observed) = std::sync::mpsc::channel();
        let task = tokio::spawn(run_blocking("waiting", move |cancellation| {
            started_sender.send(()).unwrap();
            while !cancellation.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            observed_sender.send(()).unwrap();
        }));
        tokio::task::spawn_blocking(move || started.recv().unwrap()).await.unwrap();
        task.abort();
        let seen =
            tokio::task::spawn_blocking(move || observed.recv_timeout(std::time::Duration::from_secs(5)));
        assert!(seen.await.unwrap().is_ok(), "the blocking work saw the cancellation");
    }

    #[tokio::test]
    async fn cancelling_a_parent_reaches_its_children_and_waiters() {
        let parent = Cancellation::new();
        let child = parent.child();
        let grandchild = child.child();
        let waiter = tokio::spawn({
            let grandchild = grandchild.clone();
            async move { grandchild.cancelled().await }
        });
        assert!(!grandchild.is_cancelled());
        parent.cancel();
        assert!(child.is_cancelled() && grandchild.is_cancelled());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert!(parent.child().is_cancelled(), "a child of a cancelled parent starts cancelled");
        let sibling = Cancellation::new();
        sibling.child().cancel();
        assert!(!sibling.is_cancelled(), "cancelling a child leaves its parent alone");
    }

    #[tokio::test]
    async fn blocking_work_sees_its_parents_cancellation() {
        let parent = Cancellation::new();
        let (started_sender, started) = std::sync::mpsc::channel();
        let work = run_blocking_cancellable("waiting", &parent, move |cancellation| {
            started_sender.send(()).unwrap();
            while !cancellation.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            "stopped"
        });
        let cancel = async {
            tokio::task::spawn_blocking(move || started.recv().unwrap()).await.unwrap();
            parent.cancel();
        };
        let (outcome, ()) = tokio::join!(work, cancel);
        assert_eq!(outcome.unwrap(), "stopped");
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_crash() {
        let error = run_blocking("exploding", |_| -> u8 { panic!("boom") }).await.unwrap_err();
        assert_eq!(error.to_string(), "exploding failed: the work panicked");
    }
}

/// Blocking work that runs on its own thread beside other blocking work (inside the caller's span),
/// e.g. recording the rpm database while the tree is assembled. Dropping it waits for the thread, so the
/// work never outlives the scratch space it writes to.
#[derive(Debug)]
pub struct BackgroundWork<T: Send + 'static> {
    what: &'static str,
    thread: Option<std::thread::JoinHandle<T>>,
}

impl<T: Send + 'static> BackgroundWork<T> {
    pub fn start(
        what: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<BackgroundWork<T>> {
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new().name(what.to_string()).spawn(move || span.in_scope(work))?;
        Ok(BackgroundWork { what, thread: Some(thread) })
    }

    /// Waits for the result; a panic in the work is resumed here.
    pub fn finish(mut self) -> T {
        let thread = self.thread.take().unwrap_or_else(|| unreachable!("{} finished twice", self.what));
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl<T: Send + 'static> Drop for BackgroundWork<T> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
