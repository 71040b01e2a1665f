//! Replacing files inside a tree without touching what they are hardlinked to: the tree's files are
//! ostree objects shared with the package cache, so a changed file is written beside the old one under a
//! fresh name and renamed over it.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the temporary file before its final mode is set: nobody else may open it meanwhile.
const TEMPORARY_FILE_MODE: u32 = 0o600;
/// Temporary names tried before giving up (another writer would have to take all of them).
pub(crate) const TEMPORARY_NAME_ATTEMPTS: u32 = 100;

/// Creates a new file next to `path` with a name nobody uses.
pub(crate) fn create_temporary_beside(path: &Path) -> io::Result<(PathBuf, File)> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or(OsStr::new("file")).to_string_lossy();
    for attempt in 0..TEMPORARY_NAME_ATTEMPTS {
        let candidate = directory.join(format!(".{name}.arbor-{}-{attempt}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).mode(TEMPORARY_FILE_MODE).open(&candidate) {
            Ok(file) => return Ok((candidate, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name"))
}

/// Replaces `path` with a new file holding `contents` with `mode`: written beside it and renamed over
/// it, so that a file hardlinked elsewhere (an ostree object) is never changed.
pub(crate) fn replace_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let (temporary, mut file) = create_temporary_beside(path)?;
    let result = file
        .write_all(contents)
        .and_then(|()| file.set_permissions(Permissions::from_mode(mode)))
        .and_then(|()| fs::rename(&temporary, path));
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}
