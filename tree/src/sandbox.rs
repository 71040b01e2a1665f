//! Running programs inside the tree being composed, without harming the object store: the tree is
//! mounted through `rofiles-fuse --copyup` (a write to a hardlinked object copies it up first) and
//! every program runs in a `bwrap` sandbox with that mount as `/`, no network, a fixed environment,
//! captured output and a time limit.
//!
//! The tree's regular files are mostly hardlinks into an ostree repository, so a program that opened
//! one of them for writing directly would silently change the stored object. [`ProtectedRoot`] owns
//! the FUSE mount (and removes it when dropped); [`ProtectedRoot::run`] runs one [`SandboxCommand`].
//! After a crash (kill -9), [`cleanup_stale_mounts`] removes mounts left under a work directory.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The FUSE file system that makes hardlinked objects copy-on-write (shipped with ostree).
const ROFILES_FUSE: &str = "rofiles-fuse";

/// The sandbox tool (bubblewrap).
const BWRAP: &str = "bwrap";

/// How long `rofiles-fuse` may take to make its mount visible. Mounting takes milliseconds; a
/// mount that has not appeared after this long is not coming (a hung FUSE start-up).
const MOUNT_WAIT_LIMIT: Duration = Duration::from_secs(10);

/// How often the mount table is read while waiting for the mount to appear.
const MOUNT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long `rofiles-fuse` may take to exit once its mount is detached before it is killed. It
/// exits as soon as the kernel closes the FUSE connection, which is immediate when nothing in
/// the tree is still open.
const FUSE_EXIT_WAIT_LIMIT: Duration = Duration::from_secs(5);

/// The time limit of a sandboxed program unless the command sets another. The slowest legitimate
/// scriptlets (initramfs generation, font and icon cache rebuilds) take a few minutes on a slow
/// builder; a program still running after this is stuck, typically waiting for input that
/// `/dev/null` never gives or for a network that the sandbox does not have.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The longest pause between two checks whether a sandboxed program has exited: short enough not
/// to slow down hundreds of tiny scriptlets noticeably, long enough not to spin.
const LONGEST_EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How much of the beginning of a program's output is kept: where it says what it is doing.
const OUTPUT_HEAD_BYTES: usize = 64 * 1024;

/// How much of the end of a program's output is kept: where the error usually is. Together with
/// [`OUTPUT_HEAD_BYTES`] this bounds the memory a chatty program can make arbor use.
const OUTPUT_TAIL_BYTES: usize = 192 * 1024;

/// How many symbolic links are followed while resolving a path inside the tree, as Linux's
/// `MAXSYMLINKS`: more means a loop.
const MAXIMUM_SYMLINKS_FOLLOWED: usize = 40;

/// The environment every sandboxed program starts with, whatever arbor's own environment is, so
/// that the host's variables never influence what the tree contains.
const FIXED_ENVIRONMENT: [(&str, &str); 3] =
    [("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), ("LANG", "C.UTF-8"), ("HOME", "/root")];

/// Where the script file of a command appears inside the sandbox (on the `/run` tmpfs).
const SCRIPT_DIRECTORY_IN_SANDBOX: &str = "/run/arbor";

/// The directories the sandbox mounts something on (relative to the tree). `bwrap` creates those
/// that are missing in the tree; they are removed again afterwards so that they do not end up in
/// the composed commit. `/tmp`, `/var/tmp` and `/run` are private tmpfs mounts: what programs put
/// there is thrown away.
const MOUNT_TARGETS: [&str; 5] = ["proc", "dev", "tmp", "var/tmp", "run"];

/// The suffix of the mount point that [`ProtectedRoot::mount_beside`] derives from the tree's path.
const MOUNTPOINT_SUFFIX: &str = ".rofiles";

/// The suffix of the host directory that holds the script files of one mounted tree.
const SCRIPT_DIRECTORY_SUFFIX: &str = ".scripts";

/// The octal escapes the kernel writes in `/proc/self/mountinfo` for space, tab, newline and
/// backslash take three digits after the backslash.
const MOUNTINFO_ESCAPE_DIGITS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the tree {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot use {} as the mount point of the tree: {reason}", path.display())]
    UnusableMountpoint { path: PathBuf, reason: String },
    #[error("cannot prepare {}: {source}", path.display())]
    Prepare { path: PathBuf, source: std::io::Error },
    #[error(
        "{} is already a mount point (left over from an earlier run that was killed? \
         `cleanup_stale_mounts` on the work directory removes it)",
        path.display()
    )]
    AlreadyMounted { path: PathBuf },
    #[error("cannot start `{tool}` (it is installed by scripts/install-deps): {source}")]
    Spawn { tool: &'static str, source: std::io::Error },
    #[error("rofiles-fuse exited ({status}) before mounting {} at {}: {output}", root.display(), mountpoint.display())]
    MountFailed { root: PathBuf, mountpoint: PathBuf, status: ExitStatus, output: String },
    #[error(
        "rofiles-fuse did not mount {} at {} within {} seconds",
        root.display(),
        mountpoint.display(),
        MOUNT_WAIT_LIMIT.as_secs()
    )]
    MountTimedOut { root: PathBuf, mountpoint: PathBuf },
    #[error("cannot read the mount table /proc/self/mountinfo: {source}")]
    MountTable { source: std::io::Error },
    #[error("cannot unmount {}: {source}", path.display())]
    Unmount { path: PathBuf, source: std::io::Error },
    #[error("{description}: there is no program to run")]
    EmptyCommand { description: String },
    #[error("{description}: the program `{program}` is not an absolute path")]
    RelativeProgram { description: String, program: String },
    #[error("{description} needs {program}, which is not in the tree {}", root.display())]
    ProgramMissing { description: String, program: String, root: PathBuf },
    #[error("cannot write the script of {description} to {}: {source}", path.display())]
    ScriptFile { description: String, path: PathBuf, source: std::io::Error },
    #[error("cannot capture the output of {description}: {source}")]
    Output { description: String, source: std::io::Error },
    #[error("waiting for {description}: {source}")]
    Wait { description: String, source: std::io::Error },
    #[error("{description} failed ({status}); its output:\n{}", show_output(output))]
    Failed { description: String, status: ExitStatus, output: String },
    #[error(
        "{description} was killed after running for {} seconds; its output:\n{}",
        timeout.as_secs(),
        show_output(output)
    )]
    TimedOut { description: String, timeout: Duration, output: String },
}

