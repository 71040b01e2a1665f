//! Client-side import of chunked ("tar format v1") ostree container images, the way ostree-ext (bootc,
//! rpm-ostree) pulls them: every blob checked against its digest and every layer against its diff_id while
//! it streams, the chunk layers' content objects and then the commit layer's metadata written into an
//! ostree repository with their expected checksums (so libostree recomputes each one and refuses a
//! mismatch), the whole image in one transaction. `verify_image` does that into a scratch repository and
//! runs `ostree fsck` on the result: the round trip every image arbor writes must survive.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use ostree::gio;
use ostree::gio::prelude::*;
use ostree::glib;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::encapsulate::{LABEL_COMMIT, LABEL_FINAL_DIFF_ID};
use super::layout::{
    DOCKER_LAYER_MEDIA_TYPE, DOCKER_TAR_LAYER_MEDIA_TYPE, Descriptor, ImageManifest, LAYER_GZIP_MEDIA_TYPE,
    LAYER_TAR_MEDIA_TYPE, LAYER_ZSTD_MEDIA_TYPE, LayoutError, OciDirectory,
};
use common::ostree_format::MODE_REGULAR;

/// The ref `import_image` points at the imported commit.
pub const IMPORT_REF: &str = "arbor/verify";

/// Where the objects of the encapsulated repository live inside every layer.
const OBJECTS_PREFIX: &[u8] = b"sysroot/ostree/repo/objects/";
/// Tar writers may spell paths relative to the archive root with this prefix.
const CURRENT_DIRECTORY_PREFIX: &[u8] = b"./";
/// An object path below `objects/`: two hex digits, a slash, the other 62 hex digits, a dot, the kind.
const OBJECT_DIRECTORY_LENGTH: usize = 2;
const CHECKSUM_HEX_LENGTH: usize = 64;
/// libostree refuses metadata objects larger than this (`OSTREE_MAX_METADATA_SIZE`).
const MAX_METADATA_SIZE: u64 = 128 << 20;
/// Bound on an xattrs object (Linux allows 64 KiB of attributes per file; leave room for the encoding).
const MAX_XATTRS_SIZE: u64 = 1 << 20;
/// Regular files up to this size are written with one call; larger ones stream through a content writer.
const INLINE_CONTENT_LIMIT: u64 = 1 << 20;
/// Copy buffer for streamed files.
const STREAM_CHUNK: usize = 256 << 10;
/// The permission bits of a tar header mode (the file type comes from the entry type).
const PERMISSION_BITS: u32 = 0o7777;

/// GVariant types of the objects a layer carries.
const XATTRS_VARIANT_TYPE: &str = "a(ayay)";
const DIRTREE_VARIANT_TYPE: &str = "(a(say)a(sayay))";
const DIRMETA_VARIANT_TYPE: &str = "(uuua(ayay))";
const COMMIT_VARIANT_TYPE: &str = "(a{sv}aya(say)sstayay)";
const COMMITMETA_VARIANT_TYPE: &str = "a{sv}";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("image config {digest}: {message}")]
    Config { digest: String, message: String },
    #[error("not an ostree container image: {reason}")]
    NotOstree { reason: String },
    #[error("image manifest {digest}: {message}")]
    Manifest { digest: String, message: String },
    #[error("layer {digest}: unsupported media type {media_type:?} (tar, tar+gzip or tar+zstd)")]
    MediaType { digest: String, media_type: String },
    #[error("layer {digest}: {message}")]
    Layer { digest: String, message: String },
    #[error("layer {digest}: {path}: {message}")]
    Entry { digest: String, path: String, message: String },
    #[error("layer {digest}: {path}: corrupted object: {detail}")]
    CorruptedObject { digest: String, path: String, detail: String },
    #[error("the commit layer holds commit {found}, but the {LABEL_COMMIT} label says {label}")]
    CommitMismatch { label: String, found: String },
    #[error("commit {commit} is incomplete: {message}")]
    Incomplete { commit: String, message: String },
    #[error("ostree repository {path}: {message}")]
    Repository { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Scratch { path: PathBuf, message: String },
    #[error("`ostree` was not found on PATH (needed for `ostree fsck`): run scripts/install-deps")]
    MissingOstree,
    #[error("ostree fsck --repo={path} found errors:\n{output}")]
    Fsck { path: PathBuf, output: String },
}

/// What `import_image` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    pub commit: String,
    pub layers: usize,
    /// Content objects written (objects the repository already had are not counted).
    pub content_objects: usize,
    /// dirtree, dirmeta, commit and detached commit metadata objects written.
    pub metadata_objects: usize,
    /// Uncompressed bytes of regular-file content written.
    pub bytes: u64,
}

/// What `verify_image` checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub commit: String,
    pub manifest_digest: String,
    pub layers: usize,
    pub content_objects: usize,
    /// The summary `ostree fsck` printed.
    pub fsck: String,
}

