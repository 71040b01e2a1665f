//! Loading a treefile with its includes and flattening it the way rpm-ostree does.
//!
//! Order in one file: `include` entries, then `arch-include[basearch]`, then each matching
//! `conditional-include`. Each file's `variables` (and `releasever`) join a running map before its own
//! conditions are evaluated; values already defined by a caller win, and a file's includes get a copy,
//! so a parent never sees variables defined in its includes. Every problem in every file is collected;
//! the load fails at the end if any of them is an error.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::condition;
use crate::diagnostic::{Diagnostic, IncludeSite, Problem, Problems, Severity, suggest};
use crate::locate::{NodePath, Position, Target, locate};
use crate::node::{self, Format, Node};
use crate::null::{ABSENT, COLLECTION_HINT};
use crate::paths::{normalize, parent_directory};
use crate::read::{FieldValue, PackageSet, RawProblem, Reader, Variable, read_object, read_package_list};
use crate::treefile::{KEYS, KeyFlag, Treefile, key_info};

/// rpm-ostree's limit on include nesting.
pub const MAX_INCLUDE_DEPTH: usize = 50;

/// Variables arbor sets itself; a treefile may not define them in `variables`.
pub const RESERVED_VARIABLES: &[&str] = &["basearch", "releasever"];

const INCLUDE_KEYS: &[&str] = &["include", "arch-include", "conditional-include"];

/// Where treefile text comes from: the file system, or memory for tests, fuzzing and benchmarks.
pub trait SourceLoader {
    fn read(&self, path: &Path) -> io::Result<String>;

    fn exists(&self, path: &Path) -> bool;

    /// What makes two paths the same file (to find a file included twice).
    fn identity(&self, path: &Path) -> PathBuf {
        normalize(path)
    }
}

/// Reads treefiles from the file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSystemLoader;

impl SourceLoader for FileSystemLoader {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| normalize(path))
    }
}

/// Treefiles held in memory, keyed by normalized path.
#[derive(Debug, Clone, Default)]
pub struct MemoryLoader {
    files: BTreeMap<PathBuf, String>,
}

impl MemoryLoader {
    pub fn new() -> MemoryLoader {
        MemoryLoader::default()
    }

    pub fn insert(&mut self, path: impl AsRef<Path>, text: impl Into<String>) -> &mut MemoryLoader {
        self.files.insert(normalize(path.as_ref()), text.into());
        self
    }
}

impl SourceLoader for MemoryLoader {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory (os error 2)"))
    }

    fn exists(&self, path: &Path) -> bool {
        self.files.contains_key(&normalize(path))
    }
}

/// What the caller decides: the architecture and variables given on the command line (they win over
/// every file's `variables`).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub basearch: String,
    pub variables: BTreeMap<String, Variable>,
}

impl LoadOptions {
    pub fn for_arch(basearch: impl Into<String>) -> LoadOptions {
        LoadOptions { basearch: basearch.into(), variables: BTreeMap::new() }
    }
}

/// One file that went into a flattened treefile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path it was read from.
    pub path: PathBuf,
    /// The name used in messages (relative to the top-level treefile's directory).
    pub display: String,
    pub text: String,
}

/// A treefile with its includes resolved, conditions evaluated, and variables substituted.
#[derive(Debug, Clone)]
pub struct Flattened {
    pub treefile: Treefile,
    /// The directory of the top-level treefile; file names in `treefile` are relative to it.
    pub directory: PathBuf,
    /// Every file read, top-level first, in the order read.
    pub sources: Vec<SourceFile>,
    pub warnings: Vec<Diagnostic>,
}

impl Flattened {
    /// The flattened treefile as pretty JSON (like `rpm-ostree compose tree --print-only`).
    pub fn render(&self) -> String {
        let mut text = serde_json::to_string_pretty(&serde_json::Value::Object(self.treefile.to_json()))
            .unwrap_or_else(|error| unreachable!("a JSON value always serializes: {error}"));
        text.push('\n');
        text
    }
}

