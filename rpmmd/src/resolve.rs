//! Depsolving a flattened treefile: its repositories' metadata into a libsolv pool, lockfile
//! enforcement as rpm-ostree does it, then the ordered package set the later compose stages consume.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use libsolv::{Pool, Request, SolvableId};
use treefiles::Flattened;
use treefiles::lockfile::{LockedVersion, Lockfile};

use crate::checksum::Checksum;
use crate::fetch::{FetchError, FetchedRepository, Fetcher, join_url};
use crate::filelists::{FileOwner, find_file_owners};
use crate::repo_file::{RepoFileError, RepoVariables, read_repo_directory, select_repositories};
use crate::rpm_version::normalize_evr;
use common::blocking::run_blocking;

/// How lockfiles constrain the solution.
#[derive(Debug, Clone, Default)]
pub struct LockSettings {
    /// Merged left to right: `manifest-lock.$arch.json`, overrides, ...
    pub lockfile: Option<Lockfile>,
    /// Strict: nothing outside the lockfile may be installed.
    pub strict: bool,
}

/// One package of the solution, with everything the download and import stages need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedPackage {
    pub name: String,
    pub epoch: u64,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub repo: String,
    /// Where to download it: the repository's first working base URL plus the location.
    pub url: String,
    /// Relative to the repository base URL.
    pub location: String,
    pub checksum: Option<String>,
    pub download_size: u64,
    pub install_size: u64,
    pub sourcerpm: Option<String>,
    pub build_time: u64,
    pub license: Option<String>,
}

/// Room for an epoch and the separators of a NEVRA: `-`, `:`, `-`, `.` and up to 20 digits.
const NEVRA_SEPARATORS_AND_EPOCH: usize = 24;

impl ResolvedPackage {
    /// `[E:]V-R`, the epoch left out when zero (as rpm prints it).
    pub fn evr(&self) -> String {
        let mut text = String::with_capacity(self.version.len() + self.release.len() + 8);
        self.push_evr(&mut text);
        text
    }

    pub fn evra(&self) -> String {
        let mut text = String::with_capacity(
            self.version.len() + self.release.len() + self.arch.len() + NEVRA_SEPARATORS_AND_EPOCH,
        );
        self.push_evr(&mut text);
        text.push('.');
        text.push_str(&self.arch);
        text
    }

    pub fn nevra(&self) -> String {
        let mut text = String::with_capacity(
            self.name.len()
                + self.version.len()
                + self.release.len()
                + self.arch.len()
                + NEVRA_SEPARATORS_AND_EPOCH,
        );
        self.push_nevra(&mut text);
        text
    }

    /// Appends `name-[E:]V-R.arch` to `text`. Built by hand rather than with `format!`, which costs
    /// several times more: a resolve prints and hashes the NEVRA of every package (12,884 in the
    /// synthetic benchmark), into one buffer where it can.
    pub fn push_nevra(&self, text: &mut String) {
        text.push_str(&self.name);
        text.push('-');
        self.push_evr(text);
        text.push('.');
        text.push_str(&self.arch);
    }

    /// Appends `[E:]V-R` to `text`.
    fn push_evr(&self, text: &mut String) {
        if self.epoch != 0 {
            text.push_str(&self.epoch.to_string());
            text.push(':');
        }
        text.push_str(&self.version);
        text.push('-');
        text.push_str(&self.release);
    }

    /// The source package's name (`bash` for `bash-5.2.15-2.fc41.src.rpm`), as lockfiles record it.
    pub fn source_name(&self) -> Option<String> {
        let sourcerpm = self.sourcerpm.as_deref()?;
        let stem = sourcerpm.strip_suffix(".src.rpm").or_else(|| sourcerpm.strip_suffix(".nosrc.rpm"))?;
        let (rest, _release) = stem.rsplit_once('-')?;
        let (name, _version) = rest.rsplit_once('-')?;
        Some(name.to_string())
    }
}

/// The state of one repository when it was resolved against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepositorySnapshot {
    pub id: String,
    pub repomd_checksum: String,
    /// Newest metadata timestamp in repomd.xml (seconds since the epoch).
    pub timestamp: Option<u64>,
}

