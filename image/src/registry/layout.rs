//! The parts of OCI image layouts and manifests that transfers need: reading `index.json`, choosing
//! an entry by tag, telling image manifests from indexes, listing what a manifest references, and
//! updating `index.json` atomically after a pull.

use super::RegistryError;
use super::reference::validate_digest;
pub(super) use crate::layout::sha256_digest;
use crate::layout::{IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, REFERENCE_NAME_ANNOTATION};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The manifest types a pull accepts, for the `Accept` header.
pub(super) const ACCEPTED_MANIFEST_TYPES: &[&str] = &[
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_INDEX_MEDIA_TYPE,
    DOCKER_MANIFEST_MEDIA_TYPE,
    DOCKER_MANIFEST_LIST_MEDIA_TYPE,
];
/// The largest manifest read: the distribution spec has registries accept at least 4 MiB, and
/// docker-registry refuses larger ones.
pub(super) const MAXIMUM_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The largest `index.json` read; even thousands of tags fit comfortably.
const MAXIMUM_INDEX_JSON_BYTES: u64 = 64 * 1024 * 1024;
/// How deep indexes may nest (an index of indexes of manifests is 2); deeper is refused as a loop.
pub(super) const MAXIMUM_INDEX_DEPTH: usize = 4;
/// The `oci-layout` file content written by a pull.
const OCI_LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
/// The `schemaVersion` of image manifests and indexes.
const SCHEMA_VERSION: u32 = 2;

/// A content descriptor; unknown fields are kept so that `index.json` entries survive a rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Whether a manifest is an image manifest or an index (manifest list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ManifestKind {
    Image,
    Index,
}

/// A manifest with its exact bytes.
#[derive(Debug, Clone)]
pub(super) struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub kind: ManifestKind,
    pub bytes: Vec<u8>,
}

#[derive(Deserialize)]
struct ManifestFields {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// What a manifest references: child manifests (for an index) or blobs (config and layers).
#[derive(Debug, Default)]
pub(super) struct References {
    pub manifests: Vec<Descriptor>,
    pub blobs: Vec<Descriptor>,
}

impl Manifest {
    /// Parses `bytes` as a manifest whose media type is `declared` (from a descriptor or a
    /// `Content-Type`), falling back to the `mediaType` field and the shape of the JSON.
    pub fn parse(bytes: Vec<u8>, declared: Option<&str>) -> Result<(Self, References), String> {
        let fields: ManifestFields =
            serde_json::from_slice(&bytes).map_err(|error| format!("not a JSON manifest: {error}"))?;
        let declared =
            declared.filter(|media_type| !media_type.is_empty() && *media_type != "application/json");
        let media_type = match (declared, fields.media_type.as_deref()) {
            (Some(declared), _) => declared.to_string(),
            (None, Some(field)) => field.to_string(),
            (None, None) if fields.manifests.is_some() => IMAGE_INDEX_MEDIA_TYPE.to_string(),
            (None, None) => IMAGE_MANIFEST_MEDIA_TYPE.to_string(),
        };
        let kind = match media_type.as_str() {
            IMAGE_MANIFEST_MEDIA_TYPE | DOCKER_MANIFEST_MEDIA_TYPE => ManifestKind::Image,
            IMAGE_INDEX_MEDIA_TYPE | DOCKER_MANIFEST_LIST_MEDIA_TYPE => ManifestKind::Index,
            other => return Err(format!("unsupported manifest media type `{other}`")),
        };
        let references = match kind {
            ManifestKind::Image => {
                let config = fields.config.ok_or("an image manifest without `config`")?;
                let mut blobs = vec![config];
                blobs.extend(fields.layers.unwrap_or_default());
                References { manifests: Vec::new(), blobs }
            }
            ManifestKind::Index => References {
                manifests: fields.manifests.ok_or("an index without `manifests`")?,
                blobs: Vec::new(),
            },
        };
        for descriptor in references.manifests.iter().chain(&references.blobs) {
            validate_digest(&descriptor.digest)?;
        }
        let digest = sha256_digest(&bytes);
        Ok((Self { digest, media_type, kind, bytes }, references))
    }

