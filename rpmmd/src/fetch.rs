//! Downloading repository metadata (and later RPMs) over `http(s)://` and `file://`: bounded retries with
//! backoff on 5xx, 429 and broken connections, timeouts for servers that hang, conditional requests for
//! repomd.xml, every file verified against its checksum, and a cache that only ever receives complete,
//! verified files (written to a temporary name, then renamed).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::checksum::{Checksum, Hasher};
use crate::repo_file::RepoDefinition;
use crate::repomd::Repomd;

/// Tuning for downloads. The defaults suit public mirrors; tests shorten the timeouts.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub cache_directory: PathBuf,
    /// Attempts per URL for retryable failures (5xx, 429, 408, connection errors, timeouts).
    pub attempts: u32,
    /// First backoff; doubles per attempt up to `maximum_backoff`.
    pub initial_backoff: Duration,
    pub maximum_backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for any single read: a server that stops sending fails after this.
    pub read_timeout: Duration,
    /// Downloads in flight at once.
    pub parallel_downloads: usize,
}

/// Public mirrors answer within seconds; a minute without a byte means the connection is dead.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Enough retries to ride out a mirror restart, few enough to fail within a minute.
const DEFAULT_ATTEMPTS: u32 = 4;
/// dnf downloads 3 files at once by default; metadata and RPM sets benefit from a few more.
const DEFAULT_PARALLEL_DOWNLOADS: usize = 8;

impl FetchOptions {
    pub fn new(cache_directory: impl Into<PathBuf>) -> FetchOptions {
        FetchOptions {
            cache_directory: cache_directory.into(),
            attempts: DEFAULT_ATTEMPTS,
            initial_backoff: Duration::from_millis(250),
            maximum_backoff: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(15),
            read_timeout: DEFAULT_READ_TIMEOUT,
            parallel_downloads: DEFAULT_PARALLEL_DOWNLOADS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16, retry_after_seconds: Option<u64> },
    #[error("GET {url}: {message}")]
    Transport { url: String, message: String },
    #[error("GET {url}: checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch { url: String, expected: String, actual: String },
    #[error("GET {url}: expected {expected} bytes, got {actual}")]
    SizeMismatch { url: String, expected: u64, actual: u64 },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("repository \"{repo}\": invalid repomd.xml at {url}: {message}")]
    InvalidRepomd { repo: String, url: String, message: String },
    #[error("repository \"{repo}\": every location failed:\n    {}", .attempts.join("\n    "))]
    AllLocationsFailed { repo: String, attempts: Vec<String> },
    #[error("unsupported URL \"{url}\" (use http://, https:// or file://)")]
    UnsupportedUrl { url: String },
    #[error("GET {url}: setting up the HTTP client: {message}")]
    Client { url: String, message: String },
}

impl FetchError {
    /// Whether trying the same URL again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            FetchError::Transport { .. } | FetchError::SizeMismatch { .. } => true,
            _ => false,
        }
    }
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> FetchError {
    FetchError::Io { path: path.to_path_buf(), message: error.to_string() }
}

/// A repository whose repomd.xml has been fetched.
#[derive(Debug, Clone)]
pub struct FetchedRepository {
    pub definition: RepoDefinition,
    /// Base URLs to fetch data from: the one that served repomd.xml first, then the other mirrors.
    pub base_urls: Vec<String>,
    pub repomd: Repomd,
    /// SHA-256 of the repomd.xml bytes: identifies this snapshot of the repository.
    pub repomd_checksum: Checksum,
}

/// Validators of a cached repomd.xml, for conditional requests.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct CachedValidators {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Downloads with a shared connection pool, a limit on parallel transfers, and the cache.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// Built on the first HTTP request: setting up TLS (reading the root certificates) is a good part
    /// of a warm resolve's start, and repositories on `file://` never need it.
    client: Arc<OnceLock<reqwest::Client>>,
    options: Arc<FetchOptions>,
    slots: Arc<Semaphore>,
}

/// What a single GET produced.
enum Fetched {
    NotModified,
    Body(Vec<u8>, Option<String>, Option<String>),
}

