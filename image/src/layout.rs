//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/`) and `oci-archive` tarballs:
//! blobs are written to a temporary file and renamed into place once their digest is known, and
//! `index.json` is replaced last, so an interrupted write never leaves a tag naming a missing blob.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The annotation of an `index.json` entry that holds its tag.
pub const REFERENCE_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
pub const IMAGE_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const IMAGE_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_GZIP_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const LAYER_TAR_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker schema 2 layers, which clients also accept (gzip).
pub const DOCKER_LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker schema 2 uncompressed layers.
pub const DOCKER_TAR_LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar";
const LAYOUT_FILE_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a valid OCI {what}: {message}")]
    Malformed { path: PathBuf, what: &'static str, message: String },
    #[error("{path}: no image tagged {tag:?} (tags: {available})")]
    NoSuchTag { path: PathBuf, tag: String, available: String },
    #[error("{path}: holds {count} images; name one with :TAG")]
    AmbiguousTag { path: PathBuf, count: usize },
    #[error("{path}: blob {digest} does not match its digest (found {actual})")]
    DigestMismatch { path: PathBuf, digest: String, actual: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io { path: path.to_path_buf(), source }
}

/// A content descriptor (image-spec descriptor.md); annotations are ordered for deterministic JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

/// An image manifest (image-spec manifest.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (image-spec image-index.md), also the shape of a layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    pub fn empty() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(IMAGE_INDEX_MEDIA_TYPE.to_string()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Serializes `value` as the compact JSON whose bytes are hashed and stored.
pub fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of strings, numbers and BTreeMaps cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciDirectory {
    path: PathBuf,
}

impl OciDirectory {
    /// Opens `path`, creating an empty layout when it does not exist yet.
    pub fn create(path: &Path) -> Result<OciDirectory, LayoutError> {
        let blobs = path.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_error(&blobs))?;
        let layout_file = path.join("oci-layout");
        if !layout_file.exists() {
            write_atomically(&layout_file, LAYOUT_FILE_CONTENT.as_bytes())?;
        }
        let directory = OciDirectory { path: path.to_path_buf() };
        if !directory.index_path().exists() {
            directory.write_index(&ImageIndex::empty())?;
        }
        Ok(directory)
    }

    /// Opens an existing layout (its `oci-layout` file must be there).
    pub fn open(path: &Path) -> Result<OciDirectory, LayoutError> {
        let layout_file = path.join("oci-layout");
        let text = fs::read_to_string(&layout_file).map_err(io_error(&layout_file))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| LayoutError::Malformed {
                path: layout_file.clone(),
                what: "layout file",
                message: error.to_string(),
            })?;
        if value.get("imageLayoutVersion").and_then(|version| version.as_str()).is_none() {
            return Err(LayoutError::Malformed {
                path: layout_file,
                what: "layout file",
                message: "no imageLayoutVersion".to_string(),
            });
        }
        Ok(OciDirectory { path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn index_path(&self) -> PathBuf {
        self.path.join("index.json")
    }

    /// The file of blob `digest` (`sha256:<hex>`), present or not.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, LayoutError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .ok_or_else(|| LayoutError::Malformed {
                path: self.path.clone(),
                what: "digest",
                message: format!("{digest:?} is not sha256:<64 hex digits>"),
            })?;
        Ok(self.path.join("blobs").join("sha256").join(hex))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|path| path.exists()).unwrap_or(false)
    }

    /// Stores `bytes` as a blob and returns its descriptor.
    pub fn write_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, LayoutError> {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        if !path.exists() {
            write_atomically(&path, bytes)?;
        }
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        })
    }

    /// Moves a finished file whose digest the caller computed into the blob store.
    pub fn adopt_blob(&self, file: &Path, digest: &str) -> Result<PathBuf, LayoutError> {
        let path = self.blob_path(digest)?;
        fs::rename(file, &path).map_err(io_error(&path))?;
        Ok(path)
    }

    /// A temporary file inside the layout (same file system as the blobs, so a rename adopts it).
    pub fn temporary_file(&self) -> Result<tempfile::NamedTempFile, LayoutError> {
        let directory = self.path.join("blobs");
        tempfile::Builder::new().prefix(".tmp-").tempfile_in(&directory).map_err(io_error(&directory))
    }

    /// Copies blob `digest` from `source` unless this layout has it (hardlinked when both share a file system).
    pub fn copy_blob_from(&self, source: &OciDirectory, digest: &str) -> Result<(), LayoutError> {
        let target = self.blob_path(digest)?;
        if target.exists() {
            return Ok(());
        }
        let origin = source.blob_path(digest)?;
        if fs::hard_link(&origin, &target).is_ok() {
            return Ok(());
        }
        let mut temporary = self.temporary_file()?;
        let mut reader = fs::File::open(&origin).map_err(io_error(&origin))?;
        io::copy(&mut reader, &mut temporary).map_err(io_error(&target))?;
        temporary
            .persist(&target)
            .map_err(|error| LayoutError::Io { path: target.clone(), source: error.error })?;
        Ok(())
    }

    /// Copies the image `descriptor` names (manifest, config, layers) from `source`.
    pub fn copy_image_from(
        &self,
        source: &OciDirectory,
        descriptor: &Descriptor,
    ) -> Result<ImageManifest, LayoutError> {
        let manifest = source.read_manifest(descriptor)?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            self.copy_blob_from(source, &blob.digest)?;
        }
        self.copy_blob_from(source, &descriptor.digest)?;
        Ok(manifest)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest)?;
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(LayoutError::DigestMismatch { path, digest: digest.to_string(), actual });
        }
        Ok(bytes)
    }

    pub fn open_blob(&self, digest: &str) -> Result<fs::File, LayoutError> {
        let path = self.blob_path(digest)?;
        fs::File::open(&path).map_err(io_error(&path))
    }

    pub fn read_index(&self) -> Result<ImageIndex, LayoutError> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        serde_json::from_slice(&bytes).map_err(|error| LayoutError::Malformed {
            path,
            what: "index.json",
            message: error.to_string(),
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), LayoutError> {
        write_atomically(&self.index_path(), &canonical_json(index))
    }

    /// Points `tag` at `manifest` (replacing the entry that had the tag); the last step of a write.
    pub fn set_tag(&self, tag: &str, mut manifest: Descriptor) -> Result<(), LayoutError> {
        let mut index = self.read_index()?;
        index.manifests.retain(|entry| {
            entry.annotations.get(REFERENCE_NAME_ANNOTATION).map(String::as_str) != Some(tag)
        });
        manifest.annotations.insert(REFERENCE_NAME_ANNOTATION.to_string(), tag.to_string());
        index.manifests.push(manifest);
        self.write_index(&index)
    }

    /// The `index.json` entry for `tag`, or the only entry when `tag` is `None`.
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor, LayoutError> {
        let index = self.read_index()?;
        match tag {
            Some(tag) => index
                .manifests
                .iter()
                .find(|entry| {
                    entry.annotations.get(REFERENCE_NAME_ANNOTATION).map(String::as_str) == Some(tag)
                })
                .cloned()
                .ok_or_else(|| LayoutError::NoSuchTag {
                    path: self.path.clone(),
                    tag: tag.to_string(),
                    available: index
                        .manifests
                        .iter()
                        .filter_map(|entry| entry.annotations.get(REFERENCE_NAME_ANNOTATION).cloned())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            None => match index.manifests.as_slice() {
                [only] => Ok(only.clone()),
                entries => Err(LayoutError::AmbiguousTag { path: self.path.clone(), count: entries.len() }),
            },
        }
    }

    /// Reads and parses the image manifest `descriptor` names.
    pub fn read_manifest(&self, descriptor: &Descriptor) -> Result<ImageManifest, LayoutError> {
        let bytes = self.read_blob(&descriptor.digest)?;
        serde_json::from_slice(&bytes).map_err(|error| LayoutError::Malformed {
            path: self.blob_path(&descriptor.digest).unwrap_or_default(),
            what: "image manifest",
            message: error.to_string(),
        })
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let mut file =
        tempfile::Builder::new().prefix(".tmp-").tempfile_in(directory).map_err(io_error(directory))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.as_file().sync_all().map_err(io_error(path))?;
    file.persist(path).map_err(|error| LayoutError::Io { path: path.to_path_buf(), source: error.error })?;
    Ok(())
}

/// Writes the layout at `directory` as an `oci-archive` tarball at `archive` (temporary file, then rename).
pub fn write_archive(directory: &OciDirectory, archive: &Path) -> Result<(), LayoutError> {
    let parent = archive.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let temporary = tempfile::Builder::new().prefix(".tmp-").tempfile_in(parent).map_err(io_error(parent))?;
    let mut builder = tar::Builder::new(io::BufWriter::new(temporary));
    builder.mode(tar::HeaderMode::Deterministic);
    let mut entries = vec![PathBuf::from("oci-layout"), PathBuf::from("index.json")];
    let blobs = directory.path.join("blobs").join("sha256");
    let mut names: Vec<_> = fs::read_dir(&blobs)
        .map_err(io_error(&blobs))?
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name()))
        .filter(|name| !name.to_string_lossy().starts_with(".tmp-"))
        .collect();
    names.sort();
    entries.extend(names.into_iter().map(|name| Path::new("blobs/sha256").join(name)));
    for entry in entries {
        let source = directory.path.join(&entry);
        builder.append_path_with_name(&source, &entry).map_err(io_error(&source))?;
    }
    let writer = builder.into_inner().map_err(io_error(archive))?;
    let temporary = writer
        .into_inner()
        .map_err(|error| LayoutError::Io { path: archive.to_path_buf(), source: error.into_error() })?;
    temporary.as_file().sync_all().map_err(io_error(archive))?;
    temporary
        .persist(archive)
        .map_err(|error| LayoutError::Io { path: archive.to_path_buf(), source: error.error })?;
    Ok(())
}

/// Unpacks an `oci-archive` tarball into `destination` (a fresh directory) and opens it as a layout.
pub fn extract_archive(archive: &Path, destination: &Path) -> Result<OciDirectory, LayoutError> {
    let file = fs::File::open(archive).map_err(io_error(archive))?;
    let mut reader = tar::Archive::new(io::BufReader::new(file));
    reader.unpack(destination).map_err(io_error(archive))?;
    OciDirectory::open(destination)
}

/// Reads at most `limit` bytes of `reader` (to bound what a hostile blob can make us hold in memory).
pub fn read_limited(reader: impl Read, limit: u64, path: &Path) -> Result<Vec<u8>, LayoutError> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes).map_err(io_error(path))?;
    if bytes.len() as u64 > limit {
        return Err(LayoutError::Malformed {
            path: path.to_path_buf(),
            what: "blob",
            message: format!("larger than the {limit} bytes allowed"),
        });
    }
    Ok(bytes)
}
