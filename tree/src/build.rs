//! Building the commit from downloaded packages: import them into the package cache, assemble the root,
//! run scriptlets and postprocessing in bubblewrap, write the rpmdb, commit, and publish the branch. All of
//! it is blocking work; `compose` calls it through the blocking door, with a cancellation that every long
//! phase checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::blocking::{BackgroundWork, Cancellation};
use ostree::gio;
use rpmmd::resolve::Resolution;
use treefiles::Flattened;

use crate::assemble::{self, TreeUnion};
use crate::metadata::{self, CommitInformation, read_commit_information};
use crate::pkgcache::{CachedPackage, ImportProgress, ImportSummary, PackageCache, PackageIdentity};
use crate::scripts;
use crate::workdir::WorkDirectory;

/// Where and how to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The ostree repository to commit to (created bare-user if missing).
    pub repo: PathBuf,
    /// Package cache and scratch space; must be on one file system (hardlinks).
    pub cache_directory: PathBuf,
    /// Commit timestamp, and the time every generated file gets (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<u64>,
    /// `--add-metadata-string KEY=VALUE`; `version` here overrides automatic versioning.
    pub add_metadata_strings: BTreeMap<String, String>,
    /// Threads for importing packages.
    pub threads: usize,
}

/// What a build is given: the flattened treefile and its resolved, downloaded packages.
#[derive(Debug)]
pub struct BuildInputs<'a> {
    pub flattened: &'a Flattened,
    /// The treefile's `ref`.
    pub reference: &'a str,
    pub inputhash: &'a str,
    pub resolution: &'a Resolution,
    /// The downloaded package of each resolved package, in the resolution's order.
    pub rpm_paths: &'a [PathBuf],
    /// The ref's commit in the target repository before this build, with its metadata.
    pub previous: Option<&'a (String, CommitInformation)>,
}

/// The phases of a build, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildPhase {
    Importing,
    Assembling,
    Scriptlets,
    Postprocessing,
    Initramfs,
    Committing,
    Publishing,
}

impl BuildPhase {
    /// What the phase does, for people ("importing packages").
    pub fn description(self) -> &'static str {
        match self {
            BuildPhase::Importing => "importing packages",
            BuildPhase::Assembling => "assembling the tree",
            BuildPhase::Scriptlets => "running scriptlets",
            BuildPhase::Postprocessing => "postprocessing",
            BuildPhase::Initramfs => "generating the initramfs",
            BuildPhase::Committing => "committing",
            BuildPhase::Publishing => "publishing",
        }
    }
}

/// What a build is doing, as it happens.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    PhaseStarted(BuildPhase),
    Imported(ImportProgress),
}

