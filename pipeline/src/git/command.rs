//! Running the `git` program: a clean environment, credentials only in environment variables, a
//! timeout, the whole process group killed on timeout or when the caller stops waiting, and stderr
//! (with secrets redacted) in every error.

use super::{Credentials, GitError};
use base64::Engine;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// The program; found on `PATH` (Debian's git, installed by scripts/install-deps).
const GIT_PROGRAM: &str = "git";
/// Local commands (rev-parse, log, ls-tree) finish in milliseconds; this only stops a hung one.
pub(super) const LOCAL_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// At most this much of a failing command's stderr goes into the error (its end, where git says why).
const STDERR_LIMIT_BYTES: usize = 4096;
/// Environment variables passed through to git: the program search path, proxies and CA certificates
/// that operators set for every HTTP client, and the directory for temporary files.
const PASSED_THROUGH_VARIABLES: &[&str] = &[
    "PATH",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// What every git command of one mirror runs with.
#[derive(Debug, Clone)]
pub(super) struct GitRunner {
    git_dir: PathBuf,
    /// `HOME` for git and ssh: a directory of arbor's, so no user configuration applies.
    home: PathBuf,
    /// Environment variables that authenticate to the remote (network commands only).
    credential_environment: Vec<(String, String)>,
    /// Texts removed from stderr before it goes into an error or a log.
    secrets: Vec<String>,
}

/// A finished command.
#[derive(Debug)]
pub(super) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Kills the command's process group (git and its helpers: git-remote-https, ssh) when dropped
/// before the command finished: on timeout, and when the caller's future is dropped.
struct ProcessGroupGuard(Option<rustix::process::Pid>);

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            // The group may already be gone; there is nothing to do about a failure here.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

/// A running command whose process group is killed if it is dropped unfinished.
pub(super) struct Running {
    pub child: Child,
    guard: ProcessGroupGuard,
    description: String,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.debug_struct("Running").field("command", &self.description).finish()
    }
}

impl Running {
    /// The process finished normally: nothing to kill any more.
    pub fn disarm(&mut self) {
        self.guard.0 = None;
    }
}

impl GitRunner {
    pub fn new(git_dir: &Path, home: &Path, url: &str, credentials: &Credentials) -> GitRunner {
        let mut credential_environment = Vec::new();
        let mut secrets = Vec::new();
        match credentials {
            Credentials::None => {}
            Credentials::Token { username, token } => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", token.expose()));
                // Scoped to the remote's URL, so the header is not sent to other hosts.
                credential_environment.push(("GIT_CONFIG_COUNT".into(), "1".into()));
                credential_environment.push(("GIT_CONFIG_KEY_0".into(), format!("http.{url}.extraHeader")));
                credential_environment
                    .push(("GIT_CONFIG_VALUE_0".into(), format!("Authorization: Basic {encoded}")));
                secrets.push(token.expose().to_string());
                secrets.push(encoded);
            }
            Credentials::SshKey { key_file, known_hosts_file, accept_new_host_keys } => {
                let checking = if *accept_new_host_keys { "accept-new" } else { "yes" };
                let command = format!(
                    "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={} \
                     -o StrictHostKeyChecking={checking}",
                    shell_quote(&key_file.to_string_lossy()),
                    shell_quote(&known_hosts_file.to_string_lossy()),
                );
                credential_environment.push(("GIT_SSH_COMMAND".into(), command));
                credential_environment.push(("GIT_SSH_VARIANT".into(), "ssh".into()));
            }
        }
        GitRunner {
            git_dir: git_dir.to_path_buf(),
            home: home.to_path_buf(),
            credential_environment,
            secrets,
        }
    }

    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// `text` without any of the credentials in it.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "[redacted]"))
    }

    fn command(&self, arguments: &[&OsStr], network: bool) -> Command {
        let mut command = Command::new(GIT_PROGRAM);
        command.env_clear();
        for name in PASSED_THROUGH_VARIABLES {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("HOME", &self.home)
            .env("GIT_DIR", &self.git_dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            // Messages in English, so that failures can be classified from stderr.
            .env("LC_ALL", "C");
        if network {
            command.envs(self.credential_environment.iter().map(|(name, value)| (name, value)));
        }
        command.args(arguments).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.kill_on_drop(true).process_group(0);
        command
    }

    /// Starts `git ARGUMENTS` with piped stdin and stdout (for `cat-file --batch`).
    pub fn spawn(&self, arguments: &[&OsStr]) -> Result<Running, GitError> {
        let mut command = self.command(arguments, false);
        command.stdin(Stdio::piped());
        start(command, describe(arguments))
    }

    /// Runs `git ARGUMENTS` and waits for it, at most `timeout`. A failing exit status is not an
    /// error here; see [`Finished::success`].
    pub async fn run(
        &self,
        arguments: &[&OsStr],
        network: bool,
        timeout: Duration,
    ) -> Result<Finished, GitError> {
        let description = describe(arguments);
        let mut running = start(self.command(arguments, network), description.clone())?;
        let stdout = running.child.stdout.take();
        let stderr = running.child.stderr.take();
        let work = async { tokio::try_join!(running.child.wait(), read_to_end(stdout), read_to_end(stderr)) };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok((status, stdout, stderr))) => {
                running.disarm();
                Ok(Finished { status, stdout, stderr: self.redact(&tail(&String::from_utf8_lossy(&stderr))) })
            }
            Ok(Err(source)) => Err(GitError::Io { action: format!("waiting for `{description}`"), source }),
            Err(_) => Err(GitError::TimedOut { command: description, timeout }),
        }
    }

    /// Runs `git ARGUMENTS` locally and returns its stdout; a failing exit status is an error.
    pub async fn output(&self, arguments: &[&OsStr]) -> Result<Vec<u8>, GitError> {
        let finished = self.run(arguments, false, LOCAL_COMMAND_TIMEOUT).await?;
        finished.success(arguments)
    }
}