/// The captured output of a program for an error message, or a note that there was none.
pub(crate) fn show_output(output: &str) -> &str {
    if output.trim().is_empty() { "(no output)" } else { output }
}

/// One program to run in the sandbox.
///
/// The program is `interpreter` (an absolute path inside the tree, then its own arguments). When
/// `script` is set, its text is written to a file that the sandbox shows read-only under
/// `/run/arbor/`, and that file's path is the next argument; `arguments` come last. This is how
/// rpm runs a scriptlet: `/bin/sh /path/to/script 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCommand {
    /// Names the command in logs and errors, e.g. `bash.post`; also the script file's name.
    pub description: String,
    /// The program (absolute path inside the tree) and its leading arguments.
    pub interpreter: Vec<String>,
    /// The text of a script given to the interpreter as a file, if any.
    pub script: Option<String>,
    /// The arguments after the script file.
    pub arguments: Vec<String>,
    /// Variables set on top of the fixed environment (PATH, LANG, HOME).
    pub environment: Vec<(String, String)>,
    /// What the program reads on its standard input; `/dev/null` when `None`.
    pub stdin: Option<Vec<u8>>,
    /// The program is killed when it runs longer than this.
    pub timeout: Duration,
}

impl SandboxCommand {
    pub fn new(description: impl Into<String>, interpreter: Vec<String>) -> Self {
        SandboxCommand {
            description: description.into(),
            interpreter,
            script: None,
            arguments: Vec::new(),
            environment: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn script(mut self, body: impl Into<String>) -> Self {
        self.script = Some(body.into());
        self
    }

    pub fn argument(mut self, argument: impl Into<String>) -> Self {
        self.arguments.push(argument.into());
        self
    }

    pub fn environment(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.environment.push((name.into(), value.into()));
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What a program that exited successfully printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOutput {
    /// Standard output and standard error, interleaved as written; when the program wrote more
    /// than arbor keeps, the middle is replaced by a line saying how much was left out.
    pub output: String,
    /// How many bytes of output were left out.
    pub omitted_bytes: u64,
    pub elapsed: Duration,
}

/// The tree mounted through `rofiles-fuse --copyup`, unmounted when dropped.
#[derive(Debug)]
pub struct ProtectedRoot {
    root: PathBuf,
    mountpoint: PathBuf,
    created_mountpoint: bool,
    script_directory: PathBuf,
    environment: Vec<(String, String)>,
    fuse: Option<FuseProcess>,
    commands_run: AtomicU64,
}

/// The running `rofiles-fuse` (in the foreground, so that arbor can see it exit) and the thread
/// that collects what it prints.
#[derive(Debug)]
struct FuseProcess {
    child: Child,
    output: Option<JoinHandle<BoundedOutput>>,
}

impl ProtectedRoot {
    /// Mounts `root` at `mountpoint` (created when missing, else it must be an empty directory
    /// outside the tree) and waits until the mount is visible.
    pub fn mount(root: &Path, mountpoint: &Path) -> Result<ProtectedRoot, SandboxError> {
        let root_metadata = std::fs::metadata(root)
            .map_err(|source| SandboxError::Prepare { path: root.to_path_buf(), source })?;
        if !root_metadata.is_dir() {
            return Err(SandboxError::NotADirectory { path: root.to_path_buf() });
        }
        let root = std::fs::canonicalize(root)
            .map_err(|source| SandboxError::Prepare { path: root.to_path_buf(), source })?;
        let absolute_mountpoint = std::path::absolute(mountpoint)
            .map_err(|source| SandboxError::Prepare { path: mountpoint.to_path_buf(), source })?;
        if mount_table()?.iter().any(|entry| entry.mountpoint == absolute_mountpoint) {
            return Err(SandboxError::AlreadyMounted { path: absolute_mountpoint });
        }
        let created_mountpoint = prepare_mountpoint(&absolute_mountpoint)?;
        let mountpoint = match std::fs::canonicalize(&absolute_mountpoint) {
            Ok(mountpoint) => mountpoint,
            Err(source) => {
                remove_created_mountpoint(&absolute_mountpoint, created_mountpoint);
                return Err(SandboxError::Prepare { path: absolute_mountpoint, source });
            }
        };
        if mountpoint.starts_with(&root) {
            remove_created_mountpoint(&mountpoint, created_mountpoint);
            return Err(SandboxError::UnusableMountpoint {
                path: mountpoint,
                reason: format!("it is inside the tree {}", root.display()),
            });
        }
        let script_directory = sibling_with_suffix(&mountpoint, SCRIPT_DIRECTORY_SUFFIX);
        let mut protected = ProtectedRoot {
            root,
            mountpoint,
            created_mountpoint,
            script_directory,
            environment: Vec::new(),
            fuse: None,
            commands_run: AtomicU64::new(0),
        };
        // From here on, dropping `protected` undoes whatever was done.
        protected.prepare_script_directory()?;
        protected.start_fuse()?;
        tracing::debug!(root = %protected.root.display(), mountpoint = %protected.mountpoint.display(), "tree mounted through rofiles-fuse");
        Ok(protected)
    }

    /// Mounts `root` at a directory next to it: `/work/root` at `/work/root.rofiles`.
    pub fn mount_beside(root: &Path) -> Result<ProtectedRoot, SandboxError> {
        let absolute = std::path::absolute(root)
            .map_err(|source| SandboxError::Prepare { path: root.to_path_buf(), source })?;
        if absolute.file_name().is_none() {
            return Err(SandboxError::UnusableMountpoint {
                path: absolute.clone(),
                reason: "the tree has no name to derive a mount point from".to_string(),
            });
        }
        ProtectedRoot::mount(&absolute, &sibling_with_suffix(&absolute, MOUNTPOINT_SUFFIX))
    }

    /// The tree itself (canonical path).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the tree is visible through rofiles-fuse (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Sets a variable for every command run in this tree (e.g. `SOURCE_DATE_EPOCH`), on top of
    /// the fixed environment; a command's own variables win.
    pub fn set_environment(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.environment.retain(|(existing, _)| *existing != name);
        self.environment.push((name, value.into()));
    }

    /// Unmounts now and reports a failure (dropping unmounts too, but can only log one).
    pub fn unmount(mut self) -> Result<(), SandboxError> {
        self.release()
    }

    /// Runs `command` with the mounted tree as `/`; an unsuccessful exit is an error carrying the
    /// program's output. Commands in one tree are meant to run one after the other, as rpm runs
    /// scriptlets: the mount points created for one run are removed when it ends.
    pub fn run(&self, command: &SandboxCommand) -> Result<SandboxOutput, SandboxError> {
        let description = &command.description;
        let program = command
            .interpreter
            .first()
            .ok_or_else(|| SandboxError::EmptyCommand { description: description.clone() })?;
        if !program.starts_with('/') {
            return Err(SandboxError::RelativeProgram {
                description: description.clone(),
                program: program.clone(),
            });
        }
        if !is_executable_in_tree(&self.root, Path::new(program)) {
            return Err(SandboxError::ProgramMissing {
                description: description.clone(),
                program: program.clone(),
                root: self.root.clone(),
            });
        }
        let number = self.commands_run.fetch_add(1, Ordering::Relaxed);
        let script_name = file_name_for(description);
        let script_on_host = match &command.script {
            Some(body) => {
                let path = self.script_directory.join(format!("{number}-{script_name}"));
                std::fs::write(&path, body).map_err(|source| SandboxError::ScriptFile {
                    description: description.clone(),
                    path: path.clone(),
                    source,
                })?;
                Some(path)
            }
            None => None,
        };
        let created_targets = self.missing_mount_targets();
        let result = self.run_bwrap(command, script_on_host.as_deref(), &script_name);
        self.remove_created_mount_targets(&created_targets);
        if let Some(path) = script_on_host
            && let Err(error) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot remove a script file");
        }
        result
    }

    fn run_bwrap(
        &self,
        command: &SandboxCommand,
        script_on_host: Option<&Path>,
        script_name: &str,
    ) -> Result<SandboxOutput, SandboxError> {
        let description = &command.description;
        let mut arguments: Vec<OsString> = Vec::new();
        let mut push = |values: &[&OsStr]| arguments.extend(values.iter().map(|value| value.to_os_string()));
        // Not `--unshare-all`: run by root, its `--unshare-user-try` creates a user namespace in
        // which only uid 0 exists, so every file of another owner shows as `nobody` and `chown` to
        // any other user fails; scriptlets that create users and chown their files need both.
        for flag in
            ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        {
            push(&[flag.as_ref()]);
        }
        push(&["--die-with-parent".as_ref(), "--new-session".as_ref()]);
        push(&["--bind".as_ref(), self.mountpoint.as_os_str(), "/".as_ref()]);
        push(&["--proc".as_ref(), "/proc".as_ref(), "--dev".as_ref(), "/dev".as_ref()]);
        for directory in ["/tmp", "/var/tmp", "/run"] {
            push(&["--tmpfs".as_ref(), directory.as_ref()]);
        }
        let script_in_sandbox = format!("{SCRIPT_DIRECTORY_IN_SANDBOX}/{script_name}");
        if let Some(host_path) = script_on_host {
            push(&["--ro-bind".as_ref(), host_path.as_os_str(), script_in_sandbox.as_ref()]);
        }
        push(&["--chdir".as_ref(), "/".as_ref(), "--clearenv".as_ref()]);
        let mut environment: Vec<(&str, &str)> = FIXED_ENVIRONMENT.to_vec();
        for (name, value) in self.environment.iter().chain(&command.environment) {
            environment.retain(|(existing, _)| *existing != name.as_str());
            environment.push((name.as_str(), value.as_str()));
        }
        for (name, value) in &environment {
            push(&["--setenv".as_ref(), name.as_ref(), value.as_ref()]);
        }
        push(&["--".as_ref()]);
        arguments.extend(command.interpreter.iter().map(OsString::from));
        if script_on_host.is_some() {
            arguments.push(script_in_sandbox.into());
        }
        arguments.extend(command.arguments.iter().map(OsString::from));

        let (output_reader, output_writer) = std::io::pipe()
            .map_err(|source| SandboxError::Output { description: description.clone(), source })?;
        let started = Instant::now();
        let mut child = {
            let output_copy = output_writer
                .try_clone()
                .map_err(|source| SandboxError::Output { description: description.clone(), source })?;
            let mut process = crate::umask::with_tree_umask(BWRAP);
            process
                .args(&arguments)
                .env_clear()
                .stdin(if command.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
                .stdout(output_copy)
                .stderr(output_writer);
            tracing::debug!(command = %description, arguments = ?arguments, "starting bwrap");
            // `process` is dropped at the end of this block: it holds the write ends of the
            // output pipe, which must all be closed for the reader to see the end.
            process.spawn().map_err(|source| SandboxError::Spawn { tool: BWRAP, source })?
        };
        let output_thread = std::thread::spawn(move || collect_output(output_reader));
        let input_thread = match (child.stdin.take(), &command.stdin) {
            (Some(mut stdin), Some(data)) => {
                let data = data.clone();
                // A program that does not read its input closes the pipe early: not an error.
                Some(std::thread::spawn(move || {
                    let _ = stdin.write_all(&data);
                }))
            }
            _ => None,
        };
        let waited = wait_with_timeout(&mut child, command.timeout);
        let timed_out = matches!(waited, Ok(None));
        if timed_out || waited.is_err() {
            // Killing bwrap kills the sandbox: its pid 1 dies with its parent, and with it every
            // process of the pid namespace.
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(thread) = input_thread {
            let _ = thread.join();
        }
        let output = output_thread.join().unwrap_or_default();
        let omitted_bytes = output.omitted;
        let output = output.into_text();
        let elapsed = started.elapsed();
        match waited {
            Err(source) => Err(SandboxError::Wait { description: description.clone(), source }),
            Ok(None) => Err(SandboxError::TimedOut {
                description: description.clone(),
                timeout: command.timeout,
                output,
            }),
            Ok(Some(status)) if status.success() => Ok(SandboxOutput { output, omitted_bytes, elapsed }),
            Ok(Some(status)) => {
                Err(SandboxError::Failed { description: description.clone(), status, output })
            }
        }
    }

    /// The mount targets that do not exist in the tree yet (so that bwrap will create them).
    fn missing_mount_targets(&self) -> Vec<PathBuf> {
        let mut missing = Vec::new();
        for target in MOUNT_TARGETS {
            // Also each missing parent (`var` of `var/tmp`), outermost first.
            let mut path = PathBuf::new();
            for component in Path::new(target).components() {
                path.push(component);
                if std::fs::symlink_metadata(self.root.join(&path)).is_err() && !missing.contains(&path) {
                    missing.push(path.clone());
                }
            }
        }
        missing
    }

    /// Removes the mount targets bwrap had to create, innermost first; one that a program filled
    /// (say `var` after `mkdir /var/lib/foo`) stays.
    fn remove_created_mount_targets(&self, created: &[PathBuf]) {
        for path in created.iter().rev() {
            let full = self.root.join(path);
            match std::fs::remove_dir(&full) {
                Ok(()) => {
                    tracing::debug!(path = %full.display(), "removed a mount point the sandbox created")
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::debug!(path = %full.display(), %error, "kept a directory the sandbox created")
                }
            }
        }
    }

    fn prepare_script_directory(&self) -> Result<(), SandboxError> {
        let path = &self.script_directory;
        // A directory of this name is ours, left by an earlier run that was killed.
        match std::fs::remove_dir_all(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SandboxError::Prepare { path: path.clone(), source }),
        }
        std::fs::create_dir(path).map_err(|source| SandboxError::Prepare { path: path.clone(), source })
    }

    fn start_fuse(&mut self) -> Result<(), SandboxError> {
        let mut child = crate::umask::with_tree_umask(ROFILES_FUSE)
            .arg("--copyup")
            .arg(&self.root)
            .arg(&self.mountpoint)
            // In the foreground, so that arbor sees it exit and collects its messages.
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SandboxError::Spawn { tool: ROFILES_FUSE, source })?;
        let output = child.stderr.take().map(|stderr| std::thread::spawn(move || collect_output(stderr)));
        self.fuse = Some(FuseProcess { child, output });
        let deadline = Instant::now() + MOUNT_WAIT_LIMIT;
        loop {
            if mount_table()?.iter().any(|entry| entry.mountpoint == self.mountpoint && entry.is_fuse()) {
                return Ok(());
            }
            let exited = match self.fuse.as_mut() {
                Some(fuse) => fuse
                    .child
                    .try_wait()
                    .map_err(|source| SandboxError::Wait { description: ROFILES_FUSE.to_string(), source })?,
                None => None,
            };
            if let Some(status) = exited {
                let output = self
                    .fuse
                    .take()
                    .and_then(|mut fuse| fuse.output.take())
                    .and_then(|thread| thread.join().ok())
                    .map(BoundedOutput::into_text)
                    .unwrap_or_default();
                return Err(SandboxError::MountFailed {
                    root: self.root.clone(),
                    mountpoint: self.mountpoint.clone(),
                    status,
                    output: show_output(&output).to_string(),
                });
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::MountTimedOut {
                    root: self.root.clone(),
                    mountpoint: self.mountpoint.clone(),
                });
            }
            std::thread::sleep(MOUNT_POLL_INTERVAL);
        }
    }

    /// Detaches the mount, waits for rofiles-fuse to exit and removes what `mount` created. Runs
    /// once; later calls do nothing.
    fn release(&mut self) -> Result<(), SandboxError> {
        let mut result = Ok(());
        if let Some(mut fuse) = self.fuse.take() {
            match rustix::mount::unmount(self.mountpoint.as_path(), rustix::mount::UnmountFlags::DETACH) {
                Ok(()) => {}
                // Not mounted any more: rofiles-fuse died and the kernel already dropped it.
                Err(rustix::io::Errno::INVAL) => {}
                Err(errno) => {
                    result =
                        Err(SandboxError::Unmount { path: self.mountpoint.clone(), source: errno.into() })
                }
            }
            let deadline = Instant::now() + FUSE_EXIT_WAIT_LIMIT;
            loop {
                match fuse.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(MOUNT_POLL_INTERVAL),
                    _ => {
                        tracing::warn!(mountpoint = %self.mountpoint.display(), "rofiles-fuse did not exit after unmounting; killing it");
                        let _ = fuse.child.kill();
                        let _ = fuse.child.wait();
                        break;
                    }
                }
            }
            if let Some(thread) = fuse.output.take()
                && let Ok(output) = thread.join()
            {
                let output = output.into_text();
                if !output.trim().is_empty() {
                    tracing::debug!(mountpoint = %self.mountpoint.display(), %output, "rofiles-fuse said");
                }
            }
        }
        if self.created_mountpoint {
            self.created_mountpoint = false;
            remove_created_mountpoint(&self.mountpoint, true);
        }
        match std::fs::remove_dir_all(&self.script_directory) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %self.script_directory.display(), %error, "cannot remove the script directory")
            }
        }
        result
    }
}

