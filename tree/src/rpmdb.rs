//! Writing the rpm database of the composed tree: the host's `rpm` records every package in
//! `--justdb` mode (no file is touched, no scriptlet runs) into `usr/share/rpm`, where rpm-ostree
//! keeps it, and `usr/lib/sysimage/rpm` points there.
//!
//! The result is reproducible: with the same packages and the same `SOURCE_DATE_EPOCH`, two trees
//! get byte-identical databases (rpm 4.18 takes the transaction id and install times from
//! `SOURCE_DATE_EPOCH`; the packages are given to rpm in one transaction, ordered by NEVRA, so that
//! neither the names of the package files (a repository's on disk, the download cache's otherwise) nor
//! their order decides how rpm numbers them). rpm
//! leaves the sqlite database in write-ahead-log mode with `-wal` and `-shm` side files, whose
//! contents depend on who touched them last; the database is switched to rollback-journal mode
//! (what `PRAGMA journal_mode=DELETE` does), which needs no side files and stays readable on a
//! read-only `/usr`; rpm turns WAL back on the next time it opens it for writing.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use crate::umask::create_tree_directories;

/// Where the database lives in the tree (rpm-ostree's location).
pub const DATABASE_DIRECTORY: &str = "usr/share/rpm";

/// rpm's own location since rpm 4.16 (Fedora 36+), a link to [`DATABASE_DIRECTORY`].
pub const SYSIMAGE_LINK: &str = "usr/lib/sysimage/rpm";

/// The target of [`SYSIMAGE_LINK`], relative so that it resolves inside the tree.
const SYSIMAGE_LINK_TARGET: &str = "../../share/rpm";

/// The database format, explicit so that the host rpm's default does not decide it.
const DATABASE_BACKEND: &str = "sqlite";

/// The niceness `rpm` runs at: it records the database beside the package import, and the import is
/// what the compose waits for.
const RPM_NICENESS: &str = "10";

/// The sqlite database file of the sqlite backend.
pub const DATABASE_FILE: &str = "rpmdb.sqlite";

/// The files rpm leaves next to the database that do not belong in the tree: its lock file and
/// sqlite's write-ahead log and shared-memory index.
const SIDE_FILES: [&str; 3] = [".rpm.lock", "rpmdb.sqlite-wal", "rpmdb.sqlite-shm"];

/// The sqlite file header (<https://www.sqlite.org/fileformat2.html>, section 1.3).
mod sqlite_header {
    /// Every field used here lies in the first 100 bytes.
    pub const LENGTH: usize = 100;
    pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    /// Big-endian u16 page size; 1 means 65536.
    pub const PAGE_SIZE: usize = 16;
    /// The value of [`PAGE_SIZE`] that means 65536 bytes.
    pub const PAGE_SIZE_65536: u16 = 1;
    pub const LARGEST_PAGE_SIZE: u64 = 65_536;
    /// File format write and read versions: 1 = rollback journal, 2 = write-ahead log.
    pub const WRITE_VERSION: usize = 18;
    pub const READ_VERSION: usize = 19;
    pub const ROLLBACK_JOURNAL: u8 = 1;
    pub const WRITE_AHEAD_LOG: u8 = 2;
    /// Big-endian u32 change counter, bumped by every rollback-mode transaction.
    pub const CHANGE_COUNTER: usize = 24;
    /// Big-endian u32 database size in pages, valid when [`VERSION_VALID_FOR`] equals the
    /// change counter.
    pub const DATABASE_PAGES: usize = 28;
    pub const VERSION_VALID_FOR: usize = 92;
}

/// A package file to record, with the package it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    /// `name-[epoch:]version-release.arch`.
    pub nevra: String,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RpmdbError {
    #[error("no RPM files to record in the database of {}", root.display())]
    NoPackages { root: PathBuf },
    #[error("cannot prepare {}: {source}", path.display())]
    Prepare { path: PathBuf, source: std::io::Error },
    #[error("cannot start the host `rpm` (install it with scripts/install-deps): {source}")]
    Spawn { source: std::io::Error },
    #[error("`rpm --justdb` failed to record {count} packages in {} ({status}):\n{output}", root.display())]
    Rpm { root: PathBuf, count: usize, status: std::process::ExitStatus, output: String },
    #[error("cannot switch {} to rollback-journal mode: {reason}", path.display())]
    Journal { path: PathBuf, reason: String },
    #[error("cannot remove {}: {source}", path.display())]
    Cleanup { path: PathBuf, source: std::io::Error },
    #[error("cannot link {} to {SYSIMAGE_LINK_TARGET}: {source}", path.display())]
    Link { path: PathBuf, source: std::io::Error },
    #[error(
        "{} is a symlink (made by a scriptlet or script); the rpm database is not written through it",
        path.display()
    )]
    SymlinkOnTheWay { path: PathBuf },
}

