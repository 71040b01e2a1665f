//! Depsolving real repositories built by the test-support library: dependencies, version queries,
//! weak dependencies, lockfile enforcement (relaxed, strict, lockfile-repos), exclusions, problems in
//! words, the solv cache, and the input hash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arbor_testsupport::RpmSpec;
use rpmmd::resolve::{LockSettings, ResolutionCacheMode, ResolutionOrigin, resolve};
use support::{
    base_packages, fixture, lockfile, make_repository, make_treefile, nevras, resolve_manifest,
    resolve_manifest_with, runtime,
};

#[test]
fn resolves_dependencies_in_install_order_with_package_details() {
    let fixture = fixture(&base_packages());
    let resolution = resolve_manifest(
        &fixture,
        "basic",
        "ref: r\nrepos: [test]\npackages: [app]\n",
        &LockSettings::default(),
    )
    .unwrap();
    assert_eq!(
        nevras(&resolution),
        [
            "app-2.0-1.x86_64",
            "app-extras-2.0-1.noarch",
            "bash-5.2-1.x86_64",
            "filesystem-3.18-1.noarch",
            "libfoo-1.2-1.x86_64"
        ]
    );
    let order: Vec<&str> = resolution.packages.iter().map(|package| package.name.as_str()).collect();
    let position = |name: &str| order.iter().position(|entry| *entry == name).unwrap();
    assert!(position("filesystem") < position("bash"), "dependencies first: {order:?}");
    assert!(position("libfoo") < position("app"), "dependencies first: {order:?}");
    let app = resolution.packages.iter().find(|package| package.name == "app").unwrap();
    assert_eq!(app.repo, "test");
    assert!(app.url.starts_with("file://") && app.url.ends_with("app-2.0-1.x86_64.rpm"), "{}", app.url);
    assert!(
        app.checksum.as_deref().is_some_and(|checksum| checksum.starts_with("sha256:")),
        "{:?}",
        app.checksum
    );
    assert_eq!(app.license.as_deref(), Some("MIT"));
    assert!(app.download_size > 0);
    let libfoo = resolution.packages.iter().find(|package| package.name == "libfoo").unwrap();
    assert_eq!(libfoo.source_name().as_deref(), Some("foo"));
    assert_eq!(resolution.repositories.len(), 1);
    assert!(resolution.repositories[0].repomd_checksum.starts_with("sha256:"));
}

#[test]
fn version_queries_weak_dependencies_and_arch_policy() {
    let fixture = fixture(&base_packages());
    let cases = [
        ("packages: [\"'podman < 4.3'\"]\n", vec!["podman-4.0-1.x86_64"]),
        ("packages: [\"'podman >= 4.1'\", \"'podman < 5'\"]\n", vec!["podman-4.3-1.x86_64"]),
        (
            "packages: [app]\nrecommends: false\n",
            vec!["app-2.0-1.x86_64", "bash-5.2-1.x86_64", "filesystem-3.18-1.noarch", "libfoo-1.2-1.x86_64"],
        ),
    ];
    for (index, (packages, expected)) in cases.into_iter().enumerate() {
        let manifest = format!("ref: r\nrepos: [test]\n{packages}");
        let resolution =
            resolve_manifest(&fixture, &format!("case{index}"), &manifest, &LockSettings::default()).unwrap();
        assert_eq!(nevras(&resolution), expected, "{packages}");
    }
}

#[test]
fn problems_are_explained_in_words_and_all_listed() {
    let fixture = fixture(&base_packages());
    let error = resolve_manifest(
        &fixture,
        "broken",
        "ref: r\nrepos: [test]\npackages: [\"'podman >= 5'\", no-such-package]\n",
        &LockSettings::default(),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("nothing provides missing-runtime needed by podman-5.0-1.x86_64"), "{message}");
    assert!(message.contains("no-such-package"), "{message}");
    assert!(message.starts_with("depsolving failed with 2 problems"), "{message}");
}

#[test]
fn relaxed_lockfiles_pin_locked_names_and_let_others_float() {
    let fixture = fixture(&base_packages());
    let lock = LockSettings {
        lockfile: lockfile("packages:\n  libfoo: {evra: 1.0-1.x86_64}\n  ghost: {evr: 9-9}\n"),
        strict: false,
    };
    let resolution =
        resolve_manifest(&fixture, "relaxed", "ref: r\nrepos: [test]\npackages: [app, podman]\n", &lock)
            .unwrap();
    let names = nevras(&resolution);
    assert!(names.contains(&"libfoo-1.0-1.x86_64".to_string()), "locked version: {names:?}");
    assert!(
        names.contains(&"podman-4.3-1.x86_64".to_string()),
        "unlocked floats to the newest installable: {names:?}"
    );
    assert_eq!(resolution.warnings, ["locked package ghost 9-9 is not in any repository"]);
}

#[test]
fn strict_lockfiles_allow_nothing_else() {
    let fixture = fixture(&base_packages());
    let lock = LockSettings {
        lockfile: lockfile(
            "packages:\n  app: {evr: 2.0-1}\n  libfoo: {evr: 1.0-1}\n  bash: {evr: 5.2-1}\n  filesystem: {evr: 3.18-1}\n",
        ),
        strict: true,
    };
    let resolution =
        resolve_manifest(&fixture, "strict", "ref: r\nrepos: [test]\npackages: [app]\n", &lock).unwrap();
    assert_eq!(
        nevras(&resolution),
        ["app-2.0-1.x86_64", "bash-5.2-1.x86_64", "filesystem-3.18-1.noarch", "libfoo-1.0-1.x86_64"],
        "app-extras is not locked, so the weak dependency is dropped"
    );
    let error = resolve_manifest(
        &fixture,
        "strict-missing",
        "ref: r\nrepos: [test]\npackages: [app, podman]\n",
        &lock,
    )
    .unwrap_err();
    assert!(error.to_string().contains("podman"), "{error}");
}

