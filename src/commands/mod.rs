//! One module per command group; each turns parsed arguments into library calls and output.

pub mod arguments;
pub mod cache;
pub mod compose;
pub mod image;
pub mod lockfile;
mod progress;
pub mod remote;
mod report;
mod resolution_output;
pub mod serve;
pub mod token;
pub mod treefile;
pub mod worker;

use std::process::ExitCode;

use treefiles::{Flattened, Problems};

use arguments::TreefileArgs;

/// Loads and flattens a treefile for its architecture.
pub fn load_treefile(arguments: &TreefileArgs) -> Result<Flattened, Problems> {
    ::compose::inputs::load_treefile(&arguments.treefile, &arguments.arch, &arguments.variables())
        .map_err(|error| error.problems().clone())
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