impl Fetcher {
    /// A fetcher with `options`. The HTTP client is set up on the first HTTP request (an error in
    /// setting it up is that request's error).
    pub fn new(options: FetchOptions) -> Result<Fetcher, FetchError> {
        let slots = Arc::new(Semaphore::new(options.parallel_downloads.max(1)));
        Ok(Fetcher { client: Arc::new(OnceLock::new()), options: Arc::new(options), slots })
    }

    /// The HTTP client, built on first use; requests for `url` fail with its error if it cannot be.
    fn client(&self, url: &str) -> Result<&reqwest::Client, FetchError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(self.options.connect_timeout)
            .read_timeout(self.options.read_timeout)
            .user_agent(concat!("arbor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| FetchError::Client { url: url.to_string(), message: error.to_string() })?;
        // Two first requests at once both build one; the first stored is kept, the other dropped.
        Ok(self.client.get_or_init(|| client))
    }

    pub fn options(&self) -> &FetchOptions {
        &self.options
    }

    /// Fetches repomd.xml, trying each base URL (or mirror from metalink / mirrorlist) in order.
    pub async fn fetch_repository(
        &self,
        definition: &RepoDefinition,
    ) -> Result<FetchedRepository, FetchError> {
        let mut failures = Vec::new();
        let mut base_urls = definition.baseurls.clone();
        for list in [&definition.metalink, &definition.mirrorlist].into_iter().flatten() {
            match self.mirrors_from(list).await {
                Ok(mirrors) => base_urls.extend(mirrors),
                Err(error) => failures.push(error.to_string()),
            }
        }
        let cache = self.options.cache_directory.join("repos").join(repository_cache_name(definition));
        for (index, base_url) in base_urls.iter().enumerate() {
            match self.fetch_repomd_from(definition, base_url, &cache).await {
                Ok((repomd, repomd_checksum)) => {
                    let mut ordered = vec![base_url.clone()];
                    ordered.extend(
                        base_urls
                            .iter()
                            .enumerate()
                            .filter(|(other, _)| *other != index)
                            .map(|(_, url)| url.clone()),
                    );
                    return Ok(FetchedRepository {
                        definition: definition.clone(),
                        base_urls: ordered,
                        repomd,
                        repomd_checksum,
                    });
                }
                Err(error) => {
                    tracing::warn!(repo.id = %definition.id, url = %base_url, %error, "repository location failed; trying the next");
                    failures.push(error.to_string());
                }
            }
        }
        Err(FetchError::AllLocationsFailed { repo: definition.id.clone(), attempts: failures })
    }

    async fn fetch_repomd_from(
        &self,
        definition: &RepoDefinition,
        base_url: &str,
        cache: &Path,
    ) -> Result<(Repomd, Checksum), FetchError> {
        let url = join_url(base_url, "repodata/repomd.xml");
        let cached_path = cache.join("repomd.xml");
        let validators_path = cache.join("repomd.validators.json");
        let validators: Option<CachedValidators> = tokio::fs::read(&validators_path)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CachedValidators>(&bytes).ok())
            .filter(|validators| validators.url == url);
        let mut cached = match &validators {
            Some(_) => tokio::fs::read(&cached_path).await.ok(),
            None => None,
        };
        let conditional = validators.filter(|_| cached.is_some());
        let (bytes, fresh) = match self.get_bytes(&url, conditional.as_ref()).await? {
            Fetched::NotModified => match cached.take() {
                Some(bytes) => (bytes, None),
                None => return Err(FetchError::Status { url, status: 304, retry_after_seconds: None }),
            },
            Fetched::Body(bytes, etag, last_modified) => (bytes, Some((etag, last_modified))),
        };
        let text = String::from_utf8_lossy(&bytes);
        let repomd = Repomd::parse(&text).map_err(|message| FetchError::InvalidRepomd {
            repo: definition.id.clone(),
            url: url.clone(),
            message,
        })?;
        // The cache is written only when something changed (`file://` repositories answer with the
        // whole document every time).
        let unchanged = |etag: &Option<String>, last_modified: &Option<String>| {
            cached.as_deref() == Some(bytes.as_slice())
                && conditional.as_ref().is_some_and(|validators| {
                    validators.etag == *etag && validators.last_modified == *last_modified
                })
        };
        if let Some((etag, last_modified)) = fresh.filter(|(etag, modified)| !unchanged(etag, modified)) {
            tokio::fs::create_dir_all(cache).await.map_err(|error| io_error(cache, error))?;
            write_atomically(&cached_path, &bytes).await?;
            let validators = CachedValidators { url, etag, last_modified };
            let encoded = serde_json::to_vec(&validators).unwrap_or_default();
            write_atomically(&validators_path, &encoded).await?;
        }
        Ok((repomd, Checksum::sha256_of(&bytes)))
    }

