//! Composing whole trees with the compose library, from repositories built by the test-support
//! library on top of its minimal OS (`filesystem`, `setup` with the user `alice`, the host's shell):
//! file modes, owners, capabilities, links, `%ghost` and `%config` files, scriptlets, treefile scripts,
//! the rpm database, commit metadata and a kernel; failures that must leave nothing committed (file
//! conflicts, a failing `%post`, hostile packages, a payload that contradicts its header, unsigned
//! packages under `gpgcheck=1`); incremental and unchanged composes; reproducible commits. Needs root,
//! bwrap, rofiles-fuse, rpm, createrepo_c and ostree (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use arbor_testsupport::os_fixture::{self, GROUP_ID, GROUP_NAME, USER_ID, USER_NAME};
use arbor_testsupport::tools::tool_stdout;
use arbor_testsupport::{Compression, MinimalOs, RpmSpec, TestKey, TestRepository};
use compose::{ComposeError, PackageChange};
use ostree::{gio, glib};
use rpmmd::download::DownloadError;
use rpmmd::signature::SignatureError;
use tree::BuildError;
use tree::assemble::AssembleError;
use tree::pkgcache::{ImportError, PackageCacheError};
use tree::scriptlets::ScriptletError;

/// `uname -r` of the test kernel: its directory under /usr/lib/modules.
const KERNEL_VERSION: &str = "6.1.0-arbor.x86_64";

/// Permission bits of the files the test packages ship.
const FILE_MODE: u16 = 0o644;
const EXECUTABLE_MODE: u16 = 0o755;
const SETUID_EXECUTABLE_MODE: u16 = 0o4755;
const SETGID_DIRECTORY_MODE: u16 = 0o2775;
const PRIVATE_FILE_MODE: u16 = 0o600;

/// What `ostree ls` prints for the modes above (file type letter, then five octal digits).
const LISTED_SETUID_EXECUTABLE: &str = "-04755";
const LISTED_SETGID_DIRECTORY: &str = "d02775";
const LISTED_PRIVATE_FILE: &str = "-00600";
const LISTED_SYMLINK: &str = "l00777";

/// A file larger than the 4 MiB that importing and committing read in one piece: both stream it.
const BIG_FILE_SIZE: usize = 5 << 20;

/// The period of the big file's byte pattern: a prime, so that it never lines up with buffer sizes.
const BIG_FILE_PATTERN_PERIOD: usize = 251;

/// An integer of the treefile's `add-commit-metadata`.
const BUILD_NUMBER: i64 = 7;

/// The extended attribute that carries file capabilities.
const CAPABILITY_XATTR: &str = "security.capability";

/// Permission bits of `st_mode` (setuid, setgid, sticky and rwx for all).
const PERMISSION_BITS: u32 = 0o7777;

/// Content that two packages ship at the same path (allowed: the files are identical).
const SHARED_LICENSE: &str = "Shared license text, shipped by tools and tools-data alike.\n";

/// Content of the file whose payload copy is damaged in the hostile-package test: long and unusual
/// enough to occur exactly once in the package file.
const CORRUPTED_CONTENT: &[u8] = b"arbor test payload content that the header has a digest of\n";

/// The metadata of `commit`, read with libostree: the ostree CLI prints the integers of commit
/// metadata byte-swapped on little-endian hosts (it assumes big-endian variants).
fn commit_metadata(repository: &Path, commit: &str) -> glib::VariantDict {
    let repo = ostree::Repo::new_for_path(repository);
    repo.open(gio::Cancellable::NONE).unwrap();
    let (commit_variant, _) = repo.load_commit(commit).unwrap();
    glib::VariantDict::new(Some(&commit_variant.child_value(0)))
}

/// The value of `key` in `metadata`, of type `T`.
fn metadata_value<T: glib::variant::FromVariant>(metadata: &glib::VariantDict, key: &str) -> T {
    let value = metadata.lookup_value(key, None).unwrap_or_else(|| panic!("no {key} in the commit metadata"));
    value.get::<T>().unwrap_or_else(|| panic!("{key} has the type {}", value.type_()))
}

/// One path of a committed tree, as `ostree ls` lists it.
#[derive(Debug, Clone, Default)]
struct TreeEntry {
    /// File type letter and octal permissions, e.g. `-04755`.
    mode: String,
    uid: u32,
    gid: u32,
    /// The content object (files, symlinks) or tree object (directories).
    checksum: String,
    /// The extended attributes in GVariant text.
    xattrs: String,
    target: Option<String>,
}