    /// The descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            annotations: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }
}

/// `blobs/sha256/<hex>` of a validated digest.
pub(super) fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, RegistryError> {
    validate_digest(digest)
        .map_err(|reason| RegistryError::Layout { path: layout.join("index.json"), reason })?;
    let hex = digest.trim_start_matches(super::reference::SHA256_PREFIX);
    Ok(layout.join("blobs/sha256").join(hex))
}

#[derive(Serialize, Deserialize)]
struct IndexJson {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, RegistryError> {
    let metadata = std::fs::metadata(path).map_err(|error| RegistryError::Layout {
        path: path.to_path_buf(),
        reason: format!("cannot read the {what}: {error}"),
    })?;
    if metadata.len() > limit {
        return Err(RegistryError::Layout {
            path: path.to_path_buf(),
            reason: format!("the {what} is larger than {limit} bytes"),
        });
    }
    std::fs::read(path).map_err(RegistryError::io(path))
}

/// Reads `index.json` of `layout` and picks the entry tagged `tag` (by [`REFERENCE_NAME_ANNOTATION`]),
/// or the only entry when `tag` is `None`.
pub(super) fn select_entry(layout: &Path, tag: Option<&str>) -> Result<Descriptor, RegistryError> {
    let marker = layout.join("oci-layout");
    if !marker.is_file() {
        return Err(RegistryError::Layout {
            path: marker,
            reason: "missing: not an OCI image layout directory".to_string(),
        });
    }
    let index_path = layout.join("index.json");
    let bytes = read_limited(&index_path, MAXIMUM_INDEX_JSON_BYTES, "index")?;
    let index: IndexJson = serde_json::from_slice(&bytes)
        .map_err(|error| RegistryError::Layout { path: index_path.clone(), reason: error.to_string() })?;
    let tag_of = |entry: &Descriptor| entry.annotations.get(REFERENCE_NAME_ANNOTATION).cloned();
    let entry = match tag {
        Some(tag) => {
            index.manifests.iter().find(|entry| tag_of(entry).as_deref() == Some(tag)).cloned().ok_or_else(
                || {
                    let tags: Vec<String> = index.manifests.iter().filter_map(tag_of).collect();
                    RegistryError::Layout {
                        path: index_path.clone(),
                        reason: format!("no entry tagged `{tag}` (tags: {})", tags.join(", ")),
                    }
                },
            )?
        }
        None => match index.manifests.as_slice() {
            [only] => only.clone(),
            [] => return Err(RegistryError::Layout { path: index_path, reason: "no manifests".to_string() }),
            several => {
                return Err(RegistryError::Layout {
                    path: index_path,
                    reason: format!("{} entries; name the one to use by tag", several.len()),
                });
            }
        },
    };
    validate_digest(&entry.digest).map_err(|reason| RegistryError::Layout { path: index_path, reason })?;
    Ok(entry)
}

/// Reads the manifest `descriptor` names from the layout's blobs, checking size and digest.
pub(super) fn read_manifest(
    layout: &Path,
    descriptor: &Descriptor,
) -> Result<(Manifest, References), RegistryError> {
    let path = blob_path(layout, &descriptor.digest)?;
    let bytes = read_limited(&path, MAXIMUM_MANIFEST_BYTES, "manifest")?;
    if bytes.len() as u64 != descriptor.size {
        return Err(RegistryError::Layout {
            path,
            reason: format!("has {} bytes, but its descriptor says {}", bytes.len(), descriptor.size),
        });
    }
    let (manifest, references) = Manifest::parse(bytes, Some(&descriptor.media_type))
        .map_err(|reason| RegistryError::Layout { path: path.clone(), reason })?;
    if manifest.digest != descriptor.digest {
        return Err(RegistryError::Layout {
            path,
            reason: format!("content has digest {}, not {}", manifest.digest, descriptor.digest),
        });
    }
    Ok((manifest, references))
}

/// Creates the layout directory, `oci-layout` and `blobs/sha256` when missing.
pub(super) fn prepare_layout(layout: &Path) -> Result<(), RegistryError> {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(RegistryError::io(&blobs))?;
    let marker = layout.join("oci-layout");
    if !marker.exists() {
        write_atomically(&marker, OCI_LAYOUT_CONTENT.as_bytes())?;
    }
    Ok(())
}

/// Whether the layout already holds blob `descriptor` (a file of the right size: blobs are only
/// ever renamed into place once verified).
pub(super) fn has_blob(layout: &Path, descriptor: &Descriptor) -> Result<bool, RegistryError> {
    let path = blob_path(layout, &descriptor.digest)?;
    Ok(std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.len() == descriptor.size))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced and renamed.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let temporary = temporary_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(RegistryError::io(path))
}

/// A unique temporary name next to `path` (hidden, so never mistaken for a blob).
pub(super) fn temporary_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{unique}.partial", std::process::id()))
}

