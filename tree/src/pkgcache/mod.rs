//! The package cache: a bare-user ostree repository in which every RPM is imported once, as its own commit
//! on a branch per NEVRA (`rpmostree/pkg/<name>/<evr>.<arch>`, escaped as rpm-ostree does). Composes check
//! the branch out by hardlinks, so a package is unpacked once however many composes use it.
//!
//! Imports run on several threads, each with its own handle on the repository, inside one transaction:
//! objects are written in parallel, branches become visible only when the transaction commits, and a run
//! killed half-way leaves at most unreferenced objects that the next run reuses.
//!
//! Every compose records when it used each package ([`usage`]), and garbage collection ([`gc`]) evicts
//! the least recently used ones when the cache grows past a maximum.

pub mod gc;
pub mod import;
pub mod manifest;
pub mod objects;
pub mod payload;
pub mod usage;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ostree::gio;
use ostree::glib;

use crate::scriptlets::PackageScripts;
use common::blocking::Cancellation;
pub use import::{ImportError, ImportedPackage};
pub use manifest::ManifestEntry;
use rpmmd::resolve::ResolvedPackage;

/// The package cache's repository in a cache directory.
pub const PACKAGE_CACHE_DIRECTORY: &str = "pkgcache-repo";

/// Every cached package's branch starts so (rpm-ostree's layout).
pub const PACKAGE_BRANCH_PREFIX: &str = "rpmostree/pkg/";

/// rpm-ostree's unpack version: 1 = files imported as they are in the payload.
pub const UNPACK_VERSION: u32 = 1;
/// Our own import format; raising it makes every cached package look stale, so it is re-imported.
pub const IMPORT_FORMAT: u32 = 1;

/// Commit metadata keys of a cached package.
pub mod metadata_keys {
    /// The RPM's main header (`ay`), as rpm-ostree stores it.
    pub const HEADER: &str = "rpmostree.metadata";
    pub const HEADER_SHA256: &str = "rpmostree.metadata_sha256";
    pub const NEVRA: &str = "rpmostree.nevra";
    pub const UNPACK_VERSION: &str = "rpmostree.unpack_version";
    /// The repodata checksum of the RPM (`sha256:hex`): a rebuilt package with the same NEVRA differs here.
    pub const REPODATA_CHECKSUM: &str = "rpmostree.repodata_checksum";
    pub const REPOSITORY: &str = "rpmostree.repo";
    pub const MANIFEST: &str = "arbor.manifest";
    pub const SCRIPTS: &str = "arbor.scripts";
    pub const IMPORT_FORMAT: &str = "arbor.import-format";
}

/// Who a package is and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageIdentity {
    pub name: String,
    /// `[E:]V-R.A`, as branch names use it.
    pub evra: String,
    pub nevra: String,
    pub repository: String,
    pub repodata_checksum: String,
}

impl PackageIdentity {
    pub fn of(package: &ResolvedPackage) -> PackageIdentity {
        PackageIdentity {
            name: package.name.clone(),
            evra: package.evra(),
            nevra: package.nevra(),
            repository: package.repo.clone(),
            repodata_checksum: package.checksum.clone().unwrap_or_default(),
        }
    }

    pub fn branch(&self) -> String {
        format!(
            "{PACKAGE_BRANCH_PREFIX}{}/{}",
            escape_branch_component(&self.name),
            escape_branch_component(&self.evra)
        )
    }
}

/// rpm-ostree's escaping of names and versions in branch names: letters, digits, `.` and `-` stay, `_`
/// doubles, anything else becomes `_XX` (hex), so `1:2.0~rc1` is `1_3A2.0_7Erc1`.
pub fn escape_branch_component(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => escaped.push(byte as char),
            b'_' => escaped.push_str("__"),
            other => escaped.push_str(&format!("_{other:02X}")),
        }
    }
    escaped
}