impl Drop for ProtectedRoot {
    fn drop(&mut self) {
        if let Err(error) = self.release() {
            tracing::warn!(%error, "cannot unmount the protected tree");
        }
    }
}

/// Unmounts every FUSE mount at or under `directory` (deepest first), such as the rofiles-fuse
/// mounts a killed run left behind, and returns their paths.
pub fn cleanup_stale_mounts(directory: &Path) -> Result<Vec<PathBuf>, SandboxError> {
    let absolute = std::path::absolute(directory)
        .map_err(|source| SandboxError::Prepare { path: directory.to_path_buf(), source })?;
    // A dead FUSE mount cannot be resolved (ENOTCONN): compare with the path as given then.
    let directory = std::fs::canonicalize(&absolute).unwrap_or(absolute);
    let mut stale: Vec<PathBuf> = mount_table()?
        .into_iter()
        .filter(|entry| entry.is_fuse() && entry.mountpoint.starts_with(&directory))
        .map(|entry| entry.mountpoint)
        .collect();
    stale.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    stale.dedup();
    for path in &stale {
        tracing::warn!(path = %path.display(), "unmounting a FUSE mount left behind by an earlier run");
        match rustix::mount::unmount(path.as_path(), rustix::mount::UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(errno) => return Err(SandboxError::Unmount { path: path.clone(), source: errno.into() }),
        }
    }
    Ok(stale)
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountEntry {
    mountpoint: PathBuf,
    filesystem_type: String,
}

impl MountEntry {
    fn is_fuse(&self) -> bool {
        self.filesystem_type == "fuse" || self.filesystem_type.starts_with("fuse.")
    }
}

fn mount_table() -> Result<Vec<MountEntry>, SandboxError> {
    let text = std::fs::read("/proc/self/mountinfo").map_err(|source| SandboxError::MountTable { source })?;
    Ok(parse_mount_table(&text))
}

/// Parses mountinfo lines: `ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [TAGS...] - TYPE SOURCE
/// SUPER_OPTIONS`, with space, tab, newline and backslash in paths written as octal escapes.
fn parse_mount_table(text: &[u8]) -> Vec<MountEntry> {
    const MOUNTPOINT_FIELD: usize = 4;
    let mut entries = Vec::new();
    for line in text.split(|byte| *byte == b'\n') {
        let fields: Vec<&[u8]> = line.split(|byte| *byte == b' ').collect();
        let Some(mountpoint) = fields.get(MOUNTPOINT_FIELD) else { continue };
        let Some(separator) = fields.iter().position(|field| *field == b"-") else { continue };
        let Some(filesystem_type) = fields.get(separator + 1) else { continue };
        entries.push(MountEntry {
            mountpoint: PathBuf::from(OsString::from_vec(unescape_mountinfo(mountpoint))),
            filesystem_type: String::from_utf8_lossy(&unescape_mountinfo(filesystem_type)).into_owned(),
        });
    }
    entries
}

fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut result = Vec::with_capacity(field.len());
    let mut index = 0;
    while index < field.len() {
        let escape = field.get(index + 1..index + 1 + MOUNTINFO_ESCAPE_DIGITS);
        let value = escape.filter(|_| field[index] == b'\\').and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match value {
            Some(byte) => {
                result.push(byte);
                index += 1 + MOUNTINFO_ESCAPE_DIGITS;
            }
            None => {
                result.push(field[index]);
                index += 1;
            }
        }
    }
    result
}

