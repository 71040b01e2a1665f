//! Encapsulating ostree commits as chunked OCI images: deterministic bytes, the ostree-ext layer layout
//! (commit layer first, repository skeleton, objects with their checkout hardlinks), labels and history,
//! the layer budget, zstd, and a round trip through the client-side import. Needs the ostree CLI and
//! skopeo (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use arbor_testsupport::tools::{require_tool, tool_stdout};
use image::compress::Compression;
use image::encapsulate::{
    EncapsulateOptions, ImageConfiguration, encapsulate_commit, prior_layout_from_manifest,
    read_configuration,
};
use image::import::verify_image;
use image::layout::{ImageManifest, OciDirectory};

const TAG: &str = "test";
/// Commit time of the fixture commit: 2024-01-01T00:00:00Z.
const COMMIT_TIME: &str = "2024-01-01T00:00:00Z";

fn ostree(arguments: &[&str]) -> String {
    tool_stdout("ostree", arguments).expect("ostree")
}

/// A bare-user repository with one commit of a small tree: nested directories, a setuid program, a
/// symlink, an empty file, hardlinks, identical files, `/usr/etc`, and a long path.
fn fixture_commit(directory: &Path) -> (ostree::Repo, String) {
    require_tool("ostree").expect("ostree");
    let tree = directory.join("tree");
    let write = |path: &str, content: &[u8], mode: u32| {
        let path = tree.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755);
    write("usr/bin/su", b"setuid program", 0o4755);
    write("usr/lib/empty", b"", 0o644);
    write("usr/share/doc/a/README", b"same content", 0o644);
    write("usr/share/doc/b/README", b"same content", 0o644);
    write("usr/etc/os-release", b"NAME=test\n", 0o644);
    let long = format!("usr/share/{}/{}", "d".repeat(90), "file-with-a-long-name.txt");
    write(&long, &vec![b'x'; 300_000], 0o644);
    std::fs::hard_link(tree.join("usr/bin/tool"), tree.join("usr/bin/tool-alias")).unwrap();
    std::os::unix::fs::symlink("tool", tree.join("usr/bin/link")).unwrap();
    rustix::fs::setxattr(
        tree.join("usr/bin/su"),
        "user.arbor-test",
        b"marked",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let repo_path = directory.join("repo");
    let repo_text = format!("--repo={}", repo_path.display());
    ostree(&["init", &repo_text, "--mode=bare-user"]);
    let tree_text = format!("--tree=dir={}", tree.display());
    let commit = ostree(&[
        "commit",
        &repo_text,
        "--branch=test/x86_64",
        &tree_text,
        "--owner-uid=0",
        "--owner-gid=0",
        "--subject=fixture commit",
        "--timestamp=2024-01-01T00:00:00Z",
        "--add-metadata-string=version=42.1",
        "--add-metadata=ostree.bootable=true",
    ])
    .trim()
    .to_string();
    let repo = ostree::Repo::new_for_path(&repo_path);
    repo.open(ostree::gio::Cancellable::NONE).unwrap();
    (repo, commit)
}

fn entries_of(
    directory: &OciDirectory,
    digest: &str,
    compression: Compression,
) -> Vec<(String, tar::EntryType, Option<String>)> {
    let blob = directory.open_blob(digest).unwrap();
    let reader: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(blob)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(blob).unwrap()),
    };
    let mut archive = tar::Archive::new(reader);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let link = entry.link_name().unwrap().map(|link| link.to_string_lossy().into_owned());
            (path, entry.header().entry_type(), link)
        })
        .collect()
}

fn read_image(directory: &OciDirectory) -> (ImageManifest, ImageConfiguration) {
    let descriptor = directory.resolve(Some(TAG)).unwrap();
    let manifest = directory.read_manifest(&descriptor).unwrap();
    let configuration = read_configuration(directory, &manifest).unwrap();
    (manifest, configuration)
}

