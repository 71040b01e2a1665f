//! [`GitHttpServer`]: git's smart HTTP protocol on 127.0.0.1, served by running `git http-backend`
//! as a CGI program for each request; optionally requiring HTTP basic authentication, and able to
//! stop (connections are refused: "remote down") and start again on the same port.

use crate::tools::require_tool;
use anyhow::{Context, Result, bail};
use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Reads and writes of one connection give up after this (a stuck client must not hang a test).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head accepted.
const MAXIMUM_HEAD_BYTES: usize = 64 * 1024;
/// How long the self-connection that wakes the accept loop may take.
const WAKE_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Attempts to bind the old port again on restart (it is normally free at once).
const REBIND_ATTEMPTS: usize = 50;
const REBIND_PAUSE: Duration = Duration::from_millis(20);

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHttpRequest {
    pub method: String,
    /// The request target as sent, query included.
    pub target: String,
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// Shared by the handle and the server's threads.
#[derive(Debug)]
struct State {
    project_root: PathBuf,
    /// The exact `Authorization` header value required, if any.
    required_authorization: Option<String>,
    shutdown: AtomicBool,
    requests: Mutex<Vec<GitHttpRequest>>,
    connections: Mutex<Vec<TcpStream>>,
    connection_threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running (or stopped) server; stopped when dropped.
#[derive(Debug)]
pub struct GitHttpServer {
    address: SocketAddr,
    repository_name: String,
    state: Arc<State>,
    accept_thread: Option<JoinHandle<()>>,
}

impl GitHttpServer {
    pub(super) fn start(
        project_root: &Path,
        repository_name: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<GitHttpServer> {
        require_tool("git")?;
        let required_authorization = credentials.map(|(username, token)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"))
            )
        });
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding the git HTTP server to 127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let state = Arc::new(State {
            project_root: project_root.to_path_buf(),
            required_authorization,
            shutdown: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
            connection_threads: Mutex::new(Vec::new()),
        });
        let mut server = GitHttpServer {
            address,
            repository_name: repository_name.to_string(),
            state,
            accept_thread: None,
        };
        server.accept_thread = Some(spawn_accept_loop(listener, Arc::clone(&server.state))?);
        Ok(server)
    }

    /// `http://127.0.0.1:PORT/remote.git`.
    pub fn url(&self) -> String {
        format!("http://{}/{}", self.address, self.repository_name)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn is_running(&self) -> bool {
        self.accept_thread.is_some()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<GitHttpRequest> {
        lock(&self.state.requests).clone()
    }

    /// Stops listening and closes open connections: new connections are refused.
    pub fn stop(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.state.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.address, WAKE_CONNECT_TIMEOUT);
        let _ = accept_thread.join();
        for connection in lock(&self.state.connections).drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
        // Their sockets are shut down, so they end as soon as their git http-backend has.
        let threads = std::mem::take(&mut *lock(&self.state.connection_threads));
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// Listens again on the same port after [`GitHttpServer::stop`].
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let mut attempt = 0;
        let listener = loop {
            match TcpListener::bind(self.address) {
                Ok(listener) => break listener,
                Err(error) if attempt + 1 >= REBIND_ATTEMPTS => {
                    bail!("cannot listen on {} again: {error}", self.address)
                }
                Err(_) => {
                    attempt += 1;
                    thread::sleep(REBIND_PAUSE);
                }
            }
        };
        self.state.shutdown.store(false, Ordering::SeqCst);
        self.accept_thread = Some(spawn_accept_loop(listener, Arc::clone(&self.state))?);
        Ok(())
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_accept_loop(listener: TcpListener, state: Arc<State>) -> Result<JoinHandle<()>> {
    let name = format!("git-http-accept-{}", listener.local_addr()?.port());
    let handle = thread::Builder::new().name(name).spawn(move || {
        for stream in listener.incoming() {
            if state.shutdown.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            if let Ok(clone) = stream.try_clone() {
                let mut connections = lock(&state.connections);
                connections.retain(|connection| connection.peer_addr().is_ok());
                connections.push(clone);
            }
            let connection_state = Arc::clone(&state);
            // A connection that fails only fails its own request; the client sees the error.
            let spawned = thread::Builder::new().name("git-http-connection".into()).spawn(move || {
                let _ = serve_connection(stream, &connection_state);
            });
            if let Ok(handle) = spawned {
                let mut threads = lock(&state.connection_threads);
                threads.retain(|thread| !thread.is_finished());
                threads.push(handle);
            }
        }
    })?;
    Ok(handle)
}

/// A parsed request.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Answers one request and closes the connection (`Connection: close`; git's client copes).
fn serve_connection(stream: TcpStream, state: &State) -> Result<()> {
    stream.set_read_timeout(Some(CONNECTION_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECTION_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let request = read_request(&mut reader)?;
    let authorized = match &state.required_authorization {
        None => true,
        Some(expected) => request.header("authorization") == Some(expected.as_str()),
    };
    let (status, headers, body) = if authorized {
        run_backend(&request, state)?
    } else {
        let headers = vec![("WWW-Authenticate".to_string(), "Basic realm=\"arbor-test\"".to_string())];
        (401, headers, b"authentication required\n".to_vec())
    };
    lock(&state.requests).push(GitHttpRequest {
        method: request.method.clone(),
        target: request.target.clone(),
        authorization: request.header("authorization").map(str::to_string),
        status,
    });
    let mut writer = stream;
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    writer.write_all(head.as_bytes())?;
    writer.write_all(&body)?;
    writer.flush()?;
    let _ = writer.shutdown(Shutdown::Both);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Status",
    }
}

fn read_request(reader: &mut impl BufRead) -> Result<Request> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let count = reader.read_line(&mut line)?;
        total += count;
        if count == 0 || total > MAXIMUM_HEAD_BYTES {
            bail!("connection closed or request head too long");
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut request_line = lines[0].split(' ');
    let (Some(method), Some(target)) = (request_line.next(), request_line.next()) else {
        bail!("bad request line {}", lines[0]);
    };
    let headers: Vec<(String, String)> = lines[1..]
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let mut request =
        Request { method: method.to_string(), target: target.to_string(), headers, body: Vec::new() };
    if request.header("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().context("bad Content-Length")?;
        request.body = vec![0; length];
        reader.read_exact(&mut request.body)?;
    }
    Ok(request)
}

/// Decodes a `Transfer-Encoding: chunked` body (git sends one for large pushes and fetch requests).
fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size =
            usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut line_end = [0u8; 2];
        reader.read_exact(&mut line_end)?;
    }
}

type CgiResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// Runs `git http-backend` for `request` (CGI/1.1) and splits its output into status, headers, body.
fn run_backend(request: &Request, state: &State) -> Result<CgiResponse> {
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &state.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(content_type) = request.header("content-type") {
        command.env("CONTENT_TYPE", content_type);
    }
    for (name, value) in &request.headers {
        command.env(format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")), value);
    }
    let mut child = command.spawn().context("starting git http-backend")?;
    let mut stdin = child.stdin.take().context("git http-backend has no stdin")?;
    let body = request.body.clone();
    let writer = thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output().context("waiting for git http-backend")?;
    let _ = writer.join();
    let split = find_header_end(&output.stdout).with_context(|| {
        format!("git http-backend wrote no CGI header: {}", String::from_utf8_lossy(&output.stderr))
    })?;
    let (head, body) = (&output.stdout[..split.0], output.stdout[split.1..].to_vec());
    let mut status = 200;
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("status") {
            status = value.trim().split(' ').next().and_then(|code| code.parse().ok()).unwrap_or(500);
        } else {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    Ok((status, headers, body))
}

/// Where the CGI header ends: (end of the header lines, start of the body).
fn find_header_end(output: &[u8]) -> Option<(usize, usize)> {
    let crlf = output.windows(4).position(|window| window == b"\r\n\r\n").map(|at| (at, at + 4));
    let lf = output.windows(2).position(|window| window == b"\n\n").map(|at| (at, at + 2));
    match (crlf, lf) {
        (Some(crlf), Some(lf)) => Some(if crlf.0 < lf.0 { crlf } else { lf }),
        (crlf, lf) => crlf.or(lf),
    }
}
