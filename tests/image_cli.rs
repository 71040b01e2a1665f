//! End-to-end tests of `arbor compose image`, `arbor image verify|diff|copy|encapsulate` through the binary:
//! a tree composed from the test-support minimal OS becomes a chunked image in an OCI directory, passes
//! the client-side import, is pushed to a real local registry (Debian's docker-registry), stops early
//! when the registry image has the same input hash, and after a package update only the layers of the
//! changed package (plus the commit layer and the rpm database) are new. Needs root, bwrap, rofiles-fuse,
//! rpm, createrepo_c, ostree, skopeo and docker-registry (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use arbor_testsupport::os_fixture;
use arbor_testsupport::registry::TestRegistry;
use arbor_testsupport::tools::{require_tool, tool_stdout};
use arbor_testsupport::{MinimalOs, RpmSpec, TestRepository};

const TOOLS: [&str; 8] =
    ["bwrap", "rofiles-fuse", "rpm", "createrepo_c", "ostree", "ldd", "skopeo", "docker-registry"];
const ARCH: &str = os_fixture::ARCH;
/// `SOURCE_DATE_EPOCH` of every compose (2024-01-01T00:00:00Z): commits and images are reproducible.
const SOURCE_DATE_EPOCH: &str = "1704067200";
const FILE_MODE: u16 = 0o644;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn application(version: &str, payload: &str) -> RpmSpec {
    RpmSpec::new("application", version, "1")
        .file("/usr/share/application/data", payload.repeat(2000), FILE_MODE)
        .file("/usr/share/application/version", version, FILE_MODE)
}

fn library() -> RpmSpec {
    RpmSpec::new("library", "2.0", "1").file(
        "/usr/lib/library.data",
        "stable library ".repeat(5000),
        FILE_MODE,
    )
}

struct Workspace {
    directory: tempfile::TempDir,
    repository: TestRepository,
}

impl Workspace {
    fn new() -> Workspace {
        for tool in TOOLS {
            require_tool(tool).unwrap();
        }
        let mut repository = TestRepository::new().unwrap();
        for spec in
            MinimalOs::from_host().unwrap().packages().iter().chain([&application("1.0", "one "), &library()])
        {
            repository.add_package(spec).unwrap();
        }
        repository.write_metadata().unwrap();
        let workspace = Workspace { directory: tempfile::tempdir().unwrap(), repository };
        std::fs::create_dir_all(workspace.treefile().parent().unwrap()).unwrap();
        std::fs::write(
            workspace.treefile().with_file_name("test.repo"),
            format!("[test]\nname=test\nbaseurl={}\ngpgcheck=0\n", workspace.repository.url()),
        )
        .unwrap();
        let packages: Vec<&str> =
            os_fixture::PACKAGE_NAMES.iter().copied().chain(["application", "library"]).collect();
        std::fs::write(
            workspace.treefile(),
            format!(
                "ref: arbor/image-test/x86_64\nrepos: [test]\nrecommends: false\npackages: [{}]\n",
                packages.join(", ")
            ),
        )
        .unwrap();
        workspace
    }

    fn treefile(&self) -> PathBuf {
        self.directory.path().join("treefile/manifest.yaml")
    }

    fn images(&self) -> PathBuf {
        self.directory.path().join("images")
    }

    fn arbor(&self, arguments: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
            .args(arguments)
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .env_remove("RUST_LOG")
            .env_remove("ARBOR_LOG")
            .output()
            .expect("running arbor")
    }

