//! End-to-end tests of the `arbor` binary on the bundled example and on bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn arbor(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(arguments)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("running arbor")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn renders_and_checks_the_example() {
    let output = arbor(&["treefile", "check", "examples/manifest.yaml", "--arch", "x86_64"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("ref exampleos/x86_64/testing-devel"), "{}", stdout(&output));

    let output =
        arbor(&["treefile", "render", "examples/manifest.yaml", "--arch", "aarch64", "--var", "prod=true"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let rendered: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rendered["ref"], "exampleos/aarch64/testing-devel");
    assert_eq!(rendered["basearch"], "aarch64");
    assert_eq!(rendered["variables"]["prod"], true);
    let packages: Vec<&str> =
        rendered["packages"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
    assert!(packages.contains(&"grub2-efi-aa64"), "{packages:?}");
    assert!(!packages.contains(&"grub2-efi-x64"), "{packages:?}");
    assert!(!packages.contains(&"exampleos-debug-tools"), "prod=true drops the debug tools: {packages:?}");
}

#[test]
fn output_ends_its_lines_and_logs_to_a_pipe_carry_no_colour() {
    let output = arbor(&["--log", "info", "treefile", "check", "examples/manifest.yaml", "--arch", "x86_64"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).ends_with(")\n"), "the summary line ends with a newline: {:?}", stdout(&output));
    let log = stderr(&output);
    assert!(log.contains("loading treefile"), "the info log reached stderr: {log}");
    assert!(!log.contains('\u{1b}'), "no ANSI escape codes in a piped log: {log:?}");
}

#[test]
fn check_lists_every_problem_and_fails() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("manifest.yaml"), "ref: r\npackges: [a]\ninclude: base.yaml\n")
        .unwrap();
    std::fs::write(directory.path().join("base.yaml"), "recommends: maybe\n").unwrap();
    let manifest = directory.path().join("manifest.yaml");
    let output = arbor(&["treefile", "check", manifest.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.contains("manifest.yaml:2:1: unknown key \"packges\" (did you mean \"packages\"?)"),
        "{errors}"
    );
    assert!(errors.contains("base.yaml:1:13, included from "), "{errors}");
    assert!(errors.contains("2 errors found"), "{errors}");
}

#[test]
fn bad_command_line_variables_are_refused() {
    let output = arbor(&["treefile", "render", "examples/manifest.yaml", "--var", "basearch=s390x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("\"basearch\" is set by arbor"), "{}", stderr(&output));
}

#[test]
fn lockfile_merge_writes_atomically_and_show_lists_packages() {
    let directory = tempfile::tempdir().unwrap();
    let output_path: PathBuf = directory.path().join("merged.json");
    let output = arbor(&[
        "lockfile",
        "merge",
        "examples/manifest-lock.x86_64.json",
        "examples/manifest-lock.overrides.yaml",
        "--output",
        output_path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output_path).unwrap()).unwrap();
    assert_eq!(merged["packages"]["exampleos-release"]["evra"], "1.1-1.noarch");

    // Merging a single unchanged lockfile reproduces it byte for byte.
    let output = arbor(&["lockfile", "merge", "examples/manifest-lock.x86_64.json"]);
    let original = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifest-lock.x86_64.json"),
    )
    .unwrap();
    assert_eq!(stdout(&output), original);

    let output = arbor(&[
        "lockfile",
        "show",
        "examples/manifest-lock.x86_64.json",
        "examples/manifest-lock.overrides.yaml",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output)
            .lines()
            .any(|line| line.starts_with("exampleos-release") && line.contains("1.1-1.noarch"))
    );
}

