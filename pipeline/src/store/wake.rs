//! Waking workers when a job may be available: a generation counter that every enqueue (and every job
//! handed back) bumps. On PostgreSQL the enqueue transaction also sends `NOTIFY arbor_jobs`, and a
//! `LISTEN` task bumps the counter in every process; on SQLite (one process) the bump is all there is.
//! Waiters compare generations, so a bump between "found nothing" and "start waiting" is never lost.
//!
//! The same listener carries requests to fetch the git remote now (a webhook): a replica that is not
//! the scheduler sends `NOTIFY arbor_fetch`, and the scheduler, wherever it runs, hears it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// The PostgreSQL channel enqueues notify.
pub const JOBS_CHANNEL: &str = "arbor_jobs";
/// The PostgreSQL channel of requests to fetch the git remote now.
pub const FETCH_CHANNEL: &str = "arbor_fetch";
/// The pause before listening again after the listener failed to reconnect.
const LISTENER_RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct WakeSignal {
    generation: watch::Sender<u64>,
    /// Requests to fetch the git remote now; one permit is kept while the scheduler is busy.
    fetch_requests: Arc<Notify>,
    listener: Option<JoinHandle<()>>,
}

impl WakeSignal {
    pub(crate) fn in_process() -> Self {
        WakeSignal { generation: watch::Sender::new(0), fetch_requests: Arc::default(), listener: None }
    }

    /// Listens on [`JOBS_CHANNEL`] and [`FETCH_CHANNEL`] with a connection of its own from `pool`.
    pub(crate) async fn listening(pool: &PgPool, database: &str) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen_all([JOBS_CHANNEL, FETCH_CHANNEL]).await?;
        let generation = watch::Sender::new(0);
        let sender = generation.clone();
        let fetch_requests = Arc::new(Notify::new());
        let fetch_sender = Arc::clone(&fetch_requests);
        let database = database.to_string();
        let task = tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) if notification.channel() == FETCH_CHANNEL => {
                        fetch_sender.notify_one();
                        continue;
                    }
                    Ok(Some(_)) => {}
                    // The connection was lost (notifications may have been missed); the next call
                    // reconnects and listens again. A fetch costs little: do one in case.
                    Ok(None) => {
                        tracing::warn!(database, "job notifications: connection lost, reconnecting");
                        fetch_sender.notify_one();
                    }
                    // The store is closing: give the connection back so closing can finish.
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(database, %error, "job notifications: listening failed, retrying");
                        tokio::time::sleep(LISTENER_RETRY_DELAY).await;
                    }
                }
                sender.send_modify(|generation| *generation += 1);
            }
        });
        Ok(WakeSignal { generation, fetch_requests, listener: Some(task) })
    }

    /// Stops listening (the store is closing): the listener's connection goes back to the pool, whose
    /// `close` waits for every connection.
    pub(crate) fn stop_listening(&self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }

    /// Wakes this process's waiters (other processes hear the NOTIFY).
    pub(crate) fn bump(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Requests to fetch now, heard from this process or (on PostgreSQL) from any other.
    pub(crate) fn fetch_requests(&self) -> &Arc<Notify> {
        &self.fetch_requests
    }
}

impl Drop for WakeSignal {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }
}
