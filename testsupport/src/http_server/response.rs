//! Building responses for files (ETag, Last-Modified, conditional requests, single byte ranges) and
//! writing them, possibly truncated or corrupted.

use super::http_date::{format_http_date, parse_http_date};
use super::request::RequestHead;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The status of an answer to a conditional request whose validators match.
const NOT_MODIFIED: u16 = 304;

/// A response ready to be written.
#[derive(Debug)]
pub(super) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a short plain-text body.
    pub fn text(status: u16, body: &str) -> Self {
        let headers = vec![("Content-Type".to_string(), "text/plain; charset=utf-8".to_string())];
        Self { status, headers, body: format!("{body}\n").into_bytes() }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected Status",
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("xml") => "application/xml",
        Some("gz") => "application/gzip",
        Some("zst") => "application/zstd",
        Some("xz") => "application/x-xz",
        Some("rpm") => "application/x-rpm",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that request path `path` names, refusing `.`/`..` segments.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.trim_start_matches('/');
    if relative.split('/').any(|segment| segment == ".." || segment == ".") || relative.contains('\0') {
        return None;
    }
    let full = root.join(relative);
    full.is_file().then_some(full)
}

/// The strong entity tag of `content`: its quoted sha256.
pub(super) fn entity_tag(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-None-Match` list matches `tag` (weak comparison, as RFC 9110 requires there).
fn none_match_matches(list: &str, tag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

/// The response for a GET or HEAD of a file under `root`.
pub(super) fn file_response(root: &Path, head: &RequestHead) -> Response {
    let Some(path) = resolve(root, &head.path) else {
        return Response::text(404, &format!("{} not found", head.path));
    };
    let (content, modified) = match std::fs::read(&path).and_then(|content| Ok((content, path.metadata()?))) {
        Ok((content, metadata)) => (content, metadata.modified().ok()),
        Err(error) => return Response::text(500, &format!("reading {}: {error}", path.display())),
    };
    let modified_seconds = modified
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map(|elapsed| elapsed.as_secs() as i64);
    let tag = entity_tag(&content);
    let mut validators = vec![("ETag".to_string(), tag.clone())];
    if let Some(seconds) = modified_seconds {
        validators.push(("Last-Modified".to_string(), format_http_date(seconds)));
    }
    let not_modified = match (head.header("if-none-match"), head.header("if-modified-since")) {
        (Some(list), _) => none_match_matches(list, &tag),
        (None, Some(since)) => {
            matches!((parse_http_date(since), modified_seconds), (Some(since), Some(file)) if file <= since)
        }
        (None, None) => false,
    };
    if not_modified {
        return Response { status: NOT_MODIFIED, headers: validators, body: Vec::new() };
    }
    let mut headers = validators;
    headers.push(("Content-Type".to_string(), content_type(&path).to_string()));
    headers.push(("Accept-Ranges".to_string(), "bytes".to_string()));
    let range =
        head.header("range").filter(|_| head.header("if-range").is_none_or(|if_range| if_range == tag));
    match range.map(|range| parse_range(range, content.len())) {
        None | Some(RangeRequest::Ignored) => Response { status: 200, headers, body: content },
        Some(RangeRequest::Satisfiable(start, end)) => {
            let total = content.len();
            headers.push(("Content-Range".to_string(), format!("bytes {start}-{end}/{total}")));
            Response { status: 206, headers, body: content[start..=end].to_vec() }
        }
        Some(RangeRequest::Unsatisfiable) => Response::text(416, "range not satisfiable")
            .with_header("Content-Range", &format!("bytes */{}", content.len())),
    }
}

/// A `Range` header, resolved against a body of known length.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Not a single `bytes=` range: serve the whole body.
    Ignored,
    /// Inclusive first and last byte.
    Satisfiable(usize, usize),
    Unsatisfiable,
}

fn parse_range(header: &str, length: usize) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    let Some((first, last)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return RangeRequest::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    if length == 0 {
        return RangeRequest::Unsatisfiable;
    }
    let (first, last) = match (first.parse::<usize>(), last.parse::<usize>()) {
        (Ok(first), Ok(last)) if first <= last => (first, last.min(length - 1)),
        (Ok(first), Err(_)) if last.is_empty() => (first, length - 1),
        (Err(_), Ok(suffix)) if first.is_empty() && suffix > 0 => (length.saturating_sub(suffix), length - 1),
        _ => return RangeRequest::Ignored,
    };
    if first < length { RangeRequest::Satisfiable(first, last) } else { RangeRequest::Unsatisfiable }
}

/// How the body of a response is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyMode {
    Full,
    /// HEAD: headers only, with the Content-Length a GET would get.
    HeadersOnly,
    /// Only the first `n` bytes, although Content-Length announces all of them.
    Truncated(usize),
    /// Every byte inverted.
    Corrupted,
}

/// Writes `response`; adds `Connection: close` when `close` is set.
pub(super) fn write_response(
    stream: &mut impl Write,
    response: &Response,
    body_mode: BodyMode,
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason_phrase(response.status));
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // A 304 has no body, and its Content-Length would have to be the one of the 200.
    if response.status != NOT_MODIFIED {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    match body_mode {
        BodyMode::Full => stream.write_all(&response.body)?,
        BodyMode::HeadersOnly => {}
        BodyMode::Truncated(bytes) => stream.write_all(&response.body[..bytes.min(response.body.len())])?,
        BodyMode::Corrupted => {
            let inverted: Vec<u8> = response.body.iter().map(|byte| !byte).collect();
            stream.write_all(&inverted)?;
        }
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_byte_ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), RangeRequest::Satisfiable(0, 3));
        assert_eq!(parse_range("bytes=4-", 10), RangeRequest::Satisfiable(4, 9));
        assert_eq!(parse_range("bytes=-3", 10), RangeRequest::Satisfiable(7, 9));
        assert_eq!(parse_range("bytes=5-100", 10), RangeRequest::Satisfiable(5, 9));
        assert_eq!(parse_range("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), RangeRequest::Ignored);
        assert_eq!(parse_range("items=0-1", 10), RangeRequest::Ignored);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(none_match_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match_matches("*", "\"b\""));
        assert!(!none_match_matches("\"a\"", "\"b\""));
    }
}
