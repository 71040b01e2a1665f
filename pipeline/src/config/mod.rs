//! arbor.toml, the configuration of `arbor serve`: typed settings, read with every problem located
//! (file, line, column, key) and reported at once. Secrets are never in the file; it names files or
//! environment variables holding them ([`SecretSource`]).

mod database;
mod git_section;
mod problem;
mod reader;
mod sections;
mod streams;
mod values;

pub use problem::{ConfigError, ConfigErrors, ConfigProblem, Location};
pub use values::{KNOWN_ARCHES, RemoteKind, parse_duration, parse_size};

use crate::git::Credentials;
use crate::secret::{SecretError, SecretSource};
use reader::{Document, Scope, Table};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    pub server: ServerSettings,
    pub worker: WorkerSettings,
    pub cache: CacheSettings,
    pub git: GitSettings,
    pub registry: RegistrySettings,
    pub streams: Vec<StreamSettings>,
}

/// `[server]`: the process itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Database (by default), git mirror, work trees and package caches live here.
    pub state_dir: PathBuf,
    pub database: DatabaseSettings,
    /// Workers inside this process; 0 = remote workers only.
    pub workers: u32,
    /// Anonymous GET of the API and the dashboard.
    pub public_read: bool,
    pub log_format: LogFormat,
    /// How long a stopping server waits for running jobs before handing them back to the queue.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://user@host/database` (never with a password).
    pub url: String,
    /// The PostgreSQL password, when the server does not use peer or certificate authentication.
    pub password: Option<SecretSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[worker]`: how workers (embedded and remote) hold their jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// A job whose worker sent no heartbeat for this long goes back to the queue.
    pub lease_duration: Duration,
    pub heartbeat_interval: Duration,
}

/// `[cache]`: each embedded worker's package cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub directory: PathBuf,
    /// Pruned (least recently used first) down to this many bytes.
    pub max_size: u64,
}

/// `[git]`: the remote holding treefiles and lockfiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSettings {
    pub url: String,
    pub remote_kind: RemoteKind,
    pub poll_interval: Duration,
    pub fetch_timeout: Duration,
    pub credentials: GitCredentialSettings,
    /// The secret the forge signs webhooks with (GitHub, Gitea/Forgejo) or sends (GitLab); without
    /// one, `POST /api/v1/hooks/git` refuses every request.
    pub webhook_secret: Option<SecretSource>,
}

/// How arbor authenticates to the git remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitCredentialSettings {
    None,
    /// HTTP basic authentication with a token as the password (GitHub, GitLab and Forgejo accept
    /// personal or deploy tokens this way).
    Token {
        username: String,
        token: SecretSource,
    },
    /// An ssh private key; host keys are checked against `known_hosts_file`.
    SshKey {
        key_file: PathBuf,
        known_hosts_file: PathBuf,
        /// Trust a host's key the first time it is seen and record it (OpenSSH `accept-new`).
        accept_new_host_keys: bool,
    },
}

impl GitSettings {
    /// Reads the credentials' secrets (the token from its file or variable).
    pub fn credentials(&self) -> Result<Credentials, SecretError> {
        Ok(match &self.credentials {
            GitCredentialSettings::None => Credentials::None,
            GitCredentialSettings::Token { username, token } => {
                Credentials::Token { username: username.clone(), token: token.load()? }
            }
            GitCredentialSettings::SshKey { key_file, known_hosts_file, accept_new_host_keys } => {
                Credentials::SshKey {
                    key_file: key_file.clone(),
                    known_hosts_file: known_hosts_file.clone(),
                    accept_new_host_keys: *accept_new_host_keys,
                }
            }
        })
    }
}

/// `[registry]`: where images are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// A containers-auth.json file with the registry credentials; `None` = anonymous.
    pub authfile: Option<PathBuf>,
    pub tls_verify: bool,
}

/// One `[[streams]]` entry: a branch composed into an image.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSettings {
    pub name: String,
    pub branch: String,
    /// The treefile's path inside the repository.
    pub treefile: String,
    pub arches: Vec<String>,
    /// The image repository; pushed as `:<stream>` and `:<version>`.
    pub image: String,
    /// Treefile variables (`${name}`), as `--var` on the command line.
    pub variables: BTreeMap<String, treefiles::Variable>,
    /// Higher runs first when workers are busy.
    pub priority: i32,
}

impl Config {
    /// Reads and checks `path`. Relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(error) => Err(ConfigErrors {
                file: file.clone(),
                errors: vec![ConfigError {
                    file,
                    location: None,
                    key: String::new(),
                    problem: ConfigProblem::Unreadable { message: error.to_string() },
                }],
            }),
        }
    }

    /// Checks the text of the configuration file `path` (used for messages and to resolve relative
    /// paths; it is not read).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let mut document = Document::new(&file, text);
        let base = path.parent().unwrap_or(Path::new(""));
        let (root, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
        for error in syntax_errors {
            let message = error.message().to_string();
            document.report(error.span(), String::new(), ConfigProblem::Syntax { message });
        }
        let config = if document.has_problems() {
            None
        } else {
            let scope = Scope::root();
            let span = root.span();
            read_config(&mut document, Table::new(root.get_ref(), &scope, &span), path, base)
        };
        match config {
            Some(config) if !document.has_problems() => Ok(config),
            _ => Err(ConfigErrors { file, errors: document.into_errors() }),
        }
    }

    /// The stream called `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamSettings> {
        self.streams.iter().find(|stream| stream.name == name)
    }
}

const TOP_LEVEL_KEYS: &[&str] = &["server", "worker", "cache", "git", "registry", "streams"];

fn read_config(document: &mut Document, root: Table, path: &Path, base: &Path) -> Option<Config> {
    root.check_keys(document, TOP_LEVEL_KEYS);
    let server = sections::read_server(document, root, base);
    let worker = sections::read_worker(document, root);
    let cache = sections::read_cache(document, root, base, server.as_ref().map(|server| &server.state_dir));
    let git = git_section::read_git(document, root, base, server.as_ref().map(|server| &server.state_dir));
    let registry = sections::read_registry(document, root, base);
    let streams = streams::read_streams(document, root);
    Some(Config {
        file: path.to_path_buf(),
        server: server?,
        worker: worker?,
        cache: cache?,
        git: git?,
        registry: registry?,
        streams: streams?,
    })
}

/// `path` as written, or relative to the configuration file's directory.
fn resolve(base: &Path, path: &str) -> PathBuf {
    base.join(path)
}

#[cfg(test)]
mod tests;
