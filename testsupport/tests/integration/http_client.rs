//! A raw HTTP/1.1 client over TcpStream, so the tests see exactly what the server sends.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test client waits for bytes before giving up.
pub const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A response as read off the wire until the server closed the connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    /// All bytes after the head, however many the server sent.
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header == name).map(|(_, value)| value.as_str())
    }

    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length").and_then(|length| length.parse().ok())
    }
}

/// Sends `method path` with `Connection: close` plus `headers`, and reads everything until EOF.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<RawResponse> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(CLIENT_READ_TIMEOUT))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).context("reading the response")?;
    parse_response(&bytes)
}

pub fn get(address: SocketAddr, path: &str) -> Result<RawResponse> {
    request(address, "GET", path, &[])
}

/// Parses one response; `bytes` must hold at least the complete head.
pub fn parse_response(bytes: &[u8]) -> Result<RawResponse> {
    let end =
        bytes.windows(4).position(|window| window == b"\r\n\r\n").context("no complete response head")?;
    let head = std::str::from_utf8(&bytes[..end])?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let status = status_line.split(' ').nth(1).context("no status code")?.parse()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Ok(RawResponse { status, headers, body: bytes[end + 4..].to_vec() })
}