/// The result of depsolving.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolution {
    pub arch: String,
    /// In installation order (dependencies first).
    pub packages: Vec<ResolvedPackage>,
    pub repositories: Vec<RepositorySnapshot>,
    /// Locked packages not found in any repository (a warning unless needed, as in rpm-ostree 2023.1+).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    RepoFile(#[from] RepoFileError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("loading repository metadata: {0}")]
    Metadata(String),
    #[error("\"{package}\" is both in packages and in exclude-packages")]
    ExcludedAndRequested { package: String },
    #[error("the treefile names no repositories (\"repos\")")]
    NoRepositories,
    #[error("depsolving failed with {} problem{}:\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" },
        .problems.iter().enumerate().map(|(index, problem)| format!("  problem {}: {problem}", index + 1)).collect::<Vec<_>>().join("\n"))]
    Unsolvable { problems: Vec<String> },
    #[error(transparent)]
    Blocking(#[from] common::blocking::BlockingError),
}

/// The repositories of a treefile: `repos` then `lockfile-repos`, from `.repo` files next to it.
pub fn treefile_repositories(
    flattened: &Flattened,
) -> Result<(Vec<crate::repo_file::RepoDefinition>, BTreeSet<String>), ResolveError> {
    let treefile = &flattened.treefile;
    let mut variables: RepoVariables = treefile.repovars.clone().unwrap_or_default();
    if let Some(arch) = &treefile.basearch {
        variables.insert("basearch".into(), arch.clone());
    }
    if let Some(releasever) = &treefile.releasever {
        variables.insert("releasever".into(), releasever.to_string());
    }
    let lockfile_repos: BTreeSet<String> = treefile.lockfile_repos.iter().flatten().cloned().collect();
    let mut wanted: Vec<String> = treefile.repos.clone().unwrap_or_default();
    for id in treefile.lockfile_repos.iter().flatten() {
        if !wanted.contains(id) {
            wanted.push(id.clone());
        }
    }
    if wanted.is_empty() {
        return Err(ResolveError::NoRepositories);
    }
    let directory = if flattened.directory.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        flattened.directory.clone()
    };
    let definitions = read_repo_directory(&directory, &variables)?;
    Ok((select_repositories(&definitions, &wanted, &directory)?, lockfile_repos))
}

