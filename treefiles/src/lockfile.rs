//! rpm-ostree lockfiles: `manifest-lock.$arch.json` and `manifest-lock.overrides[.$arch].yaml`.
//!
//! Reading checks every entry (`evr` xor `evra`, known keys only) and reports all problems with their
//! positions. Lockfiles merge left to right, later files overriding per package name. Writing is
//! deterministic and byte-compatible with rpm-ostree: pretty JSON with two-space indent, `packages`
//! before `metadata`, package names in byte order, entry keys `evr`/`evra`, `digest`, `metadata`, and a
//! trailing newline; so rewriting an unchanged lockfile reproduces its bytes.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, Problem, Problems};
use crate::locate::{NodePath, Target, locate};
use crate::node::{self, Format, Node};
use crate::null::{COLLECTION_HINT, SCALAR_HINT, optional_field};
use crate::read::{FieldValue, Reader, read_object};

/// A lockfile: pinned packages and where the pins came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lockfile {
    pub packages: BTreeMap<String, LockedPackage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<LockfileMetadata>,
}

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockedPackage {
    #[serde(flatten)]
    pub version: LockedVersion,
    /// Repodata checksum, e.g. `sha256:...` (FCOS strips these).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Free-form: `sourcerpm`, and in overrides `type`, `reason`, `bodhi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, Value>>,
}

/// The pinned version: without arch (`evr`, any arch) or with it (`evra`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockedVersion {
    Evr(String),
    Evra(String),
}

impl LockedVersion {
    pub fn as_str(&self) -> &str {
        match self {
            LockedVersion::Evr(text) | LockedVersion::Evra(text) => text,
        }
    }
}

/// When the lockfile was generated and from which repository snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockfileMetadata {
    /// RFC 3339, truncated to the day by writers (less churn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpmmd_repos: Option<BTreeMap<String, RepoSnapshot>>,
}

/// One repository's metadata timestamp at generation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoSnapshot {
    pub generated: String,
}

impl Lockfile {
    /// Parses a lockfile; `name` (its file name) picks the syntax and names it in problems. Warnings
    /// (e.g. a null `digest`, read as absent) are dropped; `parse_with_warnings` returns them.
    pub fn parse(text: &str, name: &str) -> Result<Lockfile, Problems> {
        Lockfile::parse_with_warnings(text, name).map(|(lockfile, _warnings)| lockfile)
    }

    /// Parses a lockfile like `parse`, and returns its warnings with it.
    pub fn parse_with_warnings(text: &str, name: &str) -> Result<(Lockfile, Vec<Diagnostic>), Problems> {
        let format = Format::from_file_name(name);
        let node = node::parse(text, format).map_err(|error| {
            let problem = Problem::Syntax {
                format: if format == Format::Yaml { "YAML" } else { "JSON" },
                message: error.message,
            };
            let position = error.line.map(|line| crate::Position { line, column: error.column.unwrap_or(1) });
            single_problem(name, position, problem)
        })?;
        let mut reader = Reader::for_document(text, Some(format));
        let lockfile = read_lockfile(&node, &mut reader);
        let mut diagnostics: Vec<Diagnostic> = reader
            .problems
            .into_iter()
            .map(|raw| Diagnostic {
                severity: raw.severity,
                file: name.to_string(),
                position: raw.line.or_else(|| locate(text, format, &raw.path, raw.target)),
                included_from: Vec::new(),
                problem: raw.problem,
            })
            .collect();
        match lockfile {
            Some(lockfile) if !diagnostics.iter().any(Diagnostic::is_error) => Ok((lockfile, diagnostics)),
            _ => {
                // Errors first (in the order found), then warnings.
                diagnostics.sort_by_key(|diagnostic| !diagnostic.is_error());
                Err(Problems { diagnostics })
            }
        }
    }

    /// Reads and parses a lockfile from disk (warnings dropped, as by `parse`).
    pub fn read(path: &Path) -> Result<Lockfile, Problems> {
        Lockfile::read_with_warnings(path).map(|(lockfile, _warnings)| lockfile)
    }

    /// Reads and parses a lockfile from disk, and returns its warnings with it.
    pub fn read_with_warnings(path: &Path) -> Result<(Lockfile, Vec<Diagnostic>), Problems> {
        let name = path.to_string_lossy();
        let text = std::fs::read_to_string(path).map_err(|error| {
            single_problem(&name, None, Problem::Unreadable { message: error.to_string() })
        })?;
        Lockfile::parse_with_warnings(&text, &name)
    }

    /// The lockfile as rpm-ostree writes it, byte for byte.
    pub fn to_json_string(&self) -> String {
        let mut text = serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| unreachable!("a lockfile always serializes: {error}"));
        text.push('\n');
        text
    }

    /// Merges lockfiles left to right: a later file's entry replaces an earlier one of the same name;
    /// metadata fields present in a later file replace earlier ones, repositories are merged by id.
    pub fn merge(lockfiles: impl IntoIterator<Item = Lockfile>) -> Lockfile {
        let mut merged = Lockfile::default();
        for lockfile in lockfiles {
            merged.packages.extend(lockfile.packages);
            if let Some(metadata) = lockfile.metadata {
                let into = merged.metadata.get_or_insert_with(LockfileMetadata::default);
                if metadata.generated.is_some() {
                    into.generated = metadata.generated;
                }
                if let Some(repos) = metadata.rpmmd_repos {
                    into.rpmmd_repos.get_or_insert_with(BTreeMap::new).extend(repos);
                }
            }
        }
        merged
    }
}

