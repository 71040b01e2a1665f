//! Jobs: lists, one job, cancellation; logs as text and live (Server-Sent Events over a real socket).

use std::pin::Pin;
use std::time::Duration;

use axum::http::Method;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use pipeline::api::{BuildsRequested, CancelOutcome, CancelResult, Job, JobList, LogEnd};
use pipeline::queue::Lease;
use pipeline::store::{BuildStatus, JobState, NewLogLine};

use crate::harness::{STREAM, TestServer, succeeded};

/// How long a test waits for one event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

async fn compose(server: &TestServer) -> BuildsRequested {
    server.post(&format!("/api/v1/streams/{STREAM}/builds"), &server.tokens.write, None).await.parse()
}

async fn append(server: &TestServer, lease: &Lease, lines: impl IntoIterator<Item = String>) {
    let lines: Vec<NewLogLine> = lines.into_iter().map(|line| NewLogLine { time: 1, line }).collect();
    server.queue.append_logs(lease, &lines).await.expect("append");
}

#[tokio::test]
async fn jobs_are_listed_shown_and_filtered() {
    let server = TestServer::start().await;
    let requested = compose(&server).await;
    server.claim("x86_64").await;
    let list: JobList = server.get("/api/v1/jobs", &server.tokens.read).await.parse();
    assert_eq!(list.items.len(), 2);
    assert!(list.items[0].id > list.items[1].id, "newest first");
    let running: JobList = server.get("/api/v1/jobs?state=running", &server.tokens.read).await.parse();
    assert_eq!(running.items.len(), 1);
    let job = &running.items[0];
    assert_eq!(
        (job.kind.as_str(), job.arch.as_deref(), job.state),
        ("compose", Some("x86_64"), JobState::Running)
    );
    assert_eq!((job.worker_id.as_deref(), job.attempts), (Some("w_test"), 1));
    assert_eq!(job.payload["stream"], STREAM);
    assert!(job.lease_expires_at.is_some());
    let raw = server.get(&format!("/api/v1/jobs/{}", job.id), &server.tokens.read).await;
    assert!(!raw.text().contains("lease_token"), "the lease token is never shown");
    let one: Job = raw.parse();
    assert_eq!(one, *job);
    assert_eq!(requested.builds[0].job_id, job.id);
    let page: JobList = server.get("/api/v1/jobs?limit=1", &server.tokens.read).await.parse();
    let next: JobList = server
        .get(&format!("/api/v1/jobs?limit=1&cursor={}", page.next_cursor.unwrap()), &server.tokens.read)
        .await
        .parse();
    assert_eq!((next.items.len(), next.next_cursor), (1, None));
    server.get("/api/v1/jobs/424242", &server.tokens.read).await.assert_error(404, "not_found");
}

#[tokio::test]
async fn cancelling_queued_running_and_finished_jobs() {
    let server = TestServer::start().await;
    let requested = compose(&server).await;
    let (x86, aarch64) = (&requested.builds[0], &requested.builds[1]);
    let claimed = server.claim("x86_64").await;

    let response =
        server.post(&format!("/api/v1/jobs/{}/cancel", aarch64.job_id), &server.tokens.write, None).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let cancelled: CancelResult = response.parse();
    assert_eq!((cancelled.outcome, cancelled.state), (CancelOutcome::Cancelled, JobState::Cancelled));
    let build = server.store.get_build(aarch64.build.id).await.unwrap().unwrap();
    assert_eq!(build.summary.status, BuildStatus::Cancelled);

    let response =
        server.post(&format!("/api/v1/jobs/{}/cancel", x86.job_id), &server.tokens.write, None).await;
    assert_eq!(response.status, 202);
    let requested_cancel: CancelResult = response.parse();
    assert_eq!(
        (requested_cancel.outcome, requested_cancel.state),
        (CancelOutcome::Requested, JobState::Running)
    );
    assert!(server.queue.heartbeat(&claimed.lease).await.unwrap().cancel_requested, "the worker sees it");

    let message = server
        .post(&format!("/api/v1/jobs/{}/cancel", aarch64.job_id), &server.tokens.write, None)
        .await
        .assert_error(409, "job_finished");
    assert!(message.contains("cancelled"), "{message}");
    server
        .post("/api/v1/jobs/424242/cancel", &server.tokens.write, None)
        .await
        .assert_error(404, "not_found");
    server
        .post(&format!("/api/v1/jobs/{}/cancel", x86.job_id), &server.tokens.read, None)
        .await
        .assert_error(403, "missing_scope");
}

