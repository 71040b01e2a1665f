//! Null values, as rpm-ostree's serde model reads them: null in an optional key is absent (with a
//! warning naming file:line:column, and merged as absent), in YAML and JSON; null where rpm-ostree needs
//! a value stays an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::{Value, json};
use treefiles::lockfile::{LockedVersion, Lockfile};
use treefiles::{Flattened, LoadOptions, MemoryLoader, Problems, load};

fn load_files(files: &[(&str, &str)]) -> Result<Flattened, Problems> {
    let mut loader = MemoryLoader::new();
    for (path, text) in files {
        loader.insert(path, *text);
    }
    load(&loader, Path::new("manifest.yaml"), &LoadOptions::for_arch("x86_64"))
}

fn rendered(diagnostics: &[treefiles::Diagnostic]) -> Vec<String> {
    diagnostics.iter().map(ToString::to_string).collect()
}

/// The fuzz target's invariant: the rendering loads and renders to itself.
fn assert_render_is_stable(flattened: &Flattened) {
    let rendered = flattened.render();
    let mut loader = MemoryLoader::new();
    loader.insert("rendered.json", rendered.as_str());
    let again = load(&loader, Path::new("rendered.json"), &LoadOptions::for_arch("x86_64"))
        .unwrap_or_else(|problems| panic!("rendering does not load: {problems}\n{rendered}"));
    assert_eq!(again.render(), rendered);
}

/// The warnings about null values (`rojig` also warns that it has no effect).
fn null_warnings(flattened: &Flattened) -> Vec<String> {
    rendered(&flattened.warnings).into_iter().filter(|warning| warning.contains(" is null (")).collect()
}

const COLLECTION: &str = "every entry commented out?";
const SCALAR: &str = "no value given?";