/// Points tag `tag` of the layout's `index.json` at `manifest`, replacing an entry with the same
/// tag and keeping every other entry and field. Written last, atomically.
pub(super) fn set_index_entry(layout: &Path, tag: &str, manifest: &Manifest) -> Result<(), RegistryError> {
    let index_path = layout.join("index.json");
    let mut index = if index_path.exists() {
        let bytes = read_limited(&index_path, MAXIMUM_INDEX_JSON_BYTES, "index")?;
        serde_json::from_slice::<IndexJson>(&bytes)
            .map_err(|error| RegistryError::Layout { path: index_path.clone(), reason: error.to_string() })?
    } else {
        let mut other = BTreeMap::new();
        other.insert("mediaType".to_string(), serde_json::Value::from(IMAGE_INDEX_MEDIA_TYPE));
        IndexJson { schema_version: SCHEMA_VERSION, manifests: Vec::new(), other }
    };
    index
        .manifests
        .retain(|entry| entry.annotations.get(REFERENCE_NAME_ANNOTATION).map(String::as_str) != Some(tag));
    let mut entry = manifest.descriptor();
    entry.annotations.insert(REFERENCE_NAME_ANNOTATION.to_string(), tag.to_string());
    index.manifests.push(entry);
    let bytes = serde_json::to_vec(&index)
        .map_err(|error| RegistryError::Layout { path: index_path.clone(), reason: error.to_string() })?;
    write_atomically(&index_path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_images_from_indexes() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{digest}","size":1}},"layers":[{{"mediaType":"l","digest":"{digest}","size":2}}]}}"#
        );
        let (manifest, references) = Manifest::parse(image.into_bytes(), None).expect("image");
        assert_eq!(manifest.kind, ManifestKind::Image);
        assert_eq!(manifest.media_type, IMAGE_MANIFEST_MEDIA_TYPE);
        assert_eq!(references.blobs.len(), 2);
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{digest}","size":3}}]}}"#
        );
        let (manifest, references) = Manifest::parse(index.clone().into_bytes(), None).expect("index");
        assert_eq!(manifest.kind, ManifestKind::Index);
        assert_eq!(references.manifests.len(), 1);
        let (manifest, _) =
            Manifest::parse(index.into_bytes(), Some(DOCKER_MANIFEST_LIST_MEDIA_TYPE)).expect("docker list");
        assert_eq!(manifest.media_type, DOCKER_MANIFEST_LIST_MEDIA_TYPE);
        let hostile = r#"{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:../../etc/passwd","size":3}]}"#;
        assert!(Manifest::parse(hostile.as_bytes().to_vec(), None).is_err());
        assert!(Manifest::parse(b"{}".to_vec(), Some("text/plain")).is_err());
    }

    #[test]
    fn index_entries_are_replaced_by_tag_and_other_fields_kept() {
        let directory = tempfile::tempdir().expect("tempdir");
        prepare_layout(directory.path()).expect("prepare");
        let manifest = |content: &str| {
            let bytes = format!(r#"{{"schemaVersion":2,"manifests":[],"x":"{content}"}}"#).into_bytes();
            Manifest::parse(bytes, None).expect("parse").0
        };
        set_index_entry(directory.path(), "a", &manifest("1")).expect("a");
        set_index_entry(directory.path(), "b", &manifest("2")).expect("b");
        let replacement = manifest("3");
        set_index_entry(directory.path(), "a", &replacement).expect("a again");
        let entry = select_entry(directory.path(), Some("a")).expect("select a");
        assert_eq!(entry.digest, replacement.digest);
        assert!(select_entry(directory.path(), Some("b")).is_ok());
        let error = select_entry(directory.path(), None).expect_err("two entries");
        assert!(error.to_string().contains("index.json"), "{error}");
        let error = select_entry(directory.path(), Some("c")).expect_err("no such tag");
        assert!(error.to_string().contains("tags: b, a"), "{error}");
    }
}
