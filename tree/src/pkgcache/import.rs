//! Imports one RPM into the package cache: the payload is streamed (gzip, xz or zstd) straight into ostree
//! content objects, every file checked against the header's digest, and the files become one commit whose
//! metadata carries the RPM header, the file manifest and the scriptlets.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use ostree::gio;
use ostree::gio::prelude::*;
use ostree::glib;
use rpm::{DigestAlgorithm, FileFlags, FileType};
use sha2::Digest;

use super::manifest::{self, FLAG_CONFIGURATION, FLAG_DOCUMENTATION, MODE_DIRECTORY, ManifestEntry};
use super::objects::{ObjectError, ObjectMetadata, ObjectStager};
use super::payload::{PayloadArchive, PayloadError, decompressed};
use super::{PackageIdentity, metadata_keys};
use crate::capabilities::{CAPABILITY_XATTR, capability_xattr};
use crate::scriptlets::PackageScripts;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{package}: reading {path}: {message}")]
    Read { package: String, path: PathBuf, message: String },
    #[error("{package}: {path}: {source}")]
    Payload { package: String, path: PathBuf, source: PayloadError },
    #[error("{package}: the header says {found}, but the repository metadata says {expected}")]
    IdentityMismatch { package: String, expected: String, found: String },
    #[error("{package}: unsafe path \"{path}\" in the payload (absolute, normalized paths only)")]
    UnsafePath { package: String, path: String },
    #[error("{package}: {path}: unsupported file type {file_type} (only files, directories and symlinks)")]
    UnsupportedFileType { package: String, path: String, file_type: String },
    #[error("{package}: {path}: the payload does not match the header ({detail})")]
    PayloadMismatch { package: String, path: String, detail: String },
    #[error("{package}: {path}: {source}")]
    Capabilities { package: String, path: String, source: crate::capabilities::CapabilityError },
    #[error("{package}: writing to the package cache: {message}")]
    Ostree { package: String, message: String },
    #[error("{package}: reading scriptlets: {message}")]
    Scriptlets { package: String, message: String },
}

/// A freshly imported package.
#[derive(Debug, Clone)]
pub struct ImportedPackage {
    pub commit: String,
    pub objects_written: usize,
    pub bytes_written: u64,
}

/// A regular file whose content the payload carries with another member of its hardlink set.
struct PendingHardlink {
    index: usize,
    digest: String,
}

struct Importer<'a> {
    objects: &'a ObjectStager,
    package: &'a str,
    entries: Vec<ManifestEntry>,
    /// Header digest → ostree object, to give hardlinked files their content.
    object_by_digest: HashMap<String, String>,
    pending_hardlinks: Vec<PendingHardlink>,
    objects_written: usize,
    bytes_written: u64,
}

pub fn import_package(
    repo: &ostree::Repo,
    objects: &ObjectStager,
    rpm_path: &Path,
    identity: &PackageIdentity,
) -> Result<ImportedPackage, ImportError> {
    let package = identity.nevra.as_str();
    let read_error = |message: String| ImportError::Read {
        package: package.to_string(),
        path: rpm_path.to_path_buf(),
        message,
    };
    let (metadata, payload) = open_package(rpm_path).map_err(read_error)?;
    check_identity(&metadata, identity)?;
    let header = metadata.header_bytes().map_err(|error| read_error(error.to_string()))?;
    let scripts = PackageScripts::from_header(&metadata).map_err(|error| ImportError::Scriptlets {
        package: package.to_string(),
        message: error.to_string(),
    })?;
    let build_time = metadata.get_build_time().unwrap_or(0);
    let file_entries = metadata.get_file_entries().map_err(|error| read_error(error.to_string()))?;
    let payload_error = |source: PayloadError| ImportError::Payload {
        package: package.to_string(),
        path: rpm_path.to_path_buf(),
        source,
    };
    let mut archive =
        PayloadArchive::new(&metadata, &file_entries, decompressed(payload).map_err(payload_error)?);

    let mut importer = Importer {
        objects,
        package,
        entries: Vec::new(),
        object_by_digest: HashMap::new(),
        pending_hardlinks: Vec::new(),
        objects_written: 0,
        bytes_written: 0,
    };
    while let Some(entry) = archive.next_entry().map_err(payload_error)? {
        importer.add(&file_entries[entry.index], entry.content_size, &mut archive.content())?;
    }
    importer.resolve_hardlinks()?;
    importer.entries.sort_by(|left, right| left.path.cmp(&right.path));

    let root = build_tree(repo, &importer.entries).map_err(|error| importer.ostree_error(error))?;
    let metadata = commit_metadata(identity, &header, &importer.entries, &scripts);
    let root = root.downcast::<ostree::RepoFile>().map_err(|_| ImportError::Ostree {
        package: package.to_string(),
        message: "write_mtree did not return a repository file".into(),
    })?;
    let commit = repo
        .write_commit_with_time(
            None,
            Some(package),
            None,
            Some(&metadata),
            &root,
            build_time,
            gio::Cancellable::NONE,
        )
        .map_err(|error| importer.ostree_error(error))?;
    Ok(ImportedPackage {
        commit: commit.to_string(),
        objects_written: importer.objects_written,
        bytes_written: importer.bytes_written,
    })
}

