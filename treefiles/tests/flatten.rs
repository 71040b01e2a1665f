//! Flattening real-shaped treefile trees and in-memory cases: merge rules, conditions, variables,
//! includes, rendering, and every error message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use treefiles::{FileSystemLoader, LoadOptions, MemoryLoader, Variable, load};

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(relative)
}

fn render_fixture(relative: &str, arch: &str) -> String {
    let flattened = load(&FileSystemLoader, &fixture(relative), &LoadOptions::for_arch(arch))
        .unwrap_or_else(|problems| panic!("{relative}: {problems}"));
    assert!(flattened.warnings.is_empty(), "{relative}: {:?}", flattened.warnings);
    flattened.render()
}

#[test]
fn fixture_trees_render_as_snapshots() {
    for (name, relative, arch) in [
        ("fcos_x86_64", "fcos/manifest.yaml", "x86_64"),
        ("fcos_aarch64", "fcos/manifest.yaml", "aarch64"),
        ("atomic_desktop_x86_64", "atomic-desktop/silverblue.yaml", "x86_64"),
        ("bootc_base_x86_64", "bootc-base/standard.yaml", "x86_64"),
    ] {
        insta::assert_snapshot!(name, render_fixture(relative, arch));
    }
}

/// A Rocky Linux sig-ostree style tree whose multimedia group file has `packages:` with every entry
/// commented out (YAML null): rpm-ostree reads it as no `packages` key, and so does arbor, with a warning.
#[test]
fn rocky_sig_ostree_group_with_every_package_commented_out() {
    let directory = fixture("rocky-sig-ostree");
    let flattened = load(
        &FileSystemLoader,
        &directory.join("rocky-9-workstation.yaml"),
        &LoadOptions::for_arch("x86_64"),
    )
    .unwrap_or_else(|problems| panic!("{problems}"));
    let prefix = format!("{}/", directory.display());
    let warnings: Vec<String> =
        flattened.warnings.iter().map(|warning| warning.to_string().replace(&prefix, "")).collect();
    assert_eq!(
        warnings,
        [
            "warning: in groups/multimedia.yaml:3:1, included from rocky-9-workstation.yaml:11:5: \"packages\" \
             is null (every entry commented out?); treated as absent"
        ]
    );
    let packages: Vec<&str> = flattened.treefile.packages.as_ref().unwrap().iter().collect();
    let expected = [
        // Byte order: upper case first.
        "NetworkManager",
        "NetworkManager-wifi",
        "bash-completion",
        "bootupd",
        "chrony",
        "dracut-config-generic",
        "firewalld",
        "flatpak",
        "gdm",
        "glibc-langpack-en",
        "gnome-control-center",
        "gnome-session-wayland-session",
        "gnome-shell",
        "gnome-software",
        "gnome-terminal",
        "grub2-efi-x64",
        "kernel",
        "nautilus",
        "ostree",
        "podman",
        "rocky-logos",
        "rocky-release",
        "rpm-ostree",
        "shim-x64",
        "sudo",
        "toolbox",
        "xdg-desktop-portal-gnome",
    ];
    assert_eq!(packages, expected);
    insta::assert_snapshot!("rocky_sig_ostree_x86_64", flattened.render());
}

fn postprocess_comments(relative: &str, arch: &str) -> Vec<String> {
    let flattened = load(&FileSystemLoader, &fixture(relative), &LoadOptions::for_arch(arch)).unwrap();
    let scripts = flattened.treefile.postprocess.unwrap_or_default();
    scripts.iter().map(|script| script.lines().nth(1).unwrap_or_default().to_string()).collect()
}

#[test]
fn postprocess_runs_in_rpm_ostree_order() {
    // Includes first, later includes before earlier ones, then arch-include, then conditional
    // includes, each prepended; the including file's own scripts last.
    let expected = [
        "dev-tools-x86_64",
        "testing-devel",
        "grub2-extras",
        "dev-tools",
        "arch/x86_64",
        "user-experience",
        "bootupd",
        "kernel",
        "networking-tools",
        "system-configuration",
        "fedora-coreos-base",
        "fedora-coreos",
    ];
    let expected: Vec<String> =
        expected.iter().map(|name| format!("# postprocess from manifests/{name}.yaml")).collect();
    assert_eq!(postprocess_comments("fcos/manifest.yaml", "x86_64"), expected);
}