/// Loads `path` and everything it includes, and flattens it.
pub fn load(loader: &dyn SourceLoader, path: &Path, options: &LoadOptions) -> Result<Flattened, Problems> {
    let mut state =
        LoadState { loader, options, files: Vec::new(), seen: BTreeMap::new(), problems: Vec::new() };
    let mut variables = options.variables.clone();
    variables.insert("basearch".to_string(), Variable::Text(options.basearch.clone()));
    let display = path.to_string_lossy().into_owned();
    let site = Site { parent: None, name: display.clone() };
    let loaded = state.load_file(path, &display, Path::new("."), &site, &mut Vec::new(), &variables, 0);
    let directory = parent_directory(path);
    let Some(Loaded { mut treefile, origins }) = loaded else {
        return Err(state.finish_with_errors());
    };
    if state.files.is_empty() {
        return Err(state.finish_with_errors());
    }
    finalize(&mut state, &mut treefile, &origins);
    let diagnostics = state.diagnostics();
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(Problems { diagnostics });
    }
    let sources = state
        .files
        .into_iter()
        .filter(|file| file.registered)
        .map(|file| SourceFile { path: file.path, display: file.display, text: file.text })
        .collect();
    Ok(Flattened { treefile, directory, sources, warnings: diagnostics })
}

/// After flattening: fill in `basearch` and the final `variables`, substitute `${var}`, require `ref`.
fn finalize(state: &mut LoadState, treefile: &mut Treefile, origins: &Origins) {
    treefile.basearch.get_or_insert_with(|| state.options.basearch.clone());
    if !state.options.variables.is_empty() {
        let variables = treefile.variables.get_or_insert_with(BTreeMap::new);
        for (name, value) in &state.options.variables {
            variables.insert(name.clone(), value.clone());
        }
    }
    let mut scope: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in treefile.variables.iter().flatten() {
        scope.insert(name.clone(), value.to_string());
    }
    scope.insert("basearch".into(), state.options.basearch.clone());
    if let Some(releasever) = &treefile.releasever {
        scope.insert("releasever".into(), releasever.to_string());
    }
    let mut substitute = |key: &str, text: &mut String| {
        if let Err(name) = substitute_variables(text, &scope) {
            let problem = Problem::UndefinedVariable { key: key.to_string(), name };
            match origins.get(key) {
                Some((file, path)) => state.push(*file, RawProblem::error(path, Target::Value, problem)),
                None => state.push(0, RawProblem::error(&NodePath::root(), Target::Value, problem)),
            }
        }
    };
    for (key, field) in [
        ("ref", &mut treefile.reference),
        ("automatic-version-prefix", &mut treefile.automatic_version_prefix),
        ("mutate-os-release", &mut treefile.mutate_os_release),
        ("platform-module", &mut treefile.platform_module),
    ] {
        if let Some(text) = field {
            substitute(key, text);
        }
    }
    for (key, map) in
        [("metadata", &mut treefile.metadata), ("add-commit-metadata", &mut treefile.add_commit_metadata)]
    {
        for (entry, value) in map.iter_mut().flatten() {
            if let serde_json::Value::String(text) = value {
                substitute(&format!("{key}.{entry}"), text);
            }
        }
    }
    // A `ref` that failed to read was already reported; "missing" would only repeat it. (A null `ref`
    // is only a warning: it is absent, and missing if no include sets it.)
    let reference_reported = state
        .problems
        .iter()
        .any(|(_, raw)| raw.severity == Severity::Error && raw.path == NodePath::root().key("ref"));
    if treefile.reference.is_none() && !reference_reported {
        state.push(0, RawProblem::error(&NodePath::root(), Target::Value, Problem::MissingRef));
    }
    if treefile.machineid_compat == Some(false)
        && treefile.units.as_ref().is_some_and(|units| !units.is_empty())
    {
        let problem = Problem::InvalidValue {
            key: "units".into(),
            message: "cannot be used with \"machineid-compat: false\"; enable units with systemd presets"
                .into(),
        };
        let (file, path) = origins.get("units").cloned().unwrap_or((0, NodePath::root()));
        state.push(file, RawProblem::error(&path, Target::Key, problem));
    }
}

