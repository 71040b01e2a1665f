//! `/metrics` in the Prometheus text format: the process's recorder (installed once, [`install`]), HTTP
//! request counts and durations recorded by a middleware ([`record_request`]), and gauges read from the
//! database at scrape time (queue depth by state and kind, workers online). The execution side records
//! job and phase metrics under the names in [`pipeline::metrics`]; they are rendered here as recorded.
//!
//! With several replicas on one database, each exports the same database gauges: aggregate them with
//! `max`, and the counters and histograms (per process) with `sum`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pipeline::metrics::{
    HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, JOB_DURATION_SECONDS, JOBS_QUEUED, JOBS_RUNNING,
    JOBS_TOTAL, PHASE_DURATION_SECONDS, PUSHED_BYTES_TOTAL, WEBHOOKS_TOTAL, WORKERS_ONLINE,
};
use pipeline::store::JobState;

use crate::state::AppState;

/// The text format's content type (version 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// HTTP requests: cache hits take well under a millisecond, database reads a few, live logs are
/// counted until their head is sent.
const HTTP_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Jobs: an unchanged compose takes seconds, a full one minutes to an hour or two.
const JOB_BUCKETS: &[f64] =
    &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0];
/// Compose phases: from a fraction of a second (checking inputs) to most of a compose (installing).
const PHASE_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's metrics recorder the first time, and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics shows only arbor's gauges");
            }
            describe();
            handle
        })
        .clone()
}

fn builder() -> PrometheusBuilder {
    let buckets = [
        (HTTP_REQUEST_DURATION_SECONDS, HTTP_BUCKETS),
        (JOB_DURATION_SECONDS, JOB_BUCKETS),
        (PHASE_DURATION_SECONDS, PHASE_BUCKETS),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in buckets {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
            .expect("only empty bucket lists are refused, and these are not empty");
    }
    builder
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        Unit::Count,
        "HTTP requests by method, matched route and status class."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request durations until the response head, by method, matched route and status class."
    );
    describe_counter!(JOBS_TOTAL, Unit::Count, "Job attempts that ended, by kind and outcome.");
    describe_histogram!(JOB_DURATION_SECONDS, Unit::Seconds, "Job attempt durations by kind.");
    describe_histogram!(PHASE_DURATION_SECONDS, Unit::Seconds, "Compose phase durations by phase.");
    describe_counter!(PUSHED_BYTES_TOTAL, Unit::Bytes, "Bytes pushed to registries.");
    describe_gauge!(JOBS_QUEUED, Unit::Count, "Queued jobs by kind (from the database).");
    describe_gauge!(JOBS_RUNNING, Unit::Count, "Running jobs by kind (from the database).");
    describe_gauge!(
        WORKERS_ONLINE,
        Unit::Count,
        "Workers seen within two lease durations (from the database)."
    );
    describe_counter!(WEBHOOKS_TOTAL, Unit::Count, "Webhook requests by forge and outcome.");
}

/// Serves the metrics.
///
/// Unauthenticated, as Prometheus scrapes it; it holds counts and durations only.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "get_metrics",
    security(()),
    responses((status = 200, description = "The Prometheus text format", body = String, content_type = "text/plain")),
)]
pub(crate) async fn render_metrics(State(state): State<AppState>) -> Response {
    if let Err(error) = set_database_gauges(&state).await {
        tracing::warn!(error = %crate::error::chain(&error), "metrics: reading the queue and workers failed");
    }
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], state.metrics.render()).into_response()
}

async fn set_database_gauges(state: &AppState) -> Result<(), pipeline::StoreError> {
    let (counts, workers) = tokio::try_join!(state.store.count_active_jobs(), state.store.list_workers())?;
    let mut kinds: Vec<String> = pipeline::jobs::ALL_KINDS.iter().map(|kind| kind.to_string()).collect();
    kinds.extend(counts.iter().map(|count| count.kind.clone()));
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        for (name, job_state) in [(JOBS_QUEUED, JobState::Queued), (JOBS_RUNNING, JobState::Running)] {
            let count = counts
                .iter()
                .find(|count| count.kind == kind && count.state == job_state)
                .map_or(0, |count| count.count);
            metrics::gauge!(name, "kind" => kind.clone()).set(count as f64);
        }
    }
    let online_since = crate::api::workers::online_since(state);
    let online = workers.iter().filter(|worker| worker.last_seen >= online_since).count();
    metrics::gauge!(WORKERS_ONLINE).set(online as f64);
    Ok(())
}

/// Counts and times every request by method, matched route (never the path itself, which holds ids)
/// and status class.
pub(crate) async fn record_request(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    };
    let labels = [("method", method.to_string()), ("route", route), ("status", status.to_string())];
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels).record(start.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    response
}

/// The method as a label: the standard ones, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
