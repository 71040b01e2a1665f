//! Typed reading of document nodes: each value kind knows how to read itself, merge with an
//! included value (rpm-ostree's per-kind rules), render back to JSON and describe itself as JSON Schema.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::diagnostic::{Problem, Severity};
use crate::locate::{NodePath, Position, Target};
use crate::node::Node;
use crate::null::{COLLECTION_HINT, SCALAR_HINT, optional_field, read_straight_from_yaml};

/// A problem found while reading one document, located by its path in that document.
#[derive(Debug, Clone)]
pub(crate) struct RawProblem {
    pub severity: Severity,
    pub path: NodePath,
    pub target: Target,
    pub problem: Problem,
    /// A known position (kickstart lines, syntax errors) instead of one found from `path`.
    pub line: Option<Position>,
}

/// Collects problems while reading a document; reading goes on after a problem to find them all.
#[derive(Debug, Default)]
pub(crate) struct Reader<'source> {
    pub problems: Vec<RawProblem>,
    /// The document's text when it is YAML, to tell a value written as nothing from `~` (see `null`).
    pub yaml_text: Option<&'source str>,
}

impl Reader<'_> {
    pub fn error(&mut self, path: &NodePath, target: Target, problem: Problem) {
        self.problems.push(RawProblem {
            severity: Severity::Error,
            path: path.clone(),
            target,
            problem,
            line: None,
        });
    }

    pub fn warning(&mut self, path: &NodePath, target: Target, problem: Problem) {
        self.problems.push(RawProblem {
            severity: Severity::Warning,
            path: path.clone(),
            target,
            problem,
            line: None,
        });
    }

    pub fn wrong_type(&mut self, path: &NodePath, expected: &'static str, found: &Node) {
        let key = if path.0.is_empty() { "the document".to_string() } else { path.to_string() };
        self.error(path, Target::Value, Problem::WrongType { key, expected, found: found.kind_name() });
    }

    pub fn invalid(&mut self, path: &NodePath, message: impl Into<String>) {
        self.error(
            path,
            Target::Value,
            Problem::InvalidValue { key: path.to_string(), message: message.into() },
        );
    }
}

/// A value that can appear under a treefile key.
pub(crate) trait FieldValue: Sized {
    /// The hint of the warning when the value is null (absent): lists and mappings say "every entry
    /// commented out?".
    const NULL_HINT: &'static str = SCALAR_HINT;

    /// Reads a value that is not null (a null value is absent; the caller reports it).
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<Self>;

    /// Merges a value from an included file into the including file's value.
    /// Default (scalars): the first value wins, so the including file beats its includes.
    fn merge_included(into: &mut Option<Self>, included: Self) {
        if into.is_none() {
            *into = Some(included);
        }
    }

    fn render(&self) -> Value;

    fn schema() -> Value;

    /// Whether the value counts as set (derive-only keys must be empty in a base compose).
    fn is_empty(&self) -> bool {
        false
    }
}

impl FieldValue for String {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<String> {
        match node {
            Node::String(text) => Some(text.clone()),
            other => {
                reader.wrong_type(path, "a string", other);
                None
            }
        }
    }

    fn render(&self) -> Value {
        Value::String(self.clone())
    }

    fn schema() -> Value {
        json!({"type": "string"})
    }

    fn is_empty(&self) -> bool {
        str::is_empty(self)
    }
}

impl FieldValue for bool {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<bool> {
        match node {
            Node::Bool(value) => Some(*value),
            other => {
                reader.wrong_type(path, "true or false", other);
                None
            }
        }
    }

    fn render(&self) -> Value {
        Value::Bool(*self)
    }

    fn schema() -> Value {
        json!({"type": "boolean"})
    }
}

