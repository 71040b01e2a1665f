//! Downloading resolved packages from repositories built by the test-support library: `file://`
//! packages verified in place, `http://` packages cached by checksum, mirror fallback, corrupt
//! transfers kept out of the cache, and OpenPGP signature checks with `gpgcheck=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use arbor_testsupport::{Fault, RpmSpec, TestHttpServer, TestKey, TestRepository};
use rpmmd::download::{DownloadError, DownloadProgress, PackageSource, download_packages};
use rpmmd::fetch::{FetchOptions, Fetcher};
use rpmmd::repo_file::RepoDefinition;
use rpmmd::resolve::{LockSettings, Resolution, resolve, treefile_repositories};
use rpmmd::signature::SignatureError;
use treefiles::{FileSystemLoader, LoadOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// Short timeouts and backoffs so fault tests run fast.
fn fetcher(cache: &Path) -> Fetcher {
    let mut options = FetchOptions::new(cache);
    options.initial_backoff = Duration::from_millis(20);
    options.maximum_backoff = Duration::from_millis(200);
    options.read_timeout = Duration::from_millis(800);
    options.connect_timeout = Duration::from_secs(2);
    Fetcher::new(options).unwrap()
}

/// `app` (requiring `libapp`) and `libapp`, each signed with `key` when given.
fn packages(key: Option<TestKey>) -> Vec<RpmSpec> {
    let specs = vec![
        RpmSpec::new("app", "1.0", "1").requires("libapp").file("/usr/bin/app", b"#!/bin/sh\n", 0o755),
        RpmSpec::new("libapp", "2.0", "3").arch("x86_64").file("/usr/lib64/libapp.so.2", [7; 4096], 0o755),
    ];
    match key {
        Some(key) => specs.into_iter().map(|spec| spec.signed_with(key)).collect(),
        None => specs,
    }
}

fn repository_of(specs: Vec<RpmSpec>) -> TestRepository {
    let mut repository = TestRepository::new().unwrap();
    for spec in &specs {
        repository.add_package(spec).unwrap();
    }
    repository.finish().unwrap()
}

/// A treefile asking for `app` with one `.repo` file holding `repo_text`, resolved.
struct Compose {
    directory: tempfile::TempDir,
    fetcher: Fetcher,
    definitions: Vec<RepoDefinition>,
    resolution: Resolution,
}

impl Compose {
    fn cache(&self) -> PathBuf {
        self.directory.path().join("cache")
    }

    /// Downloads, recording the progress reports.
    fn download(&self) -> (Result<Vec<PathBuf>, DownloadError>, Vec<DownloadProgress>) {
        let reports = Mutex::new(Vec::new());
        let report = |progress: DownloadProgress| reports.lock().unwrap().push(progress);
        let result = runtime().block_on(download_packages(
            &self.fetcher,
            &self.resolution,
            &self.definitions,
            &report,
        ));
        (result, reports.into_inner().unwrap())
    }
}

fn compose(repo_text: &str) -> Compose {
    let directory = tempfile::tempdir().unwrap();
    let treefile_directory = directory.path().join("treefile");
    std::fs::create_dir_all(&treefile_directory).unwrap();
    std::fs::write(treefile_directory.join("manifest.yaml"), "ref: r\nrepos: [test]\npackages: [app]\n")
        .unwrap();
    std::fs::write(treefile_directory.join("test.repo"), repo_text).unwrap();
    let flattened = treefiles::load(
        &FileSystemLoader,
        &treefile_directory.join("manifest.yaml"),
        &LoadOptions::for_arch("x86_64"),
    )
    .unwrap_or_else(|problems| panic!("{problems}"));
    let (definitions, _) = treefile_repositories(&flattened).unwrap();
    let fetcher = fetcher(&directory.path().join("cache"));
    let resolution = runtime().block_on(resolve(&fetcher, &flattened, &LockSettings::default())).unwrap();
    assert_eq!(resolution.packages.len(), 2);
    Compose { directory, fetcher, definitions, resolution }
}

/// `[test]` with the base URLs, `gpgcheck` and `gpgkey` lines.
fn repo_text(baseurls: &[String], gpgcheck: bool, gpgkeys: &[String]) -> String {
    let mut text =
        format!("[test]\nname=test\nbaseurl={}\ngpgcheck={}\n", baseurls.join("\n  "), u8::from(gpgcheck));
    if !gpgkeys.is_empty() {
        text.push_str(&format!("gpgkey={}\n", gpgkeys.join("\n  ")));
    }
    text
}

fn unsigned_local_compose(repository: &TestRepository) -> Compose {
    compose(&repo_text(&[repository.url()], false, &[]))
}

fn package_files(cache: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(cache.join("packages")) {
        Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn signature_error(error: &DownloadError) -> &SignatureError {
    match error {
        DownloadError::Signature(signature) => signature,
        other => panic!("expected a signature error, got: {other}"),
    }
}

fn server_path(compose: &Compose, name: &str) -> String {
    let package = compose.resolution.packages.iter().find(|package| package.name == name).unwrap();
    format!("/{}", package.location)
}

#[test]
fn file_repositories_are_verified_in_place_not_copied() {
    let repository = repository_of(packages(None));
    let compose = unsigned_local_compose(&repository);
    let (result, reports) = compose.download();
    let paths = result.unwrap();
    let expected: Vec<PathBuf> = compose
        .resolution
        .packages
        .iter()
        .map(|package| repository.rpm_path(&package.name).unwrap())
        .collect();
    assert_eq!(paths, expected, "the repository's own files, in resolution order");
    assert!(package_files(&compose.cache()).is_empty(), "nothing copied into the cache");
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|report| report.source == PackageSource::LocalFile && report.cached()));
    let mut done: Vec<usize> = reports.iter().map(|report| report.done).collect();
    done.sort();
    assert_eq!(done, [1, 2]);
    assert!(reports.iter().all(|report| report.total == 2 && report.bytes > 0));
}

#[test]
fn a_local_package_that_does_not_match_the_metadata_is_refused() {
    let repository = repository_of(packages(None));
    let compose = unsigned_local_compose(&repository);
    let path = repository.rpm_path("libapp").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(0);
    std::fs::write(&path, bytes).unwrap();
    let (result, _) = compose.download();
    let error = result.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, DownloadError::ChecksumMismatch { .. }), "{message}");
    assert!(message.contains("libapp-2.0-3.x86_64"), "names the package: {message}");
    assert!(message.contains(&path.display().to_string()), "names the path: {message}");
    let expected = compose.resolution.packages.iter().find(|package| package.name == "libapp").unwrap();
    assert!(
        message.contains(expected.checksum.as_deref().unwrap()),
        "names the expected checksum: {message}"
    );
    assert!(message.contains("got sha256:"), "names the actual checksum: {message}");
}