/// Fetches metadata and depsolves the treefile's packages.
pub async fn resolve(
    fetcher: &Fetcher,
    flattened: &Flattened,
    lock: &LockSettings,
) -> Result<Resolution, ResolveError> {
    let treefile = &flattened.treefile;
    let arch = treefile.basearch.clone().unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let (definitions, lockfile_repos) = treefile_repositories(flattened)?;
    let excluded_names: BTreeSet<String> = treefile.exclude_packages.iter().flatten().cloned().collect();
    if let Some(package) = treefile.all_packages().into_iter().find(|spec| excluded_names.contains(*spec)) {
        return Err(ResolveError::ExcludedAndRequested { package: package.to_string() });
    }

    let repositories = futures_util::future::try_join_all(
        definitions.iter().map(|definition| fetcher.fetch_repository(definition)),
    )
    .await?;
    let primary_files = fetch_all(fetcher, &repositories, "primary").await?;
    let updateinfo_files = fetch_all(fetcher, &repositories, "updateinfo").await?;
    let cache_directory = fetcher.options().cache_directory.clone();

    let request = Request {
        install: treefile.packages.iter().flat_map(|packages| packages.iter().map(str::to_string)).collect(),
        install_from_repo: treefile
            .repo_packages
            .iter()
            .flatten()
            .flat_map(|entry| entry.packages.iter().map(|spec| (entry.repo.clone(), spec.clone())))
            .collect(),
        weak_dependencies: treefile.recommends.unwrap_or(true),
    };
    let constraints = Constraints { lock: lock.clone(), lockfile_repos, excluded_names };

    let inputs: Vec<RepositoryInput> = repositories
        .iter()
        .zip(primary_files.into_iter().zip(updateinfo_files))
        .map(|(repository, (primary, updateinfo))| RepositoryInput {
            id: repository.definition.id.clone(),
            repomd_checksum: repository.repomd_checksum.clone(),
            filelists_checksum: repository.repomd.entry("filelists").map(|entry| entry.checksum.clone()),
            primary,
            updateinfo,
        })
        .collect();
    let loaded = load_pool(arch.clone(), inputs.clone(), cache_directory.join("solv")).await?;
    let unresolved = loaded.unresolved.clone();

    // File dependencies outside primary's file list: find their owners in filelists, from a small
    // per-repository cache when this set of paths was looked up before, else by scanning filelists.
    let mut owner_sources: Vec<FileOwnerSource> = Vec::new();
    if !unresolved.is_empty() {
        tracing::info!(
            count = unresolved.len(),
            "file dependencies outside primary metadata; looking them up in filelists"
        );
        let paths_key = Checksum::sha256_of(unresolved.join("\n").as_bytes()).hex[..16].to_string();
        for (repository, input) in repositories.iter().zip(&inputs) {
            let Some(filelists_checksum) = &input.filelists_checksum else {
                owner_sources.push(FileOwnerSource { cached: None, filelists: None });
                continue;
            };
            let cached = cache_directory
                .join("file-owners")
                .join(format!("{}-{paths_key}.tsv", filelists_checksum.hex));
            let filelists = if cached.exists() {
                None
            } else {
                fetcher.fetch_metadata_file(repository, "filelists").await?
            };
            owner_sources.push(FileOwnerSource { cached: Some(cached), filelists });
        }
    }
    let solved = solve_pool(loaded, owner_sources, request, constraints).await?;
    let (packages, warnings) = solved.map_err(|problems| ResolveError::Unsolvable { problems })?;
    let base_urls: BTreeMap<&str, &str> = repositories
        .iter()
        .map(|repository| (repository.definition.id.as_str(), repository.base_urls[0].as_str()))
        .collect();
    let packages = packages
        .into_iter()
        .map(|package| ResolvedPackage {
            url: join_url(
                base_urls.get(package.repo.as_str()).copied().unwrap_or_default(),
                &package.location,
            ),
            checksum: package.checksum.map(|(kind, hex)| [kind.as_str(), ":", hex.as_str()].concat()),
            name: package.name,
            epoch: package.epoch,
            version: package.version,
            release: package.release,
            arch: package.arch,
            repo: package.repo,
            location: package.location,
            download_size: package.download_size,
            install_size: package.install_size,
            sourcerpm: package.sourcerpm,
            build_time: package.build_time,
            license: package.license,
        })
        .collect();
    let repositories = repositories
        .iter()
        .map(|repository| RepositorySnapshot {
            id: repository.definition.id.clone(),
            repomd_checksum: repository.repomd_checksum.to_string(),
            timestamp: repository.repomd.timestamp(),
        })
        .collect();
    Ok(Resolution { arch, packages, repositories, warnings })
}

async fn fetch_all(
    fetcher: &Fetcher,
    repositories: &[FetchedRepository],
    kind: &str,
) -> Result<Vec<Option<PathBuf>>, ResolveError> {
    let files = futures_util::future::try_join_all(
        repositories.iter().map(|repository| fetcher.fetch_metadata_file(repository, kind)),
    )
    .await?;
    Ok(files)
}

#[derive(Debug, Clone)]
struct Constraints {
    lock: LockSettings,
    lockfile_repos: BTreeSet<String>,
    excluded_names: BTreeSet<String>,
}

/// What one repository contributes to the pool.
#[derive(Debug, Clone)]
struct RepositoryInput {
    id: String,
    repomd_checksum: Checksum,
    filelists_checksum: Option<Checksum>,
    primary: Option<PathBuf>,
    updateinfo: Option<PathBuf>,
}

/// Where the owners of unresolved file dependencies come from, for one repository (in pool order).
#[derive(Debug, Clone)]
struct FileOwnerSource {
    /// The cached result of a previous scan for the same paths in the same filelists.
    cached: Option<PathBuf>,
    /// The filelists to scan when there is no cached result.
    filelists: Option<PathBuf>,
}

type Solved = Result<(Vec<libsolv::Package>, Vec<String>), Vec<String>>;

/// A prepared pool, the file dependencies nothing in it provides, and the repositories that were
/// loaded from XML and need a `.solv` cache written.
struct LoadedPool {
    pool: Pool,
    handles: Vec<libsolv::RepoHandle>,
    unresolved: Vec<String>,
    caches_to_write: Vec<(libsolv::RepoHandle, PathBuf)>,
}