fn single_problem(name: &str, position: Option<crate::Position>, problem: Problem) -> Problems {
    Problems {
        diagnostics: vec![Diagnostic {
            severity: crate::Severity::Error,
            file: name.to_string(),
            position,
            included_from: Vec::new(),
            problem,
        }],
    }
}

fn read_lockfile(node: &Node, reader: &mut Reader) -> Option<Lockfile> {
    let root = NodePath::root();
    let fields = read_object(node, reader, &root, "a mapping with \"packages\"", &["packages", "metadata"])?;
    let Some(packages_node) = fields.get("packages") else {
        reader.error(&root, Target::Value, Problem::LockfileWithoutPackages);
        return None;
    };
    let packages_path = root.key("packages");
    let mut packages = BTreeMap::new();
    match packages_node {
        Node::Mapping(entries) => {
            for (name, entry) in entries {
                if let Some(package) = read_package(name, entry, reader, &packages_path.key(name)) {
                    packages.insert(name.clone(), package);
                }
            }
        }
        // An empty YAML `packages:` (every entry commented out) is null: no packages.
        Node::Null => reader.null_read_as(&packages_path, COLLECTION_HINT, "no locked packages"),
        other => reader.wrong_type(&packages_path, "a mapping of package name to version", other),
    }
    let metadata = optional_field(&fields, "metadata", reader, &root, COLLECTION_HINT)
        .and_then(|node| read_metadata(node, reader, &root.key("metadata")));
    Some(Lockfile { packages, metadata })
}

fn read_package(name: &str, node: &Node, reader: &mut Reader, path: &NodePath) -> Option<LockedPackage> {
    let fields = read_object(
        node,
        reader,
        path,
        "a mapping with \"evr\" or \"evra\"",
        &["evr", "evra", "digest", "metadata"],
    )?;
    let evr = fields.get("evr").and_then(|node| String::read(node, reader, &path.key("evr")));
    let evra = fields.get("evra").and_then(|node| String::read(node, reader, &path.key("evra")));
    let version = match (evr, evra) {
        (Some(evr), None) => LockedVersion::Evr(evr),
        (None, Some(evra)) => LockedVersion::Evra(evra),
        (Some(_), Some(_)) => {
            package_problem(reader, path, name, "has both \"evr\" and \"evra\"; keep one");
            return None;
        }
        (None, None) => {
            if !fields.contains_key("evr") && !fields.contains_key("evra") {
                package_problem(reader, path, name, "needs \"evr\" or \"evra\"");
            }
            return None;
        }
    };
    let version_key = if matches!(version, LockedVersion::Evr(_)) { "evr" } else { "evra" };
    if let Err(message) = check_version(&version) {
        package_problem(reader, &path.key(version_key), name, &message);
    }
    // rpm-ostree's `digest` and `metadata` are `Option`s: null is absent.
    let digest = optional_field(&fields, "digest", reader, path, SCALAR_HINT)
        .and_then(|node| String::read(node, reader, &path.key("digest")));
    if let Some(digest) = &digest
        && !is_valid_digest(digest)
    {
        package_problem(
            reader,
            &path.key("digest"),
            name,
            &format!("digest \"{digest}\" is not ALGORITHM:HEX"),
        );
    }
    let metadata = optional_field(&fields, "metadata", reader, path, COLLECTION_HINT)
        .and_then(|node| BTreeMap::<String, Value>::read(node, reader, &path.key("metadata")));
    Some(LockedPackage { version, digest, metadata })
}

fn package_problem(reader: &mut Reader, path: &NodePath, package: &str, message: &str) {
    let problem = Problem::LockedPackage { package: package.to_string(), message: message.to_string() };
    reader.error(path, Target::Value, problem);
}

/// `[E:]V-R` (evr) or `[E:]V-R.ARCH` (evra): a version and a release, an optional numeric epoch.
fn check_version(version: &LockedVersion) -> Result<(), String> {
    let text = version.as_str();
    let (epoch, rest) = match text.split_once(':') {
        Some((epoch, rest)) => (Some(epoch), rest),
        None => (None, text),
    };
    if let Some(epoch) = epoch
        && (epoch.is_empty() || !epoch.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return Err(format!("\"{text}\": the epoch must be a number"));
    }
    let rest = match version {
        LockedVersion::Evr(_) => rest,
        LockedVersion::Evra(_) => match rest.rsplit_once('.') {
            Some((rest, arch)) if !arch.is_empty() && !rest.is_empty() => rest,
            _ => return Err(format!("\"{text}\" must end with .ARCH (evra), or use \"evr\"")),
        },
    };
    match rest.rsplit_once('-') {
        Some((version_part, release)) if !version_part.is_empty() && !release.is_empty() => Ok(()),
        _ => Err(format!("\"{text}\" must be VERSION-RELEASE")),
    }
}

