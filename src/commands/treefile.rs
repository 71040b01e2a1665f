//! `arbor treefile render|check|schema`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::arguments::TreefileArgs;
use super::load_treefile;

#[derive(Debug, Subcommand)]
pub enum TreefileCommand {
    /// Print the flattened treefile as JSON (like `rpm-ostree compose tree --print-only`).
    Render(TreefileArgs),
    /// Check a treefile and everything it includes; list every problem.
    Check(TreefileArgs),
    /// Print a JSON Schema for treefiles, for editors.
    Schema,
}

pub fn run(command: TreefileCommand) -> anyhow::Result<ExitCode> {
    match command {
        TreefileCommand::Render(arguments) => {
            let flattened = match load_treefile(&arguments) {
                Ok(flattened) => flattened,
                Err(problems) => return Ok(super::fail_with(&problems)),
            };
            for warning in &flattened.warnings {
                eprintln!("{warning}");
            }
            print!("{}", flattened.render());
            Ok(ExitCode::SUCCESS)
        }
        TreefileCommand::Check(arguments) => match load_treefile(&arguments) {
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
