//! The names of arbor's Prometheus metrics, shared by the parts that record them (the web layer, the
//! worker runtime, job bodies) and the one that renders them (`/metrics` in crate `web`). Names have the
//! `arbor_` prefix and base units; counters end in `_total`; labels are low-cardinality only (kind,
//! outcome, phase, method, matched route, status class; never ids, commits or digests).

/// Counter of HTTP requests, by `method`, `route` (the matched route pattern) and `status` (`2xx`...).
pub const HTTP_REQUESTS_TOTAL: &str = "arbor_http_requests_total";
/// Histogram of HTTP request durations (until the response head), by `method`, `route` and `status`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "arbor_http_request_duration_seconds";
/// Counter of finished jobs, by `kind` and `outcome` (`succeeded`, `failed`, `cancelled`, `retrying`).
pub const JOBS_TOTAL: &str = "arbor_jobs_total";
/// Histogram of job attempt durations, by `kind`.
pub const JOB_DURATION_SECONDS: &str = "arbor_job_duration_seconds";
/// Histogram of compose phase durations, by `phase`.
pub const PHASE_DURATION_SECONDS: &str = "arbor_phase_duration_seconds";
/// Counter of bytes pushed to registries.
pub const PUSHED_BYTES_TOTAL: &str = "arbor_pushed_bytes_total";
/// Gauge of queued jobs, by `kind` (read from the database at scrape time).
pub const JOBS_QUEUED: &str = "arbor_jobs_queued";
/// Gauge of running jobs, by `kind` (read from the database at scrape time).
pub const JOBS_RUNNING: &str = "arbor_jobs_running";
/// Gauge of workers seen within two lease durations (read from the database at scrape time).
pub const WORKERS_ONLINE: &str = "arbor_workers_online";
/// Counter of webhook requests, by `forge` and `outcome` (`push`, `ping`, `ignored`, `refused`).
pub const WEBHOOKS_TOTAL: &str = "arbor_webhooks_total";