#[test]
fn lockfile_problems_name_file_and_line() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("manifest-lock.overrides.yaml");
    std::fs::write(&path, "packages:\n  foo:\n    evr: 1-1\n    evra: 1-1.x86_64\n").unwrap();
    let output = arbor(&["lockfile", "show", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("manifest-lock.overrides.yaml:3:5: package \"foo\": has both \"evr\" and \"evra\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn schema_is_json_with_every_key() {
    let output = arbor(&["treefile", "schema"]);
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in ["ref", "packages", "conditional-include", "boot_location"] {
        assert!(schema["properties"].get(key).is_some(), "{key}");
    }
}

/// A repository at `directory/repo` with `packages`, plus `directory/manifest.yaml` and its `.repo` file.
fn make_tree(directory: &Path, packages: &[arbor_testsupport::RpmSpec]) -> PathBuf {
    let repository = directory.join("repo");
    let packages_directory = repository.join("Packages");
    std::fs::create_dir_all(&packages_directory).unwrap();
    for package in packages {
        package.write_to(&packages_directory).unwrap();
    }
    refresh_repository(&repository);
    std::fs::write(
        directory.join("test.repo"),
        format!("[test]\nbaseurl=file://{}\ngpgcheck=0\n", repository.display()),
    )
    .unwrap();
    let manifest = directory.join("manifest.yaml");
    std::fs::write(&manifest, "ref: test/${basearch}\nrepos: [test]\npackages: [app]\n").unwrap();
    manifest
}

fn refresh_repository(repository: &Path) {
    arbor_testsupport::tools::run_tool(
        "createrepo_c",
        ["--no-database", "--quiet", repository.to_str().unwrap()],
    )
    .expect("createrepo_c (install it with scripts/install-deps)");
}

#[test]
fn compose_resolve_and_lockfile_update() {
    use arbor_testsupport::RpmSpec;
    let directory = tempfile::tempdir().unwrap();
    let manifest = make_tree(
        directory.path(),
        &[
            RpmSpec::new("app", "1.0", "1").arch("x86_64").requires("libapp").source_rpm("app-1.0-1.src.rpm"),
            RpmSpec::new("libapp", "1.0", "1").arch("x86_64").source_rpm("app-1.0-1.src.rpm"),
        ],
    );
    let cache = directory.path().join("cache");
    let manifest_argument = manifest.to_str().unwrap();
    let cache_argument = cache.to_str().unwrap();

    let output = arbor(&[
        "compose",
        "resolve",
        manifest_argument,
        "--arch",
        "x86_64",
        "--cachedir",
        cache_argument,
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let resolved: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> =
        resolved["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["libapp", "app"], "installation order");
    assert_eq!(resolved["inputhash"].as_str().unwrap().len(), 64);

    let output =
        arbor(&["lockfile", "update", manifest_argument, "--arch", "x86_64", "--cachedir", cache_argument]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("Added (2):"), "{}", stdout(&output));
    let lockfile_path = directory.path().join("manifest-lock.x86_64.json");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lockfile_path).unwrap()).unwrap();
    assert_eq!(written["packages"]["app"]["evra"], "1.0-1.x86_64");
    assert_eq!(written["packages"]["app"]["metadata"]["sourcerpm"], "app");
    let generated = written["metadata"]["generated"].as_str().unwrap();
    assert!(generated.ends_with("T00:00:00Z"), "truncated to the day: {generated}");
    assert!(written["metadata"]["rpmmd_repos"]["test"]["generated"].is_string());

    let output =
        arbor(&["lockfile", "update", manifest_argument, "--arch", "x86_64", "--cachedir", cache_argument]);
    assert!(stdout(&output).contains("unchanged"), "{}", stdout(&output));

    // A newer RPM appears: the lockfile is bumped and the diff says so.
    RpmSpec::new("app", "1.1", "1")
        .arch("x86_64")
        .requires("libapp")
        .write_to(&directory.path().join("repo/Packages"))
        .unwrap();
    refresh_repository(&directory.path().join("repo"));
    let output =
        arbor(&["lockfile", "update", manifest_argument, "--arch", "x86_64", "--cachedir", cache_argument]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Upgraded (1):\n  app 1.0-1.x86_64 -> 1.1-1.x86_64"),
        "{}",
        stdout(&output)
    );

    // The lockfile now pins app; resolving with it (the default lockfiles) keeps 1.1 even when 1.2 appears.
    RpmSpec::new("app", "1.2", "1")
        .arch("x86_64")
        .requires("libapp")
        .write_to(&directory.path().join("repo/Packages"))
        .unwrap();
    refresh_repository(&directory.path().join("repo"));
    let output =
        arbor(&["compose", "resolve", manifest_argument, "--arch", "x86_64", "--cachedir", cache_argument]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("app-1.1-1.x86_64"), "{}", stdout(&output));
}

#[test]
fn a_cached_resolution_prints_the_same_bytes_as_a_fresh_one() {
    use arbor_testsupport::RpmSpec;
    let directory = tempfile::tempdir().unwrap();
    let manifest = make_tree(
        directory.path(),
        &[
            RpmSpec::new("app", "1.0", "1").arch("x86_64").requires("libapp").license("MIT"),
            RpmSpec::new("libapp", "1.0", "1").arch("x86_64").source_rpm("app-1.0-1.src.rpm"),
        ],
    );
    let cache = directory.path().join("cache");
    let resolve = |extra: &[&str]| {
        let mut arguments = vec![
            "--log",
            "info",
            "compose",
            "resolve",
            manifest.to_str().unwrap(),
            "--arch",
            "x86_64",
            "--cachedir",
            cache.to_str().unwrap(),
        ];
        arguments.extend_from_slice(extra);
        let output = arbor(&arguments);
        assert!(output.status.success(), "{}", stderr(&output));
        let log = stderr(&output);
        (output.stdout, log)
    };
    let (fresh_json, log) = resolve(&["--no-resolution-cache", "--json"]);
    assert!(!log.contains("resolution cache"), "bypassed: {log}");
    let (fresh_table, _) = resolve(&["--no-resolution-cache"]);
    let (solved_json, log) = resolve(&["--json"]);
    assert!(!log.contains("resolution cache hit"), "nothing was stored while bypassed: {log}");
    let (cached_json, log) = resolve(&["--json"]);
    assert!(log.contains("resolution cache hit"), "the unchanged request is answered from the cache: {log}");
    let (cached_table, log) = resolve(&[]);
    assert!(log.contains("resolution cache hit"), "{log}");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    assert_eq!(text(&solved_json), text(&fresh_json));
    assert_eq!(text(&cached_json), text(&fresh_json));
    assert_eq!(text(&cached_table), text(&fresh_table));
}

#[test]
fn compose_resolve_explains_problems() {
    use arbor_testsupport::RpmSpec;
    let directory = tempfile::tempdir().unwrap();
    let manifest =
        make_tree(directory.path(), &[RpmSpec::new("app", "1.0", "1").requires("libmissing.so.1()(64bit)")]);
    let cache = directory.path().join("cache");
    let output =
        arbor(&["compose", "resolve", manifest.to_str().unwrap(), "--cachedir", cache.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("nothing provides libmissing.so.1()(64bit) needed by app-1.0-1.noarch"),
        "{}",
        stderr(&output)
    );
}