impl FieldValue for u32 {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<u32> {
        match node {
            Node::Unsigned(value) => u32::try_from(*value).ok().or_else(|| {
                reader.invalid(path, format!("{value} is too large"));
                None
            }),
            Node::Integer(value) => u32::try_from(*value).ok().or_else(|| {
                reader.invalid(path, format!("{value} must not be negative"));
                None
            }),
            other => {
                reader.wrong_type(path, "a non-negative integer", other);
                None
            }
        }
    }

    fn render(&self) -> Value {
        Value::from(*self)
    }

    fn schema() -> Value {
        json!({"type": "integer", "minimum": 0})
    }
}

/// Reads one list entry; a null entry is an error (rpm-ostree's serde cannot read null as an entry).
fn read_entry<T: FieldValue>(item: &Node, reader: &mut Reader, path: &NodePath) -> Option<T> {
    if let Node::Null = item {
        reader.error(path, Target::Value, Problem::NullEntry { key: path.to_string() });
        return None;
    }
    T::read(item, reader, path)
}

/// Whether every entry of the list `node` was read into `read` (a wrong entry is reported already, so
/// a tuple-like list missing it needs no second error about its length).
fn every_entry_read<T>(node: &Node, read: &[T]) -> bool {
    matches!(node, Node::Sequence(items) if items.len() == read.len())
}

/// Lists concatenate: the included file's entries come first (rpm-ostree's `merge_vec_field`).
impl<T: FieldValue> FieldValue for Vec<T> {
    const NULL_HINT: &'static str = COLLECTION_HINT;

    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<Vec<T>> {
        match node {
            Node::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| read_entry(item, reader, &path.index(index)))
                    .collect(),
            ),
            other => {
                reader.wrong_type(path, "a list", other);
                None
            }
        }
    }

    fn merge_included(into: &mut Option<Vec<T>>, mut included: Vec<T>) {
        if let Some(own) = into.take() {
            included.extend(own);
        }
        *into = Some(included);
    }

    fn render(&self) -> Value {
        Value::Array(self.iter().map(T::render).collect())
    }

    fn schema() -> Value {
        json!({"type": "array", "items": T::schema()})
    }

    fn is_empty(&self) -> bool {
        <[T]>::is_empty(self)
    }
}

/// Maps are updated key by key; on a duplicate key the including file wins.
impl<T: FieldValue> FieldValue for BTreeMap<String, T> {
    const NULL_HINT: &'static str = COLLECTION_HINT;

    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<BTreeMap<String, T>> {
        match node {
            Node::Mapping(entries) => Some(
                entries
                    .iter()
                    .filter_map(|(key, value)| {
                        T::read(value, reader, &path.key(key)).map(|v| (key.clone(), v))
                    })
                    .collect(),
            ),
            other => {
                reader.wrong_type(path, "a mapping", other);
                None
            }
        }
    }

    fn merge_included(into: &mut Option<BTreeMap<String, T>>, included: BTreeMap<String, T>) {
        let own = into.get_or_insert_with(BTreeMap::new);
        for (key, value) in included {
            own.entry(key).or_insert(value);
        }
    }

    fn render(&self) -> Value {
        Value::Object(self.iter().map(|(key, value)| (key.clone(), value.render())).collect())
    }

    fn schema() -> Value {
        json!({"type": "object", "additionalProperties": T::schema()})
    }

    fn is_empty(&self) -> bool {
        BTreeMap::is_empty(self)
    }
}

/// Sets are unioned (and kept sorted).
impl FieldValue for BTreeSet<String> {
    const NULL_HINT: &'static str = COLLECTION_HINT;

    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<BTreeSet<String>> {
        Vec::<String>::read(node, reader, path).map(|items| items.into_iter().collect())
    }

    fn merge_included(into: &mut Option<BTreeSet<String>>, included: BTreeSet<String>) {
        into.get_or_insert_with(BTreeSet::new).extend(included);
    }

    fn render(&self) -> Value {
        Value::Array(self.iter().cloned().map(Value::String).collect())
    }

    fn schema() -> Value {
        json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true})
    }

    fn is_empty(&self) -> bool {
        BTreeSet::is_empty(self)
    }
}

