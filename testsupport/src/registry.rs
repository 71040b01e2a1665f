//! A local OCI registry (Debian's docker-registry) on 127.0.0.1 and a fault-injecting proxy in front of it.
//!
//! - [`TestRegistry`] starts `/usr/bin/docker-registry` with filesystem storage in a temporary
//!   directory on a free port (optionally with htpasswd authentication for the fixed test user
//!   [`TEST_USER`]), waits until `GET /v2/` answers and kills it when dropped.
//! - [`FaultProxy`] relays HTTP/1.1 between a client and the registry and misbehaves by rule
//!   ([`ProxyFault`]): answer 500 or 429 for the next requests matching a method and path prefix,
//!   drop the connection after part of a request body, or stop answering. It records every request.
//! - [`write_test_layout`] and [`write_test_index_layout`] write OCI image layouts whose layers are
//!   deterministic pseudo-random (incompressible) bytes.
//!
//! ```no_run
//! use arbor_testsupport::registry::{FaultProxy, ProxyFault, TestRegistry};
//! # fn main() -> anyhow::Result<()> {
//! let registry = TestRegistry::start()?;
//! let proxy = FaultProxy::start(registry.address())?;
//! proxy.add_fault("PATCH", "/v2/", ProxyFault::Status(500), Some(2));
//! // ... push to proxy.host() with tls_verify off ...
//! assert!(registry.tag_exists("exampleos/os", "latest")?);
//! # Ok(()) }
//! ```

use crate::tools::require_tool;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The registry executable of Debian's `docker-registry` package.
pub const DOCKER_REGISTRY: &str = "docker-registry";
/// The user of [`TestRegistry::start_with_htpasswd`]'s precomputed htpasswd entry.
pub const TEST_USER: &str = "arbor-test";
/// The password of [`TEST_USER`]. Test-only: it protects nothing but a throwaway local registry.
pub const TEST_PASSWORD: &str = "arbor-test-password";
/// bcrypt of [`TEST_PASSWORD`] at the minimum cost (4), computed once with
/// `python3 -c "import crypt; print(crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`
/// and committed, because docker-registry only accepts bcrypt entries and computing bcrypt here
/// would need an extra crate or system package. Test-only.
const TEST_PASSWORD_BCRYPT: &str = "$2b$04$w4Uh7qmVklHXxM7VWd.gAeaqMo8.AVJEqzM9eqrtPNZsH3nZd5TYa";
/// How long the registry may take to answer `GET /v2/` after starting.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between readiness probes.
const STARTUP_POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Attempts to start on a free port (another process may take the port between probe and start).
const START_ATTEMPTS: usize = 3;
/// Timeouts of the raw HTTP requests the fixtures make themselves.
const FIXTURE_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the registry's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 20;
/// The largest request or response head the proxy accepts.
const MAXIMUM_HEAD_BYTES: usize = 64 * 1024;
/// The first byte of a TLS handshake record: the proxy only speaks plain HTTP and closes such
/// connections at once, as a plain-HTTP registry would fail them.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// Bytes buffered per direction when relaying.
const RELAY_BUFFER_BYTES: usize = 256 * 1024;
/// Bytes generated and hashed at a time when writing a test layer.
const LAYER_WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// The OCI media types the test layouts use.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Test layers are random bytes, declared as uncompressed tar (the registry does not look inside).
const OCI_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running docker-registry; killed when dropped.
#[derive(Debug)]
pub struct TestRegistry {
    child: Child,
    address: SocketAddr,
    directory: TempDir,
    auth: Authentication,
}

/// How a [`TestRegistry`] authenticates clients.
#[derive(Debug)]
enum Authentication {
    Anonymous,
    /// Basic authentication against an htpasswd file holding [`TEST_USER`].
    Htpasswd,
    /// Bearer tokens from a [`TokenServer`] that accepts [`TEST_USER`].
    Token(TokenServer),
}

impl TestRegistry {
    /// Starts an anonymous registry on 127.0.0.1.
    pub fn start() -> Result<Self> {
        Self::start_inner(Authentication::Anonymous)
    }

    /// Starts a registry that requires basic authentication. Only the precomputed pair
    /// ([`TEST_USER`], [`TEST_PASSWORD`]) is available, since bcrypt is not computed here.
    pub fn start_with_htpasswd(user: &str, password: &str) -> Result<Self> {
        if (user, password) != (TEST_USER, TEST_PASSWORD) {
            bail!(
                "only the precomputed test credentials ({TEST_USER}, TEST_PASSWORD) have an htpasswd entry"
            );
        }
        Self::start_inner(Authentication::Htpasswd)
    }

