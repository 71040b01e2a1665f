//! TestHttpServer checked with a raw TcpStream client (and curl for one interoperability test).

use crate::http_client::{CLIENT_READ_TIMEOUT, get, parse_response, request};
use anyhow::Result;
use arbor_testsupport::http_server::http_date::format_http_date;
use arbor_testsupport::tools::run_tool;
use arbor_testsupport::{Fault, TestHttpServer};
use sha2::{Digest, Sha256};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

const FILE_MTIME: u64 = 1_700_000_000;
const REPOMD: &[u8] = b"<repomd>test</repomd>\n";
const PACKAGE_SIZE: usize = 10_000;

fn package_bytes() -> Vec<u8> {
    (0..PACKAGE_SIZE).map(|index| (index % 251) as u8).collect()
}

/// A served directory with `repodata/repomd.xml` and `Packages/a.rpm`, both with mtime FILE_MTIME.
fn served_directory() -> Result<tempfile::TempDir> {
    let directory = tempfile::tempdir()?;
    for (relative, content) in [("repodata/repomd.xml", REPOMD.to_vec()), ("Packages/a.rpm", package_bytes())]
    {
        let path = directory.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, content)?;
        let file = std::fs::File::options().write(true).open(&path)?;
        file.set_modified(UNIX_EPOCH + Duration::from_secs(FILE_MTIME))?;
    }
    Ok(directory)
}

fn quoted_sha256(content: &[u8]) -> String {
    let hex: String = Sha256::digest(content).iter().map(|byte| format!("{byte:02x}")).collect();
    format!("\"{hex}\"")
}

#[test]
fn serves_files_with_validators_and_answers_head() -> Result<()> {
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    assert_eq!(server.url(), format!("http://127.0.0.1:{}/", server.address().port()));

    let response = get(server.address(), "/repodata/repomd.xml")?;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, REPOMD);
    assert_eq!(response.content_length(), Some(REPOMD.len()));
    assert_eq!(response.header("etag"), Some(quoted_sha256(REPOMD).as_str()));
    assert_eq!(response.header("last-modified"), Some("Tue, 14 Nov 2023 22:13:20 GMT"));

    let head = request(server.address(), "HEAD", "/Packages/a.rpm", &[])?;
    assert_eq!((head.status, head.content_length(), head.body.len()), (200, Some(PACKAGE_SIZE), 0));

    assert_eq!(get(server.address(), "/missing.xml")?.status, 404);
    assert_eq!(get(server.address(), "/repodata/../repodata/repomd.xml")?.status, 404);
    assert_eq!(get(server.address(), "/repodata/")?.status, 404);
    assert_eq!(request(server.address(), "POST", "/repodata/repomd.xml", &[])?.status, 405);

    let methods: Vec<String> = server.requests().iter().map(|request| request.method.clone()).collect();
    assert_eq!(methods, ["GET", "HEAD", "GET", "GET", "GET", "POST"]);
    Ok(())
}

#[test]
fn conditional_requests_get_304() -> Result<()> {
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    let address = server.address();
    let tag = quoted_sha256(REPOMD);
    let path = "/repodata/repomd.xml";

    let not_modified = request(address, "GET", path, &[("If-None-Match", &tag)])?;
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    assert_eq!(not_modified.header("etag"), Some(tag.as_str()));
    assert_eq!(request(address, "GET", path, &[("If-None-Match", "\"other\"")])?.status, 200);

    let last_modified = format_http_date(FILE_MTIME as i64);
    assert_eq!(request(address, "GET", path, &[("If-Modified-Since", &last_modified)])?.status, 304);
    let earlier = format_http_date(FILE_MTIME as i64 - 1);
    assert_eq!(request(address, "GET", path, &[("If-Modified-Since", &earlier)])?.status, 200);

    let ranged = request(address, "GET", "/Packages/a.rpm", &[("Range", "bytes=100-199")])?;
    assert_eq!((ranged.status, ranged.header("content-range")), (206, Some("bytes 100-199/10000")));
    assert_eq!(ranged.body, package_bytes()[100..200]);

    let conditional: Vec<bool> =
        server.requests_for(path).iter().map(|request| request.is_conditional()).collect();
    assert_eq!(conditional, [true, true, true, true]);
    assert_eq!(server.requests_for(path)[0].header("If-None-Match"), Some(tag.as_str()));
    Ok(())
}

#[test]
fn status_faults_fail_times_then_recover_and_respect_prefixes() -> Result<()> {
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    let address = server.address();
    server.set_fault("/repodata/", Fault::FailTimes { status: 503, times: 2 });
    let statuses: Vec<u16> = (0..3)
        .map(|_| get(address, "/repodata/repomd.xml").map(|response| response.status))
        .collect::<Result<_>>()?;
    assert_eq!(statuses, [503, 503, 200]);
    assert_eq!(server.request_count("/repodata/repomd.xml"), 3);

    server.set_fault("Packages", Fault::TooManyRequests { retry_after_seconds: 7 });
    let limited = get(address, "/Packages/a.rpm")?;
    assert_eq!((limited.status, limited.header("retry-after")), (429, Some("7")));
    assert_eq!(get(address, "/repodata/repomd.xml")?.status, 200, "other prefixes are unaffected");

    server.set_fault("/Packages/", Fault::NotFound);
    server.set_fault("/Packages/a", Fault::Status(500));
    assert_eq!(get(address, "/Packages/a.rpm")?.status, 500, "the longest prefix wins");
    server.clear_fault("/Packages/a");
    assert_eq!(get(address, "/Packages/a.rpm")?.status, 404);

    server.clear_faults();
    server.set_fault_for_requests("/", Fault::Status(502), 1);
    assert_eq!(get(address, "/Packages/a.rpm")?.status, 502);
    assert_eq!(get(address, "/Packages/a.rpm")?.status, 200, "a limited fault expires");
    Ok(())
}