/// Any JSON value (free-form maps such as `metadata`, and keys arbor accepts without using).
impl FieldValue for Value {
    fn read(node: &Node, _reader: &mut Reader, _path: &NodePath) -> Option<Value> {
        Some(node.to_json())
    }

    fn render(&self) -> Value {
        self.clone()
    }

    fn schema() -> Value {
        json!({})
    }

    fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Bool(value) => !value,
            Value::String(text) => text.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::Object(entries) => entries.is_empty(),
            Value::Number(_) => false,
        }
    }
}

/// Package names: a set whose entries are split on white space, except inside single quotes, so
/// `"foo bar"` is two packages and `"'podman >= 4.1'"` is one version query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageSet(pub BTreeSet<String>);

impl PackageSet {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Splits one entry of a package list into package specs; `None` if a quote is not closed.
pub(crate) fn split_package_specs(text: &str) -> Option<Vec<String>> {
    let mut specs = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for character in text.chars() {
        match character {
            '\'' => {
                if quoted {
                    specs.push(std::mem::take(&mut current));
                }
                quoted = !quoted;
            }
            character if character.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    specs.push(std::mem::take(&mut current));
                }
            }
            character => current.push(character),
        }
    }
    if quoted {
        return None;
    }
    if !current.is_empty() {
        specs.push(current);
    }
    Some(specs.into_iter().map(|spec| spec.trim().to_string()).filter(|spec| !spec.is_empty()).collect())
}

/// Renders a package spec so that splitting it again gives the same spec.
fn quote_package_spec(spec: &str) -> String {
    if spec.chars().any(char::is_whitespace) { format!("'{spec}'") } else { spec.to_string() }
}

/// Reads a list of package entries into package specs. Where rpm-ostree reads the list straight from
/// serde_yaml, an entry written as nothing is dropped with a warning (see `null`).
pub(crate) fn read_package_list(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<Vec<String>> {
    let Node::Sequence(items) = node else {
        reader.wrong_type(path, "a list", node);
        return None;
    };
    let empty_entries_dropped = read_straight_from_yaml(path);
    let mut specs = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let entry_path = path.index(index);
        if let Node::Null = item
            && empty_entries_dropped
            && reader.written_as_nothing(&entry_path)
        {
            reader.warning(&entry_path, Target::Value, Problem::EmptyEntry { key: entry_path.to_string() });
            continue;
        }
        let Some(entry) = read_entry::<String>(item, reader, &entry_path) else { continue };
        match split_package_specs(&entry) {
            Some(split) => specs.extend(split),
            None => reader.invalid(&entry_path, format!("unclosed quote in package entry \"{entry}\"")),
        }
    }
    Some(specs)
}

impl FieldValue for PackageSet {
    const NULL_HINT: &'static str = COLLECTION_HINT;

    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<PackageSet> {
        read_package_list(node, reader, path).map(|specs| PackageSet(specs.into_iter().collect()))
    }

    fn merge_included(into: &mut Option<PackageSet>, included: PackageSet) {
        into.get_or_insert_with(PackageSet::default).0.extend(included.0);
    }

    fn render(&self) -> Value {
        Value::Array(self.0.iter().map(|spec| Value::String(quote_package_spec(spec))).collect())
    }

