//! A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks, stopped when dropped.
//!
//! [`TestPostgres::start`] copies a cluster template (made once per machine with `initdb` into
//! `/tmp/arbor-postgres-template-*`, 0.5 s; a copy takes 0.06 s) into a temporary directory and starts it
//! with `pg_ctl` on a free port, with `fsync=off` (test data need not survive a power cut). `initdb` and
//! `pg_ctl` refuse to run as root, so as root they run as the `postgres` user through `runuser`.
//!
//! The server is a daemon (`pg_ctl` starts it in a session of its own), so it would outlive a test process
//! that is killed (nextest's timeout, `timeout`, Ctrl-C, `kill -9`) before its `Drop` runs. A watchdog
//! shell started beside it reads a pipe whose only writer is the test process: when that process ends in
//! any way, the pipe closes, and the watchdog stops the server (`-m immediate`) and removes its directory.
//! The watchdog runs in a process group of its own and ignores the terminating signals, so what kills the
//! test's whole process group (`timeout` signals the group, a terminal's Ctrl-C the foreground group) does
//! not kill the watchdog with it.
//!
//! ```no_run
//! use arbor_testsupport::postgres::TestPostgres;
//! # fn main() -> anyhow::Result<()> {
//! let server = TestPostgres::start()?;
//! let url = server.create_database("queue_claims")?; // postgres://postgres@127.0.0.1:PORT/queue_claims
//! # Ok(()) }
//! ```

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::tools::require_tool;

/// Where Debian installs each PostgreSQL version's server programs.
const DEBIAN_POSTGRES_ROOT: &str = "/usr/lib/postgresql";
/// The user that runs the server when the tests run as root.
const POSTGRES_USER: &str = "postgres";
/// Attempts to start on a free port (another process may take the port between probe and start).
const START_ATTEMPTS: usize = 3;
/// Server settings: loopback only, the socket in the test's directory, no durability (tests), enough
/// connections for benchmarks with dozens of clients.
const SERVER_SETTINGS: &str = "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
     -c full_page_writes=off -c max_connections=200";
/// What `Drop` tells the watchdog after stopping the server itself.
const WATCHDOG_STOPPED: &str = "stopped";
/// Seconds the watchdog of a test process that died waits before its second stop, which catches a server
/// that a `pg_ctl start` under way at the death brought up after the first stop (a start takes well under
/// a second here; one slower than this on a loaded machine would be missed).
const WATCHDOG_SECOND_STOP_DELAY: u32 = 3;
const INSTALL_HINT: &str = "PostgreSQL server programs (initdb, pg_ctl) were not found in /usr/lib/postgresql/*/bin \
     or on PATH: run scripts/install-deps (Debian package postgresql, Fedora package postgresql-server)";

/// A running PostgreSQL server; stopped and removed when dropped.
#[derive(Debug)]
pub struct TestPostgres {
    directory: TempDir,
    port: u16,
    programs: Programs,
    /// The watchdog's stdin: closing it (drop, or the end of this process) stops the server.
    watchdog_pipe: Option<ChildStdin>,
    watchdog: Child,
}

/// The PostgreSQL programs and how to run them.
#[derive(Debug, Clone)]
struct Programs {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
    /// Run initdb and pg_ctl as [`POSTGRES_USER`] (the tests run as root).
    as_postgres_user: bool,
}