    /// Reads a metalink (XML) or mirrorlist (one URL per line) into repository base URLs.
    async fn mirrors_from(&self, list_url: &str) -> Result<Vec<String>, FetchError> {
        let Fetched::Body(bytes, ..) = self.get_bytes(list_url, None).await? else {
            return Err(FetchError::Status {
                url: list_url.to_string(),
                status: 304,
                retry_after_seconds: None,
            });
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut mirrors = Vec::new();
        if text.trim_start().starts_with('<') {
            for piece in text.split("<url").skip(1) {
                let Some(start) = piece.find('>') else { continue };
                let Some(end) = piece[start..].find("</url>") else { continue };
                let url = piece[start + 1..start + end].trim();
                if let Some(base) = url.strip_suffix("repodata/repomd.xml") {
                    mirrors.push(base.to_string());
                }
            }
        } else {
            mirrors.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_string),
            );
        }
        mirrors.retain(|url| {
            url.starts_with("http://") || url.starts_with("https://") || url.starts_with("file://")
        });
        Ok(mirrors)
    }

    /// Makes sure the metadata file of `kind` is in the cache and returns its path; `None` if the
    /// repository has no such file. Tries every base URL of the repository.
    pub async fn fetch_metadata_file(
        &self,
        repository: &FetchedRepository,
        kind: &str,
    ) -> Result<Option<PathBuf>, FetchError> {
        let Some(entry) = repository.repomd.entry(kind) else { return Ok(None) };
        let file_name = entry.location.rsplit('/').next().unwrap_or(kind);
        let destination = self.options.cache_directory.join("metadata").join(format!(
            "{}-{}-{}",
            entry.checksum.algorithm.name(),
            entry.checksum.hex,
            file_name
        ));
        let urls: Vec<String> =
            repository.base_urls.iter().map(|base| join_url(base, &entry.location)).collect();
        self.fetch_verified(&repository.definition.id, &urls, &entry.checksum, entry.size, &destination)
            .await?;
        Ok(Some(destination))
    }

    /// Downloads the first of `urls` that works into `destination`, verified against `checksum` (and
    /// `size` if known). Does nothing if `destination` exists: only verified files are ever stored.
    pub async fn fetch_verified(
        &self,
        what: &str,
        urls: &[String],
        checksum: &Checksum,
        size: Option<u64>,
        destination: &Path,
    ) -> Result<(), FetchError> {
        if tokio::fs::try_exists(destination).await.unwrap_or(false) {
            return Ok(());
        }
        let directory = destination.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(directory).await.map_err(|error| io_error(directory, error))?;
        let mut failures = Vec::new();
        for url in urls {
            match self.download_with_retries(url, checksum, size, destination).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::warn!(url = %url, %error, "download failed; trying the next location");
                    failures.push(error.to_string());
                }
            }
        }
        Err(FetchError::AllLocationsFailed { repo: what.to_string(), attempts: failures })
    }

    async fn download_with_retries(
        &self,
        url: &str,
        checksum: &Checksum,
        size: Option<u64>,
        destination: &Path,
    ) -> Result<(), FetchError> {
        self.with_retries(url, "download", || async {
            let _slot = self.slots.acquire().await.map_err(|error| FetchError::Transport {
                url: url.to_string(),
                message: error.to_string(),
            })?;
            self.download_once(url, checksum, size, destination).await
        })
        .await
    }

    /// Streams one download to a temporary file next to `destination`, hashing as it goes; renames it
    /// into place only if size and checksum match.
    async fn download_once(
        &self,
        url: &str,
        checksum: &Checksum,
        size: Option<u64>,
        destination: &Path,
    ) -> Result<(), FetchError> {
        let temporary = temporary_path(destination);
        let result = async {
            let mut file =
                tokio::fs::File::create(&temporary).await.map_err(|error| io_error(&temporary, error))?;
            let mut hasher = Hasher::new(checksum.algorithm);
            let mut written: u64 = 0;
            if let Some(path) = local_source(url)? {
                let path = path.as_path();
                let mut source = tokio::fs::File::open(path).await.map_err(|error| io_error(path, error))?;
                let mut buffer = vec![0; COPY_BUFFER_BYTES];
                loop {
                    let read = tokio::io::AsyncReadExt::read(&mut source, &mut buffer)
                        .await
                        .map_err(|error| io_error(path, error))?;
                    if read == 0 {
                        break;
                    }
                    hasher.update(&buffer[..read]);
                    written += read as u64;
                    file.write_all(&buffer[..read]).await.map_err(|error| io_error(&temporary, error))?;
                }
            } else {
                let response = self.send(url, None).await?;
                let mut stream = response.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|error| transport_error(url, &error))?;
                    hasher.update(&chunk);
                    written += chunk.len() as u64;
                    file.write_all(&chunk).await.map_err(|error| io_error(&temporary, error))?;
                }
            }
            if let Some(expected) = size.filter(|expected| *expected != written) {
                return Err(FetchError::SizeMismatch { url: url.to_string(), expected, actual: written });
            }
            let actual = hasher.finish();
            if actual != checksum.hex {
                return Err(FetchError::ChecksumMismatch {
                    url: url.to_string(),
                    expected: checksum.to_string(),
                    actual: format!("{}:{actual}", checksum.algorithm.name()),
                });
            }
            file.sync_all().await.map_err(|error| io_error(&temporary, error))?;
            tokio::fs::rename(&temporary, destination).await.map_err(|error| io_error(destination, error))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temporary).await;
        }
        result
    }

    /// GETs a small document in memory, with retries (and a conditional request if validators given).
    async fn get_bytes(
        &self,
        url: &str,
        conditional: Option<&CachedValidators>,
    ) -> Result<Fetched, FetchError> {
        if let Some(path) = local_source(url)? {
            let bytes = tokio::fs::read(&path).await.map_err(|error| io_error(&path, error))?;
            return Ok(Fetched::Body(bytes, None, None));
        }
        self.with_retries(url, "request", || async {
            let response = self.send(url, conditional).await?;
            if response.status() == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified);
            }
            let header = |name: reqwest::header::HeaderName| {
                response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string)
            };
            let etag = header(reqwest::header::ETAG);
            let last_modified = header(reqwest::header::LAST_MODIFIED);
            let bytes = response.bytes().await.map_err(|error| transport_error(url, &error))?;
            Ok(Fetched::Body(bytes.to_vec(), etag, last_modified))
        })
        .await
    }

    /// Runs `operation` until it succeeds, fails for good, or uses up the attempts, sleeping the
    /// backoff between tries.
    async fn with_retries<T, Operation, Attempt>(
        &self,
        url: &str,
        what: &str,
        mut operation: Operation,
    ) -> Result<T, FetchError>
    where
        Operation: FnMut() -> Attempt,
        Attempt: Future<Output = Result<T, FetchError>>,
    {
        let mut attempt = 1;
        loop {
            match operation().await {
                Err(error) if error.is_retryable() && attempt < self.options.attempts => {
                    let delay = self.backoff(attempt, &error);
                    tracing::info!(url, attempt, ?delay, %error, "retrying {what}");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends a GET; non-success statuses (other than 304) become errors carrying any `Retry-After`.
    async fn send(
        &self,
        url: &str,
        conditional: Option<&CachedValidators>,
    ) -> Result<reqwest::Response, FetchError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::UnsupportedUrl { url: url.to_string() });
        }
        let mut request = self.client(url)?.get(url);
        if let Some(validators) = conditional {
            if let Some(etag) = &validators.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(last_modified) = &validators.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, last_modified);
            }
        }
        let response = request.send().await.map_err(|error| transport_error(url, &error))?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        Err(FetchError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            retry_after_seconds: retry_after_seconds(&response),
        })
    }

    /// Exponential backoff; a server's `Retry-After` (bounded by `maximum_backoff`) wins when given.
    fn backoff(&self, attempt: u32, error: &FetchError) -> Duration {
        let exponential = self.options.initial_backoff.saturating_mul(1 << (attempt - 1).min(16));
        let hinted = match error {
            FetchError::Status { retry_after_seconds: Some(seconds), .. } => {
                Some(Duration::from_secs(*seconds))
            }
            _ => None,
        };
        hinted.unwrap_or(exponential).min(self.options.maximum_backoff)
    }
}