/// Imports the image `tag` (or the only image) of `directory` into `repo` and points [`IMPORT_REF`] at its
/// commit. Nothing is written unless the whole image checks out (one transaction, aborted on error).
pub fn import_image(
    directory: &OciDirectory,
    tag: Option<&str>,
    repo: &ostree::Repo,
) -> Result<ImportedImage, ImportError> {
    let descriptor = directory.resolve(tag)?;
    import_manifest(directory, &descriptor, repo)
}

/// Imports the image into a fresh bare-user repository created in `scratch` (absent or empty), then runs
/// `ostree fsck` on it.
pub fn verify_image(
    directory: &OciDirectory,
    tag: Option<&str>,
    scratch: &Path,
) -> Result<VerifyReport, ImportError> {
    let descriptor = directory.resolve(tag)?;
    let repo = create_scratch_repository(scratch)?;
    let imported = import_manifest(directory, &descriptor, &repo)?;
    let fsck = run_fsck(scratch)?;
    Ok(VerifyReport {
        commit: imported.commit,
        manifest_digest: descriptor.digest,
        layers: imported.layers,
        content_objects: imported.content_objects,
        fsck,
    })
}

fn create_scratch_repository(scratch: &Path) -> Result<ostree::Repo, ImportError> {
    let scratch_error = |message: String| ImportError::Scratch { path: scratch.to_path_buf(), message };
    fs::create_dir_all(scratch).map_err(|error| scratch_error(error.to_string()))?;
    let mut entries = fs::read_dir(scratch).map_err(|error| scratch_error(error.to_string()))?;
    if entries.next().is_some() {
        return Err(scratch_error("not empty (a fresh repository is created there)".to_string()));
    }
    let repo = ostree::Repo::new_for_path(scratch);
    repo.create(ostree::RepoMode::BareUser, gio::Cancellable::NONE)
        .map_err(|error| scratch_error(format!("creating a bare-user repository: {error}")))?;
    // A scratch repository is thrown away: durability is not worth the fsyncs.
    repo.set_disable_fsync(true);
    Ok(repo)
}

/// Runs `ostree fsck` and returns its summary (the object count and the final verdict).
fn run_fsck(repository: &Path) -> Result<String, ImportError> {
    let mut argument = OsString::from("--repo=");
    argument.push(repository);
    let output = match Command::new("ostree").arg("fsck").arg(&argument).output() {
        Ok(output) => output,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(ImportError::MissingOstree),
        Err(error) => {
            return Err(ImportError::Repository {
                path: repository.to_path_buf(),
                message: format!("running ostree fsck: {error}"),
            });
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stderr.trim().is_empty() {
        return Err(ImportError::Fsck {
            path: repository.to_path_buf(),
            output: format!(
                "{}{}{}",
                stdout.trim_end(),
                if stdout.is_empty() { "" } else { "\n" },
                stderr.trim_end()
            ),
        });
    }
    Ok(fsck_summary(&stdout))
}

/// "N objects checked; <last line>" from fsck's progress output.
fn fsck_summary(stdout: &str) -> String {
    let lines: Vec<&str> =
        stdout.split(['\n', '\r']).map(str::trim).filter(|line| !line.is_empty()).collect();
    let verdict = lines.last().copied().unwrap_or("no output");
    let objects = lines.iter().rev().find_map(|line| {
        let counts = line.strip_prefix("fsck objects (")?;
        let (counts, _) = counts.split_once(')')?;
        let (_, total) = counts.split_once('/')?;
        Some(total.to_string())
    });
    match objects {
        Some(total) => format!("{total} objects checked; {verdict}"),
        None => verdict.to_string(),
    }
}

/// The parts of an image config the import needs.
#[derive(Debug, Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<ContainerConfig>,
    rootfs: RootFilesystem,
}

#[derive(Debug, Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct RootFilesystem {
    diff_ids: Vec<String>,
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn of(layer: &Descriptor) -> Result<Compression, ImportError> {
        match layer.media_type.as_str() {
            LAYER_GZIP_MEDIA_TYPE | DOCKER_LAYER_MEDIA_TYPE => Ok(Compression::Gzip),
            LAYER_ZSTD_MEDIA_TYPE => Ok(Compression::Zstd),
            LAYER_TAR_MEDIA_TYPE | DOCKER_TAR_LAYER_MEDIA_TYPE => Ok(Compression::None),
            other => {
                Err(ImportError::MediaType { digest: layer.digest.clone(), media_type: other.to_string() })
            }
        }
    }
}

/// Which part of the ostree commit a layer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerRole {
    /// Layer 0: the commit object, all dirtree/dirmeta objects and the remainder content objects.
    Commit,
    /// Layers 1..=final: content objects only.
    Chunk,
}

/// One layer to import with the diff_id the config promises for it.
#[derive(Debug)]
struct PlannedLayer {
    descriptor: Descriptor,
    diff_id: String,
    compression: Compression,
}

/// The checked shape of an image: the commit it claims and its layers in import order (chunks, commit).
#[derive(Debug)]
struct ImportPlan {
    commit_label: String,
    commit_layer: PlannedLayer,
    chunk_layers: Vec<PlannedLayer>,
}

