//! The libsolv stages of a resolve, on blocking threads: repositories into a pool (from `.solv` caches
//! where present, writing them where not), the owners of file dependencies from filelists, and the solve
//! under the lockfile rules.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use libsolv::{Pool, Request};

use crate::checksum::Checksum;
use crate::filelists::{FileOwner, find_file_owners};
use crate::lock_rules::{Constraints, exclusions};
use crate::resolve::ResolveError;
use common::blocking::run_blocking;

/// What one repository contributes to the pool.
#[derive(Debug, Clone)]
pub(crate) struct RepositoryInput {
    pub(crate) id: String,
    pub(crate) repomd_checksum: Checksum,
    pub(crate) filelists_checksum: Option<Checksum>,
    pub(crate) primary: Option<PathBuf>,
    pub(crate) updateinfo: Option<PathBuf>,
}

/// Where the owners of unresolved file dependencies come from, for one repository (in pool order).
#[derive(Debug, Clone)]
pub(crate) struct FileOwnerSource {
    /// The cached result of a previous scan for the same paths in the same filelists.
    pub(crate) cached: Option<PathBuf>,
    /// The filelists to scan when there is no cached result.
    pub(crate) filelists: Option<PathBuf>,
}

pub(crate) type Solved = Result<(Vec<libsolv::Package>, Vec<String>), Vec<String>>;

/// A prepared pool, the file dependencies nothing in it provides, and the repositories that were
/// loaded from XML and need a `.solv` cache written.
pub(crate) struct LoadedPool {
    pool: Pool,
    handles: Vec<libsolv::RepoHandle>,
    pub(crate) unresolved: Vec<String>,
    caches_to_write: Vec<(libsolv::RepoHandle, PathBuf)>,
}

/// Names the layout of the `.solv` caches this version writes (package details as one attribute,
/// checksums in memory): caches of older layouts still load, but more slowly, so they are not
/// reused.
const SOLV_CACHE_LAYOUT: &str = "v2";

/// Loads every repository (from its `.solv` cache when present, else from primary + updateinfo),
/// prepares the pool, and lists the file dependencies nothing provides.
pub(crate) async fn load_pool(
    arch: String,
    inputs: Vec<RepositoryInput>,
    solv_cache: PathBuf,
) -> Result<LoadedPool, ResolveError> {
    run_blocking("loading repositories into the solver", move |_| {
        let metadata = |error: libsolv::SolvError| ResolveError::Metadata(error.to_string());
        let started = std::time::Instant::now();
        let mut pool = Pool::new(&arch).map_err(metadata)?;
        std::fs::create_dir_all(&solv_cache)
            .map_err(|error| ResolveError::Metadata(format!("{}: {error}", solv_cache.display())))?;
        let mut handles = Vec::new();
        let mut caches_to_write = Vec::new();
        for input in &inputs {
            let cache = solv_cache.join(format!("{}.{SOLV_CACHE_LAYOUT}.solv", input.repomd_checksum.hex));
            let handle = if cache.exists() {
                pool.add_solv_cache_repo(&input.id, 0, &cache).map_err(metadata)?
            } else {
                let primary = input.primary.as_ref().ok_or_else(|| {
                    ResolveError::Metadata(format!("repository {} has no primary metadata", input.id))
                })?;
                let handle = pool
                    .add_rpmmd_repo(&input.id, 0, primary, None, input.updateinfo.as_deref())
                    .map_err(metadata)?;
                caches_to_write.push((handle, cache));
                handle
            };
            handles.push(handle);
        }
        let loaded = started.elapsed();
        pool.prepare();
        let prepared = started.elapsed();
        let unresolved = pool.unresolved_file_dependencies();
        tracing::info!(
            loaded_ms = loaded.as_millis() as u64,
            prepared_ms = prepared.as_millis() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded repositories into the solver pool"
        );
        Ok(LoadedPool { pool, handles, unresolved, caches_to_write })
    })
    .await?
}