/// Names the layout of the `.solv` caches this version writes (package details as one attribute,
/// checksums in memory): caches of older layouts still load, but more slowly, so they are not
/// reused.
const SOLV_CACHE_LAYOUT: &str = "v2";

/// Loads every repository (from its `.solv` cache when present, else from primary + updateinfo),
/// prepares the pool, and lists the file dependencies nothing provides.
async fn load_pool(
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
async fn solve_pool(
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

/// rpm-ostree's lockfile enforcement. Relaxed: a locked name may only resolve to its pinned version;
/// packages in `lockfile-repos` only when locked; everything else floats. Strict: only locked
/// packages. Plus `exclude-packages`. Returns the excluded solvables and warnings for locked packages
/// that no repository has.
fn exclusions(
    pool: &Pool,
    repositories: &[libsolv::RepoHandle],
    constraints: &Constraints,
) -> (BTreeSet<SolvableId>, Vec<String>) {
    let locked = constraints.lock.lockfile.as_ref().map(|lockfile| &lockfile.packages);
    let mut excluded = BTreeSet::new();
    let mut found: BTreeSet<&str> = BTreeSet::new();
    if locked.is_none() && constraints.excluded_names.is_empty() && constraints.lockfile_repos.is_empty() {
        return (excluded, Vec::new());
    }
    for repository in repositories {
        let in_lockfile_repo = constraints.lockfile_repos.contains(pool.repo_name(*repository));
        for solvable in pool.solvables(*repository) {
            let name = pool.name(solvable);
            if constraints.excluded_names.contains(&name) {
                excluded.insert(solvable);
                continue;
            }
            let entry = locked.and_then(|packages| packages.get_key_value(name.as_str()));
            let keep = match entry {
                Some((locked_name, entry)) => {
                    let matches = lock_matches(pool, solvable, entry);
                    if matches {
                        found.insert(locked_name.as_str());
                    }
                    matches
                }
                None => !constraints.lock.strict && !in_lockfile_repo,
            };
            if !keep {
                excluded.insert(solvable);
            }
        }
    }
    let warnings = locked
        .into_iter()
        .flatten()
        .filter(|(name, _)| !found.contains(name.as_str()))
        .map(|(name, entry)| {
            format!("locked package {name} {} is not in any repository", entry.version.as_str())
        })
        .collect();
    (excluded, warnings)
}

fn lock_matches(pool: &Pool, solvable: SolvableId, entry: &treefiles::lockfile::LockedPackage) -> bool {
    let evr = pool.evr(solvable);
    let version_matches = match &entry.version {
        LockedVersion::Evr(locked) => normalize_evr(locked) == normalize_evr(&evr),
        LockedVersion::Evra(locked) => {
            normalize_evr(locked) == normalize_evr(&format!("{evr}.{}", pool.arch(solvable)))
        }
    };
    if !version_matches {
        return false;
    }
    match &entry.digest {
        None => true,
        Some(digest) => {
            pool.package(solvable).checksum.is_some_and(|(kind, hex)| *digest == format!("{kind}:{hex}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names() {
        let package = |sourcerpm: Option<&str>| ResolvedPackage {
            name: "libfoo".into(),
            epoch: 1,
            version: "1.0".into(),
            release: "1.fc41".into(),
            arch: "x86_64".into(),
            repo: "r".into(),
            url: String::new(),
            location: String::new(),
            checksum: None,
            download_size: 0,
            install_size: 0,
            sourcerpm: sourcerpm.map(str::to_string),
            build_time: 0,
            license: None,
        };
        assert_eq!(package(Some("foo-tools-1.0-1.fc41.src.rpm")).source_name().as_deref(), Some("foo-tools"));
        assert_eq!(package(None).source_name(), None);
        assert_eq!(package(None).nevra(), "libfoo-1:1.0-1.fc41.x86_64");
        assert_eq!(package(None).evra(), "1:1.0-1.fc41.x86_64");
        let without_epoch = ResolvedPackage { epoch: 0, ..package(None) };
        assert_eq!(without_epoch.evr(), "1.0-1.fc41");
        assert_eq!(without_epoch.evra(), "1.0-1.fc41.x86_64");
        assert_eq!(without_epoch.nevra(), "libfoo-1.0-1.fc41.x86_64");
    }
}
