//! The treefile's own scripts: every `postprocess` entry in order, then `postprocess-script`, each run
//! inside the new root by the interpreter its `#!` line names (`/bin/sh` without one), as rpm-ostree does.

use std::path::Path;

use treefiles::Flattened;

use crate::sandbox::{ProtectedRoot, SandboxCommand, SandboxError};

/// Scripts without a `#!` line run with the shell, as rpm-ostree runs them.
const DEFAULT_INTERPRETER: &str = "/bin/sh";

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("reading postprocess-script {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// The interpreter (and its arguments) a script's `#!` line asks for.
pub fn interpreter_of(script: &str) -> Vec<String> {
    match script.strip_prefix("#!").and_then(|rest| rest.lines().next()) {
        Some(line) => line.split_whitespace().map(str::to_string).collect(),
        None => vec![DEFAULT_INTERPRETER.to_string()],
    }
}

/// Whether the treefile has `postprocess` scripts or a `postprocess-script`.
pub fn has_treefile_scripts(flattened: &Flattened) -> bool {
    let treefile = &flattened.treefile;
    treefile.postprocess.iter().flatten().next().is_some() || treefile.postprocess_script.is_some()
}

pub fn run_treefile_scripts(root: &ProtectedRoot, flattened: &Flattened) -> Result<usize, ScriptError> {
    let treefile = &flattened.treefile;
    let mut scripts: Vec<(String, String)> = treefile
        .postprocess
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, script)| (format!("postprocess-{index}"), script.clone()))
        .collect();
    if let Some(relative) = &treefile.postprocess_script {
        let path = resolve(&flattened.directory, relative);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ScriptError::Read { path: path.clone(), source })?;
        scripts.push(("postprocess-script".to_string(), text));
    }
    for (description, script) in &scripts {
        let interpreter = interpreter_of(script);
        let interpreter =
            if interpreter.is_empty() { vec![DEFAULT_INTERPRETER.to_string()] } else { interpreter };
        tracing::info!(script = %description, "running treefile script");
        let output =
            root.run(&SandboxCommand::new(description.clone(), interpreter).script(script.clone()))?;
        tracing::debug!(script = %description, output = %output.output, "treefile script finished");
    }
    Ok(scripts.len())
}

fn resolve(directory: &Path, relative: &str) -> std::path::PathBuf {
    let path = Path::new(relative);
    if path.is_absolute() { path.to_path_buf() } else { directory.join(path) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_interpreter_from_the_first_line() {
        let cases: &[(&str, &[&str])] = &[
            ("#!/usr/bin/env bash\nset -e\n", &["/usr/bin/env", "bash"]),
            ("#!/bin/bash -eu\n", &["/bin/bash", "-eu"]),
            ("echo hello\n", &["/bin/sh"]),
            ("  #!/bin/bash\n", &["/bin/sh"]),
        ];
        for (script, expected) in cases {
            assert_eq!(
                interpreter_of(script),
                expected.iter().map(|part| part.to_string()).collect::<Vec<_>>()
            );
        }
    }
}