    fn arbor_successfully(&self, arguments: &[&str]) -> String {
        let output = self.arbor(arguments);
        assert!(
            output.status.success(),
            "arbor {arguments:?}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    fn compose_image(&self, output: &str, extra: &[&str]) -> String {
        let treefile = self.treefile();
        let cache = self.directory.path().join("cache");
        let mut arguments = vec![
            "compose",
            "image",
            treefile.to_str().unwrap(),
            "--arch",
            ARCH,
            "--cachedir",
            cache.to_str().unwrap(),
            "--output",
            output,
        ];
        arguments.extend(extra);
        self.arbor_successfully(&arguments)
    }

    fn update_application(&mut self) {
        self.repository.remove_packages_named("application").unwrap();
        self.repository.add_package(&application("2.0", "two ")).unwrap();
        self.repository.write_metadata().unwrap();
    }
}

fn oci(directory: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", directory.display())
}

fn skopeo_inspect(image: &str) -> serde_json::Value {
    let output = tool_stdout("skopeo", ["inspect", "--tls-verify=false", image]).unwrap();
    serde_json::from_str(&output).unwrap()
}

#[test]
fn compose_image_verify_push_and_update() {
    let mut workspace = Workspace::new();
    let images = workspace.images();
    let first = oci(&images, "v1");
    let stdout = workspace.compose_image(&first, &[]);
    assert!(stdout.contains("Wrote oci:"), "{stdout}");

    let verified = workspace.arbor_successfully(&["image", "verify", &first]);
    assert!(verified.contains("equals the ostree.commit label"), "{verified}");
    let inspected = skopeo_inspect(&first);
    // No kernel in this tree: not bootable, so no bootc labels.
    assert!(inspected["Labels"]["containers.bootc"].is_null());
    assert!(inspected["Labels"]["ostree.commit"].is_string());
    assert!(inspected["Labels"]["rpmostree.inputhash"].is_string());

    // Packages are components of their own layers; the rpm database is alone.
    let layout = image::layout::OciDirectory::open(&images).unwrap();
    let manifest = layout.read_manifest(&layout.resolve(Some("v1")).unwrap()).unwrap();
    let components: Vec<&str> =
        manifest.layers[1..].iter().map(|layer| layer.annotations["ostree.components"].as_str()).collect();
    assert!(components.contains(&"arbor/rpmdb"), "{components:?}");
    assert!(
        components.iter().any(|names| names.split(',').any(|name| name == "application")),
        "{components:?}"
    );

    // Push, then compose again against the registry image: the input hash says nothing changed.
    let registry = TestRegistry::start().unwrap();
    let remote = format!("registry:{}/exampleos/os:testing", registry.host());
    let copied = workspace.arbor_successfully(&["image", "copy", &first, &remote, "--tls-verify=false"]);
    assert!(copied.contains("pushed"), "{copied}");
    let pushed = skopeo_inspect(&format!("docker://{}/exampleos/os:testing", registry.host()));
    assert_eq!(pushed["Digest"], inspected["Digest"]);
    let unchanged = workspace.compose_image(&remote, &["--tls-verify=false"]);
    assert!(unchanged.contains("No changes since image"), "{unchanged}");

    // An update of one package: a new image with the old one as the previous build.
    workspace.update_application();
    let second = oci(&images, "v2");
    let updated = workspace.compose_image(&second, &["--previous-build", &first]);
    assert!(updated.contains("a client with"), "{updated}");
    let diff = workspace.arbor_successfully(&["image", "diff", &first, &second]);
    assert!(diff.contains("application"), "{diff}");
    let old = layout.read_manifest(&layout.resolve(Some("v1")).unwrap()).unwrap();
    let new = layout.read_manifest(&layout.resolve(Some("v2")).unwrap()).unwrap();
    let kept = new
        .layers
        .iter()
        .filter(|layer| old.layers.iter().any(|previous| previous.digest == layer.digest))
        .count();
    // Only the commit layer, the rpm database and the application's layer may change.
    assert!(kept + 3 >= new.layers.len(), "{kept} of {} layers kept", new.layers.len());
    workspace.arbor_successfully(&["image", "verify", &second]);

    // The update pushed to the registry uploads only the new layers.
    let pushed = workspace.arbor_successfully(&["image", "copy", &second, &remote, "--tls-verify=false"]);
    assert!(pushed.contains(&format!("{} already in the registry", kept)), "{pushed}");
}

#[test]
fn encapsulate_to_an_archive_and_bad_targets() {
    let workspace = Workspace::new();
    let images = workspace.images();
    workspace.compose_image(&oci(&images, "base"), &[]);
    let repo = workspace.directory.path().join("cache/compose-repo");
    let archive = workspace.directory.path().join("image.tar");
    let archive_target = format!("oci-archive:{}", archive.display());
    let stdout = workspace.arbor_successfully(&[
        "image",
        "encapsulate",
        "--repo",
        repo.to_str().unwrap(),
        "arbor/image-test/x86_64",
        "--output",
        &archive_target,
        "--compression",
        "zstd",
        "--label",
        "com.example.stream=testing",
    ]);
    assert!(stdout.contains("Wrote oci-archive:"), "{stdout}");
    let inspected = skopeo_inspect(&archive_target);
    assert_eq!(inspected["Labels"]["com.example.stream"], "testing");
    workspace.arbor_successfully(&["image", "verify", &archive_target]);

    // Two architectures joined into one index.
    let repo_text = repo.to_str().unwrap();
    for arch in ["x86_64", "aarch64"] {
        workspace.arbor_successfully(&[
            "image",
            "encapsulate",
            "--repo",
            repo_text,
            "arbor/image-test/x86_64",
            "--arch",
            arch,
            "--output",
            &oci(&images, arch),
        ]);
    }
    let registry = TestRegistry::start().unwrap();
    let joined = format!("registry:{}/exampleos/os:multi", registry.host());
    let stdout = workspace.arbor_successfully(&[
        "image",
        "join",
        &oci(&images, "x86_64"),
        &oci(&images, "aarch64"),
        "--output",
        &joined,
        "--tls-verify=false",
    ]);
    assert!(stdout.contains("2 architectures"), "{stdout}");
    let raw = tool_stdout(
        "skopeo",
        [
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/exampleos/os:multi", registry.host()),
        ],
    )
    .unwrap();
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let architectures: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(architectures, ["amd64", "arm64"]);

    // A corrupt previous build is ignored with a warning: a fresh plan, no failure.
    let corrupt_directory = workspace.directory.path().join("corrupt");
    workspace.arbor_successfully(&["image", "copy", &oci(&images, "base"), &oci(&corrupt_directory, "base")]);
    let layout = image::layout::OciDirectory::open(&corrupt_directory).unwrap();
    let manifest = layout.resolve(Some("base")).unwrap();
    let blob = layout.blob_path(&manifest.digest).unwrap();
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(&blob, b"{ not a manifest").unwrap();
    let output = workspace.arbor(&[
        "image",
        "encapsulate",
        "--repo",
        repo_text,
        "arbor/image-test/x86_64",
        "--output",
        &oci(&images, "after-corrupt"),
        "--previous-build",
        &oci(&corrupt_directory, "base"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("warning: ignoring previous build"), "{}", text(&output.stderr));

    let output = workspace.arbor(&["image", "verify", "/no/transport"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("oci:DIR[:TAG]"), "{}", text(&output.stderr));
    let output = workspace.arbor(&["image", "verify", &oci(&images, "missing")]);
    assert!(text(&output.stderr).contains("no image tagged \"missing\""), "{}", text(&output.stderr));
}
