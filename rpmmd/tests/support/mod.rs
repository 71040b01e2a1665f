//! What the depsolving tests share: repositories built with the test-support RPM builder and createrepo_c,
//! treefiles with `.repo` files next to them, and a fetcher with its own cache.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use arbor_testsupport::RpmSpec;
use rpmmd::fetch::{FetchOptions, Fetcher};
use rpmmd::resolve::{
    LockSettings, Resolution, ResolutionCacheMode, ResolveError, ResolveOutcome, resolve_with,
};
use treefiles::lockfile::Lockfile;
use treefiles::{FileSystemLoader, Flattened, LoadOptions};

/// A repository of `packages` at `directory` (RPMs + createrepo_c metadata).
pub fn make_repository(directory: &Path, packages: &[RpmSpec]) -> PathBuf {
    let packages_directory = directory.join("Packages");
    std::fs::create_dir_all(&packages_directory).unwrap();
    for package in packages {
        package.write_to(&packages_directory).unwrap();
    }
    arbor_testsupport::tools::run_tool(
        "createrepo_c",
        ["--no-database", "--quiet", directory.to_str().unwrap()],
    )
    .expect("createrepo_c (install it with scripts/install-deps)");
    directory.to_path_buf()
}

/// A directory with `manifest.yaml` and one `.repo` file per (id, url).
pub fn make_treefile(directory: &Path, manifest: &str, repositories: &[(&str, String)]) -> Flattened {
    make_treefile_for(directory, manifest, repositories, "x86_64")
}

/// [`make_treefile`], flattened for `arch`.
pub fn make_treefile_for(
    directory: &Path,
    manifest: &str,
    repositories: &[(&str, String)],
    arch: &str,
) -> Flattened {
    std::fs::create_dir_all(directory).unwrap();
    std::fs::write(directory.join("manifest.yaml"), manifest).unwrap();
    for (id, url) in repositories {
        std::fs::write(
            directory.join(format!("{id}.repo")),
            format!("[{id}]\nname={id}\nbaseurl={url}\ngpgcheck=0\n"),
        )
        .unwrap();
    }
    treefiles::load(&FileSystemLoader, &directory.join("manifest.yaml"), &LoadOptions::for_arch(arch))
        .unwrap_or_else(|problems| panic!("{problems}"))
}

pub fn base_packages() -> Vec<RpmSpec> {
    vec![
        RpmSpec::new("filesystem", "3.18", "1").provides("/bin/sh-provider-dir"),
        RpmSpec::new("bash", "5.2", "1")
            .arch("x86_64")
            .requires("filesystem")
            .file("/usr/bin/bash", b"bash", 0o755)
            .provides("/bin/sh"),
        RpmSpec::new("libfoo", "1.0", "1")
            .arch("x86_64")
            .provides("libfoo.so.1()(64bit)")
            .source_rpm("foo-1.0-1.src.rpm"),
        RpmSpec::new("libfoo", "1.2", "1")
            .arch("x86_64")
            .provides("libfoo.so.1()(64bit)")
            .source_rpm("foo-1.2-1.src.rpm"),
        RpmSpec::new("app", "2.0", "1")
            .arch("x86_64")
            .requires("libfoo.so.1()(64bit)")
            .requires("/bin/sh")
            .recommends("app-extras")
            .license("MIT"),
        RpmSpec::new("app-extras", "2.0", "1"),
        RpmSpec::new("podman", "4.0", "1").arch("x86_64"),
        RpmSpec::new("podman", "4.3", "1").arch("x86_64"),
        RpmSpec::new("podman", "5.0", "1").arch("x86_64").requires("missing-runtime"),
        RpmSpec::new("app", "1.9", "1").arch("i686"),
    ]
}

pub struct Fixture {
    /// Holds the repository, the treefiles and the cache; removed with the fixture.
    pub directory: tempfile::TempDir,
    pub root: PathBuf,
    pub repository_url: String,
    pub fetcher: Fetcher,
}

pub fn fixture(packages: &[RpmSpec]) -> Fixture {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_path_buf();
    let repository = make_repository(&root.join("repo"), packages);
    let fetcher = Fetcher::new(FetchOptions::new(root.join("cache"))).unwrap();
    Fixture { directory, root, repository_url: format!("file://{}", repository.display()), fetcher }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

pub fn resolve_manifest(
    fixture: &Fixture,
    name: &str,
    manifest: &str,
    lock: &LockSettings,
) -> Result<Resolution, ResolveError> {
    Ok(resolve_manifest_with(fixture, name, manifest, lock, ResolutionCacheMode::Enabled)?.resolution)
}

/// [`resolve_manifest`] with the resolution cache used as `mode` says.
pub fn resolve_manifest_with(
    fixture: &Fixture,
    name: &str,
    manifest: &str,
    lock: &LockSettings,
    mode: ResolutionCacheMode,
) -> Result<ResolveOutcome, ResolveError> {
    let flattened =
        make_treefile(&fixture.root.join(name), manifest, &[("test", fixture.repository_url.clone())]);
    runtime().block_on(resolve_with(&fixture.fetcher, &flattened, lock, mode))
}

pub fn nevras(resolution: &Resolution) -> Vec<String> {
    let mut nevras: Vec<String> = resolution.packages.iter().map(|package| package.nevra()).collect();
    nevras.sort();
    nevras
}

pub fn lockfile(text: &str) -> Option<Lockfile> {
    Some(Lockfile::parse(text, "manifest-lock.overrides.yaml").unwrap())
}
