//! Secrets (git tokens, webhook secrets, database passwords): where they come from and a value type
//! that never shows itself in logs, `Debug` output or error messages.
//!
//! The configuration never holds a secret; it names a file (`*-file`) or an environment variable
//! (`*-env`), and the value is read from there when the service starts.

use std::fmt;
use std::path::{Path, PathBuf};

/// What `Debug` prints instead of a secret's value.
const REDACTED: &str = "[redacted]";
/// Permission bits that let users other than the owner and the group read a file.
const WORLD_READABLE: u32 = 0o004;

/// A secret value. It has no `Display` and its `Debug` shows only that it is redacted; the value is
/// reached through [`Secret::expose`], at the one place it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (tests and values computed in memory; configured secrets come from
    /// [`SecretSource::load`]).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, to send it; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` (e.g. a tool's stderr) by a marker.
    pub fn redact_from(&self, text: &str) -> String {
        if self.0.is_empty() { text.to_string() } else { text.replace(&self.0, REDACTED) }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "Secret({REDACTED})")
    }
}

/// Where a secret is read from, as the configuration named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file whose content (surrounding white space trimmed) is the secret.
    File(PathBuf),
    /// An environment variable of the service's process.
    Environment(String),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(formatter, "file {}", path.display()),
            SecretSource::Environment(name) => write!(formatter, "environment variable {name}"),
        }
    }
}

/// Reading a secret failed; names the file or variable, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "cannot read the secret file {path}: {source}; create it (readable by arbor only) or fix the path"
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret file {path} is empty; write the secret into it")]
    EmptyFile { path: PathBuf },
    #[error("the secret file {path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("the environment variable {name} is not set; export it before starting arbor")]
    VariableMissing { name: String },
    #[error("the environment variable {name} is empty; set it to the secret")]
    VariableEmpty { name: String },
    #[error("the environment variable {name} is not valid UTF-8")]
    VariableNotText { name: String },
}

impl SecretSource {
    /// Reads the secret. A file that other users may read is used, with a warning in the log.
    pub fn load(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::File(path) => load_file(path),
            SecretSource::Environment(name) => match std::env::var(name) {
                Ok(value) if value.trim().is_empty() => {
                    Err(SecretError::VariableEmpty { name: name.clone() })
                }
                Ok(value) => Ok(Secret(value.trim().to_string())),
                Err(std::env::VarError::NotPresent) => {
                    Err(SecretError::VariableMissing { name: name.clone() })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::VariableNotText { name: name.clone() })
                }
            },
        }
    }
}

fn load_file(path: &Path) -> Result<Secret, SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable = |source| SecretError::Unreadable { path: path.to_path_buf(), source };
    let bytes = std::fs::read(path).map_err(unreadable)?;
    let mode = std::fs::metadata(path).map_err(unreadable)?.permissions().mode();
    if mode & WORLD_READABLE != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", mode & 0o777),
            "a secret file is readable by every user; restrict it with `chmod 600` (or 640 for a group)"
        );
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotText { path: path.to_path_buf() })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(SecretError::EmptyFile { path: path.to_path_buf() });
    }
    Ok(Secret(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_and_errors_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(secret.redact_from("token hunter2 refused"), "token [redacted] refused");
        assert_eq!(Secret::new("").redact_from("unchanged"), "unchanged");
    }

    #[test]
    fn files_are_trimmed_and_errors_name_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("token");
        std::fs::write(&path, "  s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SecretSource::File(path.clone()).load().unwrap().expose(), "s3cret");

        std::fs::write(&path, "\n").unwrap();
        let error = SecretSource::File(path.clone()).load().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("the secret file {} is empty; write the secret into it", path.display())
        );

        let missing = directory.path().join("missing");
        let error = SecretSource::File(missing.clone()).load().unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("cannot read the secret file {}: ", missing.display())),
            "{error}"
        );
    }

    #[test]
    fn variables_name_the_variable() {
        let error = SecretSource::Environment("ARBOR_TEST_SURELY_UNSET_VARIABLE".into()).load().unwrap_err();
        assert_eq!(
            error.to_string(),
            "the environment variable ARBOR_TEST_SURELY_UNSET_VARIABLE is not set; export it before starting arbor"
        );
        // PATH is set in every test environment and is not secret; it shows the variable is read.
        assert!(!SecretSource::Environment("PATH".into()).load().unwrap().expose().is_empty());
    }
}
