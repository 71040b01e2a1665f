//! Fetching manifests and blobs, and pulling a whole image (every platform of an index) into an OCI
//! layout: blobs verified and renamed into place, manifests next, `index.json` last.

use super::client::{Access, Session};
use super::layout::{self, Descriptor, Manifest};
use super::{RegistryError, RegistryOptions, RegistryReference};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The largest blob [`fetch_blob`] keeps in memory: image configs are kilobytes, even with a
/// history entry per layer; anything this large is not a config.
pub const MAXIMUM_FETCHED_BLOB_BYTES: u64 = 64 * 1024 * 1024;

/// A manifest as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledManifest {
    /// `sha256:` of `bytes`, checked against the reference's digest or the registry's
    /// `Docker-Content-Digest`.
    pub digest: String,
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

impl From<Manifest> for PulledManifest {
    fn from(manifest: Manifest) -> Self {
        Self { digest: manifest.digest, media_type: manifest.media_type, bytes: manifest.bytes }
    }
}

/// Fetches the manifest (or index) `source` names: by digest when it has one, else by tag.
pub async fn fetch_manifest(
    source: &RegistryReference,
    options: &RegistryOptions,
) -> Result<PulledManifest, RegistryError> {
    let session = Session::open(source, options, Access::Pull).await?;
    let manifest = session.get_manifest(source.pull_reference()).await?;
    tracing::debug!(registry = %session.registry, image.digest = %manifest.digest, "fetched manifest");
    Ok(manifest.into())
}

/// Fetches a small blob (an image config) of `source`'s repository into memory, verified against
/// `digest`; refuses blobs over [`MAXIMUM_FETCHED_BLOB_BYTES`].
pub async fn fetch_blob(
    source: &RegistryReference,
    digest: &str,
    options: &RegistryOptions,
) -> Result<Vec<u8>, RegistryError> {
    super::reference::validate_digest(digest).map_err(|reason| RegistryError::InvalidReference {
        reference: format!("{source}@{digest}"),
        reason,
    })?;
    let session = Session::open(source, options, Access::Pull).await?;
    session.get_blob(digest, MAXIMUM_FETCHED_BLOB_BYTES).await
}

/// Pulls `source` into the OCI layout `layout_dir` (created or extended) as tag `layout_tag`.
/// Blobs already in the layout are not downloaded again; every platform of an index is pulled.
pub async fn pull_to_layout(
    source: &RegistryReference,
    layout_dir: &Path,
    layout_tag: &str,
    options: &RegistryOptions,
) -> Result<PulledManifest, RegistryError> {
    layout::prepare_layout(layout_dir)?;
    let session = Session::open(source, options, Access::Pull).await?;
    let top = session.get_manifest(source.pull_reference()).await?;
    let url = format!("{source}");
    let (top, top_references) = reparse(top, &url)?;

    // Walk the index tree: every manifest (children first, top last) and every blob.
    let mut manifests: Vec<Manifest> = Vec::new();
    let mut blobs: BTreeMap<String, Descriptor> = BTreeMap::new();
    let mut seen = BTreeSet::from([top.digest.clone()]);
    let mut level: Vec<(Manifest, layout::References)> = vec![(top.clone(), top_references)];
    for depth in 0..=layout::MAXIMUM_INDEX_DEPTH {
        let mut next = Vec::new();
        for (manifest, references) in level {
            for blob in references.blobs {
                blobs.entry(blob.digest.clone()).or_insert(blob);
            }
            for child in references.manifests {
                if !seen.insert(child.digest.clone()) {
                    continue;
                }
                let fetched = match local_manifest(layout_dir, &child) {
                    Some(local) => local,
                    None => session.get_manifest(&child.digest).await?,
                };
                next.push(reparse(fetched, &format!("{}@{}", url, child.digest))?);
            }
            manifests.push(manifest);
        }
        if next.is_empty() {
            break;
        }
        if depth == layout::MAXIMUM_INDEX_DEPTH {
            return Err(RegistryError::InvalidManifest {
                url,
                reason: format!("indexes nest deeper than {}", layout::MAXIMUM_INDEX_DEPTH),
            });
        }
        level = next;
    }

    let mut missing = Vec::new();
    for blob in blobs.values() {
        if !layout::has_blob(layout_dir, blob)? {
            missing.push((blob, layout::blob_path(layout_dir, &blob.digest)?));
        }
    }
    tracing::info!(
        registry = %session.registry,
        image.digest = %top.digest,
        blobs = blobs.len(),
        missing = missing.len(),
        "pulling"
    );
    let session = &session;
    let mut downloads = futures_util::stream::iter(missing.iter())
        .map(|(blob, path)| session.download_blob(&blob.digest, blob.size, path))
        .buffer_unordered(options.concurrent_uploads.max(1));
    while let Some(outcome) = downloads.next().await {
        outcome?;
    }
    drop(downloads);

    // Manifests after the blobs they reference (children before their index), index.json last.
    for manifest in manifests.iter().rev() {
        let path = layout::blob_path(layout_dir, &manifest.digest)?;
        if !layout::has_blob(layout_dir, &manifest.descriptor())? {
            layout::write_atomically(&path, &manifest.bytes)?;
        }
    }
    layout::set_index_entry(layout_dir, layout_tag, &top)?;
    Ok(top.into())
}

/// The manifest with what it references (the kind decides whether children or blobs follow).
fn reparse(manifest: Manifest, url: &str) -> Result<(Manifest, layout::References), RegistryError> {
    let media_type = manifest.media_type.clone();
    Manifest::parse(manifest.bytes, Some(&media_type))
        .map_err(|reason| RegistryError::InvalidManifest { url: url.to_string(), reason })
}

/// A child manifest already in the layout (verified), to skip fetching it again.
fn local_manifest(layout_dir: &Path, descriptor: &Descriptor) -> Option<Manifest> {
    layout::read_manifest(layout_dir, descriptor).ok().map(|(manifest, _)| manifest)
}
