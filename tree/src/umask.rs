//! The umask of everything that creates files in a tree. A tree's modes must not depend on the umask
//! arbor runs with (a hardened service runs with 077, a login shell with 022): programs that write into
//! the tree (rpm, bubblewrap and the scriptlets in it, rofiles-fuse, dracut) run with the usual 022, and
//! what arbor itself creates gets an explicit mode.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// What rpm and a default system use: files 0644, directories 0755.
pub const TREE_UMASK: &str = "022";

/// Mode of directories arbor creates in a tree (the usual mode of system directories).
pub const TREE_DIRECTORY_MODE: u32 = 0o755;

/// Mode of regular files arbor creates in a tree.
pub const TREE_FILE_MODE: u32 = 0o644;

/// A command that runs `program` with [`TREE_UMASK`], whatever arbor's own umask: the host's shell sets
/// it and replaces itself with the program (same process, so signals and process groups are the
/// program's own). Arguments are added to the returned command as usual.
pub fn with_tree_umask(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(format!("umask {TREE_UMASK} && exec \"$0\" \"$@\"")).arg(program);
    command
}

/// `create_dir_all` whose new directories get [`TREE_DIRECTORY_MODE`], not one derived from the umask;
/// directories that exist keep their mode.
pub fn create_tree_directories(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        create_tree_directories(parent)?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(TREE_DIRECTORY_MODE)),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_runs_with_the_tree_umask() {
        // Whatever this process's umask is; tests/reproducible.rs composes under umask 077.
        let output = with_tree_umask("/bin/sh").arg("-c").arg("umask").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "0022");
        let output = with_tree_umask("echo").args(["a b", "c"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "a b c\n", "arguments pass through unchanged");
    }

    #[test]
    fn created_directories_get_the_tree_mode_and_existing_ones_keep_theirs() {
        let root = tempfile::tempdir().unwrap();
        let existing = root.path().join("usr");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o700)).unwrap();
        create_tree_directories(&existing.join("lib/sysimage")).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&existing), 0o700);
        assert_eq!(mode(&existing.join("lib")), TREE_DIRECTORY_MODE);
        assert_eq!(mode(&existing.join("lib/sysimage")), TREE_DIRECTORY_MODE);
        create_tree_directories(&existing.join("lib/sysimage")).unwrap();
    }
}