#[tokio::test]
async fn logs_as_text() {
    let server = TestServer::start().await;
    let requested = compose(&server).await;
    let job_id = requested.builds[0].job_id;
    let log = format!("/api/v1/jobs/{job_id}/log");
    let empty = server.get(&log, &server.tokens.read).await;
    assert_eq!((empty.status.as_u16(), empty.text().as_str()), (200, ""));
    assert_eq!(empty.headers["content-type"], "text/plain; charset=utf-8");
    let claimed = server.claim("x86_64").await;
    append(
        &server,
        &claimed.lease,
        ["resolving".to_string(), "installing 3 packages".to_string(), "done".to_string()],
    )
    .await;
    assert_eq!(
        server.get(&log, &server.tokens.read).await.text(),
        "resolving\ninstalling 3 packages\ndone\n"
    );
    assert_eq!(
        server.get(&format!("{log}?after=1"), &server.tokens.read).await.text(),
        "installing 3 packages\ndone\n"
    );
    server.get("/api/v1/jobs/424242/log", &server.tokens.read).await.assert_error(404, "not_found");
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Reads events off a live log response.
struct EventReader {
    chunks: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
}

impl EventReader {
    async fn open(server: &TestServer, base: &str, job_id: i64, last_event_id: Option<i64>) -> EventReader {
        let mut request = reqwest::Client::new()
            .get(format!("{base}/api/v1/jobs/{job_id}/log"))
            .header("accept", "text/event-stream")
            .header("accept-encoding", "gzip, br")
            .bearer_auth(&server.tokens.read);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("the live log");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert!(response.headers().get("content-encoding").is_none(), "live logs are never compressed");
        EventReader { chunks: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event (keep-alive comments skipped), `None` when the stream ended.
    async fn next(&mut self) -> Option<ServerEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = ServerEvent { id: None, event: None, data: String::new() };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
                        event.id = Some(value.to_string());
                    } else if let Some(value) =
                        line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:"))
                    {
                        event.event = Some(value.to_string());
                    } else if let Some(value) =
                        line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:"))
                    {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_data = true;
                    }
                }
                if has_data || event.event.is_some() {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(EVENT_TIMEOUT, self.chunks.next())
                .await
                .expect("an event within the timeout")?;
            self.buffer.push_str(std::str::from_utf8(&chunk.expect("a chunk")).expect("UTF-8"));
        }
    }

    async fn lines(&mut self, count: usize) -> Vec<(i64, String)> {
        let mut lines = Vec::with_capacity(count);
        while lines.len() < count {
            let event = self.next().await.expect("more events");
            assert_eq!(event.event, None, "a line, not {event:?}");
            lines.push((event.id.expect("an id").parse().expect("a numeric id"), event.data));
        }
        lines
    }
}

fn numbered(range: std::ops::RangeInclusive<i64>) -> Vec<(i64, String)> {
    range.map(|seq| (seq, format!("line {seq}"))).collect()
}