#[test]
fn lockfile_repositories_only_serve_locked_packages() {
    let fixture = fixture(&base_packages());
    let pool = make_repository(
        &fixture.root.join("pool"),
        &[
            RpmSpec::new("app", "3.0", "1").arch("x86_64").requires("libfoo.so.1()(64bit)"),
            RpmSpec::new("pool-only", "1", "1"),
        ],
    );
    let manifest = "ref: r\nrepos: [test]\nlockfile-repos: [pool]\npackages: [app]\n";
    let repositories =
        [("test", fixture.repository_url.clone()), ("pool", format!("file://{}", pool.display()))];
    let flattened = make_treefile(&fixture.root.join("pooled"), manifest, &repositories);
    let unlocked =
        runtime().block_on(resolve(&fixture.fetcher, &flattened, &LockSettings::default())).unwrap();
    assert!(
        nevras(&unlocked).contains(&"app-2.0-1.x86_64".to_string()),
        "pool packages are not used unless locked"
    );
    let lock = LockSettings { lockfile: lockfile("packages:\n  app: {evr: 3.0-1}\n"), strict: false };
    let locked = runtime().block_on(resolve(&fixture.fetcher, &flattened, &lock)).unwrap();
    let app = locked.packages.iter().find(|package| package.name == "app").unwrap();
    assert_eq!((app.evr(), app.repo.as_str()), ("3.0-1".to_string(), "pool"));
}

#[test]
fn exclude_packages() {
    let fixture = fixture(&base_packages());
    let resolution = resolve_manifest(
        &fixture,
        "exclude-weak",
        "ref: r\nrepos: [test]\npackages: [app]\nexclude-packages: [app-extras]\n",
        &LockSettings::default(),
    )
    .unwrap();
    assert!(
        !nevras(&resolution).iter().any(|nevra| nevra.starts_with("app-extras")),
        "excluded weak dependency dropped"
    );
    let error = resolve_manifest(
        &fixture,
        "exclude-listed",
        "ref: r\nrepos: [test]\npackages: [app]\nexclude-packages: [app]\n",
        &LockSettings::default(),
    )
    .unwrap_err();
    assert_eq!(error.to_string(), "\"app\" is both in packages and in exclude-packages");
    let error = resolve_manifest(
        &fixture,
        "exclude-hard",
        "ref: r\nrepos: [test]\npackages: [app]\nexclude-packages: [bash]\n",
        &LockSettings::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("/bin/sh"), "{error}");
}

#[test]
fn file_dependencies_outside_primary_load_filelists() {
    let mut packages = base_packages();
    packages.push(RpmSpec::new("data", "1", "1").file("/usr/share/data/table.txt", b"x", 0o644));
    packages.push(RpmSpec::new("reader", "1", "1").requires("/usr/share/data/table.txt"));
    let fixture = fixture(&packages);
    let manifest = "ref: r\nrepos: [test]\npackages: [reader]\n";
    let resolution = resolve_manifest(&fixture, "files", manifest, &LockSettings::default()).unwrap();
    assert!(nevras(&resolution).contains(&"data-1-1.noarch".to_string()), "{:?}", nevras(&resolution));
    // Again, from the .solv cache, which now carries the file provides found in filelists (solved,
    // not answered from the resolution cache).
    let again = resolve_manifest_with(
        &fixture,
        "files-again",
        manifest,
        &LockSettings::default(),
        ResolutionCacheMode::Bypassed,
    )
    .unwrap();
    assert_eq!(again.origin, ResolutionOrigin::Solved);
    assert_eq!(again.resolution.packages, resolution.packages);
}

#[test]
fn solv_cache_gives_the_same_result() {
    let fixture = fixture(&base_packages());
    let manifest = "ref: r\nrepos: [test]\npackages: [app]\n";
    let first = resolve_manifest(&fixture, "cache-one", manifest, &LockSettings::default()).unwrap();
    let caches: Vec<_> = std::fs::read_dir(fixture.root.join("cache/solv")).unwrap().collect();
    assert!(!caches.is_empty(), "a .solv cache was written");
    let second = resolve_manifest_with(
        &fixture,
        "cache-two",
        manifest,
        &LockSettings::default(),
        ResolutionCacheMode::Bypassed,
    )
    .unwrap();
    assert_eq!(second.origin, ResolutionOrigin::Solved, "loaded from the .solv cache and solved");
    assert_eq!(first.packages, second.resolution.packages);
}

#[test]
fn input_hash_follows_semantic_inputs_only() {
    let fixture = fixture(&base_packages());
    let hash = |name: &str, manifest: &str| {
        let flattened =
            make_treefile(&fixture.root.join(name), manifest, &[("test", fixture.repository_url.clone())]);
        let resolution =
            runtime().block_on(resolve(&fixture.fetcher, &flattened, &LockSettings::default())).unwrap();
        rpmmd::inputhash::input_hash(&flattened, &resolution, |path| std::fs::read(path)).unwrap()
    };
    let base = hash("h1", "ref: r\nrepos: [test]\npackages: [app]\n");
    assert_eq!(
        base,
        hash("h2", "ref: r\nrepos: [test]\npackages: [app]\nmetadata: {note: free-form}\n"),
        "metadata is not semantic"
    );
    assert_ne!(
        base,
        hash("h3", "ref: r\nrepos: [test]\npackages: [app]\npostprocess: [\"true\"]\n"),
        "postprocess changes the tree"
    );
    assert_ne!(
        base,
        hash("h4", "ref: r\nrepos: [test]\npackages: [app, podman]\n"),
        "packages change the tree"
    );
}