#[derive(Debug, thiserror::Error)]
pub enum PackageCacheError {
    #[error("package cache {path}: {message}")]
    Repository { path: PathBuf, message: String },
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("package cache {path}: cached package {nevra} ({commit}) is unreadable: {message}")]
    Unreadable { path: PathBuf, nevra: String, commit: String, message: String },
    #[error("importing packages was cancelled")]
    Cancelled,
}

/// A package as the cache holds it.
#[derive(Debug, Clone)]
pub struct CachedPackage {
    pub identity: PackageIdentity,
    pub commit: String,
    pub manifest: Vec<ManifestEntry>,
    pub scripts: PackageScripts,
}

/// What one import run did.
#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    pub imported: usize,
    pub cache_hits: usize,
    pub objects_written: usize,
    pub bytes_written: u64,
}

/// Progress of an import run, for the terminal or server events.
#[derive(Debug, Clone)]
pub struct ImportProgress {
    pub nevra: String,
    pub done: usize,
    pub total: usize,
}

#[derive(Debug)]
pub struct PackageCache {
    repo: ostree::Repo,
    path: PathBuf,
}

impl PackageCache {
    /// Opens the cache repository at `path`, creating a bare-user repository there if there is none.
    pub fn open_or_create(path: &Path) -> Result<PackageCache, PackageCacheError> {
        let error = |message: String| PackageCacheError::Repository { path: path.to_path_buf(), message };
        std::fs::create_dir_all(path).map_err(|source| error(source.to_string()))?;
        let repo = ostree::Repo::new_for_path(path);
        if path.join("config").exists() {
            repo.open(gio::Cancellable::NONE).map_err(|source| error(source.to_string()))?;
        } else {
            repo.create(ostree::RepoMode::BareUser, gio::Cancellable::NONE)
                .map_err(|source| error(source.to_string()))?;
        }
        if repo.mode() != ostree::RepoMode::BareUser {
            return Err(error(format!(
                "is a {:?} repository; the package cache must be bare-user",
                repo.mode()
            )));
        }
        Ok(PackageCache { repo, path: path.to_path_buf() })
    }