/// One optional key of each kind, with a value written in JSON (which is also YAML flow syntax) and the
/// hint of its null warning.
const OPTIONAL_KEYS: &[(&str, &str, &str)] = &[
    // Scalars: string, boolean, number, keyword, string-or-number.
    ("default-target", r#""multi-user.target""#, SCALAR),
    ("recommends", "false", SCALAR),
    ("selinux-label-version", "1", SCALAR),
    ("boot-location", r#""modules""#, SCALAR),
    ("releasever", r#""9""#, SCALAR),
    ("advisories-metadata", r#""detached""#, SCALAR),
    // Lists.
    ("units", r#"["chronyd.service"]"#, COLLECTION),
    ("postprocess", r#"["echo hi"]"#, COLLECTION),
    ("remove-from-packages", r#"[["rocky-logos", "/usr/share/x/.*"]]"#, COLLECTION),
    ("repo-packages", r#"[{"repo": "appstream", "packages": ["podman"]}]"#, COLLECTION),
    // Sets.
    ("packages", r#"["bash"]"#, COLLECTION),
    ("ignore-removed-users", r#"["*"]"#, COLLECTION),
    // Maps and objects.
    ("add-commit-metadata", r#"{"rocky.variant": "workstation"}"#, COLLECTION),
    ("variables", r#"{"stream": "stable"}"#, COLLECTION),
    ("repovars", r#"{"contentdir": "pub/rocky"}"#, COLLECTION),
    ("rojig", r#"{"name": "n", "summary": "s", "license": "MIT"}"#, COLLECTION),
    ("check-groups", r#"{"type": "none"}"#, COLLECTION),
];

/// The ways to write a null value in an included file, with where the key is in it.
fn null_documents(key: &str) -> [(&'static str, String, &'static str); 4] {
    [
        ("group.yaml", format!("# every entry commented out\n{key}:\n  # - x\n"), "2:1"),
        ("group.yaml", format!("{key}: ~\n"), "1:1"),
        ("group.yaml", format!("{key}: null  # disabled\n"), "1:1"),
        ("group.json", format!("{{\n  \"{key}\": null\n}}\n"), "2:3"),
    ]
}

#[test]
fn null_in_an_included_file_keeps_the_including_files_value() {
    for (key, value, hint) in OPTIONAL_KEYS {
        let expected: Value = serde_json::from_str(value).unwrap();
        for (name, text, position) in null_documents(key) {
            let manifest = format!("ref: r\ninclude: {name}\n{key}: {value}\n");
            let flattened = load_files(&[("manifest.yaml", &manifest), (name, &text)])
                .unwrap_or_else(|problems| panic!("{key} in {name} {text:?}: {problems}"));
            assert_eq!(flattened.treefile.to_json()[*key], expected, "{key} in {name} {text:?}");
            assert_render_is_stable(&flattened);
            assert_eq!(
                null_warnings(&flattened),
                [format!(
                    "warning: in {name}:{position}, included from manifest.yaml:2:10: \"{key}\" is null \
                     ({hint}); treated as absent"
                )],
                "{key} in {name} {text:?}"
            );
        }
    }
}

#[test]
fn null_in_the_including_file_takes_the_included_value() {
    for (key, value, hint) in OPTIONAL_KEYS {
        let expected: Value = serde_json::from_str(value).unwrap();
        for (format, manifest) in [
            ("yaml", format!("ref: r\ninclude: group.yaml\n{key}:\n")),
            ("json", format!("{{\"ref\": \"r\", \"include\": \"group.yaml\", \"{key}\": null}}")),
        ] {
            let name = format!("manifest.{format}");
            let mut loader = MemoryLoader::new();
            loader.insert(&name, manifest.as_str()).insert("group.yaml", format!("{key}: {value}\n"));
            let flattened = load(&loader, Path::new(&name), &LoadOptions::for_arch("x86_64"))
                .unwrap_or_else(|problems| panic!("{key} in {name}: {problems}"));
            assert_eq!(flattened.treefile.to_json()[*key], expected, "{key} in {name}");
            let warnings = null_warnings(&flattened);
            assert_eq!(warnings.len(), 1, "{key} in {name}: {warnings:?}");
            assert!(
                warnings[0].starts_with(&format!("warning: in {name}:"))
                    && warnings[0].ends_with(&format!("\"{key}\" is null ({hint}); treated as absent")),
                "{key} in {name}: {warnings:?}"
            );
        }
    }
}

#[test]
fn null_alone_leaves_the_key_unset() {
    for (key, _, _) in OPTIONAL_KEYS {
        for (name, text, _) in null_documents(key) {
            let flattened =
                load_files(&[("manifest.yaml", &format!("ref: r\ninclude: {name}\n")), (name, &text)])
                    .unwrap_or_else(|problems| panic!("{key} in {name}: {problems}"));
            assert!(!flattened.treefile.to_json().contains_key(*key), "{key} in {name} {text:?}");
            assert_render_is_stable(&flattened);
        }
    }
}

#[test]
fn null_include_keys_and_legacy_spellings_are_absent() {
    // `override-remove` is derive-only: null is not "set".
    let manifest = "ref: r\ninclude:\narch-include: ~\nconditional-include:\ndefault_target: ~\n\
                    default-target: graphical.target\ngpg_key: KEY\ngpg-key:\noverride-remove: ~\n";
    let flattened =
        load_files(&[("manifest.yaml", manifest)]).unwrap_or_else(|problems| panic!("{problems}"));
    // A null spelling does not count as the other one being set.
    assert_eq!(flattened.treefile.default_target.as_deref(), Some("graphical.target"));
    assert_eq!(flattened.treefile.gpg_key.as_deref(), Some("KEY"));
    insta::assert_snapshot!(rendered(&flattened.warnings).join("\n"));
}

#[test]
fn a_file_of_only_comments_is_a_treefile_without_keys() {
    let flattened = load_files(&[
        ("manifest.yaml", "ref: r\ninclude: [extras.yaml, base.yaml]\n"),
        ("extras.yaml", "# Nothing extra yet:\n# packages:\n#   - htop\n"),
        ("base.yaml", "packages: [bash]\n"),
    ])
    .unwrap_or_else(|problems| panic!("{problems}"));
    assert_eq!(flattened.treefile.packages.unwrap().iter().collect::<Vec<_>>(), ["bash"]);
    assert_eq!(
        rendered(&flattened.warnings),
        ["warning: in extras.yaml:1:1, included from manifest.yaml:2:11: the document is empty (everything \
          commented out?); treated as a treefile without keys"]
    );
}

/// rpm-ostree reads `packages` and `repo-packages` straight from serde_yaml, which reads a value written
/// as nothing as "" (an entry; dropped by the white-space split) or as an empty list.
#[test]
fn package_entries_written_as_nothing_are_dropped() {
    let manifest = "ref: r\npackages:\n  - bash\n  -\n  - # vim-enhanced\n  - jq\nrepo-packages:\n  - repo: appstream\n    packages:\n      # - podman\n  - repo: extras\n    packages:\n      - toolbox\n      -\n";
    let flattened =
        load_files(&[("manifest.yaml", manifest)]).unwrap_or_else(|problems| panic!("{problems}"));
    assert_eq!(flattened.treefile.packages.as_ref().unwrap().iter().collect::<Vec<_>>(), ["bash", "jq"]);
    assert_eq!(
        flattened.treefile.to_json()["repo-packages"],
        json!([{"repo": "appstream", "packages": []}, {"repo": "extras", "packages": ["toolbox"]}])
    );
    assert_render_is_stable(&flattened);
    insta::assert_snapshot!(rendered(&flattened.warnings).join("\n"));
}

/// Null where rpm-ostree's model has no `Option` (or checks by hand) stays an error, and so does a null
/// list entry; each case and its exact messages.
#[test]
fn null_where_a_value_is_required() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("null_ref_and_no_include_sets_it", &[("manifest.yaml", "ref:\npackages: [bash]\n")]),
        ("repo_metadata", &[("manifest.yaml", "ref: r\nrepo-metadata: ~\n")]),
        ("packages_for_an_arch", &[("manifest.yaml", "ref: r\npackages-x86_64:\npackages-s390x: ~\n")]),
        (
            "list_entries_yaml",
            &[(
                "manifest.yaml",
                "ref: r\npackages: [bash, ~]\nunits:\n  - a.service\n  -\nexclude-packages: [null]\nadd-files:\n  - [motd, ~]\npackages-x86_64:\n  -\n",
            )],
        ),
        (
            "list_entries_json",
            &[
                ("manifest.yaml", "ref: r\ninclude: group.json\n"),
                ("group.json", "{\n  \"packages\": [\"bash\",\n    null],\n  \"postprocess\": [null]\n}\n"),
            ],
        ),
        ("map_values", &[("manifest.yaml", "ref: r\nvariables:\n  stream:\nrepovars: {contentdir: ~}\n")]),
        (
            "repo_packages",
            &[
                (
                    "manifest.yaml",
                    "ref: r\ninclude: group.json\nrepo-packages:\n  - repo: appstream\n    packages: ~\n  - repo:\n    packages: [jq]\n",
                ),
                ("group.json", "{\"repo-packages\": [{\"repo\": \"extras\", \"packages\": null}]}\n"),
            ],
        ),
        (
            // Inline includes are read through serde's buffered content: no empty-list leniency.
            "inline_include_repo_packages",
            &[(
                "manifest.yaml",
                "ref: r\nconditional-include:\n  - if: basearch == \"x86_64\"\n    include:\n      repo-packages:\n        - repo: appstream\n          packages:\n",
            )],
        ),
        (
            "includes",
            &[
                (
                    "manifest.yaml",
                    "ref: r\ninclude: [a.yaml, ~]\narch-include: {x86_64: ~}\nconditional-include:\n  - if: ~\n    include: a.yaml\n  - if: basearch == \"x86_64\"\n    include:\n  - ~\n",
                ),
                ("a.yaml", "packages: [a]\n"),
            ],
        ),
        (
            "objects",
            &[(
                "manifest.yaml",
                "ref: r\nrojig: {name: ~, summary: s, license: MIT, description: ~}\ncheck-passwd: {type: file, filename: ~}\ncheck-groups:\n  type: data\n  entries:\n",
            )],
        ),
    ];
    for (name, files) in cases {
        let problems = load_files(files).expect_err(name);
        insta::assert_snapshot!(*name, rendered(&problems.diagnostics).join("\n"));
    }
}

#[test]
fn lockfile_nulls_are_absent() {
    let yaml = "packages:\n  bash:\n    evr: 5.2.15-5.el9\n    digest:\n    metadata: ~\n  jq: {evra: 1.6-17.el9.x86_64, digest: null}\nmetadata:\n  generated:\n  rpmmd_repos:\n";
    let json = "{\"packages\": {\"bash\": {\"evr\": \"5.2.15-5.el9\", \"digest\": null, \"metadata\": null},\n  \"jq\": {\"evra\": \"1.6-17.el9.x86_64\", \"digest\": null}},\n \"metadata\": {\"generated\": null, \"rpmmd_repos\": null}}\n";
    for (name, text, warning_count) in
        [("manifest-lock.overrides.yaml", yaml, 5), ("manifest-lock.x86_64.json", json, 5)]
    {
        let (lockfile, warnings) =
            Lockfile::parse_with_warnings(text, name).unwrap_or_else(|problems| panic!("{name}: {problems}"));
        assert_eq!(warnings.len(), warning_count, "{name}: {:?}", rendered(&warnings));
        assert_eq!(lockfile.packages["bash"].version, LockedVersion::Evr("5.2.15-5.el9".into()), "{name}");
        assert_eq!(lockfile.packages["bash"].digest, None, "{name}");
        assert_eq!(lockfile.packages["bash"].metadata, None, "{name}");
        assert_eq!(lockfile.packages["jq"].digest, None, "{name}");
        let metadata = lockfile.metadata.unwrap();
        assert_eq!((metadata.generated, metadata.rpmmd_repos), (None, None), "{name}");
        // `parse` keeps working; it drops the warnings.
        let parsed = Lockfile::parse(text, name).unwrap();
        assert_eq!(parsed.packages.len(), 2, "{name}");
        // The fuzz target's invariant: what parses is written and read back unchanged.
        let written = parsed.to_json_string();
        assert_eq!(Lockfile::parse(&written, "rewritten.json").unwrap(), parsed, "{name}");
    }
    let (yaml_warnings, json_warnings) = (
        Lockfile::parse_with_warnings(yaml, "manifest-lock.overrides.yaml").unwrap().1,
        Lockfile::parse_with_warnings(json, "manifest-lock.x86_64.json").unwrap().1,
    );
    insta::assert_snapshot!([rendered(&yaml_warnings), rendered(&json_warnings)].concat().join("\n"));
}

#[test]
fn lockfile_with_every_package_commented_out() {
    let text = "# Pins go here, e.g.:\npackages:\n  # bash:\n  #   evr: 5.2.15-5.el9\n";
    let (lockfile, warnings) = Lockfile::parse_with_warnings(text, "manifest-lock.overrides.yaml").unwrap();
    assert!(lockfile.packages.is_empty());
    assert_eq!(
        rendered(&warnings),
        ["warning: in manifest-lock.overrides.yaml:2:1: \"packages\" is null (every entry commented out?); \
          treated as no locked packages"]
    );
    // Null where an entry needs a value stays an error.
    let problems = Lockfile::parse(
        "packages:\n  bash: ~\n  jq: {evr: ~}\nmetadata: {rpmmd_repos: {baseos: {generated: ~}}}\n",
        "manifest-lock.overrides.yaml",
    )
    .unwrap_err();
    insta::assert_snapshot!(
        "lockfile_null_where_a_value_is_required",
        rendered(&problems.diagnostics).join("\n")
    );
}

/// A free-form value that is no JSON value (`.nan`) reads as null: it is not rendered, so the rendering
/// loads and renders to itself.
#[test]
fn a_value_rendering_as_null_is_left_out() {
    let flattened = load_files(&[("manifest.yaml", "ref: r\ncustom: .nan\n")]).unwrap();
    assert!(!flattened.render().contains("custom"), "{}", flattened.render());
    assert_render_is_stable(&flattened);
}