/// The RPM lead is a fixed 96 bytes.
const LEAD_SIZE: u64 = 96;
/// Header sections start with 8 bytes of magic and reserved space, then two big-endian counts.
const HEADER_PREAMBLE_SIZE: u64 = 16;
/// Each header index entry is 16 bytes.
const HEADER_INDEX_ENTRY_SIZE: u64 = 16;
/// The signature header is padded to a multiple of 8 bytes.
const SIGNATURE_ALIGNMENT: u64 = 8;
/// Large reads for the payload: fewer system calls on big packages.
const PAYLOAD_BUFFER: usize = 1 << 20;

/// Opens an RPM for streaming: its parsed headers, and a buffered reader that starts exactly at the
/// payload (the sizes of both header sections are read first, so the payload's magic bytes are always at
/// the start of a fresh buffer).
fn open_package(path: &Path) -> Result<(rpm::PackageMetadata, std::io::BufReader<std::fs::File>), String> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let section_end = |file: &mut std::fs::File, start: u64| -> Result<u64, String> {
        let mut preamble = [0u8; HEADER_PREAMBLE_SIZE as usize];
        file.seek(SeekFrom::Start(start)).map_err(|error| error.to_string())?;
        file.read_exact(&mut preamble)
            .map_err(|error| format!("truncated header at byte {start}: {error}"))?;
        let entries = u64::from(u32::from_be_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]));
        let data = u64::from(u32::from_be_bytes([preamble[12], preamble[13], preamble[14], preamble[15]]));
        Ok(start + HEADER_PREAMBLE_SIZE + entries * HEADER_INDEX_ENTRY_SIZE + data)
    };
    let signature_end = section_end(&mut file, LEAD_SIZE)?.next_multiple_of(SIGNATURE_ALIGNMENT);
    let headers_end = section_end(&mut file, signature_end)?;
    let file_length = file.metadata().map_err(|error| error.to_string())?.len();
    if headers_end > file_length {
        return Err(format!("the headers claim {headers_end} bytes, the file has {file_length}"));
    }
    let mut headers = vec![0u8; headers_end as usize];
    file.seek(SeekFrom::Start(0)).map_err(|error| error.to_string())?;
    file.read_exact(&mut headers).map_err(|error| error.to_string())?;
    let metadata =
        rpm::PackageMetadata::parse(&mut std::io::Cursor::new(headers)).map_err(|error| error.to_string())?;
    Ok((metadata, std::io::BufReader::with_capacity(PAYLOAD_BUFFER, file)))
}

fn check_identity(metadata: &rpm::PackageMetadata, identity: &PackageIdentity) -> Result<(), ImportError> {
    let found = format!(
        "{}-{}{}-{}.{}",
        metadata.get_name().unwrap_or("?"),
        match metadata.get_epoch() {
            Ok(epoch) if epoch > 0 => format!("{epoch}:"),
            _ => String::new(),
        },
        metadata.get_version().unwrap_or("?"),
        metadata.get_release().unwrap_or("?"),
        if metadata.is_source_package() { "src" } else { metadata.get_arch().unwrap_or("?") },
    );
    if found != identity.nevra {
        return Err(ImportError::IdentityMismatch {
            package: identity.nevra.clone(),
            expected: identity.nevra.clone(),
            found,
        });
    }
    Ok(())
}