    fn schema() -> Value {
        json!({"type": "array", "items": {"type": "string"},
               "description": "entries are split on white space; quote version queries: \"'podman >= 4.1'\""})
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads a mapping whose keys must all be known; unknown keys get a "did you mean".
pub(crate) fn read_object<'a>(
    node: &'a Node,
    reader: &mut Reader,
    path: &NodePath,
    what: &'static str,
    known: &[&str],
) -> Option<BTreeMap<&'a str, &'a Node>> {
    let Node::Mapping(entries) = node else {
        reader.wrong_type(path, what, node);
        return None;
    };
    let mut fields = BTreeMap::new();
    for (key, value) in entries {
        if known.contains(&key.as_str()) {
            fields.insert(key.as_str(), value);
        } else {
            let suggestion = crate::diagnostic::suggest(key, known.iter().copied());
            reader.error(&path.key(key), Target::Key, Problem::UnknownKey { key: key.clone(), suggestion });
        }
    }
    Some(fields)
}

/// Declares a string type restricted to a fixed set of words (e.g. `boot-location`).
macro_rules! keyword_type {
    ($(#[$meta:meta])* $name:ident: $($word:literal),+) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl $name {
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FieldValue for $name {
            fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<$name> {
                let text = String::read(node, reader, path)?;
                if Self::WORDS.contains(&text.as_str()) {
                    Some($name(text))
                } else {
                    let words = Self::WORDS.iter().map(|word| format!("\"{word}\"")).collect::<Vec<_>>();
                    reader.invalid(path, format!("\"{text}\" is not one of {}", words.join(", ")));
                    None
                }
            }

            fn render(&self) -> Value {
                Value::String(self.0.clone())
            }

            fn schema() -> Value {
                json!({"enum": Self::WORDS})
            }
        }
    };
}

keyword_type!(
    /// `boot-location`: where the kernel goes.
    BootLocation: "new", "modules", "kernel-install"
);
keyword_type!(
    /// `opt-usrlocal`: how /opt and /usr/local are set up.
    OptUsrlocal: "var", "root", "stateoverlay"
);
keyword_type!(
    /// `sysusers`.
    Sysusers: "compose-auto", "compose-forced"
);
keyword_type!(
    /// `rpmdb`: which rpmdb format to write.
    RpmdbBackend: "target", "host", "bdb", "ndb", "sqlite"
);
keyword_type!(
    /// `repo-metadata` / `advisories-metadata`.
    MetadataPlacement: "inline", "detached", "disabled"
);

/// `edition`: "2014" (default) or "2024"; written as a string or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edition(pub String);

impl FieldValue for Edition {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<Edition> {
        let text = match node {
            Node::String(text) => text.clone(),
            Node::Unsigned(number) => number.to_string(),
            Node::Integer(number) => number.to_string(),
            other => {
                reader.wrong_type(path, "\"2014\" or \"2024\"", other);
                return None;
            }
        };
        if text == "2014" || text == "2024" {
            Some(Edition(text))
        } else {
            reader.invalid(path, format!("\"{text}\" is not an edition; use \"2014\" or \"2024\""));
            None
        }
    }

    fn render(&self) -> Value {
        Value::String(self.0.clone())
    }

    fn schema() -> Value {
        json!({"enum": ["2014", "2024", 2014, 2024]})
    }
}

/// `releasever`: a string or an integer, kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Releasever {
    Number(u64),
    Text(String),
}

impl std::fmt::Display for Releasever {
    fn fmt(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Releasever::Number(number) => write!(formatter, "{number}"),
            Releasever::Text(text) => formatter.write_str(text),
        }
    }
}

impl FieldValue for Releasever {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<Releasever> {
        match node {
            Node::String(text) => Some(Releasever::Text(text.clone())),
            Node::Unsigned(number) => Some(Releasever::Number(*number)),
            other => {
                reader.wrong_type(path, "a string or a non-negative integer", other);
                None
            }
        }
    }

    fn render(&self) -> Value {
        match self {
            Releasever::Number(number) => Value::from(*number),
            Releasever::Text(text) => Value::String(text.clone()),
        }
    }

    fn schema() -> Value {
        json!({"type": ["string", "integer"]})
    }
}

/// A value of `variables`: a boolean, a non-negative integer or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    Bool(bool),
    Number(u64),
    Text(String),
}

