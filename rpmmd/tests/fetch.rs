//! Repository downloads against a local HTTP server that misbehaves on purpose: retries, mirror
//! fallback, timeouts, conditional requests, parallelism, and a cache that never holds a bad file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbor_testsupport::{Fault, RpmSpec, TestHttpServer, TestRepository};
use rpmmd::fetch::{FetchError, FetchOptions, Fetcher};
use rpmmd::repo_file::{RepoDefinition, parse_repo_file};

fn repository() -> TestRepository {
    TestRepository::new()
        .unwrap()
        .add(RpmSpec::new("app", "1.0", "1").requires("libapp"))
        .unwrap()
        .add(RpmSpec::new("libapp", "1.0", "1"))
        .unwrap()
        .finish()
        .unwrap()
}

fn definition(baseurls: &[String]) -> RepoDefinition {
    let text = format!("[test]\nbaseurl={}\n", baseurls.join("\n  "));
    parse_repo_file(&text, Path::new("test.repo"), &Default::default()).unwrap().remove(0)
}

/// Short timeouts and backoffs so fault tests run fast.
fn fetcher(cache: &Path) -> Fetcher {
    let mut options = FetchOptions::new(cache);
    options.initial_backoff = Duration::from_millis(20);
    options.maximum_backoff = Duration::from_secs(2);
    options.read_timeout = Duration::from_millis(800);
    options.connect_timeout = Duration::from_secs(2);
    Fetcher::new(options).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// Every file under the cache, with any temporary leftovers.
fn cache_files(cache: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![cache.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}

fn assert_no_partial_files(cache: &Path) {
    let partial: Vec<_> =
        cache_files(cache).into_iter().filter(|path| path.to_string_lossy().contains(".partial-")).collect();
    assert!(partial.is_empty(), "temporary files left in the cache: {partial:?}");
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let repository = repository();
    let server = TestHttpServer::serve(repository.path()).unwrap();
    server.set_fault_for_requests("/repodata/repomd.xml", Fault::Status(500), 2);
    let cache = tempfile::tempdir().unwrap();
    let fetched =
        runtime().block_on(fetcher(cache.path()).fetch_repository(&definition(&[server.url()]))).unwrap();
    assert!(fetched.repomd.entry("primary").is_some());
    assert_eq!(server.request_count("/repodata/repomd.xml"), 3, "two failures, then success");
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let repository = repository();
    let server = TestHttpServer::serve(repository.path()).unwrap();
    server.set_fault_for_requests(
        "/repodata/repomd.xml",
        Fault::TooManyRequests { retry_after_seconds: 1 },
        1,
    );
    let cache = tempfile::tempdir().unwrap();
    let start = Instant::now();
    runtime().block_on(fetcher(cache.path()).fetch_repository(&definition(&[server.url()]))).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(950), "honored Retry-After: {:?}", start.elapsed());
}

#[test]
fn unreachable_missing_or_hanging_mirrors_fall_back_to_the_next_baseurl() {
    let repository = repository();
    let broken = TestHttpServer::serve(repository.path()).unwrap();
    let hanging = TestHttpServer::serve(repository.path()).unwrap();
    let good = TestHttpServer::serve(repository.path()).unwrap();
    broken.set_fault("/", Fault::NotFound);
    hanging.set_fault("/", Fault::Hang);
    let cache = tempfile::tempdir().unwrap();
    let fetcher = fetcher(cache.path());
    // A port nothing listens on: connection refused.
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let fetched = runtime()
        .block_on(fetcher.fetch_repository(&definition(&[
            unreachable,
            broken.url(),
            hanging.url(),
            good.url(),
        ])))
        .unwrap();
    assert_eq!(fetched.base_urls[0], good.url(), "the working mirror is used first afterwards");
    assert_eq!(broken.request_count("/repodata/repomd.xml"), 1, "a 404 is not retried");
    let primary = runtime().block_on(fetcher.fetch_metadata_file(&fetched, "primary")).unwrap().unwrap();
    assert!(primary.exists());
}

#[test]
fn truncated_and_corrupt_downloads_never_enter_the_cache() {
    let repository = repository();
    let first = TestHttpServer::serve(repository.path()).unwrap();
    let second = TestHttpServer::serve(repository.path()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let fetcher = fetcher(cache.path());
    let runtime = runtime();
    let fetched =
        runtime.block_on(fetcher.fetch_repository(&definition(&[first.url(), second.url()]))).unwrap();
    let primary_path = format!("/{}", fetched.repomd.entry("primary").unwrap().location);
    first.set_fault(&primary_path, Fault::Truncate { bytes: 10 });
    second.set_fault(&primary_path, Fault::Corrupt);
    let error = runtime.block_on(fetcher.fetch_metadata_file(&fetched, "primary")).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, FetchError::AllLocationsFailed { .. }), "{message}");
    assert!(message.contains("checksum mismatch"), "the corrupt mirror is named: {message}");
    assert!(first.request_count(&primary_path) >= 2, "the truncated transfer was retried");
    assert_no_partial_files(cache.path());
    assert!(
        !cache.path().join("metadata").exists()
            || std::fs::read_dir(cache.path().join("metadata")).unwrap().next().is_none()
    );

    // Once a mirror serves the real file, it is verified and cached.
    second.clear_faults();
    let primary = runtime.block_on(fetcher.fetch_metadata_file(&fetched, "primary")).unwrap().unwrap();
    assert_eq!(
        std::fs::read(&primary).unwrap(),
        std::fs::read(repository.metadata_path("primary").unwrap()).unwrap()
    );
    assert_no_partial_files(cache.path());
}