/// The commit a build wrote and published.
#[derive(Debug, Clone)]
pub struct BuiltCommit {
    pub commit: String,
    /// The checksum of the commit's root tree (dirtree + dirmeta), rpm-ostree's `ostree-content-checksum`.
    pub content_checksum: String,
    pub version: Option<String>,
    pub timestamp: u64,
    pub statistics: crate::commit::TreeStatistics,
    pub import: ImportSummary,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    PackageCache(#[from] crate::pkgcache::PackageCacheError),
    #[error(transparent)]
    CacheLock(#[from] crate::workdir::CacheLockError),
    #[error("assembling the tree")]
    Assemble(#[from] assemble::AssembleError),
    #[error(transparent)]
    Scriptlet(#[from] crate::scriptlets::ScriptletError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error("running treefile scripts")]
    Script(#[from] scripts::ScriptError),
    #[error("postprocessing")]
    Postprocess(#[from] crate::postprocess::PostprocessError),
    #[error("reading users and groups of the tree")]
    Passwd(#[from] crate::passwd::PasswdError),
    #[error("writing the rpm database")]
    Rpmdb(#[from] crate::rpmdb::RpmdbError),
    #[error("committing")]
    Commit(#[from] crate::commit::CommitError),
    #[error("ostree repository {path}: {message}")]
    Repository { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("cancelled while {phase}")]
    Cancelled { phase: &'static str },
}

impl BuildError {
    /// The phase a cancelled build stopped in; `None` for a build that failed.
    pub fn cancelled_phase(&self) -> Option<&'static str> {
        match self {
            BuildError::Cancelled { phase } => Some(phase),
            BuildError::PackageCache(crate::pkgcache::PackageCacheError::Cancelled) => {
                Some(BuildPhase::Importing.description())
            }
            BuildError::Scriptlet(crate::scriptlets::ScriptletError::Cancelled { .. }) => {
                Some(BuildPhase::Scriptlets.description())
            }
            _ => None,
        }
    }
}

/// Opens the target repository, creating a bare-user one if the directory does not exist yet.
pub fn open_target_repository(path: &Path) -> Result<ostree::Repo, BuildError> {
    let error = |message: String| BuildError::Repository { path: path.to_path_buf(), message };
    let repo = ostree::Repo::new_for_path(path);
    if path.join("config").exists() {
        repo.open(gio::Cancellable::NONE).map_err(|source| error(source.to_string()))?;
    } else {
        std::fs::create_dir_all(path).map_err(|source| error(source.to_string()))?;
        repo.create(ostree::RepoMode::BareUser, gio::Cancellable::NONE)
            .map_err(|source| error(source.to_string()))?;
    }
    Ok(repo)
}

/// The commit `revision` (a checksum or ref) names in the repository at `path`, with its metadata.
pub fn commit_information(path: &Path, revision: &str) -> Result<(String, CommitInformation), BuildError> {
    let error = |message: String| BuildError::Repository { path: path.to_path_buf(), message };
    let repo = ostree::Repo::new_for_path(path);
    repo.open(gio::Cancellable::NONE).map_err(|source| error(source.to_string()))?;
    let commit = repo
        .resolve_rev(revision, false)
        .map_err(|source| error(source.to_string()))?
        .ok_or_else(|| error(format!("no commit or ref \"{revision}\"")))?;
    let information = read_commit_information(&repo, &commit).map_err(|source| error(source.to_string()))?;
    Ok((commit.to_string(), information))
}

/// The commit of `reference` in the repository at `path`, if any, with its metadata.
pub fn previous_commit(
    path: &Path,
    reference: &str,
) -> Result<Option<(String, CommitInformation)>, BuildError> {
    if !path.join("config").exists() {
        return Ok(None);
    }
    let repo = open_target_repository(path)?;
    let error = |message: String| BuildError::Repository { path: path.to_path_buf(), message };
    let Some(commit) = repo.resolve_rev(reference, true).map_err(|source| error(source.to_string()))? else {
        return Ok(None);
    };
    let information = read_commit_information(&repo, &commit).map_err(|source| error(source.to_string()))?;
    Ok(Some((commit.to_string(), information)))
}

/// Builds the commit of `inputs` and moves the ref in the target repository to it. Blocking; stops with
/// [`BuildError::Cancelled`] at the next phase (or inside import and scriptlets) once `cancellation` is
/// raised, leaving both repositories as they were before (objects already imported stay in the cache).
pub fn build_commit(
    inputs: &BuildInputs<'_>,
    options: &BuildOptions,
    progress: &(dyn Fn(BuildEvent) + Sync),
    cancellation: &Cancellation,
) -> Result<BuiltCommit, BuildError> {
    let BuildInputs { flattened, reference, inputhash, resolution, rpm_paths, previous } = *inputs;
    let treefile = &flattened.treefile;
    let start = |phase: BuildPhase| -> Result<(), BuildError> {
        if cancellation.is_cancelled() {
            return Err(BuildError::Cancelled { phase: phase.description() });
        }
        progress(BuildEvent::PhaseStarted(phase));
        Ok(())
    };
    let cache = PackageCache::open_or_create(
        &options.cache_directory.join(crate::pkgcache::PACKAGE_CACHE_DIRECTORY),
    )?;
    let work = WorkDirectory::create(&options.cache_directory)?;

    // The rpm database needs only the package files: record it on another thread while packages are
    // imported, the tree is assembled (mostly waiting on the file system) and the scriptlets run.
    let recorded_database = {
        let scratch = work.rpmdb_scratch();
        let package_files: Vec<crate::rpmdb::PackageFile> = resolution
            .packages
            .iter()
            .zip(rpm_paths)
            .map(|(package, path)| crate::rpmdb::PackageFile { nevra: package.nevra(), path: path.clone() })
            .collect();
        let epoch = options.source_date_epoch.map(|epoch| epoch as i64);
        let record = move || crate::rpmdb::record_rpmdb_apart(&scratch, &package_files, epoch);
        BackgroundWork::start("rpmdb", record).map_err(|error| BuildError::Io {
            path: work.rpmdb_scratch(),
            message: format!("starting the rpm database thread: {error}"),
        })?
    };
    start(BuildPhase::Importing)?;
    let identities: Vec<(PackageIdentity, PathBuf)> = resolution
        .packages
        .iter()
        .zip(rpm_paths)
        .map(|(package, path)| (PackageIdentity::of(package), path.clone()))
        .collect();
    let (packages, import_summary) = cache.ensure_packages(
        &identities,
        options.threads,
        &|event| progress(BuildEvent::Imported(event)),
        cancellation,
    )?;

    start(BuildPhase::Assembling)?;
    let union = TreeUnion::build(&packages, treefile.documentation.unwrap_or(true))?;
    let root = work.root();
    let checkout = assemble::checkout(&cache, &union, &root)?;
    tracing::info!(
        paths.reused = checkout.paths_reused,
        paths.removed = checkout.paths_removed,
        files.linked = checkout.files_linked,
        "tree checked out"
    );
    let files_by_package = union.files_by_package(&packages);

    start(BuildPhase::Scriptlets)?;
    let environment = sandbox_environment(options.source_date_epoch);
    let scripted: Vec<crate::scriptlets::ScriptedPackage<'_>> =
        packages.iter().map(|package| scripted_package(package, &files_by_package)).collect();
    // The tree is mounted only for phases that have something to run: a mount costs tens of milliseconds.
    let has_scripts = |phases: &[crate::scriptlets::Phase]| {
        phases.iter().any(|phase| scripted.iter().any(|package| package.scripts.has(*phase)))
    };
    if has_scripts(&[crate::scriptlets::Phase::Pre]) {
        let protected = mount_protected(&root, &work.mountpoint(), &environment)?;
        crate::scriptlets::run_phase(&protected, crate::scriptlets::Phase::Pre, &scripted, cancellation)?;
    }
    let users = crate::passwd::PasswdDatabase::read(&root)?;
    let ownership = assemble::apply_ownership(&root, &union, &packages, &users)?;
    for (package, path, owner) in &ownership.unknown_owners {
        tracing::warn!(package.nevra = %package, path = %path, owner = %owner, "owner not in the tree's passwd/group; using root");
    }
    let later_phases = [
        crate::scriptlets::Phase::Post,
        crate::scriptlets::Phase::TransFileTriggerIn,
        crate::scriptlets::Phase::PostTrans,
    ];
    if has_scripts(&later_phases) {
        let protected = mount_protected(&root, &work.mountpoint(), &environment)?;
        for phase in later_phases {
            crate::scriptlets::run_phase(&protected, phase, &scripted, cancellation)?;
        }
    }

    start(BuildPhase::Postprocessing)?;
    let context = crate::postprocess::PostprocessContext { package_files: &files_by_package };
    let mut report = crate::postprocess::before_scripts(&root, flattened, &context)?;
    if scripts::has_treefile_scripts(flattened) {
        let protected = mount_protected(&root, &work.mountpoint(), &environment)?;
        scripts::run_treefile_scripts(&protected, flattened)?;
    }
    crate::rpmdb::install_rpmdb(recorded_database.finish()?, &root)?;
    report.absorb(crate::postprocess::finalize(&root, flattened)?);
    if let Some(initramfs) = &report.initramfs_command {
        start(BuildPhase::Initramfs)?;
        run_initramfs(&root, &work.mountpoint(), &environment, initramfs)?;
    }
    for note in &report.notes {
        tracing::info!("{note}");
    }
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }

    start(BuildPhase::Committing)?;
    let timestamp = options.source_date_epoch.unwrap_or_else(now);
    let version = options.add_metadata_strings.get(metadata::VERSION).cloned().or_else(|| {
        treefile.automatic_version_prefix.as_deref().map(|prefix| {
            metadata::next_version(
                prefix,
                treefile.automatic_version_suffix.as_deref(),
                previous.and_then(|(_, information)| information.version.as_deref()),
                timestamp,
            )
        })
    });
    let commit_metadata = metadata::CommitMetadata {
        version: version.clone(),
        inputhash,
        resolution,
        kernel_version: report.kernel_version.clone().filter(|_| report.bootable),
        add_commit_metadata: treefile.add_commit_metadata.clone().unwrap_or_default(),
        add_metadata_strings: options.add_metadata_strings.clone(),
    };
    let repo = cache.repo();
    let repository_error = |error: ostree::glib::Error| BuildError::Repository {
        path: cache.path().to_path_buf(),
        message: error.to_string(),
    };
    repo.prepare_transaction(gio::Cancellable::NONE).map_err(repository_error)?;
    let (tree, statistics) = crate::commit::write_tree(repo, &root, &checkout)?;
    // The parent is the target's commit even when this cache never saw it (a fresh or cleared cache):
    // a commit only records its parent's checksum, and the target has the parent.
    let parent = previous.map(|(commit, _)| commit.as_str());
    let commit = repo
        .write_commit_with_time(
            parent,
            version.as_deref().or(Some(reference)),
            None,
            Some(&commit_metadata.to_variant()),
            &tree,
            timestamp,
            gio::Cancellable::NONE,
        )
        .map_err(repository_error)?;
    // Partial until the transaction has moved every object into place (see `PackageCache`'s imports).
    repo.mark_commit_partial(&commit, true).map_err(repository_error)?;
    repo.commit_transaction(gio::Cancellable::NONE).map_err(repository_error)?;
    repo.mark_commit_partial(&commit, false).map_err(repository_error)?;
    let content_checksum = crate::commit::content_checksum(&tree);

    start(BuildPhase::Publishing)?;
    let target = open_target_repository(&options.repo)?;
    crate::commit::publish(&target, cache.repo(), &commit, reference)?;
    drop(work);

    Ok(BuiltCommit {
        commit: commit.to_string(),
        content_checksum,
        version,
        timestamp,
        statistics,
        import: import_summary,
    })
}

fn scripted_package<'a>(
    package: &'a CachedPackage,
    files_by_package: &'a BTreeMap<String, Vec<String>>,
) -> crate::scriptlets::ScriptedPackage<'a> {
    crate::scriptlets::ScriptedPackage {
        nevra: &package.identity.nevra,
        name: &package.identity.name,
        scripts: &package.scripts,
        files: files_by_package.get(&package.identity.name).map_or(&[], Vec::as_slice),
    }
}

/// Runs dracut in the tree. The tree's /etc is already at /usr/etc; dracut reads its configuration from
/// /etc, so a temporary `/etc -> usr/etc` link stands in while it runs.
fn run_initramfs(
    root: &Path,
    mountpoint: &Path,
    environment: &[(String, String)],
    initramfs: &crate::postprocess::InitramfsCommand,
) -> Result<(), BuildError> {
    let etc = root.join("etc");
    let linked = !etc.exists() && root.join("usr/etc").is_dir();
    if linked {
        std::os::unix::fs::symlink("usr/etc", &etc)
            .map_err(|error| BuildError::Io { path: etc.clone(), message: error.to_string() })?;
    }
    let result = (|| {
        let protected = mount_protected(root, mountpoint, environment)?;
        let command = crate::sandbox::SandboxCommand::new(
            format!("dracut-{}", initramfs.kernel_version),
            initramfs.argv.clone(),
        );
        protected.run(&command)?;
        Ok(())
    })();
    if linked {
        std::fs::remove_file(&etc)
            .map_err(|error| BuildError::Io { path: etc.clone(), message: error.to_string() })?;
    }
    result
}

fn mount_protected(
    root: &Path,
    mountpoint: &Path,
    environment: &[(String, String)],
) -> Result<crate::sandbox::ProtectedRoot, BuildError> {
    let mut protected = crate::sandbox::ProtectedRoot::mount(root, mountpoint)?;
    for (name, value) in environment {
        protected.set_environment(name.clone(), value.clone());
    }
    Ok(protected)
}

fn sandbox_environment(source_date_epoch: Option<u64>) -> Vec<(String, String)> {
    source_date_epoch
        .map(|epoch| vec![("SOURCE_DATE_EPOCH".to_string(), epoch.to_string())])
        .unwrap_or_default()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs())
}
