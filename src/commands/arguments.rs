//! Command-line arguments shared by several commands, and how they become library requests: the
//! treefile and its variables, lockfiles, the cache, the commit's fixed inputs, image outputs, registries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use compose::{ImageOutput, LockfileSelection, TreeRequest};
use image::compress::Compression;
use image::encapsulate::DEFAULT_MAX_LAYERS;
use image::registry::RegistryOptions;
use rpmmd::resolve::ResolutionCacheMode;
use treefiles::Variable;

/// A treefile and what selects its contents: architecture and variables.
#[derive(Debug, Clone, Args)]
pub struct TreefileArgs {
    /// The treefile (YAML, JSON, or kickstart `.ks`).
    pub treefile: PathBuf,
    /// Architecture to flatten for (selects `packages-$arch`, `arch-include`, the `basearch` variable).
    #[arg(long, default_value_t = host_arch().to_string())]
    pub arch: String,
    /// Set a variable, overriding the treefiles' `variables`: NAME=VALUE (true/false, digits, or text).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_variable_argument)]
    pub variables: Vec<(String, Variable)>,
}

impl TreefileArgs {
    pub fn variables(&self) -> BTreeMap<String, Variable> {
        self.variables.iter().cloned().collect()
    }
}

/// The host architecture in rpm's naming.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    }
}

pub fn parse_variable_argument(text: &str) -> Result<(String, Variable), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("\"{text}\" is not NAME=VALUE"))?;
    if name.is_empty() || !name.chars().all(|character| character.is_ascii_alphanumeric() || character == '_')
    {
        return Err(format!("\"{name}\" is not a variable name (letters, digits, _)"));
    }
    if treefiles::RESERVED_VARIABLES.contains(&name) {
        return Err(format!(
            "\"{name}\" is set by arbor (use --arch for basearch, the treefile for releasever)"
        ));
    }
    Ok((name.to_string(), Variable::from_command_line(value)))
}

pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("\"{text}\" is not KEY=VALUE")),
    }
}

/// Which lockfiles constrain depsolving.
#[derive(Debug, Clone, Args)]
pub struct LockfileArgs {
    /// Lockfiles, merged left to right. Default: manifest-lock.$arch.json, manifest-lock.overrides.yaml
    /// and manifest-lock.overrides.$arch.yaml next to the treefile, where present.
    #[arg(long = "lockfile", value_name = "FILE")]
    pub lockfiles: Vec<PathBuf>,
    /// Install nothing that no lockfile names.
    #[arg(long)]
    pub lockfile_strict: bool,
    /// Use no lockfile at all.
    #[arg(long, conflicts_with = "lockfiles")]
    pub no_lockfiles: bool,
}

impl LockfileArgs {
    pub fn selection(&self) -> LockfileSelection {
        if self.no_lockfiles {
            LockfileSelection::None
        } else if self.lockfiles.is_empty() {
            LockfileSelection::NextToTreefile
        } else {
            LockfileSelection::Files(self.lockfiles.clone())
        }
    }
}

/// Where downloaded metadata, RPMs and the package cache live.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Cache directory. Default: $ARBOR_CACHE_DIR, else $XDG_CACHE_HOME/arbor, else ~/.cache/arbor.
    #[arg(long = "cachedir", value_name = "DIR")]
    pub cache_directory: Option<PathBuf>,
    /// Depsolve without the resolution cache (neither answer from it nor add to it). By default an
    /// unchanged request (repository metadata, packages, exclusions, lockfiles, arch) is answered
    /// from CACHE/resolutions without solving.
    #[arg(long)]
    pub no_resolution_cache: bool,
}

impl CacheArgs {
    pub fn directory(&self) -> PathBuf {
        self.cache_directory.clone().unwrap_or_else(default_cache_directory)
    }

    pub fn resolution_cache(&self) -> ResolutionCacheMode {
        if self.no_resolution_cache { ResolutionCacheMode::Bypassed } else { ResolutionCacheMode::Enabled }
    }
}

fn default_cache_directory() -> PathBuf {
    if let Some(directory) = std::env::var_os("ARBOR_CACHE_DIR") {
        return PathBuf::from(directory);
    }
    if let Some(directory) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(directory).join("arbor");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/arbor"),
        None => std::env::temp_dir().join("arbor-cache"),
    }
}