#[test]
fn dropped_connections_are_retried() {
    let repository = repository();
    let server = TestHttpServer::serve(repository.path()).unwrap();
    server.set_fault_for_requests("/repodata/repomd.xml", Fault::DropConnection, 2);
    let cache = tempfile::tempdir().unwrap();
    runtime().block_on(fetcher(cache.path()).fetch_repository(&definition(&[server.url()]))).unwrap();
    assert_eq!(server.request_count("/repodata/repomd.xml"), 3);
}

#[test]
fn repomd_is_revalidated_with_a_conditional_request() {
    let repository = repository();
    let server = TestHttpServer::serve(repository.path()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let fetcher = fetcher(cache.path());
    let runtime = runtime();
    let first = runtime.block_on(fetcher.fetch_repository(&definition(&[server.url()]))).unwrap();
    let second = runtime.block_on(fetcher.fetch_repository(&definition(&[server.url()]))).unwrap();
    assert_eq!(first.repomd_checksum, second.repomd_checksum);
    let requests = server.requests_for("/repodata/repomd.xml");
    assert!(!requests[0].is_conditional());
    assert!(
        requests[1].is_conditional(),
        "If-None-Match / If-Modified-Since sent: {:?}",
        requests[1].headers
    );
}

#[test]
fn metadata_of_several_repositories_downloads_in_parallel() {
    let repository = repository();
    let server = TestHttpServer::serve(repository.path()).unwrap();
    server.set_fault("/repodata/", Fault::Delay(Duration::from_millis(300)));
    let cache = tempfile::tempdir().unwrap();
    let fetcher = fetcher(cache.path());
    let runtime = runtime();
    let definitions: Vec<RepoDefinition> = (0..4)
        .map(|index| {
            let mut definition =
                definition(&[format!("{}?copy={index}", server.url().trim_end_matches('/'))]);
            definition.id = format!("copy{index}");
            definition.baseurls = vec![server.url()];
            definition.name = Some(format!("copy {index}"));
            definition
        })
        .collect();
    let start = Instant::now();
    runtime.block_on(async {
        let fetched = futures_util::future::try_join_all(
            definitions.iter().map(|definition| fetcher.fetch_repository(definition)),
        )
        .await
        .unwrap();
        futures_util::future::try_join_all(
            fetched.iter().map(|repository| fetcher.fetch_metadata_file(repository, "filelists")),
        )
        .await
        .unwrap();
    });
    assert!(server.max_in_flight() >= 2, "parallel requests: {}", server.max_in_flight());
    assert!(
        start.elapsed() < Duration::from_millis(4 * 2 * 300),
        "faster than serial: {:?}",
        start.elapsed()
    );
}
