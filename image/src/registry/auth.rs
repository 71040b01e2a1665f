//! Registry credentials: finding the containers/docker auth file, reading an entry for a registry,
//! and parsing `WWW-Authenticate` challenges.
//!
//! The search order follows containers-auth.json(5): `--authfile`, else `$REGISTRY_AUTH_FILE` (either
//! one is used alone and must exist), else the first of `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json` and `~/.docker/config.json` that holds an entry for the registry.
//! The lookup is a pure function of [`AuthEnvironment`] so that it can be tested without touching the
//! process environment.

use super::RegistryError;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable that names an auth file (containers-auth.json(5)).
pub const REGISTRY_AUTH_FILE_VARIABLE: &str = "REGISTRY_AUTH_FILE";
/// Auth files larger than this are refused: real ones hold a few entries of a few hundred bytes.
const MAXIMUM_AUTH_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Keys Docker Hub credentials are stored under besides `docker.io`.
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io"];

/// The environment values the auth file search depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthEnvironment {
    /// `$REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
}

impl AuthEnvironment {
    /// Reads the values from the process environment (empty values count as unset).
    pub fn from_process() -> Self {
        let variable =
            |name: &str| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
        Self {
            registry_auth_file: variable(REGISTRY_AUTH_FILE_VARIABLE),
            xdg_runtime_dir: variable("XDG_RUNTIME_DIR"),
            home: variable("HOME"),
        }
    }
}

/// Where an auth file candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFileSource {
    /// `--authfile` ([`RegistryOptions::auth_file`](super::RegistryOptions::auth_file)).
    CommandLine,
    /// `$REGISTRY_AUTH_FILE`.
    Environment,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`.
    XdgRuntimeDir,
    /// `~/.config/containers/auth.json`.
    ContainersConfig,
    /// `~/.docker/config.json`.
    DockerConfig,
}

impl AuthFileSource {
    /// Whether the user named this file explicitly, so that it must exist and is used alone.
    pub fn is_explicit(self) -> bool {
        matches!(self, Self::CommandLine | Self::Environment)
    }
}

/// One file the credential search looks at, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFileCandidate {
    pub path: PathBuf,
    pub source: AuthFileSource,
}

/// The auth files to search, in order: an explicit file alone, else the default locations.
pub fn auth_file_candidates(
    explicit: Option<&Path>,
    environment: &AuthEnvironment,
) -> Vec<AuthFileCandidate> {
    if let Some(path) = explicit {
        return vec![AuthFileCandidate { path: path.to_path_buf(), source: AuthFileSource::CommandLine }];
    }
    if let Some(path) = &environment.registry_auth_file {
        return vec![AuthFileCandidate { path: path.clone(), source: AuthFileSource::Environment }];
    }
    let mut candidates = Vec::new();
    if let Some(runtime) = &environment.xdg_runtime_dir {
        candidates.push(AuthFileCandidate {
            path: runtime.join("containers/auth.json"),
            source: AuthFileSource::XdgRuntimeDir,
        });
    }
    if let Some(home) = &environment.home {
        candidates.push(AuthFileCandidate {
            path: home.join(".config/containers/auth.json"),
            source: AuthFileSource::ContainersConfig,
        });
        candidates.push(AuthFileCandidate {
            path: home.join(".docker/config.json"),
            source: AuthFileSource::DockerConfig,
        });
    }
    candidates
}

/// A user name and password for one registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub(super) fn basic_header(&self) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.username, self.password));
        format!("Basic {encoded}")
    }
}

/// The outcome of the credential search, with the files looked at (for error messages).
#[derive(Debug, Clone, Default)]
pub struct CredentialLookup {
    /// The credentials found and the file they came from.
    pub found: Option<(Credentials, PathBuf)>,
    /// Every file that was looked at, in order.
    pub searched: Vec<PathBuf>,
}

impl CredentialLookup {
    /// A hint for an authentication error: which file the credentials came from, or where none were
    /// found. Never contains a secret.
    pub fn hint(&self) -> String {
        match &self.found {
            Some((credentials, path)) => {
                format!("check --authfile: used user `{}` from {}", credentials.username, path.display())
            }
            None if self.searched.is_empty() => {
                "no credentials: pass --authfile or set $REGISTRY_AUTH_FILE".to_string()
            }
            None => format!(
                "no credentials for this registry in {}; pass --authfile",
                self.searched.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Finds credentials for `registry`/`repository` in the candidate files.
pub fn find_credentials(
    explicit: Option<&Path>,
    environment: &AuthEnvironment,
    registry: &str,
    repository: &str,
) -> Result<CredentialLookup, RegistryError> {
    let mut lookup = CredentialLookup::default();
    for candidate in auth_file_candidates(explicit, environment) {
        let text = match read_auth_file(&candidate.path) {
            Ok(Some(text)) => text,
            Ok(None) if !candidate.source.is_explicit() => continue,
            Ok(None) => {
                return Err(RegistryError::AuthFile {
                    path: candidate.path,
                    reason: "the file does not exist".to_string(),
                });
            }
            Err(reason) => return Err(RegistryError::AuthFile { path: candidate.path, reason }),
        };
        lookup.searched.push(candidate.path.clone());
        let found = credentials_in(&text, registry, repository)
            .map_err(|reason| RegistryError::AuthFile { path: candidate.path.clone(), reason })?;
        if let Some(credentials) = found {
            lookup.found = Some((credentials, candidate.path));
            break;
        }
    }
    Ok(lookup)
}

/// Reads an auth file: `Ok(None)` when it does not exist.
fn read_auth_file(path: &Path) -> Result<Option<String>, String> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    if metadata.len() > MAXIMUM_AUTH_FILE_BYTES {
        return Err(format!("larger than {MAXIMUM_AUTH_FILE_BYTES} bytes; not an auth file"));
    }
    std::fs::read_to_string(path).map(Some).map_err(|error| error.to_string())
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials for `registry`/`repository` in the JSON text of an auth file: the most specific
/// `registry/namespace/...` key wins over the bare registry key. Error texts never quote values.
pub fn credentials_in(text: &str, registry: &str, repository: &str) -> Result<Option<Credentials>, String> {
    let file: AuthFile = serde_json::from_str(text).map_err(|error| {
        format!("not a containers auth file (line {}, column {})", error.line(), error.column())
    })?;
    let entries: Vec<(String, &AuthEntry)> =
        file.auths.iter().map(|(key, entry)| (normalize_key(key), entry)).collect();
    let registry = normalize_host(registry);
    // Most specific first: registry/a/b/c, registry/a/b, registry/a, registry.
    let mut scopes: Vec<String> = Vec::new();
    let components: Vec<&str> = repository.split('/').collect();
    for length in (1..=components.len()).rev() {
        scopes.push(format!("{registry}/{}", components[..length].join("/")));
    }
    scopes.push(registry.to_string());
    for scope in scopes {
        if let Some((key, entry)) = entries.iter().find(|(key, _)| *key == scope) {
            return decode_entry(entry).map(Some).map_err(|reason| format!("entry `{key}`: {reason}"));
        }
    }
    Ok(None)
}

fn decode_entry(entry: &AuthEntry) -> Result<Credentials, String> {
    if let Some(auth) = entry.auth.as_deref().filter(|auth| !auth.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "`auth` is not base64".to_string())?;
        let decoded = String::from_utf8(decoded).map_err(|_| "`auth` is not UTF-8 text".to_string())?;
        let Some((username, password)) = decoded.split_once(':') else {
            return Err("`auth` does not decode to user:password".to_string());
        };
        return Ok(Credentials { username: username.to_string(), password: password.to_string() });
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) => {
            Ok(Credentials { username: username.clone(), password: password.clone() })
        }
        _ => {
            Err("has neither `auth` nor `username` and `password` (credential helpers are not supported)"
                .into())
        }
    }
}

/// `https://host:5000/v2/` and `host:5000` name the same registry; `index.docker.io` is `docker.io`.
fn normalize_key(key: &str) -> String {
    let without_scheme = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let trimmed = without_scheme.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v1").or_else(|| trimmed.strip_suffix("/v2")).unwrap_or(trimmed);
    match trimmed.split_once('/') {
        Some((host, path)) => format!("{}/{path}", normalize_host(host)),
        None => normalize_host(trimmed).to_string(),
    }
}

