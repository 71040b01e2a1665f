//! One authenticated conversation with a registry repository: building requests (bodies streamed
//! from files), stall timeouts, status checks, and the basic / bearer-token authentication flow.

use super::auth::{AuthEnvironment, Challenge, CredentialLookup, find_credentials, parse_challenge};
use super::layout::{
    ACCEPTED_MANIFEST_TYPES, MAXIMUM_MANIFEST_BYTES, Manifest, sha256_digest, temporary_path,
};
use super::{RegistryError, RegistryOptions, RegistryReference, UPLOAD_CHUNK_BYTES};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// Bytes read from a blob file per body chunk: large enough that the blocking reads cost little,
/// small enough that a stalled connection is noticed (the stall timer restarts per chunk).
const FILE_READ_BYTES: usize = 1024 * 1024;
/// How much of an error response body is read for the message.
const MAXIMUM_ERROR_BODY_BYTES: u64 = 64 * 1024;
/// How much of an error body ends up in a message.
const MAXIMUM_ERROR_DETAIL_CHARACTERS: usize = 300;
/// The largest token-endpoint answer read; tokens are a few kilobytes.
const MAXIMUM_TOKEN_RESPONSE_BYTES: u64 = 1024 * 1024;
/// The header registries put the content digest in.
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
/// The user agent sent with every request.
const USER_AGENT: &str = concat!("arbor/", env!("CARGO_PKG_VERSION"));
/// The media type of blob upload bodies.
const OCTET_STREAM: &str = "application/octet-stream";

/// What a session will do in its repository, which decides the token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "pull,push",
        }
    }
}

/// The body of a request, rebuilt for every attempt.
#[derive(Debug, Clone)]
pub(super) enum RequestBody {
    Empty,
    Bytes(Vec<u8>),
    /// `length` bytes of `path` from `offset`, streamed.
    File {
        path: PathBuf,
        offset: u64,
        length: u64,
    },
}

impl RequestBody {
    fn length(&self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Bytes(bytes) => bytes.len() as u64,
            Self::File { length, .. } => *length,
        }
    }
}

/// The last moment a request made progress; a request without progress for the session's request
/// timeout fails.
#[derive(Debug)]
struct Progress {
    origin: Instant,
    last_millis: AtomicU64,
}

