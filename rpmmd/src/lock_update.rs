//! Writing lockfiles from a resolution (rpm-ostree's format) and the package diff between two lockfiles.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use treefiles::lockfile::{LockedPackage, LockedVersion, Lockfile, LockfileMetadata, RepoSnapshot};

use crate::resolve::Resolution;
use crate::rpm_version::compare_evr;
use common::time::{SECONDS_PER_DAY, format_utc};

/// The lockfile for a resolution: every package as `evra` with its source package name;
/// `generated` truncated to the day (less churn), each repository's metadata timestamp.
/// Digests are left out unless asked for: signing changes them, and the same NEVRA may sit in several
/// repositories with different signatures (what Fedora CoreOS does too).
pub fn lockfile_from_resolution(
    resolution: &Resolution,
    now_unix_seconds: u64,
    with_digests: bool,
) -> Lockfile {
    let mut packages = BTreeMap::new();
    for package in &resolution.packages {
        let metadata = package
            .source_name()
            .map(|source| BTreeMap::from([("sourcerpm".to_string(), Value::String(source))]));
        let digest = if with_digests { package.checksum.clone() } else { None };
        packages.insert(
            package.name.clone(),
            LockedPackage { version: LockedVersion::Evra(package.evra()), digest, metadata },
        );
    }
    let rpmmd_repos = resolution
        .repositories
        .iter()
        .filter_map(|repository| {
            let timestamp = repository.timestamp?;
            Some((repository.id.clone(), RepoSnapshot { generated: format_utc(timestamp) }))
        })
        .collect();
    let day = now_unix_seconds - now_unix_seconds % SECONDS_PER_DAY;
    Lockfile {
        packages,
        metadata: Some(LockfileMetadata { generated: Some(format_utc(day)), rpmmd_repos: Some(rpmmd_repos) }),
    }
}

/// How one package changed between two lockfiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageChange {
    Added { name: String, version: String },
    Removed { name: String, version: String },
    Upgraded { name: String, from: String, to: String },
    Downgraded { name: String, from: String, to: String },
}

/// The changes from `old` to `new`, by package name.
pub fn diff_lockfiles(old: &Lockfile, new: &Lockfile) -> Vec<PackageChange> {
    let versions = |lockfile: &Lockfile| -> BTreeMap<String, (String, String)> {
        lockfile
            .packages
            .iter()
            .map(|(name, package)| {
                (
                    name.clone(),
                    (package.version.as_str().to_string(), strip_arch(&package.version).to_string()),
                )
            })
            .collect()
    };
    diff_package_versions(&versions(old), &versions(new))
}

/// The changes between two package sets given as name → (version as shown, EVR to compare).
pub fn diff_package_versions(
    old: &BTreeMap<String, (String, String)>,
    new: &BTreeMap<String, (String, String)>,
) -> Vec<PackageChange> {
    let mut changes = Vec::new();
    for (name, (version, evr)) in new {
        match old.get(name) {
            None => changes.push(PackageChange::Added { name: name.clone(), version: version.clone() }),
            Some((previous, previous_evr)) if previous != version => {
                let from = previous.clone();
                let to = version.clone();
                changes.push(if compare_evr(previous_evr, evr) == Ordering::Greater {
                    PackageChange::Downgraded { name: name.clone(), from, to }
                } else {
                    PackageChange::Upgraded { name: name.clone(), from, to }
                });
            }
            Some(_) => {}
        }
    }
    for (name, (version, _)) in old {
        if !new.contains_key(name) {
            changes.push(PackageChange::Removed { name: name.clone(), version: version.clone() });
        }
    }
    changes
}

fn strip_arch(version: &LockedVersion) -> &str {
    match version {
        LockedVersion::Evr(evr) => evr,
        LockedVersion::Evra(evra) => evra.rsplit_once('.').map_or(evra.as_str(), |(evr, _)| evr),
    }
}

/// Describes a change if it belongs to a section of the report.
type DescribeChange = fn(&PackageChange) -> Option<String>;

/// The diff as text: sections for upgraded, downgraded, added and removed packages.
#[derive(Debug)]
pub struct DiffReport<'a>(pub &'a [PackageChange]);

impl fmt::Display for DiffReport<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(formatter, "No package changes.");
        }
        let sections: [(&str, DescribeChange); 4] = [
            ("Upgraded", |change| match change {
                PackageChange::Upgraded { name, from, to } => Some(format!("{name} {from} -> {to}")),
                _ => None,
            }),
            ("Downgraded", |change| match change {
                PackageChange::Downgraded { name, from, to } => Some(format!("{name} {from} -> {to}")),
                _ => None,
            }),
            ("Added", |change| match change {
                PackageChange::Added { name, version } => Some(format!("{name} {version}")),
                _ => None,
            }),
            ("Removed", |change| match change {
                PackageChange::Removed { name, version } => Some(format!("{name} {version}")),
                _ => None,
            }),
        ];
        for (title, select) in sections {
            let lines: Vec<String> = self.0.iter().filter_map(select).collect();
            if !lines.is_empty() {
                writeln!(formatter, "{title} ({}):", lines.len())?;
                for line in lines {
                    writeln!(formatter, "  {line}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_classifies_changes() {
        let lockfile = |entries: &[(&str, &str)]| Lockfile {
            packages: entries
                .iter()
                .map(|(name, evra)| {
                    let package = LockedPackage {
                        version: LockedVersion::Evra(evra.to_string()),
                        digest: None,
                        metadata: None,
                    };
                    (name.to_string(), package)
                })
                .collect(),
            metadata: None,
        };
        let old = lockfile(&[
            ("bash", "5.2-1.x86_64"),
            ("gone", "1-1.noarch"),
            ("kernel", "6.2-1.x86_64"),
            ("same", "1-1.noarch"),
        ]);
        let new = lockfile(&[
            ("bash", "5.2-2.x86_64"),
            ("kernel", "6.1-9.x86_64"),
            ("new", "2-1.noarch"),
            ("same", "1-1.noarch"),
        ]);
        let changes = diff_lockfiles(&old, &new);
        insta::assert_snapshot!(DiffReport(&changes).to_string(), @r"
        Upgraded (1):
          bash 5.2-1.x86_64 -> 5.2-2.x86_64
        Downgraded (1):
          kernel 6.2-1.x86_64 -> 6.1-9.x86_64
        Added (1):
          new 2-1.noarch
        Removed (1):
          gone 1-1.noarch
        ");
    }
}