/// Records `rpm_files` in a fresh database in `root/usr/share/rpm` and links
/// `root/usr/lib/sysimage/rpm` to it. Only creates new files, so `root` may consist of hardlinks
/// into an object store. The result depends on the set of packages (neither the order nor the names of
/// their files matter) and `source_date_epoch` (the install time rpm records; `None` = now).
pub fn write_rpmdb(
    root: &Path,
    rpm_files: &[PackageFile],
    source_date_epoch: Option<i64>,
) -> Result<(), RpmdbError> {
    record_rpmdb(root, rpm_files, source_date_epoch)?;
    link_sysimage(root)
}

/// A database recorded apart from the tree (`rpm --justdb` reads only the package files, never the
/// tree), so that it can be built while the tree is assembled.
#[derive(Debug)]
pub struct RecordedDatabase {
    directory: PathBuf,
}

/// Records `rpm_files` in `scratch/usr/share/rpm` (as [`write_rpmdb`] does in a tree); `scratch` must be
/// on the tree's file system, for [`install_rpmdb`] moves the database from there.
pub fn record_rpmdb_apart(
    scratch: &Path,
    rpm_files: &[PackageFile],
    source_date_epoch: Option<i64>,
) -> Result<RecordedDatabase, RpmdbError> {
    record_rpmdb(scratch, rpm_files, source_date_epoch)?;
    Ok(RecordedDatabase { directory: scratch.join(DATABASE_DIRECTORY) })
}

/// Moves a database recorded apart into `root/usr/share/rpm` (replacing what packages put there) and
/// links `root/usr/lib/sysimage/rpm` to it.
pub fn install_rpmdb(database: RecordedDatabase, root: &Path) -> Result<(), RpmdbError> {
    // Everything below runs on the host: a directory of the tree that a scriptlet replaced by a symlink
    // would lead out of it.
    refuse_symlinked_parents(root, DATABASE_DIRECTORY)?;
    refuse_symlinked_parents(root, SYSIMAGE_LINK)?;
    let destination = root.join(DATABASE_DIRECTORY);
    remove_entry(&destination)?;
    if let Some(parent) = destination.parent() {
        create_tree_directories(parent)
            .map_err(|source| RpmdbError::Prepare { path: parent.to_path_buf(), source })?;
    }
    std::fs::rename(&database.directory, &destination)
        .map_err(|source| RpmdbError::Prepare { path: destination.clone(), source })?;
    link_sysimage(root)
}