/// Checks a payload path and returns it normalized: absolute, no empty, `.` or `..` components.
fn safe_path(package: &str, path: &Path) -> Result<String, ImportError> {
    let unsafe_path =
        || ImportError::UnsafePath { package: package.to_string(), path: path.display().to_string() };
    let text = path.to_str().ok_or_else(unsafe_path)?;
    let relative = text.strip_prefix('/').ok_or_else(unsafe_path)?;
    if relative.is_empty() {
        return Ok("/".to_string());
    }
    let relative = relative.strip_suffix('/').unwrap_or(relative);
    if relative.split('/').any(|component| component.is_empty() || component == "." || component == "..")
        || text.contains('\0')
    {
        return Err(unsafe_path());
    }
    Ok(format!("/{relative}"))
}

/// Incremental hash for one RPM file digest algorithm (`None`: an algorithm we do not check, e.g. MD5 in
/// very old packages, whose integrity the repository checksum of the whole RPM still covers).
enum FileHasher {
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl FileHasher {
    fn for_algorithm(algorithm: DigestAlgorithm) -> Option<FileHasher> {
        match algorithm {
            DigestAlgorithm::Sha2_224 => Some(FileHasher::Sha224(sha2::Sha224::new())),
            DigestAlgorithm::Sha2_256 => Some(FileHasher::Sha256(sha2::Sha256::new())),
            DigestAlgorithm::Sha2_384 => Some(FileHasher::Sha384(sha2::Sha384::new())),
            DigestAlgorithm::Sha2_512 => Some(FileHasher::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            FileHasher::Sha224(hasher) => hasher.update(bytes),
            FileHasher::Sha256(hasher) => hasher.update(bytes),
            FileHasher::Sha384(hasher) => hasher.update(bytes),
            FileHasher::Sha512(hasher) => hasher.update(bytes),
        }
    }

    fn finish_hex(self) -> String {
        match self {
            FileHasher::Sha224(hasher) => hex::encode(hasher.finalize()),
            FileHasher::Sha256(hasher) => hex::encode(hasher.finalize()),
            FileHasher::Sha384(hasher) => hex::encode(hasher.finalize()),
            FileHasher::Sha512(hasher) => hex::encode(hasher.finalize()),
        }
    }
}

impl Importer<'_> {
    fn ostree_error(&self, error: glib::Error) -> ImportError {
        ImportError::Ostree { package: self.package.to_string(), message: error.to_string() }
    }

    fn object_error(&self, path: &str, error: ObjectError) -> ImportError {
        match error {
            ObjectError::Write { .. } => {
                ImportError::Ostree { package: self.package.to_string(), message: format!("{path}: {error}") }
            }
            _ => self.mismatch(path, format!("payload: {error}")),
        }
    }

    fn mismatch(&self, path: &str, detail: String) -> ImportError {
        ImportError::PayloadMismatch { package: self.package.to_string(), path: path.to_string(), detail }
    }

    /// Adds one archive entry: `entry` from the header, `content_size` bytes of `content` in the payload.
    fn add(
        &mut self,
        entry: &rpm::FileEntry<'_>,
        content_size: u64,
        content: &mut dyn Read,
    ) -> Result<(), ImportError> {
        let flags = entry.flags();
        if flags.contains(FileFlags::GHOST) {
            return Ok(());
        }
        let path = safe_path(self.package, &entry.path())?;
        let mode = u32::from(entry.mode().raw_mode());
        let mut manifest_flags = 0;
        if flags.contains(FileFlags::DOC) || flags.contains(FileFlags::LICENSE) {
            manifest_flags |= FLAG_DOCUMENTATION;
        }
        if flags.contains(FileFlags::CONFIG) {
            manifest_flags |= FLAG_CONFIGURATION;
        }
        let mut manifest_entry = ManifestEntry {
            path: path.clone(),
            mode,
            flags: manifest_flags,
            checksum: String::new(),
            target: String::new(),
            user: entry.user().to_string(),
            group: entry.group().to_string(),
        };
        match entry.file_type() {
            FileType::Dir => {}
            FileType::SymbolicLink => {
                let target = entry.linkto().unwrap_or_default().to_string();
                if target.is_empty() {
                    return Err(self.mismatch(&path, "symlink without a target".into()));
                }
                let checksum =
                    self.objects.write_symlink(&target).map_err(|error| self.object_error(&path, error))?;
                manifest_entry.checksum = checksum;
                manifest_entry.target = target;
            }
            FileType::Regular => {
                let xattrs = match entry.caps() {
                    Some(text) => capability_xattr(text).map_err(|source| ImportError::Capabilities {
                        package: self.package.to_string(),
                        path: path.clone(),
                        source,
                    })?,
                    None => None,
                };
                let xattrs = xattrs_variant(xattrs);
                let size = entry.size();
                let digest = entry.digest().map(|digest| (digest.algorithm(), digest.as_hex().to_string()));
                if content_size == 0 && size > 0 {
                    // A hardlink whose content comes with another member of its set.
                    let digest = digest
                        .map(|(_, hex)| hex)
                        .ok_or_else(|| self.mismatch(&path, "hardlinked file without a digest".into()))?;
                    self.pending_hardlinks.push(PendingHardlink { index: self.entries.len(), digest });
                } else {
                    if content_size != size as u64 {
                        return Err(self.mismatch(
                            &path,
                            format!("{content_size} bytes in the payload, {size} in the header"),
                        ));
                    }
                    let checksum = self.write_regular_file(content, &path, mode, size, digest, &xattrs)?;
                    manifest_entry.checksum = checksum;
                }
            }
            other => {
                return Err(ImportError::UnsupportedFileType {
                    package: self.package.to_string(),
                    path,
                    file_type: format!("{other:?}"),
                });
            }
        }
        self.entries.push(manifest_entry);
        Ok(())
    }

    fn write_regular_file(
        &mut self,
        content: &mut dyn Read,
        path: &str,
        mode: u32,
        size: usize,
        digest: Option<(DigestAlgorithm, String)>,
        xattrs: &glib::Variant,
    ) -> Result<String, ImportError> {
        let mut hasher = digest.as_ref().and_then(|(algorithm, _)| FileHasher::for_algorithm(*algorithm));
        let metadata = ObjectMetadata { uid: 0, gid: 0, mode, xattrs };
        let written = self.objects.write_regular(&metadata, size as u64, content, &mut |bytes| {
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(bytes);
            }
        });
        let checksum = written.map_err(|error| self.object_error(path, error))?;
        self.check_digest(path, hasher, &digest)?;
        self.objects_written += 1;
        self.bytes_written += size as u64;
        if let Some((_, hex)) = digest {
            self.object_by_digest.insert(hex, checksum.clone());
        }
        Ok(checksum)
    }

