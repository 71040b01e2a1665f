#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Client-side import of chunked ostree container images (`image::import`): images built here
//! by hand from a real ostree commit (made with the `ostree` CLI), following the tar layout ostree-ext
//! writes, are imported and fsck'ed; tampered, mislabeled and hostile images fail with clean errors.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use arbor_testsupport::tools::run_tool;
use image::encapsulate::{LABEL_COMMIT, LABEL_FINAL_DIFF_ID};
use image::import::{IMPORT_REF, ImportError, ImportedImage, import_image, verify_image};
use image::layout::{
    DOCKER_LAYER_MEDIA_TYPE, IMAGE_CONFIG_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, ImageManifest,
    LAYER_GZIP_MEDIA_TYPE, LAYER_TAR_MEDIA_TYPE, LAYER_ZSTD_MEDIA_TYPE, OciDirectory, canonical_json,
    sha256_digest,
};
use ostree::gio;
use ostree::gio::prelude::*;
use sha2::Digest;

const TAG: &str = "latest";
const REPO_PREFIX: &str = "sysroot/ostree/repo";
const OBJECT_DIRECTORIES: usize = 256;
const REPO_CONFIG: &str = "[core]\nrepo_version=1\nmode=bare-split-xattrs\n";
/// Larger than the importer's inline limit, so the streamed write path runs.
const LARGE_FILE_SIZE: usize = 3 << 20;
const DIRECTORY_MODE: u32 = 0o755;
const CONFIG_FILE_MODE: u32 = 0o644;
const SYMLINK_MODE: u32 = 0o777;
const PERMISSION_BITS: u32 = 0o7777;
const SETUID_MODE: u32 = 0o4755;
const COMPONENTS_ANNOTATION: &str = "ostree.components";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Tar,
    Gzip,
    Zstd,
    DockerGzip,
}

/// How the xattrs of each content object are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XattrsStyle {
    /// bootc ≥ 1.8: `<file>.file-xattrs-link` is a regular file holding the xattrs GVariant.
    LinkFile,
    /// ostree-ext 0.15: `<sha256>.file-xattrs` once, and `<file>.file-xattrs-link` hardlinks to it.
    Hardlink,
}

#[derive(Debug, Clone)]
struct ImageOptions {
    compression: Compression,
    xattrs: XattrsStyle,
    /// Content objects are spread over this many chunk layers (0: all in the commit layer).
    chunk_layers: usize,
    tamper_content: bool,
    tamper_blob: bool,
    wrong_diff_id: bool,
    dirtree_in_chunk: bool,
    final_diffid_label: bool,
    commit_label: Option<String>,
    drop_a_content_object: bool,
    /// Replaces the (uncompressed) tar of the last layer.
    last_layer_tar: Option<Vec<u8>>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            compression: Compression::Gzip,
            xattrs: XattrsStyle::LinkFile,
            chunk_layers: 1,
            tamper_content: false,
            tamper_blob: false,
            wrong_diff_id: false,
            dirtree_in_chunk: false,
            final_diffid_label: true,
            commit_label: None,
            drop_a_content_object: false,
            last_layer_tar: None,
        }
    }
}

#[derive(Debug, Clone)]
enum Body {
    Regular(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone)]
struct ContentObject {
    checksum: String,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: Vec<u8>,
    body: Body,
}