fn retry_after_seconds(response: &reqwest::Response) -> Option<u64> {
    response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

fn transport_error(url: &str, error: &reqwest::Error) -> FetchError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    FetchError::Transport { url: url.to_string(), message }
}

/// Copy buffer for file:// sources.
const COPY_BUFFER_BYTES: usize = 256 * 1024;

/// The local path of a `file://` URL, percent-decoded; `None` unless it names an absolute path.
pub fn file_url_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    Some(PathBuf::from(OsString::from_vec(decoded)))
}

/// The file a `file://` URL names (`None` for other URLs); a `file://` URL without an absolute path is
/// refused.
fn local_source(url: &str) -> Result<Option<PathBuf>, FetchError> {
    if !url.starts_with("file://") {
        return Ok(None);
    }
    file_url_path(url).map(Some).ok_or_else(|| FetchError::UnsupportedUrl { url: url.to_string() })
}

/// Joins a base URL and a relative location with exactly one slash.
pub fn join_url(base: &str, relative: &str) -> String {
    // Built by hand: `format!` costs several times more, and a resolve joins one URL per package.
    [base.trim_end_matches('/'), "/", relative.trim_start_matches('/')].concat()
}

fn temporary_path(destination: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = destination.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    destination.with_file_name(format!(".{name}.partial-{}-{unique}", std::process::id()))
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let temporary = temporary_path(path);
    let result = async {
        tokio::fs::write(&temporary, bytes).await?;
        tokio::fs::rename(&temporary, path).await
    }
    .await;
    if let Err(error) = result {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(io_error(path, error));
    }
    Ok(())
}

