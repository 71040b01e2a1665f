//! `arbor lockfile show|merge`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use compose::inputs::{default_lockfiles, read_lockfiles};
use rpmmd::fetch::{FetchOptions, Fetcher};
use rpmmd::lock_update::{DiffReport, diff_lockfiles, lockfile_from_resolution};
use rpmmd::resolve::{LockSettings, resolve_with};
use treefiles::lockfile::{Lockfile, write_atomically};

use super::arguments::{CacheArgs, TreefileArgs, host_arch, parse_variable_argument};
use super::compose::runtime;

#[derive(Debug, Subcommand)]
pub enum LockfileCommand {
    /// Show the packages of one or more lockfiles, merged left to right.
    Show {
        /// Lockfiles (`manifest-lock.$arch.json`, `manifest-lock.overrides[.$arch].yaml`), in merge order.
        #[arg(required = true)]
        lockfiles: Vec<PathBuf>,
        /// Print the merged lockfile as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Depsolve the treefile afresh (overrides still apply) and write manifest-lock.$arch.json next to it,
    /// printing the package diff against the previous lockfile.
    Update {
        /// The treefile.
        treefile: PathBuf,
        /// Architectures to update (repeat); default: the host's.
        #[arg(long = "arch", value_name = "ARCH")]
        arches: Vec<String>,
        /// Set a variable: NAME=VALUE.
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_variable_argument)]
        variables: Vec<(String, treefiles::Variable)>,
        /// Also record each package's repodata checksum as `digest` (Fedora CoreOS leaves them out).
        #[arg(long)]
        with_digests: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Merge lockfiles left to right (later files win per package) into one rpm-ostree lockfile.
    Merge {
        #[arg(required = true)]
        lockfiles: Vec<PathBuf>,
        /// Write here (atomically) instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

pub fn run(command: LockfileCommand) -> anyhow::Result<ExitCode> {
    match command {
        LockfileCommand::Show { lockfiles, json } => {
            let merged = match read_all(&lockfiles) {
                Ok(merged) => merged,
                Err(code) => return Ok(code),
            };
            if json {
                print!("{}", merged.to_json_string());
                return Ok(ExitCode::SUCCESS);
            }
            let width = merged.packages.keys().map(String::len).max().unwrap_or(0);
            for (name, package) in &merged.packages {
                let source = package
                    .metadata
                    .as_ref()
                    .and_then(|metadata| metadata.get("sourcerpm"))
                    .and_then(|value| value.as_str())
                    .map(|source| format!("  (source {source})"))
                    .unwrap_or_default();
                let digest =
                    package.digest.as_deref().map(|digest| format!("  {digest}")).unwrap_or_default();
                println!("{name:width$}  {}{digest}{source}", package.version.as_str());
            }
            if let Some(generated) =
                merged.metadata.as_ref().and_then(|metadata| metadata.generated.as_deref())
            {
                println!("{} packages, generated {generated}", merged.packages.len());
            } else {
                println!("{} packages", merged.packages.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        LockfileCommand::Update { treefile, arches, variables, with_digests, cache } => {
            let arches = if arches.is_empty() { vec![host_arch().to_string()] } else { arches };
            let fetcher =
                Fetcher::new(FetchOptions::new(cache.directory())).context("setting up downloads")?;
            let runtime = runtime()?;
            for arch in arches {
                let arguments = TreefileArgs {
                    treefile: treefile.clone(),
                    arch: arch.clone(),
                    variables: variables.clone(),
                };
                let flattened = match super::load_treefile(&arguments) {
                    Ok(flattened) => flattened,
                    Err(problems) => return Ok(super::fail_with(&problems)),
                };
                let overrides = match read_lockfiles(&default_lockfiles(&treefile, &arch, false)) {
                    Ok(overrides) => overrides,
                    Err(error) => return Ok(super::fail_with(error.problems())),
                };
                for warning in &overrides.warnings {
                    eprintln!("{warning}");
                }
                let lock = LockSettings { lockfile: overrides.lockfile, strict: false };
                let resolution = runtime
                    .block_on(resolve_with(&fetcher, &flattened, &lock, cache.resolution_cache()))
                    .with_context(|| format!("resolving {} for {arch}", treefile.display()))?
                    .resolution;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|elapsed| elapsed.as_secs())
                    .unwrap_or_default();
                let new = lockfile_from_resolution(&resolution, now, with_digests);
                let path = treefile
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(format!("manifest-lock.{arch}.json"));
                let old =
                    if path.exists() {
                        Some(Lockfile::read(&path).map_err(|problems| {
                            anyhow::anyhow!("reading the previous lockfile: {problems}")
                        })?)
                    } else {
                        None
                    };
                let changes = diff_lockfiles(old.as_ref().unwrap_or(&Lockfile::default()), &new);
                let unchanged = old.as_ref().is_some_and(|old| old.packages == new.packages);
                if unchanged {
                    println!("{}: {} packages, unchanged", path.display(), new.packages.len());
                    continue;
                }
                write_atomically(&path, new.to_json_string().as_bytes())
                    .with_context(|| format!("writing lockfile {}", path.display()))?;
                println!("{}: {} packages", path.display(), new.packages.len());
                print!("{}", DiffReport(&changes));
            }
            Ok(ExitCode::SUCCESS)
        }
        LockfileCommand::Merge { lockfiles, output } => {
            let merged = match read_all(&lockfiles) {
                Ok(merged) => merged,
                Err(code) => return Ok(code),
            };
            let text = merged.to_json_string();
            match output {
                Some(path) => write_atomically(&path, text.as_bytes())
                    .with_context(|| format!("writing lockfile {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads every lockfile (reporting the problems of all of them) and merges them.
fn read_all(paths: &[PathBuf]) -> Result<Lockfile, ExitCode> {
    match read_lockfiles(paths) {
        Ok(merged) => {
            for warning in &merged.warnings {
                eprintln!("{warning}");
            }
            Ok(merged.lockfile.unwrap_or_default())
        }
        Err(error) => {
            super::print_problems(error.problems());
            Err(ExitCode::FAILURE)
        }
    }
}