    /// Starts a registry that requires bearer tokens (distribution's token authentication), issued
    /// by a [`TokenServer`] on 127.0.0.1 to [`TEST_USER`] with [`TEST_PASSWORD`]. Needs `openssl`.
    pub fn start_with_token_auth() -> Result<Self> {
        Self::start_inner(Authentication::Token(TokenServer::start()?))
    }

    fn start_inner(auth: Authentication) -> Result<Self> {
        let program = require_tool(DOCKER_REGISTRY).context(
            "the local test registry needs `docker-registry` (Debian package docker-registry, Fedora package \
             distribution): run scripts/install-deps",
        )?;
        let directory = tempfile::Builder::new().prefix("arbor-registry-").tempdir()?;
        let log_path = directory.path().join("registry.log");
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            let config = write_config(directory.path(), address, &auth)?;
            let log = fs::File::create(&log_path).context("creating the registry log")?;
            let mut child = Command::new(&program)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", program.display()))?;
            match wait_until_ready(&mut child, address, &log_path) {
                Ok(()) => return Ok(Self { child, address, directory, auth }),
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("docker-registry did not start")))
    }

    /// The token server of a registry started with [`start_with_token_auth`](Self::start_with_token_auth).
    pub fn token_server(&self) -> Option<&TokenServer> {
        match &self.auth {
            Authentication::Token(server) => Some(server),
            _ => None,
        }
    }

    /// The last lines of the registry's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.directory.path().join("registry.log"))
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    /// Where the registry keeps its data.
    pub fn storage_dir(&self) -> PathBuf {
        self.directory.path().join("storage")
    }

    /// Writes a containers auth file for this registry with `user` and `password` into the
    /// registry's directory and returns its path.
    pub fn write_auth_file(&self, user: &str, password: &str) -> Result<PathBuf> {
        static WRITTEN: AtomicU64 = AtomicU64::new(0);
        let number = WRITTEN.fetch_add(1, Ordering::SeqCst);
        let path = self.directory.path().join(format!("auth-{number}.json"));
        let encoded = base64_encode(format!("{user}:{password}").as_bytes());
        fs::write(&path, format!("{{\"auths\":{{\"{}\":{{\"auth\":\"{encoded}\"}}}}}}", self.host()))?;
        Ok(path)
    }

    /// Asks the registry directly (not through any proxy) whether `repository:tag` exists.
    pub fn tag_exists(&self, repository: &str, tag: &str) -> Result<bool> {
        let accept = format!("{OCI_MANIFEST_MEDIA_TYPE}, {OCI_INDEX_MEDIA_TYPE}");
        let mut headers = vec![("Accept".to_string(), accept)];
        match &self.auth {
            Authentication::Anonymous => {}
            Authentication::Htpasswd => {
                let encoded = base64_encode(format!("{TEST_USER}:{TEST_PASSWORD}").as_bytes());
                headers.push(("Authorization".to_string(), format!("Basic {encoded}")));
            }
            Authentication::Token(server) => {
                let token = server.issuer.mint(&[format!("repository:{repository}:pull")])?;
                headers.push(("Authorization".to_string(), format!("Bearer {token}")));
            }
        }
        let path = format!("/v2/{repository}/manifests/{tag}");
        let response = http_request(self.address, "HEAD", &path, &headers)?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            status => bail!("HEAD {path}: unexpected status {status}"),
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the registry answers `GET /v2/` (200, or 401 with authentication).
fn wait_until_ready(child: &mut Child, address: SocketAddr, log_path: &Path) -> Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("docker-registry exited during start-up ({status}):\n{}", log_tail(log_path));
        }
        let answered = http_request(address, "GET", "/v2/", &[]).map(|response| response.status);
        if matches!(answered, Ok(200 | 401)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "docker-registry did not answer GET /v2/ within {STARTUP_TIMEOUT:?}:\n{}",
                log_tail(log_path)
            );
        }
        thread::sleep(STARTUP_POLL_INTERVAL);
    }
}

fn log_tail(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn write_config(directory: &Path, address: SocketAddr, auth: &Authentication) -> Result<PathBuf> {
    let storage = directory.join("storage");
    fs::create_dir_all(&storage)?;
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {address}\n  secret: arbor-test-registry-secret\n\
         health:\n  storagedriver:\n    enabled: false\n",
        storage.display()
    );
    match auth {
        Authentication::Anonymous => {}
        Authentication::Htpasswd => {
            let htpasswd_path = directory.join("htpasswd");
            fs::write(&htpasswd_path, format!("{TEST_USER}:{TEST_PASSWORD_BCRYPT}\n"))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: arbor-test\n    path: {}\n",
                htpasswd_path.display()
            ));
        }
        Authentication::Token(server) => {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                server.address,
                server.issuer.certificate_path.display()
            ));
        }
    }
    let path = directory.join("config.yml");
    fs::write(&path, config)?;
    Ok(path)
}