#[test]
fn http_packages_are_cached_by_checksum_and_fetched_once() {
    let repository = repository_of(packages(None));
    let server = TestHttpServer::serve(repository.path()).unwrap();
    let compose = compose(&repo_text(&[server.url()], false, &[]));
    let (result, reports) = compose.download();
    let paths = result.unwrap();
    for (package, path) in compose.resolution.packages.iter().zip(&paths) {
        let checksum = package.checksum.as_deref().unwrap().replace(':', "-");
        assert_eq!(*path, compose.cache().join("packages").join(format!("{checksum}.rpm")));
        assert_eq!(
            std::fs::read(path).unwrap(),
            std::fs::read(repository.rpm_path(&package.name).unwrap()).unwrap()
        );
    }
    assert!(reports.iter().all(|report| report.source == PackageSource::Downloaded && !report.cached()));
    let app = server_path(&compose, "app");
    let libapp = server_path(&compose, "libapp");
    assert_eq!((server.request_count(&app), server.request_count(&libapp)), (1, 1));
    assert_eq!(package_files(&compose.cache()).len(), 2, "no temporary files left");

    let (again, reports) = compose.download();
    assert_eq!(again.unwrap(), paths);
    assert!(reports.iter().all(|report| report.source == PackageSource::Cached));
    assert_eq!((server.request_count(&app), server.request_count(&libapp)), (1, 1), "served from the cache");
}

#[test]
fn a_package_missing_from_the_first_baseurl_comes_from_the_next() {
    let repository = repository_of(packages(None));
    let first = TestHttpServer::serve(repository.path()).unwrap();
    let second = TestHttpServer::serve(repository.path()).unwrap();
    let compose = compose(&repo_text(&[first.url(), second.url()], false, &[]));
    first.set_fault("/Packages/", Fault::NotFound);
    let (result, _) = compose.download();
    assert_eq!(result.unwrap().len(), 2);
    let app = server_path(&compose, "app");
    assert_eq!(first.request_count(&app), 1, "a 404 is not retried");
    assert_eq!(second.request_count(&app), 1);
}

