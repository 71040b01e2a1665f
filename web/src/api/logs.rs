//! `GET /api/v1/jobs/{id}/log`: a job's log as text, or live as Server-Sent Events.
//!
//! Live logs: each event's id is the line's sequence number and its data the line. A client that
//! reconnects with `Last-Event-ID` (or `?after=`) gets the lines after it, from the store, so no line is
//! lost or repeated whichever replica it reaches. After the replay the stream follows: it wakes on
//! [`LogEvents`](crate::state::LogEvents) (appends and job ends in this process) or, for appends made
//! through other replicas, every [`LOG_POLL_FALLBACK`]. Lines go out in batches of up to
//! [`MAXIMUM_LOG_READ`] per query. When the job has ended and every line was sent, an `end` event carries
//! its final state ([`LogEnd`]) and the stream closes. A comment every [`KEEP_ALIVE_INTERVAL`] keeps
//! proxies from closing an idle stream; the stream also closes when the server shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use pipeline::Store;
use pipeline::api::{ErrorResponse, LogEnd};
use pipeline::store::{Job, LogLine, MAXIMUM_LOG_READ};
use serde::Deserialize;
use tokio::sync::broadcast;

use super::jobs::unknown_job;
use crate::auth::{Read, Require};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::serve::ShutdownSignal;
use crate::state::AppState;

/// How often a followed log looks at the store when nothing woke it: lines appended through another
/// replica show up at most this late.
pub const LOG_POLL_FALLBACK: Duration = Duration::from_secs(1);
/// A comment this often keeps idle live logs open through proxies (which often close after 30-60 s).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
const EVENT_STREAM: &str = "text/event-stream";

/// Where the log starts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    /// Only lines after this sequence number (a live log's `Last-Event-ID` takes precedence).
    after: Option<i64>,
}

/// A job's log.
///
/// `text/plain`: the lines so far, one per line. With `Accept: text/event-stream`: Server-Sent Events, one
/// per line (`id` = the line's sequence number, `data` = the line), following the job until an `end`
/// event whose data is the job's final state as JSON (`LogEnd`); resume with `Last-Event-ID`. Needs the
/// `read` scope (or none with `public-read`).
#[utoipa::path(
    get,
    path = "/jobs/{id}/log",
    tag = "jobs",
    operation_id = "get_job_log",
    params(
        ("id" = i64, Path, description = "The job's id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume a live log after this line"),
        LogQuery,
    ),
    responses(
        (status = 200, description = "The log", content(
            (String = "text/plain"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "A malformed `after` or `Last-Event-ID`", body = ErrorResponse),
        (status = 401, description = "No token, or an invalid one", body = ErrorResponse),
        (status = 403, description = "The token lacks the read scope", body = ErrorResponse),
        (status = 404, description = "No such job", body = ErrorResponse),
    ),
)]
pub(crate) async fn job_log(
    _caller: Require<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
    shutdown: Option<axum::Extension<ShutdownSignal>>,
) -> Result<Response, ApiError> {
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_last_event_id",
                    "Last-Event-ID must be a line's sequence number (0, 1, 2...)",
                )
            })?,
        None => match query.after {
            Some(after) if after < 0 => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "after must be a line's sequence number (0, 1, 2...)",
                ));
            }
            after => after.unwrap_or(0),
        },
    };
    // Subscribed before the first read, so an append right after it still wakes the stream.
    let wake = state.log_events.subscribe();
    state.store.get_job(id).await?.ok_or_else(|| unknown_job(id))?;
    let wants_events = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|value| value.to_str().is_ok_and(|text| text.contains(EVENT_STREAM)));
    if !wants_events {
        return Ok(text_log(state.store.clone(), id, after));
    }
    let follow = Follow {
        store: state.store.clone(),
        job_id: id,
        after,
        wake,
        shutdown: shutdown.map(|signal| signal.0.0.clone()),
        ended: false,
    };
    let events = stream::unfold(follow, Follow::next_events)
        .flat_map(|events| stream::iter(events.into_iter().map(Ok::<_, Infallible>)));
    let mut response =
        Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)).into_response();
    // nginx and similar proxies buffer responses unless told not to.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The lines after `after`, streamed in batches.