    fn check_digest(
        &self,
        path: &str,
        hasher: Option<FileHasher>,
        digest: &Option<(DigestAlgorithm, String)>,
    ) -> Result<(), ImportError> {
        if let (Some(hasher), Some((_, expected))) = (hasher, digest) {
            let actual = hasher.finish_hex();
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(self.mismatch(path, format!("digest {actual}, header says {expected}")));
            }
        }
        Ok(())
    }

    fn resolve_hardlinks(&mut self) -> Result<(), ImportError> {
        for pending in std::mem::take(&mut self.pending_hardlinks) {
            let path = self.entries[pending.index].path.clone();
            let checksum = self.object_by_digest.get(&pending.digest).ok_or_else(|| {
                self.mismatch(&path, "hardlinked file whose content is not in the payload".into())
            })?;
            self.entries[pending.index].checksum = checksum.clone();
        }
        Ok(())
    }
}

/// `a(ayay)` with the capability attribute when present. Names are NUL-terminated bytestrings, as ostree
/// writes them when it reads attributes from disk, so the object checksums match a commit of a real tree.
fn xattrs_variant(capabilities: Option<Vec<u8>>) -> glib::Variant {
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if let Some(value) = capabilities {
        let mut name = CAPABILITY_XATTR.as_bytes().to_vec();
        name.push(0);
        entries.push((name, value));
    }
    entries.to_variant()
}

/// A `dirmeta` object: uid, gid and mode big-endian, then the extended attributes.
pub fn directory_metadata(uid: u32, gid: u32, mode: u32) -> glib::Variant {
    let no_xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    (uid.to_be(), gid.to_be(), (mode | MODE_DIRECTORY).to_be(), no_xattrs).to_variant()
}

/// The permissions ostree gives directories that the payload only implies.
const IMPLIED_DIRECTORY_MODE: u32 = 0o755;

