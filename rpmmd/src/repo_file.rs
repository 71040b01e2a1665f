//! dnf-style `.repo` files next to a treefile: `[id]` sections with `baseurl` (several, tried in order),
//! `metalink` / `mirrorlist`, `enabled`, `gpgcheck`, `gpgkey`, and `$basearch` / `$releasever` /
//! repovars substitution. Host repositories are never read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One repository definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoDefinition {
    pub id: String,
    pub name: Option<String>,
    /// Base URLs in the order written; each is tried in turn.
    pub baseurls: Vec<String>,
    pub metalink: Option<String>,
    pub mirrorlist: Option<String>,
    pub enabled: bool,
    pub gpgcheck: bool,
    pub gpgkeys: Vec<String>,
    /// The file and line of the `[id]` header.
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoFileError {
    #[error("{file}:{line}: {message}")]
    Syntax { file: PathBuf, line: usize, message: String },
    #[error("{file}:{line}: repository \"{id}\" is also defined in {other}")]
    DuplicateRepository { file: PathBuf, line: usize, id: String, other: String },
    #[error("{file}:{line}: repository \"{id}\" has no baseurl, metalink or mirrorlist")]
    NoLocation { file: PathBuf, line: usize, id: String },
    #[error("{file}:{line}: repository \"{id}\": unknown variable ${variable} in \"{value}\"")]
    UnknownVariable { file: PathBuf, line: usize, id: String, variable: String, value: String },
    #[error("reading {directory}: {message}")]
    ReadDirectory { directory: PathBuf, message: String },
    #[error("repository \"{id}\" is not defined in any .repo file in {directory} (defined: {defined})")]
    NotFound { id: String, directory: PathBuf, defined: String },
}

/// One `[id]` section as written: its header line and settings in order.
struct Section {
    id: String,
    line: usize,
    settings: Vec<Setting>,
}

/// One `key=value` setting (continuation lines already joined).
struct Setting {
    key: String,
    value: String,
    line: usize,
}

/// Values for `$name` / `${name}` in repo files: `basearch`, `releasever` and the treefile's repovars.
pub type RepoVariables = BTreeMap<String, String>;

/// Parses one `.repo` file.
pub fn parse_repo_file(
    text: &str,
    file: &Path,
    variables: &RepoVariables,
) -> Result<Vec<RepoDefinition>, RepoFileError> {
    let syntax =
        |line: usize, message: String| RepoFileError::Syntax { file: file.to_path_buf(), line, message };
    let mut sections: Vec<Section> = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let id = header
                .strip_suffix(']')
                .ok_or_else(|| syntax(number, format!("unclosed section header \"{trimmed}\"")))?;
            let id = id.trim();
            if id.is_empty() || id.chars().any(|character| character.is_whitespace() || character == '/') {
                return Err(syntax(number, format!("\"{id}\" is not a repository id")));
            }
            sections.push(Section { id: id.to_string(), line: number, settings: Vec::new() });
            continue;
        }
        let Some(Section { settings: entries, .. }) = sections.last_mut() else {
            return Err(syntax(number, "a setting before the first [repository] header".into()));
        };
        if raw_line.starts_with([' ', '\t']) {
            // A continuation line extends the previous value (multi-line baseurl / gpgkey lists).
            let Some(Setting { value, .. }) = entries.last_mut() else {
                return Err(syntax(number, "a continuation line without a setting before it".into()));
            };
            value.push('\n');
            value.push_str(trimmed);
            continue;
        }
        let (key, value) = trimmed
            .split_once('=')
            .ok_or_else(|| syntax(number, format!("expected key=value, found \"{trimmed}\"")))?;
        entries.push(Setting {
            key: key.trim().to_ascii_lowercase(),
            value: value.trim().to_string(),
            line: number,
        });
    }
    let mut definitions = Vec::new();
    for Section { id, line, settings } in sections {
        let substitute = |value: &str| -> Result<String, RepoFileError> {
            substitute_variables(value, variables).map_err(|variable| RepoFileError::UnknownVariable {
                file: file.to_path_buf(),
                line,
                id: id.clone(),
                variable,
                value: value.to_string(),
            })
        };
        let mut definition = RepoDefinition {
            id: id.clone(),
            name: None,
            baseurls: Vec::new(),
            metalink: None,
            mirrorlist: None,
            enabled: true,
            gpgcheck: false,
            gpgkeys: Vec::new(),
            file: file.to_path_buf(),
            line,
        };
        for Setting { key, value, line: entry_line } in settings {
            match key.as_str() {
                "name" => definition.name = Some(substitute(&value)?),
                "baseurl" => definition.baseurls = split_list(&substitute(&value)?),
                "metalink" => definition.metalink = Some(substitute(&value)?).filter(|url| !url.is_empty()),
                "mirrorlist" => {
                    definition.mirrorlist = Some(substitute(&value)?).filter(|url| !url.is_empty())
                }
                "gpgkey" => definition.gpgkeys = split_list(&substitute(&value)?),
                "enabled" => {
                    definition.enabled = parse_bool(&value)
                        .ok_or_else(|| syntax(entry_line, format!("enabled={value} is not a boolean")))?
                }
                "gpgcheck" => {
                    definition.gpgcheck = parse_bool(&value)
                        .ok_or_else(|| syntax(entry_line, format!("gpgcheck={value} is not a boolean")))?
                }
                // Settings dnf knows that do not change what arbor fetches.
                _ => tracing::debug!(repo.id = %id, key, "ignoring repository setting"),
            }
        }
        if definition.baseurls.is_empty() && definition.metalink.is_none() && definition.mirrorlist.is_none()
        {
            return Err(RepoFileError::NoLocation { file: file.to_path_buf(), line, id });
        }
        definitions.push(definition);
    }
    Ok(definitions)
}