/// Every path of `revision`, from `ostree ls -R -C` and `ostree ls -R -X`.
fn list_tree(repository: &Path, revision: &str) -> BTreeMap<String, TreeEntry> {
    let mut entries: BTreeMap<String, TreeEntry> = BTreeMap::new();
    for line in ostree(repository, &["ls", "-R", "-C", revision]).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Directories show their tree and metadata checksums, everything else one content checksum.
        let path_index = if fields[0].starts_with('d') { 6 } else { 5 };
        let target = (fields.get(path_index + 1) == Some(&"->")).then(|| fields[path_index + 2].to_string());
        entries.insert(
            fields[path_index].to_string(),
            TreeEntry {
                mode: fields[0].to_string(),
                uid: fields[1].parse().unwrap(),
                gid: fields[2].parse().unwrap(),
                checksum: fields[4].to_string(),
                xattrs: String::new(),
                target,
            },
        );
    }
    for line in ostree(repository, &["ls", "-R", "-X", revision]).lines() {
        let (start, end) = (line.find('{').unwrap(), line.rfind('}').unwrap());
        let path = line[end + 1..].split_whitespace().next().unwrap();
        entries.get_mut(path).unwrap_or_else(|| panic!("{path} listed only with -X")).xattrs =
            line[start..=end].to_string();
    }
    entries
}

/// What failed in building the commit (after resolving and downloading).
fn build_error(error: &ComposeError) -> &BuildError {
    match error {
        ComposeError::Build { source, .. } => source,
        other => panic!("expected the build to fail, got: {}", error_chain(other)),
    }
}

/// The error and its sources, joined by ": ".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A package exercising what a tree can hold: setuid and capabilities, a setgid directory, a file of
/// `alice`, links, `%ghost` and `%config`, a file also in `tools-data`, a big file, and scriptlets that
/// leave marks (the `%post` also appends to the `%config` file and to the big file, both hardlinked
/// cache objects that must stay intact).
fn tools_package() -> RpmSpec {
    package("tools")
        .arch(os_fixture::ARCH)
        .requires("setup")
        .file("/usr/bin/privileged", "#!/bin/sh\necho privileged\n", SETUID_EXECUTABLE_MODE)
        .file("/usr/bin/pinger", "#!/bin/sh\necho ping\n", EXECUTABLE_MODE)
        .file_capabilities("/usr/bin/pinger", "cap_net_raw=ep")
        .symlink("/usr/bin/ping", "pinger")
        .file("/usr/bin/twin-a", "#!/bin/sh\necho twin\n", EXECUTABLE_MODE)
        .hardlink("/usr/bin/twin-b", "/usr/bin/twin-a")
        .directory("/usr/share/team", SETGID_DIRECTORY_MODE)
        .file_owned("/usr/share/team/notes", "alice's notes\n", PRIVATE_FILE_MODE, USER_NAME, GROUP_NAME)
        .config_file("/etc/tools/tools.conf", "setting=1\n", FILE_MODE)
        .ghost("/etc/tools/state", FILE_MODE)
        .file("/usr/share/licenses/shared/LICENSE", SHARED_LICENSE, FILE_MODE)
        .file("/usr/share/tools/big", big_content(), FILE_MODE)
        .pre_install_script("echo \"pre $1\" > /usr/share/tools-pre\n")
        .post_install_script(
            "echo \"post $1\" > /usr/share/tools-post\necho appended-by-post >> /etc/tools/tools.conf\n\
             echo appended-by-post >> /usr/share/tools/big\n",
        )
        .post_transaction_script("echo \"posttrans $1\" > /usr/share/tools-posttrans\n")
}

/// [`BIG_FILE_SIZE`] bytes that are not all the same.
fn big_content() -> Vec<u8> {
    (0..BIG_FILE_SIZE).map(|index| (index % BIG_FILE_PATTERN_PERIOD) as u8).collect()
}

/// Ships [`SHARED_LICENSE`] at the same path as `tools`.
fn tools_data_package() -> RpmSpec {
    package("tools-data").file("/usr/share/licenses/shared/LICENSE", SHARED_LICENSE, FILE_MODE)
}

/// A placeholder kernel in `/usr/lib/modules/KERNEL_VERSION`.
fn kernel_package() -> RpmSpec {
    let modules = format!("/usr/lib/modules/{KERNEL_VERSION}");
    package("kernel").arch(os_fixture::ARCH).requires("filesystem").directory(&modules, EXECUTABLE_MODE).file(
        &format!("{modules}/vmlinuz"),
        "not a kernel\n",
        EXECUTABLE_MODE,
    )
}

/// The packages of the full compose, and their names.
fn showcase_packages() -> Vec<RpmSpec> {
    vec![tools_package(), tools_data_package(), kernel_package()]
}

const SHOWCASE_NAMES: [&str; 3] = ["tools", "tools-data", "kernel"];