/// What every compose reads: the treefile, its lockfiles, the cache, and the commit's fixed inputs.
#[derive(Debug, Clone, Args)]
pub struct ComposeInputArgs {
    #[command(flatten)]
    pub treefile: TreefileArgs,
    #[command(flatten)]
    pub lockfiles: LockfileArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Write the resolved package set as a lockfile (rpm-ostree's format).
    #[arg(long, value_name = "FILE")]
    pub write_lockfile_to: Option<PathBuf>,
    /// Write a JSON summary (rpm-ostree's compose.json fields).
    #[arg(long, value_name = "FILE")]
    pub write_composejson_to: Option<PathBuf>,
    /// Compose even if nothing changed since the previous commit.
    #[arg(long)]
    pub force_nocache: bool,
    /// Commit timestamp for reproducible composes (default: $SOURCE_DATE_EPOCH, else now).
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,
    /// Extra commit metadata; `version=X` overrides automatic versioning.
    #[arg(long = "add-metadata-string", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub add_metadata_strings: Vec<(String, String)>,
}

impl ComposeInputArgs {
    /// The library request for these arguments, committing to `repo` (default: `compose-repo` in the
    /// cache directory).
    pub fn request(&self, repo: Option<PathBuf>, dry_run: bool) -> TreeRequest {
        let mut request =
            TreeRequest::new(&self.treefile.treefile, &self.treefile.arch, self.cache.directory());
        if let Some(repo) = repo {
            request.repo = repo;
        }
        request.variables = self.treefile.variables();
        request.lockfiles = self.lockfiles.selection();
        request.lockfile_strict = self.lockfiles.lockfile_strict;
        request.force = self.force_nocache;
        request.resolution_cache = self.cache.resolution_cache();
        request.dry_run = dry_run;
        request.source_date_epoch = self.source_date_epoch;
        request.add_metadata_strings = self.add_metadata_strings.iter().cloned().collect();
        request.write_lockfile_to = self.write_lockfile_to.clone();
        request
    }
}

/// How registries are reached.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Credentials (containers auth.json format). Default: $REGISTRY_AUTH_FILE, the containers auth.json,
    /// then ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Verify TLS certificates (false: also allow plain HTTP, for local registries).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub tls_verify: bool,
}

impl RegistryArgs {
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            auth_file: self.authfile.clone(),
            tls_verify: self.tls_verify,
            ..RegistryOptions::default()
        }
    }
}

/// How the image is laid out and where it goes.
#[derive(Debug, Clone, Args)]
pub struct ImageOutputArgs {
    /// Where to write the image: oci:DIR[:TAG], oci-archive:FILE[:TAG] or registry:HOST/REPO:TAG.
    #[arg(long, value_name = "TARGET")]
    pub output: String,
    /// The previous build, whose layer layout is kept where that costs less than re-planning
    /// (default: the image already at --output, if any).
    #[arg(long, value_name = "IMAGE")]
    pub previous_build: Option<String>,
    /// Layers in the image, the commit layer included (at most 127).
    #[arg(long, default_value_t = DEFAULT_MAX_LAYERS)]
    pub max_layers: usize,
    /// Image label (and manifest annotation): KEY=VALUE.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// Layer compression: gzip (every client) or zstd (ostree-ext 0.13.4 and later).
    #[arg(long, default_value = "gzip", value_parser = parse_compression)]
    pub compression: Compression,
    /// Also tag the image with its version, before the output's own tag moves.
    #[arg(long)]
    pub tag_version: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl ImageOutputArgs {
    pub fn output(&self) -> ImageOutput {
        ImageOutput {
            target: self.output.clone(),
            previous_build: self.previous_build.clone(),
            max_layers: self.max_layers,
            labels: self.labels.iter().cloned().collect(),
            compression: self.compression,
            tag_version: self.tag_version,
            additional_tags: Vec::new(),
            registry: self.registry.options(),
        }
    }
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    Compression::parse(text).ok_or_else(|| format!("\"{text}\" is not gzip or zstd"))
}