#[test]
fn truncate_and_corrupt_damage_the_body() -> Result<()> {
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    server.set_fault("/Packages/", Fault::Truncate { bytes: 1000 });
    let truncated = get(server.address(), "/Packages/a.rpm")?;
    assert_eq!((truncated.status, truncated.content_length()), (200, Some(PACKAGE_SIZE)));
    assert_eq!(truncated.body, package_bytes()[..1000]);

    server.set_fault("/Packages/", Fault::Corrupt);
    let corrupted = get(server.address(), "/Packages/a.rpm")?;
    assert_eq!(corrupted.body.len(), PACKAGE_SIZE);
    assert_ne!(corrupted.body, package_bytes());
    assert_eq!(corrupted.header("etag"), Some(quoted_sha256(&package_bytes()).as_str()), "the real ETag");
    Ok(())
}

#[test]
fn dropped_connection_sends_nothing() -> Result<()> {
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    server.set_fault("/", Fault::DropConnection);
    let error = get(server.address(), "/repodata/repomd.xml").expect_err("no response at all");
    assert!(error.to_string().contains("no complete response head"), "{error:#}");
    assert_eq!(server.request_count("/repodata/repomd.xml"), 1);
    Ok(())
}

#[test]
fn hang_never_answers_and_does_not_block_drop() -> Result<()> {
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    server.set_fault("/repodata/", Fault::Hang);
    let mut stream = TcpStream::connect(server.address())?;
    stream.set_read_timeout(Some(Duration::from_millis(300)))?;
    stream.write_all(b"GET /repodata/repomd.xml HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut buffer = [0_u8; 64];
    let error = stream.read(&mut buffer).expect_err("the server must not answer");
    assert!(matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{error}");
    assert_eq!(server.in_flight(), 1);

    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(1), "drop took {:?}", started.elapsed());
    stream.set_read_timeout(Some(CLIENT_READ_TIMEOUT))?;
    assert_eq!(stream.read(&mut buffer)?, 0, "the hanging connection is closed on drop");
    Ok(())
}

#[test]
fn delayed_requests_are_observed_in_parallel() -> Result<()> {
    const PARALLEL_REQUESTS: u32 = 4;
    const DELAY: Duration = Duration::from_millis(300);
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    server.set_fault("/Packages/", Fault::Delay(DELAY));
    let address = server.address();
    let started = Instant::now();
    let clients: Vec<_> = (0..PARALLEL_REQUESTS)
        .map(|_| std::thread::spawn(move || get(address, "/Packages/a.rpm").map(|response| response.status)))
        .collect();
    for client in clients {
        assert_eq!(client.join().expect("client thread")?, 200);
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= DELAY, "answered after {elapsed:?}, before the delay");
    assert!(elapsed < DELAY * PARALLEL_REQUESTS, "not parallel: {elapsed:?}");
    // At least two overlapped (normally all four); the elapsed time above already proves parallelism.
    assert!(server.max_in_flight() >= 2, "max in flight {}", server.max_in_flight());
    assert_eq!(server.in_flight(), 0);
    server.clear_requests();
    assert_eq!((server.requests().len(), server.max_in_flight()), (0, 0));
    Ok(())
}

#[test]
fn keep_alive_connections_serve_several_requests() -> Result<()> {
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    let mut stream = TcpStream::connect(server.address())?;
    stream.set_read_timeout(Some(CLIENT_READ_TIMEOUT))?;
    stream.write_all(b"GET /repodata/repomd.xml HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    while parse_response(&received).map_or(true, |response| response.body.len() < REPOMD.len()) {
        let count = stream.read(&mut buffer)?;
        anyhow::ensure!(count > 0, "connection closed after one request");
        received.extend_from_slice(&buffer[..count]);
    }
    assert_eq!(parse_response(&received)?.header("connection"), None, "kept open");

    stream.write_all(b"GET /repodata/repomd.xml HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut second = Vec::new();
    stream.read_to_end(&mut second)?;
    let second = parse_response(&second)?;
    assert_eq!((second.status, second.body.as_slice()), (200, REPOMD));
    assert_eq!(second.header("connection"), Some("close"));
    let connections: Vec<u64> = server.requests().iter().map(|request| request.connection).collect();
    assert_eq!(connections, [0, 0], "both requests on the first connection");
    Ok(())
}

#[test]
fn curl_revalidates_with_its_saved_etag() -> Result<()> {
    let directory = served_directory()?;
    let server = TestHttpServer::serve(directory.path())?;
    let scratch = tempfile::tempdir()?;
    let (output, etag) = (scratch.path().join("repomd.xml"), scratch.path().join("etag"));
    let url = server.url_for("repodata/repomd.xml");
    let arguments = |option: &str| {
        let (output, etag) = (output.to_string_lossy().into_owned(), etag.to_string_lossy().into_owned());
        ["-sSf", "-o", output.as_str(), option, etag.as_str(), url.as_str()].map(str::to_string)
    };
    run_tool("curl", arguments("--etag-save"))?;
    assert_eq!(std::fs::read(&output)?, REPOMD);
    run_tool("curl", arguments("--etag-compare"))?;
    let requests = server.requests_for("/repodata/repomd.xml");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("if-none-match"), Some(quoted_sha256(REPOMD).as_str()));
    assert!(Path::new(&output).exists());
    Ok(())
}