impl Progress {
    fn new() -> Arc<Self> {
        Arc::new(Self { origin: Instant::now(), last_millis: AtomicU64::new(0) })
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.fetch_max(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }
}

/// Runs `future` until it finishes or `progress` stands still for `timeout`; `None` on a stall.
async fn unless_stalled<F: Future>(progress: &Progress, timeout: Duration, future: F) -> Option<F::Output> {
    tokio::pin!(future);
    loop {
        let deadline = progress.last() + timeout;
        tokio::select! {
            output = &mut future => return Some(output),
            () = tokio::time::sleep_until(deadline) => {
                if progress.last() + timeout <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// A request body streaming `length` bytes of `path` from `offset` in [`FILE_READ_BYTES`] pieces
/// read on the blocking pool.
fn file_body(
    path: &Path,
    offset: u64,
    length: u64,
    progress: Arc<Progress>,
) -> Result<reqwest::Body, RegistryError> {
    let mut file = std::fs::File::open(path).map_err(RegistryError::io(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(RegistryError::io(path))?;
    let state = (Some(file), length, progress);
    let stream = futures_util::stream::try_unfold(state, |(file, remaining, progress)| async move {
        let Some(mut file) = file.filter(|_| remaining > 0) else {
            return Ok::<_, std::io::Error>(None);
        };
        let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(FILE_READ_BYTES);
        let (file, buffer) = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0; want];
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buffer[filled..]) {
                    Ok(0) => {
                        let message = "the blob file is shorter than its descriptor says";
                        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, message));
                    }
                    Ok(read) => filled += read,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            Ok((file, buffer))
        })
        .await
        .map_err(std::io::Error::other)??;
        progress.touch();
        let remaining = remaining - buffer.len() as u64;
        Ok(Some((buffer, (Some(file), remaining, progress))))
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// `url` without its query (upload URLs carry long opaque state), for messages.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// The error and its causes, joined with ": ", without repeats.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// An open, authenticated session with one repository of one registry.
#[derive(Debug)]
pub(super) struct Session {
    http: reqwest::Client,
    /// `https://host/` or `http://host/`.
    base: Url,
    pub registry: String,
    pub repository: String,
    access: Access,
    credentials: CredentialLookup,
    /// The `Authorization` header value in use (never logged).
    authorization: Mutex<Option<String>>,
    pub options: RegistryOptions,
}

impl Session {
    /// Finds credentials, picks the scheme (HTTPS; with `tls_verify` off, plain HTTP when the
    /// registry does not speak TLS) and authenticates.
    pub async fn open(
        reference: &RegistryReference,
        options: &RegistryOptions,
        access: Access,
    ) -> Result<Self, RegistryError> {
        let credentials = find_credentials(
            options.auth_file.as_deref(),
            &AuthEnvironment::from_process(),
            &reference.registry,
            &reference.repository,
        )?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(options.connect_timeout)
            .tls_danger_accept_invalid_certs(!options.tls_verify)
            .build()
            .map_err(|error| RegistryError::Client(error_chain(&error)))?;
        let host = reference.api_host();
        let base = |scheme: &str| {
            Url::parse(&format!("{scheme}://{host}/")).map_err(|error| RegistryError::InvalidReference {
                reference: reference.to_string(),
                reason: format!("`{host}` is not a valid registry host: {error}"),
            })
        };
        let mut session = Self {
            http,
            base: base("https")?,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            access,
            credentials,
            authorization: Mutex::new(None),
            options: options.clone(),
        };
        if !options.tls_verify {
            match session.ping().await {
                Ok(()) => return Ok(session),
                Err(error @ (RegistryError::Transport { .. } | RegistryError::Timeout { .. })) => {
                    tracing::debug!(registry = %session.registry, %error, "no TLS; trying plain HTTP");
                    session.base = base("http")?;
                }
                Err(error) if !error.is_retryable() => return Err(error),
                // It answered over TLS, but with a passing failure: keep HTTPS and retry below.
                Err(_) => {}
            }
        }
        let this = &session;
        this.options.retry.run(&format!("connecting to {}", this.registry), |_| this.ping()).await?;
        Ok(session)
    }

    /// `GET /v2/`, authenticating when the registry asks to.
    async fn ping(&self) -> Result<(), RegistryError> {
        let url = self.url("v2/")?;
        let response = self.send(Method::GET, &url, HeaderMap::new(), RequestBody::Empty).await?;
        self.check(response, &Method::GET, &url, |status| status.is_success()).await?;
        Ok(())
    }

    /// The URL of `path` (relative to the registry root).
    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base.join(path).map_err(|error| RegistryError::Protocol {
            url: self.base.to_string(),
            detail: format!("cannot form the URL of `{path}`: {error}"),
        })
    }

    fn repository_url(&self, rest: &str) -> Result<Url, RegistryError> {
        self.url(&format!("v2/{}/{rest}", self.repository))
    }

    fn authentication_failed(&self) -> RegistryError {
        RegistryError::AuthenticationFailed { registry: self.registry.clone(), hint: self.credentials.hint() }
    }

    /// Sends one request with the current authorization; on a 401 it authenticates as the
    /// challenge says and sends it once more. Fails with a timeout when the request stalls.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: RequestBody,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut challenged = false;
        loop {
            let progress = Progress::new();
            let mut request = self.http.request(method.clone(), url.clone()).headers(headers.clone());
            let authorization = self.authorization.lock().unwrap_or_else(PoisonError::into_inner).clone();
            if let Some(value) = authorization {
                let mut value = HeaderValue::from_str(&value).map_err(|_| self.authentication_failed())?;
                value.set_sensitive(true);
                request = request.header(header::AUTHORIZATION, value);
            }
            if method != Method::GET && method != Method::HEAD {
                request = request.header(header::CONTENT_LENGTH, body.length());
            }
            request = match &body {
                RequestBody::Empty => request,
                RequestBody::Bytes(bytes) => request.body(bytes.clone()),
                RequestBody::File { path, offset, length } => {
                    request.body(file_body(path, *offset, *length, Arc::clone(&progress))?)
                }
            };
            let timeout = self.options.request_timeout;
            let response = match unless_stalled(&progress, timeout, request.send()).await {
                None => return Err(self.timeout(&method, url)),
                Some(Err(error)) => return Err(self.transport_error(&method, url, error)),
                Some(Ok(response)) => response,
            };
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok())
                .and_then(parse_challenge);
            if challenged || !self.authenticate(challenge).await? {
                tracing::warn!(registry = %self.registry, url = %display_url(url), "authentication failed");
                return Err(self.authentication_failed());
            }
            challenged = true;
        }
    }

    /// Answers an authentication challenge: basic credentials, or a bearer token from the token
    /// endpoint. False when there is nothing to answer with.
    async fn authenticate(&self, challenge: Option<Challenge>) -> Result<bool, RegistryError> {
        let credentials = self.credentials.found.as_ref().map(|(credentials, _)| credentials);
        let authorization = match challenge {
            Some(Challenge::Basic) => match credentials {
                Some(credentials) => credentials.basic_header(),
                None => return Ok(false),
            },
            Some(Challenge::Bearer { realm, service, scope }) => {
                format!("Bearer {}", self.fetch_token(&realm, service.as_deref(), scope.as_deref()).await?)
            }
            None => return Ok(false),
        };
        *self.authorization.lock().unwrap_or_else(PoisonError::into_inner) = Some(authorization);
        Ok(true)
    }

    /// Gets a bearer token for this repository (and the challenge's scope) from `realm`.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        challenge_scope: Option<&str>,
    ) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm).map_err(|error| RegistryError::Protocol {
            url: self.base.to_string(),
            detail: format!("the token realm `{realm}` is not a URL: {error}"),
        })?;
        {
            let own_scope = format!("repository:{}:{}", self.repository, self.access.actions());
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &own_scope);
            if let Some(scope) = challenge_scope.filter(|scope| *scope != own_scope) {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self.http.get(url.clone());
        if let Some((credentials, _)) = &self.credentials.found {
            let mut value = HeaderValue::from_str(&credentials.basic_header())
                .map_err(|_| self.authentication_failed())?;
            value.set_sensitive(true);
            request = request.header(header::AUTHORIZATION, value);
        }
        let progress = Progress::new();
        let response = match unless_stalled(&progress, self.options.request_timeout, request.send()).await {
            None => return Err(self.timeout(&Method::GET, &url)),
            Some(Err(error)) => return Err(self.transport_error(&Method::GET, &url, error)),
            Some(Ok(response)) => response,
        };
        if matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            tracing::warn!(registry = %self.registry, realm, "the token endpoint refused the credentials");
            return Err(self.authentication_failed());
        }
        let response = self.check(response, &Method::GET, &url, |status| status.is_success()).await?;
        let body = self
            .read_body(response, &Method::GET, &url, MAXIMUM_TOKEN_RESPONSE_BYTES, "token response")
            .await?;
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|error| RegistryError::Protocol {
                url: display_url(&url),
                detail: format!("the token response is not JSON: {error}"),
            })?;
        token.token.or(token.access_token).filter(|token| !token.is_empty()).ok_or_else(|| {
            RegistryError::Protocol {
                url: display_url(&url),
                detail: "the token response holds no token".to_string(),
            }
        })
    }

    fn timeout(&self, method: &Method, url: &Url) -> RegistryError {
        RegistryError::Timeout {
            method: method.to_string(),
            url: display_url(url),
            timeout: self.options.request_timeout,
        }
    }

    fn transport_error(&self, method: &Method, url: &Url, error: reqwest::Error) -> RegistryError {
        if error.is_timeout() {
            return self.timeout(method, url);
        }
        // reqwest's message repeats the URL (with the upload state); the variant names it already.
        let detail = error_chain(&error.without_url());
        RegistryError::Transport { method: method.to_string(), url: display_url(url), detail }
    }

    /// Returns `response` when `accept(status)`, else the error it describes (403, 404 and others
    /// with the registry's error codes and `Retry-After`).
    async fn check(
        &self,
        response: reqwest::Response,
        method: &Method,
        url: &Url,
        accept: impl Fn(StatusCode) -> bool,
    ) -> Result<reqwest::Response, RegistryError> {
        let status = response.status();
        if accept(status) {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = self.read_body(response, method, url, MAXIMUM_ERROR_BODY_BYTES, "error response").await;
        let body = body.unwrap_or_default();
        let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let code = parsed.as_ref().and_then(|parsed| parsed.errors.first()).map(|entry| entry.code.clone());
        let text = match &parsed {
            Some(parsed) if !parsed.errors.is_empty() => parsed
                .errors
                .iter()
                .map(|entry| format!("{} {}", entry.code, entry.message).trim().to_string())
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::from_utf8_lossy(&body).trim().to_string(),
        };
        let text: String = text.chars().take(MAXIMUM_ERROR_DETAIL_CHARACTERS).collect();
        let detail = if text.is_empty() { String::new() } else { format!(": {text}") };
        if status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Denied {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                detail,
                hint: self.credentials.hint(),
            });
        }
        Err(RegistryError::Status {
            method: method.to_string(),
            url: display_url(url),
            status: status.as_u16(),
            code,
            detail,
            retry_after,
        })
    }

    /// Reads a whole response body of at most `limit` bytes, each piece within the stall timeout.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        method: &Method,
        url: &Url,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, RegistryError> {
        if response.content_length().is_some_and(|length| length > limit) {
            return Err(RegistryError::TooLarge { url: display_url(url), what, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(&mut response, method, url).await? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(RegistryError::TooLarge { url: display_url(url), what, limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn next_chunk(
        &self,
        response: &mut reqwest::Response,
        method: &Method,
        url: &Url,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        match tokio::time::timeout(self.options.request_timeout, response.chunk()).await {
            Err(_) => Err(self.timeout(method, url)),
            Ok(Err(error)) => Err(self.transport_error(method, url, error)),
            Ok(Ok(chunk)) => Ok(chunk.map(|bytes| bytes.to_vec())),
        }
    }

    /// Whether the registry has blob `digest` (one attempt).
    pub async fn blob_exists_once(&self, digest: &str) -> Result<bool, RegistryError> {
        let url = self.repository_url(&format!("blobs/{digest}"))?;
        let response = self.send(Method::HEAD, &url, HeaderMap::new(), RequestBody::Empty).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.check(response, &Method::HEAD, &url, |status| status.is_success()).await?;
        Ok(true)
    }

    /// Whether the registry has blob `digest`, retried.
    pub async fn blob_exists(&self, digest: &str) -> Result<bool, RegistryError> {
        self.options.retry.run(&format!("checking blob {digest}"), |_| self.blob_exists_once(digest)).await
    }

    /// Uploads the `size` bytes of `path` as blob `digest`, retried; a retry first checks whether
    /// the blob arrived after all, then starts a new upload session.
    pub async fn upload_blob(&self, path: &Path, digest: &str, size: u64) -> Result<(), RegistryError> {
        let what = format!("uploading blob {digest} ({})", path.display());
        self.options
            .retry
            .run(&what, |attempt| async move {
                if attempt > 1 && self.blob_exists_once(digest).await? {
                    return Ok(());
                }
                self.upload_blob_once(path, digest, size).await
            })
            .await
    }

    /// One upload session: POST, then a PUT with the whole blob when it is at most
    /// [`UPLOAD_CHUNK_BYTES`], else PATCH chunks and an empty PUT.
    async fn upload_blob_once(&self, path: &Path, digest: &str, size: u64) -> Result<(), RegistryError> {
        let start = self.repository_url("blobs/uploads/")?;
        let response = self.send(Method::POST, &start, HeaderMap::new(), RequestBody::Empty).await?;
        let response =
            self.check(response, &Method::POST, &start, |status| status == StatusCode::ACCEPTED).await?;
        let mut location = self.location(&response, &start)?;
        let mut offset = 0;
        let final_body = if size <= UPLOAD_CHUNK_BYTES {
            RequestBody::File { path: path.to_path_buf(), offset: 0, length: size }
        } else {
            while offset < size {
                let length = UPLOAD_CHUNK_BYTES.min(size - offset);
                let mut headers = HeaderMap::new();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
                let range = format!("{offset}-{}", offset + length - 1);
                if let Ok(value) = HeaderValue::from_str(&range) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                let body = RequestBody::File { path: path.to_path_buf(), offset, length };
                let response = self.send(Method::PATCH, &location, headers, body).await?;
                let response = self
                    .check(response, &Method::PATCH, &location, |status| status == StatusCode::ACCEPTED)
                    .await?;
                let stored_end = response
                    .headers()
                    .get(header::RANGE)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|range| range.rsplit('-').next())
                    .and_then(|end| end.trim().parse::<u64>().ok());
                if let Some(end) = stored_end.filter(|end| *end != offset + length - 1) {
                    return Err(RegistryError::Protocol {
                        url: display_url(&location),
                        detail: format!(
                            "the registry holds bytes 0-{end} of the upload, expected 0-{}",
                            offset + length - 1
                        ),
                    });
                }
                location = self.location(&response, &location)?;
                offset += length;
            }
            RequestBody::Empty
        };
        location.query_pairs_mut().append_pair("digest", digest);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
        let response = self.send(Method::PUT, &location, headers, final_body).await?;
        let response =
            self.check(response, &Method::PUT, &location, |status| status == StatusCode::CREATED).await?;
        self.check_digest_header(&response, &location, digest)?;
        tracing::debug!(registry = %self.registry, image.digest = digest, size, "blob uploaded");
        Ok(())
    }

    /// The `Location` of an upload response, resolved against the request URL.
    fn location(&self, response: &reqwest::Response, request: &Url) -> Result<Url, RegistryError> {
        let location = response.headers().get(header::LOCATION).and_then(|value| value.to_str().ok());
        let location = location.ok_or_else(|| RegistryError::Protocol {
            url: display_url(request),
            detail: "the upload response has no Location header".to_string(),
        })?;
        request.join(location).map_err(|error| RegistryError::Protocol {
            url: display_url(request),
            detail: format!("the upload Location `{location}` is not a URL: {error}"),
        })
    }

    /// Checks a `Docker-Content-Digest` answer header, when present, against `expected`.
    fn check_digest_header(
        &self,
        response: &reqwest::Response,
        url: &Url,
        expected: &str,
    ) -> Result<(), RegistryError> {
        let reported = response.headers().get(DOCKER_CONTENT_DIGEST).and_then(|value| value.to_str().ok());
        match reported {
            Some(reported)
                if reported.starts_with(super::reference::SHA256_PREFIX) && reported != expected =>
            {
                Err(RegistryError::DigestMismatch {
                    url: display_url(url),
                    expected: expected.to_string(),
                    actual: reported.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Stores `manifest` under `reference` (a tag or its digest), retried.
    pub async fn put_manifest(&self, reference: &str, manifest: &Manifest) -> Result<(), RegistryError> {
        let url = self.repository_url(&format!("manifests/{reference}"))?;
        let what = format!("pushing manifest {} as {reference}", manifest.digest);
        self.options
            .retry
            .run(&what, |_| {
                let url = &url;
                async move {
                    let mut headers = HeaderMap::new();
                    let content_type = HeaderValue::from_str(&manifest.media_type).map_err(|_| {
                        RegistryError::InvalidManifest {
                            url: display_url(url),
                            reason: format!("media type `{}` is not a header value", manifest.media_type),
                        }
                    })?;
                    headers.insert(header::CONTENT_TYPE, content_type);
                    let body = RequestBody::Bytes(manifest.bytes.clone());
                    let response = self.send(Method::PUT, url, headers, body).await?;
                    let response = self
                        .check(response, &Method::PUT, url, |status| status == StatusCode::CREATED)
                        .await?;
                    self.check_digest_header(&response, url, &manifest.digest)
                }
            })
            .await
    }

    /// Fetches the manifest `reference` (a tag or digest), retried; when `reference` is a digest, the
    /// content must have it.
    pub async fn get_manifest(&self, reference: &str) -> Result<Manifest, RegistryError> {
        let url = self.repository_url(&format!("manifests/{reference}"))?;
        let what = format!("fetching manifest {reference}");
        self.options.retry.run(&what, |_| self.get_manifest_once(&url, reference)).await
    }

    async fn get_manifest_once(&self, url: &Url, reference: &str) -> Result<Manifest, RegistryError> {
        let mut headers = HeaderMap::new();
        let accept = HeaderValue::from_str(&ACCEPTED_MANIFEST_TYPES.join(", "))
            .map_err(|_| RegistryError::Client("invalid Accept header".to_string()))?;
        headers.insert(header::ACCEPT, accept);
        let response = self.send(Method::GET, url, headers, RequestBody::Empty).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                reference: format!("manifest {reference}"),
            });
        }
        let response = self.check(response, &Method::GET, url, |status| status.is_success()).await?;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or("").trim().to_string());
        let reported = response
            .headers()
            .get(DOCKER_CONTENT_DIGEST)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let bytes = self.read_body(response, &Method::GET, url, MAXIMUM_MANIFEST_BYTES, "manifest").await?;
        let (manifest, _) = Manifest::parse(bytes, content_type.as_deref())
            .map_err(|reason| RegistryError::InvalidManifest { url: display_url(url), reason })?;
        let expected = if reference.starts_with(super::reference::SHA256_PREFIX) {
            Some(reference.to_string())
        } else {
            reported.filter(|digest| digest.starts_with(super::reference::SHA256_PREFIX))
        };
        if let Some(expected) = expected.filter(|expected| *expected != manifest.digest) {
            return Err(RegistryError::DigestMismatch {
                url: display_url(url),
                expected,
                actual: manifest.digest.clone(),
            });
        }
        Ok(manifest)
    }

    /// Fetches blob `digest` into memory (at most `limit` bytes), verified, retried.
    pub async fn get_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let url = self.repository_url(&format!("blobs/{digest}"))?;
        self.options
            .retry
            .run(&format!("fetching blob {digest}"), |_| async {
                let response = self.get_blob_response(&url, digest).await?;
                let bytes = self.read_body(response, &Method::GET, &url, limit, "blob").await?;
                let actual = sha256_digest(&bytes);
                if actual != digest {
                    return Err(RegistryError::DigestMismatch {
                        url: display_url(&url),
                        expected: digest.to_string(),
                        actual,
                    });
                }
                Ok(bytes)
            })
            .await
    }

    async fn get_blob_response(&self, url: &Url, digest: &str) -> Result<reqwest::Response, RegistryError> {
        let response = self.send(Method::GET, url, HeaderMap::new(), RequestBody::Empty).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                reference: format!("blob {digest}"),
            });
        }
        self.check(response, &Method::GET, url, |status| status.is_success()).await
    }

    /// Downloads blob `digest` of `size` bytes to `destination`: streamed to a temporary file next
    /// to it, verified (size and digest), synced and renamed into place. Retried from the start.
    pub async fn download_blob(
        &self,
        digest: &str,
        size: u64,
        destination: &Path,
    ) -> Result<(), RegistryError> {
        let url = self.repository_url(&format!("blobs/{digest}"))?;
        self.options
            .retry
            .run(&format!("downloading blob {digest}"), |_| async {
                let temporary = temporary_path(destination);
                let result = self.download_blob_once(&url, digest, size, &temporary, destination).await;
                if result.is_err() {
                    let _ = tokio::fs::remove_file(&temporary).await;
                }
                result
            })
            .await
    }

    async fn download_blob_once(
        &self,
        url: &Url,
        digest: &str,
        size: u64,
        temporary: &Path,
        destination: &Path,
    ) -> Result<(), RegistryError> {
        let mut response = self.get_blob_response(url, digest).await?;
        let mut file = tokio::fs::File::create(temporary).await.map_err(RegistryError::io(temporary))?;
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        while let Some(chunk) = self.next_chunk(&mut response, &Method::GET, url).await? {
            received += chunk.len() as u64;
            if received > size {
                return Err(RegistryError::DigestMismatch {
                    url: display_url(url),
                    expected: format!("{digest} ({size} bytes)"),
                    actual: format!("more than {size} bytes"),
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(RegistryError::io(temporary))?;
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if received != size || actual != digest {
            return Err(RegistryError::DigestMismatch {
                url: display_url(url),
                expected: format!("{digest} ({size} bytes)"),
                actual: format!("{actual} ({received} bytes)"),
            });
        }
        file.flush().await.map_err(RegistryError::io(temporary))?;
        file.sync_all().await.map_err(RegistryError::io(temporary))?;
        drop(file);
        tokio::fs::rename(temporary, destination).await.map_err(RegistryError::io(destination))?;
        tracing::debug!(registry = %self.registry, image.digest = digest, size, "blob downloaded");
        Ok(())
    }
}
