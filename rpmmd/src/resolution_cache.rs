//! The resolution cache: a depsolve's result kept under a key made of everything that decides it, so an
//! unchanged request answers without loading a single `.solv` file.
//!
//! The key is SHA-256 over length-prefixed records (name, then value), in this order:
//! 1. [`RESOLVER_VERSION`] (arbor's solving rules and this cache's format) and the version of the
//!    libsolv library the process runs with;
//! 2. the architecture;
//! 3. every repository, in pool order: its id, the base URL that served its repomd.xml (package URLs
//!    are made from it), the SHA-256 of its repomd.xml as read after revalidation (which pins every
//!    metadata file and so every package) and whether it is a `lockfile-repos` repository;
//! 4. the request the solver gets: the package specs in order, the `repo-packages` pairs in order, and
//!    whether weak dependencies are installed;
//! 5. the constraints: `exclude-packages`, the merged lockfile's packages (name, `evr` or `evra`,
//!    digest; its free-form metadata decides nothing), whether there is a lockfile, and strict mode.
//!
//! An entry is `CACHE/resolutions/<key>.resolution`: a header (magic, [`RESOLVER_VERSION`], the key, the
//! payload's length and SHA-256) and the payload, the whole [`Resolution`] in a compact binary form
//! ([`crate::resolution_encoding`]). Entries are written to a temporary name and renamed; one that is
//! truncated, corrupt, of another version or for another key is ignored (logged with the reason) and the
//! request solved again, which replaces it. The [`KEPT_RESOLUTIONS`] most recently used entries are kept.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use libsolv::Request;
use sha2::{Digest, Sha256};
use treefiles::lockfile::{LockedPackage, LockedVersion, Lockfile};

use crate::fetch::FetchedRepository;
use crate::lock_rules::Constraints;
use crate::repo_file::RepoDefinition;
use crate::resolution_encoding::{decode, encode};
use crate::resolve::{LockSettings, Resolution};

/// arbor's depsolving rules and the entry format: raise it whenever either changes (what is solved,
/// how lockfiles or exclusions apply, what a [`Resolution`] holds), so that no older answer is reused.
pub const RESOLVER_VERSION: u32 = 1;

/// Entries kept: enough for every stream and architecture a server composes (each has one key while
/// its inputs are unchanged), few enough that the directory stays small (an entry of the 12,884-package
/// synthetic benchmark is 4 MB; a real OS's is a few hundred KB).
pub const KEPT_RESOLUTIONS: usize = 64;

/// The directory of entries inside the cache directory.
pub const RESOLUTIONS_DIRECTORY: &str = "resolutions";

/// The file name suffix of an entry.
const ENTRY_SUFFIX: &str = ".resolution";

/// The first bytes of every entry.
const MAGIC: &[u8; 16] = b"arbor-resolution";

/// Header: magic, version (u32), key (32 bytes), payload length (u64), payload SHA-256 (32 bytes).
const HEADER_BYTES: usize = MAGIC.len() + 4 + 32 + 8 + 32;

/// Tells apart the temporary files of one process (a server stores from several tasks at once).
static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file older than this was left by a process that died while writing it.
const ABANDONED_TEMPORARY_AGE: Duration = Duration::from_secs(3600);

/// What identifies a resolution: the SHA-256 of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResolutionKey([u8; 32]);

impl ResolutionKey {
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Everything a resolve reads to decide its result.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyInputs<'a> {
    pub(crate) arch: &'a str,
    pub(crate) repositories: &'a [FetchedRepository],
    pub(crate) request: &'a Request,
    pub(crate) constraints: &'a Constraints,
}

