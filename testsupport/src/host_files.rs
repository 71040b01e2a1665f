//! Host binaries in an [`RpmSpec`]: each executable plus every shared library `ldd` says it needs,
//! copied from the build host into the package at merged-`/usr` paths.
//!
//! ```no_run
//! use arbor_testsupport::{HostFiles, RpmSpec};
//! # fn main() -> anyhow::Result<()> {
//! let files = HostFiles::resolve(["/usr/bin/bash"])?;
//! let bash = files.add_to(RpmSpec::new("bash", "1.0", "1").arch("x86_64"));
//! // The link the ELF interpreter needs (Debian: /usr/lib64/ld-linux-x86-64.so.2 ->
//! // ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2) belongs in the package that owns /lib64.
//! let links: Vec<_> = files.interpreter_links().collect();
//! # Ok(()) }
//! ```
//!
//! Layout in the package:
//! - each executable at the merged-`/usr` form of the path it was named by (`/bin/ls` becomes
//!   `/usr/bin/ls`), with the content of the file that path resolves to, mode 0755;
//! - each library at the merged-`/usr` form of its real path (after following every link, e.g.
//!   `/usr/lib/x86_64-linux-gnu/libtinfo.so.6.4`), mode 0644, plus a symlink from the name the
//!   loader looks for (`libtinfo.so.6`) when that differs;
//! - the ELF interpreter at its real path (Debian: `/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`),
//!   mode 0755. The path programs name it by (`/lib64/ld-linux-x86-64.so.2`) is *not* part of the
//!   package: it goes through the top-level `/lib64` link, which the package owning the file-system
//!   skeleton provides together with [`HostFiles::interpreter_links`]. So several packages made from
//!   host binaries ship identical copies of shared libraries (allowed by rpm and by the compose), and
//!   none of them ships anything under `/lib64`.
//!
//! Output is sorted by path, so the same host gives the same package bytes.

use crate::rpm_builder::RpmSpec;
use crate::tools::require_tool;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Mode of the executables named by the caller.
const EXECUTABLE_MODE: u16 = 0o755;

/// Mode of shared libraries: the loader maps them, it never executes them as files.
const LIBRARY_MODE: u16 = 0o644;

/// Mode of the ELF interpreter: the kernel opens it the way it opens an executable when it starts a
/// dynamically linked program, and refuses one without execute permission.
const INTERPRETER_MODE: u16 = 0o755;

/// The top-level directories that are symlinks into `/usr` in a merged-`/usr` tree (`/bin` →
/// `usr/bin`, ...), as on Fedora and Debian 12.
const MERGED_TOP_LEVEL_DIRECTORIES: [&str; 4] = ["bin", "sbin", "lib", "lib64"];

/// What `ldd` prints for a program or script that has no dynamic section: nothing to copy.
const NOT_DYNAMIC_MESSAGES: [&str; 2] = ["not a dynamic executable", "statically linked"];

/// One line of `ldd` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LddLine {
    /// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`: a library found on the search path.
    Library { name: String, path: PathBuf },
    /// `/lib64/ld-linux-x86-64.so.2 (0x…)`: an object loaded by absolute path, which for
    /// distribution binaries is the program interpreter.
    Interpreter { path: PathBuf },
    /// `linux-vdso.so.1 (0x…)`: provided by the kernel, no file.
    Virtual { name: String },
    /// `libmissing.so.1 => not found`.
    NotFound { name: String },
}

