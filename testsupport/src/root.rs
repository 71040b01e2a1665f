//! A tiny root file system that can run shell scripts: the host's `/bin/sh` (dash on Debian) and the
//! shared libraries `ldd` lists for it, in a merged-`/usr` layout (`bin` → `usr/bin`, ...), for
//! tests that run programs inside a tree (the sandbox, scriptlets).

use anyhow::{Context, Result, bail};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// The host shell that is copied: whatever `/bin/sh` resolves to.
const HOST_SHELL: &str = "/bin/sh";

/// The top-level links of a merged-`/usr` tree, as Fedora and Debian 12 have them.
const MERGED_USR_LINKS: [(&str, &str); 4] =
    [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")];

/// Makes `root` (created when missing) a merged-`/usr` tree whose `/bin/sh` is a copy of the
/// host's shell, with every shared library it needs copied to the path `ldd` shows. Shell
/// builtins are all there is (no `cat`, no `ls`) unless [`install_host_program`] adds more.
pub fn install_host_shell(root: &Path) -> Result<()> {
    for (link, target) in MERGED_USR_LINKS {
        std::fs::create_dir_all(root.join(target))
            .with_context(|| format!("creating {target} in the tree"))?;
        let link_path = root.join(link);
        if std::fs::symlink_metadata(&link_path).is_err() {
            symlink(target, &link_path).with_context(|| format!("linking {}", link_path.display()))?;
        }
    }
    let shell_name = install_host_program(root, Path::new(HOST_SHELL))?;
    if shell_name != "sh" {
        let sh = root.join("usr/bin/sh");
        if std::fs::symlink_metadata(&sh).is_err() {
            symlink(&shell_name, &sh).with_context(|| format!("linking {}", sh.display()))?;
        }
    }
    Ok(())
}

/// Copies the host program `program` (an absolute path, links followed) to `usr/bin` of the tree
/// made by [`install_host_shell`], with the shared libraries `ldd` lists for it, and returns the
/// name it has there (`dash` for `/bin/sh` on Debian).
pub fn install_host_program(root: &Path, program: &Path) -> Result<String> {
    let resolved = std::fs::canonicalize(program)
        .with_context(|| format!("resolving the host's {}", program.display()))?;
    let Some(name) = resolved.file_name().and_then(|name| name.to_str()) else {
        bail!("the host program {} has no usable file name", resolved.display())
    };
    copy_executable(&resolved, &root.join("usr/bin").join(name))?;
    let listing = crate::tools::tool_stdout("ldd", [&resolved])?;
    for library in libraries_in_ldd_output(&listing) {
        let relative = library.strip_prefix("/").unwrap_or(&library);
        copy_executable(&library, &root.join(relative))?;
    }
    Ok(name.to_string())
}

/// The absolute library paths of `ldd` output: `libc.so.6 => /lib/.../libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`; the kernel's `linux-vdso.so.1` has no file.
fn libraries_in_ldd_output(listing: &str) -> Vec<PathBuf> {
    listing
        .lines()
        .filter_map(|line| {
            let path_part = line.split_once("=>").map_or(line, |(_, right)| right);
            let path = path_part.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Copies `source` (following links) to `destination`, creating its directories (through the
/// tree's links), executable by everyone.
fn copy_executable(source: &Path, destination: &Path) -> Result<()> {
    const EXECUTABLE_MODE: u32 = 0o755;
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::copy(source, destination)
        .with_context(|| format!("copying {} to {}", source.display(), destination.display()))?;
    std::fs::set_permissions(destination, std::fs::Permissions::from_mode(EXECUTABLE_MODE))
        .with_context(|| format!("making {} executable", destination.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_library_paths() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                       \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f39)\n\
                       \t/lib64/ld-linux-x86-64.so.2 (0x00007f3a)\n\
                       \tlibmissing.so.1 => not found\n";
        assert_eq!(
            libraries_in_ldd_output(listing),
            [PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
    }

    #[test]
    fn the_tree_runs_scripts_with_its_own_shell() {
        let directory = tempfile::tempdir().unwrap();
        install_host_shell(directory.path()).unwrap();
        let output = std::process::Command::new("chroot")
            .arg(directory.path())
            .args(["/bin/sh", "-c", "echo works"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "works\n", "{output:?}");
    }
}
