//! Depsolving a flattened treefile: its repositories' metadata into a libsolv pool, lockfile
//! enforcement as rpm-ostree does it, then the ordered package set the later compose stages consume;
//! a request whose inputs are unchanged is answered from the resolution cache instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use libsolv::Request;
use treefiles::Flattened;
use treefiles::lockfile::Lockfile;

use crate::checksum::Checksum;
use crate::fetch::{FetchError, FetchedRepository, Fetcher, join_url};
use crate::lock_rules::Constraints;
use crate::repo_file::{RepoFileError, RepoVariables, read_repo_directory, select_repositories};
use crate::resolution_cache::{KeyInputs, ResolutionCache};
use crate::solver_pool::{FileOwnerSource, RepositoryInput, load_pool, solve_pool};
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

/// Whether a resolve may answer from the resolution cache ([`crate::resolution_cache`]) and add to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResolutionCacheMode {
    /// Answer from the cache when every input is unchanged; store what was solved.
    #[default]
    Enabled,
    /// Solve, and neither read nor write the cache.
    Bypassed,
}

/// Where a resolution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolutionOrigin {
    /// Depsolved by this call.
    Solved,
    /// Read from the resolution cache: the same inputs were solved before.
    Cached,
}

/// A resolution and where it came from.
#[derive(Debug, Clone)]
pub struct ResolveOutcome {
    pub resolution: Resolution,
    pub origin: ResolutionOrigin,
}

/// Fetches metadata and depsolves the treefile's packages, answering from the resolution cache when
/// nothing that decides the result changed.
pub async fn resolve(
    fetcher: &Fetcher,
    flattened: &Flattened,
    lock: &LockSettings,
) -> Result<Resolution, ResolveError> {
    Ok(resolve_with(fetcher, flattened, lock, ResolutionCacheMode::Enabled).await?.resolution)
}

/// [`resolve`], with the resolution cache used as `cache_mode` says, telling where the result came from.
pub async fn resolve_with(
    fetcher: &Fetcher,
    flattened: &Flattened,
    lock: &LockSettings,
    cache_mode: ResolutionCacheMode,
) -> Result<ResolveOutcome, ResolveError> {
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

    // The cache is asked once every repomd.xml is read, before any other metadata is looked at.
    let cache = match cache_mode {
        ResolutionCacheMode::Enabled => {
            let inputs = KeyInputs {
                arch: &arch,
                repositories: &repositories,
                request: &request,
                constraints: &constraints,
            };
            Some((ResolutionCache::new(&fetcher.options().cache_directory), inputs.key()))
        }
        ResolutionCacheMode::Bypassed => None,
    };
    if let Some((cache, key)) = cache.clone() {
        let cached = run_blocking("reading the resolution cache", move |_| cache.load(&key)).await?;
        if let Some(resolution) = cached {
            return Ok(ResolveOutcome { resolution, origin: ResolutionOrigin::Cached });
        }
    }
    let resolution = solve_repositories(fetcher, arch, &repositories, request, constraints).await?;
    let resolution = match cache {
        Some((cache, key)) => {
            run_blocking("writing the resolution cache", move |_| {
                cache.store(&key, &resolution);
                resolution
            })
            .await?
        }
        None => resolution,
    };
    Ok(ResolveOutcome { resolution, origin: ResolutionOrigin::Solved })
}

/// Loads the repositories' metadata into a pool (from `.solv` caches where present) and solves.
async fn solve_repositories(
    fetcher: &Fetcher,
    arch: String,
    repositories: &[FetchedRepository],
    request: Request,
    constraints: Constraints,
) -> Result<Resolution, ResolveError> {
    let primary_files = fetch_all(fetcher, repositories, "primary").await?;
    let updateinfo_files = fetch_all(fetcher, repositories, "updateinfo").await?;
    let cache_directory = fetcher.options().cache_directory.clone();

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