#[test]
fn rendered_json_renders_to_itself() {
    for relative in ["fcos/manifest.yaml", "atomic-desktop/silverblue.yaml", "bootc-base/standard.yaml"] {
        let source = fixture(relative);
        let first = render_fixture(relative, "x86_64");
        // The rendered file names are relative to the top-level treefile's directory: put the rendered
        // JSON there (in a copy of the tree) and render it again.
        let copy = tempfile::tempdir().unwrap();
        copy_tree(source.parent().unwrap(), copy.path());
        let rendered_path = copy.path().join("rendered.json");
        std::fs::write(&rendered_path, &first).unwrap();
        let second = load(&FileSystemLoader, &rendered_path, &LoadOptions::for_arch("x86_64"))
            .unwrap_or_else(|problems| panic!("{relative} rendered: {problems}"))
            .render();
        assert_eq!(first, second, "{relative}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Loads an in-memory tree whose top-level file is `manifest.yaml`.
fn load_memory(
    files: &[(&str, &str)],
    arch: &str,
    variables: &[(&str, Variable)],
) -> Result<serde_json::Value, String> {
    let mut loader = MemoryLoader::new();
    for (path, text) in files {
        loader.insert(path, *text);
    }
    let options = LoadOptions {
        basearch: arch.to_string(),
        variables: variables
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect::<BTreeMap<_, _>>(),
    };
    load(&loader, Path::new("manifest.yaml"), &options)
        .map(|flattened| serde_json::Value::Object(flattened.treefile.to_json()))
        .map_err(|problems| {
            problems.diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        })
}

#[test]
fn merge_rules_per_key_kind() {
    let files = [
        (
            "manifest.yaml",
            "ref: own\ninclude: [a.yaml, b.yaml]\nunits: [own.service]\npackages: [own]\nadd-commit-metadata: {k: own}\n",
        ),
        (
            "a.yaml",
            "ref: from-a\ndefault-target: a.target\nunits: [a.service]\npackages: [shared, a]\nadd-commit-metadata: {k: a, j: a}\n",
        ),
        (
            "b.yaml",
            "default-target: b.target\nautomatic-version-suffix: '-'\nunits: [b.service]\npackages: ['shared b']\nadd-commit-metadata: {j: b, i: b}\n",
        ),
    ];
    let tree = load_memory(&files, "x86_64", &[]).unwrap();
    // (key, expected) — scalars: including file first, then earlier includes; lists: later includes
    // prepended, own last; sets: union, sorted; maps: including file, then earlier include wins.
    let cases = [
        ("ref", serde_json::json!("own")),
        ("default-target", serde_json::json!("a.target")),
        ("automatic-version-suffix", serde_json::json!("-")),
        ("units", serde_json::json!(["b.service", "a.service", "own.service"])),
        ("packages", serde_json::json!(["a", "b", "own", "shared"])),
        ("add-commit-metadata", serde_json::json!({"i": "b", "j": "a", "k": "own"})),
    ];
    for (key, expected) in cases {
        assert_eq!(tree[key], expected, "{key}");
    }
}

#[test]
fn conditions_arch_and_variables() {
    let files = [
        (
            "manifest.yaml",
            r#"ref: r/${basearch}/${stream}
variables: {stream: testing, prod: false}
releasever: 40
include: common.yaml
packages-x86_64: [x86-only]
packages-aarch64: [arm-only]
arch-include: {x86_64: x86.yaml, aarch64: arm.yaml}
conditional-include:
  - if: prod == false
    include: dev.yaml
  - if: releasever < 41
    include: old.yaml
  - if: [releasever >= 40, stream == "testing", basearch != "s390x"]
    include: {packages: [inline-all-true]}
  - if: [releasever >= 40, stream == "stable"]
    include: {packages: [inline-one-false]}
  - if: child_only == true
    include: never.yaml
"#,
        ),
        (
            "common.yaml",
            "variables: {stream: from-child, child_only: false}\nconditional-include:\n  - if: stream == \"testing\"\n    include: child-sees-parent.yaml\n",
        ),
        ("child-sees-parent.yaml", "packages: [child-sees-parent]\n"),
        ("x86.yaml", "packages: [x86-include]\n"),
        ("arm.yaml", "packages: [arm-include]\n"),
        ("dev.yaml", "packages: [dev]\n"),
        ("old.yaml", "packages: [old]\n"),
        ("never.yaml", "packages: [never]\n"),
    ];
    // A parent's conditions cannot see variables defined by its includes (child_only), so the last
    // condition is an error, not false.
    let error = load_memory(&files, "x86_64", &[]).unwrap_err();
    assert!(error.contains("variable \"child_only\" is not defined"), "{error}");

    let files: Vec<_> = files
        .iter()
        .map(|(path, text)| {
            (*path, text.replace("  - if: child_only == true\n    include: never.yaml\n", ""))
        })
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(path, text)| (*path, text.as_str())).collect();
    let tree = load_memory(&files, "x86_64", &[]).unwrap();
    let packages: Vec<&str> =
        tree["packages"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(packages, ["child-sees-parent", "dev", "inline-all-true", "old", "x86-include", "x86-only"]);
    assert_eq!(tree["ref"], "r/x86_64/testing");
    // The parent's value wins over the include's for the same variable.
    assert_eq!(tree["variables"]["stream"], "testing");

    let tree = load_memory(
        &files,
        "aarch64",
        &[("prod", Variable::Bool(true)), ("stream", Variable::Text("stable".into()))],
    )
    .unwrap();
    let packages: Vec<&str> =
        tree["packages"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(packages, ["arm-include", "arm-only", "inline-one-false", "old"]);
    assert_eq!(tree["ref"], "r/aarch64/stable");
    assert_eq!(tree["variables"]["prod"], true, "command-line variables win and are rendered");
}

#[test]
fn json_and_kickstart_includes() {
    let files = [
        ("manifest.yaml", "ref: r\ninclude: [a.json, b.ks]\n"),
        ("a.json", r#"{"packages": ["from-json"], "recommends": true}"#),
        ("b.ks", "%packages --exclude-weakdeps\nfrom-ks\n-excluded\n%end\n"),
    ];
    let tree = load_memory(&files, "x86_64", &[]).unwrap();
    assert_eq!(tree["packages"], serde_json::json!(["from-json", "from-ks"]));
    assert_eq!(tree["exclude-packages"], serde_json::json!(["excluded"]));
    assert_eq!(tree["recommends"], true, "the first include (a.json) wins for scalars");
}

#[test]
fn include_depth_limit_is_fifty() {
    let mut names: Vec<(String, String)> = Vec::new();
    let depth = treefiles::MAX_INCLUDE_DEPTH;
    for level in 0..=depth + 1 {
        let name = if level == 0 { "manifest.yaml".to_string() } else { format!("level{level}.yaml") };
        let text = if level == 0 {
            "ref: r\ninclude: level1.yaml\n".to_string()
        } else {
            format!("include: level{}.yaml\n", level + 1)
        };
        names.push((name, text));
    }
    names.push((format!("level{}.yaml", depth + 2), "packages: [deep]\n".to_string()));
    let ok_tree: Vec<(&str, &str)> =
        names.iter().take(depth + 1).map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let mut ok_tree = ok_tree;
    let last = format!("level{depth}.yaml");
    ok_tree.retain(|(name, _)| *name != last);
    ok_tree.push((last.as_str(), "packages: [deepest-allowed]\n"));
    let tree = load_memory(&ok_tree, "x86_64", &[]).unwrap();
    assert_eq!(tree["packages"], serde_json::json!(["deepest-allowed"]));

    let too_deep: Vec<(&str, &str)> = names.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let error = load_memory(&too_deep, "x86_64", &[]).unwrap_err();
    assert!(error.contains("nested more than 50 levels deep"), "{error}");
}

/// Each bad tree and the exact messages it produces.
#[test]
fn error_messages() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("unknown_key_yaml", &[("manifest.yaml", "ref: r\npackges: [a]\nrepo: [x]\n")]),
        (
            "unknown_key_json",
            &[
                ("manifest.yaml", "ref: r\ninclude: a.json\n"),
                ("a.json", "{\n  \"packages\": [\"a\"],\n  \"exclude_packages\": [\"b\"]\n}\n"),
            ],
        ),
        (
            "wrong_types",
            &[(
                "manifest.yaml",
                "ref: 5\npackages: bash\nrecommends: 'yes'\nunits: [1]\nadd-files: [[a]]\nboot-location: usr\nreleasever: -1\n",
            )],
        ),
        ("both_spellings", &[("manifest.yaml", "ref: r\nboot_location: new\nboot-location: modules\n")]),
        ("missing_ref", &[("manifest.yaml", "packages: [a]\n")]),
        (
            "missing_include",
            &[
                ("manifest.yaml", "ref: r\ninclude:\n  - base.yaml\n"),
                ("base.yaml", "include: nope/missing.yaml\n"),
            ],
        ),
        (
            "included_twice",
            &[
                ("manifest.yaml", "ref: r\ninclude: [a.yaml, b.yaml]\n"),
                ("a.yaml", "include: common.yaml\n"),
                ("b.yaml", "include: ./common.yaml\n"),
                ("common.yaml", "packages: [c]\n"),
            ],
        ),
        (
            "cycle",
            &[
                ("manifest.yaml", "ref: r\ninclude: a.yaml\n"),
                ("a.yaml", "include: b.yaml\n"),
                ("b.yaml", "include: manifest.yaml\n"),
            ],
        ),
        (
            "bad_conditions",
            &[(
                "manifest.yaml",
                "ref: r\nvariables: {prod: false}\nconditional-include:\n  - if: prod = false\n    include: a.yaml\n  - if: [nope == 1, prod > 1, prod == \"false\"]\n    include: a.yaml\n  - if: prod == false\n",
            )],
        ),
        (
            "syntax_error_in_include",
            &[
                ("manifest.yaml", "ref: r\ninclude: base.yaml\n"),
                ("base.yaml", "packages: [a, b\nunits: []\n"),
            ],
        ),
        (
            "undefined_substitution",
            &[
                ("manifest.yaml", "ref: os/${stream}\ninclude: meta.yaml\n"),
                ("meta.yaml", "add-commit-metadata:\n  version-note: \"${nope}\"\n"),
            ],
        ),
        (
            "derive_only_and_reserved",
            &[("manifest.yaml", "ref: r\noverride-remove: [foo]\nvariables: {basearch: x}\n")],
        ),
        (
            "inline_include_with_file_keys",
            &[("manifest.yaml", "ref: r\ninclude:\n  postprocess-script: x.sh\n")],
        ),
        (
            "missing_referenced_files",
            &[(
                "manifest.yaml",
                "ref: r\npostprocess-script: post.sh\nadd-files: [[motd, /etc/motd], [x, /var/x]]\n",
            )],
        ),
        (
            "units_without_machineid_compat",
            &[
                ("manifest.yaml", "ref: r\ninclude: a.yaml\nmachineid-compat: false\n"),
                ("a.yaml", "units: [a.service]\n"),
            ],
        ),
        ("not_a_mapping", &[("manifest.yaml", "- ref\n")]),
    ];
    for (name, files) in cases {
        let error = load_memory(files, "x86_64", &[]).expect_err(name);
        insta::assert_snapshot!(*name, error);
    }
}

#[test]
fn legacy_and_deprecated_keys_warn() {
    let mut loader = MemoryLoader::new();
    loader.insert("manifest.yaml", "ref: r\ndefault_target: multi-user.target\nbootstrap_packages: [a]\nrojig: {name: n, summary: s, license: MIT}\n");
    let flattened = load(&loader, Path::new("manifest.yaml"), &LoadOptions::for_arch("x86_64")).unwrap();
    let warnings: Vec<String> = flattened.warnings.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(warnings.join("\n"));
    assert_eq!(flattened.treefile.default_target.as_deref(), Some("multi-user.target"));
}

#[test]
fn fixture_lockfiles_rewrite_byte_for_byte() {
    for relative in ["fcos/manifest-lock.x86_64.json", "../../../examples/manifest-lock.x86_64.json"] {
        let path = fixture(relative);
        let text = std::fs::read_to_string(&path).unwrap();
        let lockfile = treefiles::lockfile::Lockfile::parse(&text, relative).unwrap();
        assert!(lockfile.packages.len() > 10);
        assert_eq!(lockfile.to_json_string(), text, "{relative}");
    }
}

#[test]
fn fixture_lockfiles_merge_with_overrides() {
    use treefiles::lockfile::{LockedVersion, Lockfile};
    let read = |name: &str| Lockfile::read(&fixture(&format!("fcos/{name}"))).unwrap();
    let base = read("manifest-lock.x86_64.json");
    let merged = Lockfile::merge([
        base.clone(),
        read("manifest-lock.overrides.yaml"),
        read("manifest-lock.overrides.x86_64.yaml"),
    ]);
    let changed: Vec<(&String, &LockedVersion)> = merged
        .packages
        .iter()
        .filter(|(name, package)| base.packages.get(*name).is_none_or(|old| old.version != package.version))
        .map(|(name, package)| (name, &package.version))
        .collect();
    insta::assert_debug_snapshot!(changed);
}