/// Parses the output of `ldd PROGRAM`. A program without dynamic section gives no lines.
pub fn parse_ldd_output(listing: &str) -> Result<Vec<LddLine>> {
    let mut lines = Vec::new();
    for line in listing.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if NOT_DYNAMIC_MESSAGES.iter().any(|message| line.contains(message)) {
            continue;
        }
        let parsed = match line.split_once("=>") {
            Some((name, location)) => {
                let name = name.trim().to_string();
                let location = location.trim();
                if location.starts_with("not found") {
                    LddLine::NotFound { name }
                } else {
                    match location.split_whitespace().next() {
                        // Old glibc: `linux-vdso.so.1 =>  (0x…)`.
                        None => LddLine::Virtual { name },
                        Some(address) if address.starts_with('(') => LddLine::Virtual { name },
                        Some(path) if path.starts_with('/') => {
                            LddLine::Library { name, path: PathBuf::from(path) }
                        }
                        Some(_) => {
                            bail!("cannot read the ldd line `{line}`: expected an absolute path after =>")
                        }
                    }
                }
            }
            None => {
                let Some(first) = line.split_whitespace().next() else { continue };
                if first.starts_with('/') {
                    LddLine::Interpreter { path: PathBuf::from(first) }
                } else {
                    LddLine::Virtual { name: first.to_string() }
                }
            }
        };
        lines.push(parsed);
    }
    Ok(lines)
}

/// The merged-`/usr` form of an absolute, normalized host path: `/lib/x/libc.so.6` →
/// `/usr/lib/x/libc.so.6`; paths outside the merged directories are unchanged.
fn merged_usr_path(path: &Path) -> Result<String> {
    let Some(text) = path.to_str() else { bail!("{} is not UTF-8, which RPM paths must be", path.display()) };
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        bail!("{text} is not an absolute path");
    }
    if path.components().any(|component| matches!(component, Component::ParentDir | Component::CurDir)) {
        bail!("{text} is not a normalized path");
    }
    let merged = match components.next() {
        Some(Component::Normal(top))
            if MERGED_TOP_LEVEL_DIRECTORIES.iter().any(|directory| top == *directory) =>
        {
            format!("/usr{text}")
        }
        _ => text.to_string(),
    };
    Ok(merged)
}

/// The target of a relative symlink at `link` that points to `target` (both absolute, normalized):
/// `/usr/lib64/ld.so` → `/usr/lib/x/ld.so` gives `../lib/x/ld.so`.
fn relative_link_target(link: &str, target: &str) -> String {
    let link_directory: Vec<&str> = {
        let mut parts: Vec<&str> = link.split('/').filter(|part| !part.is_empty()).collect();
        parts.pop();
        parts
    };
    let target_parts: Vec<&str> = target.split('/').filter(|part| !part.is_empty()).collect();
    let common = link_directory.iter().zip(&target_parts).take_while(|(left, right)| left == right).count();
    let mut parts = vec![".."; link_directory.len() - common];
    parts.extend(&target_parts[common..]);
    parts.join("/")
}

/// One path of a [`HostFiles`] set.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostEntry {
    File { source: PathBuf, content: Vec<u8>, mode: u16 },
    Symlink { target: String },
}

/// Host executables and the shared libraries they need, at their paths in a merged-`/usr` tree;
/// see the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct HostFiles {
    entries: BTreeMap<String, HostEntry>,
    interpreter_links: BTreeMap<String, String>,
}

impl HostFiles {
    /// Copies each executable (an absolute host path) and runs `ldd` on it to find its libraries
    /// and its ELF interpreter. Fails naming the executable when it is missing on the host, when
    /// a library it needs is not found, or when two of them disagree about a path.
    pub fn resolve<P: AsRef<Path>>(executables: impl IntoIterator<Item = P>) -> Result<Self> {
        let ldd = require_tool("ldd")?;
        let mut files = Self::default();
        for executable in executables {
            let executable = executable.as_ref();
            files.add_executable(&ldd, executable).with_context(|| {
                format!("copying the host executable {} and its libraries", executable.display())
            })?;
        }
        Ok(files)
    }

