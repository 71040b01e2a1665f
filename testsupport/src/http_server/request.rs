//! Reading HTTP/1.1 request heads, and the [`RecordedRequest`] kept for every request.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

/// The largest request head accepted; a larger one closes the connection.
const MAXIMUM_HEAD_BYTES: usize = 64 * 1024;

/// One request the server received, in arrival order.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The percent-decoded path without the query, e.g. `/repodata/repomd.xml`.
    pub path: String,
    /// The request target as sent, query included.
    pub target: String,
    /// The headers in the order sent, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// When the request head had been read.
    pub received_at: Instant,
    /// `received_at` relative to the server's start.
    pub since_start: Duration,
    /// Which connection carried it (numbered from 0 in accept order), to observe connection reuse.
    pub connection: u64,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(header, _)| *header == name).map(|(_, value)| value.as_str())
    }

    /// Whether the request was conditional (`If-None-Match` or `If-Modified-Since`).
    pub fn is_conditional(&self) -> bool {
        self.header("if-none-match").is_some() || self.header("if-modified-since").is_some()
    }
}

/// A parsed request head.
#[derive(Debug)]
pub(super) struct RequestHead {
    pub method: String,
    pub target: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header == name).map(|(_, value)| value.as_str())
    }

    /// Whether the client asked to close the connection after this request.
    pub fn wants_close(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        connection.split(',').any(|token| token.trim() == "close")
            || (self.version == "HTTP/1.0" && !connection.contains("keep-alive"))
    }
}

/// What reading the next request on a connection gave.
#[derive(Debug)]
pub(super) enum ReadOutcome {
    Request(RequestHead),
    /// The client closed the connection (or it was shut down) before a new request.
    Closed,
    /// The bytes were not an HTTP request head.
    Malformed(String),
}

/// Reads one request head (and discards a `Content-Length` body).
pub(super) fn read_request(reader: &mut impl BufRead) -> io::Result<ReadOutcome> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let read = (&mut *reader).take((MAXIMUM_HEAD_BYTES - total + 1) as u64).read_line(&mut line);
        let count = match read {
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                return Ok(ReadOutcome::Malformed("request head is not UTF-8".to_string()));
            }
            Err(_) if lines.is_empty() => return Ok(ReadOutcome::Closed),
            Err(error) => return Err(error),
        };
        if count == 0 {
            return Ok(if lines.is_empty() {
                ReadOutcome::Closed
            } else {
                ReadOutcome::Malformed("connection closed inside the request head".to_string())
            });
        }
        total += count;
        if total > MAXIMUM_HEAD_BYTES {
            return Ok(ReadOutcome::Malformed(format!(
                "request head longer than {MAXIMUM_HEAD_BYTES} bytes"
            )));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // RFC 9112 allows empty lines before a request line.
            }
            break;
        }
        lines.push(line);
    }
    parse_head(&lines, reader)
}

fn parse_head(lines: &[String], reader: &mut impl BufRead) -> io::Result<ReadOutcome> {
    let request_line: Vec<&str> = lines[0].split(' ').collect();
    let [method, target, version] = request_line.as_slice() else {
        return Ok(ReadOutcome::Malformed(format!("bad request line `{}`", lines[0])));
    };
    if !version.starts_with("HTTP/1.") {
        return Ok(ReadOutcome::Malformed(format!("unsupported version `{version}`")));
    }
    let mut headers = Vec::new();
    for line in &lines[1..] {
        let Some((name, value)) = line.split_once(':') else {
            return Ok(ReadOutcome::Malformed(format!("bad header line `{line}`")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let head = RequestHead {
        method: (*method).to_string(),
        target: (*target).to_string(),
        path: percent_decode(target.split(['?', '#']).next().unwrap_or("")),
        version: (*version).to_string(),
        headers,
    };
    if head.header("transfer-encoding").is_some() {
        return Ok(ReadOutcome::Malformed("request bodies with Transfer-Encoding are not supported".into()));
    }
    if let Some(length) = head.header("content-length") {
        let Ok(length) = length.parse::<u64>() else {
            return Ok(ReadOutcome::Malformed(format!("bad Content-Length `{length}`")));
        };
        io::copy(&mut (&mut *reader).take(length), &mut io::sink())?;
    }
    Ok(ReadOutcome::Request(head))
}

/// Decodes `%XX` escapes; invalid escapes are kept verbatim.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes.get(index + 1..index + 3).and_then(|hex| std::str::from_utf8(hex).ok());
        match (bytes[index], escape.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head_and_discards_the_body() {
        let raw = b"GET /a%20b/c.xml?x=1 HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\
                    Content-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n";
        let mut reader = io::BufReader::new(&raw[..]);
        let ReadOutcome::Request(head) = read_request(&mut reader).expect("read") else {
            panic!("expected a request");
        };
        assert_eq!((head.method.as_str(), head.path.as_str()), ("GET", "/a b/c.xml"));
        assert_eq!(head.header("if-none-match"), Some("\"e\""));
        let ReadOutcome::Request(second) = read_request(&mut reader).expect("read") else {
            panic!("expected a pipelined second request");
        };
        assert_eq!(second.path, "/");
        assert!(matches!(read_request(&mut reader).expect("read"), ReadOutcome::Closed));
    }

    #[test]
    fn rejects_garbage() {
        let mut reader = io::BufReader::new(&b"hello\r\n\r\n"[..]);
        assert!(matches!(read_request(&mut reader).expect("read"), ReadOutcome::Malformed(_)));
    }
}
