//! Problems found in arbor.toml, each with its file, line, column and key path.

use std::fmt;

/// A 1-based line and column (in characters) in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One problem: `arbor.toml:12:5: [[streams]] #2 "arches": must not be empty`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file as the operator named it.
    pub file: String,
    pub location: Option<Location>,
    /// The key path, e.g. `[server] "listen"` or `[[streams]] #2 "arches"`; empty for the whole file.
    pub key: String,
    pub problem: ConfigProblem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(&self.file)?;
        if let Some(Location { line, column }) = self.location {
            write!(formatter, ":{line}:{column}")?;
        }
        if !self.key.is_empty() {
            write!(formatter, ": {}", self.key)?;
        }
        write!(formatter, ": {}", self.problem)
    }
}

/// What is wrong with a key or the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    #[error("cannot read the configuration file: {message}")]
    Unreadable { message: String },
    #[error("invalid TOML: {message}")]
    Syntax { message: String },
    #[error("unknown key{}", did_you_mean(.suggestion))]
    UnknownKey { suggestion: Option<String> },
    #[error("must be {expected}, found {found}")]
    WrongType { expected: &'static str, found: &'static str },
    #[error("is required: {hint}")]
    Missing { hint: &'static str },
    #[error("{message}")]
    Invalid { message: String },
    #[error(
        "secrets never go in the configuration file: write it into a file and name it with \
         \"{file_key}\", or name an environment variable with \"{env_key}\""
    )]
    InlineSecret { file_key: String, env_key: String },
    #[error(
        "looks like a secret, and secrets never go in the configuration file: arbor reads them from \
         files or environment variables named by the keys ending in \"-file\" and \"-env\""
    )]
    SecretLikeKey,
    #[error("cannot be set together with \"{other}\"; keep one of them")]
    Conflict { other: String },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(key) => format!(" (did you mean \"{key}\"?)"),
        None => String::new(),
    }
}

/// Every problem of one configuration file, sorted by position; loading reports all of them at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        let count = self.errors.len();
        write!(formatter, "{} has {count} problem{}:", self.file, if count == 1 { "" } else { "s" })?;
        for error in &self.errors {
            write!(formatter, "\n  {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_column_and_key() {
        let error = ConfigError {
            file: "arbor.toml".into(),
            location: Some(Location { line: 12, column: 5 }),
            key: "[[streams]] #2 \"arches\"".into(),
            problem: ConfigProblem::Invalid { message: "must not be empty".into() },
        };
        assert_eq!(error.to_string(), "arbor.toml:12:5: [[streams]] #2 \"arches\": must not be empty");
        let unreadable = ConfigError {
            file: "/etc/arbor/arbor.toml".into(),
            location: None,
            key: String::new(),
            problem: ConfigProblem::Unreadable { message: "No such file or directory".into() },
        };
        assert_eq!(
            unreadable.to_string(),
            "/etc/arbor/arbor.toml: cannot read the configuration file: No such file or directory"
        );
    }
}