fn normalize_host(host: &str) -> &str {
    if DOCKER_HUB_ALIASES.contains(&host) { super::reference::DEFAULT_REGISTRY } else { host }
}

/// An authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// Token authentication (distribution's token spec): get a token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value: `Bearer realm="...",service="...",scope="..."` or `Basic ...`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, parameters) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let parameters = parse_parameters(parameters);
    let get = |name: &str| {
        parameters.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.clone())
    };
    Some(Challenge::Bearer { realm: get("realm")?, service: get("service"), scope: get("scope") })
}

/// Splits `key=value, key="quoted, value"` pairs.
fn parse_parameters(text: &str) -> Vec<(String, String)> {
    let mut parameters = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut characters = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((index, character)) = characters.next() {
                match character {
                    '\\' => {
                        if let Some((_, escaped)) = characters.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = index + 1;
                        break;
                    }
                    other => value.push(other),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        parameters.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    parameters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(
        registry_auth_file: Option<&str>,
        xdg: Option<&str>,
        home: Option<&str>,
    ) -> AuthEnvironment {
        AuthEnvironment {
            registry_auth_file: registry_auth_file.map(PathBuf::from),
            xdg_runtime_dir: xdg.map(PathBuf::from),
            home: home.map(PathBuf::from),
        }
    }

    #[test]
    fn auth_file_search_order() {
        use AuthFileSource::*;
        /// `--authfile`, the environment, and the expected candidates.
        type Case<'a> = (Option<&'a str>, AuthEnvironment, &'a [(&'a str, AuthFileSource)]);
        let cases: &[Case] = &[
            (
                Some("/explicit.json"),
                environment(Some("/env.json"), Some("/run/user/1"), Some("/home/u")),
                &[("/explicit.json", CommandLine)],
            ),
            (
                None,
                environment(Some("/env.json"), Some("/run/user/1"), Some("/home/u")),
                &[("/env.json", Environment)],
            ),
            (
                None,
                environment(None, Some("/run/user/1"), Some("/home/u")),
                &[
                    ("/run/user/1/containers/auth.json", XdgRuntimeDir),
                    ("/home/u/.config/containers/auth.json", ContainersConfig),
                    ("/home/u/.docker/config.json", DockerConfig),
                ],
            ),
            (
                None,
                environment(None, None, Some("/home/u")),
                &[
                    ("/home/u/.config/containers/auth.json", ContainersConfig),
                    ("/home/u/.docker/config.json", DockerConfig),
                ],
            ),
            (
                None,
                environment(None, Some("/run/user/1"), None),
                &[("/run/user/1/containers/auth.json", XdgRuntimeDir)],
            ),
            (None, environment(None, None, None), &[]),
        ];
        for (explicit, environment, expected) in cases {
            let candidates = auth_file_candidates(explicit.map(Path::new), environment);
            let got: Vec<(PathBuf, AuthFileSource)> =
                candidates.into_iter().map(|candidate| (candidate.path, candidate.source)).collect();
            let expected: Vec<(PathBuf, AuthFileSource)> =
                expected.iter().map(|(path, source)| (PathBuf::from(path), *source)).collect();
            assert_eq!(got, expected, "explicit {explicit:?}, {environment:?}");
        }
    }

    #[test]
    fn first_default_file_with_an_entry_wins_and_explicit_files_must_exist() {
        let home = tempfile::tempdir().expect("tempdir");
        let runtime = tempfile::tempdir().expect("tempdir");
        let containers = home.path().join(".config/containers");
        std::fs::create_dir_all(&containers).expect("mkdir");
        std::fs::create_dir_all(runtime.path().join("containers")).expect("mkdir");
        std::fs::create_dir_all(home.path().join(".docker")).expect("mkdir");
        // The runtime file exists but has no entry for the registry; the containers file has one.
        std::fs::write(
            runtime.path().join("containers/auth.json"),
            r#"{"auths":{"other:1":{"auth":"dTpw"}}}"#,
        )
        .expect("write");
        std::fs::write(
            containers.join("auth.json"),
            r#"{"auths":{"reg:5000":{"username":"a","password":"b"}}}"#,
        )
        .expect("write");
        std::fs::write(home.path().join(".docker/config.json"), r#"{"auths":{"reg:5000":{"auth":"Yzpk"}}}"#)
            .expect("write");
        let environment = AuthEnvironment {
            registry_auth_file: None,
            xdg_runtime_dir: Some(runtime.path().to_path_buf()),
            home: Some(home.path().to_path_buf()),
        };
        let lookup = find_credentials(None, &environment, "reg:5000", "repo").expect("lookup");
        let (credentials, path) = lookup.found.expect("found");
        assert_eq!((credentials.username.as_str(), credentials.password.as_str()), ("a", "b"));
        assert_eq!(path, containers.join("auth.json"));
        assert_eq!(lookup.searched.len(), 2);

        let missing = home.path().join("missing.json");
        let error = find_credentials(Some(&missing), &environment, "reg:5000", "repo").expect_err("missing");
        assert!(error.to_string().contains("missing.json"), "{error}");
        let anonymous = find_credentials(None, &environment, "nowhere:1", "repo").expect("lookup");
        assert!(anonymous.found.is_none());
        assert!(anonymous.hint().contains(".docker/config.json"), "{}", anonymous.hint());
    }

    #[test]
    fn entries_match_registry_keys_in_every_spelling() {
        let text = r#"{"auths":{
            "https://reg.example:5000/v2/": {"auth": "dXNlcjpwYXNzOndpdGg6Y29sb25z"},
            "reg.example:5000/team/app": {"username": "team", "password": "secret"},
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"}
        }}"#;
        let lookup = |registry: &str, repository: &str| {
            credentials_in(text, registry, repository).expect("parse").map(|c| (c.username, c.password))
        };
        assert_eq!(lookup("reg.example:5000", "other"), Some(("user".into(), "pass:with:colons".into())));
        assert_eq!(lookup("reg.example:5000", "team/app/sub"), Some(("team".into(), "secret".into())));
        assert_eq!(lookup("docker.io", "library/fedora"), Some(("hub".into(), "hubpw".into())));
        assert_eq!(lookup("reg.example", "other"), None);
        let error = credentials_in(r#"{"auths":{"h":{"auth":"!!"}}}"#, "h", "r").expect_err("bad base64");
        assert!(error.contains("base64"), "{error}");
        assert!(credentials_in("not json", "h", "r").is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let credentials = Credentials { username: "user".into(), password: "hunter2".into() };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="arbor""#), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge("bearer realm=http://x/token"),
            Some(Challenge::Bearer { realm: "http://x/token".into(), service: None, scope: None })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }
}