/// Standard base64 with padding (for the fixtures' own auth headers and files).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const SIXTY_THREE: u32 = 0x3f;
    let mut encoded = String::new();
    for group in bytes.chunks(3) {
        let value = group
            .iter()
            .enumerate()
            .fold(0u32, |value, (index, byte)| value | (u32::from(*byte) << (16 - 8 * index)));
        for position in 0..4 {
            if position <= group.len() {
                encoded.push(char::from(ALPHABET[((value >> (18 - 6 * position)) & SIXTY_THREE) as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A response to one of the fixtures' own requests.
#[derive(Debug, Clone)]
pub struct FixtureResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A minimal HTTP/1.1 request with `Connection: close` (for readiness probes and direct checks).
pub fn http_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<FixtureResponse> {
    http_request_with_body(address, method, path, headers, &[])
}

/// [`http_request`] with a body (sent with its `Content-Length` unless it is empty).
pub fn http_request_with_body(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<FixtureResponse> {
    let mut stream = TcpStream::connect_timeout(&address, FIXTURE_IO_TIMEOUT)?;
    stream.set_read_timeout(Some(FIXTURE_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(FIXTURE_IO_TIMEOUT))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader)?.context("the server closed the connection without answering")?;
    let status = head.status().context("bad status line")?;
    let mut body = Vec::new();
    if method != "HEAD" {
        reader.read_to_end(&mut body)?;
    }
    Ok(FixtureResponse { status, headers: head.headers, body })
}

/// An HTTP message head: start line and headers (names lower-cased), and its raw bytes.
#[derive(Debug, Clone)]
struct Head {
    start_line: String,
    headers: Vec<(String, String)>,
    raw: Vec<u8>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header == name).map(|(_, value)| value.as_str())
    }

    /// The status of a response head.
    fn status(&self) -> Option<u16> {
        self.start_line.split(' ').nth(1).and_then(|status| status.parse().ok())
    }

    fn body_framing(&self) -> Framing {
        if self
            .header("transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(length) = self.header("content-length").and_then(|value| value.parse().ok()) {
            Framing::Length(length)
        } else {
            Framing::UntilClose
        }
    }

    fn wants_close(&self) -> bool {
        self.header("connection").is_some_and(|value| value.to_ascii_lowercase().contains("close"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// Reads a message head; `None` when the connection closed before one started.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let allowed = (MAXIMUM_HEAD_BYTES - raw.len()) as u64;
        let read = reader.by_ref().take(allowed).read_until(b'\n', &mut line)?;
        if read == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        raw.extend_from_slice(&line);
        if raw.len() >= MAXIMUM_HEAD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "message head too long"));
        }
        let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                raw.clear();
                continue;
            }
            break;
        }
        lines.push(text);
    }
    let start_line = lines.remove(0);
    let headers = lines
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Ok(Some(Head { start_line, headers, raw }))
}

/// Copies exactly `length` bytes.
fn copy_exact(reader: &mut impl Read, writer: &mut impl Write, length: u64) -> io::Result<()> {
    let copied = io::copy(&mut reader.take(length), writer)?;
    if copied != length {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a body"));
    }
    Ok(())
}

/// Relays a body with `framing` from `reader` to `writer` (chunked framing is passed through).
fn relay_body(reader: &mut impl BufRead, writer: &mut impl Write, framing: Framing) -> io::Result<()> {
    match framing {
        Framing::Length(length) => copy_exact(reader, writer, length)?,
        Framing::UntilClose => {
            io::copy(reader, writer)?;
        }
        Framing::Chunked => loop {
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line)?;
            writer.write_all(&line)?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.trim().split(';').next().unwrap_or("").trim().to_string();
            let size = u64::from_str_radix(&size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut trailer = Vec::new();
                    reader.read_until(b'\n', &mut trailer)?;
                    writer.write_all(&trailer)?;
                    if trailer.is_empty() || trailer == b"\r\n" || trailer == b"\n" {
                        break;
                    }
                }
                break;
            }
            // The chunk and its CRLF.
            copy_exact(reader, writer, size + 2)?;
        },
    }
    writer.flush()
}

/// The `service` (JWT audience) of the token-authenticated test registry.
pub const TOKEN_SERVICE: &str = "arbor-test-registry";
/// The issuer of the test tokens.
const TOKEN_ISSUER: &str = "arbor-test-token-issuer";
/// How long a test token is valid.
const TOKEN_LIFETIME_SECONDS: u64 = 300;
/// How far back `nbf` is set, so that a registry whose clock is slightly behind accepts the token.
const TOKEN_CLOCK_SKEW_SECONDS: u64 = 60;
/// The RSA key size of the throwaway token signing key.
const TOKEN_KEY_BITS: &str = "rsa:2048";

