//! A client of a running server's JSON API (`/api/v1`), for `arbor remote` and `arbor token` (as `gh` is
//! for GitHub): typed requests and answers (the [`crate::api`] bodies), errors that carry the server's
//! own message, and a live log that follows Server-Sent Events and resumes after a dropped connection.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
pub use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    Build, BuildList, BuildRequest, BuildsRequested, CancelResult, CreatedToken, ErrorResponse, Job, JobList,
    LogEnd, Stream, StreamList, Token, TokenList, TokenRequest, WorkerList,
};
use crate::secret::Secret;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plain request may take (live logs have no limit).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause before a dropped live log reconnects.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Reconnections of a live log in a row without a new line before giving up.
const RECONNECT_ATTEMPTS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{method} {url}: {source}")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("{method} {url}: HTTP {status}: {message} ({code})")]
    Server { method: Method, url: String, status: StatusCode, code: String, message: String },
    #[error("{method} {url}: the answer is not what the API describes: {detail}")]
    Unexpected { method: Method, url: String, detail: String },
    #[error("setting up the HTTP client: {0}")]
    Setup(String),
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Filters of a build list.
#[derive(Debug, Clone, Default)]
pub struct BuildQuery {
    pub status: Option<String>,
    pub arch: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub seq: i64,
    pub line: String,
}

/// A client of one server, with one token (or none, where the server allows anonymous reading).
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// `http(s)://HOST[:PORT]` without a trailing slash.
    server: String,
    token: Option<Secret>,
}