impl Finished {
    /// Stdout when the command succeeded, else the failure with its stderr.
    pub fn success(self, arguments: &[&OsStr]) -> Result<Vec<u8>, GitError> {
        if self.status.success() {
            Ok(self.stdout)
        } else {
            Err(GitError::Failed {
                command: describe(arguments),
                status: self.status.to_string(),
                stderr: self.stderr,
            })
        }
    }
}

fn start(mut command: Command, description: String) -> Result<Running, GitError> {
    let child = command.spawn().map_err(|source| GitError::Spawn { source })?;
    let group = child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw);
    Ok(Running { child, guard: ProcessGroupGuard(group), description })
}

async fn read_to_end(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await?;
    }
    Ok(bytes)
}

/// `git SUBCOMMAND ARGUMENTS` for messages (arguments never hold secrets).
fn describe(arguments: &[&OsStr]) -> String {
    let mut description = OsString::from(GIT_PROGRAM);
    for argument in arguments {
        description.push(" ");
        description.push(argument);
    }
    description.to_string_lossy().into_owned()
}

/// The end of `stderr`, trimmed, at most [`STDERR_LIMIT_BYTES`].
fn tail(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.len() <= STDERR_LIMIT_BYTES {
        return trimmed.to_string();
    }
    let mut start = trimmed.len() - STDERR_LIMIT_BYTES;
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &trimmed[start..])
}

/// `text` quoted for the POSIX shell that runs `GIT_SSH_COMMAND`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn tokens_go_into_an_url_scoped_header_and_are_redacted() {
        let credentials = Credentials::Token { username: "arbor".into(), token: Secret::new("t0ken") };
        let runner =
            GitRunner::new(Path::new("/m"), Path::new("/h"), "https://git.example.com/os.git", &credentials);
        let environment: Vec<(&str, &str)> = runner
            .credential_environment
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        // base64("arbor:t0ken")
        assert_eq!(
            environment,
            [
                ("GIT_CONFIG_COUNT", "1"),
                ("GIT_CONFIG_KEY_0", "http.https://git.example.com/os.git.extraHeader"),
                ("GIT_CONFIG_VALUE_0", "Authorization: Basic YXJib3I6dDBrZW4="),
            ]
        );
        assert_eq!(runner.redact("bad t0ken and YXJib3I6dDBrZW4="), "bad [redacted] and [redacted]");
    }

    #[test]
    fn ssh_keys_go_into_the_ssh_command() {
        let credentials = Credentials::SshKey {
            key_file: "/etc/arbor/it's key".into(),
            known_hosts_file: "/etc/arbor/known_hosts".into(),
            accept_new_host_keys: false,
        };
        let runner = GitRunner::new(Path::new("/m"), Path::new("/h"), "ssh://git@host/os.git", &credentials);
        assert_eq!(
            runner.credential_environment[0].1,
            "ssh -F /dev/null -i '/etc/arbor/it'\\''s key' -o IdentitiesOnly=yes -o BatchMode=yes \
             -o UserKnownHostsFile='/etc/arbor/known_hosts' -o StrictHostKeyChecking=yes"
        );
    }

    #[test]
    fn long_stderr_keeps_its_end() {
        let long = format!("{}fatal: the reason", "x".repeat(2 * STDERR_LIMIT_BYTES));
        let kept = tail(&long);
        assert!(kept.starts_with("...") && kept.ends_with("fatal: the reason"));
        assert_eq!(kept.len(), STDERR_LIMIT_BYTES + 3);
    }
}