impl Variable {
    /// Parses a command-line value: `true`/`false`, digits, or else a string.
    pub fn from_command_line(text: &str) -> Variable {
        match text {
            "true" => Variable::Bool(true),
            "false" => Variable::Bool(false),
            digits if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) => {
                digits.parse().map_or_else(|_| Variable::Text(digits.to_string()), Variable::Number)
            }
            text => Variable::Text(text.to_string()),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Variable::Bool(_) => "a boolean",
            Variable::Number(_) => "a number",
            Variable::Text(_) => "a string",
        }
    }
}

impl std::fmt::Display for Variable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Variable::Bool(value) => write!(formatter, "{value}"),
            Variable::Number(value) => write!(formatter, "{value}"),
            Variable::Text(value) => formatter.write_str(value),
        }
    }
}

impl FieldValue for Variable {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<Variable> {
        match node {
            Node::Bool(value) => Some(Variable::Bool(*value)),
            Node::Unsigned(value) => Some(Variable::Number(*value)),
            Node::String(value) => Some(Variable::Text(value.clone())),
            other => {
                reader.wrong_type(path, "a boolean, a non-negative integer or a string", other);
                None
            }
        }
    }

    fn render(&self) -> Value {
        match self {
            Variable::Bool(value) => Value::Bool(*value),
            Variable::Number(value) => Value::from(*value),
            Variable::Text(value) => Value::String(value.clone()),
        }
    }

    fn schema() -> Value {
        json!({"type": ["boolean", "integer", "string"]})
    }
}

/// One `repo-packages` entry: packages that must come from one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPackages {
    pub repo: String,
    pub packages: Vec<String>,
}

impl FieldValue for RepoPackages {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<RepoPackages> {
        let fields = read_object(
            node,
            reader,
            path,
            "a mapping with \"repo\" and \"packages\"",
            &["repo", "packages"],
        )?;
        let repo = fields.get("repo").and_then(|node| String::read(node, reader, &path.key("repo")));
        let packages_path = path.key("packages");
        let packages = match fields.get("packages") {
            // serde_yaml reads a list written as nothing as an empty list where rpm-ostree reads
            // `repo-packages` straight from it; `~` and JSON's null are errors (see `null`).
            Some(Node::Null)
                if read_straight_from_yaml(&packages_path) && reader.written_as_nothing(&packages_path) =>
            {
                reader.null_read_as(&packages_path, COLLECTION_HINT, "an empty list");
                Some(Vec::new())
            }
            Some(Node::Null) => {
                let advice = "list the packages, or remove this repo-packages entry";
                reader.error(
                    &packages_path,
                    Target::Key,
                    Problem::NullNotAllowed { key: packages_path.to_string(), advice },
                );
                None
            }
            Some(node) => read_package_list(node, reader, &packages_path),
            None => None,
        };
        if repo.is_none() && !fields.contains_key("repo") {
            reader.invalid(path, "\"repo\" is missing");
        }
        if packages.is_none() && !fields.contains_key("packages") {
            reader.invalid(path, "\"packages\" is missing");
        }
        Some(RepoPackages { repo: repo?, packages: packages? })
    }

    fn render(&self) -> Value {
        json!({"repo": self.repo, "packages": self.packages.iter().map(|spec| quote_package_spec(spec)).collect::<Vec<_>>()})
    }

    fn schema() -> Value {
        json!({"type": "object", "required": ["repo", "packages"], "additionalProperties": false,
               "properties": {"repo": {"type": "string"}, "packages": {"type": "array", "items": {"type": "string"}}}})
    }
}

/// One `add-files` entry: a source file (relative to the treefile that names it) and its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFile {
    pub source: String,
    pub destination: String,
}

impl FieldValue for AddFile {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<AddFile> {
        let items = Vec::<String>::read(node, reader, path)?;
        if !every_entry_read(node, &items) {
            return None;
        }
        match <[String; 2]>::try_from(items) {
            Ok([source, destination]) => Some(AddFile { source, destination }),
            Err(items) => {
                reader.invalid(path, format!("must be [source, destination], found {} entries", items.len()));
                None
            }
        }
    }

