//! Null values: a key whose value is null is read as a key that is not there, as rpm-ostree reads it.
//!
//! A value is null when YAML has nothing after `key:` (typically because every entry under it is
//! commented out), or `~` / `null`, or JSON has `null`. rpm-ostree deserializes treefiles with serde into
//! structs whose fields are `Option<T>`, and serde reads null into an `Option` as `None`: absent. arbor
//! does the same, with a warning naming the file, line and column, and merges as if the key were absent
//! (an included file's null list neither empties nor replaces the including file's list).
//!
//! What was checked against rpm-ostree's serde model (rust/src/treefile.rs, rust/src/lockfile.rs) and
//! serde_yaml, and what arbor does:
//!
//! - Top-level keys: every field of `TreeComposeConfig` (and its flattened base/derive parts) is an
//!   `Option`, so null is absent for every key of the table, the legacy spellings (`default_target: ~`
//!   next to `default-target: x` is not "both spellings"), the derive-only keys (null is not "set"),
//!   `ref` (absent; "ref is missing" if no include sets it), `include`, `arch-include` and
//!   `conditional-include`. Exceptions, kept as errors: `repo-metadata` is not an `Option`
//!   (`#[serde(default)]` only fills in a missing key, so null is an error), and `packages-<basearch>` keys
//!   are checked by hand to be arrays of strings. (`advisories-metadata` could not be checked in the source
//!   at hand; it is treated like every other optional key.)
//! - Nested optional fields: `rojig.description`, and in lockfiles an entry's `digest` and `metadata`, the
//!   top-level `metadata` and its `generated` and `rpmmd_repos`: null is absent. Required nested fields
//!   stay errors when null: `rojig.name/summary/license`, `repo-packages[].repo`, `check-passwd.type`, an
//!   `if` or `include` of a `conditional-include` entry, an `arch-include` value, an `evr`/`evra`, an
//!   `rpmmd_repos` entry's `generated`. `check-passwd`/`check-groups` `filename` and `entries` belong to
//!   one `type` each (`file`, `data`) and are ignored for the others: null is absent, and the type that
//!   needs one says so.
//! - Values in maps: `metadata` and `add-commit-metadata` keep a null value (they are free JSON);
//!   `variables`, `repovars` and the other string maps cannot hold null (error).
//! - List entries: `Vec<String>` and friends cannot hold null, so a null entry is an error, located at the
//!   entry. One exception: rpm-ostree reads `packages` and `repo-packages` of a file's top-level document
//!   straight from serde_yaml (every other key goes through serde's buffered content for
//!   `#[serde(flatten)]`), and serde_yaml reads a scalar written as nothing as the string "" (dropped by
//!   the white-space split) and a list written as nothing as an empty list. So there, an entry written as
//!   `-` alone is dropped and `repo-packages[].packages` written as nothing is an empty list, each with a
//!   warning; `~`, `null` and JSON's null stay errors there as everywhere.
//! - A YAML file with nothing but comments: serde_yaml reads it as an empty mapping, so it is a treefile
//!   without keys (with a warning).
//! - Lockfile `packages` null: read as no packages (with a warning), as before.
//! - Other type leniencies (the same class of difference), checked and left as they are: a number where
//!   a string is expected is an error in rpm-ostree too (serde's buffered content keeps YAML's `40` an
//!   integer), except for `releasever` (a string or an unsigned integer in both). `edition: 2024`
//!   unquoted is an error in rpm-ostree (an enum read from buffered content needs a string) and accepted
//!   by arbor, which is laxer there and stays so. Booleans must be `true`/`false` in both (`yes` is a
//!   string). The only place serde_yaml turns a number or a boolean into a string is the straight-read
//!   lists above (`packages: [1]` is the package "1"); no real package name is a bare number, so arbor
//!   keeps that an error.

use std::collections::BTreeMap;

use crate::diagnostic::Problem;
use crate::locate::{NodePath, Segment, Target, yaml_null_written_as_nothing};
use crate::node::{Format, Node};
use crate::read::Reader;

/// The hint of the warning for a null list, set or mapping.
pub(crate) const COLLECTION_HINT: &str = "every entry commented out?";

/// The hint of the warning for a null string, number, boolean or free-form value.
pub(crate) const SCALAR_HINT: &str = "no value given?";

/// What a null value becomes when it is read as not there.
pub(crate) const ABSENT: &str = "absent";

impl<'source> Reader<'source> {
    /// A reader for one document; `format` is `None` for kickstart files.
    pub fn for_document(text: &'source str, format: Option<Format>) -> Reader<'source> {
        Reader { problems: Vec::new(), yaml_text: (format == Some(Format::Yaml)).then_some(text) }
    }

    /// Reports the null value at `path`, read as `treatment` ("absent", "an empty list", ...).
    pub fn null_read_as(&mut self, path: &NodePath, hint: &'static str, treatment: &'static str) {
        self.warning(path, Target::Key, Problem::NullValue { key: path.to_string(), hint, treatment });
    }

    /// Whether the null value at `path` is written as nothing at all in YAML (not `~` or `null`).
    pub fn written_as_nothing(&self, path: &NodePath) -> bool {
        self.yaml_text.is_some_and(|text| yaml_null_written_as_nothing(text, path))
    }

    /// Whether the whole document is a YAML text without any content (only comments, blank lines and
    /// document markers).
    pub fn document_written_as_nothing(&self) -> bool {
        self.yaml_text.is_some_and(|text| {
            text.lines()
                .map(str::trim)
                .all(|line| line.is_empty() || line.starts_with('#') || line == "---" || line == "...")
        })
    }
}

/// The field `name` of an object read with `read_object`, unless it is missing or null; a null field
/// is reported and read as absent.
pub(crate) fn optional_field<'node>(
    fields: &BTreeMap<&str, &'node Node>,
    name: &str,
    reader: &mut Reader,
    object_path: &NodePath,
    hint: &'static str,
) -> Option<&'node Node> {
    match fields.get(name) {
        Some(Node::Null) => {
            reader.null_read_as(&object_path.key(name), hint, ABSENT);
            None
        }
        other => other.copied(),
    }
}

/// Whether rpm-ostree reads the list at `path` straight from serde_yaml rather than through serde's
/// buffered content: `packages` and `repo-packages[].packages` of a file's top-level document (not of
/// an inline include, which serde buffers to try each form of an include).
pub(crate) fn read_straight_from_yaml(path: &NodePath) -> bool {
    match path.0.as_slice() {
        [Segment::Key(key)] => key == "packages",
        [Segment::Key(list), Segment::Index(_), Segment::Key(key)] => {
            list == "repo-packages" && key == "packages"
        }
        _ => false,
    }
}
