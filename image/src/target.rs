//! Where images are read from and written to: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` and
//! `registry:HOST/REPO:TAG` (also `docker://HOST/REPO:TAG`, as skopeo spells it).

use std::fmt;
use std::path::{Path, PathBuf};

use super::encapsulate::{ImageConfiguration, read_configuration};
use super::layout::{ImageManifest, LayoutError, OciDirectory, extract_archive, write_archive};
use super::registry::{
    RegistryError, RegistryOptions, RegistryReference, fetch_blob, fetch_manifest, pull_to_layout,
    push_layout,
};

/// The tag an `oci:` or `oci-archive:` target gets when it names none.
pub const DEFAULT_TAG: &str = "latest";
/// Configs are small JSON documents; anything bigger is not one.
const CONFIG_SIZE_LIMIT: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "{text:?} is not an image target: use oci:DIR[:TAG], oci-archive:FILE[:TAG] or registry:HOST/REPO:TAG"
    )]
    Unknown { text: String },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{target}: {message}")]
    Malformed { target: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageTarget {
    Directory { path: PathBuf, tag: Option<String> },
    Archive { path: PathBuf, tag: Option<String> },
    Registry(RegistryReference),
}

impl fmt::Display for ImageTarget {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageTarget::Directory { path, tag } => write!(formatter, "oci:{}", with_tag(path, tag)),
            ImageTarget::Archive { path, tag } => write!(formatter, "oci-archive:{}", with_tag(path, tag)),
            ImageTarget::Registry(reference) => write!(formatter, "registry:{reference}"),
        }
    }
}

fn with_tag(path: &Path, tag: &Option<String>) -> String {
    match tag {
        Some(tag) => format!("{}:{tag}", path.display()),
        None => path.display().to_string(),
    }
}

/// Splits `DIR:TAG`; a colon followed by something that cannot be a tag stays in the path.
fn split_tag(text: &str) -> (PathBuf, Option<String>) {
    match text.rsplit_once(':') {
        Some((path, tag))
            if !path.is_empty()
                && !tag.is_empty()
                && tag
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || "._-".contains(character)) =>
        {
            (PathBuf::from(path), Some(tag.to_string()))
        }
        _ => (PathBuf::from(text), None),
    }
}

impl ImageTarget {
    pub fn parse(text: &str) -> Result<ImageTarget, TargetError> {
        let unknown = || TargetError::Unknown { text: text.to_string() };
        if let Some(rest) = text.strip_prefix("oci:") {
            let (path, tag) = split_tag(rest);
            return Ok(ImageTarget::Directory { path, tag });
        }
        if let Some(rest) = text.strip_prefix("oci-archive:") {
            let (path, tag) = split_tag(rest);
            return Ok(ImageTarget::Archive { path, tag });
        }
        if let Some(rest) = text.strip_prefix("registry:").or_else(|| text.strip_prefix("docker://")) {
            return Ok(ImageTarget::Registry(RegistryReference::parse(rest.trim_start_matches("//"))?));
        }
        Err(unknown())
    }

    fn local_tag(&self) -> Option<&str> {
        match self {
            ImageTarget::Directory { tag, .. } | ImageTarget::Archive { tag, .. } => tag.as_deref(),
            ImageTarget::Registry(_) => None,
        }
    }
}

/// An image manifest with its digest and configuration.
#[derive(Debug, Clone)]
pub struct ImageDescription {
    pub digest: String,
    pub manifest: ImageManifest,
    pub configuration: ImageConfiguration,
}

fn malformed(target: &ImageTarget, message: impl fmt::Display) -> TargetError {
    TargetError::Malformed { target: target.to_string(), message: message.to_string() }
}