/// Creates the mount point, or checks that the existing one is an empty directory. Returns
/// whether it was created (and must be removed again).
fn prepare_mountpoint(path: &Path) -> Result<bool, SandboxError> {
    match std::fs::create_dir(path) {
        Ok(()) => return Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(SandboxError::Prepare { path: path.to_path_buf(), source }),
    }
    let unusable = |reason: &str| SandboxError::UnusableMountpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|source| SandboxError::Prepare { path: path.to_path_buf(), source })?;
    if !metadata.is_dir() {
        return Err(unusable("it exists and is not a directory"));
    }
    let mut entries = std::fs::read_dir(path)
        .map_err(|source| SandboxError::Prepare { path: path.to_path_buf(), source })?;
    if entries.next().is_some() {
        return Err(unusable("it is a directory that is not empty"));
    }
    Ok(false)
}

fn remove_created_mountpoint(path: &Path, created: bool) {
    if created && let Err(error) = std::fs::remove_dir(path) {
        tracing::warn!(path = %path.display(), %error, "cannot remove the mount point");
    }
}

/// `/work/root` + `.rofiles` → `/work/root.rofiles`.
fn sibling_with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(OsStr::to_os_string).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// A file name made of the description: characters other than letters, digits and `._+-` become
/// `_`, so that a package name can never reach outside the script directory.
fn file_name_for(description: &str) -> String {
    let name: String =
        description
            .chars()
            .map(|character| {
                if character.is_ascii_alphanumeric() || "._+-".contains(character) { character } else { '_' }
            })
            .collect();
    match name.trim_start_matches('.') {
        "" => "script".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// Whether `program` (absolute, as seen inside the tree) is an executable file of the tree,
/// following symbolic links the way they resolve inside the tree (an absolute link target is
/// relative to the tree, not to the host).
fn is_executable_in_tree(root: &Path, program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    const ANY_EXECUTE_BIT: u32 = 0o111;
    resolve_in_tree(root, program)
        .and_then(|path| std::fs::metadata(path).ok())
        .is_some_and(|metadata| metadata.is_file() && metadata.permissions().mode() & ANY_EXECUTE_BIT != 0)
}

/// Resolves `path` inside the tree `root`, following symbolic links with the tree as `/`;
/// `None` when a component is missing or links loop.
fn resolve_in_tree(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_components_front(&mut pending, path);
    let mut resolved = PathBuf::new();
    let mut links_followed = 0;
    while let Some(component) = pending.pop_front() {
        if component.as_bytes() == b"/" {
            resolved = PathBuf::new();
            continue;
        }
        if component.as_bytes() == b".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&component);
        let metadata = std::fs::symlink_metadata(root.join(&candidate)).ok()?;
        if metadata.file_type().is_symlink() {
            links_followed += 1;
            if links_followed > MAXIMUM_SYMLINKS_FOLLOWED {
                return None;
            }
            let target = std::fs::read_link(root.join(&candidate)).ok()?;
            push_components_front(&mut pending, &target);
        } else {
            resolved = candidate;
        }
    }
    Some(root.join(resolved))
}

/// Puts the components of `path` in front of `pending`, a leading `/` as its own entry.
fn push_components_front(pending: &mut VecDeque<OsString>, path: &Path) {
    let components: Vec<OsString> = path
        .components()
        .filter_map(|component| match component {
            Component::RootDir => Some(OsString::from("/")),
            Component::ParentDir => Some(OsString::from("..")),
            Component::Normal(name) => Some(name.to_os_string()),
            Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    for component in components.into_iter().rev() {
        pending.push_front(component);
    }
}

/// Waits until the child exits or `timeout` passes (`Ok(None)`).
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(LONGEST_EXIT_POLL_INTERVAL);
    }
}

/// Reads everything from `reader`, keeping the beginning and the end.
fn collect_output(mut reader: impl Read) -> BoundedOutput {
    const READ_CHUNK_BYTES: usize = 16 * 1024;
    let mut output = BoundedOutput::default();
    let mut buffer = vec![0; READ_CHUNK_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => output.push(&buffer[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    output
}

/// The first [`OUTPUT_HEAD_BYTES`] and the last [`OUTPUT_TAIL_BYTES`] of a stream.
#[derive(Debug, Default)]
struct BoundedOutput {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    omitted: u64,
}

impl BoundedOutput {
    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < OUTPUT_HEAD_BYTES {
            let taken = bytes.len().min(OUTPUT_HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&bytes[..taken]);
            bytes = &bytes[taken..];
        }
        self.tail.extend(bytes);
        if self.tail.len() > OUTPUT_TAIL_BYTES {
            let excess = self.tail.len() - OUTPUT_TAIL_BYTES;
            self.tail.drain(..excess);
            self.omitted += excess as u64;
        }
    }

    fn into_text(self) -> String {
        let mut bytes = self.head;
        if self.omitted > 0 {
            bytes.extend_from_slice(
                format!("\n[... {} bytes of output left out ...]\n", self.omitted).as_bytes(),
            );
        }
        bytes.extend(self.tail);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl fmt::Display for SandboxOutput {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_mount_points_and_types() {
        let text = b"22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
            42 27 0:39 / /work/my\\040root.rofiles rw,nosuid,nodev - fuse.rofiles-fuse rofiles-fuse rw,user_id=0\n\
            43 27 0:40 / /back\\134slash rw - ext4 /dev/sda1 rw\n\
            garbage\n";
        let entries = parse_mount_table(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0], MountEntry { mountpoint: "/proc".into(), filesystem_type: "proc".into() });
        assert_eq!(entries[1].mountpoint, Path::new("/work/my root.rofiles"));
        assert!(entries[1].is_fuse());
        assert!(!entries[0].is_fuse());
        assert_eq!(entries[2].mountpoint, Path::new("/back\\slash"));
    }

    #[test]
    fn an_unfinished_escape_is_kept_as_text() {
        assert_eq!(unescape_mountinfo(b"a\\04"), b"a\\04");
        assert_eq!(unescape_mountinfo(b"a\\999b"), b"a\\999b");
        assert_eq!(unescape_mountinfo(b"\\011x"), b"\tx");
    }

    #[test]
    fn output_keeps_the_beginning_and_the_end() {
        let mut output = BoundedOutput::default();
        output.push(&vec![b'a'; OUTPUT_HEAD_BYTES]);
        output.push(&vec![b'b'; 1000]);
        output.push(&vec![b'c'; OUTPUT_TAIL_BYTES]);
        assert_eq!(output.omitted, 1000);
        let text = output.into_text();
        assert!(text.starts_with(&"a".repeat(OUTPUT_HEAD_BYTES)));
        assert!(text.contains("[... 1000 bytes of output left out ...]"));
        assert!(text.ends_with(&"c".repeat(OUTPUT_TAIL_BYTES)));
        assert!(!text.contains("bb"), "the middle is left out");
    }

    #[test]
    fn short_output_is_kept_whole() {
        let mut output = BoundedOutput::default();
        output.push(b"hello ");
        output.push(b"world\n");
        assert_eq!(output.omitted, 0);
        assert_eq!(output.into_text(), "hello world\n");
    }

    #[test]
    fn script_file_names_cannot_escape_their_directory() {
        assert_eq!(file_name_for("bash.post"), "bash.post");
        assert_eq!(file_name_for("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_name_for("gtk+-3.0.transfiletriggerin"), "gtk+-3.0.transfiletriggerin");
        assert_eq!(file_name_for(""), "script");
        assert_eq!(file_name_for(".."), "script");
    }

    #[test]
    fn derived_paths_sit_next_to_the_tree() {
        assert_eq!(
            sibling_with_suffix(Path::new("/work/root"), MOUNTPOINT_SUFFIX),
            Path::new("/work/root.rofiles")
        );
    }

    #[test]
    fn symbolic_links_resolve_inside_the_tree() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let tree = tempfile::tempdir().unwrap();
        let root = tree.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/dash"), b"").unwrap();
        std::fs::set_permissions(root.join("usr/bin/dash"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("usr/bin/data"), b"").unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        // An absolute target means the tree's /usr/bin/dash, not the host's.
        symlink("/usr/bin/dash", root.join("usr/bin/sh")).unwrap();
        symlink("../../usr/bin/./sh", root.join("usr/bin/relative")).unwrap();
        symlink("loop", root.join("usr/bin/loop")).unwrap();
        assert_eq!(resolve_in_tree(root, Path::new("/bin/sh")), Some(root.join("usr/bin/dash")));
        assert!(is_executable_in_tree(root, Path::new("/bin/sh")));
        assert!(is_executable_in_tree(root, Path::new("/usr/bin/relative")));
        assert!(!is_executable_in_tree(root, Path::new("/usr/bin/data")), "not executable");
        assert!(!is_executable_in_tree(root, Path::new("/usr/bin/bash")), "missing");
        assert!(!is_executable_in_tree(root, Path::new("/usr/bin/loop")), "a loop");
        assert!(!is_executable_in_tree(root, Path::new("/bin")), "a directory");
        assert_eq!(resolve_in_tree(root, Path::new("/../../bin/sh")), Some(root.join("usr/bin/dash")));
    }

    #[test]
    fn commands_are_built_step_by_step() {
        let command = SandboxCommand::new("bash.post", vec!["/bin/sh".into()])
            .script("echo hi")
            .argument("1")
            .environment("SOURCE_DATE_EPOCH", "0")
            .stdin(b"data".to_vec())
            .timeout(Duration::from_secs(5));
        assert_eq!(command.script.as_deref(), Some("echo hi"));
        assert_eq!(command.arguments, ["1"]);
        assert_eq!(command.environment, [("SOURCE_DATE_EPOCH".to_string(), "0".to_string())]);
        assert_eq!(command.stdin.as_deref(), Some(&b"data"[..]));
        assert_eq!(command.timeout, Duration::from_secs(5));
    }
}
