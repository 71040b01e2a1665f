//! What a compose is asked to do: the treefile and what selects its contents, the lockfiles, the cache,
//! the commit's fixed inputs, and for images where the image goes and how it is laid out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use image::compress::Compression;
use image::encapsulate::DEFAULT_MAX_LAYERS;
use image::registry::RegistryOptions;
use rpmmd::resolve::ResolutionCacheMode;
use treefiles::Variable;

/// Which lockfiles constrain depsolving.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LockfileSelection {
    /// `manifest-lock.$arch.json`, `manifest-lock.overrides.yaml` and `manifest-lock.overrides.$arch.yaml`
    /// next to the treefile, where present.
    #[default]
    NextToTreefile,
    /// These files, merged left to right.
    Files(Vec<PathBuf>),
    /// No lockfile at all.
    None,
}

/// `compose tree`: a treefile to an ostree commit.
#[derive(Debug, Clone)]
pub struct TreeRequest {
    /// The treefile (YAML, JSON, or kickstart `.ks`).
    pub treefile: PathBuf,
    /// Architecture to flatten and resolve for (rpm naming).
    pub arch: String,
    /// Variables that win over every treefile's `variables`.
    pub variables: BTreeMap<String, Variable>,
    pub lockfiles: LockfileSelection,
    /// Install nothing that no lockfile names.
    pub lockfile_strict: bool,
    /// Metadata, RPM downloads, the package cache and scratch space.
    pub cache_directory: PathBuf,
    /// The ostree repository to commit to (created bare-user if the directory does not exist).
    pub repo: PathBuf,
    /// Compose even if the input hash equals the previous commit's.
    pub force: bool,
    /// Whether depsolving may answer from the resolution cache (and add to it).
    pub resolution_cache: ResolutionCacheMode,
    /// Resolve and report what would be composed; change nothing.
    pub dry_run: bool,
    /// Commit timestamp and the time of every generated file, for reproducible commits.
    pub source_date_epoch: Option<u64>,
    /// Extra commit metadata; `version` overrides automatic versioning.
    pub add_metadata_strings: BTreeMap<String, String>,
    /// Write the resolved package set here as a lockfile (rpm-ostree's format).
    pub write_lockfile_to: Option<PathBuf>,
    /// Threads for importing packages; 0 means one per core.
    pub threads: usize,
}

impl TreeRequest {
    /// A request with the defaults of `arbor compose tree`.
    pub fn new(
        treefile: impl Into<PathBuf>,
        arch: impl Into<String>,
        cache_directory: impl Into<PathBuf>,
    ) -> Self {
        let cache_directory = cache_directory.into();
        TreeRequest {
            treefile: treefile.into(),
            arch: arch.into(),
            variables: BTreeMap::new(),
            lockfiles: LockfileSelection::default(),
            lockfile_strict: false,
            repo: cache_directory.join(DEFAULT_COMPOSE_REPOSITORY),
            cache_directory,
            force: false,
            resolution_cache: ResolutionCacheMode::Enabled,
            dry_run: false,
            source_date_epoch: None,
            add_metadata_strings: BTreeMap::new(),
            write_lockfile_to: None,
            threads: 0,
        }
    }
}

/// The repository `compose image` commits to when none is given, inside the cache directory.
pub const DEFAULT_COMPOSE_REPOSITORY: &str = "compose-repo";

/// How an image is laid out and where it goes.
#[derive(Debug, Clone)]
pub struct ImageOutput {
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `registry:HOST/REPO:TAG`.
    pub target: String,
    /// The previous build, whose layer layout is kept where that costs less than re-planning, and
    /// whose input hash stops an unchanged compose early. `None`: the image already at `target`, if any.
    pub previous_build: Option<String>,
    /// Layers in the image, the commit layer included.
    pub max_layers: usize,
    /// Image labels (and manifest annotations).
    pub labels: BTreeMap<String, String>,
    pub compression: Compression,
    /// Also tag the image with its version (`org.opencontainers.image.version`) in the target's
    /// repository, before the target's own tag moves (registries and OCI directories).
    pub tag_version: bool,
    /// More tags in the target's repository, moved in order after the version tag and before the
    /// target's own tag (which always moves last).
    pub additional_tags: Vec<String>,
    pub registry: RegistryOptions,
}

impl ImageOutput {
    pub fn new(target: impl Into<String>) -> ImageOutput {
        ImageOutput {
            target: target.into(),
            previous_build: None,
            max_layers: DEFAULT_MAX_LAYERS,
            labels: BTreeMap::new(),
            compression: Compression::Gzip,
            tag_version: false,
            additional_tags: Vec::new(),
            registry: RegistryOptions::default(),
        }
    }
}

/// `compose image`: `compose tree`, then the commit as a chunked OCI image written or pushed.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub tree: TreeRequest,
    pub output: ImageOutput,
}
