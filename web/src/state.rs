//! What every handler may reach: [`AppState`], cheap to clone, with [`FromRef`] for each part so a
//! handler (or another module's router, such as the worker API) takes `State<Store>` or `State<Queue>`
//! rather than the whole state.

use std::sync::Arc;

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use pipeline::config::Config;
use pipeline::git::Mirror;
use pipeline::secret::{Secret, SecretError};
use pipeline::{Clock, Queue, Store};
use tokio::sync::broadcast;

use crate::auth::TokenCache;
use crate::cache::{BuildListCache, StreamBuildsCache};

/// Job ids whose logs changed that a live log may have missed: one broadcast per append (or job end)
/// is plenty, and a slow receiver only loses wake-ups, never lines (it reads the store).
const LOG_EVENTS_CAPACITY: usize = 1024;

/// The application state of the router.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub queue: Queue,
    /// The git mirror: branch heads and commits for compose requests, and readiness.
    pub mirror: Arc<Mirror>,
    /// Wakes live logs when lines were appended (or a job ended) in this process.
    pub log_events: LogEvents,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    pub clock: Arc<dyn Clock>,
    /// The webhook secret, loaded once; `None`: webhooks are refused.
    pub webhook_secret: Option<Arc<Secret>>,
    pub(crate) build_lists: Arc<BuildListCache>,
    pub(crate) stream_builds: Arc<StreamBuildsCache>,
    pub(crate) tokens: Arc<TokenCache>,
}

/// What [`AppState::new`] is made of.
#[derive(Debug)]
pub struct AppParts {
    pub config: Arc<Config>,
    pub store: Store,
    pub queue: Queue,
    pub mirror: Arc<Mirror>,
    /// The store's clock (the same one, so "online" and expiry agree with the store's times).
    pub clock: Arc<dyn Clock>,
}

/// Building the state failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading the webhook secret ([git] webhook-secret-file / webhook-secret-env)")]
    WebhookSecret(#[source] SecretError),
}

impl AppState {
    /// The state of a server: loads the webhook secret and installs the metrics recorder (once per
    /// process).
    pub fn new(parts: AppParts) -> Result<AppState, StateError> {
        let webhook_secret = match &parts.config.git.webhook_secret {
            Some(source) => Some(Arc::new(source.load().map_err(StateError::WebhookSecret)?)),
            None => None,
        };
        Ok(AppState {
            build_lists: Arc::new(BuildListCache::new(BuildListCache::DEFAULT_TIME_TO_LIVE)),
            stream_builds: Arc::new(StreamBuildsCache::new(BuildListCache::DEFAULT_TIME_TO_LIVE)),
            tokens: Arc::new(TokenCache::new()),
            config: parts.config,
            store: parts.store,
            queue: parts.queue,
            mirror: parts.mirror,
            log_events: LogEvents::default(),
            metrics: crate::metrics::install(),
            clock: parts.clock,
            webhook_secret,
        })
    }

    /// The same state with build lists and the streams' builds always read from the database (to measure
    /// what the caches buy).
    pub fn without_build_list_cache(mut self) -> AppState {
        self.build_lists = Arc::new(BuildListCache::disabled());
        self.stream_builds = Arc::new(StreamBuildsCache::disabled());
        self
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Job ids whose logs grew or that ended, for live logs in this process. The worker API sends after a
/// remote worker's append or completion, embedded workers after theirs; lines appended through another
/// replica are found by the live log's slow poll.
#[derive(Debug, Clone)]
pub struct LogEvents(broadcast::Sender<i64>);

impl Default for LogEvents {
    fn default() -> Self {
        LogEvents(broadcast::Sender::new(LOG_EVENTS_CAPACITY))
    }
}

impl LogEvents {
    /// Tells live logs of `job_id` to look again.
    pub fn appended(&self, job_id: i64) {
        // No receiver: nobody follows a log, which is fine.
        let _ = self.0.send(job_id);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<i64> {
        self.0.subscribe()
    }
}

macro_rules! from_ref {
    ($($part:ty => $field:ident),* $(,)?) => {
        $(
            impl FromRef<AppState> for $part {
                fn from_ref(state: &AppState) -> $part {
                    state.$field.clone()
                }
            }
        )*
    };
}

from_ref!(
    Arc<Config> => config,
    Store => store,
    Queue => queue,
    Arc<Mirror> => mirror,
    LogEvents => log_events,
    PrometheusHandle => metrics,
    Arc<dyn Clock> => clock,
);