/// The cache directory name of a repository: its id plus a hash of where it is fetched from, so
/// two treefiles with the same id for different repositories do not share a cache.
fn repository_cache_name(definition: &RepoDefinition) -> String {
    let mut locations = definition.baseurls.join("\n");
    for list in [&definition.metalink, &definition.mirrorlist].into_iter().flatten() {
        locations.push('\n');
        locations.push_str(list);
    }
    let digest = Checksum::sha256_of(locations.as_bytes()).hex;
    format!("{}-{}", definition.id, &digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_become_decoded_absolute_paths() {
        assert_eq!(file_url_path("file:///srv/repo/a%20b.rpm"), Some(PathBuf::from("/srv/repo/a b.rpm")));
        assert_eq!(file_url_path("file://localhost/srv/x"), Some(PathBuf::from("/srv/x")));
        assert_eq!(file_url_path("file:///bad%2"), Some(PathBuf::from("/bad%2")));
        assert_eq!(file_url_path("file://relative/x"), None);
        assert_eq!(file_url_path("http://host/x"), None);
        assert_eq!(
            local_source("file:///srv/a%20b/repomd.xml").unwrap(),
            Some(PathBuf::from("/srv/a b/repomd.xml"))
        );
        assert_eq!(local_source("https://host/x").unwrap(), None);
        assert!(matches!(local_source("file://relative/x"), Err(FetchError::UnsupportedUrl { .. })));
    }

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(join_url("http://a/b/", "/repodata/x"), "http://a/b/repodata/x");
        assert_eq!(join_url("file:///srv/repo", "Packages/a.rpm"), "file:///srv/repo/Packages/a.rpm");
    }
}