fn plan_import(
    directory: &OciDirectory,
    manifest_descriptor: &Descriptor,
) -> Result<ImportPlan, ImportError> {
    let manifest: ImageManifest = directory.read_manifest(manifest_descriptor)?;
    let manifest_error =
        |message: String| ImportError::Manifest { digest: manifest_descriptor.digest.clone(), message };
    let config_digest = manifest.config.digest.clone();
    let config_error = |message: String| ImportError::Config { digest: config_digest.clone(), message };
    let config_bytes = directory.read_blob(&manifest.config.digest)?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|error| config_error(error.to_string()))?;
    let diff_ids = config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(config_error(format!(
            "rootfs.diff_ids lists {} layers, the manifest {}",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    if manifest.layers.is_empty() {
        return Err(manifest_error("no layers".to_string()));
    }
    let labels = config.config.and_then(|section| section.labels).unwrap_or_default();
    let final_diff_id = labels.get(LABEL_FINAL_DIFF_ID).ok_or_else(|| ImportError::NotOstree {
        reason: format!("no {LABEL_FINAL_DIFF_ID} label in the image config"),
    })?;
    let final_index = diff_ids.iter().position(|diff_id| diff_id == final_diff_id).ok_or_else(|| {
        config_error(format!("{LABEL_FINAL_DIFF_ID} {final_diff_id} is not one of rootfs.diff_ids"))
    })?;
    let derived = diff_ids.len() - final_index - 1;
    if derived > 0 {
        return Err(manifest_error(format!(
            "{derived} derived layers follow the ostree commit; only pure ostree images can be verified"
        )));
    }
    let commit_label = labels
        .get(LABEL_COMMIT)
        .filter(|checksum| is_checksum(checksum.as_bytes()))
        .ok_or_else(|| config_error(format!("no valid {LABEL_COMMIT} label (64 lowercase hex digits)")))?
        .clone();
    let mut planned = Vec::with_capacity(manifest.layers.len());
    for (descriptor, diff_id) in manifest.layers.into_iter().zip(diff_ids) {
        let compression = Compression::of(&descriptor)?;
        planned.push(PlannedLayer { descriptor, diff_id, compression });
    }
    let mut layers = planned.into_iter();
    let commit_layer = layers.next().ok_or_else(|| manifest_error("no layers".to_string()))?;
    Ok(ImportPlan { commit_label, commit_layer, chunk_layers: layers.collect() })
}

fn import_manifest(
    directory: &OciDirectory,
    manifest_descriptor: &Descriptor,
    repo: &ostree::Repo,
) -> Result<ImportedImage, ImportError> {
    let plan = plan_import(directory, manifest_descriptor)?;
    let transaction = Transaction::begin(repo)?;
    let mut importer = Importer { repo, content_objects: 0, metadata_objects: 0, bytes: 0 };
    for layer in &plan.chunk_layers {
        importer.import_layer(directory, layer, LayerRole::Chunk)?;
    }
    let commit =
        importer.import_layer(directory, &plan.commit_layer, LayerRole::Commit)?.ok_or_else(|| {
            ImportError::Layer {
                digest: plan.commit_layer.descriptor.digest.clone(),
                message: "the commit layer holds no .commit object".to_string(),
            }
        })?;
    if commit != plan.commit_label {
        return Err(ImportError::CommitMismatch { label: plan.commit_label, found: commit });
    }
    check_complete(repo, &commit)?;
    repo.transaction_set_ref(None, IMPORT_REF, Some(&commit));
    transaction.commit()?;
    let present = repo
        .has_object(ostree::ObjectType::Commit, &commit, gio::Cancellable::NONE)
        .map_err(|error| repository_error(repo, error))?;
    if !present {
        return Err(ImportError::Incomplete {
            commit,
            message: "the commit object is missing after the transaction".to_string(),
        });
    }
    Ok(ImportedImage {
        commit,
        layers: plan.chunk_layers.len() + 1,
        content_objects: importer.content_objects,
        metadata_objects: importer.metadata_objects,
        bytes: importer.bytes,
    })
}

/// Every object the commit reaches must be in the repository (metadata is checked by the traversal
/// itself, content objects here).
fn check_complete(repo: &ostree::Repo, commit: &str) -> Result<(), ImportError> {
    let incomplete = |message: String| ImportError::Incomplete { commit: commit.to_string(), message };
    let reachable = repo
        .traverse_commit(commit, 0, gio::Cancellable::NONE)
        .map_err(|error| incomplete(error.to_string()))?;
    let mut missing: Vec<String> = Vec::new();
    for object in &reachable {
        if object.object_type() != ostree::ObjectType::File {
            continue;
        }
        let checksum = object.checksum();
        let present = repo
            .has_object(ostree::ObjectType::File, checksum, gio::Cancellable::NONE)
            .map_err(|error| repository_error(repo, error))?;
        if !present {
            missing.push(checksum.to_string());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    Err(incomplete(format!(
        "{} content objects are in no layer (first: {})",
        missing.len(),
        missing.first().map(String::as_str).unwrap_or_default()
    )))
}

fn repository_error(repo: &ostree::Repo, error: impl std::fmt::Display) -> ImportError {
    ImportError::Repository { path: repo.path().path().unwrap_or_default(), message: error.to_string() }
}

/// An open repository transaction, aborted when dropped before `commit`.
struct Transaction<'a> {
    repo: &'a ostree::Repo,
    open: bool,
}

impl<'a> Transaction<'a> {
    fn begin(repo: &'a ostree::Repo) -> Result<Transaction<'a>, ImportError> {
        repo.prepare_transaction(gio::Cancellable::NONE).map_err(|error| repository_error(repo, error))?;
        Ok(Transaction { repo, open: true })
    }

    fn commit(mut self) -> Result<(), ImportError> {
        self.open = false;
        self.repo
            .commit_transaction(gio::Cancellable::NONE)
            .map(|_| ())
            .map_err(|error| repository_error(self.repo, error))
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open
            && let Err(error) = self.repo.abort_transaction(gio::Cancellable::NONE)
        {
            tracing::warn!("aborting the import transaction: {error}");
        }
    }
}

/// Feeds everything read through it into a SHA-256.
struct HashingReader<'a, R> {
    inner: R,
    hasher: &'a mut Sha256,
    bytes: &'a mut u64,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        *self.bytes += read as u64;
        Ok(read)
    }
}

fn sha256_of(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The kinds of object files in a `bare-split-xattrs` repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectKind {
    File,
    FileXattrs,
    FileXattrsLink,
    DirTree,
    DirMeta,
    Commit,
    CommitMeta,
}

impl ObjectKind {
    fn from_suffix(suffix: &str) -> Option<ObjectKind> {
        Some(match suffix {
            "file" => ObjectKind::File,
            "file-xattrs" => ObjectKind::FileXattrs,
            "file-xattrs-link" => ObjectKind::FileXattrsLink,
            "dirtree" => ObjectKind::DirTree,
            "dirmeta" => ObjectKind::DirMeta,
            "commit" => ObjectKind::Commit,
            "commitmeta" => ObjectKind::CommitMeta,
            _ => return None,
        })
    }
}

fn is_checksum(text: &[u8]) -> bool {
    text.len() == CHECKSUM_HEX_LENGTH && text.iter().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// The part of a tar path below `sysroot/ostree/repo/objects/`, or `None` for every other path.
fn object_relative_path(path: &[u8]) -> Option<&[u8]> {
    let path = path.strip_prefix(CURRENT_DIRECTORY_PREFIX).unwrap_or(path);
    path.strip_prefix(OBJECTS_PREFIX)
}

/// Parses `xx/<62 hex>.<kind>` (the part of an object path below `objects/`).
fn parse_object_name(relative: &[u8]) -> Result<(String, ObjectKind), String> {
    let invalid = || {
        format!(
            "not an object name (objects/xx/<62 hex digits>.<kind>): {:?}",
            String::from_utf8_lossy(relative)
        )
    };
    let text = std::str::from_utf8(relative).map_err(|_| invalid())?;
    let (directory, file) = text.split_once('/').ok_or_else(invalid)?;
    let (rest, suffix) = file.split_once('.').ok_or_else(invalid)?;
    if directory.len() != OBJECT_DIRECTORY_LENGTH {
        return Err(invalid());
    }
    let checksum = format!("{directory}{rest}");
    if !is_checksum(checksum.as_bytes()) {
        return Err(invalid());
    }
    let kind = ObjectKind::from_suffix(suffix).ok_or_else(|| format!("unknown object kind .{suffix}"))?;
    Ok((checksum, kind))
}

/// "checksum expected=… actual=…" out of libostree's "Corrupted file object; checksum expected='…'
/// actual='…'", or `None` for other errors.
fn corruption_detail(error: &glib::Error) -> Option<String> {
    let message = error.message();
    let start = message.find("checksum expected")?;
    Some(message[start..].replace('\'', ""))
}

/// Counters shared by the layers of one import.
struct Importer<'a> {
    repo: &'a ostree::Repo,
    content_objects: usize,
    metadata_objects: usize,
    bytes: u64,
}

/// Where one layer's object stream is.
struct LayerState {
    role: LayerRole,
    /// `.file-xattrs` objects of this layer by their checksum (targets of `.file-xattrs-link` hardlinks).
    xattrs: HashMap<String, glib::Variant>,
    /// The xattrs announced for the next `.file` object: (its checksum, the attributes).
    next_xattrs: Option<(String, glib::Variant)>,
    /// Object entries seen so far.
    objects: usize,
    commit: Option<String>,
    /// Whether the previous object entry was the `.commit` (its `.commitmeta` may follow only then).
    after_commit: bool,
}

impl Importer<'_> {
    /// Imports one layer and returns the commit it carried (commit layer) or `None` (chunk layers).
    fn import_layer(
        &mut self,
        directory: &OciDirectory,
        layer: &PlannedLayer,
        role: LayerRole,
    ) -> Result<Option<String>, ImportError> {
        let digest = &layer.descriptor.digest;
        let layer_error = |message: String| ImportError::Layer { digest: digest.clone(), message };
        let file = directory.open_blob(digest)?;
        let mut blob_hasher = Sha256::new();
        let mut blob_bytes = 0u64;
        let mut diff_hasher = Sha256::new();
        let mut diff_bytes = 0u64;
        let mut state = LayerState {
            role,
            xattrs: HashMap::new(),
            next_xattrs: None,
            objects: 0,
            commit: None,
            after_commit: false,
        };
        let outcome = {
            let compressed = HashingReader { inner: &file, hasher: &mut blob_hasher, bytes: &mut blob_bytes };
            let decompressed: Box<dyn Read + '_> = match layer.compression {
                Compression::None => Box::new(compressed),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(compressed)),
                Compression::Zstd => Box::new(
                    zstd::stream::read::Decoder::new(compressed)
                        .map_err(|error| layer_error(format!("starting zstd decompression: {error}")))?,
                ),
            };
            let tar_stream =
                HashingReader { inner: decompressed, hasher: &mut diff_hasher, bytes: &mut diff_bytes };
            let mut archive = tar::Archive::new(tar_stream);
            self.read_entries(&mut archive, digest, &mut state).and_then(|()| {
                // The end-of-archive blocks and any padding belong to the diff_id too.
                io::copy(&mut archive.into_inner(), &mut io::sink())
                    .map(|_| ())
                    .map_err(|error| layer_error(format!("decompressing: {error}")))
            })
        };
        // Hash what the decompressor left unread, so a damaged blob is reported as such.
        let rest = io::copy(
            &mut HashingReader { inner: &file, hasher: &mut blob_hasher, bytes: &mut blob_bytes },
            &mut io::sink(),
        );
        let blob_digest = sha256_of(blob_hasher);
        if blob_digest != *digest {
            return Err(layer_error(format!("the blob does not match its digest (found {blob_digest})")));
        }
        if blob_bytes != layer.descriptor.size {
            return Err(layer_error(format!(
                "the blob has {blob_bytes} bytes, its descriptor says {}",
                layer.descriptor.size
            )));
        }
        outcome?;
        rest.map_err(|error| layer_error(format!("reading the blob: {error}")))?;
        let diff_id = sha256_of(diff_hasher);
        if diff_id != layer.diff_id {
            return Err(layer_error(format!(
                "the uncompressed layer is {diff_id}, but the config's rootfs.diff_ids says {}",
                layer.diff_id
            )));
        }
        tracing::debug!(layer = %digest, compressed = blob_bytes, uncompressed = diff_bytes, "layer imported");
        Ok(state.commit)
    }

    fn read_entries<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        digest: &str,
        state: &mut LayerState,
    ) -> Result<(), ImportError> {
        let layer_error = |message: String| ImportError::Layer { digest: digest.to_string(), message };
        let entries =
            archive.entries().map_err(|error| layer_error(format!("reading the tar stream: {error}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|error| layer_error(format!("reading the tar stream: {error}")))?;
            let path = entry.path_bytes().into_owned();
            let Some(relative) = object_relative_path(&path) else {
                continue;
            };
            if entry.header().entry_type().is_dir() {
                continue;
            }
            let display = String::from_utf8_lossy(&path).into_owned();
            let entry_error = |message: String| ImportError::Entry {
                digest: digest.to_string(),
                path: display.clone(),
                message,
            };
            let (checksum, kind) = parse_object_name(relative).map_err(entry_error)?;
            let object = ObjectEntry { digest, path: &display, checksum: &checksum };
            self.import_object(&mut entry, &object, kind, state)?;
        }
        if state.role == LayerRole::Commit && state.commit.is_none() {
            return Err(layer_error("the commit layer holds no .commit object".to_string()));
        }
        Ok(())
    }

    fn import_object<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        object: &ObjectEntry<'_>,
        kind: ObjectKind,
        state: &mut LayerState,
    ) -> Result<(), ImportError> {
        let first = state.objects == 0;
        let after_commit = state.after_commit;
        state.objects += 1;
        state.after_commit = false;
        let is_metadata = matches!(
            kind,
            ObjectKind::DirTree | ObjectKind::DirMeta | ObjectKind::Commit | ObjectKind::CommitMeta
        );
        match state.role {
            LayerRole::Chunk if is_metadata => {
                return Err(
                    object.error("metadata object in a chunk layer (only content objects belong there)")
                );
            }
            LayerRole::Commit if first && kind != ObjectKind::Commit => {
                return Err(object.error("the first object of the commit layer must be the .commit"));
            }
            _ => {}
        }
        match kind {
            ObjectKind::File => {
                let xattrs = match state.next_xattrs.take() {
                    Some((owner, xattrs)) if owner == object.checksum => xattrs,
                    Some((owner, _)) => {
                        return Err(object.error(format!("the preceding xattrs entry is for object {owner}")));
                    }
                    None => return Err(object.error("no .file-xattrs-link entry precedes the object")),
                };
                self.write_content(entry, object, &xattrs)
            }
            ObjectKind::FileXattrs => {
                expect_regular(entry, object)?;
                let bytes = read_bounded(entry, object, MAX_XATTRS_SIZE)?;
                check_sha256(&bytes, object)?;
                let xattrs = parse_variant(&bytes, XATTRS_VARIANT_TYPE, object)?;
                state.xattrs.insert(object.checksum.to_string(), xattrs);
                Ok(())
            }
            ObjectKind::FileXattrsLink => {
                let xattrs = self.xattrs_of_link(entry, object, state)?;
                state.next_xattrs = Some((object.checksum.to_string(), xattrs));
                Ok(())
            }
            ObjectKind::Commit => {
                if state.commit.is_some() {
                    return Err(object.error("a second .commit in the commit layer"));
                }
                self.write_metadata(entry, object, ostree::ObjectType::Commit, COMMIT_VARIANT_TYPE)?;
                state.commit = Some(object.checksum.to_string());
                state.after_commit = true;
                Ok(())
            }
            ObjectKind::CommitMeta => {
                if !after_commit || state.commit.as_deref() != Some(object.checksum) {
                    return Err(object.error("detached metadata must directly follow its .commit"));
                }
                expect_regular(entry, object)?;
                let bytes = read_bounded(entry, object, MAX_METADATA_SIZE)?;
                let metadata = parse_variant(&bytes, COMMITMETA_VARIANT_TYPE, object)?;
                self.repo
                    .write_commit_detached_metadata(object.checksum, Some(&metadata), gio::Cancellable::NONE)
                    .map_err(|error| object.error(format!("writing detached metadata: {error}")))?;
                self.metadata_objects += 1;
                Ok(())
            }
            ObjectKind::DirTree => {
                self.write_metadata(entry, object, ostree::ObjectType::DirTree, DIRTREE_VARIANT_TYPE)
            }
            ObjectKind::DirMeta => {
                self.write_metadata(entry, object, ostree::ObjectType::DirMeta, DIRMETA_VARIANT_TYPE)
            }
        }
    }

    /// The attributes a `.file-xattrs-link` entry announces: its own content (bootc ≥ 1.8) or, for a
    /// hardlink (ostree-ext 0.15), the `.file-xattrs` object of this layer it points at.
    fn xattrs_of_link<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        object: &ObjectEntry<'_>,
        state: &LayerState,
    ) -> Result<glib::Variant, ImportError> {
        match entry.header().entry_type() {
            tar::EntryType::Regular => {
                let bytes = read_bounded(entry, object, MAX_XATTRS_SIZE)?;
                parse_variant(&bytes, XATTRS_VARIANT_TYPE, object)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|target| target.into_owned())
                    .ok_or_else(|| object.error("hardlink without a target"))?;
                let (xattrs_checksum, kind) = object_relative_path(&target)
                    .ok_or_else(|| "not below sysroot/ostree/repo/objects/".to_string())
                    .and_then(parse_object_name)
                    .map_err(|message| object.error(format!("hardlink target: {message}")))?;
                if kind != ObjectKind::FileXattrs {
                    return Err(object.error("the hardlink must point at a .file-xattrs object"));
                }
                state.xattrs.get(&xattrs_checksum).cloned().ok_or_else(|| {
                    object.error(format!(
                        "links to {xattrs_checksum}.file-xattrs, which this layer does not hold (yet)"
                    ))
                })
            }
            other => Err(object.error(format!("unsupported tar entry type {other:?} for an xattrs link"))),
        }
    }

    fn write_metadata<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        object: &ObjectEntry<'_>,
        object_type: ostree::ObjectType,
        type_string: &'static str,
    ) -> Result<(), ImportError> {
        expect_regular(entry, object)?;
        let bytes = read_bounded(entry, object, MAX_METADATA_SIZE)?;
        check_sha256(&bytes, object)?;
        let variant = parse_variant(&bytes, type_string, object)?;
        self.repo
            .write_metadata(object_type, Some(object.checksum), &variant, gio::Cancellable::NONE)
            .map_err(|error| object.write_error(&error))?;
        self.metadata_objects += 1;
        Ok(())
    }

    /// Writes a regular file or symlink content object; libostree recomputes the checksum.
    fn write_content<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        object: &ObjectEntry<'_>,
        xattrs: &glib::Variant,
    ) -> Result<(), ImportError> {
        let header = entry.header();
        let owner = |value: io::Result<u64>, what: &str| -> Result<u32, ImportError> {
            value
                .ok()
                .and_then(|value| u32::try_from(value).ok())
                .ok_or_else(|| object.error(format!("invalid {what} in the tar header")))
        };
        let uid = owner(header.uid(), "uid")?;
        let gid = owner(header.gid(), "gid")?;
        let permissions = header
            .mode()
            .map_err(|error| object.error(format!("invalid mode in the tar header: {error}")))?
            & PERMISSION_BITS;
        let entry_type = header.entry_type();
        let present = self
            .repo
            .has_object(ostree::ObjectType::File, object.checksum, gio::Cancellable::NONE)
            .map_err(|error| repository_error(self.repo, error))?;
        if present {
            // Like ostree-ext: an object the repository has is not written again (its data is skipped).
            return Ok(());
        }
        match entry_type {
            tar::EntryType::Regular => {
                let size = entry.size();
                let mode = MODE_REGULAR | permissions;
                if size <= INLINE_CONTENT_LIMIT {
                    let content = read_bounded(entry, object, INLINE_CONTENT_LIMIT)?;
                    self.repo
                        .write_regfile_inline(
                            Some(object.checksum),
                            uid,
                            gid,
                            mode,
                            Some(xattrs),
                            &content,
                            gio::Cancellable::NONE,
                        )
                        .map_err(|error| object.write_error(&error))?;
                } else {
                    stream_regular_file(self.repo, entry, object, (uid, gid, mode), size, xattrs)?;
                }
                self.bytes += size;
            }
            tar::EntryType::Symlink => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| object.error("symlink without a target"))?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| object.error("the symlink target is not UTF-8"))?
                    .to_string();
                if target.is_empty() || target.contains('\0') {
                    return Err(object.error("empty or NUL-containing symlink target"));
                }
                self.repo
                    .write_symlink(
                        Some(object.checksum),
                        uid,
                        gid,
                        Some(xattrs),
                        &target,
                        gio::Cancellable::NONE,
                    )
                    .map_err(|error| object.write_error(&error))?;
            }
            other => {
                return Err(object.error(format!(
                    "unsupported tar entry type {other:?} for a content object (regular file or symlink)"
                )));
            }
        }
        self.content_objects += 1;
        Ok(())
    }
}

