//! Serving one accepted connection: read requests, record them, apply the matching fault, answer.

use super::fault::{Fault, take_fault};
use super::request::{ReadOutcome, RequestHead, read_request};
use super::response::{BodyMode, Response, file_response, write_response};
use super::state::{ServerState, lock};
use std::io::{self, BufReader, Write};
use std::net::TcpStream;

/// Serves requests on `stream` until the client closes it, a fault closes it, or the server stops.
pub(super) fn serve(stream: TcpStream, connection: u64, state: &ServerState) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let head = match read_request(&mut reader) {
            Ok(ReadOutcome::Request(head)) => head,
            Ok(ReadOutcome::Closed) | Err(_) => return,
            Ok(ReadOutcome::Malformed(reason)) => {
                let response = Response::text(400, &format!("bad request: {reason}"));
                let _ = write_response(&mut writer, &response, BodyMode::Full, true);
                return;
            }
        };
        if state.shutdown.is_triggered() {
            return;
        }
        let _in_flight = state.begin_request();
        state.record(&head, connection);
        let fault = take_fault(&mut lock(&state.faults), &head.path);
        match answer(&mut writer, &head, fault, state) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
    }
}

/// The response a well-behaved server gives.
fn normal_response(head: &RequestHead, state: &ServerState) -> Response {
    match head.method.as_str() {
        "GET" | "HEAD" => file_response(&state.root, head),
        method => {
            Response::text(405, &format!("method {method} not allowed")).with_header("Allow", "GET, HEAD")
        }
    }
}

/// Answers one request, misbehaving as `fault` says; returns whether the connection stays open.
fn answer(
    writer: &mut impl Write,
    head: &RequestHead,
    fault: Option<Fault>,
    state: &ServerState,
) -> io::Result<bool> {
    let (response, body_mode, must_close) = match fault {
        None => (normal_response(head, state), BodyMode::Full, false),
        Some(Fault::Hang) => {
            state.shutdown.wait(None);
            return Ok(false);
        }
        Some(Fault::DropConnection) => return Ok(false),
        Some(Fault::Delay(delay)) => {
            if state.shutdown.wait(Some(delay)) {
                return Ok(false);
            }
            (normal_response(head, state), BodyMode::Full, false)
        }
        Some(Fault::NotFound) => {
            (Response::text(404, &format!("{} not found (injected)", head.path)), BodyMode::Full, false)
        }
        Some(Fault::Status(status) | Fault::FailTimes { status, .. }) => {
            (Response::text(status, &format!("injected status {status}")), BodyMode::Full, false)
        }
        Some(Fault::TooManyRequests { retry_after_seconds }) => {
            let response = Response::text(429, "too many requests (injected)")
                .with_header("Retry-After", &retry_after_seconds.to_string());
            (response, BodyMode::Full, false)
        }
        Some(Fault::Truncate { bytes }) => (normal_response(head, state), BodyMode::Truncated(bytes), true),
        Some(Fault::Corrupt) => (normal_response(head, state), BodyMode::Corrupted, false),
    };
    let body_mode = if head.method == "HEAD" { BodyMode::HeadersOnly } else { body_mode };
    let close = must_close || head.wants_close();
    write_response(writer, &response, body_mode, close)?;
    Ok(!close)
}