/// Reads every `*.repo` file directly in `directory` (sorted by name, so results are stable).
pub fn read_repo_directory(
    directory: &Path,
    variables: &RepoVariables,
) -> Result<Vec<RepoDefinition>, RepoFileError> {
    let read_error =
        |message: String| RepoFileError::ReadDirectory { directory: directory.to_path_buf(), message };
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .map_err(|error| read_error(error.to_string()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "repo") && path.is_file())
        .collect();
    files.sort();
    let mut definitions: Vec<RepoDefinition> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|error| read_error(format!("{}: {error}", file.display())))?;
        for definition in parse_repo_file(&text, &file, variables)? {
            if let Some(other) = definitions.iter().find(|existing| existing.id == definition.id) {
                return Err(RepoFileError::DuplicateRepository {
                    file: definition.file.clone(),
                    line: definition.line,
                    id: definition.id.clone(),
                    other: format!("{}:{}", other.file.display(), other.line),
                });
            }
            definitions.push(definition);
        }
    }
    Ok(definitions)
}

/// Picks the repositories a treefile names, in the order named. Naming a repository enables it.
pub fn select_repositories(
    definitions: &[RepoDefinition],
    wanted: &[String],
    directory: &Path,
) -> Result<Vec<RepoDefinition>, RepoFileError> {
    wanted
        .iter()
        .map(|id| {
            definitions.iter().find(|definition| definition.id == *id).cloned().ok_or_else(|| {
                RepoFileError::NotFound {
                    id: id.clone(),
                    directory: directory.to_path_buf(),
                    defined: definitions
                        .iter()
                        .map(|definition| definition.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })
        })
        .collect()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Lists are separated by commas, white space or new lines.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(|character: char| character == ',' || character.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Replaces `$name` and `${name}`; returns the first unknown name as the error.
fn substitute_variables(value: &str, variables: &RepoVariables) -> Result<String, String> {
    let mut result = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find('$') {
        result.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let (name, remainder) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => return Err(braced.to_string()),
            }
        } else {
            let end = after
                .find(|character: char| !(character.is_ascii_alphanumeric() || character == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            result.push('$');
        } else {
            result.push_str(variables.get(name).ok_or_else(|| name.to_string())?);
        }
        rest = remainder;
    }
    result.push_str(rest);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables() -> RepoVariables {
        BTreeMap::from([
            ("basearch".to_string(), "x86_64".to_string()),
            ("releasever".to_string(), "41".to_string()),
            ("mirror".to_string(), "https://m.example".to_string()),
        ])
    }

    #[test]
    fn parses_sections_lists_continuations_and_variables() {
        let text = "# comment\n[fedora]\nname=Fedora $releasever - $basearch\nbaseurl=https://a.example/$releasever/$basearch/\n  ${mirror}/f$releasever/\nenabled = 0\ngpgcheck=1\ngpgkey=file:///etc/pki/a\n file:///etc/pki/b\nskip_if_unavailable=False\n\n[updates]\nmetalink=https://mirrors.example/metalink?repo=updates-$releasever&arch=$basearch\n";
        let repos = parse_repo_file(text, Path::new("fedora.repo"), &variables()).unwrap();
        assert_eq!(repos.len(), 2);
        let fedora = &repos[0];
        assert_eq!(fedora.name.as_deref(), Some("Fedora 41 - x86_64"));
        assert_eq!(fedora.baseurls, ["https://a.example/41/x86_64/", "https://m.example/f41/"]);
        assert!(!fedora.enabled);
        assert!(fedora.gpgcheck);
        assert_eq!(fedora.gpgkeys, ["file:///etc/pki/a", "file:///etc/pki/b"]);
        assert_eq!(fedora.line, 2);
        assert_eq!(
            repos[1].metalink.as_deref(),
            Some("https://mirrors.example/metalink?repo=updates-41&arch=x86_64")
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("baseurl=x\n", "a.repo:1: a setting before the first [repository] header"),
            ("[a\n", "a.repo:1: unclosed section header"),
            ("[a]\nbaseurl\n", "a.repo:2: expected key=value"),
            ("[a]\nbaseurl=x\nenabled=maybe\n", "a.repo:3: enabled=maybe is not a boolean"),
            ("[a]\nname=x\n", "a.repo:1: repository \"a\" has no baseurl"),
            ("[a]\nbaseurl=http://x/$nope/\n", "a.repo:1: repository \"a\": unknown variable $nope"),
        ];
        for (text, expected) in cases {
            let error = parse_repo_file(text, Path::new("a.repo"), &variables()).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn selection_is_by_id_in_the_order_named() {
        let repos =
            parse_repo_file("[a]\nbaseurl=x\n[b]\nbaseurl=y\n", Path::new("r.repo"), &variables()).unwrap();
        let selected = select_repositories(&repos, &["b".into(), "a".into()], Path::new(".")).unwrap();
        assert_eq!(selected.iter().map(|repo| repo.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        let error = select_repositories(&repos, &["c".into()], Path::new("dir")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "repository \"c\" is not defined in any .repo file in dir (defined: a, b)"
        );
    }
}