/// The treefile of the full compose: a postprocess script and extra commit metadata.
fn showcase_treefile() -> String {
    let extra = format!(
        "postprocess:\n  - |\n    #!/bin/sh\n    echo \"postprocessed\" > /usr/share/postprocessed\n\
                 add-commit-metadata:\n  arbor.test.stream: testing\n  arbor.test.build: {BUILD_NUMBER}\n"
    );
    treefile(&SHOWCASE_NAMES, &extra)
}

#[test]
fn a_full_compose_commits_the_tree_rpm_would_install() {
    let repository = repository_with(&showcase_packages());
    let workspace = Workspace::new(&repository.url(), None);
    let summary = workspace.compose(&showcase_treefile()).unwrap();

    let commit = summary.commit.clone().unwrap();
    assert_eq!(workspace.published_commit().as_deref(), Some(commit.as_str()));
    assert!(!summary.unchanged && !summary.dry_run);
    let package_count = os_fixture::PACKAGE_NAMES.len() + SHOWCASE_NAMES.len();
    assert_eq!((summary.import.imported, summary.import.cache_hits), (package_count, 0));

    let tree = list_tree(&workspace.target(), &commit);
    let entry = |path: &str| tree.get(path).unwrap_or_else(|| panic!("{path} is not in the commit")).clone();
    assert_eq!(entry("/usr/bin/privileged").mode, LISTED_SETUID_EXECUTABLE);
    assert_eq!(entry("/usr/share/team").mode, LISTED_SETGID_DIRECTORY);
    let notes = entry("/usr/share/team/notes");
    assert_eq!((notes.uid, notes.gid, notes.mode.as_str()), (USER_ID, GROUP_ID, LISTED_PRIVATE_FILE));
    assert!(entry("/usr/bin/pinger").xattrs.contains(CAPABILITY_XATTR), "{:?}", entry("/usr/bin/pinger"));
    assert!(!entry("/usr/bin/privileged").xattrs.contains(CAPABILITY_XATTR));
    let link = entry("/usr/bin/ping");
    assert_eq!((link.mode.as_str(), link.target.as_deref()), (LISTED_SYMLINK, Some("pinger")));
    assert_eq!(
        entry("/usr/bin/twin-a").checksum,
        entry("/usr/bin/twin-b").checksum,
        "one object for the pair"
    );
    assert_eq!(entry("/bin").target.as_deref(), Some("usr/bin"));
    assert!(tree.contains_key("/usr/share/licenses/shared/LICENSE"));
    assert!(tree.contains_key(&format!("/usr/lib/modules/{KERNEL_VERSION}/vmlinuz")));
    assert!(!tree.contains_key("/etc"), "/etc moved to /usr/etc");
    assert!(tree.contains_key("/usr/etc/tools/tools.conf"), "the %config file");
    assert!(!tree.contains_key("/usr/etc/tools/state"), "a %ghost file is not installed");
    for path in tree.keys() {
        assert!(tree[path].uid == 0 || path == "/usr/share/team/notes", "{path} belongs to root");
    }

    let checkout = workspace.directory.path().join("checkout");
    ostree(&workspace.target(), &["checkout", "-U", &commit, checkout.to_str().unwrap()]);
    let read = |path: &str| std::fs::read_to_string(checkout.join(path)).unwrap();
    assert_eq!(read("usr/share/tools-pre"), "pre 1\n");
    assert_eq!(read("usr/share/tools-post"), "post 1\n");
    assert_eq!(read("usr/share/tools-posttrans"), "posttrans 1\n");
    assert_eq!(read("usr/share/postprocessed"), "postprocessed\n");
    assert_eq!(read("usr/etc/tools/tools.conf"), "setting=1\nappended-by-post\n");
    assert_eq!(read("usr/share/licenses/shared/LICENSE"), SHARED_LICENSE);
    let mut big = big_content();
    big.extend_from_slice(b"appended-by-post\n");
    assert!(std::fs::read(checkout.join("usr/share/tools/big")).unwrap() == big, "the big file, appended to");

    let installed = tool_stdout(
        "rpm",
        [
            "-qa",
            "--root",
            checkout.to_str().unwrap(),
            "--dbpath",
            "/usr/share/rpm",
            "--queryformat",
            "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n",
        ],
    )
    .unwrap();
    let installed: BTreeSet<&str> = installed.lines().collect();
    let expected: Vec<String> = summary.packages.iter().map(|package| package.nevra()).collect();
    assert_eq!(installed, expected.iter().map(String::as_str).collect(), "rpm -qa of the checkout");
    assert_eq!(expected.len(), package_count);

    let metadata = commit_metadata(&workspace.target(), &commit);
    assert_eq!(metadata_value::<String>(&metadata, "version"), format!("{VERSION_PREFIX}.0"));
    assert_eq!(metadata_value::<String>(&metadata, "rpmostree.inputhash"), summary.inputhash);
    let listed: BTreeSet<String> =
        metadata_value::<Vec<(String, String, String, String, String)>>(&metadata, "rpmostree.rpmdb.pkglist")
            .into_iter()
            .map(|(name, _, _, _, _)| name)
            .collect();
    let names = os_fixture::PACKAGE_NAMES.iter().chain(&SHOWCASE_NAMES).map(|name| name.to_string());
    assert_eq!(listed, names.collect());
    assert_eq!(metadata_value::<String>(&metadata, "arbor.test.stream"), "testing");
    assert_eq!(metadata_value::<i64>(&metadata, "arbor.test.build"), BUILD_NUMBER);
    assert!(metadata_value::<bool>(&metadata, "ostree.bootable"));
    assert_eq!(metadata_value::<String>(&metadata, "ostree.linux"), KERNEL_VERSION);

    let target = workspace.target();
    assert_fsck_clean(&target);
    assert_fsck_clean(&workspace.package_cache());
    workspace.assert_scratch_space_is_clean();
}

