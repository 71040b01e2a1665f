//! TestRepository checked with createrepo_c's output and dnf reading it.

use anyhow::Result;
use arbor_testsupport::repository::FIRST_REVISION;
use arbor_testsupport::tools::tool_stdout;
use arbor_testsupport::{Advisory, AdvisoryKind, RpmSpec, TestRepository};
use std::collections::BTreeMap;
use std::path::Path;

fn app(version: &str) -> RpmSpec {
    RpmSpec::new("app", version, "1").requires("libfoo >= 1.0").file("/usr/bin/app", b"app\n", 0o755)
}

fn libfoo() -> RpmSpec {
    RpmSpec::new("libfoo", "1.2", "3").arch("x86_64").file("/usr/lib64/libfoo.so.1", b"lib", 0o755)
}

/// The decompressed text of a `.xml.gz` metadata file.
fn gunzip(path: &Path) -> Result<String> {
    tool_stdout("gzip", ["-dc", &path.to_string_lossy()])
}

/// Every file of `repodata/` with its bytes.
fn repodata_files(repository: &TestRepository) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(repository.path().join("repodata"))? {
        let entry = entry?;
        files.insert(entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path())?);
    }
    Ok(files)
}

/// `dnf repoquery` (or another dnf query) against only this repository, with a throwaway cache.
fn dnf_query(repository: &TestRepository, query: &[&str]) -> Result<String> {
    let scratch = tempfile::tempdir()?;
    let cache = format!("--setopt=cachedir={}", scratch.path().join("cache").display());
    let log = format!("--setopt=logdir={}", scratch.path().display());
    let repository = format!("--repofrompath=test,{}", repository.url());
    let mut arguments = vec!["-q", "--setopt=reposdir=/dev/null", &cache, &log, &repository, "--repo=test"];
    arguments.extend(["--releasever=41", "repoquery"]);
    arguments.extend(query);
    tool_stdout("dnf", arguments)
}

#[test]
fn finished_repository_is_readable_by_dnf() -> Result<()> {
    let repository = TestRepository::new()?.add(app("2.0"))?.add(libfoo())?.finish()?;
    assert!(repository.url().starts_with("file:///") && repository.url().ends_with('/'));
    assert!(repository.repomd_path().is_file());
    assert_eq!(
        repository.rpm_path("libfoo")?,
        repository.packages_directory().join("libfoo-1.2-3.x86_64.rpm")
    );
    assert_eq!(repository.revision(), Some(FIRST_REVISION));

    let primary = repository.metadata_path("primary")?;
    let file_name = primary.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    assert!(
        file_name.len() > 64 && file_name.ends_with("-primary.xml.gz"),
        "checksum in the name: {file_name}"
    );
    let primary = gunzip(&primary)?;
    assert!(primary.contains("<location href=\"Packages/app-2.0-1.noarch.rpm\"/>"), "{primary}");
    assert!(
        primary.contains("<rpm:entry name=\"libfoo\" flags=\"GE\" epoch=\"0\" ver=\"1.0\"/>"),
        "{primary}"
    );

    let packages = dnf_query(&repository, &["--qf", "%{name}-%{evr}.%{arch}"])?;
    let mut packages: Vec<&str> = packages.lines().collect();
    packages.sort();
    assert_eq!(packages, ["app-2.0-1.noarch", "libfoo-1.2-3.x86_64"]);
    Ok(())
}

