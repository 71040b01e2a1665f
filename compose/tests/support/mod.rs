//! What the compose library's tests share: a repository of the minimal OS plus test packages, a
//! treefile, and a workspace (treefile directory, cache, target repository) composed in through
//! `compose::tree`, with helpers that read the target repository.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use arbor_testsupport::os_fixture;
use arbor_testsupport::tools::{require_tool, tool_stdout};
use arbor_testsupport::{MinimalOs, RpmSpec, TestKey, TestRepository};
use common::blocking::Cancellation;
use compose::{ComposeError, ComposeSummary, LockfileSelection, TreeRequest};

/// The external programs a compose runs (and `ldd`, which the shell fixture needs).
pub const REQUIRED_TOOLS: [&str; 6] = ["bwrap", "rofiles-fuse", "rpm", "createrepo_c", "ostree", "ldd"];

/// The branch every test composes.
pub const REFERENCE: &str = "arbor/test/x86_64/base";

/// The id of the one repository of every treefile (`test.repo`).
pub const REPOSITORY_ID: &str = "test";

/// Commit time and `SOURCE_DATE_EPOCH` of every compose: 2024-01-01T00:00:00Z.
pub const SOURCE_DATE_EPOCH: u64 = 1_704_067_200;

/// Threads importing packages into the package cache.
pub const IMPORT_THREADS: usize = 2;

/// `automatic-version-prefix` of the treefiles: the first commit is `42.0`, the next `42.1`.
pub const VERSION_PREFIX: &str = "42";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

pub fn require_compose_tools() {
    for tool in REQUIRED_TOOLS {
        require_tool(tool).unwrap();
    }
}

/// A package of the tests: version 1.0, release 1, noarch unless changed.
pub fn package(name: &str) -> RpmSpec {
    RpmSpec::new(name, os_fixture::VERSION, os_fixture::RELEASE)
}

/// A repository holding the minimal OS and `packages`.
pub fn repository_with(packages: &[RpmSpec]) -> TestRepository {
    require_compose_tools();
    MinimalOs::from_host().unwrap().repository_with(packages).unwrap()
}

/// A treefile installing the minimal OS and `packages`, with `extra` YAML appended.
pub fn treefile(packages: &[&str], extra: &str) -> String {
    let names: Vec<&str> =
        os_fixture::PACKAGE_NAMES.iter().copied().chain(packages.iter().copied()).collect();
    let packages = names.join(", ");
    format!(
        "ref: {REFERENCE}\nrepos: [{REPOSITORY_ID}]\npackages: [{packages}]\n\
         automatic-version-prefix: \"{VERSION_PREFIX}\"\n{extra}"
    )
}

/// The `.repo` file of the test repository at `url`, with signature checks when a key is given.
pub fn repo_file(url: &str, key: Option<TestKey>) -> String {
    let mut text = format!("[{REPOSITORY_ID}]\nname={REPOSITORY_ID}\nbaseurl={url}\n");
    match key {
        Some(key) => text.push_str(&format!("gpgcheck=1\ngpgkey={}\n", key.public_key_url())),
        None => text.push_str("gpgcheck=0\n"),
    }
    text
}

/// One place to compose in: the treefile directory, the package cache and the target repository,
/// all in one temporary directory.
pub struct Workspace {
    pub directory: tempfile::TempDir,
}

impl Workspace {
    /// A workspace whose treefiles use the repository at `url`.
    pub fn new(url: &str, key: Option<TestKey>) -> Workspace {
        let workspace = Workspace { directory: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(workspace.treefile_directory()).unwrap();
        std::fs::write(
            workspace.treefile_directory().join(format!("{REPOSITORY_ID}.repo")),
            repo_file(url, key),
        )
        .unwrap();
        workspace
    }

    pub fn treefile_directory(&self) -> PathBuf {
        self.directory.path().join("treefile")
    }

    pub fn cache(&self) -> PathBuf {
        self.directory.path().join("cache")
    }

    pub fn package_cache(&self) -> PathBuf {
        self.cache().join("pkgcache-repo")
    }

    pub fn target(&self) -> PathBuf {
        self.directory.path().join("repo")
    }

    pub fn request(&self) -> TreeRequest {
        let mut request =
            TreeRequest::new(self.treefile_directory().join("manifest.yaml"), os_fixture::ARCH, self.cache());
        request.repo = self.target();
        request.lockfiles = LockfileSelection::None;
        request.source_date_epoch = Some(SOURCE_DATE_EPOCH);
        request.threads = IMPORT_THREADS;
        request
    }

    /// Writes `treefile` as `manifest.yaml` and composes it with the library entry point.
    pub fn compose_with(
        &self,
        treefile: &str,
        request: &TreeRequest,
    ) -> Result<ComposeSummary, ComposeError> {
        std::fs::write(&request.treefile, treefile).unwrap();
        let outcome = runtime().block_on(compose::tree(request, &|_| {}, &Cancellation::new()));
        outcome.map(compose::TreeOutcome::into_summary)
    }

    pub fn compose(&self, treefile: &str) -> Result<ComposeSummary, ComposeError> {
        self.compose_with(treefile, &self.request())
    }

    pub fn force_compose(&self, treefile: &str) -> Result<ComposeSummary, ComposeError> {
        self.compose_with(treefile, &TreeRequest { force: true, ..self.request() })
    }

    /// The commit the reference points to in the target repository, if it has the reference.
    pub fn published_commit(&self) -> Option<String> {
        if !self.target().join("config").exists() {
            return None;
        }
        let refs = ostree(&self.target(), &["refs"]);
        refs.lines()
            .any(|line| line == REFERENCE)
            .then(|| ostree(&self.target(), &["rev-parse", REFERENCE]).trim().to_string())
    }

    /// Only the lock file and the kept tree are left in the cache's scratch directory (no mount point, no
    /// rpm database scratch).
    pub fn assert_scratch_space_is_clean(&self) {
        let mut names: Vec<String> = std::fs::read_dir(self.cache().join("work"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["lock", "tree"], "what a compose leaves in its scratch space");
    }

    /// The tree the last compose left for the next one to reuse.
    pub fn kept_tree(&self) -> PathBuf {
        self.cache().join("work/tree")
    }
}

/// `ostree --repo=REPOSITORY ARGUMENTS...`, its standard output (an error when it fails).
pub fn ostree(repository: &Path, arguments: &[&str]) -> String {
    let mut all = vec![format!("--repo={}", repository.display())];
    all.extend(arguments.iter().map(|argument| argument.to_string()));
    tool_stdout("ostree", &all).unwrap()
}

/// `ostree fsck` succeeds: every object is intact and every commit complete.
pub fn assert_fsck_clean(repository: &Path) {
    let output = ostree(repository, &["fsck"]);
    assert!(!output.contains("corrupted"), "{}: {output}", repository.display());
}