/// Checks an error of a compose that had to fail, given with its [`error_chain`].
type ErrorCheck = fn(&BuildError, &str);

/// A compose that must fail: the packages added to the minimal OS, and what the error must say.
struct FailureCase {
    description: &'static str,
    packages: &'static [&'static str],
    check: ErrorCheck,
}

fn check_conflict(error: &BuildError, message: &str) {
    assert!(matches!(error, BuildError::Assemble(AssembleError::Conflict { .. })), "{message}");
    insta::assert_snapshot!("file_conflict", message);
}

fn check_failing_post(error: &BuildError, message: &str) {
    assert!(matches!(error, BuildError::Scriptlet(ScriptletError::Failed { .. })), "{message}");
    for expected in ["%post", "broken-post-1.0-1.noarch", "configuring broken-post", "cannot continue"] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

fn import_error(error: &BuildError) -> &ImportError {
    match error {
        BuildError::PackageCache(PackageCacheError::Import(import)) => import,
        other => panic!("expected an import error, got: {}", error_chain(other)),
    }
}

fn check_parent_directory_path(error: &BuildError, message: &str) {
    assert!(matches!(import_error(error), ImportError::UnsafePath { .. }), "{message}");
    assert!(message.contains("escape-1.0-1.noarch"), "{message}");
    assert!(message.contains("/usr/share/../../etc/escaped"), "{message}");
}

fn check_device_node(error: &BuildError, message: &str) {
    assert!(matches!(import_error(error), ImportError::UnsupportedFileType { .. }), "{message}");
    for expected in ["device-1.0-1.noarch", "/usr/share/device-node", "CharacterDevice"] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

fn check_write_through_symlink(error: &BuildError, message: &str) {
    assert!(matches!(error, BuildError::Assemble(AssembleError::ThroughSymlink { .. })), "{message}");
    for expected in ["evil-write-1.0-1.noarch", "/usr/lib/evil/x", "evil-link-1.0-1.noarch", "/usr/lib/evil "]
    {
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

fn check_corrupt_payload(error: &BuildError, message: &str) {
    assert!(matches!(import_error(error), ImportError::PayloadMismatch { .. }), "{message}");
    for expected in ["corrupt-1.0-1.noarch", "/usr/share/corrupt/data", "digest"] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

fn check_owner_conflict(error: &BuildError, message: &str) {
    assert!(matches!(error, BuildError::Assemble(AssembleError::Conflict { .. })), "{message}");
    for expected in ["/usr/share/owned.txt", "owned-by-root-1.0-1.noarch", "owned-by-alice-1.0-1.noarch"] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

const FAILURE_CASES: [FailureCase; 7] = [
    FailureCase {
        description: "two packages ship different files at one path",
        packages: &["conflict-one", "conflict-two"],
        check: check_conflict,
    },
    FailureCase {
        description: "two packages ship the same file for different owners",
        packages: &["owned-by-root", "owned-by-alice"],
        check: check_owner_conflict,
    },
    FailureCase {
        description: "a %post scriptlet fails",
        packages: &["broken-post"],
        check: check_failing_post,
    },
    FailureCase {
        description: "a payload path climbs out with ..",
        packages: &["escape"],
        check: check_parent_directory_path,
    },
    FailureCase {
        description: "the payload holds a device node",
        packages: &["device"],
        check: check_device_node,
    },
    FailureCase {
        description: "a package writes through another package's directory symlink",
        packages: &["evil-link", "evil-write"],
        check: check_write_through_symlink,
    },
    FailureCase {
        description: "a file of the payload does not match the header's digest",
        packages: &["corrupt"],
        check: check_corrupt_payload,
    },
];

/// The packages of [`FAILURE_CASES`], in one repository with the minimal OS. The `..` path is what
/// [`RpmSpec`] writes as given (the `rpm` crate only collapses repeated slashes); the device node
/// and the corrupt payload are written by the test-support OS fixture.
fn hostile_repository() -> TestRepository {
    let packages = [
        package("conflict-one").file("/usr/share/conflict.txt", "one\n", FILE_MODE),
        package("conflict-two").file("/usr/share/conflict.txt", "two\n", FILE_MODE),
        package("owned-by-root").file("/usr/share/owned.txt", "same\n", FILE_MODE),
        package("owned-by-alice").file_owned(
            "/usr/share/owned.txt",
            "same\n",
            FILE_MODE,
            USER_NAME,
            GROUP_NAME,
        ),
        package("broken-post")
            .post_install_script("echo configuring broken-post\necho cannot continue >&2\nexit 7\n"),
        package("escape").file("/usr/share/../../etc/escaped", "escaped\n", FILE_MODE),
        package("evil-link").symlink("/usr/lib/evil", "/etc"),
        package("evil-write").file("/usr/lib/evil/x", "through the link\n", FILE_MODE),
    ];
    let mut repository = repository_with(&packages);
    os_fixture::write_device_node_package(
        &repository.packages_directory(),
        "device",
        "/usr/share/device-node",
    )
    .unwrap();
    let corrupt = package("corrupt").compression(Compression::None).file(
        "/usr/share/corrupt/data",
        CORRUPTED_CONTENT,
        FILE_MODE,
    );
    let corrupt_path = repository.add_package(&corrupt).unwrap();
    os_fixture::corrupt_payload_content(&corrupt_path, CORRUPTED_CONTENT).unwrap();
    // The repository checksums now describe the damaged file: only the header can tell.
    repository.write_metadata().unwrap();
    repository
}

#[test]
fn a_failed_compose_commits_nothing_and_keeps_the_package_cache_usable() {
    let repository = hostile_repository();
    let workspace = Workspace::new(&repository.url(), None);
    let first_case = &FAILURE_CASES[0];
    workspace.compose(&treefile(first_case.packages, "")).expect_err(first_case.description);
    assert_eq!(workspace.published_commit(), None, "a failed first compose leaves no ref");

    let base = treefile(&[], "");
    let mut published = workspace.compose(&base).unwrap().commit.unwrap();

    for case in &FAILURE_CASES {
        let error = workspace.compose(&treefile(case.packages, "")).expect_err(case.description);
        let error = build_error(&error);
        let message = error_chain(error);
        (case.check)(error, &message);
        assert_eq!(
            workspace.published_commit(),
            Some(published.clone()),
            "{}: the ref moved",
            case.description
        );
        assert_fsck_clean(&workspace.target());
        assert_fsck_clean(&workspace.package_cache());
        workspace.assert_scratch_space_is_clean();

        let good = workspace.force_compose(&base).unwrap();
        let reused = (good.import.imported, good.import.cache_hits);
        assert_eq!(reused, (0, os_fixture::PACKAGE_NAMES.len()), "{}: cache reused", case.description);
        assert_eq!(good.previous_commit.as_deref(), Some(published.as_str()));
        published = good.commit.unwrap();
        assert_eq!(workspace.published_commit(), Some(published.clone()));
    }
}

#[test]
fn an_updated_package_is_the_only_one_imported() {
    let app = |version: &str| {
        RpmSpec::new("app", version, os_fixture::RELEASE).requires("filesystem").file(
            "/usr/share/app/version",
            format!("{version}\n"),
            FILE_MODE,
        )
    };
    let mut repository =
        repository_with(&[app("1.0"), package("app-data").file("/usr/share/app-data", "d\n", FILE_MODE)]);
    let workspace = Workspace::new(&repository.url(), None);
    let manifest = treefile(&["app", "app-data"], "");
    let first = workspace.compose(&manifest).unwrap();
    assert_eq!(first.version, Some(format!("{VERSION_PREFIX}.0")));

    repository.add_package(&app("1.1")).unwrap();
    repository.write_metadata().unwrap();
    let second = workspace.compose(&manifest).unwrap();
    let package_count = os_fixture::PACKAGE_NAMES.len() + 2;
    assert_eq!((second.import.imported, second.import.cache_hits), (1, package_count - 1));
    assert_eq!(
        second.changes,
        [PackageChange::Upgraded {
            name: "app".to_string(),
            from: "1.0-1.noarch".to_string(),
            to: "1.1-1.noarch".to_string()
        }]
    );
    assert_eq!(second.previous_commit, first.commit);
    assert_eq!(second.version, Some(format!("{VERSION_PREFIX}.1")));
    let commit = second.commit.unwrap();
    assert_eq!(workspace.published_commit().as_deref(), Some(commit.as_str()));
    assert_eq!(ostree(&workspace.target(), &["cat", &commit, "/usr/share/app/version"]), "1.1\n");
    assert_fsck_clean(&workspace.package_cache());
}

#[test]
fn a_rebuilt_package_with_the_same_version_is_imported_again() {
    let data = |content: &str| package("app-data").file("/usr/share/app-data", content, FILE_MODE);
    let mut repository = repository_with(&[data("first build\n")]);
    let workspace = Workspace::new(&repository.url(), None);
    let manifest = treefile(&["app-data"], "");
    workspace.compose(&manifest).unwrap();

    repository.remove_packages_named("app-data").unwrap();
    repository.add_package(&data("second build\n")).unwrap();
    repository.write_metadata().unwrap();
    let rebuilt = workspace.compose(&manifest).unwrap();
    assert!(!rebuilt.unchanged, "the package checksum is part of the input hash");
    assert_eq!((rebuilt.import.imported, rebuilt.import.cache_hits), (1, os_fixture::PACKAGE_NAMES.len()));
    assert!(rebuilt.changes.is_empty(), "{:?}", rebuilt.changes);
    let commit = rebuilt.commit.unwrap();
    assert_eq!(ostree(&workspace.target(), &["cat", &commit, "/usr/share/app-data"]), "second build\n");
}

#[test]
fn unchanged_inputs_compose_nothing_unless_forced() {
    let repository = repository_with(&[]);
    let workspace = Workspace::new(&repository.url(), None);
    let manifest = treefile(&[], "");
    let first = workspace.compose(&manifest).unwrap().commit.unwrap();

    let again = workspace.compose(&manifest).unwrap();
    assert!(again.unchanged);
    assert_eq!(again.commit.as_deref(), Some(first.as_str()));
    assert_eq!(workspace.published_commit().as_deref(), Some(first.as_str()), "the ref did not move");

    let forced = workspace.force_compose(&manifest).unwrap();
    assert!(!forced.unchanged);
    let forced_commit = forced.commit.unwrap();
    assert_ne!(forced_commit, first);
    assert_eq!(workspace.published_commit().as_deref(), Some(forced_commit.as_str()));
    assert_eq!(
        ostree(&workspace.target(), &["rev-parse", &format!("{REFERENCE}^")]).trim(),
        first,
        "the parent"
    );
    assert_eq!((forced.import.imported, forced.import.cache_hits), (0, os_fixture::PACKAGE_NAMES.len()));
}

#[test]
fn the_same_inputs_give_the_same_commit_anywhere() {
    let repository = repository_with(&showcase_packages());
    let compose_anew = || {
        let workspace = Workspace::new(&repository.url(), None);
        workspace.compose(&showcase_treefile()).unwrap().commit.unwrap()
    };
    assert_eq!(compose_anew(), compose_anew(), "two composes in different caches and repositories");
}

/// `app` in two versions that differ in every way a path can: a file only in one, a file that becomes a
/// directory, a symlink that points elsewhere, a directory whose mode changes.
fn changing_app(version: &str) -> RpmSpec {
    let spec = RpmSpec::new("app", version, os_fixture::RELEASE).requires("filesystem");
    if version == "1.0" {
        spec.file("/usr/share/app/only-in-1.0", "old\n", FILE_MODE)
            .file("/usr/share/app/becomes-directory", "file\n", FILE_MODE)
            .symlink("/usr/bin/app", "../share/app/only-in-1.0")
            .directory("/usr/lib/app", EXECUTABLE_MODE)
    } else {
        spec.file("/usr/share/app/only-in-1.1", "new\n", FILE_MODE)
            .file("/usr/share/app/becomes-directory/inside", "now a directory\n", FILE_MODE)
            .symlink("/usr/bin/app", "../share/app/only-in-1.1")
            .directory("/usr/lib/app", SETGID_DIRECTORY_MODE)
    }
}

/// Changes the kept tree the way scriptlets, a killed run or a curious administrator could.
fn tamper_with(tree: &Path) {
    std::fs::write(tree.join("usr/share/stray"), "stray\n").unwrap();
    std::fs::create_dir_all(tree.join("usr/share/stray-directory/nested")).unwrap();
    std::fs::set_permissions(tree.join("usr/share/team"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_file(tree.join("usr/bin/ping")).unwrap();
    std::os::unix::fs::symlink("elsewhere", tree.join("usr/bin/ping")).unwrap();
    // A private file where the cached object was (the object itself stays intact).
    std::fs::remove_file(tree.join("usr/bin/pinger")).unwrap();
    std::fs::write(tree.join("usr/bin/pinger"), "tampered\n").unwrap();
    std::fs::remove_file(tree.join("usr/bin/twin-b")).unwrap();
    std::fs::create_dir(tree.join("usr/bin/twin-b")).unwrap();
    let fifo = tree.join("usr/share/fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::write(tree.join(std::ffi::OsStr::from_bytes(b"usr/share/not-utf8-\xff")), "x\n").unwrap();
}

#[test]
fn a_kept_tree_gives_the_commit_a_fresh_tree_gives() {
    require_compose_tools();
    let mut packages = showcase_packages();
    packages.push(changing_app("1.0"));
    let mut repository = repository_with(&packages);
    let manifest = {
        let mut names = SHOWCASE_NAMES.to_vec();
        names.push("app");
        treefile(&names, "")
    };
    let kept = Workspace::new(&repository.url(), None);
    kept.compose(&manifest).unwrap();
    assert!(kept.kept_tree().join("usr/share/app/only-in-1.0").is_file(), "the tree is kept");
    let work_mode =
        std::fs::metadata(kept.cache().join("work")).unwrap().permissions().mode() & PERMISSION_BITS;
    assert_eq!(work_mode, 0o700, "no other user reaches the kept tree (it has set-user-ID programs)");
    tamper_with(&kept.kept_tree());

    repository.add_package(&changing_app("1.1")).unwrap();
    repository.write_metadata().unwrap();
    let updated = kept.compose(&manifest).unwrap();
    let fresh = Workspace::new(&repository.url(), None).compose(&manifest).unwrap();
    assert_eq!(updated.content_checksum, fresh.content_checksum, "the same tree as a fresh checkout");
    let commit = updated.commit.unwrap();
    assert_eq!(ostree(&kept.target(), &["cat", &commit, "/usr/bin/pinger"]), "#!/bin/sh\necho ping\n");
    assert_eq!(
        ostree(&kept.target(), &["cat", &commit, "/usr/share/app/becomes-directory/inside"]),
        "now a directory\n"
    );
    assert_fsck_clean(&kept.package_cache());
    kept.assert_scratch_space_is_clean();
}

#[test]
fn a_kept_tree_whose_usr_leads_out_of_it_touches_nothing_outside() {
    require_compose_tools();
    let repository = repository_with(&[]);
    let workspace = Workspace::new(&repository.url(), None);
    let manifest = treefile(&[], "");
    let first = workspace.compose(&manifest).unwrap();
    assert!(workspace.kept_tree().join("usr/etc").is_dir(), "/etc was moved to /usr/etc");

    // As a scriptlet could leave it: /usr a symlink to a host directory that has an etc/.
    let outside = workspace.directory.path().join("outside");
    std::fs::create_dir_all(outside.join("etc")).unwrap();
    std::fs::write(outside.join("etc/marker"), "host\n").unwrap();
    std::fs::remove_dir_all(workspace.kept_tree().join("usr")).unwrap();
    std::os::unix::fs::symlink(&outside, workspace.kept_tree().join("usr")).unwrap();

    let again = workspace.force_compose(&manifest).unwrap();
    assert_eq!(again.content_checksum, first.content_checksum);
    assert_eq!(std::fs::read_to_string(outside.join("etc/marker")).unwrap(), "host\n");
    assert!(workspace.kept_tree().join("usr").is_dir() && !workspace.kept_tree().join("usr").is_symlink());
}

#[test]
fn an_unsigned_package_under_gpgcheck_stops_the_compose_before_any_import() {
    require_compose_tools();
    let mut repository = TestRepository::new().unwrap();
    for spec in MinimalOs::from_host().unwrap().packages() {
        repository.add_package(&spec.signed_with(TestKey::Primary)).unwrap();
    }
    repository.add_package(&package("unsigned").file("/usr/share/unsigned", "u\n", FILE_MODE)).unwrap();
    repository.write_metadata().unwrap();
    let workspace = Workspace::new(&repository.url(), Some(TestKey::Primary));
    let error = workspace.compose(&treefile(&["unsigned"], "")).unwrap_err();
    let message = error_chain(&error);
    let ComposeError::Download(DownloadError::Signature(signature)) = &error else {
        panic!("expected a signature error, got: {message}")
    };
    assert!(matches!(**signature, SignatureError::Unsigned { .. }), "{message}");
    assert!(message.contains("unsigned-1.0-1.noarch"), "{message}");
    assert!(!workspace.package_cache().exists(), "nothing was imported, not even the signed packages");
    assert_eq!(workspace.published_commit(), None);

    let signed = workspace.compose(&treefile(&[], "")).unwrap();
    assert_eq!(signed.import.imported, os_fixture::PACKAGE_NAMES.len(), "the signed packages compose");
}

#[test]
fn a_fresh_package_cache_keeps_the_history_of_the_target() {
    let repository = repository_with(&[]);
    let workspace = Workspace::new(&repository.url(), None);
    let manifest = treefile(&[], "");
    let first = workspace.compose(&manifest).unwrap().commit.unwrap();
    std::fs::remove_dir_all(workspace.cache()).unwrap();
    let second = workspace.force_compose(&manifest).unwrap();
    assert_eq!(second.previous_commit.as_deref(), Some(first.as_str()));
    assert_eq!(
        ostree(&workspace.target(), &["rev-parse", &format!("{REFERENCE}^")]).trim(),
        first,
        "the parent"
    );
    assert_fsck_clean(&workspace.target());
    assert_fsck_clean(&workspace.package_cache());
}

/// What the hostile-scriptlet test leaves on the host for scriptlets to aim at: a file (the target of
/// the ownership pass) and a directory `rpm` with a file in it (the target of the rpm database).
struct HostTargets {
    directory: tempfile::TempDir,
}

impl HostTargets {
    fn new() -> HostTargets {
        let targets = HostTargets { directory: tempfile::tempdir().unwrap() };
        std::fs::write(targets.file(), "host file\n").unwrap();
        std::fs::set_permissions(targets.file(), std::fs::Permissions::from_mode(FILE_MODE.into())).unwrap();
        std::fs::create_dir(targets.directory.path().join("rpm")).unwrap();
        std::fs::write(targets.database_file(), "host database\n").unwrap();
        targets
    }

    fn path(&self) -> &Path {
        self.directory.path()
    }

    /// Named like the trojans' own file, so a scriptlet can swap in the whole directory.
    fn file(&self) -> PathBuf {
        self.path().join("payload")
    }

    fn database_file(&self) -> PathBuf {
        self.path().join("rpm/precious")
    }

    fn assert_untouched(&self, case: &str) {
        let metadata = std::fs::metadata(self.file()).unwrap();
        assert_eq!(metadata.mode() & PERMISSION_BITS, u32::from(FILE_MODE), "{case}: the host file's mode");
        assert_eq!((metadata.uid(), metadata.gid()), (0, 0), "{case}: the host file's owner");
        let database = std::fs::read_to_string(self.database_file()).ok();
        assert_eq!(database.as_deref(), Some("host database\n"), "{case}: the host's rpm directory");
    }
}

/// A package shipping `/usr/share/NAME/payload` for `alice` (so that the ownership pass after `%pre`
/// changes it), whose scriptlets get `rm` and `ln` from `host-utilities`.
fn trojan_package(name: &str) -> RpmSpec {
    package(name)
        .requires("host-utilities")
        .directory(&format!("/usr/share/{name}"), EXECUTABLE_MODE)
        .file_owned(
            &format!("/usr/share/{name}/payload"),
            "payload\n",
            SETUID_EXECUTABLE_MODE,
            USER_NAME,
            GROUP_NAME,
        )
}

/// `rm -r PATH; ln -s TARGET PATH`.
fn replace_by_symlink(path: &str, target: &Path) -> String {
    format!("rm -r {path}\nln -s {} {path}\n", target.display())
}

fn assert_ownership_pass_refused(error: &BuildError, message: &str) {
    assert!(matches!(error, BuildError::Assemble(AssembleError::Io { .. })), "{message}");
    assert!(message.contains("a scriptlet made this a symlink"), "{message}");
}

fn assert_rpm_database_refused(error: &BuildError, message: &str) {
    assert!(matches!(error, BuildError::Rpmdb(_)), "{message}");
    assert!(message.contains("/usr/share") && message.contains("symlink"), "{message}");
}

#[test]
fn scriptlets_cannot_aim_host_side_steps_at_the_host() {
    let host = HostTargets::new();
    let utilities = package("host-utilities")
        .arch(os_fixture::ARCH)
        .host_executables(["/usr/bin/rm", "/usr/bin/ln"])
        .unwrap();
    let repository = repository_with(&[
        utilities,
        trojan_package("trojan-file")
            .pre_install_script(&replace_by_symlink("/usr/share/trojan-file/payload", &host.file())),
        trojan_package("trojan-directory")
            .pre_install_script(&replace_by_symlink("/usr/share/trojan-directory", host.path())),
        trojan_package("trojan-database").post_install_script(&replace_by_symlink("/usr/share", host.path())),
    ]);
    let workspace = Workspace::new(&repository.url(), None);
    let cases: [(&str, ErrorCheck); 3] = [
        ("trojan-file", assert_ownership_pass_refused),
        ("trojan-directory", assert_ownership_pass_refused),
        ("trojan-database", assert_rpm_database_refused),
    ];
    for (name, check) in cases {
        let result = workspace.compose(&treefile(&[name], ""));
        host.assert_untouched(name);
        let error = result.expect_err(name);
        let error = build_error(&error);
        check(error, &error_chain(error));
        assert_eq!(workspace.published_commit(), None);
    }
}