/// Streams a large regular file into a content writer, `STREAM_CHUNK` bytes at a time.
fn stream_regular_file<R: Read>(
    repo: &ostree::Repo,
    entry: &mut tar::Entry<'_, R>,
    object: &ObjectEntry<'_>,
    (uid, gid, mode): (u32, u32, u32),
    size: u64,
    xattrs: &glib::Variant,
) -> Result<(), ImportError> {
    let writer = repo
        .write_regfile(Some(object.checksum), uid, gid, mode, size, Some(xattrs))
        .map_err(|error| object.write_error(&error))?;
    let mut buffer = vec![0u8; STREAM_CHUNK];
    let mut remaining = size;
    while remaining > 0 {
        let wanted = usize::try_from(remaining.min(STREAM_CHUNK as u64)).unwrap_or(STREAM_CHUNK);
        let read =
            entry.read(&mut buffer[..wanted]).map_err(|error| object.error(format!("reading: {error}")))?;
        if read == 0 {
            return Err(object.error(format!("truncated: {remaining} of {size} bytes missing")));
        }
        writer
            .write_all(&buffer[..read], gio::Cancellable::NONE)
            .map_err(|error| object.write_error(&error))?;
        remaining -= read as u64;
    }
    writer.finish(gio::Cancellable::NONE).map_err(|error| object.write_error(&error))?;
    Ok(())
}