/// Signs registry tokens (JWT, RS256) with a throwaway key whose self-signed certificate the
/// registry trusts (`rootcertbundle`); the certificate travels in the token's `x5c` header.
#[derive(Debug)]
struct TokenIssuer {
    _directory: TempDir,
    key_path: PathBuf,
    certificate_path: PathBuf,
    /// The certificate in DER, standard base64 (the `x5c` encoding).
    certificate_base64: String,
    minted: AtomicU64,
}

impl TokenIssuer {
    fn create() -> Result<Self> {
        let directory = tempfile::Builder::new().prefix("arbor-token-issuer-").tempdir()?;
        let key_path = directory.path().join("key.pem");
        let certificate_path = directory.path().join("certificate.pem");
        crate::tools::run_tool(
            "openssl",
            [
                "req".as_ref(),
                "-x509".as_ref(),
                "-newkey".as_ref(),
                TOKEN_KEY_BITS.as_ref(),
                "-nodes".as_ref(),
                "-days".as_ref(),
                "2".as_ref(),
                "-subj".as_ref(),
                format!("/CN={TOKEN_ISSUER}").as_ref(),
                "-keyout".as_ref(),
                key_path.as_os_str(),
                "-out".as_ref(),
                certificate_path.as_os_str(),
            ],
        )?;
        let der = crate::tools::run_tool(
            "openssl",
            [
                "x509".as_ref(),
                "-in".as_ref(),
                certificate_path.as_os_str(),
                "-outform".as_ref(),
                "DER".as_ref(),
            ],
        )?
        .stdout;
        Ok(Self {
            _directory: directory,
            key_path,
            certificate_path,
            certificate_base64: base64_encode(&der),
            minted: AtomicU64::new(0),
        })
    }

    /// A token granting `scopes` (`repository:NAME:ACTIONS`, as the registry asks for them).
    fn mint(&self, scopes: &[String]) -> Result<String> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|scope| {
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.certificate_base64]});
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": TEST_USER,
            "aud": TOKEN_SERVICE,
            "iat": now,
            "nbf": now - TOKEN_CLOCK_SKEW_SECONDS,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "jti": format!("arbor-test-{}", self.minted.fetch_add(1, Ordering::SeqCst)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            base64url_encode(&serde_json::to_vec(&header)?),
            base64url_encode(&serde_json::to_vec(&claims)?)
        );
        let openssl = require_tool("openssl")?;
        let mut child = Command::new(openssl)
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting openssl dgst")?;
        child.stdin.take().context("openssl stdin")?.write_all(signing_input.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!("openssl dgst -sign failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(format!("{signing_input}.{}", base64url_encode(&output.stdout)))
    }
}

/// Base64url without padding (JWT segments).
fn base64url_encode(bytes: &[u8]) -> String {
    base64_encode(bytes).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

/// Decodes `%XX` escapes and `+` (form encoding) in a query component.
fn query_decode(text: &str) -> String {
    crate::http_server::percent_decode(&text.replace('+', " "))
}

/// One request to the token server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Whether the request carried basic credentials.
    pub with_credentials: bool,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// Whether a token was issued.
    pub granted: bool,
}

/// The token endpoint of a token-authenticated [`TestRegistry`]: `GET /token?service=&scope=` with
/// basic credentials [`TEST_USER`]:[`TEST_PASSWORD`] returns a token for the requested scopes;
/// anything else gets 401. Stopped when dropped.
#[derive(Debug)]
pub struct TokenServer {
    address: SocketAddr,
    issuer: Arc<TokenIssuer>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    shutdown: Arc<AtomicBool>,
}

impl TokenServer {
    fn start() -> Result<Self> {
        let issuer = Arc::new(TokenIssuer::create()?);
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the token server")?;
        let address = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shutdown = Arc::new(AtomicBool::new(false));
        let (thread_issuer, thread_requests, thread_shutdown) =
            (Arc::clone(&issuer), Arc::clone(&requests), Arc::clone(&shutdown));
        thread::Builder::new()
            .name(format!("token-server-{}", address.port()))
            .spawn(move || {
                for stream in listener.incoming() {
                    if thread_shutdown.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = answer_token_request(stream, &thread_issuer, &thread_requests);
                    }
                }
            })
            .context("starting the token server")?;
        Ok(Self { address, issuer, requests, shutdown })
    }

    /// The requests the token server answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.requests).clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.address, FIXTURE_IO_TIMEOUT);
    }
}

