//! Problems found in treefiles and lockfiles, each with its file, line, column and include chain.

use std::fmt;

use crate::locate::Position;

/// How bad a problem is: errors stop the load, warnings are reported alongside the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// Where a file was included from: the including file and the position of the include entry in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeSite {
    pub file: String,
    pub position: Option<Position>,
}

/// One problem with everything needed to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub position: Option<Position>,
    /// Innermost first: the file that included `file`, then the one that included that, ...
    pub included_from: Vec<IncludeSite>,
    pub problem: Problem,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl Diagnostic {
    /// Where and what, without the severity label: `in FILE:LINE:COLUMN[, included from ...]: PROBLEM`.
    pub fn located_message(&self) -> String {
        let mut text = format!("in {}", self.file);
        if let Some(position) = self.position {
            text.push_str(&format!(":{position}"));
        }
        for site in &self.included_from {
            text.push_str(&format!(", included from {}", site.file));
            if let Some(position) = site.position {
                text.push_str(&format!(":{position}"));
            }
        }
        text.push_str(&format!(": {}", self.problem));
        text
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(formatter, "{label}: {}", self.located_message())
    }
}

/// What is wrong. Every variant names the key, value or file concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("cannot read file: {message}")]
    Unreadable { message: String },
    #[error("invalid {format}: {message}")]
    Syntax { format: &'static str, message: String },
    #[error("unknown key \"{key}\"{}", did_you_mean(.suggestion))]
    UnknownKey { key: String, suggestion: Option<String> },
    #[error("\"{key}\" must be {expected}, found {found}")]
    WrongType { key: String, expected: &'static str, found: &'static str },
    #[error("\"{key}\": {message}")]
    InvalidValue { key: String, message: String },
    #[error("both \"{legacy}\" and \"{current}\" are set; they are the same key, keep only \"{current}\"")]
    BothSpellings { legacy: &'static str, current: &'static str },
    #[error("\"{legacy}\" is the legacy spelling of \"{current}\"")]
    LegacySpelling { legacy: &'static str, current: &'static str },
    #[error("\"{key}\" is deprecated: {message}")]
    Deprecated { key: &'static str, message: &'static str },
    #[error("\"{key}\" is only for client-side layering and must be empty in a base compose")]
    DeriveOnlyKey { key: &'static str },
    #[error("cannot read include \"{include}\" ({resolved}): {message}")]
    MissingInclude { include: String, resolved: String, message: String },
    #[error("include cycle: {cycle}")]
    IncludeCycle { cycle: String },
    #[error("\"{include}\" is included twice (first from {first})")]
    IncludedTwice { include: String, first: String },
    #[error("includes are nested more than {limit} levels deep")]
    IncludeTooDeep { limit: usize },
    #[error("inline include objects cannot use \"{key}\", which names a file; move it to a file")]
    ExternalKeyInInlineInclude { key: String },
    #[error("condition \"{condition}\": {message}")]
    Condition { condition: String, message: String },
    #[error("\"{key}\" uses undefined variable \"${{{name}}}\"")]
    UndefinedVariable { key: String, name: String },
    #[error("variable \"{name}\" is reserved and set by arbor; remove it from \"variables\"")]
    ReservedVariable { name: String },
    #[error("\"ref\" is missing: every treefile tree needs a ref")]
    MissingRef,
    #[error("\"{key}\" names \"{path}\", which does not exist")]
    MissingFile { key: String, path: String },
    #[error("kickstart line {line}: {message}")]
    Kickstart { line: usize, message: String },
    #[error("package \"{package}\": {message}")]
    LockedPackage { package: String, message: String },
    #[error("lockfile has no \"packages\" mapping")]
    LockfileWithoutPackages,
    #[error("\"{key}\" is null ({hint}); treated as {treatment}")]
    NullValue { key: String, hint: &'static str, treatment: &'static str },
    #[error("\"{key}\" is null, which rpm-ostree rejects here: {advice}")]
    NullNotAllowed { key: String, advice: &'static str },
    #[error(
        "\"{key}\" is null: a list entry needs a value; remove the empty entry (\"-\" alone, \"~\" or null)"
    )]
    NullEntry { key: String },
    #[error(
        "\"{key}\" is an empty entry (\"-\" alone; its value commented out?); dropped, as rpm-ostree drops it"
    )]
    EmptyEntry { key: String },
    #[error("the document is empty (everything commented out?); treated as a treefile without keys")]
    EmptyDocument,
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(key) => format!(" (did you mean \"{key}\"?)"),
        None => String::new(),
    }
}

/// All the problems that stopped a load (errors first in file order, then warnings).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems {
    pub diagnostics: Vec<Diagnostic>,
}

impl Problems {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|diagnostic| diagnostic.is_error())
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        let count = self.errors().count();
        write!(formatter, "{count} problem{}", if count == 1 { "" } else { "s" })?;
        for diagnostic in &self.diagnostics {
            write!(formatter, "\n{diagnostic}")?;
        }
        Ok(())
    }
}

/// The closest known name to `unknown`, if it is close enough to be a likely typo.
pub fn suggest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (unknown.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate.to_string())
}

/// Levenshtein distance over characters, with `_`/`-` confusion free (legacy snake_case spellings).
fn edit_distance(left: &str, right: &str) -> usize {
    let normalize = |character: char| if character == '_' { '-' } else { character.to_ascii_lowercase() };
    let left: Vec<char> = left.chars().map(normalize).collect();
    let right: Vec<char> = right.chars().map(normalize).collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.iter().enumerate() {
        let mut current = vec![row + 1; right.len() + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != right_char);
            current[column + 1] = substitution.min(previous[column + 1] + 1).min(current[column] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["packages", "repos", "ref", "exclude-packages", "postprocess-script"];
        let cases = [
            ("packges", Some("packages")),
            ("repo", Some("repos")),
            ("exclude_packages", Some("exclude-packages")),
            ("postprocess_scrpt", Some("postprocess-script")),
            ("completely-different", None),
            ("x", None),
        ];
        for (unknown, expected) in cases {
            assert_eq!(suggest(unknown, known).as_deref(), expected, "{unknown}");
        }
    }

    #[test]
    fn display_names_file_position_and_chain() {
        let diagnostic = Diagnostic {
            severity: Severity::Error,
            file: "base.yaml".into(),
            position: Some(Position { line: 12, column: 3 }),
            included_from: vec![IncludeSite {
                file: "manifest.yaml".into(),
                position: Some(Position { line: 4, column: 3 }),
            }],
            problem: Problem::UnknownKey { key: "packges".into(), suggestion: Some("packages".into()) },
        };
        assert_eq!(
            diagnostic.to_string(),
            "error: in base.yaml:12:3, included from manifest.yaml:4:3: unknown key \"packges\" (did you mean \"packages\"?)"
        );
    }
}
