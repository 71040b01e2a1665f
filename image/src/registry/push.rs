//! Pushing an image from an OCI layout: blobs the registry lacks (several at a time), then the
//! child manifests of an index by digest, then the tag, only once everything it references is there.

use super::client::{Access, Session};
use super::layout::{self, Descriptor, Manifest, ManifestKind};
use super::{RegistryError, RegistryOptions, RegistryReference};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The digest of the manifest (or index) the destination tag now names.
    pub manifest_digest: String,
    /// Blobs (configs and layers) uploaded, and their bytes.
    pub blobs_uploaded: usize,
    pub bytes_uploaded: u64,
    /// Blobs the registry already had, and their bytes.
    pub blobs_present: usize,
    pub bytes_present: u64,
}

/// A blob of the layout to make present in the registry.
#[derive(Debug)]
struct LocalBlob {
    digest: String,
    size: u64,
    path: PathBuf,
}

/// The manifests of an image (children before their index, the top last) and every blob they
/// reference, read from the layout and checked against their descriptors.
fn collect_image(
    layout_dir: &Path,
    top: &Descriptor,
) -> Result<(Vec<Manifest>, Vec<LocalBlob>), RegistryError> {
    let mut manifests = Vec::new();
    let mut blobs: BTreeMap<String, LocalBlob> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    // Depth-first; a manifest is emitted after its children (post-order).
    let mut stack: Vec<(Descriptor, usize, bool)> = vec![(top.clone(), 0, false)];
    let mut pending: BTreeMap<String, Manifest> = BTreeMap::new();
    while let Some((descriptor, depth, expanded)) = stack.pop() {
        if expanded {
            if let Some(manifest) = pending.remove(&descriptor.digest) {
                manifests.push(manifest);
            }
            continue;
        }
        if !seen.insert(descriptor.digest.clone()) {
            continue;
        }
        let (manifest, references) = layout::read_manifest(layout_dir, &descriptor)?;
        if manifest.kind == ManifestKind::Index && depth >= layout::MAXIMUM_INDEX_DEPTH {
            return Err(RegistryError::Layout {
                path: layout::blob_path(layout_dir, &descriptor.digest)?,
                reason: format!("indexes nest deeper than {}", layout::MAXIMUM_INDEX_DEPTH),
            });
        }
        for blob in references.blobs {
            let path = layout::blob_path(layout_dir, &blob.digest)?;
            let metadata = std::fs::metadata(&path).map_err(|error| RegistryError::Layout {
                path: path.clone(),
                reason: format!("blob {} of manifest {} is missing: {error}", blob.digest, manifest.digest),
            })?;
            if metadata.len() != blob.size {
                return Err(RegistryError::Layout {
                    path,
                    reason: format!(
                        "has {} bytes, but manifest {} says {}",
                        metadata.len(),
                        manifest.digest,
                        blob.size
                    ),
                });
            }
            blobs.entry(blob.digest.clone()).or_insert(LocalBlob {
                digest: blob.digest,
                size: blob.size,
                path,
            });
        }
        stack.push((descriptor.clone(), depth, true));
        for child in references.manifests.into_iter().rev() {
            stack.push((child, depth + 1, false));
        }
        pending.insert(descriptor.digest, manifest);
    }
    Ok((manifests, blobs.into_values().collect()))
}

/// Pushes the image tagged `layout_tag` in the OCI layout `layout_dir` (the only image when
/// `None`) to `destination` (its tag; `latest` when it has none).
pub async fn push_layout(
    layout_dir: &Path,
    layout_tag: Option<&str>,
    destination: &RegistryReference,
    options: &RegistryOptions,
) -> Result<PushReport, RegistryError> {
    let top = layout::select_entry(layout_dir, layout_tag)?;
    if let Some(expected) = destination.digest.as_deref().filter(|expected| *expected != top.digest) {
        return Err(RegistryError::DestinationDigest {
            destination: destination.to_string(),
            expected: expected.to_string(),
            actual: top.digest.clone(),
        });
    }
    let (manifests, blobs) = collect_image(layout_dir, &top)?;
    let session = Session::open(destination, options, Access::Push).await?;
    tracing::info!(
        registry = %session.registry,
        repository = %session.repository,
        image.digest = %top.digest,
        blobs = blobs.len(),
        manifests = manifests.len(),
        "pushing"
    );

    let mut report = PushReport { manifest_digest: top.digest.clone(), ..PushReport::default() };
    let session = &session;
    let mut transfers = futures_util::stream::iter(blobs.iter())
        .map(|blob| async move {
            if session.blob_exists(&blob.digest).await? {
                return Ok::<_, RegistryError>((blob, false));
            }
            session.upload_blob(&blob.path, &blob.digest, blob.size).await?;
            Ok((blob, true))
        })
        .buffer_unordered(options.concurrent_uploads.max(1));
    // The first failure ends the push: dropping the stream cancels the transfers in flight.
    while let Some(outcome) = transfers.next().await {
        let (blob, uploaded) = outcome?;
        if uploaded {
            report.blobs_uploaded += 1;
            report.bytes_uploaded += blob.size;
        } else {
            report.blobs_present += 1;
            report.bytes_present += blob.size;
        }
    }
    drop(transfers);

    // Children by digest, then the top manifest by tag: the tag appears only once all is there.
    let (top_manifest, children) = match manifests.split_last() {
        Some((top_manifest, children)) => (top_manifest, children),
        None => {
            return Err(RegistryError::Layout {
                path: layout_dir.join("index.json"),
                reason: "no manifest to push".to_string(),
            });
        }
    };
    for child in children {
        session.put_manifest(&child.digest, child).await?;
    }
    session.put_manifest(destination.push_reference(), top_manifest).await?;
    tracing::info!(
        registry = %session.registry,
        repository = %session.repository,
        image.digest = %report.manifest_digest,
        blobs_uploaded = report.blobs_uploaded,
        bytes_uploaded = report.bytes_uploaded,
        blobs_present = report.blobs_present,
        "pushed"
    );
    Ok(report)
}
