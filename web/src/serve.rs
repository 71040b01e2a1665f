//! [`serve`]: the router on a listener until a shutdown signal, then a graceful stop: no new
//! connections, requests in flight finish, live logs end (their clients reconnect elsewhere with
//! `Last-Event-ID`), and whatever is still open after [`SHUTDOWN_DRAIN`] is dropped.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long open connections may take to finish once shutdown began.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// How often the metrics recorder folds recent histogram samples in (so memory stays bounded between
/// scrapes).
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Tells long-lived responses (live logs) that the server is stopping; present in every request served
/// by [`serve`].
#[derive(Debug, Clone)]
pub struct ShutdownSignal(pub(crate) watch::Receiver<bool>);

/// Serves `router` on `listener` until `shutdown` completes, then stops gracefully.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping, stopping_receiver) = watch::channel(false);
    let router = router.layer(Extension(ShutdownSignal(stopping_receiver.clone())));
    tracing::info!(address = %listener.local_addr()?, "serving HTTP");
    let mut graceful = stopping_receiver;
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|stopping| *stopping).await;
        })
        .into_future();
    tokio::pin!(server);
    let handle = crate::metrics::install();
    let upkeep = tokio::spawn(async move {
        let mut interval = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            handle.run_upkeep();
        }
    });
    let result = tokio::select! {
        result = &mut server => Some(result),
        () = shutdown => None,
    };
    let result = match result {
        Some(result) => result,
        None => {
            tracing::info!("shutting down: no new connections; requests in flight finish, live logs end");
            let _ = stopping.send(true);
            match tokio::time::timeout(SHUTDOWN_DRAIN, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        "connections were still open {SHUTDOWN_DRAIN:?} after shutdown began; dropped them"
                    );
                    Ok(())
                }
            }
        }
    };
    upkeep.abort();
    result
}
