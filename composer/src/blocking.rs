//! The one way blocking work (libsolv, libostree, compression, big file I/O) leaves the async runtime:
//! `spawn_blocking` with the caller's tracing span and a cancellation flag that is raised when the
//! caller stops waiting (its future is dropped), so long work can stop early.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Raised when the caller no longer wants the result; blocking work checks it between steps.
#[derive(Debug, Clone, Default)]
pub struct Cancellation(Arc<AtomicBool>);

impl Cancellation {
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
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
    let span = tracing::Span::current();
    let cancellation = Cancellation::default();
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
