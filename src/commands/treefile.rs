//! `arbor treefile render|check|schema`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use treefiles::{FileSystemLoader, LoadOptions, Variable};

#[derive(Debug, Subcommand)]
pub enum TreefileCommand {
    /// Print the flattened treefile as JSON (like `rpm-ostree compose tree --print-only`).
    Render(LoadArgs),
    /// Check a treefile and everything it includes; list every problem.
    Check(LoadArgs),
    /// Print a JSON Schema for treefiles, for editors.
    Schema,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The treefile (YAML, JSON, or kickstart `.ks`).
    treefile: PathBuf,
    /// Architecture to flatten for (selects `packages-$arch`, `arch-include`, the `basearch` variable).
    #[arg(long, default_value_t = host_arch().to_string())]
    arch: String,
    /// Set a variable, overriding the treefiles' `variables`: NAME=VALUE (true/false, digits, or text).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_variable)]
    variables: Vec<(String, Variable)>,
}

/// The host architecture in rpm's naming.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    }
}

fn parse_variable(text: &str) -> Result<(String, Variable), String> {
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

pub fn run(command: TreefileCommand) -> anyhow::Result<ExitCode> {
    match command {
        TreefileCommand::Render(arguments) => {
            let flattened = match load(&arguments) {
                Ok(flattened) => flattened,
                Err(problems) => return Ok(super::fail_with(&problems)),
            };
            for warning in &flattened.warnings {
                eprintln!("{warning}");
            }
            print!("{}", flattened.render());
            Ok(ExitCode::SUCCESS)
        }
        TreefileCommand::Check(arguments) => match load(&arguments) {
            Ok(flattened) => {
                for warning in &flattened.warnings {
                    eprintln!("{warning}");
                }
                let packages = flattened.treefile.all_packages().len();
                println!(
                    "{}: ok ({} files, {packages} packages, ref {}, arch {})",
                    arguments.treefile.display(),
                    flattened.sources.len(),
                    flattened.treefile.reference.as_deref().unwrap_or_default(),
                    arguments.arch,
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => Ok(super::fail_with(&problems)),
        },
        TreefileCommand::Schema => {
            let schema = serde_json::to_string_pretty(&treefiles::schema::treefile_schema())
                .context("rendering the treefile JSON Schema")?;
            println!("{schema}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(arguments: &LoadArgs) -> Result<treefiles::Flattened, treefiles::Problems> {
    let options = LoadOptions {
        basearch: arguments.arch.clone(),
        variables: arguments.variables.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    tracing::info!(treefile = %arguments.treefile.display(), arch = %options.basearch, "loading treefile");
    treefiles::load(&FileSystemLoader, &arguments.treefile, &options)
}
