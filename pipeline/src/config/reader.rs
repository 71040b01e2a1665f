//! Reading the spanned TOML tree: typed getters that record a located problem instead of stopping,
//! so that one pass over the file reports every problem in it.

use super::problem::{ConfigError, ConfigProblem, Location};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A value and where it is in the file.
#[derive(Debug, Clone)]
pub(super) struct Located<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// The file being read and the problems found so far.
#[derive(Debug)]
pub(super) struct Document {
    file: String,
    line_starts: Vec<usize>,
    text: String,
    problems: Vec<(usize, ConfigError)>,
}

impl Document {
    pub fn new(file: &str, text: &str) -> Document {
        let line_starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(offset, _)| offset + 1)).collect();
        Document { file: file.to_string(), line_starts, text: text.to_string(), problems: Vec::new() }
    }

    fn location(&self, offset: usize) -> Location {
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let start = self.line_starts[line - 1];
        let column = self.text.get(start..offset).map_or(1, |before| before.chars().count() + 1);
        Location { line, column }
    }

    /// Records a problem at `span` (or at no particular place).
    pub fn report(&mut self, span: Option<Range<usize>>, key: String, problem: ConfigProblem) {
        let offset = span.as_ref().map_or(0, |span| span.start);
        let location = span.map(|span| self.location(span.start));
        self.problems.push((offset, ConfigError { file: self.file.clone(), location, key, problem }));
    }

    pub fn invalid(&mut self, span: Range<usize>, key: String, message: impl Into<String>) {
        self.report(Some(span), key, ConfigProblem::Invalid { message: message.into() });
    }

    /// The problems in file order.
    pub fn into_errors(mut self) -> Vec<ConfigError> {
        self.problems.sort_by_key(|(offset, _)| *offset);
        self.problems.into_iter().map(|(_, error)| error).collect()
    }

    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }
}

/// How a table's keys are named in messages: `"key"`, `[server] "key"`, `[[streams]] #2 "key"` or
/// `[[streams]] #2 "variables"."key"`.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    label: String,
    dotted: bool,
}

impl Scope {
    pub fn root() -> Scope {
        Scope { label: String::new(), dotted: false }
    }

    pub fn key(&self, key: &str) -> String {
        match (self.label.is_empty(), self.dotted) {
            (true, _) => format!("\"{key}\""),
            (false, true) => format!("{}.\"{key}\"", self.label),
            (false, false) => format!("{} \"{key}\"", self.label),
        }
    }
}

/// One table of the file with the scope its keys are reported under.
#[derive(Debug, Clone, Copy)]
pub(super) struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    scope: &'a Scope,
    span: &'a Range<usize>,
}

