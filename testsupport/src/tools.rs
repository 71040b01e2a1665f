//! Locating and running the external tools the fixtures need (`createrepo_c`, `modifyrepo_c`, `rpm`).
//!
//! A missing tool is an error that names the tool, the Debian package that ships it and
//! `scripts/install-deps`, so a test fails loudly instead of silently passing.

use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Debian package that ships `tool`, for the error message of a missing tool.
fn debian_package_of(tool: &str) -> &'static str {
    match tool {
        "createrepo_c" | "modifyrepo_c" | "mergerepo_c" => "createrepo-c",
        "rpm" | "rpmbuild" | "rpmkeys" => "rpm",
        "rpm2cpio" | "rpm2archive" => "rpm2cpio",
        "curl" => "curl",
        "dnf" => "dnf",
        "tar" => "tar",
        "gzip" => "gzip",
        "git" => "git",
        "initdb" | "pg_ctl" | "postgres" => "postgresql",
        "psql" => "postgresql-client",
        "chromedriver" => "chromium-driver",
        "chromium" => "chromium",
        _ => "(see the script)",
    }
}

/// Finds `tool` on `PATH`, or fails naming the tool and how to install it.
pub fn require_tool(tool: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for directory in std::env::split_paths(&path) {
        let candidate = directory.join(tool);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!(
        "required tool `{tool}` was not found on PATH: run scripts/install-deps \
         (it installs the Debian package `{}`)",
        debian_package_of(tool)
    )
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    const ANY_EXECUTE_BIT: u32 = 0o111;
    path.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & ANY_EXECUTE_BIT != 0)
}

/// Runs `tool` with `arguments` and returns its output, failing with the tool's stderr when it
/// exits unsuccessfully.
pub fn run_tool<I, S>(tool: &str, arguments: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = require_tool(tool)?;
    let arguments: Vec<_> = arguments.into_iter().map(|argument| argument.as_ref().to_os_string()).collect();
    let output = Command::new(&program)
        .args(&arguments)
        .output()
        .with_context(|| format!("starting `{}`", program.display()))?;
    if !output.status.success() {
        bail!(
            "`{tool} {}` failed ({}):\n{}{}",
            arguments.iter().map(|argument| argument.to_string_lossy()).collect::<Vec<_>>().join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Runs `tool` with `arguments` and returns its standard output as text.
pub fn tool_stdout<I, S>(tool: &str, arguments: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = run_tool(tool, arguments)?;
    String::from_utf8(output.stdout).with_context(|| format!("`{tool}` printed non-UTF-8 output"))
}
