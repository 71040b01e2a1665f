//! Multi-architecture images: images composed separately per architecture, joined into one image index
//! whose entries carry their platform, so each client pulls the manifest for its own architecture.

use std::collections::BTreeMap;

use super::layout::{
    Descriptor, IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, ImageIndex, ImageManifest, LayoutError,
    OciDirectory, Platform, canonical_json,
};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("two images are for {architecture}/{os}: {first} and {second}; an index holds one per platform")]
    SamePlatform { architecture: String, os: String, first: String, second: String },
    #[error(
        "{digest} is not an image manifest ({media_type}); only single-architecture images can be joined"
    )]
    NotAnImage { digest: String, media_type: String },
    #[error("no images to join")]
    Empty,
}

/// Copies every source image into `destination` and tags an index of them there; returns its descriptor.
/// Entries are ordered by platform, so the same images always give the same index digest.
pub fn join_images(
    destination: &OciDirectory,
    tag: &str,
    sources: &[(OciDirectory, Descriptor)],
) -> Result<Descriptor, JoinError> {
    if sources.is_empty() {
        return Err(JoinError::Empty);
    }
    let mut entries: BTreeMap<(String, String), Descriptor> = BTreeMap::new();
    for (source, descriptor) in sources {
        if descriptor.media_type != IMAGE_MANIFEST_MEDIA_TYPE {
            return Err(JoinError::NotAnImage {
                digest: descriptor.digest.clone(),
                media_type: descriptor.media_type.clone(),
            });
        }
        let manifest = destination.copy_image_from(source, descriptor)?;
        let platform = read_platform(source, &manifest)?;
        let key = (platform.architecture.clone(), platform.os.clone());
        let entry = Descriptor {
            media_type: IMAGE_MANIFEST_MEDIA_TYPE.to_string(),
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            platform: Some(platform),
            annotations: BTreeMap::new(),
        };
        if let Some(previous) = entries.insert(key.clone(), entry) {
            return Err(JoinError::SamePlatform {
                architecture: key.0,
                os: key.1,
                first: previous.digest,
                second: descriptor.digest.clone(),
            });
        }
    }
    let index = ImageIndex { manifests: entries.into_values().collect(), ..ImageIndex::empty() };
    let written = destination.write_blob(IMAGE_INDEX_MEDIA_TYPE, &canonical_json(&index))?;
    destination.set_tag(tag, written.clone())?;
    Ok(written)
}

/// The platform an image's configuration names. Only `architecture` and `os` are read: they are all an
/// index entry needs, and images of other tools may leave out what arbor's own always write (`created`).
fn read_platform(directory: &OciDirectory, manifest: &ImageManifest) -> Result<Platform, LayoutError> {
    let bytes = directory.read_blob(&manifest.config.digest)?;
    serde_json::from_slice(&bytes).map_err(|error| LayoutError::Malformed {
        path: directory.blob_path(&manifest.config.digest).unwrap_or_default(),
        what: "image configuration",
        message: error.to_string(),
    })
}