/// The object an entry holds, for error messages.
struct ObjectEntry<'a> {
    digest: &'a str,
    path: &'a str,
    checksum: &'a str,
}

impl ObjectEntry<'_> {
    fn error(&self, message: impl Into<String>) -> ImportError {
        ImportError::Entry {
            digest: self.digest.to_string(),
            path: self.path.to_string(),
            message: message.into(),
        }
    }

    fn corrupted(&self, detail: String) -> ImportError {
        ImportError::CorruptedObject { digest: self.digest.to_string(), path: self.path.to_string(), detail }
    }

    fn write_error(&self, error: &glib::Error) -> ImportError {
        match corruption_detail(error) {
            Some(detail) => self.corrupted(detail),
            None => self.error(format!("writing the object: {error}")),
        }
    }
}

fn expect_regular<R: Read>(entry: &tar::Entry<'_, R>, object: &ObjectEntry<'_>) -> Result<(), ImportError> {
    match entry.header().entry_type() {
        tar::EntryType::Regular => Ok(()),
        other => Err(object.error(format!("unsupported tar entry type {other:?} (expected a regular file)"))),
    }
}

/// Reads a whole entry of at most `limit` bytes.
fn read_bounded<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    object: &ObjectEntry<'_>,
    limit: u64,
) -> Result<Vec<u8>, ImportError> {
    let size = entry.size();
    if size > limit {
        return Err(
            object.error(format!("{size} bytes, more than the {limit} allowed for this kind of object"))
        );
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
    entry.read_to_end(&mut bytes).map_err(|error| object.error(format!("reading: {error}")))?;
    if bytes.len() as u64 != size {
        return Err(object.error(format!("truncated: {} of {size} bytes", bytes.len())));
    }
    Ok(bytes)
}

/// Metadata and `.file-xattrs` objects are named by the SHA-256 of their bytes.
fn check_sha256(bytes: &[u8], object: &ObjectEntry<'_>) -> Result<(), ImportError> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != object.checksum {
        return Err(object.corrupted(format!("checksum expected={} actual={actual}", object.checksum)));
    }
    Ok(())
}