    fn render(&self) -> Value {
        json!([self.source, self.destination])
    }

    fn schema() -> Value {
        json!({"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2})
    }
}

/// One `remove-from-packages` entry: a package and the path regexes to remove from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveFromPackage {
    pub package: String,
    pub patterns: Vec<String>,
}

impl FieldValue for RemoveFromPackage {
    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<RemoveFromPackage> {
        let items = Vec::<String>::read(node, reader, path)?;
        if !every_entry_read(node, &items) {
            return None;
        }
        let mut items = items.into_iter();
        let package = items.next();
        let patterns: Vec<String> = items.collect();
        match package {
            Some(package) if !patterns.is_empty() => Some(RemoveFromPackage { package, patterns }),
            _ => {
                reader.invalid(path, "must be [package, regex, ...] with at least one regex");
                None
            }
        }
    }

    fn render(&self) -> Value {
        let mut items = vec![Value::String(self.package.clone())];
        items.extend(self.patterns.iter().cloned().map(Value::String));
        Value::Array(items)
    }

    fn schema() -> Value {
        json!({"type": "array", "items": {"type": "string"}, "minItems": 2})
    }
}

/// `check-passwd` / `check-groups`: how users and groups are checked against a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPasswd {
    pub kind: String,
    pub filename: Option<String>,
    pub entries: Option<Value>,
}

impl FieldValue for CheckPasswd {
    const NULL_HINT: &'static str = COLLECTION_HINT;

    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<CheckPasswd> {
        let fields =
            read_object(node, reader, path, "a mapping with \"type\"", &["type", "filename", "entries"])?;
        let kind = match fields.get("type") {
            Some(node) => String::read(node, reader, &path.key("type"))?,
            None => {
                reader.invalid(path, "\"type\" is missing (none, previous, file or data)");
                return None;
            }
        };
        // `filename` and `entries` each belong to one type; rpm-ostree ignores them for the others.
        let filename_node = optional_field(&fields, "filename", reader, path, SCALAR_HINT);
        let filename = filename_node.and_then(|node| String::read(node, reader, &path.key("filename")));
        let entries_node = optional_field(&fields, "entries", reader, path, COLLECTION_HINT);
        let entries = entries_node.map(Node::to_json);
        match kind.as_str() {
            "none" | "previous" => {}
            "file" if filename_node.is_none() => reader.invalid(path, "type \"file\" needs \"filename\""),
            "data" => match entries_node {
                None => reader.invalid(path, "type \"data\" needs \"entries\""),
                Some(Node::Mapping(_)) => {}
                Some(other) => reader.wrong_type(&path.key("entries"), "a mapping of name to id", other),
            },
            "file" => {}
            other => reader.invalid(
                &path.key("type"),
                format!("\"{other}\" is not one of \"none\", \"previous\", \"file\", \"data\""),
            ),
        }
        Some(CheckPasswd { kind, filename, entries })
    }

    fn render(&self) -> Value {
        let mut object = serde_json::Map::new();
        object.insert("type".into(), Value::String(self.kind.clone()));
        if let Some(filename) = &self.filename {
            object.insert("filename".into(), Value::String(filename.clone()));
        }
        if let Some(entries) = &self.entries {
            object.insert("entries".into(), entries.clone());
        }
        Value::Object(object)
    }

    fn schema() -> Value {
        json!({"type": "object", "required": ["type"], "additionalProperties": false, "properties": {
            "type": {"enum": ["none", "previous", "file", "data"]},
            "filename": {"type": "string"},
            "entries": {"type": "object"}}})
    }
}

/// `rojig`: legacy jigdo metadata, accepted and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rojig(pub BTreeMap<String, String>);

impl FieldValue for Rojig {
    const NULL_HINT: &'static str = COLLECTION_HINT;