    pub fn repo(&self) -> &ostree::Repo {
        &self.repo
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a content object lives on disk (bare-user: a plain file that checkouts hardlink).
    pub fn object_path(&self, checksum: &str) -> PathBuf {
        self.path.join("objects").join(common::ostree_format::loose_object_path(checksum, "file"))
    }

    /// The cached package, if its branch exists and was imported from the same RPM in the current format.
    pub fn lookup(&self, identity: &PackageIdentity) -> Result<Option<CachedPackage>, PackageCacheError> {
        let Some(commit) = self.repo.resolve_rev(&identity.branch(), true).ok().flatten() else {
            return Ok(None);
        };
        let cached = self.load(identity, &commit)?;
        Ok(cached)
    }

    fn load(
        &self,
        identity: &PackageIdentity,
        commit: &str,
    ) -> Result<Option<CachedPackage>, PackageCacheError> {
        let unreadable = |message: String| PackageCacheError::Unreadable {
            path: self.path.clone(),
            nevra: identity.nevra.clone(),
            commit: commit.to_string(),
            message,
        };
        let (commit_variant, state) =
            self.repo.load_commit(commit).map_err(|error| unreadable(error.to_string()))?;
        if state.contains(ostree::RepoCommitState::PARTIAL) {
            // Reached through its branch (or just imported): ostree writes branches only once every
            // object of the transaction is in place, so this is a complete commit whose run was killed
            // before it cleared the mark (see `import_missing`).
            self.repo.mark_commit_partial(commit, false).map_err(|error| unreadable(error.to_string()))?;
        }
        let metadata = glib::VariantDict::new(Some(&commit_variant.child_value(0)));
        let string = |key: &str| metadata.lookup_value(key, None).and_then(|value| value.get::<String>());
        let format =
            metadata.lookup_value(metadata_keys::IMPORT_FORMAT, None).and_then(|value| value.get::<u32>());
        if format != Some(IMPORT_FORMAT)
            || string(metadata_keys::REPODATA_CHECKSUM).as_deref()
                != Some(identity.repodata_checksum.as_str())
        {
            return Ok(None);
        }
        let manifest = metadata
            .lookup_value(metadata_keys::MANIFEST, None)
            .and_then(|value| manifest::from_variant(&value))
            .ok_or_else(|| unreadable("no file manifest".into()))?;
        let scripts: PackageScripts = match string(metadata_keys::SCRIPTS) {
            Some(json) => serde_json::from_str(&json).map_err(|error| unreadable(error.to_string()))?,
            None => return Err(unreadable("no scriptlets".into())),
        };
        Ok(Some(CachedPackage { identity: identity.clone(), commit: commit.to_string(), manifest, scripts }))
    }

    /// Makes sure every package is in the cache, importing the missing ones from their RPM files on
    /// `threads` threads. Returns the cached packages in the order given.
    pub fn ensure_packages(
        &self,
        packages: &[(PackageIdentity, PathBuf)],
        threads: usize,
        progress: &(dyn Fn(ImportProgress) + Sync),
        cancellation: &Cancellation,
    ) -> Result<(Vec<CachedPackage>, ImportSummary), PackageCacheError> {
        let started = std::time::Instant::now();
        let mut summary = ImportSummary::default();
        let mut cached: Vec<Option<CachedPackage>> = Vec::with_capacity(packages.len());
        let mut missing: Vec<usize> = Vec::new();
        for (index, (identity, _)) in packages.iter().enumerate() {
            let hit = self.lookup(identity)?;
            if hit.is_none() {
                missing.push(index);
            } else {
                summary.cache_hits += 1;
            }
            cached.push(hit);
        }
        let looked_up = started.elapsed();
        if !missing.is_empty() {
            // Biggest first, so that the threads finish together.
            missing.sort_by_key(|index| {
                std::cmp::Reverse(
                    std::fs::metadata(&packages[*index].1).map(|metadata| metadata.len()).unwrap_or(0),
                )
            });
            let imported = self.import_missing(packages, &missing, threads, progress, cancellation)?;
            for (index, result) in imported {
                summary.imported += 1;
                summary.objects_written += result.objects_written;
                summary.bytes_written += result.bytes_written;
                let identity = &packages[index].0;
                cached[index] = Some(self.load(identity, &result.commit)?.ok_or_else(|| {
                    PackageCacheError::Unreadable {
                        path: self.path.clone(),
                        nevra: identity.nevra.clone(),
                        commit: result.commit.clone(),
                        message: "just imported, but its metadata does not match".into(),
                    }
                })?);
            }
        }
        let recording = std::time::Instant::now();
        let branches: Vec<String> = packages.iter().map(|(identity, _)| identity.branch()).collect();
        // Advisory: garbage collection would only evict these packages a little early.
        if let Err(error) =
            usage::record_use(&self.path, branches.iter().map(String::as_str), std::time::SystemTime::now())
        {
            tracing::warn!(%error, "could not record the use of cached packages");
        }
        tracing::info!(
            cache_hits = summary.cache_hits,
            imported = summary.imported,
            objects_written = summary.objects_written,
            bytes_written = summary.bytes_written,
            lookup_ms = looked_up.as_millis() as u64,
            usage_recorded_us = recording.elapsed().as_micros() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "package cache ready"
        );
        let cached = cached.into_iter().flatten().collect();
        Ok((cached, summary))
    }

    fn import_missing(
        &self,
        packages: &[(PackageIdentity, PathBuf)],
        missing: &[usize],
        threads: usize,
        progress: &(dyn Fn(ImportProgress) + Sync),
        cancellation: &Cancellation,
    ) -> Result<Vec<(usize, ImportedPackage)>, PackageCacheError> {
        let repository_error = |error: glib::Error| PackageCacheError::Repository {
            path: self.path.clone(),
            message: error.to_string(),
        };
        let objects = objects::ObjectStager::begin(&self.repo, &self.path).map_err(|error| {
            PackageCacheError::Repository { path: self.path.clone(), message: error.to_string() }
        })?;
        self.repo.prepare_transaction(gio::Cancellable::NONE).map_err(repository_error)?;
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, ImportedPackage)>> = Mutex::new(Vec::new());
        let failure: Mutex<Option<PackageCacheError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads.clamp(1, missing.len()) {
                // Clones share the one transaction; libostree allows object writes from several threads
                // within it.
                let repo = self.repo.clone();
                scope.spawn(|| {
                    let repo = repo;
                    loop {
                        if cancellation.is_cancelled()
                            || failure.lock().unwrap_or_else(|poison| poison.into_inner()).is_some()
                        {
                            return;
                        }
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = missing.get(position) else { return };
                        let (identity, rpm_path) = &packages[index];
                        let _span = tracing::info_span!("import", package.nevra = %identity.nevra).entered();
                        // Until the transaction has moved every staged object into place, the commit can
                        // be there without its tree (ostree renames objects in directory order): mark it
                        // partial, as ostree's pull does, so that a run killed meanwhile leaves a commit
                        // that `ostree fsck` knows to be incomplete. (Lookups go through branches, which
                        // the transaction writes last.)
                        let imported = import::import_package(&repo, &objects, rpm_path, identity)
                            .and_then(|imported| mark_partial(&repo, identity, imported));
                        match imported {
                            Ok(imported) => {
                                repo.transaction_set_ref(None, &identity.branch(), Some(&imported.commit));
                                results
                                    .lock()
                                    .unwrap_or_else(|poison| poison.into_inner())
                                    .push((index, imported));
                                progress(ImportProgress {
                                    nevra: identity.nevra.clone(),
                                    done: done.fetch_add(1, Ordering::Relaxed) + 1,
                                    total: missing.len(),
                                });
                            }
                            Err(error) => {
                                failure
                                    .lock()
                                    .unwrap_or_else(|poison| poison.into_inner())
                                    .get_or_insert(PackageCacheError::Import(error));
                            }
                        }
                    }
                });
            }
        });
        // Commit what was imported even if something failed: those packages are complete and valid. Their
        // content objects go into place first, so that no commit is ever visible before its files.
        objects.publish().map_err(|error| PackageCacheError::Repository {
            path: self.path.clone(),
            message: error.to_string(),
        })?;
        self.repo.commit_transaction(gio::Cancellable::NONE).map_err(repository_error)?;
        let results = results.into_inner().unwrap_or_else(|poison| poison.into_inner());
        for (_, imported) in &results {
            self.repo.mark_commit_partial(&imported.commit, false).map_err(repository_error)?;
        }
        if let Some(error) = failure.into_inner().unwrap_or_else(|poison| poison.into_inner()) {
            return Err(error);
        }
        if cancellation.is_cancelled() {
            return Err(PackageCacheError::Cancelled);
        }
        Ok(results)
    }
}

/// Marks the commit of a package imported in the running transaction as partial; see `import_missing`.
fn mark_partial(
    repo: &ostree::Repo,
    identity: &PackageIdentity,
    imported: ImportedPackage,
) -> Result<ImportedPackage, ImportError> {
    match repo.mark_commit_partial(&imported.commit, true) {
        Ok(()) => Ok(imported),
        Err(error) => {
            Err(ImportError::Ostree { package: identity.nevra.clone(), message: error.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_branch_components_as_rpm_ostree() {
        let cases = [
            ("bash", "bash"),
            ("1:5.2.15-2.fc41.x86_64", "1_3A5.2.15-2.fc41.x86__64"),
            ("python3_foo", "python3__foo"),
            ("gcc-c++", "gcc-c_2B_2B"),
            ("2.0~rc1^git", "2.0_7Erc1_5Egit"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_branch_component(input), expected, "{input}");
        }
    }
}