impl KeyInputs<'_> {
    pub(crate) fn key(&self) -> ResolutionKey {
        self.key_for_version(RESOLVER_VERSION)
    }

    /// The key as a resolver of `version` computes it. Every value below is taken apart completely,
    /// so that a field added to any of them does not compile until it is either recorded or said to
    /// decide nothing.
    fn key_for_version(&self, version: u32) -> ResolutionKey {
        let mut key = KeyRecords(Sha256::new());
        key.record("resolver", &version.to_string());
        key.record("libsolv", &libsolv::library_version());
        key.record("arch", self.arch);
        let Constraints { lock, lockfile_repos, excluded_names } = self.constraints;
        key.count("repositories", self.repositories.len());
        for repository in self.repositories {
            let FetchedRepository { definition, base_urls, repomd: _, repomd_checksum } = repository;
            // The definition decides what is fetched; what was fetched is recorded instead.
            let RepoDefinition {
                id,
                name: _,
                baseurls: _,
                metalink: _,
                mirrorlist: _,
                enabled: _,
                gpgcheck: _,
                gpgkeys: _,
                file: _,
                line: _,
            } = definition;
            key.record("id", id);
            key.record("base-url", base_urls.first().map_or("", String::as_str));
            key.record("repomd", &repomd_checksum.to_string());
            key.record("lockfile-repo", if lockfile_repos.contains(id) { "yes" } else { "no" });
        }
        let Request { install, install_from_repo, weak_dependencies } = self.request;
        key.count("install", install.len());
        for spec in install {
            key.record("spec", spec);
        }
        key.count("install-from-repo", install_from_repo.len());
        for (repository, spec) in install_from_repo {
            key.record("repository", repository);
            key.record("spec", spec);
        }
        key.record("weak-dependencies", if *weak_dependencies { "yes" } else { "no" });
        key.count("lockfile-repos", lockfile_repos.len());
        for id in lockfile_repos {
            key.record("id", id);
        }
        key.count("exclude-packages", excluded_names.len());
        for name in excluded_names {
            key.record("name", name);
        }
        let LockSettings { lockfile, strict } = lock;
        match lockfile {
            None => key.record("lockfile", "none"),
            Some(Lockfile { packages, metadata: _ }) => {
                key.count("lockfile", packages.len());
                for (name, LockedPackage { version, digest, metadata: _ }) in packages {
                    key.record("name", name);
                    match version {
                        LockedVersion::Evr(evr) => key.record("evr", evr),
                        LockedVersion::Evra(evra) => key.record("evra", evra),
                    }
                    key.record("digest", digest.as_deref().unwrap_or(""));
                }
            }
        }
        key.record("strict", if *strict { "yes" } else { "no" });
        ResolutionKey(key.0.finalize().into())
    }
}

/// Length-prefixed records into a hash, so that no two different sequences hash alike.
struct KeyRecords(Sha256);

impl KeyRecords {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn record(&mut self, name: &str, value: &str) {
        self.bytes(name.as_bytes());
        self.bytes(value.as_bytes());
    }

    fn count(&mut self, name: &str, count: usize) {
        self.record(name, &count.to_string());
    }
}

/// The entries of one cache directory.
#[derive(Debug, Clone)]
pub(crate) struct ResolutionCache {
    directory: PathBuf,
}

impl ResolutionCache {
    /// The resolution cache inside `cache_directory`.
    pub(crate) fn new(cache_directory: &Path) -> ResolutionCache {
        ResolutionCache { directory: cache_directory.join(RESOLUTIONS_DIRECTORY) }
    }

    fn entry_path(&self, key: &ResolutionKey) -> PathBuf {
        self.directory.join(format!("{}{ENTRY_SUFFIX}", key.hex()))
    }

    /// The cached resolution for `key`, if there is a sound one. Anything else (no entry, an entry
    /// that is truncated, corrupt, of another version or for another key) is `None`: solve again.
    pub(crate) fn load(&self, key: &ResolutionKey) -> Option<Resolution> {
        let path = self.entry_path(key);
        let opened = std::fs::File::open(&path).and_then(|file| Ok((file.metadata()?.len(), file)));
        let (size, file) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                tracing::debug!(key = %key.hex(), %error, "resolution cache miss");
                return None;
            }
        };
        match read_entry(file, size, key) {
            Ok(resolution) => {
                // Most recently used entries are the ones kept; a cache that cannot be written to
                // still answers.
                let _ = std::fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|file| file.set_modified(SystemTime::now()));
                tracing::info!(key = %key.hex(), packages = resolution.packages.len(), "resolution cache hit");
                Some(resolution)
            }
            Err(reason) => {
                tracing::info!(
                    key = %key.hex(),
                    path = %path.display(),
                    reason,
                    "resolution cache entry unusable; solving again"
                );
                None
            }
        }
    }

    /// Stores `resolution` under `key` (written to a temporary name, then renamed) and removes the
    /// least recently used entries beyond [`KEPT_RESOLUTIONS`]. A cache that cannot be written is
    /// logged, never an error: the resolution stands without it.
    pub(crate) fn store(&self, key: &ResolutionKey, resolution: &Resolution) {
        let path = self.entry_path(key);
        let written = std::fs::create_dir_all(&self.directory).and_then(|()| {
            let temporary = self.directory.join(format!(
                ".{}.partial-{}-{}",
                key.hex(),
                std::process::id(),
                TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&temporary, entry_bytes(key, resolution))
                .and_then(|()| std::fs::rename(&temporary, &path))
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&temporary);
                })
        });
        match written {
            Ok(()) => tracing::debug!(key = %key.hex(), "stored the resolution"),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not write the resolution cache");
                return;
            }
        }
        if let Err(error) = prune(&self.directory, KEPT_RESOLUTIONS) {
            tracing::warn!(directory = %self.directory.display(), %error, "could not prune the resolution cache");
        }
    }
}