fn answer_token_request(
    stream: TcpStream,
    issuer: &TokenIssuer,
    requests: &Mutex<Vec<TokenRequest>>,
) -> Result<()> {
    stream.set_read_timeout(Some(FIXTURE_IO_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let target = head.start_line.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, query)| query);
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| *name == "scope")
        .map(|(_, value)| query_decode(value))
        .collect();
    let expected = format!("Basic {}", base64_encode(format!("{TEST_USER}:{TEST_PASSWORD}").as_bytes()));
    let authorization = head.header("authorization");
    let with_credentials = authorization.is_some_and(|value| value.starts_with("Basic "));
    let granted = authorization == Some(expected.as_str());
    lock(requests).push(TokenRequest { with_credentials, scopes: scopes.clone(), granted });
    if !granted {
        let body = "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}";
        return Ok(write_injected(&mut writer, 401, &[], body)?);
    }
    let token = issuer.mint(&scopes)?;
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS})
            .to_string();
    Ok(write_injected(&mut writer, 200, &[], &body)?)
}

/// A way for [`FaultProxy`] to misbehave on a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyFault {
    /// Answer this status (with a distribution-style JSON error body) instead of relaying.
    Status(u16),
    /// Answer `429 Too Many Requests` with `Retry-After: retry_after_seconds`.
    TooManyRequests { retry_after_seconds: u64 },
    /// Relay the head and the first `bytes` bytes of the request body, then close both connections
    /// (only for requests whose body is longer than `bytes`).
    DropAfterBodyBytes(u64),
    /// Read the request and never answer (until the client gives up or the proxy is dropped).
    Hang,
}

#[derive(Debug, Clone)]
struct ProxyRule {
    method: Option<String>,
    path_prefix: String,
    fault: ProxyFault,
    remaining: Option<usize>,
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The fault applied, if any.
    pub fault: Option<ProxyFault>,
    /// The status the client got (from the registry or injected); `None` when it got none.
    pub status: Option<u16>,
}

#[derive(Debug, Default)]
struct ProxyState {
    rules: Mutex<Vec<ProxyRule>>,
    requests: Mutex<Vec<ProxiedRequest>>,
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_socket: AtomicU64,
    shutdown: AtomicBool,
}

impl ProxyState {
    fn track(&self, stream: &TcpStream) -> Option<u64> {
        let clone = stream.try_clone().ok()?;
        let id = self.next_socket.fetch_add(1, Ordering::SeqCst);
        lock(&self.sockets).insert(id, clone);
        Some(id)
    }

    fn untrack(&self, id: Option<u64>) {
        if let Some(id) = id {
            lock(&self.sockets).remove(&id);
        }
    }

    /// The fault for this request (the first matching rule), counting a limited rule's use. A
    /// [`ProxyFault::DropAfterBodyBytes`] rule only matches requests with a longer body.
    fn take_fault(&self, method: &str, path: &str, body_length: u64) -> Option<ProxyFault> {
        let mut rules = lock(&self.rules);
        let index = rules.iter().position(|rule| {
            rule.method.as_deref().is_none_or(|wanted| wanted.eq_ignore_ascii_case(method))
                && path.starts_with(&rule.path_prefix)
                && !matches!(rule.fault, ProxyFault::DropAfterBodyBytes(bytes) if body_length <= bytes)
        })?;
        let fault = rules[index].fault.clone();
        if let Some(remaining) = rules[index].remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                rules.remove(index);
            }
        }
        Some(fault)
    }

    fn record(&self, method: &str, path: &str, fault: Option<ProxyFault>) -> usize {
        let mut requests = lock(&self.requests);
        requests.push(ProxiedRequest {
            method: method.to_string(),
            path: path.to_string(),
            fault,
            status: None,
        });
        requests.len() - 1
    }

    fn set_status(&self, index: usize, status: u16) {
        if let Some(request) = lock(&self.requests).get_mut(index) {
            request.status = Some(status);
        }
    }
}

/// A TCP proxy for HTTP/1.1 on 127.0.0.1 in front of `upstream` that injects [`ProxyFault`]s by
/// rule and records requests. One thread per connection; stopped when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    state: Arc<ProxyState>,
}