fn is_valid_digest(digest: &str) -> bool {
    match digest.split_once(':') {
        Some((algorithm, hex)) => {
            !algorithm.is_empty()
                && algorithm.bytes().all(|byte| byte.is_ascii_alphanumeric())
                && !hex.is_empty()
                && hex.bytes().all(|byte| byte.is_ascii_hexdigit())
        }
        None => false,
    }
}

fn read_metadata(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<LockfileMetadata> {
    let fields = read_object(node, reader, path, "a mapping", &["generated", "rpmmd_repos"])?;
    let generated = optional_field(&fields, "generated", reader, path, SCALAR_HINT)
        .and_then(|node| String::read(node, reader, &path.key("generated")));
    let repos_path = path.key("rpmmd_repos");
    let rpmmd_repos = match optional_field(&fields, "rpmmd_repos", reader, path, COLLECTION_HINT) {
        Some(Node::Mapping(entries)) => {
            let mut repos = BTreeMap::new();
            for (id, entry) in entries {
                let entry_path = repos_path.key(id);
                let Some(repo) =
                    read_object(entry, reader, &entry_path, "a mapping with \"generated\"", &["generated"])
                else {
                    continue;
                };
                match repo.get("generated") {
                    Some(node) => {
                        if let Some(generated) = String::read(node, reader, &entry_path.key("generated")) {
                            repos.insert(id.clone(), RepoSnapshot { generated });
                        }
                    }
                    None => reader.invalid(&entry_path, "\"generated\" is missing"),
                }
            }
            Some(repos)
        }
        Some(other) => {
            reader.wrong_type(&repos_path, "a mapping of repository id to {generated}", other);
            None
        }
        None => None,
    };
    Some(LockfileMetadata { generated, rpmmd_repos })
}

/// Writes `contents` to `path` so that readers see the old file or the new one, never a part:
/// a temporary file in the same directory, synced, then renamed over the target.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name =
        path.file_name().ok_or_else(|| io::Error::other(format!("{} is not a file path", path.display())))?;
    let temporary = directory.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        std::fs::File::open(directory)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKFILE: &str = r#"{
  "packages": {
    "NetworkManager": {
      "evra": "1:1.46.2-1.fc41.x86_64",
      "metadata": {
        "sourcerpm": "NetworkManager"
      }
    },
    "acl": {
      "evr": "2.3.2-2.fc41",
      "digest": "sha256:0f3c",
      "metadata": {}
    }
  },
  "metadata": {
    "generated": "2024-10-23T00:00:00Z",
    "rpmmd_repos": {
      "fedora": {
        "generated": "2024-04-14T18:51:11Z"
      }
    }
  }
}
"#;

    #[test]
    fn rewriting_reproduces_the_bytes() {
        let lockfile = Lockfile::parse(LOCKFILE, "manifest-lock.x86_64.json").unwrap();
        assert_eq!(lockfile.to_json_string(), LOCKFILE);
    }

    #[test]
    fn merge_is_left_to_right() {
        let base = Lockfile::parse(LOCKFILE, "base.json").unwrap();
        let overrides = Lockfile::parse(
            "packages:\n  acl:\n    evr: 2.3.3-1.fc41\n    metadata: {type: pin, reason: https://example.com/1}\n  new: {evra: 1-1.noarch}\n",
            "overrides.yaml",
        )
        .unwrap();
        let merged = Lockfile::merge([base, overrides]);
        assert_eq!(merged.packages["acl"].version, LockedVersion::Evr("2.3.3-1.fc41".into()));
        assert_eq!(merged.packages["new"].version, LockedVersion::Evra("1-1.noarch".into()));
        assert_eq!(merged.packages.len(), 3);
        assert_eq!(merged.metadata.unwrap().generated.as_deref(), Some("2024-10-23T00:00:00Z"));
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = "packages:\n  a: {evr: 1-1, evra: 1-1.x86_64}\n  b: {}\n  c: {evra: 1-1}\n  d: {evr: 1-1, digets: x}\n  e: {evr: '1', digest: 'nope'}\nmetadata: {generated: 1}\n";
        let problems = Lockfile::parse(text, "overrides.yaml").unwrap_err();
        let rendered: Vec<String> = problems.diagnostics.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(rendered.join("\n"));
    }

    #[test]
    fn a_lockfile_needs_packages() {
        let problems = Lockfile::parse("{\"metadata\": {}}", "x.json").unwrap_err();
        assert_eq!(problems.diagnostics[0].problem, Problem::LockfileWithoutPackages);
        let problems = Lockfile::parse("{\"packages\": {}, \"extra\": 1}", "x.json").unwrap_err();
        assert!(problems.to_string().contains("unknown key \"extra\""), "{problems}");
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("manifest-lock.x86_64.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 1, "no temporary file left behind");
    }
}
