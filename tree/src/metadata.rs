//! The metadata of a composed commit, as rpm-ostree writes it: `version` (automatic versioning),
//! `rpmostree.inputhash`, `rpmostree.rpmdb.pkglist`, `rpmostree.rpmmd-repos`, `ostree.bootable` /
//! `ostree.linux`, and the treefile's `add-commit-metadata`; and reading the package list back.

use std::collections::BTreeMap;

use ostree::glib;
use ostree::glib::prelude::*;
use serde_json::Value;

use common::time::{SECONDS_PER_DAY, civil_from_days};
use rpmmd::resolve::{Resolution, ResolvedPackage};

pub const VERSION: &str = "version";
pub const INPUTHASH: &str = "rpmostree.inputhash";
pub const PACKAGE_LIST: &str = "rpmostree.rpmdb.pkglist";
pub const REPOSITORIES: &str = "rpmostree.rpmmd-repos";
pub const BOOTABLE: &str = "ostree.bootable";
pub const LINUX: &str = "ostree.linux";

/// rpm-ostree's default `automatic-version-suffix`.
const DEFAULT_VERSION_SUFFIX: char = '.';

/// One package as `rpmostree.rpmdb.pkglist` records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ListedPackage {
    pub name: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    pub arch: String,
}

impl ListedPackage {
    pub fn of(package: &ResolvedPackage) -> ListedPackage {
        ListedPackage {
            name: package.name.clone(),
            epoch: package.epoch.to_string(),
            version: package.version.clone(),
            release: package.release.clone(),
            arch: package.arch.clone(),
        }
    }

    pub fn evr(&self) -> String {
        if self.epoch.is_empty() || self.epoch == "0" {
            format!("{}-{}", self.version, self.release)
        } else {
            format!("{}:{}-{}", self.epoch, self.version, self.release)
        }
    }

    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr(), self.arch)
    }
}

/// Expands `<date:FORMAT>` (strftime's %Y, %m, %d, %H, %M, %S; UTC) in an automatic version prefix.
pub fn expand_date(prefix: &str, timestamp: u64) -> String {
    let (year, month, day) = civil_from_days((timestamp / SECONDS_PER_DAY) as i64);
    let seconds = timestamp % SECONDS_PER_DAY;
    let mut output = String::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("<date:") {
        output.push_str(&rest[..start]);
        let after = &rest[start + "<date:".len()..];
        let Some(end) = after.find('>') else {
            output.push_str(&rest[start..]);
            return output;
        };
        let format = &after[..end];
        let mut chars = format.chars();
        while let Some(character) = chars.next() {
            if character != '%' {
                output.push(character);
                continue;
            }
            match chars.next() {
                Some('Y') => output.push_str(&format!("{year:04}")),
                Some('m') => output.push_str(&format!("{month:02}")),
                Some('d') => output.push_str(&format!("{day:02}")),
                Some('H') => output.push_str(&format!("{:02}", seconds / 3600)),
                Some('M') => output.push_str(&format!("{:02}", seconds / 60 % 60)),
                Some('S') => output.push_str(&format!("{:02}", seconds % 60)),
                Some(other) => {
                    output.push('%');
                    output.push(other);
                }
                None => output.push('%'),
            }
        }
        rest = &after[end + 1..];
    }
    output.push_str(rest);
    output
}

/// rpm-ostree's automatic versioning: `PREFIX` + suffix + N, where N is one more than the previous
/// version's N if the previous version has the same prefix, else 0.
pub fn next_version(prefix: &str, suffix: Option<&str>, previous: Option<&str>, timestamp: u64) -> String {
    let prefix = expand_date(prefix, timestamp);
    let suffix = suffix.and_then(|suffix| suffix.chars().next()).unwrap_or(DEFAULT_VERSION_SUFFIX);
    let base = format!("{prefix}{suffix}");
    let next = previous
        .and_then(|previous| previous.strip_prefix(&base))
        .and_then(|counter| counter.parse::<u64>().ok())
        .map_or(0, |counter| counter + 1);
    format!("{base}{next}")
}

/// A JSON value from the treefile as a GVariant, as rpm-ostree converts `add-commit-metadata`: strings,
/// booleans, integers (`x`), other numbers (`d`), arrays of strings (`as`), other arrays (`av`), objects
/// (`a{sv}`).
pub fn json_to_variant(value: &Value) -> glib::Variant {
    match value {
        Value::Null => "".to_variant(),
        Value::Bool(boolean) => boolean.to_variant(),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => integer.to_variant(),
            None => number.as_f64().unwrap_or_default().to_variant(),
        },
        Value::String(text) => text.to_variant(),
        Value::Array(items) => {
            if items.iter().all(Value::is_string) {
                items
                    .iter()
                    .map(|item| item.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .to_variant()
            } else {
                let variants: Vec<glib::Variant> =
                    items.iter().map(|item| glib::Variant::from_variant(&json_to_variant(item))).collect();
                glib::Variant::array_from_iter_with_type(glib::VariantTy::VARIANT, variants)
            }
        }
        Value::Object(map) => {
            let dictionary = glib::VariantDict::new(None);
            for (key, item) in map {
                dictionary.insert_value(key, &json_to_variant(item));
            }
            dictionary.end()
        }
    }
}