/// The bytes of an entry: header, then payload.
fn entry_bytes(key: &ResolutionKey, resolution: &Resolution) -> Vec<u8> {
    let payload = encode(resolution);
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&RESOLVER_VERSION.to_le_bytes());
    bytes.extend_from_slice(&key.0);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);
    bytes
}

/// Reads an entry of `size` bytes from `input`: checks its header against `key` and `size`, decodes
/// the payload as it streams in (the entry is never in memory whole) while hashing it, then checks the
/// checksum and that nothing follows. The error says what is wrong with the entry.
fn read_entry(mut input: impl Read, size: u64, key: &ResolutionKey) -> Result<Resolution, String> {
    let mut header = [0; HEADER_BYTES];
    input.read_exact(&mut header).map_err(|error| match error.kind() {
        std::io::ErrorKind::UnexpectedEof => "shorter than the header".to_string(),
        _ => format!("reading the header: {error}"),
    })?;
    let (magic, rest) = header.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err("not a resolution cache entry (wrong magic)".into());
    }
    let (version, rest) = rest.split_at(4);
    let version = u32::from_le_bytes(version.try_into().map_err(|_| "header")?);
    if version != RESOLVER_VERSION {
        return Err(format!("written by resolver version {version}, this is {RESOLVER_VERSION}"));
    }
    let (stored_key, rest) = rest.split_at(32);
    if stored_key != key.0 {
        return Err(format!("the entry is for key {}", hex::encode(stored_key)));
    }
    let (length, checksum) = rest.split_at(8);
    let length = u64::from_le_bytes(length.try_into().map_err(|_| "header")?);
    // Lengths inside the payload are bounded by this one, so it must be the real one.
    let available = size.saturating_sub(HEADER_BYTES as u64);
    if length != available {
        return Err(format!("the payload is {available} bytes, the header says {length}"));
    }
    let hashing = HashingReader { input: input.take(length), hasher: Sha256::new(), count: 0 };
    let mut payload = BufReader::with_capacity(READ_BUFFER_BYTES, hashing);
    let decoded = decode(&mut payload, length);
    if decoded.is_err() {
        // What did not decode may well be corrupt: the checksum tells.
        let _ = std::io::copy(&mut payload, &mut std::io::sink());
    }
    let HashingReader { input, hasher, count } = payload.into_inner();
    if count != length {
        return Err(format!("the payload is {count} bytes, the header says {length}"));
    }
    if hasher.finalize().as_slice() != checksum {
        return Err("the payload does not match its checksum".into());
    }
    let resolution = decoded.map_err(|error| format!("the payload does not decode: {error}"))?;
    match input.into_inner().read(&mut [0]) {
        Ok(0) => Ok(resolution),
        Ok(_) => Err("bytes follow the payload".into()),
        Err(error) => Err(format!("reading past the payload: {error}")),
    }
}

/// Read buffer of an entry: a few large reads for an entry of megabytes.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Hashes and counts what is read through it.
struct HashingReader<Input> {
    input: Input,
    hasher: Sha256,
    count: u64,
}

impl<Input: Read> Read for HashingReader<Input> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.input.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        self.count += read as u64;
        Ok(read)
    }
}

/// Keeps the `kept` most recently used entries of `directory` and removes the others, and temporary
/// files abandoned by processes that died while writing.
fn prune(directory: &Path, kept: usize) -> std::io::Result<()> {
    let mut entries = Vec::new();
    for item in std::fs::read_dir(directory)? {
        let item = item?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        let Ok(modified) = item.metadata().and_then(|metadata| metadata.modified()) else { continue };
        if name.starts_with('.') && name.contains(".partial-") {
            let age = SystemTime::now().duration_since(modified).unwrap_or_default();
            if age > ABANDONED_TEMPORARY_AGE {
                let _ = std::fs::remove_file(item.path());
            }
        } else if is_entry_name(&name) {
            entries.push((modified, item.path()));
        }
    }
    if entries.len() <= kept {
        return Ok(());
    }
    // Most recently used first.
    entries.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in entries.into_iter().skip(kept) {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::debug!(path = %path.display(), "removed a least recently used resolution"),
            // Another process pruning at the same time removed it first.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Whether `name` is that of an entry: 64 lowercase hex digits and the suffix.
fn is_entry_name(name: &str) -> bool {
    name.strip_suffix(ENTRY_SUFFIX).is_some_and(|stem| {
        stem.len() == 64 && stem.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    })
}

#[cfg(test)]
mod tests;
