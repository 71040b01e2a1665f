//! The result of a compose, printable for people and as JSON in the shape of rpm-ostree's
//! `--write-composejson-to` (`ref`, `ostree-commit`, `rpm-ostree-inputhash`, object counts, `pkgdiff`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use rpmmd::lock_update::PackageChange;
use rpmmd::lock_update::diff_package_versions;
use rpmmd::resolve::Resolution;
use tree::commit::TreeStatistics;
use tree::pkgcache::ImportSummary;
use tree::{BuiltCommit, CommitInformation, ListedPackage};

/// rpm-ostree's `pkgdiff` change types.
const PACKAGE_ADDED: u32 = 0;
const PACKAGE_REMOVED: u32 = 1;
const PACKAGE_UPGRADED: u32 = 2;
const PACKAGE_DOWNGRADED: u32 = 3;

#[derive(Debug, Clone)]
pub struct ComposeSummary {
    pub reference: String,
    /// `None` for a dry run.
    pub commit: Option<String>,
    pub content_checksum: Option<String>,
    pub version: Option<String>,
    pub timestamp: Option<u64>,
    pub inputhash: String,
    pub previous_commit: Option<String>,
    /// Nothing changed since the previous commit; nothing was composed.
    pub unchanged: bool,
    pub dry_run: bool,
    pub packages: Vec<ListedPackage>,
    pub changes: Vec<PackageChange>,
    pub statistics: TreeStatistics,
    pub import: ImportSummary,
}

/// The package changes between two package lists.
pub fn package_diff(old: &[ListedPackage], new: &[ListedPackage]) -> Vec<PackageChange> {
    let versions = |packages: &[ListedPackage]| -> BTreeMap<String, (String, String)> {
        packages
            .iter()
            .map(|package| {
                (package.name.clone(), (format!("{}.{}", package.evr(), package.arch), package.evr()))
            })
            .collect()
    };
    diff_package_versions(&versions(old), &versions(new))
}

fn listed(resolution: &Resolution) -> Vec<ListedPackage> {
    let mut packages: Vec<ListedPackage> = resolution.packages.iter().map(ListedPackage::of).collect();
    packages.sort();
    packages
}

impl ComposeSummary {
    pub fn unchanged(
        reference: &str,
        commit: &str,
        information: &CommitInformation,
        inputhash: &str,
    ) -> Self {
        ComposeSummary {
            reference: reference.to_string(),
            commit: Some(commit.to_string()),
            content_checksum: None,
            version: information.version.clone(),
            timestamp: Some(information.timestamp),
            inputhash: inputhash.to_string(),
            previous_commit: Some(commit.to_string()),
            unchanged: true,
            dry_run: false,
            packages: information.packages.clone(),
            changes: Vec::new(),
            statistics: TreeStatistics::default(),
            import: ImportSummary::default(),
        }
    }

    pub fn dry_run(
        reference: &str,
        inputhash: &str,
        resolution: &Resolution,
        previous: Option<&(String, CommitInformation)>,
    ) -> Self {
        let packages = listed(resolution);
        let changes = previous
            .map(|(_, information)| package_diff(&information.packages, &packages))
            .unwrap_or_default();
        ComposeSummary {
            reference: reference.to_string(),
            commit: None,
            content_checksum: None,
            version: None,
            timestamp: None,
            inputhash: inputhash.to_string(),
            previous_commit: previous.map(|(commit, _)| commit.clone()),
            unchanged: false,
            dry_run: true,
            packages,
            changes,
            statistics: TreeStatistics::default(),
            import: ImportSummary::default(),
        }
    }

    pub fn composed(
        reference: &str,
        built: &BuiltCommit,
        inputhash: &str,
        resolution: &Resolution,
        previous: Option<&(String, CommitInformation)>,
    ) -> Self {
        let packages = listed(resolution);
        let changes = match previous {
            Some((_, information)) => package_diff(&information.packages, &packages),
            None => package_diff(&[], &packages),
        };
        ComposeSummary {
            reference: reference.to_string(),
            commit: Some(built.commit.clone()),
            content_checksum: Some(built.content_checksum.clone()),
            version: built.version.clone(),
            timestamp: Some(built.timestamp),
            inputhash: inputhash.to_string(),
            previous_commit: previous.map(|(commit, _)| commit.clone()),
            unchanged: false,
            dry_run: false,
            packages,
            changes,
            statistics: built.statistics,
            import: built.import.clone(),
        }
    }

    /// rpm-ostree's compose.json fields, plus arbor's own (`arbor-*`).
    pub fn to_json(&self) -> Value {
        let pkgdiff: Vec<Value> = self.changes.iter().map(change_json).collect();
        json!({
            "ref": self.reference,
            "ostree-commit": self.commit,
            "ostree-content-checksum": self.content_checksum,
            "ostree-version": self.version,
            "ostree-timestamp": self.timestamp,
            "rpm-ostree-inputhash": self.inputhash,
            "ostree-n-content-total": self.statistics.files,
            "ostree-n-content-written": self.statistics.objects_written,
            "ostree-n-cache-hits": self.statistics.objects_reused,
            "ostree-content-bytes-written": self.statistics.bytes_written,
            "pkgdiff": pkgdiff,
            "arbor-unchanged": self.unchanged,
            "arbor-dry-run": self.dry_run,
            "arbor-previous-commit": self.previous_commit,
            "arbor-packages": self.packages.len(),
            "arbor-packages-imported": self.import.imported,
            "arbor-package-cache-hits": self.import.cache_hits,
            "arbor-package-objects-written": self.import.objects_written,
            "arbor-package-bytes-written": self.import.bytes_written,
        })
    }
}

fn split_version(version: &str) -> Value {
    match version.rsplit_once('.') {
        Some((evr, arch)) => json!([evr, arch]),
        None => json!([version, ""]),
    }
}

fn change_json(change: &PackageChange) -> Value {
    match change {
        PackageChange::Added { name, version } => json!([name, PACKAGE_ADDED, split_version(version)]),
        PackageChange::Removed { name, version } => json!([name, PACKAGE_REMOVED, split_version(version)]),
        PackageChange::Upgraded { name, from, to } => {
            json!([name, PACKAGE_UPGRADED, [split_version(from), split_version(to)]])
        }
        PackageChange::Downgraded { name, from, to } => {
            json!([name, PACKAGE_DOWNGRADED, [split_version(from), split_version(to)]])
        }
    }
}