/// A serialized GVariant of type `type_string`, which must be in normal form (what ostree writes).
fn parse_variant(
    bytes: &[u8],
    type_string: &'static str,
    object: &ObjectEntry<'_>,
) -> Result<glib::Variant, ImportError> {
    let variant_type = glib::VariantTy::new(type_string)
        .map_err(|_| object.error(format!("internal error: invalid GVariant type {type_string}")))?;
    let variant = glib::Variant::from_bytes_with_type(&glib::Bytes::from(bytes), variant_type);
    if !variant.is_normal_form() {
        return Err(object.error(format!("not a serialized {type_string} GVariant in normal form")));
    }
    Ok(variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKSUM: &str = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

    #[test]
    fn variant_types_are_valid() {
        for text in [
            XATTRS_VARIANT_TYPE,
            DIRTREE_VARIANT_TYPE,
            DIRMETA_VARIANT_TYPE,
            COMMIT_VARIANT_TYPE,
            COMMITMETA_VARIANT_TYPE,
        ] {
            assert_eq!(glib::VariantTy::new(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn object_paths_are_recognized() {
        let path = format!("sysroot/ostree/repo/objects/{}/{}.file", &CHECKSUM[..2], &CHECKSUM[2..]);
        let relative = object_relative_path(path.as_bytes()).unwrap();
        assert_eq!(parse_object_name(relative).unwrap(), (CHECKSUM.to_string(), ObjectKind::File));
        let dotted = format!("./{path}");
        assert!(object_relative_path(dotted.as_bytes()).is_some());
        assert!(object_relative_path(b"usr/bin/bash").is_none());
        assert!(object_relative_path(b"sysroot/ostree/repo/config").is_none());
        for kind in ["file-xattrs", "file-xattrs-link", "dirtree", "dirmeta", "commit", "commitmeta"] {
            let name = format!("{}/{}.{kind}", &CHECKSUM[..2], &CHECKSUM[2..]);
            assert!(parse_object_name(name.as_bytes()).is_ok(), "{kind}");
        }
    }

    #[test]
    fn bad_object_names_are_errors() {
        let rest = &CHECKSUM[2..];
        for name in [
            format!("ab/{rest}"),
            format!("abc/{rest}.file"),
            format!("ab/{}.file", &rest[1..]),
            format!("AB/{rest}.file"),
            format!("ab/{rest}.payload-link"),
            "ab".to_string(),
            format!("ab/../{rest}.file"),
        ] {
            assert!(parse_object_name(name.as_bytes()).is_err(), "{name}");
        }
        assert!(parse_object_name(b"ab/\xff\xfe.file").is_err());
    }

    #[test]
    fn corruption_messages_are_shortened() {
        let error = glib::Error::new(
            gio::IOErrorEnum::Failed,
            "Corrupted file object; checksum expected='aa' actual='bb'",
        );
        assert_eq!(corruption_detail(&error).unwrap(), "checksum expected=aa actual=bb");
        let other = glib::Error::new(gio::IOErrorEnum::Failed, "No space left");
        assert!(corruption_detail(&other).is_none());
    }

    #[test]
    fn fsck_summary_keeps_count_and_verdict() {
        let output = "Validating refs...\nEnumerating commits...\nfsck objects (1/7) 14%\n\
                      fsck objects (7/7) 100%\nobject fsck of 1 commits completed successfully - no errors found.\n";
        assert_eq!(
            fsck_summary(output),
            "7 objects checked; object fsck of 1 commits completed successfully - no errors found."
        );
        assert_eq!(fsck_summary(""), "no output");
    }

    #[test]
    fn media_types_choose_the_decompressor() {
        let descriptor = |media_type: &str| Descriptor {
            media_type: media_type.to_string(),
            digest: format!("sha256:{CHECKSUM}"),
            size: 0,
            platform: None,
            annotations: BTreeMap::new(),
        };
        assert_eq!(Compression::of(&descriptor(LAYER_GZIP_MEDIA_TYPE)).unwrap(), Compression::Gzip);
        assert_eq!(Compression::of(&descriptor(DOCKER_LAYER_MEDIA_TYPE)).unwrap(), Compression::Gzip);
        assert_eq!(Compression::of(&descriptor(LAYER_ZSTD_MEDIA_TYPE)).unwrap(), Compression::Zstd);
        assert_eq!(Compression::of(&descriptor(LAYER_TAR_MEDIA_TYPE)).unwrap(), Compression::None);
        let error = Compression::of(&descriptor("application/x-lzma")).unwrap_err().to_string();
        assert!(error.contains("application/x-lzma"), "{error}");
    }
}