#[test]
fn a_corrupt_download_never_enters_the_cache() {
    let repository = repository_of(packages(None));
    let server = TestHttpServer::serve(repository.path()).unwrap();
    let compose = compose(&repo_text(&[server.url()], false, &[]));
    server.set_fault("/Packages/", Fault::Corrupt);
    let (result, reports) = compose.download();
    let error = result.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, DownloadError::Fetch { .. }), "{message}");
    assert!(message.contains("checksum mismatch"), "{message}");
    assert!(
        message.contains("app-1.0-1.noarch") || message.contains("libapp-2.0-3.x86_64"),
        "names the package: {message}"
    );
    assert!(reports.is_empty() || reports.len() == 1);
    let corrupt_left: Vec<PathBuf> = package_files(&compose.cache());
    assert!(corrupt_left.is_empty(), "nothing cached, no temporary files: {corrupt_left:?}");

    server.clear_faults();
    let (result, reports) = compose.download();
    assert_eq!(result.unwrap().len(), 2);
    assert!(reports.iter().all(|report| report.source == PackageSource::Downloaded));
}

#[test]
fn a_package_without_a_checksum_is_refused() {
    let repository = repository_of(packages(None));
    let mut compose = unsigned_local_compose(&repository);
    compose.resolution.packages[0].checksum = None;
    let nevra = compose.resolution.packages[0].nevra();
    let (result, reports) = compose.download();
    let error = result.unwrap_err();
    assert!(matches!(error, DownloadError::MissingChecksum { .. }), "{error}");
    assert!(error.to_string().contains(&nevra), "{error}");
    assert!(reports.is_empty(), "refused before anything is fetched");
}

#[test]
fn correctly_signed_packages_pass_gpgcheck() {
    let repository = repository_of(packages(Some(TestKey::Primary)));
    let compose = compose(&repo_text(&[repository.url()], true, &[TestKey::Primary.public_key_url()]));
    let (result, reports) = compose.download();
    assert_eq!(result.unwrap().len(), 2);
    assert_eq!(reports.len(), 2);
}

#[test]
fn keys_may_come_over_http_several_urls_or_one_file_with_several_keys() {
    let repository = repository_of(packages(Some(TestKey::Primary)));
    std::fs::copy(TestKey::Primary.public_key_path(), repository.path().join("RPM-GPG-KEY-test")).unwrap();
    let server = TestHttpServer::serve(repository.path()).unwrap();
    let keys = [TestKey::Wrong.public_key_url(), server.url_for("RPM-GPG-KEY-test")];
    let compose_over_http = compose(&repo_text(&[server.url()], true, &keys));
    let (result, _) = compose_over_http.download();
    assert_eq!(result.unwrap().len(), 2);
    assert_eq!(server.request_count("/RPM-GPG-KEY-test"), 1, "keys are loaded once per repository");

    let keyring = compose_over_http.directory.path().join("keyring.asc");
    std::fs::write(&keyring, format!("{}\n{}", TestKey::Wrong.public_key(), TestKey::Primary.public_key()))
        .unwrap();
    let compose = compose(&repo_text(&[repository.url()], true, &[format!("file://{}", keyring.display())]));
    let (result, _) = compose.download();
    assert_eq!(result.unwrap().len(), 2);
}

#[test]
fn unsigned_packages_fail_gpgcheck_naming_the_package() {
    let repository = repository_of(packages(None));
    let key_url = TestKey::Primary.public_key_url();
    let compose = compose(&repo_text(&[repository.url()], true, std::slice::from_ref(&key_url)));
    let (result, _) = compose.download();
    let error = result.unwrap_err();
    assert!(matches!(signature_error(&error), SignatureError::Unsigned { .. }), "{error}");
    let message = error.to_string();
    let expected_app = format!(
        "package app-1.0-1.noarch from repository \"test\" is not signed, but gpgcheck=1 (key {key_url})"
    );
    let expected_libapp = expected_app.replace("app-1.0-1.noarch", "libapp-2.0-3.x86_64");
    assert!(message == expected_app || message == expected_libapp, "{message}");
}

#[test]
fn packages_signed_with_another_key_fail_naming_the_package_and_the_key() {
    let repository = repository_of(packages(Some(TestKey::Wrong)));
    let key_url = TestKey::Primary.public_key_url();
    let compose = compose(&repo_text(&[repository.url()], true, std::slice::from_ref(&key_url)));
    let (result, _) = compose.download();
    let error = result.unwrap_err();
    let message = error.to_string();
    assert!(matches!(signature_error(&error), SignatureError::UnknownKey { .. }), "{message}");
    assert!(message.contains("app-1.0-1.noarch") || message.contains("libapp-2.0-3.x86_64"), "{message}");
    assert!(message.contains("repository \"test\""), "{message}");
    assert!(message.contains(TestKey::Wrong.key_id()), "names the signing key: {message}");
    assert!(message.contains(TestKey::Wrong.fingerprint()), "{message}");
    assert!(message.contains(&key_url), "names the trusted key file: {message}");
}

