//! The refs of the package cache as garbage collection sees them: each package's branch, NEVRA, last use,
//! download and everything its commit reaches; and what other refs reach, which is never evicted.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use common::blocking::Cancellation;
use ostree::gio;
use ostree::glib;

use super::inventory::ObjectKind;
use super::{GcError, repository_error};
use crate::pkgcache::{PACKAGE_BRANCH_PREFIX, metadata_keys, usage};

/// Whole-repository traversal depth for refs that are not packages' (their history is kept, as
/// `ostree prune --refs-only` keeps it); package commits have no parents.
const ALL_PARENTS: i32 = -1;
const NO_PARENTS: i32 = 0;

/// A package ref as garbage collection sees it.
#[derive(Debug)]
pub(super) struct CachedRef {
    pub branch: String,
    pub nevra: String,
    pub last_used: SystemTime,
    /// Its file name in `packages/`.
    pub download: Option<String>,
    /// Indices into the inventory's objects; `None` when the commit could not be traversed.
    pub objects: Option<Vec<usize>>,
}

/// The package refs, and the objects other refs reach (never evicted).
pub(super) fn read_refs(
    repository: &ostree::Repo,
    path: &Path,
    object_index: &HashMap<(&str, ObjectKind), usize>,
    cancellation: &Cancellation,
) -> Result<(Vec<CachedRef>, Vec<usize>), GcError> {
    let refs =
        repository.list_refs(None, gio::Cancellable::NONE).map_err(|error| repository_error(path, error))?;
    let mut refs: Vec<(String, String)> = refs.into_iter().collect();
    refs.sort();
    let mut packages = Vec::new();
    let mut rooted = Vec::new();
    for (branch, commit) in refs {
        if cancellation.is_cancelled() {
            return Err(GcError::Cancelled);
        }
        let is_package = branch.starts_with(PACKAGE_BRANCH_PREFIX);
        let depth = if is_package { NO_PARENTS } else { ALL_PARENTS };
        let objects = reached_objects(repository, &commit, depth, object_index);
        if !is_package {
            // Not ours to judge: a failure to read it stops everything rather than risk its objects.
            rooted.extend(objects.map_err(|error| repository_error(path, error))?);
            continue;
        }
        let metadata = repository.load_commit(&commit).ok().map(|(variant, _)| variant.child_value(0));
        let string = |key: &str| {
            let dictionary = glib::VariantDict::new(metadata.as_ref());
            dictionary.lookup_value(key, None).and_then(|value| value.get::<String>())
        };
        let last_used = usage::last_used(path, &branch)
            .map_err(|error| GcError::Io {
                path: usage::ref_path(path, &branch),
                message: error.to_string(),
            })?
            .unwrap_or(SystemTime::UNIX_EPOCH);
        packages.push(CachedRef {
            nevra: string(metadata_keys::NEVRA).unwrap_or_else(|| branch.clone()),
            download: string(metadata_keys::REPODATA_CHECKSUM)
                .and_then(|checksum| rpmmd::download::downloaded_file_name_of(&checksum)),
            objects: objects.ok(),
            branch,
            last_used,
        });
    }
    Ok((packages, rooted))
}

/// Everything `commit` reaches, its detached metadata included, as indices of the inventory's objects.
/// An error when the commit or an object below it is missing.
fn reached_objects(
    repository: &ostree::Repo,
    commit: &str,
    depth: i32,
    object_index: &HashMap<(&str, ObjectKind), usize>,
) -> Result<Vec<usize>, glib::Error> {
    let reached = repository.traverse_commit(commit, depth, gio::Cancellable::NONE)?;
    let mut indices = Vec::with_capacity(reached.len() + 1);
    for name in &reached {
        let Some(kind) = ObjectKind::of(name.object_type()) else { continue };
        if let Some(index) = object_index.get(&(name.checksum(), kind)) {
            indices.push(*index);
        }
        if kind == ObjectKind::Commit
            && let Some(index) = object_index.get(&(name.checksum(), ObjectKind::CommitMeta))
        {
            indices.push(*index);
        }
    }
    Ok(indices)
}