/// Replaces `${name}` with its value; returns the first undefined name as the error.
pub fn substitute_variables(text: &mut String, scope: &BTreeMap<String, String>) -> Result<(), String> {
    if !text.contains("${") {
        return Ok(());
    }
    let mut result = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        result.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            result.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match scope.get(name) {
            Some(value) => result.push_str(value),
            None => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    result.push_str(rest);
    *text = result;
    Ok(())
}

type FileId = usize;

/// Where a substitutable value was written: for error positions after flattening.
type Origins = BTreeMap<String, (FileId, NodePath)>;

struct Loaded {
    treefile: Treefile,
    origins: Origins,
}

/// How a file was reached: the include entry (file and path) that named it.
#[derive(Clone)]
struct Site {
    parent: Option<(FileId, NodePath)>,
    name: String,
}

struct LoadedFile {
    path: PathBuf,
    display: String,
    text: String,
    format: Option<Format>,
    /// Include entries that led here, innermost first.
    chain: Vec<(FileId, NodePath)>,
    /// False for a file that could not be read (kept only to report where it was named).
    registered: bool,
}

struct LoadState<'a> {
    loader: &'a dyn SourceLoader,
    options: &'a LoadOptions,
    files: Vec<LoadedFile>,
    /// File identity -> the first file id that loaded it.
    seen: BTreeMap<PathBuf, FileId>,
    problems: Vec<(FileId, RawProblem)>,
}

impl RawProblem {
    pub(crate) fn error(path: &NodePath, target: Target, problem: Problem) -> RawProblem {
        RawProblem { severity: Severity::Error, path: path.clone(), target, problem, line: None }
    }
}

/// The include entries of one file, read but not yet followed.
#[derive(Default)]
pub(crate) struct Includes {
    pub plain: Vec<IncludeEntry>,
    pub arch: Vec<IncludeEntry>,
    conditional: Vec<ConditionalInclude>,
}

pub(crate) enum IncludeEntry {
    File { name: String, path: NodePath },
    Inline { node: Node, path: NodePath },
}

struct ConditionalInclude {
    conditions: Vec<(String, NodePath)>,
    includes: Vec<IncludeEntry>,
}