impl Programs {
    fn find() -> Result<Self> {
        let directory = newest_debian_bin_directory();
        let find = |program: &str| -> Result<PathBuf> {
            if let Some(directory) = &directory {
                let candidate = directory.join(program);
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
            require_tool(program).context(INSTALL_HINT)
        };
        Ok(Programs {
            initdb: find("initdb")?,
            pg_ctl: find("pg_ctl")?,
            psql: require_tool("psql").context(INSTALL_HINT)?,
            as_postgres_user: is_root(),
        })
    }

    /// A command for a server program, as the postgres user when running as root.
    fn server_command(&self, program: &Path) -> Command {
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", POSTGRES_USER, "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl TestPostgres {
    /// Starts a fresh server (its own cluster) on a free 127.0.0.1 port.
    pub fn start() -> Result<Self> {
        let programs = Programs::find()?;
        let template = cluster_template(&programs)?;
        let directory = tempfile::Builder::new().prefix("arbor-postgres-").tempdir_in("/tmp")?;
        hand_to_postgres_user(&programs, directory.path())?;
        let data = directory.path().join("data");
        run(Command::new("cp").arg("-a").arg(&template).arg(&data), "copying the cluster template")?;
        let (watchdog, watchdog_pipe) = start_watchdog(&programs, directory.path())?;
        let mut server =
            TestPostgres { directory, port: 0, programs, watchdog_pipe: Some(watchdog_pipe), watchdog };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match server.start_on(port) {
                Ok(()) => {
                    server.port = port;
                    return Ok(server);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("PostgreSQL did not start")))
    }

    fn start_on(&self, port: u16) -> Result<()> {
        let data = self.directory.path().join("data");
        let log = self.directory.path().join("server.log");
        let options = format!("{SERVER_SETTINGS} -p {port} -k {}", self.directory.path().display());
        let output = self
            .programs
            .server_command(&self.programs.pg_ctl)
            .arg("-D")
            .arg(&data)
            .args(["-w", "-s", "-l"])
            .arg(&log)
            .arg("-o")
            .arg(options)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .context("starting pg_ctl")?;
        if !output.status.success() {
            bail!(
                "pg_ctl start on port {port} failed ({}): {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the `postgres` database as the `postgres` superuser (trust authentication).
    pub fn database_url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://{POSTGRES_USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database (`name`: letters, digits and `_`) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        if name.is_empty() || !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_') {
            bail!("test database names are letters, digits and _: {name:?}");
        }
        self.psql(&format!("CREATE DATABASE {name}"))?;
        Ok(self.url_of(name))
    }

    /// Runs one SQL command with psql on the `postgres` database and returns its output (unaligned, tuples
    /// only).
    pub fn psql(&self, command: &str) -> Result<String> {
        let output = Command::new(&self.programs.psql)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", POSTGRES_USER, "-d", "postgres"])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", command])
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        let Output { status, stdout, stderr } = output;
        if !status.success() {
            bail!("psql -c {command:?} failed ({status}): {}", String::from_utf8_lossy(&stderr));
        }
        Ok(String::from_utf8_lossy(&stdout).trim().to_string())
    }

    /// The last lines of the server's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.directory.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self
            .programs
            .server_command(&self.programs.pg_ctl)
            .arg("-D")
            .arg(self.directory.path().join("data"))
            .args(["-s", "-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Telling the watchdog that the server is stopped, then closing the pipe, lets it remove the
        // directory at once (no second stop).
        if let Some(mut pipe) = self.watchdog_pipe.take() {
            let _ = writeln!(pipe, "{WATCHDOG_STOPPED}");
            let _ = pipe.flush();
        }
        let _ = self.watchdog.wait();
    }
}

/// A template cluster made once per machine and PostgreSQL build, copied by every server.
fn cluster_template(programs: &Programs) -> Result<PathBuf> {
    let version = run(Command::new(&programs.initdb).arg("--version"), "asking initdb for its version")?;
    let version: String = String::from_utf8_lossy(&version.stdout)
        .chars()
        .map(|character| if character.is_ascii_alphanumeric() { character } else { '-' })
        .collect();
    let user = if programs.as_postgres_user { POSTGRES_USER.to_string() } else { current_uid()?.to_string() };
    let template =
        PathBuf::from(format!("/tmp/arbor-postgres-template-{}-{user}", version.trim_matches('-')));
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    // initdb into a directory of this process, then rename: concurrent test processes never see a
    // half-made template, and the one whose rename loses uses the winner's.
    let partial = PathBuf::from(format!("{}.partial-{}", template.display(), std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir(&partial).with_context(|| format!("creating {}", partial.display()))?;
    hand_to_postgres_user(programs, &partial)?;
    let data = partial.join("data");
    run(
        programs.server_command(&programs.initdb).arg("-D").arg(&data).args([
            "-U",
            POSTGRES_USER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]),
        "initdb of the test cluster template",
    )?;
    if fs::rename(&data, &template).is_err() && !template.join("PG_VERSION").is_file() {
        bail!("could not move the cluster template to {}", template.display());
    }
    let _ = fs::remove_dir_all(&partial);
    Ok(template)
}

/// The watchdog: waits for its stdin to close, then stops the server and removes `directory`. When the
/// test process died without saying [`WATCHDOG_STOPPED`], it stops the server once more after
/// [`WATCHDOG_SECOND_STOP_DELAY`].
fn start_watchdog(programs: &Programs, directory: &Path) -> Result<(Child, ChildStdin)> {
    let stop = if programs.as_postgres_user {
        format!("runuser -u {POSTGRES_USER} -- \"$0\" -D \"$1/data\" -s -m immediate stop >/dev/null 2>&1")
    } else {
        "\"$0\" -D \"$1/data\" -s -m immediate stop >/dev/null 2>&1".to_string()
    };
    let script = format!(
        "trap '' HUP INT QUIT TERM; stopped=; \
         while read -r line; do [ \"$line\" = {WATCHDOG_STOPPED} ] && stopped=1; done; \
         {stop}; \
         if [ -z \"$stopped\" ]; then sleep {WATCHDOG_SECOND_STOP_DELAY}; {stop}; fi; \
         rm -rf \"$1\""
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&programs.pg_ctl)
        .arg(directory)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Out of the test's process group: signals to that group must not reach the watchdog.
        .process_group(0)
        .spawn()
        .context("starting the PostgreSQL watchdog")?;
    let pipe = child.stdin.take().context("the watchdog has no stdin")?;
    Ok((child, pipe))
}

/// Makes `path` the postgres user's when the tests run as root (initdb and the server write there).
fn hand_to_postgres_user(programs: &Programs, path: &Path) -> Result<()> {
    if programs.as_postgres_user {
        run(Command::new("chown").arg(POSTGRES_USER).arg(path), "handing a directory to the postgres user")
            .context("the postgres user is missing: run scripts/install-deps (Debian package postgresql)")?;
    }
    Ok(())
}

fn run(command: &mut Command, what: &str) -> Result<Output> {
    let output =
        command.stdin(Stdio::null()).output().with_context(|| format!("{what}: starting {command:?}"))?;
    if !output.status.success() {
        bail!("{what} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    Ok(output)
}

/// The newest `/usr/lib/postgresql/VERSION/bin`.
fn newest_debian_bin_directory() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(DEBIAN_POSTGRES_ROOT)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn current_uid() -> Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata("/proc/self")?.uid())
}

fn is_root() -> bool {
    current_uid().is_ok_and(|uid| uid == 0)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    use super::*;

    /// Set only for the child process that holds a server and is killed.
    const CHILD_ENVIRONMENT: &str = "ARBOR_TEST_POSTGRES_CHILD";
    /// What the child prints once its server runs, followed by the postmaster's pid and the directory.
    const CHILD_READY: &str = "ARBOR-POSTGRES-CHILD-READY";
    /// How long the child holds its server when nothing kills it.
    const CHILD_LIFETIME: Duration = Duration::from_secs(600);
    /// How long the watchdog may take to stop the server and remove its directory (the second stop comes
    /// after WATCHDOG_SECOND_STOP_DELAY): a bound for a hang, not a measurement.
    const CLEANUP_DEADLINE: Duration = Duration::from_secs(30);

    /// Not a test of its own: the process that `killed_test_process` starts and kills.
    #[test]
    #[ignore = "the child process of the killed_* tests"]
    fn child_holding_a_server() {
        if std::env::var_os(CHILD_ENVIRONMENT).is_none() {
            return;
        }
        let server = TestPostgres::start().unwrap();
        let pid = fs::read_to_string(server.directory.path().join("data/postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_string();
        println!("{CHILD_READY} {pid} {}", server.directory.path().display());
        std::thread::sleep(CHILD_LIFETIME);
    }

    /// How the child holding a server dies.
    enum Death {
        /// `kill -9` of the process alone.
        Killed,
        /// SIGTERM to its whole process group, as `timeout` sends it.
        GroupTerminated,
        /// `kill -9` of its whole process group.
        GroupKilled,
    }

    fn killed_test_process(death: Death) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["postgres::tests::child_holding_a_server", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads=1"])
            .env(CHILD_ENVIRONMENT, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let (pid, directory) = loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the child ended before its server ran");
            // libtest prints "test NAME ... " before the test's own output, on the same line.
            if let Some((_, ready)) = line.split_once(CHILD_READY) {
                let (pid, directory) = ready.trim().split_once(' ').unwrap();
                break (pid.parse::<u32>().unwrap(), PathBuf::from(directory));
            }
        };
        assert!(is_alive(pid), "the server {pid} runs");
        let group = format!("-{}", child.id());
        match death {
            Death::Killed => child.kill().unwrap(),
            Death::GroupTerminated => {
                run(Command::new("kill").args(["-TERM", "--", &group]), "kill").map(drop).unwrap()
            }
            Death::GroupKilled => {
                run(Command::new("kill").args(["-KILL", "--", &group]), "kill").map(drop).unwrap()
            }
        }
        assert!(!child.wait().unwrap().success());
        let started = Instant::now();
        while is_alive(pid) || directory.exists() {
            assert!(
                started.elapsed() < CLEANUP_DEADLINE,
                "after the test process died, the server {pid} runs: {} (directory {} exists: {})",
                is_alive(pid),
                directory.display(),
                directory.exists()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether process `pid` runs (a zombie nobody reaped yet does not).
    fn is_alive(pid: u32) -> bool {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The state follows the command name in parentheses, which may itself hold spaces and parentheses.
        stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    }

    #[test]
    fn a_killed_test_process_leaves_no_server() {
        killed_test_process(Death::Killed);
    }

    #[test]
    fn a_test_process_group_terminated_by_timeout_leaves_no_server() {
        killed_test_process(Death::GroupTerminated);
    }

    #[test]
    fn a_killed_test_process_group_leaves_no_server() {
        killed_test_process(Death::GroupKilled);
    }

    #[test]
    fn starts_creates_databases_and_stops_without_leftovers() {
        let server = TestPostgres::start().unwrap();
        let url = server.create_database("first_test").unwrap();
        assert!(url.ends_with("/first_test"), "{url}");
        assert_eq!(
            server.psql("SELECT datname FROM pg_database WHERE datname = 'first_test'").unwrap(),
            "first_test"
        );
        let directory = server.directory.path().to_path_buf();
        let port = server.port();
        drop(server);
        assert!(!directory.exists(), "the watchdog removed {}", directory.display());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the server is stopped");
    }
}