    fn add_executable(&mut self, ldd: &Path, executable: &Path) -> Result<()> {
        if !executable.is_absolute() {
            bail!("{} is not an absolute path", executable.display());
        }
        let real_path = std::fs::canonicalize(executable).map_err(|error| {
            anyhow::anyhow!(
                "{} is missing on this host ({error}); the exampleos packages copy it from the host, \
                 so install the distribution package that ships it",
                executable.display()
            )
        })?;
        self.add_file(&merged_usr_path(executable)?, &real_path, EXECUTABLE_MODE)?;
        for line in ldd_lines(ldd, executable)? {
            match line {
                LddLine::Library { name, path } => self
                    .add_library(&path)
                    .with_context(|| format!("copying the library {name} ({})", path.display()))?,
                LddLine::Interpreter { path } => self
                    .add_interpreter(&path)
                    .with_context(|| format!("copying the ELF interpreter {}", path.display()))?,
                LddLine::Virtual { .. } => {}
                LddLine::NotFound { name } => {
                    bail!("it needs the library {name}, which the host's dynamic loader does not find")
                }
            }
        }
        Ok(())
    }

    /// The library's real file, and a link at the name the loader finds it by when that differs.
    fn add_library(&mut self, path: &Path) -> Result<()> {
        let real_path =
            std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
        let file_path = merged_usr_path(&real_path)?;
        self.add_file(&file_path, &real_path, LIBRARY_MODE)?;
        let link_path = merged_usr_path(path)?;
        if link_path != file_path {
            self.add_entry(
                &link_path,
                HostEntry::Symlink { target: relative_link_target(&link_path, &file_path) },
            )?;
        }
        Ok(())
    }

    /// The interpreter's real file; the link at the path programs name is left to the skeleton.
    fn add_interpreter(&mut self, path: &Path) -> Result<()> {
        let real_path =
            std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
        let file_path = merged_usr_path(&real_path)?;
        self.add_file(&file_path, &real_path, INTERPRETER_MODE)?;
        let link_path = merged_usr_path(path)?;
        if link_path != file_path {
            let target = relative_link_target(&link_path, &file_path);
            if let Some(existing) = self.interpreter_links.insert(link_path.clone(), target.clone())
                && existing != target
            {
                bail!("the interpreter link {link_path} would point to both {existing} and {target}");
            }
        }
        Ok(())
    }

    fn add_file(&mut self, path: &str, source: &Path, mode: u16) -> Result<()> {
        if let Some(HostEntry::File { source: existing, mode: existing_mode, .. }) = self.entries.get(path)
            && existing == source
            && *existing_mode == mode
        {
            return Ok(());
        }
        let content = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
        self.add_entry(path, HostEntry::File { source: source.to_path_buf(), content, mode })
    }

    fn add_entry(&mut self, path: &str, entry: HostEntry) -> Result<()> {
        match self.entries.get(path) {
            Some(existing) if *existing == entry => Ok(()),
            Some(existing) => bail!("{path} would be both {} and {}", describe(existing), describe(&entry)),
            None => {
                self.entries.insert(path.to_string(), entry);
                Ok(())
            }
        }
    }

    /// The paths of the package, sorted: executables, libraries and library links.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The links `(path, relative target)` from the path programs name their ELF interpreter by to
    /// the file these packages ship (none when they are the same), for the package that owns `/lib64`.
    pub fn interpreter_links(&self) -> impl Iterator<Item = (&str, &str)> {
        self.interpreter_links.iter().map(|(path, target)| (path.as_str(), target.as_str()))
    }

    /// Every directory above a path of the package or of an interpreter link, sorted (`/usr`,
    /// `/usr/bin`, `/usr/lib`, ...), for the package that owns the skeleton.
    pub fn directories(&self) -> BTreeSet<String> {
        let mut directories = BTreeSet::new();
        for path in self.entries.keys().chain(self.interpreter_links.keys()) {
            let mut directory = Path::new(path).parent();
            while let Some(current) = directory.filter(|current| *current != Path::new("/")) {
                directories.insert(current.to_string_lossy().into_owned());
                directory = current.parent();
            }
        }
        directories
    }