impl FaultProxy {
    /// Starts relaying to `upstream` on a free port.
    pub fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the fault proxy")?;
        let address = listener.local_addr()?;
        let state = Arc::new(ProxyState::default());
        let accept_state = Arc::clone(&state);
        thread::Builder::new()
            .name(format!("fault-proxy-{}", address.port()))
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_state.shutdown.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else {
                        continue;
                    };
                    let state = Arc::clone(&accept_state);
                    let _ = thread::Builder::new()
                        .name("fault-proxy-connection".to_string())
                        .spawn(move || serve_connection(stream, upstream, &state));
                }
            })
            .context("starting the fault proxy")?;
        Ok(Self { address, state })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `127.0.0.1:PORT`, the registry part of image references through the proxy.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    /// Applies `fault` to requests with `method` (`"*"` for any) whose path starts with
    /// `path_prefix`, for the next `times` of them (`None`: until cleared). Earlier rules win.
    pub fn add_fault(&self, method: &str, path_prefix: &str, fault: ProxyFault, times: Option<usize>) {
        let method = (method != "*").then(|| method.to_string());
        let rule = ProxyRule { method, path_prefix: path_prefix.to_string(), fault, remaining: times };
        lock(&self.state.rules).push(rule);
    }

    /// Removes every rule: the proxy relays faithfully again.
    pub fn clear_faults(&self) {
        lock(&self.state.rules).clear();
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        lock(&self.state.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }

    /// How many requests with `method` had a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.state.requests)
            .iter()
            .filter(|request| {
                request.method.eq_ignore_ascii_case(method) && request.path.starts_with(path_prefix)
            })
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag, and end every connection (and hang).
        let _ = TcpStream::connect_timeout(&self.address, FIXTURE_IO_TIMEOUT);
        for socket in lock(&self.state.sockets).values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Relays requests from `client` until either side closes or a fault ends the connection.
fn serve_connection(client: TcpStream, upstream_address: SocketAddr, state: &ProxyState) {
    let client_id = state.track(&client);
    let _ = serve_requests(&client, upstream_address, state);
    let _ = client.shutdown(Shutdown::Both);
    state.untrack(client_id);
}

/// A connection to the registry: writer, buffered reader and its tracking id.
type Upstream = (TcpStream, BufReader<TcpStream>, Option<u64>);

fn serve_requests(client: &TcpStream, upstream_address: SocketAddr, state: &ProxyState) -> io::Result<()> {
    let mut client_reader = BufReader::with_capacity(RELAY_BUFFER_BYTES, client.try_clone()?);
    let mut client_writer = client.try_clone()?;
    let mut upstream: Option<Upstream> = None;
    let result =
        relay_requests(&mut client_reader, &mut client_writer, &mut upstream, upstream_address, state);
    if let Some((stream, _, id)) = upstream {
        let _ = stream.shutdown(Shutdown::Both);
        state.untrack(id);
    }
    result
}

fn relay_requests(
    client_reader: &mut BufReader<TcpStream>,
    client_writer: &mut TcpStream,
    upstream: &mut Option<Upstream>,
    upstream_address: SocketAddr,
    state: &ProxyState,
) -> io::Result<()> {
    loop {
        if client_reader.fill_buf()?.first() == Some(&TLS_HANDSHAKE_RECORD) {
            return Ok(());
        }
        let Some(head) = read_head(client_reader)? else {
            return Ok(());
        };
        let mut parts = head.start_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("");
        let path = target.split(['?', '#']).next().unwrap_or("").to_string();
        let request_framing = match head.body_framing() {
            Framing::UntilClose => Framing::Length(0),
            framing => framing,
        };
        let body_length = match request_framing {
            Framing::Length(length) => length,
            _ => u64::MAX,
        };
        let fault = state.take_fault(&method, &path, body_length);
        let index = state.record(&method, &path, fault.clone());
        match fault {
            Some(ProxyFault::Status(status)) => {
                relay_body(client_reader, &mut io::sink(), request_framing)?;
                let body = format!(
                    "{{\"errors\":[{{\"code\":\"UNKNOWN\",\"message\":\"injected status {status}\"}}]}}"
                );
                write_injected(client_writer, status, &[], &body)?;
                state.set_status(index, status);
                return Ok(());
            }
            Some(ProxyFault::TooManyRequests { retry_after_seconds }) => {
                relay_body(client_reader, &mut io::sink(), request_framing)?;
                let body = "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"injected\"}]}";
                let headers = [("Retry-After", retry_after_seconds.to_string())];
                write_injected(client_writer, 429, &headers, body)?;
                state.set_status(index, 429);
                return Ok(());
            }
            Some(ProxyFault::Hang) => {
                // Swallow whatever the client sends until it gives up or the proxy stops.
                io::copy(client_reader, &mut io::sink())?;
                return Ok(());
            }
            Some(ProxyFault::DropAfterBodyBytes(bytes)) => {
                let (mut stream, _, id) = connect_upstream(upstream_address, state)?;
                stream.write_all(&head.raw)?;
                let _ = copy_exact(client_reader, &mut stream, body_length.min(bytes));
                let _ = stream.shutdown(Shutdown::Both);
                state.untrack(id);
                return Ok(());
            }
            None => {}
        }
        if upstream.is_none() {
            *upstream = Some(connect_upstream(upstream_address, state)?);
        }
        let Some((upstream_writer, upstream_reader, _)) = upstream.as_mut() else {
            return Ok(());
        };
        upstream_writer.write_all(&head.raw)?;
        relay_body(client_reader, upstream_writer, request_framing)?;
        let Some(response) = read_head(upstream_reader)? else {
            return Ok(());
        };
        let status = response.status().unwrap_or_default();
        state.set_status(index, status);
        client_writer.write_all(&response.raw)?;
        let informational = (100..200).contains(&status);
        let no_body = method == "HEAD" || status == 204 || status == 304 || informational;
        let framing = if no_body { Framing::Length(0) } else { response.body_framing() };
        relay_body(upstream_reader, client_writer, framing)?;
        if framing == Framing::UntilClose || response.wants_close() || head.wants_close() {
            return Ok(());
        }
    }
}

fn connect_upstream(address: SocketAddr, state: &ProxyState) -> io::Result<Upstream> {
    let stream = TcpStream::connect_timeout(&address, FIXTURE_IO_TIMEOUT)?;
    let id = state.track(&stream);
    let reader = BufReader::with_capacity(RELAY_BUFFER_BYTES, stream.try_clone()?);
    Ok((stream, reader, id))
}

fn write_injected(
    writer: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    body: &str,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Injected",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    writer.write_all(body.as_bytes())?;
    writer.flush()
}

/// One layer of a test image: `size` pseudo-random bytes determined by `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestLayer {
    pub size: usize,
    pub seed: u64,
}

