//! One module per command group; each turns parsed arguments into library calls and output.

pub mod lockfile;
pub mod treefile;

use std::process::ExitCode;

use treefiles::Problems;

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
