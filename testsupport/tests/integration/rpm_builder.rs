//! RpmSpec packages checked with rpm's own tools: `rpm -K`, `rpm -qp`, `rpm2archive | tar`.

use anyhow::{Context, Result};
use arbor_testsupport::tools::{require_tool, tool_stdout};
use arbor_testsupport::{Compression, RpmSpec};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A package using every feature of the builder.
fn full_featured_spec() -> RpmSpec {
    RpmSpec::new("app", "2.0", "1")
        .arch("x86_64")
        .summary("The test app")
        .license("MIT")
        .source_rpm("app-source-2.0-1.src.rpm")
        .requires("libfoo.so.1()(64bit)")
        .requires_versioned("foo", ">=", "1.0")
        .requires("(crun or runc >= 1.0)")
        .requires_pre_install("shadow-utils")
        .provides("virtual-thing")
        .conflicts("libfoo < 1.0")
        .obsoletes("oldapp < 2")
        .recommends("extra")
        .file("/usr/bin/app", b"#!/bin/sh\necho hi\n", 0o755)
        .file_owned("/var/lib/app/data", b"state", 0o640, "app", "app")
        .directory("/usr/share/app", 0o755)
        .symlink("/usr/bin/app-link", "app")
        .hardlink("/usr/bin/app2", "/usr/bin/app")
        .config_file("/etc/app.conf", b"x=1\n", 0o644)
        .ghost("/var/log/app.log", 0o644)
        .doc_file("/usr/share/doc/app/README", b"read me\n")
        .file_capabilities("/usr/bin/app", "cap_net_raw=ep")
        .pre_install_script("echo pre")
        .post_install_script("echo post")
        .post_transaction_script("echo posttrans")
        .changelog_entry(1_699_999_000, "Tester <tester@example.invalid> - 2.0-1", "- Update to 2.0")
}

fn query(package: &Path, format: &str) -> Result<String> {
    tool_stdout("rpm", ["-qp", "--qf", format, &package.to_string_lossy()])
}

fn rpm_query(package: &Path, option: &str) -> Result<String> {
    tool_stdout("rpm", ["-qp", option, &package.to_string_lossy()])
}

/// `rpm2archive - < package | tar -tvz`: the payload as rpm itself extracts it.
fn payload_listing(package: &Path) -> Result<String> {
    let rpm2archive = require_tool("rpm2archive")?;
    let tar = require_tool("tar")?;
    let input = std::fs::File::open(package)?;
    let archive = Command::new(rpm2archive).arg("-").stdin(input).output().context("running rpm2archive")?;
    anyhow::ensure!(
        archive.status.success(),
        "rpm2archive failed: {}",
        String::from_utf8_lossy(&archive.stderr)
    );
    let mut child = Command::new(tar)
        .args(["-tvzf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    child.stdin.take().context("tar stdin")?.write_all(&archive.stdout)?;
    let listing = child.wait_with_output()?;
    anyhow::ensure!(listing.status.success(), "tar failed: {}", String::from_utf8_lossy(&listing.stderr));
    Ok(String::from_utf8(listing.stdout)?)
}

#[test]
fn full_featured_package_passes_rpm_checks() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let path = full_featured_spec().write_to(directory.path())?;
    assert_eq!(path.file_name().and_then(|name| name.to_str()), Some("app-2.0-1.x86_64.rpm"));

    let check = tool_stdout("rpm", ["-K", &path.to_string_lossy()])?;
    assert!(check.trim_end().ends_with("digests OK"), "{check}");

    let header =
        query(&path, "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{SOURCERPM} %{BUILDTIME} %{BUILDHOST}")?;
    assert_eq!(header, "app 2.0 1 x86_64 app-source-2.0-1.src.rpm 1700000000 arbor-testsupport.invalid");

    let requires = rpm_query(&path, "--requires")?;
    for expected in ["libfoo.so.1()(64bit)", "foo >= 1.0", "(crun or runc >= 1.0)", "shadow-utils", "/bin/sh"]
    {
        assert!(requires.lines().any(|line| line == expected), "missing {expected} in:\n{requires}");
    }
    let pre_requires = query(&path, "[%{REQUIRENAME} %{REQUIREFLAGS:deptype}\n]")?;
    assert!(pre_requires.lines().any(|line| line == "shadow-utils pre"), "{pre_requires}");
    let provides = rpm_query(&path, "--provides")?;
    assert!(provides.contains("virtual-thing") && provides.contains("app = 2.0-1"), "{provides}");
    assert_eq!(rpm_query(&path, "--conflicts")?.trim(), "libfoo < 1.0");
    assert_eq!(rpm_query(&path, "--obsoletes")?.trim(), "oldapp < 2");
    let recommends = rpm_query(&path, "--recommends")?;
    assert!(recommends.lines().any(|line| line == "extra"), "{recommends}");

    let scripts = rpm_query(&path, "--scripts")?;
    assert!(scripts.contains("preinstall scriptlet (using /bin/sh):\necho pre"), "{scripts}");
    assert!(scripts.contains("postinstall scriptlet (using /bin/sh):\necho post"), "{scripts}");
    assert!(scripts.contains("posttrans scriptlet (using /bin/sh):\necho posttrans"), "{scripts}");
    let changelog = rpm_query(&path, "--changelog")?;
    assert!(changelog.contains("Tester <tester@example.invalid> - 2.0-1\n- Update to 2.0"), "{changelog}");
    Ok(())
}

#[test]
fn file_metadata_is_what_the_spec_says() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let path = full_featured_spec().write_to(directory.path())?;
    let files = query(
        &path,
        "[%{FILENAMES} %{FILEMODES:octal} %{FILEUSERNAME}:%{FILEGROUPNAME} flags=%{FILEFLAGS:fflags} \
         %{FILEINODES} %{FILENLINKS} caps=%{FILECAPS} link=%{FILELINKTOS}\n]",
    )?;
    let line = |name: &str| -> String {
        files.lines().find(|line| line.starts_with(&format!("{name} "))).unwrap_or_default().to_string()
    };
    assert!(line("/usr/bin/app").starts_with("/usr/bin/app 100755 root:root flags= "), "{files}");
    assert!(line("/usr/bin/app").ends_with(" 2 caps=cap_net_raw=ep link="), "{files}");
    assert!(line("/var/lib/app/data").starts_with("/var/lib/app/data 100640 app:app flags= "), "{files}");
    assert!(line("/usr/share/app").starts_with("/usr/share/app 40755 root:root"), "{files}");
    assert!(line("/usr/bin/app-link").contains("120777") && line("/usr/bin/app-link").ends_with("link=app"));
    assert!(line("/etc/app.conf").contains(" flags=cn "), "config(noreplace): {files}");
    assert!(line("/var/log/app.log").contains(" flags=g "), "ghost: {files}");
    assert!(line("/usr/share/doc/app/README").contains(" flags=d "), "doc: {files}");
    let inode = |name: &str| line(name).split(' ').nth(4).unwrap_or_default().to_string();
    assert_eq!(inode("/usr/bin/app"), inode("/usr/bin/app2"), "hardlinks share an inode: {files}");
    assert_ne!(inode("/usr/bin/app"), inode("/etc/app.conf"));

    let listing = payload_listing(&path)?;
    for expected in [
        "-rwxr-xr-x root/root        18 2023-11-14 22:13 ./usr/bin/app",
        "-rw-r----- app/app           5 2023-11-14 22:13 ./var/lib/app/data",
        "./usr/bin/app2 link to ./usr/bin/app",
        "./usr/bin/app-link -> app",
        "drwxr-xr-x root/root         0 2023-11-14 22:13 ./usr/share/app/",
        "./etc/app.conf",
    ] {
        assert!(listing.contains(expected), "payload lacks `{expected}`:\n{listing}");
    }
    assert!(!listing.contains("app.log"), "a ghost is not in the payload:\n{listing}");
    Ok(())
}

