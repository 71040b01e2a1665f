//! The same inputs give the same commit whatever the environment of `arbor compose tree`: the umask of a
//! hardened service (077) or a login shell (022), the time zone, the locale, TMPDIR, and whether the
//! repository is read from disk (`file://`) or over HTTP.
//!
//! Needs root, bwrap, rofiles-fuse, rpm, createrepo_c and ostree (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use arbor_testsupport::os_fixture;
use arbor_testsupport::tools::{require_tool, tool_stdout};
use arbor_testsupport::{MinimalOs, RpmSpec, TestHttpServer, TestRepository};

const COMPOSE_TOOLS: [&str; 6] = ["bwrap", "rofiles-fuse", "rpm", "createrepo_c", "ostree", "ldd"];
const REFERENCE: &str = "arbor/reproducible/x86_64/base";
const REPOSITORY_ID: &str = "test";
/// `SOURCE_DATE_EPOCH` of every compose (2024-01-01T00:00:00Z).
const SOURCE_DATE_EPOCH: &str = "1704067200";

/// The environments composed in, each as `sh -c` text run before `exec arbor ...`.
const ENVIRONMENTS: [(&str, &str); 3] = [
    ("a login shell", "umask 022"),
    ("a hardened service", "umask 077"),
    (
        "another zone, locale and TMPDIR",
        "umask 022; export TZ=Asia/Kathmandu LANG=de_DE.UTF-8 LC_ALL=de_DE.UTF-8",
    ),
];

/// A repository with the minimal OS and a package whose scriptlets create files and directories, as
/// real packages do (and whose modes a umask would change if anything inherited it).
fn repository() -> TestRepository {
    for tool in COMPOSE_TOOLS {
        require_tool(tool).unwrap();
    }
    let mut repository = TestRepository::new().unwrap();
    let maker = RpmSpec::new("maker", os_fixture::VERSION, os_fixture::RELEASE)
        .host_executables(["/usr/bin/mkdir"])
        .unwrap()
        .file("/usr/share/maker/data", "data\n", 0o644)
        .post_install_script(
            "mkdir -p /usr/lib/maker/made && echo made > /usr/lib/maker/made/by-post\n\
             echo config > /usr/share/maker/generated.conf\n",
        );
    // Packages no dependency orders, so that rpm numbers them in the order it is given them.
    let leaves = (0..LEAF_PACKAGES).map(|index| {
        RpmSpec::new(&leaf_name(index), os_fixture::VERSION, os_fixture::RELEASE).file(
            &format!("/usr/share/leaves/{index}"),
            "leaf\n",
            0o644,
        )
    });
    let packages: Vec<RpmSpec> =
        MinimalOs::from_host().unwrap().packages().into_iter().chain([maker]).chain(leaves).collect();
    for spec in &packages {
        repository.add_package(spec).unwrap();
    }
    repository.write_metadata().unwrap();
    repository
}

/// Independent packages in the tree: enough that their names and their checksums sort differently.
const LEAF_PACKAGES: usize = 8;

fn leaf_name(index: usize) -> String {
    format!("leaf-{index}")
}

fn treefile() -> String {
    let leaves: Vec<String> = (0..LEAF_PACKAGES).map(leaf_name).collect();
    let packages: Vec<&str> = os_fixture::PACKAGE_NAMES
        .iter()
        .copied()
        .chain(["maker"])
        .chain(leaves.iter().map(String::as_str))
        .collect();
    format!(
        "ref: {REFERENCE}\nrepos: [{REPOSITORY_ID}]\nrecommends: false\npackages: [{}]\n\
         postprocess:\n  - |\n    #!/bin/sh\n    mkdir -p /usr/lib/postprocessed && echo done > /usr/lib/postprocessed/mark\n",
        packages.join(", ")
    )
}

/// Composes the treefile against the repository at `url` in a fresh directory, inside `environment`
/// (shell text run before arbor), and returns the commit.
fn compose(url: &str, environment: &str) -> String {
    let directory = tempfile::tempdir().unwrap();
    let treefiles = directory.path().join("treefile");
    std::fs::create_dir_all(&treefiles).unwrap();
    std::fs::write(
        treefiles.join(format!("{REPOSITORY_ID}.repo")),
        format!("[{REPOSITORY_ID}]\nname={REPOSITORY_ID}\nbaseurl={url}\ngpgcheck=0\n"),
    )
    .unwrap();
    std::fs::write(treefiles.join("manifest.yaml"), treefile()).unwrap();
    let temporary = directory.path().join("tmp");
    std::fs::create_dir_all(&temporary).unwrap();
    let repo = directory.path().join("repo");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{environment}; exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_arbor"))
        .args(["compose", "tree"])
        .arg(treefiles.join("manifest.yaml"))
        .args(["--arch", os_fixture::ARCH, "--repo"])
        .arg(&repo)
        .arg("--cachedir")
        .arg(directory.path().join("cache"))
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env("TMPDIR", &temporary)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    assert!(output.status.success(), "{environment}: {}{}", text(&output.stdout), text(&output.stderr));
    let commit = ostree(&repo, &["rev-parse", REFERENCE]).trim().to_string();
    assert_modes_are_canonical(&repo, &commit, environment);
    commit
}

fn ostree(repository: &Path, arguments: &[&str]) -> String {
    let mut all = vec![format!("--repo={}", repository.display())];
    all.extend(arguments.iter().map(|argument| argument.to_string()));
    tool_stdout("ostree", &all).unwrap()
}

/// The directories and files the compose itself makes (the rpm database, what scriptlets and scripts
/// create) have the modes of a umask of 022, which clients' `rpm -q` as a normal user needs.
fn assert_modes_are_canonical(repository: &Path, commit: &str, environment: &str) {
    let cases = [
        ("/usr/lib/sysimage", "d00755"),
        ("/usr/share/rpm", "d00755"),
        ("/usr/share/rpm/rpmdb.sqlite", "-00644"),
        ("/usr/lib/maker/made", "d00755"),
        ("/usr/lib/maker/made/by-post", "-00644"),
        ("/usr/share/maker/generated.conf", "-00644"),
        ("/usr/lib/postprocessed/mark", "-00644"),
    ];
    for (path, expected) in cases {
        let listing = ostree(repository, &["ls", "-d", commit, path]);
        let mode = listing.split_whitespace().next().unwrap_or_default();
        assert_eq!(mode, expected, "{environment}: {path}: {listing}");
    }
}

#[test]
fn the_environment_of_the_compose_does_not_change_the_commit() {
    let repository = repository();
    let commits: Vec<(&str, String)> = ENVIRONMENTS
        .iter()
        .map(|(description, environment)| (*description, compose(&repository.url(), environment)))
        .collect();
    for (description, commit) in &commits[1..] {
        assert_eq!(commit, &commits[0].1, "composed in {description} and in {}", commits[0].0);
    }
}

#[test]
fn a_repository_over_http_and_read_from_disk_give_one_commit() {
    let repository = repository();
    let server = TestHttpServer::serve(repository.path()).unwrap();
    let from_disk = compose(&repository.url(), "umask 022");
    let over_http = compose(&server.url(), "umask 022");
    assert_eq!(over_http, from_disk, "the same packages over http:// and file://");
}