#[test]
fn the_same_commit_gives_the_same_image_bytes() {
    let scratch = tempfile::tempdir().unwrap();
    let (repo, commit) = fixture_commit(scratch.path());
    let mut digests = BTreeSet::new();
    for (name, threads) in [("one", 1), ("two", 2), ("four", 4)] {
        let directory = OciDirectory::create(&scratch.path().join(name)).unwrap();
        let options = EncapsulateOptions { threads, ..EncapsulateOptions::default() };
        let image = encapsulate_commit(&repo, &commit, &directory, TAG, &options).unwrap();
        digests.insert(image.manifest.digest.clone());
    }
    assert_eq!(digests.len(), 1, "{digests:?}");
}

#[test]
fn the_image_has_the_chunked_v1_shape_clients_expect() {
    let scratch = tempfile::tempdir().unwrap();
    let (repo, commit) = fixture_commit(scratch.path());
    let directory = OciDirectory::create(&scratch.path().join("image")).unwrap();
    let options = EncapsulateOptions {
        labels: BTreeMap::from([("com.example.stream".to_string(), "testing".to_string())]),
        ..EncapsulateOptions::default()
    };
    let image = encapsulate_commit(&repo, &commit, &directory, TAG, &options).unwrap();
    let (manifest, configuration) = read_image(&directory);

    let labels = &configuration.config.labels;
    assert_eq!(labels["ostree.commit"], commit);
    assert_eq!(labels["ostree.bootable"], "true");
    assert_eq!(labels["containers.bootc"], "1");
    assert_eq!(labels["org.opencontainers.image.version"], "42.1");
    assert_eq!(labels["com.example.stream"], "testing");
    assert_eq!(&labels["ostree.final-diffid"], configuration.rootfs.diff_ids.last().unwrap());
    assert_eq!(&manifest.annotations, labels);
    assert_eq!(configuration.created, COMMIT_TIME);
    assert_eq!(configuration.os, "linux");
    assert_eq!(configuration.history.len(), manifest.layers.len());
    assert!(configuration.history.iter().all(|entry| entry.created == COMMIT_TIME));
    assert_eq!(configuration.history[0].created_by, "fixture commit");
    assert_eq!(configuration.rootfs.diff_ids.len(), manifest.layers.len());
    assert!(manifest.layers.len() >= 2);
    assert!(!manifest.layers[0].annotations.contains_key("ostree.components"));
    assert!(manifest.layers[1..].iter().all(|layer| layer.annotations.contains_key("ostree.components")));
    assert_eq!(image.layers.len(), manifest.layers.len());

    // Layer 0: root, repository skeleton, config, then the commit as the first object.
    let commit_layer = entries_of(&directory, &manifest.layers[0].digest, Compression::Gzip);
    assert_eq!(commit_layer[0].0, "./");
    assert_eq!(commit_layer[1].0, "sysroot/");
    let config_position =
        commit_layer.iter().position(|entry| entry.0 == "sysroot/ostree/repo/config").unwrap();
    let first_object =
        commit_layer[config_position + 1..].iter().find(|entry| entry.1 == tar::EntryType::Regular).unwrap();
    assert_eq!(
        first_object.0,
        format!("sysroot/ostree/repo/objects/{}/{}.commit", &commit[..2], &commit[2..])
    );
    assert!(commit_layer.iter().any(|entry| entry.0 == "etc/" && entry.1 == tar::EntryType::Directory));
    assert!(commit_layer.iter().any(|entry| entry.0 == "usr/bin/"));
    assert!(commit_layer.iter().any(|entry| entry.0 == "var/tmp/"));
    assert!(!commit_layer.iter().any(|entry| entry.0.ends_with(".file")));

    // Chunk layers: every content object exactly once, xattrs before the object, checkout hardlinks after.
    let mut objects = BTreeMap::new();
    let mut checkout_paths = BTreeSet::new();
    for layer in &manifest.layers[1..] {
        let entries = entries_of(&directory, &layer.digest, Compression::Gzip);
        assert!(!entries.iter().any(|entry| entry.0 == "./"));
        for (index, (path, kind, link)) in entries.iter().enumerate() {
            if let Some(object) = path.strip_suffix(".file") {
                assert!(
                    entries[index - 1].0 == format!("{object}.file-xattrs-link"),
                    "xattrs precede {path}"
                );
                assert!(objects.insert(object.to_string(), *kind).is_none(), "{path} twice");
            } else if !path.starts_with("sysroot/") {
                checkout_paths.insert(path.clone());
                if *kind == tar::EntryType::Link {
                    assert!(link.as_deref().unwrap().ends_with(".file"), "{path} -> {link:?}");
                }
            }
        }
    }
    let expected_paths: BTreeSet<String> = [
        "usr/bin/tool",
        "usr/bin/tool-alias",
        "usr/bin/su",
        "usr/bin/link",
        "usr/lib/empty",
        "usr/share/doc/a/README",
        "usr/share/doc/b/README",
        "etc/os-release",
    ]
    .iter()
    .map(|path| path.to_string())
    .collect();
    assert!(expected_paths.is_subset(&checkout_paths), "{checkout_paths:?}");
    assert!(checkout_paths.iter().any(|path| path.ends_with("file-with-a-long-name.txt")));
    // tool and tool-alias share one object; the two READMEs too.
    assert_eq!(objects.len(), 7, "{objects:?}");

    // skopeo reads the layout.
    require_tool("skopeo").expect("skopeo");
    let inspected =
        tool_stdout("skopeo", ["inspect", &format!("oci:{}:{TAG}", directory.path().display())]).unwrap();
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(inspected["Labels"]["ostree.commit"], commit.as_str());
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), manifest.layers.len());

    // The layout of this image is a valid prior for the next build.
    let prior = prior_layout_from_manifest(&manifest).unwrap();
    assert_eq!(prior.layers.len(), manifest.layers.len() - 1);
}