/// Everything that goes into the commit's metadata.
#[derive(Debug, Clone)]
pub struct CommitMetadata<'a> {
    pub version: Option<String>,
    pub inputhash: &'a str,
    pub resolution: &'a Resolution,
    pub kernel_version: Option<String>,
    pub add_commit_metadata: BTreeMap<String, Value>,
    pub add_metadata_strings: BTreeMap<String, String>,
}

impl CommitMetadata<'_> {
    pub fn to_variant(&self) -> glib::Variant {
        let dictionary = glib::VariantDict::new(None);
        for (key, value) in &self.add_commit_metadata {
            dictionary.insert_value(key, &json_to_variant(value));
        }
        for (key, value) in &self.add_metadata_strings {
            dictionary.insert_value(key, &value.to_variant());
        }
        if let Some(version) = &self.version {
            dictionary.insert_value(VERSION, &version.to_variant());
        }
        dictionary.insert_value(INPUTHASH, &self.inputhash.to_variant());
        let mut packages: Vec<ListedPackage> =
            self.resolution.packages.iter().map(ListedPackage::of).collect();
        packages.sort();
        let tuples: Vec<(String, String, String, String, String)> = packages
            .into_iter()
            .map(|package| (package.name, package.epoch, package.version, package.release, package.arch))
            .collect();
        dictionary.insert_value(PACKAGE_LIST, &tuples.to_variant());
        let repositories: Vec<glib::Variant> = self
            .resolution
            .repositories
            .iter()
            .map(|repository| {
                let entry = glib::VariantDict::new(None);
                entry.insert_value("id", &repository.id.to_variant());
                entry.insert_value("timestamp", &repository.timestamp.unwrap_or(0).to_variant());
                entry.end()
            })
            .collect();
        dictionary.insert_value(
            REPOSITORIES,
            &glib::Variant::array_from_iter_with_type(glib::VariantTy::VARDICT, repositories),
        );
        if let Some(kernel) = &self.kernel_version {
            dictionary.insert_value(BOOTABLE, &true.to_variant());
            dictionary.insert_value(LINUX, &kernel.to_variant());
        }
        dictionary.end()
    }
}

/// Reads `rpmostree.rpmdb.pkglist` (and the other keys we use) from a commit's metadata.
#[derive(Debug, Clone, Default)]
pub struct CommitInformation {
    pub version: Option<String>,
    pub inputhash: Option<String>,
    pub packages: Vec<ListedPackage>,
    pub timestamp: u64,
}

pub fn read_commit_information(repo: &ostree::Repo, commit: &str) -> Result<CommitInformation, glib::Error> {
    let (variant, _) = repo.load_commit(commit)?;
    let metadata = glib::VariantDict::new(Some(&variant.child_value(0)));
    let string = |key: &str| metadata.lookup_value(key, None).and_then(|value| value.get::<String>());
    let packages = metadata
        .lookup_value(PACKAGE_LIST, None)
        .and_then(|value| value.get::<Vec<(String, String, String, String, String)>>())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, epoch, version, release, arch)| ListedPackage { name, epoch, version, release, arch })
        .collect();
    let timestamp = variant.child_value(5).get::<u64>().map(u64::from_be).unwrap_or(0);
    Ok(CommitInformation { version: string(VERSION), inputhash: string(INPUTHASH), packages, timestamp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_versions_count_up_per_prefix() {
        // 2026-11-22 00:00:00 UTC
        let timestamp = 1_795_305_600;
        let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
            ("41", None, None, "41.0"),
            ("41", None, Some("41.0"), "41.1"),
            ("41", None, Some("41.9"), "41.10"),
            ("41", None, Some("40.3"), "41.0"),
            ("41.<date:%Y%m%d>", None, Some("41.20261121.4"), "41.20261122.0"),
            ("41.<date:%Y%m%d>", None, Some("41.20261122.4"), "41.20261122.5"),
            ("41", Some("-"), Some("41-2"), "41-3"),
        ];
        for (prefix, suffix, previous, expected) in cases {
            assert_eq!(
                next_version(prefix, *suffix, *previous, timestamp),
                *expected,
                "{prefix} after {previous:?}"
            );
        }
    }

    #[test]
    fn dates_expand_in_utc() {
        assert_eq!(expand_date("<date:%Y-%m-%d %H:%M:%S>", 0), "1970-01-01 00:00:00");
        assert_eq!(expand_date("x<date:%Y%m%d>y", 951_782_400), "x20000229y");
        assert_eq!(expand_date("no date", 5), "no date");
    }

    #[test]
    fn json_values_become_the_variants_rpm_ostree_writes() {
        let value = serde_json::json!({"stream": "stable", "n": 3, "f": 1.5, "on": true, "list": ["a", "b"]});
        let variant = json_to_variant(&value);
        let dictionary = glib::VariantDict::new(Some(&variant));
        assert_eq!(dictionary.lookup_value("stream", None).unwrap().type_().as_str(), "s");
        assert_eq!(dictionary.lookup_value("n", None).unwrap().type_().as_str(), "x");
        assert_eq!(dictionary.lookup_value("f", None).unwrap().type_().as_str(), "d");
        assert_eq!(dictionary.lookup_value("on", None).unwrap().type_().as_str(), "b");
        assert_eq!(dictionary.lookup_value("list", None).unwrap().type_().as_str(), "as");
    }
}