/// Layers of the given sizes, seeded `seed`, `seed + 1`, ...
pub fn random_layers(seed: u64, sizes: &[usize]) -> Vec<TestLayer> {
    sizes
        .iter()
        .enumerate()
        .map(|(index, &size)| TestLayer { size, seed: seed.wrapping_add(index as u64) })
        .collect()
}

/// What was written for a test image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImage {
    /// The digest of the image manifest (or, for an index layout, of the index).
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub media_type: String,
    /// For an image: its config; for an index: empty.
    pub config_digest: String,
    /// Every layer digest (of every platform for an index), in manifest order.
    pub layer_digests: Vec<String>,
    /// For an index: the per-platform image manifests.
    pub children: Vec<TestImage>,
}

/// The splitmix64 generator: fast, deterministic, and its output does not compress.
struct SplitMix64(u64);

impl SplitMix64 {
    /// The golden-ratio increment of splitmix64.
    const INCREMENT: u64 = 0x9e37_79b9_7f4a_7c15;
    /// splitmix64's two mixing multipliers.
    const MULTIPLIERS: [u64; 2] = [0xbf58_476d_1ce4_e5b9, 0x94d0_49bb_1331_11eb];

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::INCREMENT);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(Self::MULTIPLIERS[0]);
        value = (value ^ (value >> 27)).wrapping_mul(Self::MULTIPLIERS[1]);
        value ^ (value >> 31)
    }
}

/// `blobs/sha256/<hex>` of `digest` in `layout`.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn prepare_layout(layout: &Path) -> Result<()> {
    fs::create_dir_all(layout.join("blobs/sha256"))?;
    let marker = layout.join("oci-layout");
    if !marker.exists() {
        fs::write(marker, "{\"imageLayoutVersion\":\"1.0.0\"}")?;
    }
    Ok(())
}

/// Writes `bytes` as a blob; returns its digest.
fn write_blob(layout: &Path, bytes: &[u8]) -> Result<String> {
    let digest = format!("sha256:{}", hex(&Sha256::digest(bytes)));
    fs::write(blob_path(layout, &digest), bytes)?;
    Ok(digest)
}

/// Writes a layer blob by streaming generated bytes; returns its digest.
fn write_layer(layout: &Path, layer: &TestLayer) -> Result<String> {
    let temporary = layout.join(format!("blobs/sha256/.layer-{}-{}.partial", layer.seed, layer.size));
    let mut file = io::BufWriter::new(fs::File::create(&temporary)?);
    let mut generator = SplitMix64(layer.seed);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; LAYER_WRITE_BUFFER_BYTES];
    let mut remaining = layer.size;
    while remaining > 0 {
        let length = remaining.min(buffer.len());
        for word in buffer[..length].chunks_mut(8) {
            let bytes = generator.next().to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        hasher.update(&buffer[..length]);
        file.write_all(&buffer[..length])?;
        remaining -= length;
    }
    file.flush()?;
    drop(file);
    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    fs::rename(&temporary, blob_path(layout, &digest))?;
    Ok(digest)
}

fn descriptor_json(media_type: &str, digest: &str, size: u64) -> String {
    format!("{{\"mediaType\":\"{media_type}\",\"digest\":\"{digest}\",\"size\":{size}}}")
}

