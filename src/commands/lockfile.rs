//! `arbor lockfile show|merge`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use treefiles::lockfile::{Lockfile, write_atomically};

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
    Ok(Lockfile::merge(lockfiles))
}