fn record_rpmdb(
    root: &Path,
    rpm_files: &[PackageFile],
    source_date_epoch: Option<i64>,
) -> Result<(), RpmdbError> {
    if rpm_files.is_empty() {
        return Err(RpmdbError::NoPackages { root: root.to_path_buf() });
    }
    let started = Instant::now();
    // Everything below runs on the host: a directory of the tree that a scriptlet replaced by a symlink
    // would lead out of it (to the host's own rpm database, say).
    refuse_symlinked_parents(root, DATABASE_DIRECTORY)?;
    refuse_symlinked_parents(root, SYSIMAGE_LINK)?;
    let database_directory = root.join(DATABASE_DIRECTORY);
    replace_with_empty_directory(&database_directory)?;

    // One transaction in a fixed order: rpm numbers the packages in the order it installs them,
    // which follows the command line where dependencies do not decide.
    let mut ordered: Vec<&PackageFile> = rpm_files.iter().collect();
    ordered.sort_by(|left, right| left.nevra.cmp(&right.nevra).then_with(|| left.path.cmp(&right.path)));
    // Recorded while packages are imported, which is on the critical path: rpm takes what the import
    // leaves of the CPU.
    let mut command = crate::umask::with_tree_umask("nice");
    command
        .args(["-n", RPM_NICENESS, "rpm"])
        .arg("--root")
        .arg(root)
        .arg("--dbpath")
        .arg(format!("/{DATABASE_DIRECTORY}"))
        .arg("--define")
        .arg(format!("_db_backend {DATABASE_BACKEND}"))
        .args([
            "--install",
            // Record the packages only: no file is written, no scriptlet or trigger runs.
            "--justdb",
            "--noscripts",
            "--notriggers",
            // The host's plugins (SELinux labels, systemd inhibit, fapolicyd, ...) must not act
            // on a tree being composed.
            "--noplugins",
            // The package set was depsolved and verified before; the host's architecture, OS
            // and free space say nothing about the tree.
            "--nodeps",
            "--nodigest",
            "--nosignature",
            "--ignorearch",
            "--ignoreos",
            "--ignoresize",
            "--replacefiles",
        ])
        .args(ordered.iter().map(|package| &package.path))
        // Nothing from arbor's environment (locale, ~/.rpmmacros through HOME) may change the
        // database; only SOURCE_DATE_EPOCH is passed on purpose.
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null());
    if let Some(epoch) = source_date_epoch {
        command.env("SOURCE_DATE_EPOCH", epoch.to_string());
    }
    let output = command.output().map_err(|source| RpmdbError::Spawn { source })?;
    let messages =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(RpmdbError::Rpm {
            root: root.to_path_buf(),
            count: rpm_files.len(),
            status: output.status,
            output: messages,
        });
    }
    if !messages.trim().is_empty() {
        tracing::debug!(output = %messages.trim_end(), "rpm --justdb said");
    }

    let database = database_directory.join(DATABASE_FILE);
    switch_to_rollback_journal(&database, &database_directory.join("rpmdb.sqlite-wal"))?;
    for name in SIDE_FILES {
        let path = database_directory.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RpmdbError::Cleanup { path, source }),
        }
    }
    tracing::info!(
        root = %root.display(),
        packages = rpm_files.len(),
        elapsed_ms = started.elapsed().as_millis(),
        "rpm database recorded"
    );
    Ok(())
}

/// Fails when a directory on the way to `relative` (not `relative` itself) is a symlink in the tree.
fn refuse_symlinked_parents(root: &Path, relative: &str) -> Result<(), RpmdbError> {
    let mut path = root.to_path_buf();
    let parents = Path::new(relative).parent().map(Path::components).into_iter().flatten();
    for component in parents {
        path.push(component);
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(RpmdbError::SymlinkOnTheWay { path });
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(RpmdbError::Prepare { path, source }),
        }
    }
    Ok(())
}

/// Makes `path` a new empty directory. Whatever was there is unlinked, never written to: in a
/// tree of hardlinks, writing into an existing file would change the stored object.
fn replace_with_empty_directory(path: &Path) -> Result<(), RpmdbError> {
    remove_entry(path)?;
    create_tree_directories(path).map_err(|source| RpmdbError::Prepare { path: path.to_path_buf(), source })
}

/// Removes a file, link or directory tree at `path` (a link itself, not its target), with a
/// warning when it was not an empty directory.
fn remove_entry(path: &Path) -> Result<(), RpmdbError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(RpmdbError::Prepare { path: path.to_path_buf(), source }),
    };
    let prepare_error = |source| RpmdbError::Prepare { path: path.to_path_buf(), source };
    if metadata.is_dir() {
        let empty = std::fs::read_dir(path).map_err(prepare_error)?.next().is_none();
        if !empty {
            tracing::warn!(path = %path.display(), "replacing a directory that packages filled");
        }
        std::fs::remove_dir_all(path).map_err(prepare_error)
    } else {
        tracing::warn!(path = %path.display(), "replacing a file or link that packages installed");
        std::fs::remove_file(path).map_err(prepare_error)
    }
}

/// `usr/lib/sysimage/rpm` → `../../share/rpm`, replacing what a package put there (Fedora's rpm
/// package ships the directory).
fn link_sysimage(root: &Path) -> Result<(), RpmdbError> {
    let link = root.join(SYSIMAGE_LINK);
    remove_entry(&link)?;
    if let Some(parent) = link.parent() {
        create_tree_directories(parent)
            .map_err(|source| RpmdbError::Prepare { path: parent.to_path_buf(), source })?;
    }
    std::os::unix::fs::symlink(SYSIMAGE_LINK_TARGET, &link)
        .map_err(|source| RpmdbError::Link { path: link, source })
}

