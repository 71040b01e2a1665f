//! Encapsulation: an ostree commit becomes an OCI image in ostree-ext's "chunked v1" format (commit layer
//! first, then one layer per planned chunk), written into an OCI layout with deterministic bytes: the same
//! commit, plan and options give the same layer digests and the same manifest digest on any machine.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chunking::{ChunkPlan, PlanOptions, PriorLayout, expected_download, plan_layers_with_sources};
use super::commit_tree::{CommitTree, CommitTreeError};
use super::components::{ComponentsError, commit_components};
use super::compress::{Compression, compress_layers};
use super::export::{ExportError, write_chunk_layer, write_commit_layer};
use super::layout::{
    Descriptor, IMAGE_CONFIG_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, ImageManifest, LayoutError, OciDirectory,
    canonical_json,
};
use super::tar_writer::TarWriter;
use common::blocking::Cancellation;
use common::time::format_utc;

/// ostree-ext's default: half of the ~128 layers overlay-based storage handles.
pub const DEFAULT_MAX_LAYERS: usize = 64;
/// docker's overlay2 fails with "max depth exceeded" above 127 + 1 layers.
pub const MAX_LAYERS_LIMIT: usize = 127;
/// Fewer layers than this leave nothing to plan (commit layer + special components + packages).
pub const MIN_LAYERS: usize = 5;
/// At most this share of components may change layers in one build (bounded churn against the prior).
pub const MAX_MOVED_FRACTION: f64 = 0.1;

pub const LABEL_COMMIT: &str = "ostree.commit";
pub const LABEL_FINAL_DIFF_ID: &str = "ostree.final-diffid";
pub const LABEL_VERSION: &str = "org.opencontainers.image.version";
pub const LABEL_BOOTABLE: &str = "ostree.bootable";
pub const LABEL_BOOTC: &str = "containers.bootc";
pub const LABEL_LINUX: &str = "ostree.linux";
pub const LABEL_INPUT_HASH: &str = "rpmostree.inputhash";
/// Chunk layers name their components here (sorted package names, comma-separated).
pub const ANNOTATION_COMPONENTS: &str = "ostree.components";