impl ApiClient {
    pub fn new(server: &str, token: Option<Secret>) -> Result<ApiClient, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| ClientError::Setup(error.to_string()))?;
        Ok(ApiClient { http, server: server.trim_end_matches('/').to_string(), token })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.server)
    }

    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Method::GET, path, None::<&()>).await
    }

    async fn send<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut request = self.request(method.clone(), &url).timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|error| ClientError::Unexpected {
                method: method.clone(),
                url: url.clone(),
                detail: error.to_string(),
            })?;
            request = request.header("content-type", "application/json").body(bytes);
        }
        let bytes = successful_body(request, &method, &url).await?;
        serde_json::from_slice(&bytes).map_err(|error| ClientError::Unexpected {
            method,
            url,
            detail: error.to_string(),
        })
    }

    pub async fn streams(&self) -> Result<StreamList, ClientError> {
        self.get("/streams").await
    }

    pub async fn stream(&self, name: &str) -> Result<Stream, ClientError> {
        self.get(&format!("/streams/{}", segment(name))).await
    }

    pub async fn builds(&self, stream: &str, query: &BuildQuery) -> Result<BuildList, ClientError> {
        let mut parameters = Vec::new();
        for (name, value) in [("status", &query.status), ("arch", &query.arch), ("cursor", &query.cursor)] {
            if let Some(value) = value {
                parameters.push(format!("{name}={}", segment(value)));
            }
        }
        if let Some(limit) = query.limit {
            parameters.push(format!("limit={limit}"));
        }
        let query = if parameters.is_empty() { String::new() } else { format!("?{}", parameters.join("&")) };
        self.get(&format!("/streams/{}/builds{query}", segment(stream))).await
    }

    pub async fn build(&self, id: i64) -> Result<Build, ClientError> {
        self.get(&format!("/builds/{id}")).await
    }

    /// Composes the branch head (or `request.commit`) of `stream`.
    pub async fn compose(
        &self,
        stream: &str,
        request: &BuildRequest,
    ) -> Result<BuildsRequested, ClientError> {
        self.send(Method::POST, &format!("/streams/{}/builds", segment(stream)), Some(request)).await
    }

    pub async fn retry(&self, build: i64) -> Result<BuildsRequested, ClientError> {
        self.send(Method::POST, &format!("/builds/{build}/retry"), Some(&serde_json::json!({}))).await
    }

    pub async fn jobs(&self, state: Option<&str>) -> Result<JobList, ClientError> {
        let query = state.map(|state| format!("?state={}", segment(state))).unwrap_or_default();
        self.get(&format!("/jobs{query}")).await
    }

    pub async fn job(&self, id: i64) -> Result<Job, ClientError> {
        self.get(&format!("/jobs/{id}")).await
    }

    pub async fn cancel(&self, job: i64) -> Result<CancelResult, ClientError> {
        self.send(Method::POST, &format!("/jobs/{job}/cancel"), Some(&serde_json::json!({}))).await
    }

    pub async fn workers(&self) -> Result<WorkerList, ClientError> {
        self.get("/workers").await
    }

    pub async fn tokens(&self) -> Result<TokenList, ClientError> {
        self.get("/tokens").await
    }

    pub async fn create_token(&self, request: &TokenRequest) -> Result<CreatedToken, ClientError> {
        self.send(Method::POST, "/tokens", Some(request)).await
    }

    pub async fn revoke_token(&self, id: i64) -> Result<Token, ClientError> {
        self.send(Method::DELETE, &format!("/tokens/{id}"), None::<&()>).await
    }

    /// The whole log of a job as text.
    pub async fn log_text(&self, job: i64) -> Result<String, ClientError> {
        let url = self.url(&format!("/jobs/{job}/log"));
        let method = Method::GET;
        let request =
            self.request(method.clone(), &url).header("accept", "text/plain").timeout(REQUEST_TIMEOUT);
        let bytes = successful_body(request, &method, &url).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Follows a job's log from after line `after` until the job ends, calling `line` for each line in
    /// order (never twice, also across reconnections); returns how the job ended.
    pub async fn follow_log(
        &self,
        job: i64,
        after: i64,
        mut line: impl FnMut(LogLine),
    ) -> Result<LogEnd, ClientError> {
        let url = self.url(&format!("/jobs/{job}/log"));
        let method = Method::GET;
        let mut last = after;
        let mut attempts = 0;
        loop {
            let request = self
                .request(method.clone(), &url)
                .header("accept", "text/event-stream")
                .header("last-event-id", last.to_string());
            let outcome = async {
                let response = request.send().await?;
                Ok::<_, reqwest::Error>(response)
            }
            .await;
            let response = match outcome {
                Ok(response) => response,
                Err(source) if attempts < RECONNECT_ATTEMPTS => {
                    tracing::debug!(%source, "the live log's connection failed; reconnecting");
                    attempts += 1;
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
                Err(source) => return Err(ClientError::Transport { method, url, source }),
            };
            let status = response.status();
            if !status.is_success() {
                let bytes = response.bytes().await.unwrap_or_default();
                return Err(server_error(method, url, status, &bytes));
            }
            let mut events = EventParser::default();
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                for event in events.push(&chunk) {
                    match event.name.as_deref() {
                        Some("end") => {
                            return serde_json::from_str(&event.data).map_err(|error| {
                                ClientError::Unexpected {
                                    method,
                                    url,
                                    detail: format!("the end event: {error}"),
                                }
                            });
                        }
                        None | Some("message") => {
                            let seq = event.id.as_deref().and_then(|id| id.parse().ok()).unwrap_or(last + 1);
                            if seq > last {
                                last = seq;
                                attempts = 0;
                                line(LogLine { seq, line: event.data });
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            // The connection dropped before the end event: resume after the last line seen.
            if attempts >= RECONNECT_ATTEMPTS {
                return Err(ClientError::Unexpected {
                    method,
                    url,
                    detail: "the live log kept dropping without new lines".to_string(),
                });
            }
            attempts += 1;
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }
}

/// Sends `request` and reads the whole body of a successful answer; any other status is the server's
/// error.
async fn successful_body(
    request: reqwest::RequestBuilder,
    method: &Method,
    url: &str,
) -> Result<Vec<u8>, ClientError> {
    let transport = |source| ClientError::Transport { method: method.clone(), url: url.to_string(), source };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(transport)?;
    if !status.is_success() {
        return Err(server_error(method.clone(), url.to_string(), status, &bytes));
    }
    Ok(bytes.to_vec())
}

/// The server's error answer as an error.
fn server_error(method: Method, url: String, status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorResponse>(bytes) {
        Ok(answer) => ClientError::Server {
            method,
            url,
            status,
            code: answer.error.code,
            message: answer.error.message,
        },
        Err(_) => ClientError::Server {
            method,
            url,
            status,
            code: "unknown".to_string(),
            message: String::from_utf8_lossy(bytes).chars().take(500).collect(),
        },
    }
}

/// `text` percent-encoded for a path segment or query value.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Event {
    id: Option<String>,
    name: Option<String>,
    data: String,
}

/// Splits a `text/event-stream` body into events as chunks arrive (lines end in `\n`, events in a blank
/// line; `:` lines are comments, such as keep-alives).
#[derive(Debug, Default)]
struct EventParser {
    pending: Vec<u8>,
    event: Event,
    has_data: bool,
}

impl EventParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw[..raw.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if self.has_data || self.event.name.is_some() {
                    events.push(std::mem::take(&mut self.event));
                }
                self.event = Event::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line
                .split_once(':')
                .map_or((line, ""), |(field, value)| (field, value.strip_prefix(' ').unwrap_or(value)));
            match field {
                "id" => self.event.id = Some(value.to_string()),
                "event" => self.event.name = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.event.data.push('\n');
                    }
                    self.event.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_across_chunks_and_comments_are_skipped() {
        let mut parser = EventParser::default();
        let mut events = parser.push(b": keep-alive\n\nid: 1\ndata: first line\n\nid: 2\nda");
        events.extend(parser.push(b"ta: second\ndata: continued\n\nevent: end\ndata: {\"x\":1}\n\n"));
        assert_eq!(
            events,
            [
                Event { id: Some("1".into()), name: None, data: "first line".into() },
                Event { id: Some("2".into()), name: None, data: "second\ncontinued".into() },
                Event { id: None, name: Some("end".into()), data: "{\"x\":1}".into() },
            ]
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("testing-devel"), "testing-devel");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
