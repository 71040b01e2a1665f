//! The inputs of a compose read from disk: the flattened treefile for the architecture, and the lockfiles
//! that constrain it, merged left to right. Every problem of every file is kept for the caller to show.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rpmmd::resolve::LockSettings;
use treefiles::lockfile::Lockfile;
use treefiles::{Diagnostic, FileSystemLoader, Flattened, LoadOptions, Problems, Variable};

use crate::request::LockfileSelection;

/// A loaded treefile with its lockfiles.
#[derive(Debug, Clone)]
pub struct ComposeInputs {
    pub flattened: Flattened,
    pub lock: LockSettings,
    /// The lockfiles that were read, in merge order.
    pub lockfile_paths: Vec<PathBuf>,
    /// What the lockfiles had that does not stop a compose (the treefile's are in `flattened.warnings`).
    pub lockfile_warnings: Vec<Diagnostic>,
}

/// Why the inputs could not be read: every problem found, with file:line:column.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{} error{} in treefile {}", .problems.errors().count(), plural(.problems.errors().count()), .treefile.display())]
    Treefile { treefile: PathBuf, problems: Problems },
    #[error("{} error{} in lockfiles", .problems.errors().count(), plural(.problems.errors().count()))]
    Lockfiles { problems: Problems },
}

impl InputError {
    /// Every diagnostic, errors and warnings, in the order found.
    pub fn problems(&self) -> &Problems {
        match self {
            InputError::Treefile { problems, .. } | InputError::Lockfiles { problems } => problems,
        }
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// The lockfiles next to a treefile that apply to `arch`, in merge order; `include_main` adds
/// `manifest-lock.$arch.json` before the overrides.
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

/// Loads and flattens a treefile for `arch`.
pub fn load_treefile(
    treefile: &Path,
    arch: &str,
    variables: &BTreeMap<String, Variable>,
) -> Result<Flattened, InputError> {
    let options = LoadOptions { basearch: arch.to_string(), variables: variables.clone() };
    tracing::info!(treefile = %treefile.display(), arch, "loading treefile");
    treefiles::load(&FileSystemLoader, treefile, &options)
        .map_err(|problems| InputError::Treefile { treefile: treefile.to_path_buf(), problems })
}

/// Lockfiles merged left to right, with the warnings found in them.
#[derive(Debug, Clone, Default)]
pub struct MergedLockfiles {
    /// `None` when no lockfile was given.
    pub lockfile: Option<Lockfile>,
    pub warnings: Vec<Diagnostic>,
}

/// Reads and merges lockfiles, collecting the problems of every file.
pub fn read_lockfiles(paths: &[PathBuf]) -> Result<MergedLockfiles, InputError> {
    if paths.is_empty() {
        return Ok(MergedLockfiles::default());
    }
    let mut lockfiles = Vec::new();
    let mut warnings = Vec::new();
    let mut problems = Problems { diagnostics: Vec::new() };
    for path in paths {
        tracing::info!(lockfile = %path.display(), "using lockfile");
        match Lockfile::read_with_warnings(path) {
            Ok((lockfile, found)) => {
                lockfiles.push(lockfile);
                warnings.extend(found);
            }
            Err(found) => problems.diagnostics.extend(found.diagnostics),
        }
    }
    if problems.errors().next().is_some() {
        return Err(InputError::Lockfiles { problems });
    }
    Ok(MergedLockfiles { lockfile: Some(Lockfile::merge(lockfiles)), warnings })
}

/// The lockfile paths a selection names for `treefile` and `arch`.
pub fn lockfile_paths(selection: &LockfileSelection, treefile: &Path, arch: &str) -> Vec<PathBuf> {
    match selection {
        LockfileSelection::NextToTreefile => default_lockfiles(treefile, arch, true),
        LockfileSelection::Files(paths) => paths.clone(),
        LockfileSelection::None => Vec::new(),
    }
}

impl ComposeInputs {
    /// Reads the treefile for `arch` and the lockfiles `selection` names.
    pub fn load(
        treefile: &Path,
        arch: &str,
        variables: &BTreeMap<String, Variable>,
        selection: &LockfileSelection,
        strict: bool,
    ) -> Result<ComposeInputs, InputError> {
        let flattened = load_treefile(treefile, arch, variables)?;
        let lockfile_paths = lockfile_paths(selection, treefile, arch);
        let merged = read_lockfiles(&lockfile_paths)?;
        Ok(ComposeInputs {
            flattened,
            lock: LockSettings { lockfile: merged.lockfile, strict },
            lockfile_paths,
            lockfile_warnings: merged.warnings,
        })
    }
}