/// A commit made by the `ostree` CLI and its objects, read back through libostree.
struct Source {
    _directory: tempfile::TempDir,
    commit: String,
    /// (kind suffix, checksum, serialized variant); the commit first.
    metadata: Vec<(&'static str, String, Vec<u8>)>,
    content: Vec<ContentObject>,
}

fn ostree_commit(tree: &Path, repo: &Path) -> String {
    run_tool("ostree", ["init".into(), format!("--repo={}", repo.display()), "--mode=bare-user".into()])
        .unwrap();
    let output = run_tool(
        "ostree",
        [
            "commit".to_string(),
            format!("--repo={}", repo.display()),
            "--branch=fixture".to_string(),
            "--subject=fixture".to_string(),
            format!("--tree=dir={}", tree.display()),
        ],
    )
    .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn write_file(path: &Path, content: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A small tree: regular, empty, setuid, large, symlink and xattr-carrying files.
fn source_commit() -> Source {
    let directory = tempfile::tempdir().unwrap();
    let tree = directory.path().join("tree");
    write_file(&tree.join("usr/bin/hello"), b"#!/bin/sh\necho hello\n", DIRECTORY_MODE);
    write_file(&tree.join("usr/bin/suid"), b"setuid program", SETUID_MODE);
    write_file(&tree.join("usr/lib/empty"), b"", CONFIG_FILE_MODE);
    let large: Vec<u8> = (0..LARGE_FILE_SIZE).map(|index| (index % 251) as u8).collect();
    write_file(&tree.join("usr/lib/large.bin"), &large, CONFIG_FILE_MODE);
    write_file(&tree.join("usr/share/labeled"), b"has a user xattr", CONFIG_FILE_MODE);
    rustix::fs::setxattr(
        tree.join("usr/share/labeled"),
        "user.test",
        b"hello",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::os::unix::fs::symlink("hello", tree.join("usr/bin/link")).unwrap();
    std::os::unix::fs::symlink("../bin//hello", tree.join("usr/lib/denormal")).unwrap();
    fs::create_dir_all(tree.join("etc/empty.d")).unwrap();
    let repo_path = directory.path().join("repo");
    let commit = ostree_commit(&tree, &repo_path);
    let (metadata, content) = read_objects(&repo_path, &commit);
    Source { _directory: directory, commit, metadata, content }
}

type Objects = (Vec<(&'static str, String, Vec<u8>)>, Vec<ContentObject>);

fn read_objects(repo_path: &Path, commit: &str) -> Objects {
    let repo = ostree::Repo::new_for_path(repo_path);
    repo.open(gio::Cancellable::NONE).unwrap();
    let mut names: Vec<(String, ostree::ObjectType)> = repo
        .traverse_commit(commit, 0, gio::Cancellable::NONE)
        .unwrap()
        .iter()
        .map(|name| (name.checksum().to_string(), name.object_type()))
        .collect();
    names.sort_by(|left, right| left.0.cmp(&right.0));
    let mut metadata = Vec::new();
    let mut content = Vec::new();
    for (checksum, object_type) in names {
        let kind = match object_type {
            ostree::ObjectType::Commit => "commit",
            ostree::ObjectType::DirTree => "dirtree",
            ostree::ObjectType::DirMeta => "dirmeta",
            ostree::ObjectType::File => {
                content.push(read_content_object(&repo, &checksum));
                continue;
            }
            other => panic!("unexpected object type {other:?}"),
        };
        let bytes = repo.load_variant(object_type, &checksum).unwrap().data().to_vec();
        metadata.push((kind, checksum, bytes));
    }
    metadata.sort_by_key(|(kind, _, _)| *kind != "commit");
    (metadata, content)
}

fn read_content_object(repo: &ostree::Repo, checksum: &str) -> ContentObject {
    let (stream, info, xattrs) = repo.load_file(checksum, gio::Cancellable::NONE).unwrap();
    let body = if info.file_type() == gio::FileType::SymbolicLink {
        Body::Symlink(info.symlink_target().unwrap().to_str().unwrap().to_string())
    } else {
        let mut bytes = Vec::new();
        if let Some(stream) = stream {
            stream.into_read().read_to_end(&mut bytes).unwrap();
        }
        Body::Regular(bytes)
    };
    ContentObject {
        checksum: checksum.to_string(),
        uid: info.attribute_uint32("unix::uid"),
        gid: info.attribute_uint32("unix::gid"),
        mode: info.attribute_uint32("unix::mode"),
        xattrs: xattrs.normal_form().data().to_vec(),
        body,
    }
}

fn object_path(checksum: &str, kind: &str) -> String {
    format!("{REPO_PREFIX}/objects/{}/{}.{kind}", &checksum[..2], &checksum[2..])
}

fn header(entry_type: tar::EntryType, size: u64, mode: u32, owner: (u32, u32)) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(owner.0.into());
    header.set_gid(owner.1.into());
    header.set_mtime(0);
    header
}

/// The link-name field of a tar header; longer targets need a GNU long-link record.
const LINK_NAME_FIELD: usize = 100;

struct LayerWriter {
    builder: tar::Builder<Vec<u8>>,
}

impl LayerWriter {
    fn new() -> LayerWriter {
        LayerWriter { builder: tar::Builder::new(Vec::new()) }
    }

    fn directory(&mut self, path: &str) {
        let mut header = header(tar::EntryType::Directory, 0, DIRECTORY_MODE, (0, 0));
        self.builder.append_data(&mut header, path, io::empty()).unwrap();
    }

    fn root(&mut self) {
        let mut header = header(tar::EntryType::Directory, 0, DIRECTORY_MODE, (0, 0));
        header.as_gnu_mut().unwrap().name[..2].copy_from_slice(b"./");
        header.set_cksum();
        self.builder.append(&header, io::empty()).unwrap();
    }

    fn file(&mut self, path: &str, data: &[u8], mode: u32, owner: (u32, u32)) {
        let mut header = header(tar::EntryType::Regular, data.len() as u64, mode, owner);
        self.builder.append_data(&mut header, path, data).unwrap();
    }

    fn link(&mut self, entry_type: tar::EntryType, path: &str, target: &str, mode: u32, owner: (u32, u32)) {
        let mut header = header(entry_type, 0, mode, owner);
        if entry_type == tar::EntryType::Symlink && target.len() <= LINK_NAME_FIELD {
            // Literally: `append_link` would normalize a denormal target like `../bin//hello`, which
            // changes the symlink object's checksum.
            header.set_link_name_literal(target).unwrap();
            self.builder.append_data(&mut header, path, io::empty()).unwrap();
        } else {
            self.builder.append_link(&mut header, path, target).unwrap();
        }
    }

    /// The directories and config file ostree-ext writes at the start of every layer.
    fn repo_structure(&mut self) {
        for directory in ["sysroot", "sysroot/ostree", REPO_PREFIX, &format!("{REPO_PREFIX}/objects")] {
            self.directory(directory);
        }
        for index in 0..OBJECT_DIRECTORIES {
            self.directory(&format!("{REPO_PREFIX}/objects/{index:02x}"));
        }
        for directory in ["extensions", "refs", "refs/heads", "refs/mirrors", "refs/remotes", "state", "tmp"]
        {
            self.directory(&format!("{REPO_PREFIX}/{directory}"));
        }
        self.file(&format!("{REPO_PREFIX}/config"), REPO_CONFIG.as_bytes(), CONFIG_FILE_MODE, (0, 0));
    }

    fn content_object(
        &mut self,
        object: &ContentObject,
        style: XattrsStyle,
        seen_xattrs: &mut BTreeSet<String>,
    ) {
        let link_path = object_path(&object.checksum, "file-xattrs-link");
        match style {
            XattrsStyle::LinkFile => self.file(&link_path, &object.xattrs, CONFIG_FILE_MODE, (0, 0)),
            XattrsStyle::Hardlink => {
                let xattrs_checksum = hex::encode(sha2::Sha256::digest(&object.xattrs));
                let xattrs_path = object_path(&xattrs_checksum, "file-xattrs");
                if seen_xattrs.insert(xattrs_checksum) {
                    self.file(&xattrs_path, &object.xattrs, CONFIG_FILE_MODE, (0, 0));
                }
                self.link(tar::EntryType::Link, &link_path, &xattrs_path, CONFIG_FILE_MODE, (0, 0));
            }
        }
        let path = object_path(&object.checksum, "file");
        let owner = (object.uid, object.gid);
        match &object.body {
            Body::Regular(data) => self.file(&path, data, object.mode & PERMISSION_BITS, owner),
            Body::Symlink(target) => self.link(tar::EntryType::Symlink, &path, target, SYMLINK_MODE, owner),
        }
        // A checkout path, which importers ignore.
        let checkout = format!("usr/share/checkout/{}", &object.checksum[..16]);
        self.link(tar::EntryType::Link, &checkout, &path, CONFIG_FILE_MODE, owner);
    }

    fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

fn compress(tar: &[u8], compression: Compression) -> (Vec<u8>, &'static str) {
    match compression {
        Compression::Tar => (tar.to_vec(), LAYER_TAR_MEDIA_TYPE),
        Compression::Gzip | Compression::DockerGzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(tar).unwrap();
            let media_type = if compression == Compression::Gzip {
                LAYER_GZIP_MEDIA_TYPE
            } else {
                DOCKER_LAYER_MEDIA_TYPE
            };
            (encoder.finish().unwrap(), media_type)
        }
        Compression::Zstd => (zstd::encode_all(tar, 3).unwrap(), LAYER_ZSTD_MEDIA_TYPE),
    }
}

/// The layers' uncompressed tars: the commit layer, then the chunk layers.
fn layer_tars(source: &Source, options: &ImageOptions) -> Vec<Vec<u8>> {
    let mut content: Vec<&ContentObject> = source.content.iter().collect();
    if options.drop_a_content_object {
        content.remove(0);
    }
    let mut commit_layer = LayerWriter::new();
    commit_layer.root();
    commit_layer.repo_structure();
    for (kind, checksum, bytes) in &source.metadata {
        if options.dirtree_in_chunk && *kind == "dirtree" && options.chunk_layers > 0 {
            continue;
        }
        commit_layer.file(&object_path(checksum, kind), bytes, CONFIG_FILE_MODE, (0, 0));
    }
    commit_layer.directory("usr");
    commit_layer.directory("usr/bin");
    let mut chunks: Vec<LayerWriter> = (0..options.chunk_layers).map(|_| LayerWriter::new()).collect();
    for chunk in &mut chunks {
        chunk.repo_structure();
    }
    let mut seen = vec![BTreeSet::new(); options.chunk_layers.max(1)];
    for (index, object) in content.into_iter().enumerate() {
        let mut object = object.clone();
        if options.tamper_content
            && let Body::Regular(data) = &mut object.body
            && !data.is_empty()
        {
            data[0] ^= 1;
        }
        match chunks.len() {
            0 => commit_layer.content_object(&object, options.xattrs, &mut seen[0]),
            count => chunks[index % count].content_object(&object, options.xattrs, &mut seen[index % count]),
        }
    }
    if options.dirtree_in_chunk
        && let Some(chunk) = chunks.first_mut()
    {
        for (kind, checksum, bytes) in source.metadata.iter().filter(|(kind, _, _)| *kind == "dirtree") {
            chunk.file(&object_path(checksum, kind), bytes, CONFIG_FILE_MODE, (0, 0));
        }
    }
    let mut tars = vec![commit_layer.finish()];
    tars.extend(chunks.into_iter().map(LayerWriter::finish));
    if let Some(replacement) = &options.last_layer_tar {
        *tars.last_mut().unwrap() = replacement.clone();
    }
    tars
}

/// Writes the image for `source` into a fresh OCI directory under `path`.
fn write_image(path: &Path, source: &Source, options: &ImageOptions) -> OciDirectory {
    let directory = OciDirectory::create(path).unwrap();
    let tars = layer_tars(source, options);
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (index, tar) in tars.iter().enumerate() {
        diff_ids.push(sha256_digest(tar));
        let (blob, media_type) = compress(tar, options.compression);
        let mut descriptor = directory.write_blob(media_type, &blob).unwrap();
        if index > 0 {
            descriptor.annotations.insert(COMPONENTS_ANNOTATION.to_string(), format!("package-{index}"));
        }
        descriptors.push(descriptor);
    }
    if options.tamper_blob {
        let last = descriptors.last().unwrap();
        let mut file =
            fs::OpenOptions::new().write(true).open(directory.blob_path(&last.digest).unwrap()).unwrap();
        file.seek(SeekFrom::Start(last.size / 2)).unwrap();
        file.write_all(b"\0tampered\0").unwrap();
    }
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_COMMIT.to_string(), options.commit_label.clone().unwrap_or(source.commit.clone()));
    if options.final_diffid_label {
        labels.insert(LABEL_FINAL_DIFF_ID.to_string(), diff_ids.last().unwrap().clone());
    }
    labels.insert("containers.bootc".to_string(), "1".to_string());
    if options.wrong_diff_id {
        *diff_ids.last_mut().unwrap() = sha256_digest(b"not this layer");
        if options.final_diffid_label {
            labels.insert(LABEL_FINAL_DIFF_ID.to_string(), diff_ids.last().unwrap().clone());
        }
    }
    let history: Vec<serde_json::Value> = (0..tars.len())
        .map(|index| serde_json::json!({"created": "1970-01-01T00:00:00Z", "created_by": format!("layer {index}")}))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config = directory.write_blob(IMAGE_CONFIG_MEDIA_TYPE, &canonical_json(&config)).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(IMAGE_MANIFEST_MEDIA_TYPE.to_string()),
        config,
        layers: descriptors,
        annotations: labels,
    };
    let manifest = directory.write_blob(IMAGE_MANIFEST_MEDIA_TYPE, &canonical_json(&manifest)).unwrap();
    directory.set_tag(TAG, manifest).unwrap();
    directory
}

/// A fresh bare-user repository.
fn fresh_repo(path: &Path) -> ostree::Repo {
    let repo = ostree::Repo::new_for_path(path);
    repo.create(ostree::RepoMode::BareUser, gio::Cancellable::NONE).unwrap();
    repo
}

fn import_fresh(
    source: &Source,
    options: &ImageOptions,
) -> (tempfile::TempDir, Result<ImportedImage, ImportError>) {
    let work = tempfile::tempdir().unwrap();
    let directory = write_image(&work.path().join("image"), source, options);
    let repo = fresh_repo(&work.path().join("repo"));
    let result = import_image(&directory, Some(TAG), &repo);
    (work, result)
}

fn import_error(source: &Source, options: &ImageOptions) -> String {
    let (_work, result) = import_fresh(source, options);
    result.expect_err("the import should fail").to_string()
}

fn layer_digests(path: &Path) -> Vec<String> {
    let directory = OciDirectory::open(path).unwrap();
    let manifest = directory.read_manifest(&directory.resolve(Some(TAG)).unwrap()).unwrap();
    manifest.layers.into_iter().map(|layer| layer.digest).collect()
}

fn verify(source: &Source, options: &ImageOptions) -> image::import::VerifyReport {
    let work = tempfile::tempdir().unwrap();
    let directory = write_image(&work.path().join("image"), source, options);
    let report = verify_image(&directory, Some(TAG), &work.path().join("scratch")).unwrap();
    assert_eq!(report.commit, source.commit, "{options:?}");
    assert!(report.fsck.contains("no errors"), "{}", report.fsck);
    report
}

#[test]
fn hand_made_image_imports_to_the_same_commit() {
    let source = source_commit();
    let report = verify(&source, &ImageOptions::default());
    assert_eq!(report.layers, 2);
    assert_eq!(report.content_objects, source.content.len());
    assert!(report.manifest_digest.starts_with("sha256:"));
    assert!(source.content.iter().any(|object| object.xattrs.len() > 1), "the fixture has an xattr");
    assert!(source.content.iter().any(|object| object.mode & SETUID_MODE == SETUID_MODE));
}

#[test]
fn import_counts_and_sets_the_ref() {
    let source = source_commit();
    let work = tempfile::tempdir().unwrap();
    let directory = write_image(&work.path().join("image"), &source, &ImageOptions::default());
    let repo = fresh_repo(&work.path().join("repo"));
    let imported = import_image(&directory, None, &repo).unwrap();
    assert_eq!(imported.commit, source.commit);
    assert_eq!(imported.content_objects, source.content.len());
    assert_eq!(imported.metadata_objects, source.metadata.len());
    let regular_bytes: u64 = source
        .content
        .iter()
        .map(|object| match &object.body {
            Body::Regular(data) => data.len() as u64,
            Body::Symlink(_) => 0,
        })
        .sum();
    assert_eq!(imported.bytes, regular_bytes);
    let resolved = repo.resolve_rev(IMPORT_REF, false).unwrap().unwrap();
    assert_eq!(resolved.as_str(), source.commit);
    // A second import finds every object present and writes none.
    let again = import_image(&directory, Some(TAG), &repo).unwrap();
    assert_eq!((again.commit.as_str(), again.content_objects), (source.commit.as_str(), 0));
}

#[test]
fn every_compression_imports() {
    let source = source_commit();
    for compression in [Compression::Zstd, Compression::Tar, Compression::DockerGzip] {
        verify(&source, &ImageOptions { compression, ..ImageOptions::default() });
    }
}

#[test]
fn ostree_ext_hardlinked_xattrs_import() {
    let source = source_commit();
    verify(&source, &ImageOptions { xattrs: XattrsStyle::Hardlink, ..ImageOptions::default() });
    verify(
        &source,
        &ImageOptions { xattrs: XattrsStyle::Hardlink, chunk_layers: 3, ..ImageOptions::default() },
    );
}

#[test]
fn commit_layer_alone_and_many_chunks_import() {
    let source = source_commit();
    let report = verify(&source, &ImageOptions { chunk_layers: 0, ..ImageOptions::default() });
    assert_eq!(report.layers, 1);
    let report = verify(&source, &ImageOptions { chunk_layers: 4, ..ImageOptions::default() });
    assert_eq!(report.layers, 5);
}

#[test]
fn tampered_content_names_the_object_and_the_checksum() {
    let source = source_commit();
    let message = import_error(&source, &ImageOptions { tamper_content: true, ..ImageOptions::default() });
    assert!(message.contains("corrupted object: checksum expected="), "{message}");
    assert!(message.contains("actual="), "{message}");
    assert!(message.contains("sysroot/ostree/repo/objects/"), "{message}");
    assert!(message.contains(".file"), "{message}");
    assert!(message.contains("layer sha256:"), "{message}");
}

#[test]
fn wrong_diff_id_names_the_layer() {
    let source = source_commit();
    let work = tempfile::tempdir().unwrap();
    let options = ImageOptions { wrong_diff_id: true, ..ImageOptions::default() };
    let directory = write_image(&work.path().join("image"), &source, &options);
    let chunk = layer_digests(directory.path()).pop().unwrap();
    let repo = fresh_repo(&work.path().join("repo"));
    let message = import_image(&directory, Some(TAG), &repo).unwrap_err().to_string();
    assert!(message.contains(&format!("layer {chunk}")), "{message}");
    assert!(message.contains("diff_ids"), "{message}");
    // Nothing of the failed import stays behind.
    assert!(repo.resolve_rev(IMPORT_REF, true).unwrap().is_none());
}

#[test]
fn tampered_blob_is_a_digest_mismatch() {
    let source = source_commit();
    for compression in [Compression::Gzip, Compression::Tar] {
        let message = import_error(
            &source,
            &ImageOptions { tamper_blob: true, compression, ..ImageOptions::default() },
        );
        assert!(message.contains("does not match its digest"), "{compression:?}: {message}");
    }
}

#[test]
fn metadata_in_a_chunk_layer_is_an_error() {
    let source = source_commit();
    let message = import_error(&source, &ImageOptions { dirtree_in_chunk: true, ..ImageOptions::default() });
    assert!(message.contains("metadata object in a chunk layer"), "{message}");
    assert!(message.contains(".dirtree"), "{message}");
}

#[test]
fn missing_final_diffid_is_not_an_ostree_image() {
    let source = source_commit();
    let message =
        import_error(&source, &ImageOptions { final_diffid_label: false, ..ImageOptions::default() });
    assert!(message.contains("not an ostree container image"), "{message}");
}

#[test]
fn commit_label_must_match() {
    let source = source_commit();
    let other = "0".repeat(64);
    let message =
        import_error(&source, &ImageOptions { commit_label: Some(other), ..ImageOptions::default() });
    assert!(message.contains("label says 0000"), "{message}");
    assert!(message.contains(&source.commit), "{message}");
}

#[test]
fn a_missing_content_object_makes_the_commit_incomplete() {
    let source = source_commit();
    let message =
        import_error(&source, &ImageOptions { drop_a_content_object: true, ..ImageOptions::default() });
    assert!(message.contains("incomplete"), "{message}");
    assert!(message.contains(&source.content[0].checksum), "{message}");
}

#[test]
fn verify_refuses_a_non_empty_scratch_directory() {
    let source = source_commit();
    let work = tempfile::tempdir().unwrap();
    let directory = write_image(&work.path().join("image"), &source, &ImageOptions::default());
    let scratch = work.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    fs::write(scratch.join("something"), b"x").unwrap();
    let message = verify_image(&directory, Some(TAG), &scratch).unwrap_err().to_string();
    assert!(message.contains("not empty"), "{message}");
}

/// Tars that must be refused with an error naming the layer, never a panic.
fn hostile_tars(source: &Source) -> Vec<(&'static str, Vec<u8>)> {
    let object = source.content.iter().find(|object| matches!(object.body, Body::Regular(_))).unwrap();
    let checksum = &object.checksum;
    let mut tars = Vec::new();

    let garbage: Vec<u8> =
        (0..10_000u32).map(|index| (index.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    tars.push(("garbage", garbage));

    let mut layer = LayerWriter::new();
    layer.content_object(object, XattrsStyle::LinkFile, &mut BTreeSet::new());
    let mut truncated = layer.finish();
    truncated.truncate(truncated.len() / 2 + 100);
    tars.push(("truncated", truncated));

    let mut layer = LayerWriter::new();
    layer.file(&format!("{REPO_PREFIX}/objects/zz/not-hex.file"), b"x", CONFIG_FILE_MODE, (0, 0));
    tars.push(("bad object name", layer.finish()));

    let mut layer = LayerWriter::new();
    layer.file(&format!("{REPO_PREFIX}/objects/stray"), b"x", CONFIG_FILE_MODE, (0, 0));
    tars.push(("stray file in objects/", layer.finish()));

    let mut layer = LayerWriter::new();
    layer.file(&object_path(checksum, "payload-link"), b"x", CONFIG_FILE_MODE, (0, 0));
    tars.push(("unknown object kind", layer.finish()));

    let mut layer = LayerWriter::new();
    layer.file(&object_path(checksum, "file-xattrs-link"), &object.xattrs, CONFIG_FILE_MODE, (0, 0));
    let mut fifo = header(tar::EntryType::Fifo, 0, CONFIG_FILE_MODE, (0, 0));
    layer.builder.append_data(&mut fifo, object_path(checksum, "file"), io::empty()).unwrap();
    tars.push(("fifo object", layer.finish()));

    let mut layer = LayerWriter::new();
    if let Body::Regular(data) = &object.body {
        layer.file(&object_path(checksum, "file"), data, object.mode & PERMISSION_BITS, (0, 0));
    }
    tars.push(("object without xattrs", layer.finish()));

    let mut layer = LayerWriter::new();
    let missing = object_path(&"a".repeat(64), "file-xattrs");
    layer.link(tar::EntryType::Link, &object_path(checksum, "file-xattrs-link"), &missing, 0, (0, 0));
    tars.push(("xattrs link to a missing object", layer.finish()));

    let mut layer = LayerWriter::new();
    layer.file(&object_path(checksum, "file-xattrs-link"), b"\x01\x02\x03 not a gvariant", 0, (0, 0));
    tars.push(("malformed xattrs", layer.finish()));

    // A header that claims a huge xattrs object followed by a few bytes.
    let mut huge = header(tar::EntryType::Regular, 1 << 40, CONFIG_FILE_MODE, (0, 0));
    huge.set_path(format!("{REPO_PREFIX}/objects/{}/{}.file-xattrs", &checksum[..2], &checksum[2..12]))
        .unwrap();
    huge.set_cksum();
    let mut bytes = huge.as_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 512]);
    tars.push(("huge declared size", bytes));
    tars
}

#[test]
fn hostile_layers_are_clean_errors() {
    let source = source_commit();
    for (name, tar) in hostile_tars(&source) {
        for compression in [Compression::Tar, Compression::Gzip] {
            let work = tempfile::tempdir().unwrap();
            let options =
                ImageOptions { last_layer_tar: Some(tar.clone()), compression, ..ImageOptions::default() };
            let directory = write_image(&work.path().join("image"), &source, &options);
            let last = layer_digests(directory.path()).pop().unwrap();
            let repo = fresh_repo(&work.path().join("repo"));
            let message = import_image(&directory, Some(TAG), &repo).unwrap_err().to_string();
            assert!(message.contains(&format!("layer {last}")), "{name} ({compression:?}): {message}");
        }
    }
}

#[test]
fn mislabeled_layers_are_clean_errors() {
    const LZ4_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+lz4";
    let source = source_commit();
    // A gzip blob labeled zstd (the decompressor fails) and a media type nobody supports.
    for media_type in [LAYER_ZSTD_MEDIA_TYPE, LZ4_MEDIA_TYPE] {
        let work = tempfile::tempdir().unwrap();
        let directory = write_image(&work.path().join("image"), &source, &ImageOptions::default());
        let descriptor = directory.resolve(Some(TAG)).unwrap();
        let mut manifest = directory.read_manifest(&descriptor).unwrap();
        let last = manifest.layers.last_mut().unwrap();
        last.media_type = media_type.to_string();
        let digest = last.digest.clone();
        let manifest = directory.write_blob(IMAGE_MANIFEST_MEDIA_TYPE, &canonical_json(&manifest)).unwrap();
        directory.set_tag(TAG, manifest).unwrap();
        let repo = fresh_repo(&work.path().join("repo"));
        let message = import_image(&directory, Some(TAG), &repo).unwrap_err().to_string();
        assert!(message.contains(&format!("layer {digest}")), "{message}");
        if media_type == LZ4_MEDIA_TYPE {
            assert!(message.contains("unsupported media type"), "{message}");
            assert!(message.contains("tar+lz4"), "{message}");
        }
    }
}

/// Import throughput on a larger generated tree (run with `--ignored`; prints MB/s).
#[test]
#[ignore]
fn import_throughput() {
    const FILES: usize = 2_000;
    const SMALL_FILE: usize = 20_000;
    const LARGE_FILES: usize = 20;
    const LARGE_FILE: usize = 8 << 20;
    let directory = tempfile::tempdir().unwrap();
    let tree = directory.path().join("tree");
    let mut state = 0x2545_f491_u32;
    let mut noise = |length: usize| -> Vec<u8> {
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 64) as u8 + b' '
            })
            .collect()
    };
    for index in 0..FILES {
        write_file(
            &tree.join(format!("usr/share/d{}/f{index}", index % 50)),
            &noise(SMALL_FILE),
            CONFIG_FILE_MODE,
        );
    }
    for index in 0..LARGE_FILES {
        write_file(&tree.join(format!("usr/lib/large{index}")), &noise(LARGE_FILE), CONFIG_FILE_MODE);
    }
    let repo_path = directory.path().join("repo");
    let commit = ostree_commit(&tree, &repo_path);
    let (metadata, content) = read_objects(&repo_path, &commit);
    let source = Source { _directory: directory, commit, metadata, content };
    let uncompressed: usize = source
        .content
        .iter()
        .map(|object| match &object.body {
            Body::Regular(data) => data.len(),
            Body::Symlink(_) => 0,
        })
        .sum();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::Tar] {
        let work = tempfile::tempdir().unwrap();
        let options = ImageOptions { compression, chunk_layers: 8, ..ImageOptions::default() };
        let image = write_image(&work.path().join("image"), &source, &options);
        let started = std::time::Instant::now();
        let report = verify_image(&image, Some(TAG), &work.path().join("scratch")).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(report.commit, source.commit);
        let megabytes = uncompressed as f64 / 1e6;
        eprintln!(
            "{compression:?}: {} objects, {megabytes:.0} MB in {seconds:.2} s (with fsck) = {:.0} MB/s",
            report.content_objects,
            megabytes / seconds
        );
        let repo = fresh_repo(&work.path().join("repo"));
        repo.set_disable_fsync(true);
        let started = std::time::Instant::now();
        import_image(&image, Some(TAG), &repo).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("{compression:?}: import only {seconds:.2} s = {:.0} MB/s", megabytes / seconds);
    }
}