/// Reads the manifest and configuration of `target` (no layers are fetched). `scratch` holds an extracted
/// archive for the duration of the call.
pub async fn describe(
    target: &ImageTarget,
    registry: &RegistryOptions,
    scratch: &Path,
) -> Result<ImageDescription, TargetError> {
    match target {
        ImageTarget::Registry(reference) => {
            let pulled = fetch_manifest(reference, registry).await?;
            let manifest: ImageManifest = serde_json::from_slice(&pulled.bytes)
                .map_err(|error| malformed(target, format!("manifest: {error}")))?;
            if manifest.config.size > CONFIG_SIZE_LIMIT {
                return Err(malformed(target, format!("config of {} bytes", manifest.config.size)));
            }
            let bytes = fetch_blob(reference, &manifest.config.digest, registry).await?;
            let configuration = serde_json::from_slice(&bytes)
                .map_err(|error| malformed(target, format!("image configuration: {error}")))?;
            Ok(ImageDescription { digest: pulled.digest, manifest, configuration })
        }
        ImageTarget::Directory { .. } | ImageTarget::Archive { .. } => {
            let (directory, tag) = open_local(target, registry, scratch).await?;
            let descriptor = directory.resolve(tag.as_deref())?;
            let manifest = directory.read_manifest(&descriptor)?;
            let configuration = read_configuration(&directory, &manifest)?;
            Ok(ImageDescription { digest: descriptor.digest, manifest, configuration })
        }
    }
}

/// The image as a local OCI layout: the directory itself, an extracted archive, or a registry image pulled
/// into `scratch` (layers included). Returns the layout and the tag to use in it.
pub async fn open_local(
    target: &ImageTarget,
    registry: &RegistryOptions,
    scratch: &Path,
) -> Result<(OciDirectory, Option<String>), TargetError> {
    match target {
        ImageTarget::Directory { path, tag } => Ok((OciDirectory::open(path)?, tag.clone())),
        ImageTarget::Archive { path, tag } => {
            Ok((extract_archive(path, &scratch.join("archive"))?, tag.clone()))
        }
        ImageTarget::Registry(reference) => {
            let directory = scratch.join("pulled");
            pull_to_layout(reference, &directory, DEFAULT_TAG, registry).await?;
            Ok((OciDirectory::open(&directory)?, Some(DEFAULT_TAG.to_string())))
        }
    }
}

/// Where an image is assembled before it goes to `target`: the layout itself for `oci:`, a staging
/// layout otherwise (next to the archive, or under `staging` for a registry).
pub fn staging_directory(
    target: &ImageTarget,
    staging: &Path,
) -> Result<(OciDirectory, String), TargetError> {
    match target {
        ImageTarget::Directory { path, tag } => {
            Ok((OciDirectory::create(path)?, tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string())))
        }
        ImageTarget::Archive { tag, .. } => {
            Ok((OciDirectory::create(staging)?, tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string())))
        }
        ImageTarget::Registry(reference) => Ok((
            OciDirectory::create(staging)?,
            reference.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string()),
        )),
    }
}

/// What delivering the staged image did.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    pub present_blobs: usize,
}

/// Moves a staged image to its target: nothing for `oci:`, the archive file, or a registry push
/// (blobs first, the manifest last).
pub async fn deliver(
    target: &ImageTarget,
    staged: &OciDirectory,
    tag: Option<&str>,
    registry: &RegistryOptions,
) -> Result<Delivery, TargetError> {
    match target {
        ImageTarget::Directory { .. } => Ok(Delivery::default()),
        ImageTarget::Archive { path, .. } => {
            write_archive(staged, path)?;
            Ok(Delivery::default())
        }
        ImageTarget::Registry(reference) => {
            let report = push_layout(staged.path(), tag, reference, registry).await?;
            Ok(Delivery {
                uploaded_blobs: report.blobs_uploaded,
                uploaded_bytes: report.bytes_uploaded,
                present_blobs: report.blobs_present,
            })
        }
    }
    .inspect(|_| tracing::debug!(target = %target, local_tag = ?target.local_tag(), "image delivered"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let cases = [
            ("oci:/tmp/out", "oci:/tmp/out"),
            ("oci:/tmp/out:stable", "oci:/tmp/out:stable"),
            ("oci-archive:image.tar", "oci-archive:image.tar"),
            ("oci-archive:image.tar:v1", "oci-archive:image.tar:v1"),
        ];
        for (text, shown) in cases {
            assert_eq!(ImageTarget::parse(text).expect(text).to_string(), shown);
        }
        let registry = ImageTarget::parse("registry:127.0.0.1:5000/exampleos/os:testing").expect("registry");
        assert!(matches!(registry, ImageTarget::Registry(_)), "{registry:?}");
        let docker = ImageTarget::parse("docker://quay.io/example/os:1").expect("docker");
        assert!(matches!(docker, ImageTarget::Registry(_)), "{docker:?}");
        let error = ImageTarget::parse("/tmp/out").expect_err("no transport");
        assert!(error.to_string().contains("oci:DIR[:TAG]"), "{error}");
    }
}