/// Writes an image (layers, config, manifest) into the layout's blobs without tagging it.
pub fn write_test_image(layout: &Path, layers: &[TestLayer], architecture: &str) -> Result<TestImage> {
    prepare_layout(layout)?;
    let mut layer_digests = Vec::new();
    for layer in layers {
        layer_digests.push(write_layer(layout, layer)?);
    }
    let diff_ids: Vec<String> = layer_digests.iter().map(|digest| format!("\"{digest}\"")).collect();
    let history: Vec<String> =
        layers.iter().map(|layer| format!("{{\"created_by\":\"test layer seed {}\"}}", layer.seed)).collect();
    let config = format!(
        "{{\"architecture\":\"{architecture}\",\"os\":\"linux\",\"config\":{{}},\
         \"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[{}]}},\"history\":[{}]}}",
        diff_ids.join(","),
        history.join(",")
    );
    let config_digest = write_blob(layout, config.as_bytes())?;
    let layer_descriptors: Vec<String> = layers
        .iter()
        .zip(&layer_digests)
        .map(|(layer, digest)| descriptor_json(OCI_LAYER_MEDIA_TYPE, digest, layer.size as u64))
        .collect();
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST_MEDIA_TYPE}\",\"config\":{},\"layers\":[{}]}}",
        descriptor_json(OCI_CONFIG_MEDIA_TYPE, &config_digest, config.len() as u64),
        layer_descriptors.join(",")
    );
    let manifest_digest = write_blob(layout, manifest.as_bytes())?;
    Ok(TestImage {
        manifest_digest,
        manifest_size: manifest.len() as u64,
        media_type: OCI_MANIFEST_MEDIA_TYPE.to_string(),
        config_digest,
        layer_digests,
        children: Vec::new(),
    })
}

/// Points `tag` in the layout's `index.json` at `image`, keeping other tags.
pub fn tag_test_image(layout: &Path, tag: &str, image: &TestImage) -> Result<()> {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = if index_path.exists() {
        serde_json::from_slice(&fs::read(&index_path)?).context("parsing index.json")?
    } else {
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": []})
    };
    let manifests = index["manifests"].as_array_mut().context("index.json without manifests")?;
    manifests.retain(|entry| entry["annotations"][REF_NAME_ANNOTATION].as_str() != Some(tag));
    manifests.push(serde_json::json!({
        "mediaType": image.media_type,
        "digest": image.manifest_digest,
        "size": image.manifest_size,
        "annotations": {REF_NAME_ANNOTATION: tag},
    }));
    fs::write(index_path, serde_json::to_vec(&index)?)?;
    Ok(())
}

/// Writes a single-platform (amd64) image with `layers` into the OCI layout `layout` (created or
/// extended) and tags it `tag`.
pub fn write_test_layout(layout: &Path, tag: &str, layers: &[TestLayer]) -> Result<TestImage> {
    let image = write_test_image(layout, layers, "amd64")?;
    tag_test_image(layout, tag, &image)?;
    Ok(image)
}

/// Writes one image per `(architecture, layers)` and an image index over them, tagged `tag`.
pub fn write_test_index_layout(
    layout: &Path,
    tag: &str,
    platforms: &[(&str, Vec<TestLayer>)],
) -> Result<TestImage> {
    let mut children = Vec::new();
    let mut entries = Vec::new();
    for (architecture, layers) in platforms {
        let child = write_test_image(layout, layers, architecture)?;
        entries.push(format!(
            "{{\"mediaType\":\"{OCI_MANIFEST_MEDIA_TYPE}\",\"digest\":\"{}\",\"size\":{},\
             \"platform\":{{\"architecture\":\"{architecture}\",\"os\":\"linux\"}}}}",
            child.manifest_digest, child.manifest_size
        ));
        children.push(child);
    }
    let index = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_INDEX_MEDIA_TYPE}\",\"manifests\":[{}]}}",
        entries.join(",")
    );
    let digest = write_blob(layout, index.as_bytes())?;
    let image = TestImage {
        manifest_digest: digest,
        manifest_size: index.len() as u64,
        media_type: OCI_INDEX_MEDIA_TYPE.to_string(),
        config_digest: String::new(),
        layer_digests: children.iter().flat_map(|child| child.layer_digests.clone()).collect(),
        children,
    };
    tag_test_image(layout, tag, &image)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn layers_are_deterministic_and_tags_accumulate() {
        let first = tempfile::tempdir().expect("tempdir");
        let second = tempfile::tempdir().expect("tempdir");
        let layers = random_layers(7, &[10, 4096, 3]);
        let a = write_test_layout(first.path(), "a", &layers).expect("a");
        let b = write_test_layout(second.path(), "a", &layers).expect("b");
        assert_eq!(a, b);
        write_test_layout(first.path(), "b", &random_layers(8, &[5])).expect("b");
        let index = fs::read_to_string(first.path().join("index.json")).expect("index");
        assert!(index.contains("\"a\"") && index.contains("\"b\""), "{index}");
        assert_eq!(fs::metadata(blob_path(first.path(), &a.layer_digests[1])).expect("layer").len(), 4096);
    }
}