#[test]
fn metadata_is_reproducible() -> Result<()> {
    let build = || -> Result<TestRepository> {
        TestRepository::new()?.add(app("2.0"))?.add(libfoo())?.advisory(advisory()).finish()
    };
    let (first, second) = (build()?, build()?);
    let (first_files, second_files) = (repodata_files(&first)?, repodata_files(&second)?);
    assert_eq!(first_files.keys().collect::<Vec<_>>(), second_files.keys().collect::<Vec<_>>());
    assert!(first_files == second_files, "repodata differs between two identical builds");
    let repomd = std::fs::read_to_string(first.repomd_path())?;
    assert!(repomd.contains(&format!("<revision>{FIRST_REVISION}</revision>")), "{repomd}");
    let timestamps = repomd.matches(&format!("<timestamp>{FIRST_REVISION}</timestamp>")).count();
    assert_eq!(timestamps, 4, "primary, filelists, other and updateinfo:\n{repomd}");
    Ok(())
}

#[test]
fn newer_package_appears_after_rewriting_metadata() -> Result<()> {
    let mut repository = TestRepository::new()?.add(app("2.0"))?.add(libfoo())?.finish()?;
    let old_repomd = std::fs::read(repository.repomd_path())?;
    repository.add_package(&app("2.1"))?;
    repository.write_metadata()?;
    assert_eq!(repository.revision(), Some(FIRST_REVISION + 1));
    assert_ne!(std::fs::read(repository.repomd_path())?, old_repomd);
    let error = repository.rpm_path("app").expect_err("two versions of app");
    assert!(error.to_string().contains("app-2.0-1.noarch, app-2.1-1.noarch"), "{error}");
    let versions = dnf_query(&repository, &["--qf", "%{evr}", "app"])?;
    assert_eq!(versions.lines().collect::<Vec<_>>(), ["2.0-1", "2.1-1"]);

    assert_eq!(repository.remove_packages_named("app")?, 2);
    repository.write_metadata()?;
    let primary = gunzip(&repository.metadata_path("primary")?)?;
    assert!(primary.contains("packages=\"1\"") && !primary.contains("<name>app</name>"), "{primary}");
    assert!(repository.add_package(&libfoo()).is_err(), "the same package twice is refused");
    Ok(())
}

fn advisory() -> Advisory {
    Advisory::new("TEST-2023-0001", AdvisoryKind::Security)
        .title("app security update")
        .severity("Important")
        .reference("https://bugs.example.invalid/1", "1", "bugzilla")
        .package(&app("2.0"))
}

#[test]
fn advisories_are_added_as_updateinfo() -> Result<()> {
    let mut repository =
        TestRepository::new()?.add(app("2.0"))?.add(libfoo())?.advisory(advisory()).finish()?;
    let updateinfo = gunzip(&repository.metadata_path("updateinfo")?)?;
    assert!(updateinfo.contains("<id>TEST-2023-0001</id>"), "{updateinfo}");
    let security = dnf_query(&repository, &["--security", "--qf", "%{name}-%{evr}"])?;
    assert_eq!(security.trim(), "app-2.0-1");
    let bugfix = dnf_query(&repository, &["--bugfix", "--qf", "%{name}"])?;
    assert_eq!(bugfix.trim(), "");

    repository.add_package(&app("2.1"))?;
    repository.add_advisory(Advisory::new("TEST-2023-0002", AdvisoryKind::Bugfix).package(&app("2.1")));
    repository.write_metadata()?;
    let updateinfo = gunzip(&repository.metadata_path("updateinfo")?)?;
    assert!(updateinfo.contains("TEST-2023-0001") && updateinfo.contains("TEST-2023-0002"), "{updateinfo}");
    Ok(())
}

#[test]
fn simple_metadata_filenames_and_fixed_directories() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let root = directory.path().join("my repo");
    let repository = TestRepository::at(&root)?.simple_metadata_filenames(true).add(libfoo())?.finish()?;
    assert!(root.join("repodata/primary.xml.gz").is_file());
    assert!(repository.url().ends_with("/my%20repo/"), "{}", repository.url());
    assert_eq!(repository.metadata_path("primary")?, root.canonicalize()?.join("repodata/primary.xml.gz"));
    drop(repository);
    assert!(root.join("repodata/repomd.xml").is_file(), "a repository made with `at` is kept");
    Ok(())
}