    /// Adds every file and library link to `spec`, sorted by path.
    pub fn add_to(&self, spec: RpmSpec) -> RpmSpec {
        self.entries.iter().fold(spec, |spec, (path, entry)| match entry {
            HostEntry::File { content, mode, .. } => spec.file(path, content, *mode),
            HostEntry::Symlink { target } => spec.symlink(path, target),
        })
    }
}

fn describe(entry: &HostEntry) -> String {
    match entry {
        HostEntry::File { source, mode, .. } => format!("a copy of {} (mode {mode:o})", source.display()),
        HostEntry::Symlink { target } => format!("a link to {target}"),
    }
}

/// Runs `ldd executable`; a program without dynamic section (a script, a static binary) gives no lines.
fn ldd_lines(ldd: &Path, executable: &Path) -> Result<Vec<LddLine>> {
    let output =
        Command::new(ldd).arg(executable).output().with_context(|| format!("running {}", ldd.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if NOT_DYNAMIC_MESSAGES.iter().any(|message| stdout.contains(message) || stderr.contains(message)) {
            return Ok(Vec::new());
        }
        bail!("`ldd {}` failed ({}): {stdout}{stderr}", executable.display(), output.status);
    }
    parse_ldd_output(&stdout)
}

impl RpmSpec {
    /// Adds host executables (absolute paths such as `/usr/bin/bash`) and the shared libraries they
    /// need, as [`HostFiles::resolve`] and [`HostFiles::add_to`] do.
    pub fn host_executables<P: AsRef<Path>>(self, executables: impl IntoIterator<Item = P>) -> Result<Self> {
        Ok(HostFiles::resolve(executables)?.add_to(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::tool_stdout;

    #[test]
    fn ldd_lines_are_classified() {
        let library = |name: &str, path: &str| LddLine::Library { name: name.into(), path: path.into() };
        let cases: &[(&str, &[LddLine])] = &[
            ("", &[]),
            ("\tlinux-vdso.so.1 (0x00007ffd1)\n", &[LddLine::Virtual { name: "linux-vdso.so.1".into() }]),
            ("\tlinux-vdso.so.1 =>  (0x00007ffd1)\n", &[LddLine::Virtual { name: "linux-vdso.so.1".into() }]),
            (
                "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f39)\n",
                &[library("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")],
            ),
            ("\tlibfoo.so.1 => /opt/lib/libfoo.so.1\n", &[library("libfoo.so.1", "/opt/lib/libfoo.so.1")]),
            (
                "\t/lib64/ld-linux-x86-64.so.2 (0x00007f3a)\n",
                &[LddLine::Interpreter { path: PathBuf::from("/lib64/ld-linux-x86-64.so.2") }],
            ),
            ("\tlibmissing.so.1 => not found\n", &[LddLine::NotFound { name: "libmissing.so.1".into() }]),
            ("\tnot a dynamic executable\n", &[]),
            ("\tstatically linked\n", &[]),
            (
                "\tlinux-vdso.so.1 (0x1)\n\tlibtinfo.so.6 => /lib64/libtinfo.so.6 (0x2)\n\
                 \tlibc.so.6 => /lib64/libc.so.6 (0x3)\n\t/lib64/ld-linux-x86-64.so.2 (0x4)\n",
                &[
                    LddLine::Virtual { name: "linux-vdso.so.1".into() },
                    library("libtinfo.so.6", "/lib64/libtinfo.so.6"),
                    library("libc.so.6", "/lib64/libc.so.6"),
                    LddLine::Interpreter { path: PathBuf::from("/lib64/ld-linux-x86-64.so.2") },
                ],
            ),
        ];
        for (listing, expected) in cases {
            assert_eq!(parse_ldd_output(listing).unwrap(), *expected, "ldd output {listing:?}");
        }
    }

    #[test]
    fn a_relative_library_path_is_an_error() {
        let error = parse_ldd_output("\tlibc.so.6 => lib/libc.so.6 (0x1)\n").unwrap_err();
        assert!(error.to_string().contains("libc.so.6 => lib/libc.so.6"), "{error}");
    }

    #[test]
    fn host_paths_become_merged_usr_paths() {
        let cases = [
            ("/bin/ls", "/usr/bin/ls"),
            ("/sbin/init", "/usr/sbin/init"),
            ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2"),
            ("/usr/bin/bash", "/usr/bin/bash"),
            ("/opt/tool/bin/tool", "/opt/tool/bin/tool"),
            ("/libexec/helper", "/libexec/helper"),
        ];
        for (host, merged) in cases {
            assert_eq!(merged_usr_path(Path::new(host)).unwrap(), merged, "{host}");
        }
        assert!(merged_usr_path(Path::new("usr/bin/bash")).is_err());
        assert!(merged_usr_path(Path::new("/usr/bin/../bin/bash")).is_err());
    }

    #[test]
    fn link_targets_are_relative() {
        let cases = [
            ("/usr/lib/x/libtinfo.so.6", "/usr/lib/x/libtinfo.so.6.4", "libtinfo.so.6.4"),
            (
                "/usr/lib64/ld-linux-x86-64.so.2",
                "/usr/lib/x/ld-linux-x86-64.so.2",
                "../lib/x/ld-linux-x86-64.so.2",
            ),
            ("/usr/lib64/libc.so.6", "/opt/lib/libc.so.6", "../../opt/lib/libc.so.6"),
        ];
        for (link, target, expected) in cases {
            assert_eq!(relative_link_target(link, target), expected, "{link} -> {target}");
        }
    }

    #[test]
    fn a_missing_executable_is_named() {
        let error = HostFiles::resolve(["/usr/bin/arbor-no-such-program"]).unwrap_err();
        assert!(
            format!("{error:#}").contains("/usr/bin/arbor-no-such-program is missing on this host"),
            "{error:#}"
        );
    }

    #[test]
    fn bash_comes_with_its_libraries_and_no_lib64_path() {
        let files = HostFiles::resolve(["/usr/bin/bash"]).unwrap();
        let paths: Vec<&str> = files.paths().collect();
        assert!(paths.contains(&"/usr/bin/bash"), "{paths:?}");
        assert!(paths.iter().any(|path| path.ends_with("/libc.so.6")), "{paths:?}");
        assert!(paths.iter().any(|path| path.contains("/ld-linux")), "{paths:?}");
        assert!(
            paths.iter().all(|path| path.starts_with("/usr/") && !path.starts_with("/lib64")),
            "{paths:?}"
        );
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted);
        for (link, target) in files.interpreter_links() {
            assert!(!paths.contains(&link), "{link} is left to the skeleton");
            assert!(!target.starts_with('/'), "{link} -> {target} is relative");
        }
        assert!(files.directories().contains("/usr/bin"));
    }

    #[test]
    fn a_host_executable_package_lists_bash_and_libc() {
        let directory = tempfile::tempdir().unwrap();
        let spec =
            RpmSpec::new("host-bash", "1.0", "1").arch("x86_64").host_executables(["/usr/bin/bash"]).unwrap();
        let package = spec.write_to(directory.path()).unwrap();
        assert_eq!(spec.to_bytes().unwrap(), std::fs::read(&package).unwrap(), "reproducible");
        let listing = tool_stdout("rpm", ["-qpl".as_ref(), package.as_os_str()]).unwrap();
        let listed: Vec<&str> = listing.lines().collect();
        assert!(listed.contains(&"/usr/bin/bash"), "{listing}");
        assert!(
            listed.iter().any(|path| path.starts_with("/usr/lib") && path.ends_with("/libc.so.6")),
            "{listing}"
        );
        assert!(!listed.iter().any(|path| path.starts_with("/lib64/")), "{listing}");
    }
}