/// Switches a fully checkpointed WAL-mode sqlite database to rollback-journal mode by rewriting
/// its header as sqlite's `PRAGMA journal_mode=DELETE` does: format versions 2 → 1, change
/// counter + 1, the "version valid for" number set to it. Refuses when the log still holds
/// transactions or the header is not what a checkpointed database has.
fn switch_to_rollback_journal(database: &Path, write_ahead_log: &Path) -> Result<(), RpmdbError> {
    use sqlite_header::*;
    let journal_error = |reason: String| RpmdbError::Journal { path: database.to_path_buf(), reason };
    match std::fs::metadata(write_ahead_log) {
        Ok(metadata) if metadata.len() > 0 => {
            return Err(journal_error(format!(
                "its write-ahead log {} still holds {} bytes",
                write_ahead_log.display(),
                metadata.len()
            )));
        }
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(database)
        .map_err(|error| journal_error(error.to_string()))?;
    let file_length = file.metadata().map_err(|error| journal_error(error.to_string()))?.len();
    let mut header = [0u8; LENGTH];
    file.read_exact(&mut header).map_err(|error| journal_error(format!("reading its header: {error}")))?;
    let Some(new_header) = rollback_journal_header(&header, file_length).map_err(journal_error)? else {
        return Ok(());
    };
    file.seek(SeekFrom::Start(0)).map_err(|error| journal_error(error.to_string()))?;
    file.write_all(&new_header).map_err(|error| journal_error(format!("writing its header: {error}")))?;
    file.sync_all().map_err(|error| journal_error(error.to_string()))
}

/// The header of the database in rollback-journal mode, `None` when it already is, or why the
/// header cannot be switched.
fn rollback_journal_header(
    header: &[u8; sqlite_header::LENGTH],
    file_length: u64,
) -> Result<Option<[u8; sqlite_header::LENGTH]>, String> {
    use sqlite_header::*;
    let read_u32 = |offset: usize| {
        u32::from_be_bytes([header[offset], header[offset + 1], header[offset + 2], header[offset + 3]])
    };
    if &header[..MAGIC.len()] != MAGIC {
        return Err("it is not an sqlite 3 database".to_string());
    }
    match (header[WRITE_VERSION], header[READ_VERSION]) {
        (ROLLBACK_JOURNAL, ROLLBACK_JOURNAL) => return Ok(None),
        (WRITE_AHEAD_LOG, WRITE_AHEAD_LOG) => {}
        (write, read) => return Err(format!("unknown file format versions {write}/{read}")),
    }
    let page_size = match u16::from_be_bytes([header[PAGE_SIZE], header[PAGE_SIZE + 1]]) {
        PAGE_SIZE_65536 => LARGEST_PAGE_SIZE,
        size => u64::from(size),
    };
    let change_counter = read_u32(CHANGE_COUNTER);
    let pages = u64::from(read_u32(DATABASE_PAGES));
    if read_u32(VERSION_VALID_FOR) != change_counter || pages * page_size != file_length {
        return Err(format!(
            "its header does not describe the file ({pages} pages of {page_size} bytes in a file of \
             {file_length} bytes): it was not checkpointed"
        ));
    }
    let mut new_header = *header;
    new_header[WRITE_VERSION] = ROLLBACK_JOURNAL;
    new_header[READ_VERSION] = ROLLBACK_JOURNAL;
    let new_counter = change_counter.wrapping_add(1).to_be_bytes();
    new_header[CHANGE_COUNTER..CHANGE_COUNTER + 4].copy_from_slice(&new_counter);
    new_header[VERSION_VALID_FOR..VERSION_VALID_FOR + 4].copy_from_slice(&new_counter);
    Ok(Some(new_header))
}

#[cfg(test)]
mod tests {
    use super::sqlite_header::*;
    use super::*;

    fn header(versions: u8, counter: u32, valid_for: u32, pages: u32, page_size: u16) -> [u8; LENGTH] {
        let mut header = [0u8; LENGTH];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        header[PAGE_SIZE..PAGE_SIZE + 2].copy_from_slice(&page_size.to_be_bytes());
        header[WRITE_VERSION] = versions;
        header[READ_VERSION] = versions;
        header[CHANGE_COUNTER..CHANGE_COUNTER + 4].copy_from_slice(&counter.to_be_bytes());
        header[DATABASE_PAGES..DATABASE_PAGES + 4].copy_from_slice(&pages.to_be_bytes());
        header[VERSION_VALID_FOR..VERSION_VALID_FOR + 4].copy_from_slice(&valid_for.to_be_bytes());
        header
    }

    #[test]
    fn a_checkpointed_database_switches_like_sqlite_does() {
        let before = header(WRITE_AHEAD_LOG, 2, 2, 223, 4096);
        let after = rollback_journal_header(&before, 223 * 4096).unwrap().unwrap();
        assert_eq!(after, header(ROLLBACK_JOURNAL, 3, 3, 223, 4096));
    }

    #[test]
    fn the_largest_page_size_is_written_as_one() {
        let before = header(WRITE_AHEAD_LOG, 7, 7, 2, PAGE_SIZE_65536);
        assert!(rollback_journal_header(&before, 2 * LARGEST_PAGE_SIZE).unwrap().is_some());
    }

    #[test]
    fn a_rollback_journal_database_is_left_alone() {
        assert_eq!(rollback_journal_header(&header(ROLLBACK_JOURNAL, 3, 3, 1, 4096), 4096), Ok(None));
    }

    #[test]
    fn doubtful_headers_are_refused() {
        let stale_size = header(WRITE_AHEAD_LOG, 5, 4, 1, 4096);
        assert!(rollback_journal_header(&stale_size, 4096).unwrap_err().contains("not checkpointed"));
        let wrong_length = header(WRITE_AHEAD_LOG, 5, 5, 1, 4096);
        assert!(rollback_journal_header(&wrong_length, 8192).is_err());
        let mut not_sqlite = header(WRITE_AHEAD_LOG, 5, 5, 1, 4096);
        not_sqlite[0] = b'X';
        assert!(rollback_journal_header(&not_sqlite, 4096).unwrap_err().contains("not an sqlite"));
        assert!(
            rollback_journal_header(&header(3, 5, 5, 1, 4096), 4096).unwrap_err().contains("versions 3/3")
        );
    }

    #[test]
    fn a_database_with_pending_log_entries_is_not_touched() {
        let directory = tempfile::tempdir().unwrap();
        let database = directory.path().join(DATABASE_FILE);
        let original = header(WRITE_AHEAD_LOG, 2, 2, 1, 4096);
        let mut contents = original.to_vec();
        contents.resize(4096, 0);
        std::fs::write(&database, &contents).unwrap();
        let log = directory.path().join("rpmdb.sqlite-wal");
        std::fs::write(&log, b"pending").unwrap();
        let error = switch_to_rollback_journal(&database, &log).unwrap_err();
        assert!(error.to_string().contains("still holds 7 bytes"), "{error}");
        assert_eq!(std::fs::read(&database).unwrap(), contents);
        std::fs::write(&log, b"").unwrap();
        switch_to_rollback_journal(&database, &log).unwrap();
        assert_eq!(
            &std::fs::read(&database).unwrap()[..LENGTH],
            &header(ROLLBACK_JOURNAL, 3, 3, 1, 4096)[..]
        );
    }

    #[test]
    fn existing_entries_are_unlinked_not_written() {
        let directory = tempfile::tempdir().unwrap();
        let store = directory.path().join("object");
        std::fs::write(&store, b"stored").unwrap();
        let database_directory = directory.path().join("usr/share/rpm");
        std::fs::create_dir_all(&database_directory).unwrap();
        std::fs::hard_link(&store, database_directory.join(DATABASE_FILE)).unwrap();
        replace_with_empty_directory(&database_directory).unwrap();
        assert_eq!(std::fs::read_dir(&database_directory).unwrap().count(), 0);
        assert_eq!(std::fs::read(&store).unwrap(), b"stored");

        let sysimage = directory.path().join(SYSIMAGE_LINK);
        std::fs::create_dir_all(&sysimage).unwrap();
        link_sysimage(directory.path()).unwrap();
        assert_eq!(std::fs::read_link(&sysimage).unwrap(), Path::new(SYSIMAGE_LINK_TARGET));
        link_sysimage(directory.path()).unwrap();
        assert_eq!(std::fs::read_link(&sysimage).unwrap(), Path::new(SYSIMAGE_LINK_TARGET));
    }
}