/// How a value's type is named in messages.
pub(super) fn type_name(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn new(entries: &'a DeTable<'i>, scope: &'a Scope, span: &'a Range<usize>) -> Table<'a, 'i> {
        Table { entries, scope, span }
    }

    pub fn key(&self, key: &str) -> String {
        self.scope.key(key)
    }

    /// Where the table starts (its header), for problems about keys it lacks.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub fn keys(&self) -> impl Iterator<Item = (&'a str, Range<usize>)> {
        self.entries.iter().map(|(key, _)| (key.get_ref().as_ref(), key.span()))
    }

    pub fn value(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entries.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Reports every key not in `known`: a secret-looking one says where secrets go, any other one
    /// gets the closest known key as a suggestion.
    pub fn check_keys(&self, document: &mut Document, known: &[&str]) {
        for (key, span) in self.keys() {
            if known.contains(&key) {
                continue;
            }
            let problem = inline_secret_problem(key, known)
                .unwrap_or_else(|| ConfigProblem::UnknownKey { suggestion: suggest_key(key, known) });
            document.report(Some(span), self.key(key), problem);
        }
    }

    fn wrong_type(&self, document: &mut Document, key: &str, expected: &'static str) {
        if let Some(value) = self.value(key) {
            let found = type_name(value.get_ref());
            document.report(Some(value.span()), self.key(key), ConfigProblem::WrongType { expected, found });
        }
    }

    pub fn missing(&self, document: &mut Document, key: &str, hint: &'static str) {
        document.report(Some(self.span()), self.key(key), ConfigProblem::Missing { hint });
    }

    pub fn string(&self, document: &mut Document, key: &str) -> Option<Located<&'a str>> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::String(text) => Some(Located { value: text.as_ref(), span: value.span() }),
            _ => {
                self.wrong_type(document, key, "a string");
                None
            }
        }
    }

    /// A string that must be present.
    pub fn required_string(
        &self,
        document: &mut Document,
        key: &str,
        hint: &'static str,
    ) -> Option<Located<&'a str>> {
        if !self.contains(key) {
            self.missing(document, key, hint);
        }
        self.string(document, key)
    }

    pub fn boolean(&self, document: &mut Document, key: &str) -> Option<bool> {
        match self.value(key)?.get_ref() {
            DeValue::Boolean(value) => Some(*value),
            _ => {
                self.wrong_type(document, key, "a boolean (true or false)");
                None
            }
        }
    }

    pub fn integer(&self, document: &mut Document, key: &str) -> Option<Located<i64>> {
        let value = self.value(key)?;
        let DeValue::Integer(integer) = value.get_ref() else {
            self.wrong_type(document, key, "an integer");
            return None;
        };
        match i64::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(number) => Some(Located { value: number, span: value.span() }),
            Err(_) => {
                document.invalid(value.span(), self.key(key), "is too large");
                None
            }
        }
    }

    /// An array of strings; wrongly typed elements are reported and left out.
    pub fn string_list(&self, document: &mut Document, key: &str) -> Option<Located<Vec<Located<&'a str>>>> {
        let value = self.value(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(document, key, "an array of strings");
            return None;
        };
        let mut strings = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(text) => strings.push(Located { value: text.as_ref(), span: item.span() }),
                other => document.report(
                    Some(item.span()),
                    format!("{} #{}", self.key(key), index + 1),
                    ConfigProblem::WrongType { expected: "a string", found: type_name(other) },
                ),
            }
        }
        Some(Located { value: strings, span: value.span() })
    }

    /// A sub-table (`[server]`, or `variables = { ... }` inside a stream).
    pub fn table(&self, document: &mut Document, key: &str) -> Option<(&'a DeTable<'i>, Range<usize>)> {
        let value = self.value(key)?;
        match value.get_ref() {
            DeValue::Table(table) => Some((table, value.span())),
            _ => {
                self.wrong_type(document, key, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[streams]]`); other elements are reported and left out.
    pub fn tables(&self, document: &mut Document, key: &str) -> Vec<(&'a DeTable<'i>, Range<usize>)> {
        let Some(value) = self.value(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(document, key, "an array of tables ([[streams]] sections)");
            return Vec::new();
        };
        let mut tables = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(table) => tables.push((table, item.span())),
                other => document.report(
                    Some(item.span()),
                    format!("{} #{}", self.key(key), index + 1),
                    ConfigProblem::WrongType { expected: "a table", found: type_name(other) },
                ),
            }
        }
        tables
    }
}

/// Keys shorter than this are not completed to a longer known key ("a" is no typo of "arches").
const MINIMUM_PREFIX_SUGGESTION: usize = 3;

/// The known key `unknown` was probably meant to be: a close spelling, else a known key it is a
/// prefix of or that is a prefix of it (`arch` for `arches`, `listen-address` for `listen`).
fn suggest_key(unknown: &str, known: &[&str]) -> Option<String> {
    treefiles::suggest(unknown, known.iter().copied()).or_else(|| {
        known
            .iter()
            .find(|candidate| {
                unknown.len() >= MINIMUM_PREFIX_SUGGESTION
                    && (candidate.starts_with(unknown) || unknown.starts_with(*candidate))
            })
            .map(|candidate| (*candidate).to_string())
    })
}

/// The scope of the table `[name]`.
pub(super) fn section_scope(name: &str) -> Scope {
    Scope { label: format!("[{name}]"), dotted: false }
}

/// The scope of the `number`th (1-based) `[[name]]` table.
pub(super) fn array_item_scope(name: &str, number: usize) -> Scope {
    Scope { label: format!("[[{name}]] #{number}"), dotted: false }
}

/// The scope of the inline table `key` inside `parent`.
pub(super) fn nested_scope(parent: &Scope, key: &str) -> Scope {
    Scope { label: parent.key(key), dotted: true }
}

/// Words that mark a key as holding a secret.
const SECRET_WORDS: &[&str] =
    &["token", "password", "passwd", "secret", "private-key", "api-key", "credential"];

/// The problem for an unknown key that would hold a secret inline, e.g. `token = "..."`.
fn inline_secret_problem(key: &str, known: &[&str]) -> Option<ConfigProblem> {
    let normalized = key.to_ascii_lowercase().replace('_', "-");
    let file_key = format!("{normalized}-file");
    let env_key = format!("{normalized}-env");
    if known.contains(&file_key.as_str()) {
        return Some(ConfigProblem::InlineSecret { file_key, env_key });
    }
    if normalized.ends_with("-file") || normalized.ends_with("-env") {
        return None;
    }
    SECRET_WORDS.iter().any(|word| normalized.contains(word)).then_some(ConfigProblem::SecretLikeKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let document = Document::new("arbor.toml", "a = 1\n\nbé = \"x\"\n");
        assert_eq!(document.location(0), Location { line: 1, column: 1 });
        assert_eq!(document.location(7), Location { line: 3, column: 1 });
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(document.location(13), Location { line: 3, column: 6 });
    }

    #[test]
    fn scopes_render_key_paths() {
        assert_eq!(Scope::root().key("server"), "\"server\"");
        assert_eq!(section_scope("git").key("url"), "[git] \"url\"");
        let stream = array_item_scope("streams", 2);
        assert_eq!(stream.key("arches"), "[[streams]] #2 \"arches\"");
        assert_eq!(nested_scope(&stream, "variables").key("x"), "[[streams]] #2 \"variables\".\"x\"");
    }

    #[test]
    fn secret_keys_are_recognized() {
        let known = ["url", "token-file", "token-env", "webhook-secret-file", "webhook-secret-env"];
        let cases = [
            ("token", Some(("token-file", "token-env"))),
            ("webhook_secret", Some(("webhook-secret-file", "webhook-secret-env"))),
            ("urll", None),
        ];
        for (key, expected) in cases {
            let problem = inline_secret_problem(key, &known);
            let expected = expected.map(|(file_key, env_key)| ConfigProblem::InlineSecret {
                file_key: file_key.into(),
                env_key: env_key.into(),
            });
            assert_eq!(problem, expected, "{key}");
        }
        assert_eq!(inline_secret_problem("password", &known), Some(ConfigProblem::SecretLikeKey));
        assert_eq!(inline_secret_problem("api-key-file", &known), None);
    }
}