#[test]
fn gpgcheck_off_accepts_unsigned_packages() {
    let repository = repository_of(packages(None));
    let compose = compose(&repo_text(&[repository.url()], false, &[TestKey::Primary.public_key_url()]));
    let (result, _) = compose.download();
    assert_eq!(result.unwrap().len(), 2);
}

#[test]
fn gpgcheck_without_a_usable_key_fails_before_downloading() {
    let repository = repository_of(packages(Some(TestKey::Primary)));
    let server = TestHttpServer::serve(repository.path()).unwrap();

    let without_key = compose(&repo_text(&[server.url()], true, &[]));
    let (result, reports) = without_key.download();
    let error = result.unwrap_err();
    assert!(matches!(signature_error(&error), SignatureError::NoKeys { .. }), "{error}");
    assert!(
        error.to_string().contains("test.repo:1: repository \"test\" has gpgcheck=1 but no gpgkey"),
        "{error}"
    );
    assert!(reports.is_empty());

    let missing = without_key.directory.path().join("no-such-key.asc");
    let missing_url = format!("file://{}", missing.display());
    let unreadable = compose(&repo_text(&[server.url()], true, std::slice::from_ref(&missing_url)));
    let error = unreadable.download().0.unwrap_err();
    assert!(matches!(signature_error(&error), SignatureError::UnreadableKey { .. }), "{error}");
    assert!(error.to_string().contains(&missing_url), "{error}");

    let not_a_key = without_key.directory.path().join("not-a-key.asc");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let not_a_key_url = format!("file://{}", not_a_key.display());
    let invalid = compose(&repo_text(&[server.url()], true, std::slice::from_ref(&not_a_key_url)));
    let error = invalid.download().0.unwrap_err();
    assert!(matches!(signature_error(&error), SignatureError::InvalidKey { .. }), "{error}");
    assert!(error.to_string().contains(&not_a_key_url), "{error}");
    assert_eq!(server.requests().iter().filter(|request| request.path.starts_with("/Packages/")).count(), 0);
}

#[test]
fn a_tampered_payload_under_a_valid_signature_is_refused() {
    let mut repository = repository_of(packages(Some(TestKey::Primary)));
    let path = repository.rpm_path("libapp").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    // The repository metadata now describes the tampered file: only the signed header can tell.
    repository.write_metadata().unwrap();
    let compose = compose(&repo_text(&[repository.url()], true, &[TestKey::Primary.public_key_url()]));
    let error = compose.download().0.unwrap_err();
    let message = error.to_string();
    assert!(matches!(signature_error(&error), SignatureError::PayloadDigestMismatch { .. }), "{message}");
    assert!(message.contains("libapp-2.0-3.x86_64"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn a_header_changed_after_signing_is_refused() {
    let mut repository = repository_of(packages(Some(TestKey::Primary)));
    let path = repository.rpm_path("libapp").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let summary = b"Test package libapp";
    let position = bytes.windows(summary.len()).position(|window| window == summary).unwrap();
    let mut tampered = bytes.clone();
    tampered[position + summary.len() - 1] = b'q';
    std::fs::write(&path, tampered).unwrap();
    repository.write_metadata().unwrap();
    let compose = compose(&repo_text(&[repository.url()], true, &[TestKey::Primary.public_key_url()]));
    let error = compose.download().0.unwrap_err();
    let message = error.to_string();
    assert!(matches!(signature_error(&error), SignatureError::BadSignature { .. }), "{message}");
    assert!(message.contains("libapp-2.0-3.x86_64"), "{message}");
    assert!(message.contains(TestKey::Primary.key_id()), "{message}");
}

#[test]
fn http_packages_download_in_parallel() {
    let repository = repository_of(packages(None));
    let server = TestHttpServer::serve(repository.path()).unwrap();
    let compose = compose(&repo_text(&[server.url()], false, &[]));
    server.set_fault("/Packages/", Fault::Delay(Duration::from_millis(300)));
    server.clear_requests();
    let (result, _) = compose.download();
    assert_eq!(result.unwrap().len(), 2);
    assert_eq!(server.max_in_flight(), 2, "both packages were requested at once");
}