#[tokio::test]
async fn live_logs_replay_after_the_last_event_id_follow_and_end() {
    let server = TestServer::start().await;
    let listening = server.listen().await;
    let job_id = compose(&server).await.builds[0].job_id;
    let claimed = server.claim("x86_64").await;
    append(&server, &claimed.lease, (1..=5).map(|seq| format!("line {seq}"))).await;

    let mut reader = EventReader::open(&server, &listening.base, job_id, Some(2)).await;
    assert_eq!(reader.lines(3).await, numbered(3..=5), "the lines after Last-Event-ID, once");

    // Appended in this process and announced: followed at once.
    append(&server, &claimed.lease, (6..=7).map(|seq| format!("line {seq}"))).await;
    server.state.log_events.appended(job_id);
    assert_eq!(reader.lines(2).await, numbered(6..=7));
    // Appended without an announcement (as through another replica): found by the slow poll.
    append(&server, &claimed.lease, ["line 8".to_string()]).await;
    assert_eq!(reader.lines(1).await, numbered(8..=8));

    server.queue.complete(&claimed.lease, succeeded()).await.unwrap();
    server.state.log_events.appended(job_id);
    let end = reader.next().await.expect("the end event");
    assert_eq!(end.event.as_deref(), Some("end"));
    let end: LogEnd = serde_json::from_str(&end.data).unwrap();
    assert_eq!((end.job_id, end.state, end.log_lines, end.error), (job_id, JobState::Succeeded, 8, None));
    assert_eq!(reader.next().await, None, "the stream closes after the end event");

    // Reconnecting after the end replays what is left, then ends again.
    let mut again = EventReader::open(&server, &listening.base, job_id, Some(7)).await;
    assert_eq!(again.lines(1).await, numbered(8..=8));
    assert_eq!(again.next().await.unwrap().event.as_deref(), Some("end"));
}

#[tokio::test]
async fn a_long_log_streams_whole_and_in_order() {
    let server = TestServer::start().await;
    let listening = server.listen().await;
    let job_id = compose(&server).await.builds[0].job_id;
    let claimed = server.claim("x86_64").await;
    let total = 25_000;
    for chunk in (1..=total).collect::<Vec<i64>>().chunks(5000) {
        append(&server, &claimed.lease, chunk.iter().map(|seq| format!("line {seq}"))).await;
    }
    server.queue.complete(&claimed.lease, succeeded()).await.unwrap();
    let mut reader = EventReader::open(&server, &listening.base, job_id, None).await;
    let lines = reader.lines(total as usize).await;
    assert_eq!(lines, numbered(1..=total));
    assert_eq!(reader.next().await.unwrap().event.as_deref(), Some("end"));
    let text = server.get(&format!("/api/v1/jobs/{job_id}/log"), &server.tokens.read).await.text();
    assert_eq!(text.lines().count(), total as usize);
    assert_eq!(text.lines().last(), Some("line 25000"));
}

#[tokio::test]
async fn a_live_log_of_a_job_cancelled_while_queued_ends() {
    let server = TestServer::start().await;
    let listening = server.listen().await;
    let job_id = compose(&server).await.builds[1].job_id;
    let mut reader = EventReader::open(&server, &listening.base, job_id, None).await;
    let response = server
        .call(Method::POST, &format!("/api/v1/jobs/{job_id}/cancel"), Some(&server.tokens.write), None)
        .await;
    assert_eq!(response.status, 200);
    let end = reader.next().await.expect("the end event");
    let end: LogEnd = serde_json::from_str(&end.data).unwrap();
    assert_eq!((end.state, end.log_lines), (JobState::Cancelled, 0));
}

#[tokio::test]
async fn a_malformed_last_event_id_is_400() {
    let server = TestServer::start().await;
    let job_id = compose(&server).await.builds[0].job_id;
    let request = axum::http::Request::get(format!("/api/v1/jobs/{job_id}/log"))
        .header("authorization", format!("Bearer {}", server.tokens.read))
        .header("accept", "text/event-stream")
        .header("last-event-id", "yesterday")
        .body(axum::body::Body::empty())
        .unwrap();
    server.send(request).await.assert_error(400, "invalid_last_event_id");
}