#[test]
fn a_client_import_gives_back_the_same_commit() {
    let scratch = tempfile::tempdir().unwrap();
    let (repo, commit) = fixture_commit(scratch.path());
    for compression in [Compression::Gzip, Compression::Zstd] {
        let name = format!("{compression:?}");
        let directory = OciDirectory::create(&scratch.path().join(&name)).unwrap();
        let options = EncapsulateOptions { compression, ..EncapsulateOptions::default() };
        let image = encapsulate_commit(&repo, &commit, &directory, TAG, &options).unwrap();
        assert!(image.layers.len() >= 2);
        if compression == Compression::Zstd {
            let (manifest, _) = read_image(&directory);
            assert!(manifest.layers.iter().all(|layer| layer.media_type.ends_with("tar+zstd")));
            entries_of(&directory, &manifest.layers[1].digest, Compression::Zstd);
        }
        let report =
            verify_image(&directory, Some(TAG), &scratch.path().join(format!("verify-{name}"))).unwrap();
        assert_eq!(report.commit, commit);
    }
}

#[test]
fn the_layer_budget_is_respected_and_bad_budgets_are_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let (repo, commit) = fixture_commit(scratch.path());
    let directory = OciDirectory::create(&scratch.path().join("image")).unwrap();
    let options = EncapsulateOptions { max_layers: 5, ..EncapsulateOptions::default() };
    let image = encapsulate_commit(&repo, &commit, &directory, TAG, &options).unwrap();
    assert!(image.layers.len() <= 5, "{} layers", image.layers.len());
    for max_layers in [0, 2, 128] {
        let options = EncapsulateOptions { max_layers, ..EncapsulateOptions::default() };
        let error = encapsulate_commit(&repo, &commit, &directory, "other", &options).unwrap_err();
        assert!(error.to_string().contains("--max-layers"), "{error}");
    }
    // The failed attempts tagged nothing.
    assert!(directory.resolve(Some("other")).is_err());
}
