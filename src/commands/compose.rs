//! `arbor compose resolve`: depsolve a treefile against its repositories under its lockfiles.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use composer::fetch::{FetchOptions, Fetcher};
pub use composer::human::human_bytes;
use composer::resolve::{LockSettings, Resolution, resolve};
use treefiles::Flattened;
use treefiles::lockfile::Lockfile;

use super::{TreefileArgs, load_treefile};

#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Depsolve the treefile and print the package set (nothing is downloaded but metadata).
    Resolve {
        #[command(flatten)]
        treefile: TreefileArgs,
        #[command(flatten)]
        lockfiles: LockfileArgs,
        #[command(flatten)]
        cache: CacheArgs,
        /// Print JSON (packages, repositories, inputhash) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compose the treefile into an ostree commit (download, import, assemble, scriptlets, commit).
    Tree(Box<super::compose_tree::TreeArgs>),
    /// Show the package changes between two commits.
    Diff(super::compose_tree::DiffArgs),
    /// Compose the treefile into a chunked OCI image (compose tree + encapsulate + write or push).
    Image(Box<super::image::ComposeImageArgs>),
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

/// Where downloaded metadata (and later RPMs) are cached.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Cache directory. Default: $ARBOR_CACHE_DIR, else $XDG_CACHE_HOME/arbor, else ~/.cache/arbor.
    #[arg(long = "cachedir", value_name = "DIR")]
    pub cache_directory: Option<PathBuf>,
}

impl CacheArgs {
    pub fn fetcher(&self) -> anyhow::Result<Fetcher> {
        let directory = match &self.cache_directory {
            Some(directory) => directory.clone(),
            None => default_cache_directory(),
        };
        Fetcher::new(FetchOptions::new(directory)).context("setting up downloads")
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

/// The lockfiles next to a treefile that apply to `arch`, in merge order.
pub fn default_lockfiles(treefile: &Path, arch: &str, include_main: bool) -> Vec<PathBuf> {
    let directory = treefile.parent().unwrap_or(Path::new("."));
    let mut names = Vec::new();
    if include_main {
        names.push(format!("manifest-lock.{arch}.json"));
    }
    names.push("manifest-lock.overrides.yaml".to_string());
    names.push(format!("manifest-lock.overrides.{arch}.yaml"));
    names.into_iter().map(|name| directory.join(name)).filter(|path| path.exists()).collect()
}

/// Reads and merges lockfiles, printing every problem of every file on failure.
pub fn read_lockfiles(paths: &[PathBuf]) -> Result<Option<Lockfile>, ExitCode> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut lockfiles = Vec::new();
    let mut failed = false;
    for path in paths {
        match Lockfile::read(path) {
            Ok(lockfile) => lockfiles.push(lockfile),
            Err(problems) => {
                super::print_problems(&problems);
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitCode::FAILURE);
    }
    Ok(Some(Lockfile::merge(lockfiles)))
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

pub fn run(command: ComposeCommand) -> anyhow::Result<ExitCode> {
    match command {
        ComposeCommand::Tree(arguments) => super::compose_tree::run_tree(*arguments),
        ComposeCommand::Diff(arguments) => super::compose_tree::run_diff(arguments),
        ComposeCommand::Image(arguments) => super::image::run_compose_image(*arguments),
        ComposeCommand::Resolve { treefile, lockfiles, cache, json } => {
            let flattened = match load_treefile(&treefile) {
                Ok(flattened) => flattened,
                Err(problems) => return Ok(super::fail_with(&problems)),
            };
            let paths = if lockfiles.no_lockfiles {
                Vec::new()
            } else if lockfiles.lockfiles.is_empty() {
                default_lockfiles(&treefile.treefile, &treefile.arch, true)
            } else {
                lockfiles.lockfiles.clone()
            };
            for path in &paths {
                tracing::info!(lockfile = %path.display(), "using lockfile");
            }
            let lockfile = match read_lockfiles(&paths) {
                Ok(lockfile) => lockfile,
                Err(code) => return Ok(code),
            };
            let lock = LockSettings { lockfile, strict: lockfiles.lockfile_strict };
            let fetcher = cache.fetcher()?;
            let resolution = runtime()?
                .block_on(resolve(&fetcher, &flattened, &lock))
                .with_context(|| format!("resolving {}", treefile.treefile.display()))?;
            let inputhash = input_hash(&flattened, &resolution)?;
            for warning in &resolution.warnings {
                eprintln!("warning: {warning}");
            }
            if json {
                let output = serde_json::json!({
                    "arch": resolution.arch,
                    "inputhash": inputhash,
                    "packages": resolution.packages,
                    "repositories": resolution.repositories,
                    "warnings": resolution.warnings,
                });
                println!("{}", serde_json::to_string_pretty(&output).context("rendering JSON")?);
            } else {
                print_table(&resolution, &inputhash);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn input_hash(flattened: &Flattened, resolution: &Resolution) -> anyhow::Result<String> {
    composer::inputhash::input_hash(flattened, resolution, |path| std::fs::read(path))
        .context("computing the input hash")
}

fn print_table(resolution: &Resolution, inputhash: &str) {
    let width = resolution.packages.iter().map(|package| package.nevra().len()).max().unwrap_or(0);
    for package in &resolution.packages {
        println!("{:width$}  {}", package.nevra(), package.repo);
    }
    let download: u64 = resolution.packages.iter().map(|package| package.download_size).sum();
    let installed: u64 = resolution.packages.iter().map(|package| package.install_size).sum();
    println!(
        "{} packages ({} to download, {} installed), inputhash {inputhash}",
        resolution.packages.len(),
        human_bytes(download),
        human_bytes(installed)
    );
}