#[derive(Debug, thiserror::Error)]
pub enum EncapsulateError {
    #[error("reading commit {commit}: {source}")]
    Commit { commit: String, source: CommitTreeError },
    #[error("finding the packages of commit {commit}: {source}")]
    Components { commit: String, source: ComponentsError },
    #[error("writing the layers of commit {commit}: {source}")]
    Layers { commit: String, source: io::Error },
    #[error("writing the image: {0}")]
    Layout(#[from] LayoutError),
    #[error("--max-layers {requested}: must be between {MIN_LAYERS} and {MAX_LAYERS_LIMIT}")]
    MaxLayers { requested: usize },
    #[error("opening ostree repository {path}: {message}")]
    Repository { path: std::path::PathBuf, message: String },
    #[error("encapsulation was cancelled")]
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct EncapsulateOptions {
    pub compression: Compression,
    /// Layers in the image, the commit layer included.
    pub max_layers: usize,
    /// Extra labels (and manifest annotations); they win over the ones derived from the commit.
    pub labels: BTreeMap<String, String>,
    /// The previous build's layout, kept where it costs less than re-planning.
    pub prior: Option<PriorLayout>,
    /// OCI architecture name (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Compression threads; 0 means one per core.
    pub threads: usize,
}

impl Default for EncapsulateOptions {
    fn default() -> Self {
        EncapsulateOptions {
            compression: Compression::Gzip,
            max_layers: DEFAULT_MAX_LAYERS,
            labels: BTreeMap::new(),
            prior: None,
            architecture: oci_architecture(std::env::consts::ARCH).to_string(),
            threads: 0,
        }
    }
}

/// The OCI name of an rpm / kernel architecture.
pub fn oci_architecture(architecture: &str) -> &str {
    match architecture {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i386" => "386",
        other => other,
    }
}

/// One layer of the written image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub uncompressed_size: u64,
    pub description: String,
    pub components: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EncapsulatedImage {
    pub commit: String,
    pub manifest: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub config: Descriptor,
    pub layers: Vec<LayerReport>,
    pub plan_warnings: Vec<String>,
    /// The planner's expected client download per update (bytes, weighted by change probability).
    pub expected_download: f64,
}

/// The image configuration (image-spec config.md), ordered for deterministic JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfiguration {
    pub created: String,
    pub architecture: String,
    pub os: String,
    pub config: RuntimeConfiguration,
    pub rootfs: RootFilesystem,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfiguration {
    #[serde(rename = "Labels", default)]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFilesystem {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub created: String,
    pub created_by: String,
}

/// The chunk layout of a previous image (its layers after the commit layer), or why it cannot be used.
pub fn prior_layout_from_manifest(manifest: &ImageManifest) -> Result<PriorLayout, String> {
    let mut layers = Vec::new();
    for (index, layer) in manifest.layers.iter().enumerate().skip(1) {
        let Some(components) = layer.annotations.get(ANNOTATION_COMPONENTS) else {
            return Err(format!(
                "layer {index} ({}) has no {ANNOTATION_COMPONENTS} annotation",
                layer.digest
            ));
        };
        layers.push(components.split(',').filter(|name| !name.is_empty()).map(str::to_string).collect());
    }
    if layers.is_empty() {
        return Err("the image has no chunk layers".to_string());
    }
    Ok(PriorLayout { layers })
}

/// Writes `commit` as an image into `directory` under `tag` (see the module documentation).
pub fn encapsulate_commit(
    repo: &ostree::Repo,
    commit: &str,
    directory: &OciDirectory,
    tag: &str,
    options: &EncapsulateOptions,
) -> Result<EncapsulatedImage, EncapsulateError> {
    encapsulate_commit_cancellable(repo, commit, directory, tag, options, &Cancellation::default())
}

/// Opens the repository at `repo_path` and encapsulates `commit` from it (for callers without libostree).
pub fn encapsulate_repository_commit(
    repo_path: &Path,
    commit: &str,
    directory: &OciDirectory,
    tag: &str,
    options: &EncapsulateOptions,
    cancellation: &Cancellation,
) -> Result<EncapsulatedImage, EncapsulateError> {
    let repo = ostree::Repo::new_for_path(repo_path);
    repo.open(ostree::gio::Cancellable::NONE).map_err(|error| EncapsulateError::Repository {
        path: repo_path.to_path_buf(),
        message: error.to_string(),
    })?;
    encapsulate_commit_cancellable(&repo, commit, directory, tag, options, cancellation)
}

pub fn encapsulate_commit_cancellable(
    repo: &ostree::Repo,
    commit: &str,
    directory: &OciDirectory,
    tag: &str,
    options: &EncapsulateOptions,
    cancellation: &Cancellation,
) -> Result<EncapsulatedImage, EncapsulateError> {
    if !(MIN_LAYERS..=MAX_LAYERS_LIMIT).contains(&options.max_layers) {
        return Err(EncapsulateError::MaxLayers { requested: options.max_layers });
    }
    let commit_error = |source| EncapsulateError::Commit { commit: commit.to_string(), source };
    let tree = CommitTree::read(repo, commit).map_err(commit_error)?;
    let scratch = tempfile::tempdir()
        .map_err(|source| EncapsulateError::Layers { commit: commit.to_string(), source })?;
    let components = commit_components(repo, &tree, scratch.path())
        .map_err(|source| EncapsulateError::Components { commit: commit.to_string(), source })?;
    let plan_options =
        PlanOptions { max_layers: options.max_layers - 1, max_moved_fraction: MAX_MOVED_FRACTION };
    let plan = plan_layers_with_sources(
        &components.components,
        &components.sources,
        options.prior.as_ref(),
        &plan_options,
    );
    for warning in &plan.warnings {
        tracing::warn!(commit, "previous build's layout: {warning}");
    }
    let layer_objects = objects_per_layer(&plan, &components.objects);

    let workers = match options.threads {
        0 => std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        threads => threads,
    };
    let create_file = || directory.temporary_file().map_err(|error| io::Error::other(error.to_string()));
    let cancelled = || cancellation.is_cancelled();
    let layers_error = |source| EncapsulateError::Layers { commit: commit.to_string(), source };
    let ((), compressed) = compress_layers(options.compression, workers, &create_file, |pipeline| {
        let export_error = |error: ExportError| match error {
            ExportError::Write(error) => error,
            other => io::Error::other(other.to_string()),
        };
        let mut stream = pipeline.begin_layer()?;
        let mut tar = TarWriter::new(&mut stream);
        write_commit_layer(&mut tar, repo, &tree, &[]).map_err(export_error)?;
        tar.finish()?;
        stream.finish()?;
        for objects in &layer_objects {
            let mut stream = pipeline.begin_layer()?;
            let mut tar = TarWriter::new(&mut stream);
            write_chunk_layer(&mut tar, repo, &tree, objects, &cancelled).map_err(export_error)?;
            tar.finish()?;
            stream.finish()?;
        }
        Ok(())
    })
    .map_err(|error| {
        if cancellation.is_cancelled() { EncapsulateError::Cancelled } else { layers_error(error) }
    })?;

    let created = format_utc(tree.timestamp);
    let labels = image_labels(&tree, compressed.last().map(|layer| layer.diff_id.as_str()), &options.labels);
    let mut layer_descriptors = Vec::new();
    let mut reports = Vec::new();
    let mut history = Vec::new();
    for (index, layer) in compressed.into_iter().enumerate() {
        let planned = index.checked_sub(1).and_then(|chunk| plan.layers.get(chunk));
        let description = match planned {
            Some(planned) => planned.description.clone(),
            None if tree.subject.is_empty() => format!("ostree export of commit {commit}"),
            None => tree.subject.clone(),
        };
        let mut annotations = BTreeMap::new();
        if let Some(planned) = planned {
            annotations.insert(ANNOTATION_COMPONENTS.to_string(), planned.components.join(","));
        }
        layer_descriptors.push(Descriptor {
            media_type: options.compression.media_type().to_string(),
            digest: layer.digest.clone(),
            size: layer.size,
            platform: None,
            annotations,
        });
        history.push(HistoryEntry { created: created.clone(), created_by: description.clone() });
        reports.push(LayerReport {
            digest: layer.digest.clone(),
            diff_id: layer.diff_id.clone(),
            size: layer.size,
            uncompressed_size: layer.uncompressed_size,
            description,
            components: planned.map(|planned| planned.components.clone()).unwrap_or_default(),
        });
        if !directory.has_blob(&layer.digest) {
            let (_, path) = layer.file.keep().map_err(|error| layers_error(error.error))?;
            directory.adopt_blob(&path, &layer.digest)?;
        }
    }
    let configuration = ImageConfiguration {
        created,
        architecture: options.architecture.clone(),
        os: "linux".to_string(),
        config: RuntimeConfiguration { labels: labels.clone(), command: None },
        rootfs: RootFilesystem {
            kind: "layers".to_string(),
            diff_ids: reports.iter().map(|layer| layer.diff_id.clone()).collect(),
        },
        history,
    };
    let config = directory.write_blob(IMAGE_CONFIG_MEDIA_TYPE, &canonical_json(&configuration))?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(IMAGE_MANIFEST_MEDIA_TYPE.to_string()),
        config: config.clone(),
        layers: layer_descriptors,
        annotations: labels,
    };
    let manifest_bytes = canonical_json(&manifest);
    let mut manifest_descriptor = directory.write_blob(IMAGE_MANIFEST_MEDIA_TYPE, &manifest_bytes)?;
    directory.set_tag(tag, manifest_descriptor.clone())?;
    manifest_descriptor.annotations.clear();
    tracing::info!(
        commit,
        image.digest = %manifest_descriptor.digest,
        layers = reports.len(),
        "image written"
    );
    Ok(EncapsulatedImage {
        commit: commit.to_string(),
        manifest: manifest_descriptor,
        manifest_bytes,
        config,
        layers: reports,
        expected_download: expected_download(&plan, &components.components),
        plan_warnings: plan.warnings,
    })
}

/// The content objects of each planned chunk layer, sorted by checksum.
fn objects_per_layer<'a>(plan: &ChunkPlan, objects: &'a BTreeMap<String, Vec<String>>) -> Vec<Vec<&'a str>> {
    plan.layers
        .iter()
        .map(|layer| {
            let mut checksums: Vec<&str> = layer
                .components
                .iter()
                .filter_map(|component| objects.get(component))
                .flatten()
                .map(String::as_str)
                .collect();
            checksums.sort_unstable();
            checksums.dedup();
            checksums
        })
        .collect()
}

