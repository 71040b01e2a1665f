//! Registry transfer against a real docker-registry (and skopeo as the independent client), with a
//! fault-injecting proxy in front for retries, timeouts and partial failures.

use arbor_testsupport::registry::{
    FaultProxy, ProxyFault, TEST_PASSWORD, TEST_USER, TestImage, TestRegistry, blob_path, random_layers,
    write_test_index_layout, write_test_layout,
};
use arbor_testsupport::tools::tool_stdout;
use image::registry::{
    RegistryOptions, RegistryReference, RetryPolicy, UPLOAD_CHUNK_BYTES, fetch_blob, fetch_manifest,
    pull_to_layout, push_layout,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KIB: usize = 1024;
/// A layer just over one upload chunk, so that it goes up in two PATCH requests.
const CHUNKED_LAYER_BYTES: usize = UPLOAD_CHUNK_BYTES as usize + 100 * KIB;
/// The stall timeout of the tests: short, so that the hang test ends quickly.
const TEST_REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);

/// Options for a local plain-HTTP registry: short timeouts and backoffs, and an empty auth file so
/// that the developer's own credentials never leak into a test.
fn options(directory: &Path) -> RegistryOptions {
    let auth_file = directory.join("empty-auth.json");
    std::fs::write(&auth_file, r#"{"auths":{}}"#).expect("write auth file");
    RegistryOptions {
        auth_file: Some(auth_file),
        tls_verify: false,
        concurrent_uploads: 4,
        retry: RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        connect_timeout: Duration::from_secs(2),
        request_timeout: TEST_REQUEST_TIMEOUT,
    }
}

fn reference(host: &str, repository_and_tag: &str) -> RegistryReference {
    RegistryReference::parse(&format!("{host}/{repository_and_tag}")).expect("reference")
}

fn skopeo_inspect(host: &str, image: &str, raw: bool) -> serde_json::Value {
    let mut arguments = vec!["inspect", "--tls-verify=false"];
    if raw {
        arguments.push("--raw");
    }
    let target = format!("docker://{host}/{image}");
    arguments.push(&target);
    let output = tool_stdout("skopeo", arguments).expect("skopeo inspect");
    serde_json::from_str(&output).expect("skopeo prints JSON")
}

struct Fixture {
    registry: TestRegistry,
    proxy: FaultProxy,
    directory: tempfile::TempDir,
    options: RegistryOptions,
}

impl Fixture {
    fn new() -> Self {
        let registry = TestRegistry::start().expect("start docker-registry");
        let proxy = FaultProxy::start(registry.address()).expect("start proxy");
        let directory = tempfile::tempdir().expect("tempdir");
        let options = options(directory.path());
        Self { registry, proxy, directory, options }
    }

    fn layout(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// A reference through the proxy.
    fn via_proxy(&self, image: &str) -> RegistryReference {
        reference(&self.proxy.host(), image)
    }
}

fn assert_same_blobs(from: &Path, to: &Path, digests: &[String]) {
    for digest in digests {
        let original = std::fs::read(blob_path(from, digest)).expect("original blob");
        let pulled = std::fs::read(blob_path(to, digest)).expect("pulled blob");
        assert!(original == pulled, "blob {digest} differs after the round trip");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn push_is_seen_by_skopeo_and_pulls_back_byte_identical() {
    let fixture = Fixture::new();
    let layout = fixture.layout("source");
    let image = write_test_layout(&layout, "v1", &random_layers(1, &[300 * KIB, CHUNKED_LAYER_BYTES, 7]))
        .expect("write layout");
    let destination = fixture.via_proxy("exampleos/os:latest");
    let report = push_layout(&layout, Some("v1"), &destination, &fixture.options).await.expect("push");
    assert_eq!(report.manifest_digest, image.manifest_digest);
    assert_eq!((report.blobs_uploaded, report.blobs_present), (4, 0), "three layers and the config");
    // The large layer went up in two chunks.
    assert_eq!(fixture.proxy.count("PATCH", "/v2/exampleos/os/blobs/uploads/"), 2);

    let inspected = skopeo_inspect(&fixture.registry.host(), "exampleos/os:latest", false);
    assert_eq!(inspected["Digest"], image.manifest_digest.as_str());
    let layers: Vec<&str> = inspected["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| layer.as_str().expect("digest"))
        .collect();
    assert_eq!(layers, image.layer_digests.iter().map(String::as_str).collect::<Vec<_>>());

    let direct = reference(&fixture.registry.host(), "exampleos/os:latest");
    let manifest = fetch_manifest(&direct, &fixture.options).await.expect("fetch manifest");
    assert_eq!(manifest.digest, image.manifest_digest);
    assert_eq!(manifest.bytes, std::fs::read(blob_path(&layout, &image.manifest_digest)).expect("manifest"));
    assert_eq!(manifest.media_type, "application/vnd.oci.image.manifest.v1+json");
    let by_digest = fetch_manifest(&direct.with_digest(&image.manifest_digest), &fixture.options)
        .await
        .expect("by digest");
    assert_eq!(by_digest.bytes, manifest.bytes);
    let config = fetch_blob(&direct, &image.config_digest, &fixture.options).await.expect("config");
    assert_eq!(config, std::fs::read(blob_path(&layout, &image.config_digest)).expect("config"));

    let pulled = fixture.layout("pulled");
    let pulled_manifest = pull_to_layout(&direct, &pulled, "copy", &fixture.options).await.expect("pull");
    assert_eq!(pulled_manifest.digest, image.manifest_digest);
    let mut everything = image.layer_digests.clone();
    everything.extend([image.config_digest.clone(), image.manifest_digest.clone()]);
    assert_same_blobs(&layout, &pulled, &everything);
    let index = std::fs::read_to_string(pulled.join("index.json")).expect("index.json");
    assert!(index.contains("\"copy\"") && index.contains(&image.manifest_digest), "{index}");
    // skopeo reads the pulled layout too.
    let copied = tool_stdout("skopeo", ["inspect", "--raw", &format!("oci:{}:copy", pulled.display())])
        .expect("skopeo reads the pulled layout");
    assert_eq!(copied.as_bytes(), manifest.bytes.as_slice());

    // A second pull into the same layout downloads nothing.
    fixture.proxy.clear_requests();
    let via_proxy = fixture.via_proxy("exampleos/os:latest");
    pull_to_layout(&via_proxy, &pulled, "again", &fixture.options).await.expect("second pull");
    assert_eq!(fixture.proxy.count("GET", "/v2/exampleos/os/blobs/"), 0, "{:?}", fixture.proxy.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_upload_only_missing_blobs() {
    let fixture = Fixture::new();
    let layout = fixture.layout("source");
    let mut layers = random_layers(10, &[100 * KIB, 200 * KIB, 300 * KIB]);
    let first = write_test_layout(&layout, "one", &layers).expect("first image");
    let destination = fixture.via_proxy("app/base:1");
    push_layout(&layout, Some("one"), &destination, &fixture.options).await.expect("first push");

    fixture.proxy.clear_requests();
    let again = push_layout(&layout, Some("one"), &destination, &fixture.options).await.expect("second push");
    assert_eq!((again.blobs_uploaded, again.bytes_uploaded, again.blobs_present), (0, 0, 4));
    let config_size = std::fs::metadata(blob_path(&layout, &first.config_digest)).expect("config").len();
    assert_eq!(again.bytes_present, 600 * KIB as u64 + config_size);
    assert_eq!(fixture.proxy.count("POST", "/v2/app/base/blobs/uploads/"), 0);

    // Same layers but the last one: only that layer and the new config go up.
    layers[2].seed = 99;
    let second = write_test_layout(&layout, "two", &layers).expect("second image");
    assert_eq!(first.layer_digests[..2], second.layer_digests[..2]);
    fixture.proxy.clear_requests();
    let report = push_layout(&layout, Some("two"), &fixture.via_proxy("app/base:2"), &fixture.options)
        .await
        .expect("push");
    assert_eq!(report.blobs_uploaded, 2, "the changed layer and the config: {report:?}");
    assert_eq!(report.blobs_present, 2);
    assert_eq!(
        report.bytes_uploaded,
        300 * KIB as u64
            + std::fs::metadata(blob_path(&layout, &second.config_digest)).expect("config").len()
    );
    assert_eq!(fixture.proxy.count("POST", "/v2/app/base/blobs/uploads/"), 2);
    let uploaded: Vec<String> = fixture
        .proxy
        .requests()
        .iter()
        .filter(|request| request.method == "HEAD" && request.status == Some(404))
        .map(|request| request.path.clone())
        .collect();
    assert!(uploaded.iter().any(|path| path.ends_with(&second.layer_digests[2])), "{uploaded:?}");

    // Pushing by digest-less reference with several tags in the layout needs a tag.
    let error = push_layout(&layout, None, &destination, &fixture.options).await.expect_err("ambiguous");
    assert!(error.to_string().contains("index.json"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_and_pulls_a_multi_arch_index() {
    let fixture = Fixture::new();
    let layout = fixture.layout("source");
    let shared = random_layers(20, &[50 * KIB]);
    let mut amd64 = shared.clone();
    amd64.extend(random_layers(21, &[60 * KIB]));
    let mut arm64 = shared.clone();
    arm64.extend(random_layers(22, &[70 * KIB]));
    let index =
        write_test_index_layout(&layout, "multi", &[("amd64", amd64), ("arm64", arm64)]).expect("index");
    let destination = fixture.via_proxy("exampleos/multi:stable");
    let report =
        push_layout(&layout, Some("multi"), &destination, &fixture.options).await.expect("push index");
    assert_eq!(report.manifest_digest, index.manifest_digest);
    assert_eq!(report.blobs_uploaded, 5, "one shared layer, two own layers, two configs");

    // Children by digest before the index by tag.
    let puts: Vec<String> = fixture
        .proxy
        .requests()
        .iter()
        .filter(|request| request.method == "PUT" && request.path.contains("/manifests/"))
        .map(|request| request.path.rsplit('/').next().unwrap_or("").to_string())
        .collect();
    let children: Vec<String> = index.children.iter().map(|child| child.manifest_digest.clone()).collect();
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert_eq!(puts[2], "stable");
    assert!(children.contains(&puts[0]) && children.contains(&puts[1]), "{puts:?}");

    let raw = skopeo_inspect(&fixture.registry.host(), "exampleos/multi:stable", true);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let listed: Vec<&str> = raw["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|entry| entry["digest"].as_str().expect("digest"))
        .collect();
    assert_eq!(listed, children.iter().map(String::as_str).collect::<Vec<_>>());
    let direct = reference(&fixture.registry.host(), "exampleos/multi:stable");
    let fetched = fetch_manifest(&direct, &fixture.options).await.expect("fetch index");
    assert_eq!(fetched.digest, index.manifest_digest);

    let pulled = fixture.layout("pulled");
    pull_to_layout(&direct, &pulled, "multi", &fixture.options).await.expect("pull index");
    let mut everything: Vec<String> = index.layer_digests.clone();
    everything.extend(children);
    everything.extend(index.children.iter().map(|child| child.config_digest.clone()));
    everything.push(index.manifest_digest.clone());
    assert_same_blobs(&layout, &pulled, &everything);
}

fn small_image(fixture: &Fixture, seed: u64) -> (PathBuf, TestImage) {
    let layout = fixture.layout(&format!("image-{seed}"));
    let image =
        write_test_layout(&layout, "t", &random_layers(seed, &[256 * KIB, 512 * KIB])).expect("layout");
    (layout, image)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_mid_upload_is_retried_with_a_new_session() {
    let fixture = Fixture::new();
    let (layout, image) = small_image(&fixture, 30);
    fixture.proxy.add_fault(
        "PUT",
        "/v2/faults/drop/blobs/uploads/",
        ProxyFault::DropAfterBodyBytes(64 * KIB as u64),
        Some(1),
    );
    let report = push_layout(&layout, Some("t"), &fixture.via_proxy("faults/drop:t"), &fixture.options)
        .await
        .expect("push survives a dropped connection");
    assert_eq!(report.manifest_digest, image.manifest_digest);
    assert_eq!(report.blobs_uploaded, 3);
    // One extra upload session for the dropped one.
    assert_eq!(fixture.proxy.count("POST", "/v2/faults/drop/blobs/uploads/"), 4);
    assert!(fixture.registry.tag_exists("faults/drop", "t").expect("check tag"));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_then_success_are_retried() {
    let fixture = Fixture::new();
    let (layout, _) = small_image(&fixture, 31);
    fixture.proxy.add_fault("PUT", "/v2/faults/five/blobs/uploads/", ProxyFault::Status(500), Some(2));
    fixture.proxy.add_fault("PUT", "/v2/faults/five/manifests/", ProxyFault::Status(503), Some(1));
    fixture.proxy.add_fault("HEAD", "/v2/faults/five/blobs/", ProxyFault::Status(502), Some(1));
    push_layout(&layout, Some("t"), &fixture.via_proxy("faults/five:t"), &fixture.options)
        .await
        .expect("push survives 5xx");
    assert!(fixture.registry.tag_exists("faults/five", "t").expect("check tag"));
    let injected = fixture.proxy.requests().iter().filter(|request| request.fault.is_some()).count();
    assert_eq!(injected, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_requests_waits_for_retry_after() {
    let fixture = Fixture::new();
    let (layout, _) = small_image(&fixture, 32);
    fixture.proxy.add_fault(
        "POST",
        "/v2/faults/slow/blobs/uploads/",
        ProxyFault::TooManyRequests { retry_after_seconds: 1 },
        Some(1),
    );
    let started = Instant::now();
    push_layout(&layout, Some("t"), &fixture.via_proxy("faults/slow:t"), &fixture.options)
        .await
        .expect("push survives 429");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited only {:?}", started.elapsed());
    assert!(fixture.registry.tag_exists("faults/slow", "t").expect("check tag"));
    assert_eq!(fixture.proxy.requests().iter().filter(|request| request.status == Some(429)).count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_stops_answering_times_out_and_leaves_no_tag() {
    let fixture = Fixture::new();
    let (layout, _) = small_image(&fixture, 33);
    fixture.proxy.add_fault("PUT", "/v2/faults/hang/blobs/uploads/", ProxyFault::Hang, None);
    let mut options = fixture.options.clone();
    options.retry.attempts = 2;
    let started = Instant::now();
    let error = push_layout(&layout, Some("t"), &fixture.via_proxy("faults/hang:t"), &options)
        .await
        .expect_err("a hanging registry fails the push");
    let elapsed = started.elapsed();
    let message = error.to_string();
    assert!(error.is_timeout(), "{message}");
    assert!(
        message.contains("did not answer") && message.contains("/v2/faults/hang/blobs/uploads/"),
        "{message}"
    );
    assert!(elapsed < TEST_REQUEST_TIMEOUT * 4, "took {elapsed:?}");
    assert!(!fixture.registry.tag_exists("faults/hang", "t").expect("check tag"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_that_keeps_failing_fails_the_push_and_leaves_no_tag() {
    let fixture = Fixture::new();
    let (layout, image) = small_image(&fixture, 34);
    // Every request about one layer fails.
    let blob = image.layer_digests[1].clone();
    fixture.proxy.add_fault(
        "HEAD",
        &format!("/v2/faults/broken/blobs/{blob}"),
        ProxyFault::Status(500),
        None,
    );
    let error = push_layout(&layout, Some("t"), &fixture.via_proxy("faults/broken:t"), &fixture.options)
        .await
        .expect_err("a persistently failing blob fails the push");
    let message = error.to_string();
    assert!(
        message.contains(&blob) && message.contains("500") && message.contains("gave up after 4 attempts"),
        "{message}"
    );
    assert!(!fixture.registry.tag_exists("faults/broken", "t").expect("check tag"));
    assert_eq!(fixture.proxy.count("PUT", "/v2/faults/broken/manifests/"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_registry_accepts_the_right_password_only() {
    let registry = TestRegistry::start_with_htpasswd(TEST_USER, TEST_PASSWORD).expect("start registry");
    let directory = tempfile::tempdir().expect("tempdir");
    let layout = directory.path().join("source");
    let image = write_test_layout(&layout, "t", &random_layers(40, &[128 * KIB])).expect("layout");
    let destination = reference(&registry.host(), "private/app:t");

    let mut options = options(directory.path());
    options.auth_file = Some(registry.write_auth_file(TEST_USER, TEST_PASSWORD).expect("auth file"));
    let report = push_layout(&layout, Some("t"), &destination, &options).await.expect("authenticated push");
    assert_eq!(report.manifest_digest, image.manifest_digest);
    assert!(registry.tag_exists("private/app", "t").expect("check tag"));
    let fetched = fetch_manifest(&destination, &options).await.expect("authenticated fetch");
    assert_eq!(fetched.digest, image.manifest_digest);

    let wrong_password = "wrong-password-do-not-print";
    options.auth_file = Some(registry.write_auth_file(TEST_USER, wrong_password).expect("auth file"));
    let error = fetch_manifest(&destination, &options).await.expect_err("wrong password");
    let message = error.to_string();
    assert!(error.is_authentication_failure(), "{message}");
    assert!(message.contains("authentication failed") && message.contains(&registry.host()), "{message}");
    assert!(message.contains("--authfile"), "{message}");
    assert!(!message.contains(wrong_password) && !format!("{error:?}").contains(wrong_password), "{message}");
    let push_error =
        push_layout(&layout, Some("t"), &reference(&registry.host(), "private/other:t"), &options)
            .await
            .expect_err("wrong password push");
    assert!(!push_error.to_string().contains(wrong_password));
    assert!(!registry.tag_exists("private/other", "t").expect("check tag"));

    // No credentials at all.
    let anonymous = self::options(directory.path());
    let error = fetch_manifest(&destination, &anonymous).await.expect_err("anonymous");
    assert!(error.to_string().contains("authentication failed"), "{error}");
}

/// Bytes in a mebibyte, for the benchmark's layer sizes.
const MIB: usize = 1024 * 1024;
/// Layers of the benchmark image (as many as a chunked ostree image has at most).
const BENCHMARK_LAYERS: usize = 64;
/// Runs of each pusher, alternating, each against a fresh registry.
const BENCHMARK_ROUNDS: usize = 3;

/// Compares `push_layout` with `skopeo copy` on a ~1 GiB image of 64 incompressible layers (8 to
/// 24 MiB), each run against a fresh registry. Run with
/// `cargo test --release -p image --test registry -- --ignored --nocapture push_benchmark`;
/// the layout goes to `$ARBOR_REGISTRY_BENCH_DIR` (default /var/tmp) and is removed afterwards.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: writes and pushes about 1 GiB"]
async fn push_benchmark() {
    let root =
        std::env::var_os("ARBOR_REGISTRY_BENCH_DIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let directory =
        tempfile::Builder::new().prefix("arbor-registry-bench-").tempdir_in(root).expect("tempdir");
    let layout = directory.path().join("layout");
    // Sizes spread over 8..24 MiB by a fixed permutation of 64 steps of 256 KiB (average ~16 MiB).
    let sizes: Vec<usize> =
        (0..BENCHMARK_LAYERS).map(|index| 8 * MIB + (index * 37 % 64) * 256 * 1024).collect();
    let written = Instant::now();
    let image = write_test_layout(&layout, "bench", &random_layers(1000, &sizes)).expect("layout");
    let total: usize = sizes.iter().sum();
    eprintln!("wrote {} MiB in {} layers in {:?}", total / MIB, sizes.len(), written.elapsed());
    let options = RegistryOptions { tls_verify: false, ..options(directory.path()) };
    let options = RegistryOptions {
        retry: RetryPolicy::default(),
        request_timeout: Duration::from_secs(60),
        ..options
    };

    let mut ours = Vec::new();
    let mut skopeo = Vec::new();
    for _ in 0..BENCHMARK_ROUNDS {
        let registry = TestRegistry::start().expect("registry");
        let destination = reference(&registry.host(), "bench/image:latest");
        let started = Instant::now();
        let report = push_layout(&layout, Some("bench"), &destination, &options).await.expect("push");
        ours.push(started.elapsed());
        assert_eq!(
            (report.blobs_uploaded, report.manifest_digest.as_str()),
            (65, image.manifest_digest.as_str())
        );
        drop(registry);

        let registry = TestRegistry::start().expect("registry");
        let source = format!("oci:{}:bench", layout.display());
        let target = format!("docker://{}/bench/image:latest", registry.host());
        let started = Instant::now();
        tool_stdout(
            "skopeo",
            ["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", &source, &target],
        )
        .expect("skopeo copy");
        skopeo.push(started.elapsed());
        let inspected = skopeo_inspect(&registry.host(), "bench/image:latest", false);
        assert_eq!(inspected["Digest"], image.manifest_digest.as_str(), "skopeo pushed the same image");
    }
    eprintln!("push_layout: {ours:?}\nskopeo copy: {skopeo:?}");
    let best = |times: &[Duration]| times.iter().min().copied().unwrap_or_default();
    eprintln!(
        "best: push_layout {:?}, skopeo {:?}, ratio {:.2}",
        best(&ours),
        best(&skopeo),
        best(&ours).as_secs_f64() / best(&skopeo).as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_registry_issues_bearer_tokens_for_the_right_password_only() {
    let registry = TestRegistry::start_with_token_auth().expect("start registry");
    let tokens = registry.token_server().expect("token server");
    let directory = tempfile::tempdir().expect("tempdir");
    let layout = directory.path().join("source");
    let image = write_test_layout(&layout, "t", &random_layers(50, &[64 * KIB])).expect("layout");
    let destination = reference(&registry.host(), "secure/app:t");

    let mut options = options(directory.path());
    options.auth_file = Some(registry.write_auth_file(TEST_USER, TEST_PASSWORD).expect("auth file"));
    push_layout(&layout, Some("t"), &destination, &options).await.expect("push with a bearer token");
    assert!(registry.tag_exists("secure/app", "t").expect("check tag"));
    let requests = tokens.requests();
    assert!(requests.iter().all(|request| request.with_credentials && request.granted), "{requests:?}");
    assert!(
        requests
            .iter()
            .any(|request| request.scopes.contains(&"repository:secure/app:pull,push".to_string())),
        "{requests:?}"
    );
    let fetched = fetch_manifest(&destination, &options).await.expect("fetch with a bearer token");
    assert_eq!(fetched.digest, image.manifest_digest);

    let wrong_password = "not-the-token-password";
    options.auth_file = Some(registry.write_auth_file(TEST_USER, wrong_password).expect("auth file"));
    let error = push_layout(&layout, Some("t"), &reference(&registry.host(), "secure/other:t"), &options)
        .await
        .expect_err("the token server refuses the password");
    let message = error.to_string();
    assert!(error.is_authentication_failure(), "{message}");
    assert!(message.contains(&registry.host()) && !message.contains(wrong_password), "{message}");
    assert!(!registry.tag_exists("secure/other", "t").expect("check tag"));
}