#[test]
fn builds_are_byte_for_byte_reproducible() -> Result<()> {
    let (first, second) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let first_path = full_featured_spec().write_to(first.path())?;
    let second_path = full_featured_spec().write_to(second.path())?;
    assert_eq!(std::fs::read(&first_path)?, std::fs::read(&second_path)?);
    let mtime = std::fs::metadata(&first_path)?.modified()?;
    assert_eq!(mtime, std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
    assert_ne!(full_featured_spec().to_bytes()?, full_featured_spec().build_time(1_700_000_001).to_bytes()?);
    Ok(())
}

#[test]
fn every_compression_is_readable_by_rpm() -> Result<()> {
    let directory = tempfile::tempdir()?;
    for (compression, compressor) in [
        (Compression::Gzip, "gzip"),
        (Compression::Zstd, "zstd"),
        (Compression::Xz, "xz"),
        (Compression::None, ""),
    ] {
        let name = format!("payload-{}", if compressor.is_empty() { "none" } else { compressor });
        let spec = RpmSpec::new(&name, "1", "1").epoch(2).compression(compression).file(
            "/usr/share/payload/data",
            "data ".repeat(100),
            0o644,
        );
        let path = spec.write_to(directory.path())?;
        assert_eq!(spec.nevra(), format!("{name}-2:1-1.noarch"));
        let check = tool_stdout("rpm", ["-K", &path.to_string_lossy()])?;
        assert!(check.contains("digests OK"), "{name}: {check}");
        let header = query(&path, "%{EPOCH} %{PAYLOADCOMPRESSOR}")?;
        if !compressor.is_empty() {
            assert_eq!(header, format!("2 {compressor}"), "{name}");
        }
        assert!(payload_listing(&path)?.contains("./usr/share/payload/data"), "{name}");
    }
    Ok(())
}

#[test]
fn invalid_specs_fail_with_errors_naming_the_package() {
    let bad_dependency = RpmSpec::new("broken", "1", "1").requires("foo ~> 1").to_bytes();
    let message = format!("{:#}", bad_dependency.expect_err("unknown operator"));
    assert!(message.contains("broken-1-1.noarch") && message.contains("~>"), "{message}");

    let dangling_hardlink =
        RpmSpec::new("broken", "1", "1").hardlink("/usr/bin/b", "/usr/bin/missing").to_bytes();
    let message = format!("{:#}", dangling_hardlink.expect_err("missing hardlink target"));
    assert!(message.contains("/usr/bin/missing") && message.contains("broken"), "{message}");

    let stray_capabilities =
        RpmSpec::new("broken", "1", "1").file_capabilities("/usr/bin/nothing", "cap_net_raw=ep").to_bytes();
    let message = format!("{:#}", stray_capabilities.expect_err("capabilities on no file"));
    assert!(message.contains("/usr/bin/nothing"), "{message}");
}