fn text_log(store: Store, job_id: i64, after: i64) -> Response {
    let batches = stream::try_unfold(Some(after), move |after| {
        let store = store.clone();
        async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let lines = store.read_logs(job_id, after, MAXIMUM_LOG_READ).await?;
            let Some(last) = lines.last().map(|line| line.seq) else {
                return Ok(None);
            };
            let more = lines.len() == MAXIMUM_LOG_READ as usize;
            let mut text = String::with_capacity(lines.iter().map(|line| line.line.len() + 1).sum());
            for line in &lines {
                text.push_str(&line.line);
                text.push('\n');
            }
            Ok::<_, pipeline::StoreError>(Some((Bytes::from(text), more.then_some(last))))
        }
    });
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(batches)).into_response()
}

/// A live log's position.
struct Follow {
    store: Store,
    job_id: i64,
    /// The last sequence number sent.
    after: i64,
    wake: broadcast::Receiver<i64>,
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    ended: bool,
}

impl Follow {
    /// The next batch of events, `None` when the stream is over.
    async fn next_events(mut self) -> Option<(Vec<Event>, Follow)> {
        if self.ended {
            return None;
        }
        loop {
            match self.lines().await {
                Ok(Some(events)) => return Some((events, self)),
                Ok(None) => {}
                Err(error) => return Some((vec![self.failed(error)], self)),
            }
            // No new line. Lines are all appended before a job ends, so a job seen ended now has every
            // line in the store: read once more, then end.
            let job = match self.store.get_job(self.job_id).await {
                Ok(Some(job)) => job,
                Ok(None) => return None,
                Err(error) => return Some((vec![self.failed(error)], self)),
            };
            if job.state.is_final() {
                return match self.lines().await {
                    Ok(Some(events)) => Some((events, self)),
                    Ok(None) => {
                        self.ended = true;
                        Some((vec![end_event(&job)], self))
                    }
                    Err(error) => Some((vec![self.failed(error)], self)),
                };
            }
            if !self.wait().await {
                return None;
            }
        }
    }

    /// Events for the lines after the last one sent, `None` when there are none yet.
    async fn lines(&mut self) -> Result<Option<Vec<Event>>, pipeline::StoreError> {
        let lines: Vec<LogLine> = self.store.read_logs(self.job_id, self.after, MAXIMUM_LOG_READ).await?;
        let Some(last) = lines.last() else {
            return Ok(None);
        };
        self.after = last.seq;
        Ok(Some(
            lines.into_iter().map(|line| Event::default().id(line.seq.to_string()).data(line.line)).collect(),
        ))
    }

    /// Waits for a wake-up of this job, the poll interval, or shutdown (then `false`).
    async fn wait(&mut self) -> bool {
        let job_id = self.job_id;
        let woken = async {
            loop {
                match self.wake.recv().await {
                    Ok(id) if id == job_id => return,
                    Ok(_) => {}
                    // Missed some: look anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    // Nothing sends any more; the poll interval decides.
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        let shutdown = async {
            match self.shutdown.as_mut() {
                Some(shutdown) => {
                    let _ = shutdown.wait_for(|stopping| *stopping).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = woken => true,
            () = tokio::time::sleep(LOG_POLL_FALLBACK) => true,
            () = shutdown => false,
        }
    }

    fn failed(&mut self, error: pipeline::StoreError) -> Event {
        tracing::error!(job.id = self.job_id, error = %crate::error::chain(&error), "a live log failed");
        self.ended = true;
        Event::default().event("error").data("reading the log failed; reconnect with Last-Event-ID to resume")
    }
}

fn end_event(job: &Job) -> Event {
    let end = LogEnd { job_id: job.id, state: job.state, log_lines: job.log_lines, error: job.error.clone() };
    let data = serde_json::to_string(&end).unwrap_or_default();
    Event::default().event("end").data(data)
}