impl LoadState<'_> {
    fn push(&mut self, file: FileId, problem: RawProblem) {
        self.problems.push((file, problem));
    }

    fn push_at_site(&mut self, site: &Site, problem: Problem) {
        match &site.parent {
            Some((file, path)) => self.push(*file, RawProblem::error(path, Target::Value, problem)),
            None => {
                // The top-level file itself: there is no including file to point at.
                self.files.push(LoadedFile {
                    path: PathBuf::from(&site.name),
                    display: site.name.clone(),
                    text: String::new(),
                    format: None,
                    chain: Vec::new(),
                    registered: false,
                });
                let id = self.files.len() - 1;
                self.push(id, RawProblem::error(&NodePath::root(), Target::Value, problem));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn load_file(
        &mut self,
        path: &Path,
        display: &str,
        relative_directory: &Path,
        site: &Site,
        stack: &mut Vec<PathBuf>,
        variables: &BTreeMap<String, Variable>,
        depth: usize,
    ) -> Option<Loaded> {
        if depth > MAX_INCLUDE_DEPTH {
            self.push_at_site(site, Problem::IncludeTooDeep { limit: MAX_INCLUDE_DEPTH });
            return None;
        }
        let identity = self.loader.identity(path);
        if let Some(position) = stack.iter().position(|entry| *entry == identity) {
            let mut cycle: Vec<String> = stack[position..]
                .iter()
                .filter_map(|entry| self.seen.get(entry).map(|id| self.files[*id].display.clone()))
                .collect();
            cycle.push(display.to_string());
            self.push_at_site(site, Problem::IncludeCycle { cycle: cycle.join(" -> ") });
            return None;
        }
        if let Some(first) = self.seen.get(&identity) {
            let first = self.files[*first].chain.first().map_or_else(
                || "the command line".to_string(),
                |(file, _)| self.files[*file].display.clone(),
            );
            self.push_at_site(site, Problem::IncludedTwice { include: display.to_string(), first });
            return None;
        }
        let text = match self.loader.read(path) {
            Ok(text) => text,
            Err(error) => {
                let problem = match &site.parent {
                    Some(_) => Problem::MissingInclude {
                        include: site.name.clone(),
                        resolved: display.to_string(),
                        message: error.to_string(),
                    },
                    None => Problem::Unreadable { message: error.to_string() },
                };
                self.push_at_site(site, problem);
                return None;
            }
        };
        let is_kickstart = display.ends_with(".ks");
        let format = (!is_kickstart).then(|| Format::from_file_name(display));
        let mut chain = Vec::new();
        if let Some(parent) = &site.parent {
            chain.push(parent.clone());
            chain.extend(self.files[parent.0].chain.iter().cloned());
        }
        self.files.push(LoadedFile {
            path: path.to_path_buf(),
            display: display.to_string(),
            text,
            format,
            chain,
            registered: true,
        });
        let id = self.files.len() - 1;
        self.seen.insert(identity.clone(), id);
        stack.push(identity);
        let text = self.files[id].text.clone();
        let result = match format {
            None => {
                let (document, problems) = crate::kickstart::parse(&text);
                for problem in problems {
                    self.push(id, problem);
                }
                document.map(|(treefile, includes)| {
                    let loaded = Loaded { treefile, origins: Origins::new() };
                    self.follow_includes(id, loaded, includes, relative_directory, stack, variables, depth)
                })
            }
            Some(format) => match node::parse(&text, format) {
                Ok(node) => self.load_node(
                    id,
                    &node,
                    &NodePath::root(),
                    relative_directory,
                    stack,
                    variables,
                    depth,
                    false,
                ),
                Err(error) => {
                    let problem = Problem::Syntax {
                        format: if format == Format::Yaml { "YAML" } else { "JSON" },
                        message: error.message,
                    };
                    let mut raw = RawProblem::error(&NodePath::root(), Target::Value, problem);
                    raw.line = error.line.map(|line| Position { line, column: error.column.unwrap_or(1) });
                    self.push(id, raw);
                    None
                }
            },
        };
        stack.pop();
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn load_node(
        &mut self,
        file: FileId,
        node: &Node,
        base: &NodePath,
        relative_directory: &Path,
        stack: &mut Vec<PathBuf>,
        variables: &BTreeMap<String, Variable>,
        depth: usize,
        inline: bool,
    ) -> Option<Loaded> {
        let (document, problems) = {
            let source = &self.files[file];
            let mut reader = Reader::for_document(&source.text, source.format);
            let document = read_document(node, &mut reader, base, &self.options.basearch, inline);
            (document, reader.problems)
        };
        for problem in problems {
            self.push(file, problem);
        }
        let (mut treefile, includes, origins) = document?;
        let mut reader = Reader::default();
        self.check_referenced_files(file, &treefile, base, inline, &mut reader);
        for problem in reader.problems {
            self.push(file, problem);
        }
        let origins = origins.into_iter().map(|(key, path)| (key, (file, path))).collect();
        treefile.rebase_paths(relative_directory);
        let loaded = Loaded { treefile, origins };
        Some(self.follow_includes(file, loaded, includes, relative_directory, stack, variables, depth))
    }

    /// Every file a treefile names must exist next to it.
    fn check_referenced_files(
        &mut self,
        file: FileId,
        treefile: &Treefile,
        base: &NodePath,
        inline: bool,
        reader: &mut Reader,
    ) {
        if inline {
            return;
        }
        let directory = parent_directory(&self.files[file].path);
        for (key, name) in treefile.referenced_files() {
            let resolved = normalize(&directory.join(name));
            if !self.loader.exists(&resolved) {
                let problem =
                    Problem::MissingFile { key: key.to_string(), path: resolved.display().to_string() };
                reader.error(&base.key(key), Target::Key, problem);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn follow_includes(
        &mut self,
        file: FileId,
        mut loaded: Loaded,
        includes: Includes,
        relative_directory: &Path,
        stack: &mut Vec<PathBuf>,
        caller_variables: &BTreeMap<String, Variable>,
        depth: usize,
    ) -> Loaded {
        // This file's variables join the running map; values the caller already defined win.
        let mut variables = caller_variables.clone();
        for (name, value) in loaded.treefile.variables.iter().flatten() {
            variables.entry(name.clone()).or_insert_with(|| value.clone());
        }
        if let Some(releasever) = &loaded.treefile.releasever {
            let value = match releasever {
                crate::read::Releasever::Number(number) => Variable::Number(*number),
                crate::read::Releasever::Text(text) => Variable::Text(text.clone()),
            };
            variables.entry("releasever".to_string()).or_insert(value);
        }
        let mut selected: Vec<IncludeEntry> = includes.plain;
        selected.extend(includes.arch);
        for conditional in includes.conditional {
            let mut all_true = true;
            for (text, path) in &conditional.conditions {
                let outcome = condition::parse(text).and_then(|parsed| parsed.evaluate(&variables));
                match outcome {
                    Ok(value) => all_true &= value,
                    Err(message) => {
                        all_true = false;
                        let problem = Problem::Condition { condition: text.clone(), message };
                        self.push(file, RawProblem::error(path, Target::Value, problem));
                    }
                }
            }
            if all_true {
                selected.extend(conditional.includes);
            }
        }
        for entry in selected {
            let included = match entry {
                IncludeEntry::File { name, path } => {
                    let including = &self.files[file];
                    let resolved = parent_directory(&including.path).join(&name);
                    let display = normalize(&parent_directory(Path::new(&including.display)).join(&name));
                    let child_directory = normalize(&relative_directory.join(&name));
                    let child_directory = parent_directory(&child_directory);
                    let site = Site { parent: Some((file, path)), name: name.clone() };
                    self.load_file(
                        &resolved,
                        &display.to_string_lossy(),
                        &child_directory,
                        &site,
                        stack,
                        &variables,
                        depth + 1,
                    )
                }
                IncludeEntry::Inline { node, path } => {
                    if depth + 1 > MAX_INCLUDE_DEPTH {
                        let problem = Problem::IncludeTooDeep { limit: MAX_INCLUDE_DEPTH };
                        self.push(file, RawProblem::error(&path, Target::Value, problem));
                        continue;
                    }
                    self.load_node(file, &node, &path, relative_directory, stack, &variables, depth + 1, true)
                }
            };
            if let Some(included) = included {
                loaded.treefile.merge_included(included.treefile);
                for (key, origin) in included.origins {
                    loaded.origins.entry(key).or_insert(origin);
                }
            }
        }
        loaded
    }

    fn locate(&self, file: FileId, path: &NodePath, target: Target) -> Option<Position> {
        let loaded = &self.files[file];
        match (loaded.format, path.0.as_slice()) {
            (Some(format), _) => locate(&loaded.text, format, path, target),
            // Kickstart entries are named by line number.
            (None, [crate::locate::Segment::Index(line)]) => Some(Position { line: *line, column: 1 }),
            (None, _) => None,
        }
    }

    fn diagnostics(&self) -> Vec<Diagnostic> {
        let mut diagnostics: Vec<(FileId, Diagnostic)> = self
            .problems
            .iter()
            .map(|(file, raw)| {
                (
                    *file,
                    Diagnostic {
                        severity: raw.severity,
                        file: self.files[*file].display.clone(),
                        position: raw.line.or_else(|| self.locate(*file, &raw.path, raw.target)),
                        included_from: self.files[*file]
                            .chain
                            .iter()
                            .map(|(parent, path)| IncludeSite {
                                file: self.files[*parent].display.clone(),
                                position: self.locate(*parent, path, Target::Value),
                            })
                            .collect(),
                        problem: raw.problem.clone(),
                    },
                )
            })
            .collect();
        // Errors before warnings, then by file in the order read, then by position.
        diagnostics.sort_by_key(|(file, diagnostic)| (!diagnostic.is_error(), *file, diagnostic.position));
        diagnostics.into_iter().map(|(_, diagnostic)| diagnostic).collect()
    }

    fn finish_with_errors(&self) -> Problems {
        Problems { diagnostics: self.diagnostics() }
    }
}

/// Reads one treefile document (a file, or an inline include object) into its own keys and include
/// entries, with the paths of substitutable values. `None` if it is not a mapping at all.
fn read_document(
    node: &Node,
    reader: &mut Reader,
    base: &NodePath,
    basearch: &str,
    inline: bool,
) -> Option<(Treefile, Includes, BTreeMap<String, NodePath>)> {
    let entries = match node {
        Node::Mapping(entries) => entries.as_slice(),
        // serde_yaml reads a file of nothing but comments as an empty mapping.
        Node::Null if !inline && reader.document_written_as_nothing() => {
            reader.warning(base, Target::Value, Problem::EmptyDocument);
            &[]
        }
        _ => {
            reader.wrong_type(base, "a mapping of treefile keys", node);
            return None;
        }
    };
    let mut treefile = Treefile::default();
    let mut includes = Includes::default();
    let mut origins = BTreeMap::new();
    for (key, value) in entries {
        let path = base.key(key);
        if let Node::Null = value {
            match null_meaning(key) {
                NullMeaning::Absent(hint) => {
                    reader.null_read_as(&path, hint, ABSENT);
                    continue;
                }
                NullMeaning::Error(advice) => {
                    let problem = Problem::NullNotAllowed { key: path.to_string(), advice };
                    reader.error(&path, Target::Key, problem);
                    continue;
                }
                // Reported as an unknown key below.
                NullMeaning::UnknownKey => {}
            }
        }
        match key.as_str() {
            "include" => includes.plain = read_include_list(value, reader, &path),
            "arch-include" => {
                let Node::Mapping(arches) = value else {
                    reader.wrong_type(&path, "a mapping of architecture to includes", value);
                    continue;
                };
                for (arch, entry) in arches {
                    let listed = read_include_list(entry, reader, &path.key(arch));
                    if arch == basearch {
                        includes.arch = listed;
                    }
                }
            }
            "conditional-include" => {
                let Node::Sequence(items) = value else {
                    reader.wrong_type(&path, "a list of {if, include} mappings", value);
                    continue;
                };
                for (index, item) in items.iter().enumerate() {
                    if let Some(conditional) = read_conditional(item, reader, &path.index(index)) {
                        includes.conditional.push(conditional);
                    }
                }
            }
            name => {
                if let Some(info) = key_info(name) {
                    if info.name != name {
                        let legacy = info.legacy_name.unwrap_or(info.name);
                        // A null spelling is absent, so it does not count as the other one being set.
                        if entries
                            .iter()
                            .any(|(other, other_value)| other == info.name && *other_value != Node::Null)
                        {
                            let problem = Problem::BothSpellings { legacy, current: info.name };
                            reader.error(&path, Target::Key, problem);
                            continue;
                        }
                        let problem = Problem::LegacySpelling { legacy, current: info.name };
                        reader.warning(&path, Target::Key, problem);
                    }
                    treefile.read_key(info.name, value, reader, &path);
                    check_key(info, &treefile, reader, &path, inline);
                    if info.has(KeyFlag::Substitute) {
                        record_origins(info.name, value, &path, &mut origins);
                    } else if info.name == "units" {
                        origins.insert("units".into(), path.clone());
                    }
                } else if let Some(arch) = name.strip_prefix("packages-") {
                    if let Some(specs) = read_package_list(value, reader, &path)
                        && arch == basearch
                    {
                        let packages = treefile.packages.get_or_insert_with(PackageSet::default);
                        packages.0.extend(specs);
                    }
                } else {
                    let known = KEYS.iter().map(|key| key.name).chain(INCLUDE_KEYS.iter().copied());
                    let suggestion = suggest(name, known);
                    reader.error(
                        &path,
                        Target::Key,
                        Problem::UnknownKey { key: name.to_string(), suggestion },
                    );
                }
            }
        }
    }
    check_document(&treefile, reader, base, basearch);
    Some((treefile, includes, origins))
}

/// What a null value of a top-level key means (see `null`).
enum NullMeaning {
    /// The key is absent (rpm-ostree's field is an `Option`); with the warning's hint.
    Absent(&'static str),
    /// An error, with advice.
    Error(&'static str),
    UnknownKey,
}

fn null_meaning(key: &str) -> NullMeaning {
    if INCLUDE_KEYS.contains(&key) {
        return NullMeaning::Absent(COLLECTION_HINT);
    }
    if let Some(info) = key_info(key) {
        let advice = info.flags.iter().find_map(|flag| match flag {
            KeyFlag::NotNull(advice) => Some(*advice),
            _ => None,
        });
        return advice.map_or(NullMeaning::Absent(info.null_hint), NullMeaning::Error);
    }
    if key.starts_with("packages-") {
        // rpm-ostree checks these keys by hand: "expected array of strings".
        return NullMeaning::Error("write a list of packages ([] for none), or remove the key");
    }
    NullMeaning::UnknownKey
}

fn record_origins(name: &str, value: &Node, path: &NodePath, origins: &mut BTreeMap<String, NodePath>) {
    match value {
        Node::Mapping(entries) => {
            for (entry, _) in entries {
                origins.insert(format!("{name}.{entry}"), path.key(entry));
            }
        }
        _ => {
            origins.insert(name.to_string(), path.clone());
        }
    }
}

/// Checks that depend on one key's flags.
fn check_key(
    info: &crate::treefile::KeyInfo,
    treefile: &Treefile,
    reader: &mut Reader,
    path: &NodePath,
    inline: bool,
) {
    for flag in info.flags {
        match flag {
            KeyFlag::Deprecated(message) => {
                reader.warning(path, Target::Key, Problem::Deprecated { key: info.name, message });
            }
            KeyFlag::NoEffect => reader.warning(
                path,
                Target::Key,
                Problem::Deprecated {
                    key: info.name,
                    message: "accepted for compatibility; arbor ignores it",
                },
            ),
            KeyFlag::DeriveOnly => {
                let set = treefile.set_keys().into_iter().any(|(name, empty)| name == info.name && !empty);
                if set {
                    reader.error(path, Target::Key, Problem::DeriveOnlyKey { key: info.name });
                }
            }
            KeyFlag::NamesFiles if inline => {
                let problem = Problem::ExternalKeyInInlineInclude { key: info.name.to_string() };
                reader.error(path, Target::Key, problem);
            }
            KeyFlag::NamesFiles | KeyFlag::Substitute | KeyFlag::NotNull(_) => {}
        }
    }
}

/// Value checks for one document (each file is checked on its own, so errors point at the right file).
fn check_document(treefile: &Treefile, reader: &mut Reader, base: &NodePath, basearch: &str) {
    if treefile.reference.as_deref().is_some_and(str::is_empty) {
        reader.invalid(&base.key("ref"), "must not be empty");
    }
    if let Some(arch) = &treefile.basearch
        && arch != basearch
    {
        reader.invalid(
            &base.key("basearch"),
            format!("treefile is for \"{arch}\" but arbor composes for \"{basearch}\""),
        );
    }
    if let Some(suffix) = &treefile.automatic_version_suffix
        && (suffix.len() != 1 || !suffix.is_ascii())
    {
        reader.invalid(
            &base.key("automatic-version-suffix"),
            format!("must be one ASCII character, found \"{suffix}\""),
        );
    }
    if let Some(version) = treefile.selinux_label_version
        && version > 1
    {
        reader.invalid(&base.key("selinux-label-version"), format!("must be 0 or 1, found {version}"));
    }
    for name in treefile.variables.iter().flatten().map(|(name, _)| name) {
        if RESERVED_VARIABLES.contains(&name.as_str()) {
            let problem = Problem::ReservedVariable { name: name.clone() };
            reader.error(&base.key("variables").key(name), Target::Key, problem);
        }
    }
    for (index, entry) in treefile.add_files.iter().flatten().enumerate() {
        if !add_files_destination_allowed(&entry.destination) {
            reader.invalid(
                &base.key("add-files").index(index),
                format!(
                    "destination \"{}\" must be an absolute path under /usr (not /usr/local), /etc, /bin, /sbin, /lib or /lib64",
                    entry.destination
                ),
            );
        }
    }
}

/// rpm-ostree only lets `add-files` write below these directories.
fn add_files_destination_allowed(destination: &str) -> bool {
    let allowed = ["/usr/", "/etc/", "/bin/", "/sbin/", "/lib/", "/lib64/"];
    allowed.iter().any(|prefix| destination.starts_with(prefix))
        && !destination.starts_with("/usr/local/")
        && !destination.split('/').any(|part| part == "..")
}

fn read_include_list(node: &Node, reader: &mut Reader, path: &NodePath) -> Vec<IncludeEntry> {
    match node {
        Node::String(name) => vec![IncludeEntry::File { name: name.clone(), path: path.clone() }],
        Node::Mapping(_) => vec![IncludeEntry::Inline { node: node.clone(), path: path.clone() }],
        Node::Sequence(items) => items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| match item {
                Node::String(name) => {
                    Some(IncludeEntry::File { name: name.clone(), path: path.index(index) })
                }
                other => {
                    reader.wrong_type(&path.index(index), "a file name", other);
                    None
                }
            })
            .collect(),
        other => {
            reader.wrong_type(path, "a file name, a list of file names, or an inline treefile", other);
            Vec::new()
        }
    }
}

fn read_conditional(node: &Node, reader: &mut Reader, path: &NodePath) -> Option<ConditionalInclude> {
    let fields =
        read_object(node, reader, path, "a mapping with \"if\" and \"include\"", &["if", "include"])?;
    let (Some(condition), Some(include)) = (fields.get("if"), fields.get("include")) else {
        reader.invalid(path, "needs both \"if\" and \"include\"");
        return None;
    };
    let if_path = path.key("if");
    let conditions = match condition {
        Node::String(text) => vec![(text.clone(), if_path)],
        Node::Sequence(_) => {
            let texts = Vec::<String>::read(condition, reader, &if_path)?;
            texts.into_iter().enumerate().map(|(index, text)| (text, if_path.index(index))).collect()
        }
        other => {
            reader.wrong_type(&if_path, "a condition or a list of conditions", other);
            return None;
        }
    };
    Some(ConditionalInclude {
        conditions,
        includes: read_include_list(include, reader, &path.key("include")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution() {
        let scope = BTreeMap::from([
            ("basearch".to_string(), "x86_64".to_string()),
            ("s".to_string(), "t".to_string()),
        ]);
        let cases = [
            ("fedora/${basearch}/coreos/${s}", Ok("fedora/x86_64/coreos/t".to_string())),
            ("no variables", Ok("no variables".to_string())),
            ("${unclosed", Ok("${unclosed".to_string())),
            ("a ${missing} b", Err("missing".to_string())),
        ];
        for (input, expected) in cases {
            let mut text = input.to_string();
            let result = substitute_variables(&mut text, &scope).map(|()| text);
            assert_eq!(result, expected, "{input}");
        }
    }

    #[test]
    fn add_files_destinations() {
        for (destination, allowed) in [
            ("/usr/lib/foo", true),
            ("/etc/foo.conf", true),
            ("/usr/local/bin/x", false),
            ("/var/lib/x", false),
            ("usr/lib/x", false),
            ("/usr/../var/x", false),
        ] {
            assert_eq!(add_files_destination_allowed(destination), allowed, "{destination}");
        }
    }
}