/// The labels ostree-ext clients read, from the commit's metadata, plus `extra`.
fn image_labels(
    tree: &CommitTree,
    final_diff_id: Option<&str>,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_COMMIT.to_string(), tree.commit.clone());
    if let Some(diff_id) = final_diff_id {
        labels.insert(LABEL_FINAL_DIFF_ID.to_string(), diff_id.to_string());
    }
    if let Some(version) = tree.version() {
        labels.insert(LABEL_VERSION.to_string(), version);
    }
    if tree.bool_metadata(LABEL_BOOTABLE) == Some(true) {
        labels.insert(LABEL_BOOTABLE.to_string(), "true".to_string());
        labels.insert(LABEL_BOOTC.to_string(), "1".to_string());
    }
    for key in [LABEL_LINUX, LABEL_INPUT_HASH] {
        if let Some(value) = tree.string_metadata(key) {
            labels.insert(key.to_string(), value);
        }
    }
    labels.extend(extra.iter().map(|(key, value)| (key.clone(), value.clone())));
    labels
}

/// Reads the configuration blob of `manifest` from `directory`.
pub fn read_configuration(
    directory: &OciDirectory,
    manifest: &ImageManifest,
) -> Result<ImageConfiguration, LayoutError> {
    let bytes = directory.read_blob(&manifest.config.digest)?;
    serde_json::from_slice(&bytes).map_err(|error| LayoutError::Malformed {
        path: directory.blob_path(&manifest.config.digest).unwrap_or_else(|_| Path::new("").to_path_buf()),
        what: "image configuration",
        message: error.to_string(),
    })
}