/// Adds the owners of unresolved file dependencies, applies lockfile and exclude rules, and solves.
pub(crate) async fn solve_pool(
    loaded: LoadedPool,
    owner_sources: Vec<FileOwnerSource>,
    request: Request,
    constraints: Constraints,
) -> Result<Solved, ResolveError> {
    run_blocking("depsolving", move |_| {
        let LoadedPool { mut pool, handles, unresolved, caches_to_write } = loaded;
        let started = std::time::Instant::now();
        if !unresolved.is_empty() {
            let wanted: HashSet<String> = unresolved.into_iter().collect();
            for (handle, source) in handles.iter().zip(&owner_sources) {
                let owners = file_owners(source, &wanted)?;
                let owners: Vec<(&str, &str, &str, &str)> = owners
                    .iter()
                    .map(|owner| {
                        (owner.name.as_str(), owner.evr.as_str(), owner.arch.as_str(), owner.path.as_str())
                    })
                    .collect();
                pool.add_file_provides(*handle, &owners)
                    .map_err(|error| ResolveError::Metadata(error.to_string()))?;
            }
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "added file provides from filelists"
            );
        }
        // Caches are written once the pool is complete: they record the file provides `prepare` added
        // and those found in filelists, so a later load needs neither search.
        let caching = std::time::Instant::now();
        for (handle, cache) in caches_to_write {
            pool.record_added_file_provides(handle);
            if let Err(error) = pool.write_solv_cache(handle, &cache) {
                tracing::warn!(repo.id = %pool.repo_name(handle), %error, "could not write the solv cache");
            }
        }
        let cached_ms = caching.elapsed().as_millis() as u64;
        let (excluded, warnings) = exclusions(&pool, &handles, &constraints);
        if !excluded.is_empty() {
            pool.set_excluded(&excluded);
        }
        let outcome = pool.solve(&request);
        let solved = started.elapsed();
        let result = match outcome {
            Ok(transaction) => {
                Ok((transaction.install.iter().map(|id| pool.package(*id)).collect(), warnings))
            }
            Err(problems) => Err(problems.problems),
        };
        tracing::info!(
            solved_ms = solved.as_millis() as u64,
            cached_ms,
            elapsed_ms = started.elapsed().as_millis() as u64,
            solved = result.is_ok(),
            "solved"
        );
        Ok(result)
    })
    .await?
}

/// The owners of `wanted` paths in one repository: the cached result of an earlier scan, or a fresh
/// scan of its filelists (then cached, written atomically).
fn file_owners(source: &FileOwnerSource, wanted: &HashSet<String>) -> Result<Vec<FileOwner>, ResolveError> {
    let failed =
        |path: &Path, error: std::io::Error| ResolveError::Metadata(format!("{}: {error}", path.display()));
    let Some(cached) = &source.cached else { return Ok(Vec::new()) };
    if let Ok(text) = std::fs::read_to_string(cached) {
        let owners = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(4, '\t');
                Some(FileOwner {
                    name: fields.next()?.to_string(),
                    evr: fields.next()?.to_string(),
                    arch: fields.next()?.to_string(),
                    path: fields.next()?.to_string(),
                })
            })
            .collect();
        return Ok(owners);
    }
    let Some(filelists) = &source.filelists else { return Ok(Vec::new()) };
    let owners = find_file_owners(filelists, wanted).map_err(|error| failed(filelists, error))?;
    let text: String = owners
        .iter()
        .map(|owner| format!("{}\t{}\t{}\t{}\n", owner.name, owner.evr, owner.arch, owner.path))
        .collect();
    if let Some(directory) = cached.parent() {
        std::fs::create_dir_all(directory).map_err(|error| failed(directory, error))?;
    }
    let temporary = cached.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, cached))
        .map_err(|error| failed(cached, error))?;
    Ok(owners)
}