    fn read(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<Rojig> {
        let mut fields =
            read_object(node, reader, path, "a mapping", &["name", "summary", "license", "description"])?;
        for required in ["name", "summary", "license"] {
            if !fields.contains_key(required) {
                reader.invalid(path, format!("\"{required}\" is missing"));
            }
        }
        // `description` is optional (null is absent); the others are required strings.
        if optional_field(&fields, "description", reader, path, SCALAR_HINT).is_none() {
            fields.remove("description");
        }
        let values = fields
            .iter()
            .filter_map(|(key, node)| {
                String::read(node, reader, &path.key(key)).map(|v| (key.to_string(), v))
            })
            .collect();
        Some(Rojig(values))
    }

    fn render(&self) -> Value {
        Value::Object(self.0.iter().map(|(key, value)| (key.clone(), Value::String(value.clone()))).collect())
    }

    fn schema() -> Value {
        json!({"type": "object", "required": ["name", "summary", "license"], "additionalProperties": false,
               "properties": {"name": {"type": "string"}, "summary": {"type": "string"},
                              "license": {"type": "string"}, "description": {"type": "string"}}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_specs_split_on_white_space_but_not_in_quotes() {
        let cases: [(&str, Option<Vec<&str>>); 6] = [
            ("bash", Some(vec!["bash"])),
            ("bash  coreutils\tjq", Some(vec!["bash", "coreutils", "jq"])),
            ("'podman >= 4.1'", Some(vec!["podman >= 4.1"])),
            ("a 'b > 1' c", Some(vec!["a", "b > 1", "c"])),
            ("   ", Some(vec![])),
            ("'unclosed", None),
        ];
        for (text, expected) in cases {
            let expected = expected.map(|specs| specs.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(split_package_specs(text), expected, "{text}");
        }
    }

    #[test]
    fn rendered_specs_split_back_to_themselves() {
        for spec in ["bash", "podman >= 4.1"] {
            assert_eq!(split_package_specs(&quote_package_spec(spec)), Some(vec![spec.to_string()]));
        }
    }

    #[test]
    fn merge_rules_per_kind() {
        // Scalars: the including file (already set) wins.
        let mut scalar = Some("own".to_string());
        String::merge_included(&mut scalar, "included".into());
        assert_eq!(scalar.as_deref(), Some("own"));
        let mut unset: Option<String> = None;
        String::merge_included(&mut unset, "included".into());
        assert_eq!(unset.as_deref(), Some("included"));
        // Lists: included entries first, later includes prepended.
        let mut list = Some(vec!["own".to_string()]);
        Vec::merge_included(&mut list, vec!["first-include".to_string()]);
        Vec::merge_included(&mut list, vec!["second-include".to_string()]);
        assert_eq!(list.unwrap(), ["second-include", "first-include", "own"]);
        // Sets: unioned and sorted.
        let mut set = Some(PackageSet(["b".to_string()].into()));
        PackageSet::merge_included(&mut set, PackageSet(["a".to_string(), "b".to_string()].into()));
        assert_eq!(set.unwrap().iter().collect::<Vec<_>>(), ["a", "b"]);
        // Maps: the including file wins on duplicate keys.
        let mut map = Some(BTreeMap::from([("k".to_string(), "own".to_string())]));
        BTreeMap::merge_included(
            &mut map,
            BTreeMap::from([("k".to_string(), "inc".to_string()), ("j".to_string(), "inc".to_string())]),
        );
        assert_eq!(map.unwrap(), BTreeMap::from([("j".into(), "inc".into()), ("k".into(), "own".into())]));
    }

    #[test]
    fn command_line_variables() {
        assert_eq!(Variable::from_command_line("true"), Variable::Bool(true));
        assert_eq!(Variable::from_command_line("41"), Variable::Number(41));
        assert_eq!(Variable::from_command_line("stable"), Variable::Text("stable".into()));
        assert_eq!(Variable::from_command_line(""), Variable::Text(String::new()));
        assert_eq!(
            Variable::from_command_line("99999999999999999999999"),
            Variable::Text("99999999999999999999999".into())
        );
    }
}