/// Builds and writes the package's tree: directories from the manifest (root-owned; owners are fixed at
/// assembly), implied parents 0755.
fn build_tree(repo: &ostree::Repo, entries: &[ManifestEntry]) -> Result<gio::File, glib::Error> {
    let mut directory_modes: BTreeMap<String, u32> = BTreeMap::new();
    directory_modes.insert(String::new(), IMPLIED_DIRECTORY_MODE);
    for entry in entries {
        let relative = entry.relative_path();
        let mut prefix = String::new();
        let components: Vec<&str> = relative.split('/').filter(|component| !component.is_empty()).collect();
        let parents = if entry.kind() == manifest::EntryKind::Directory {
            components.len()
        } else {
            components.len().saturating_sub(1)
        };
        for component in &components[..parents] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            directory_modes.entry(prefix.clone()).or_insert(IMPLIED_DIRECTORY_MODE);
        }
        if entry.kind() == manifest::EntryKind::Directory {
            directory_modes.insert(relative.to_string(), entry.permissions());
        }
    }
    let mut metadata_by_mode: HashMap<u32, String> = HashMap::new();
    let mut trees: HashMap<String, ostree::MutableTree> = HashMap::new();
    let root = ostree::MutableTree::new();
    for (path, mode) in &directory_modes {
        let checksum = match metadata_by_mode.get(mode) {
            Some(checksum) => checksum.clone(),
            None => {
                let checksum = repo
                    .write_metadata(
                        ostree::ObjectType::DirMeta,
                        None,
                        &directory_metadata(0, 0, *mode),
                        gio::Cancellable::NONE,
                    )?
                    .to_hex();
                metadata_by_mode.insert(*mode, checksum.clone());
                checksum
            }
        };
        let tree = if path.is_empty() {
            root.clone()
        } else {
            let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            let parent_tree = trees.get(parent).cloned().unwrap_or_else(|| root.clone());
            parent_tree.ensure_dir(name)?
        };
        tree.set_metadata_checksum(&checksum);
        trees.insert(path.clone(), tree);
    }
    for entry in entries {
        if entry.kind() == manifest::EntryKind::Directory {
            continue;
        }
        let (parent, name) = entry.relative_path().rsplit_once('/').unwrap_or(("", entry.relative_path()));
        let parent_tree = trees.get(parent).cloned().unwrap_or_else(|| root.clone());
        parent_tree.replace_file(name, &entry.checksum)?;
    }
    repo.write_mtree(&root, gio::Cancellable::NONE)
}

fn commit_metadata(
    identity: &PackageIdentity,
    header: &[u8],
    entries: &[ManifestEntry],
    scripts: &PackageScripts,
) -> glib::Variant {
    let dictionary = glib::VariantDict::new(None);
    // One fixed-size array: `Vec<u8>::to_variant` would build a GVariant per byte.
    dictionary.insert_value(metadata_keys::HEADER, &glib::Variant::array_from_fixed_array(header));
    dictionary
        .insert_value(metadata_keys::HEADER_SHA256, &hex::encode(sha2::Sha256::digest(header)).to_variant());
    dictionary.insert_value(metadata_keys::NEVRA, &identity.nevra.to_variant());
    dictionary.insert_value(metadata_keys::UNPACK_VERSION, &super::UNPACK_VERSION.to_variant());
    dictionary.insert_value(metadata_keys::REPODATA_CHECKSUM, &identity.repodata_checksum.to_variant());
    let repository = glib::VariantDict::new(None);
    repository.insert_value("id", &identity.repository.to_variant());
    dictionary.insert_value(metadata_keys::REPOSITORY, &repository.end());
    dictionary.insert_value(metadata_keys::MANIFEST, &manifest::to_variant(entries));
    let scripts_json = serde_json::to_string(scripts).unwrap_or_default();
    dictionary.insert_value(metadata_keys::SCRIPTS, &scripts_json.to_variant());
    dictionary.insert_value(metadata_keys::IMPORT_FORMAT, &super::IMPORT_FORMAT.to_variant());
    dictionary.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_normalized_absolute_paths() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/usr/bin/ls", Some("/usr/bin/ls")),
            ("/usr/lib/", Some("/usr/lib")),
            ("/", Some("/")),
            ("usr/bin/ls", None),
            ("/usr/../etc/shadow", None),
            ("/usr/./bin", None),
            ("/usr//bin", None),
            ("../../etc/passwd", None),
        ];
        for (input, expected) in cases {
            let result = safe_path("p-1-1.x86_64", Path::new(input));
            assert_eq!(result.ok().as_deref(), *expected, "{input}");
        }
    }

    #[test]
    fn directory_metadata_is_big_endian() {
        let variant = directory_metadata(0, 0, 0o755);
        assert_eq!(variant.type_().as_str(), "(uuua(ayay))");
        let (uid, gid, mode, _) = variant.get::<(u32, u32, u32, Vec<(Vec<u8>, Vec<u8>)>)>().unwrap();
        assert_eq!((u32::from_be(uid), u32::from_be(gid), u32::from_be(mode)), (0, 0, 0o40755));
    }
}
