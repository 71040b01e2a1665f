//! One module per command group; each turns parsed arguments into library calls and output.

pub mod compose;
pub mod compose_tree;
pub mod image;
pub mod lockfile;
pub mod treefile;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use treefiles::{FileSystemLoader, Flattened, LoadOptions, Problems, Variable};

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

/// Loads and flattens a treefile for the given architecture.
pub fn load_treefile_for(arguments: &TreefileArgs, arch: &str) -> Result<Flattened, Problems> {
    let options = LoadOptions {
        basearch: arch.to_string(),
        variables: arguments.variables.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    tracing::info!(treefile = %arguments.treefile.display(), arch, "loading treefile");
    treefiles::load(&FileSystemLoader, &arguments.treefile, &options)
}

pub fn load_treefile(arguments: &TreefileArgs) -> Result<Flattened, Problems> {
    load_treefile_for(arguments, &arguments.arch)
}

/// Prints every problem (errors and warnings) to stderr, one per line.
pub fn print_problems(problems: &Problems) {
    for diagnostic in &problems.diagnostics {
        eprintln!("{diagnostic}");
    }
}

/// The exit code for a load that found problems: 1, after printing them all.
pub fn fail_with(problems: &Problems) -> ExitCode {
    print_problems(problems);
    let count = problems.errors().count();
    eprintln!("{count} error{} found", if count == 1 { "" } else { "s" });
    ExitCode::FAILURE
}
