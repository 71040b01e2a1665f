//! rpm-ostree's lockfile rules and `exclude-packages` as the packages a pool must not install.

use std::collections::BTreeSet;

use libsolv::{Pool, SolvableId};
use treefiles::lockfile::{LockedPackage, LockedVersion};

use crate::resolve::LockSettings;
use crate::rpm_version::normalize_evr;

/// What limits the solution beyond the request: the lockfile rules and `exclude-packages`.
#[derive(Debug, Clone)]
pub(crate) struct Constraints {
    pub(crate) lock: LockSettings,
    /// The `lockfile-repos` ids: repositories that serve locked packages only.
    pub(crate) lockfile_repos: BTreeSet<String>,
    pub(crate) excluded_names: BTreeSet<String>,
}

/// rpm-ostree's lockfile enforcement. Relaxed: a locked name may only resolve to its pinned version;
/// packages in `lockfile-repos` only when locked; everything else floats. Strict: only locked
/// packages. Plus `exclude-packages`. Returns the excluded solvables and warnings for locked packages
/// that no repository has.
pub(crate) fn exclusions(
    pool: &Pool,
    repositories: &[libsolv::RepoHandle],
    constraints: &Constraints,
) -> (BTreeSet<SolvableId>, Vec<String>) {
    let locked = constraints.lock.lockfile.as_ref().map(|lockfile| &lockfile.packages);
    let mut excluded = BTreeSet::new();
    let mut found: BTreeSet<&str> = BTreeSet::new();
    if locked.is_none() && constraints.excluded_names.is_empty() && constraints.lockfile_repos.is_empty() {
        return (excluded, Vec::new());
    }
    for repository in repositories {
        let in_lockfile_repo = constraints.lockfile_repos.contains(pool.repo_name(*repository));
        for solvable in pool.solvables(*repository) {
            let name = pool.name(solvable);
            if constraints.excluded_names.contains(&name) {
                excluded.insert(solvable);
                continue;
            }
            let entry = locked.and_then(|packages| packages.get_key_value(name.as_str()));
            let keep = match entry {
                Some((locked_name, entry)) => {
                    let matches = lock_matches(pool, solvable, entry);
                    if matches {
                        found.insert(locked_name.as_str());
                    }
                    matches
                }
                None => !constraints.lock.strict && !in_lockfile_repo,
            };
            if !keep {
                excluded.insert(solvable);
            }
        }
    }
    let warnings = locked
        .into_iter()
        .flatten()
        .filter(|(name, _)| !found.contains(name.as_str()))
        .map(|(name, entry)| {
            format!("locked package {name} {} is not in any repository", entry.version.as_str())
        })
        .collect();
    (excluded, warnings)
}

fn lock_matches(pool: &Pool, solvable: SolvableId, entry: &LockedPackage) -> bool {
    let evr = pool.evr(solvable);
    let version_matches = match &entry.version {
        LockedVersion::Evr(locked) => normalize_evr(locked) == normalize_evr(&evr),
        LockedVersion::Evra(locked) => {
            normalize_evr(locked) == normalize_evr(&format!("{evr}.{}", pool.arch(solvable)))
        }
    };
    if !version_matches {
        return false;
    }
    match &entry.digest {
        None => true,
        Some(digest) => {
            pool.package(solvable).checksum.is_some_and(|(kind, hex)| *digest == format!("{kind}:{hex}"))
        }
    }
}
