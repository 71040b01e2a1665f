//! A job's inputs as a tar stream: the server packs an exported work tree (regular files with their
//! executable bits, symlinks, directories; sorted, times and owners zeroed) and a remote worker unpacks it
//! into a new directory, refusing anything that could write outside it or is not a plain file, directory
//! or symlink (absolute paths, `..`, paths through a symlink, device nodes, fifos, hard links).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Modes written (whatever the umask): git's two file modes, and directories.
const MODE_REGULAR: u32 = 0o644;
const MODE_EXECUTABLE: u32 = 0o755;
const MODE_DIRECTORY: u32 = 0o755;
/// Any execute bit makes a file executable, as git sees it.
const EXECUTE_BITS: u32 = 0o111;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the inputs archive: {0}")]
    Read(#[source] std::io::Error),
    #[error("the inputs archive has an entry {path:?} that would be written outside the work directory")]
    UnsafePath { path: String },
    #[error("the inputs archive has an entry {path:?} of a kind that is not unpacked ({kind})")]
    UnsupportedEntry { path: String, kind: String },
    #[error("{} exists already; inputs are unpacked into a new directory", .path.display())]
    DestinationExists { path: PathBuf },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io { action, path, source }
}

/// Writes `directory`'s tree to `writer` as a tar stream (paths relative to it).
pub fn pack_directory(directory: &Path, writer: impl Write) -> Result<(), ArchiveError> {
    let mut builder = tar::Builder::new(writer);
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let absolute = directory.join(&relative);
        let mut children: Vec<_> = std::fs::read_dir(&absolute)
            .map_err(io_error("reading", &absolute))?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_error("reading", &absolute))?;
        children.sort();
        // Reversed so that the stack pops them in order.
        for name in children.into_iter().rev() {
            let path = relative.join(&name);
            let full = directory.join(&path);
            let metadata = std::fs::symlink_metadata(&full).map_err(io_error("reading", &full))?;
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            let file_type = metadata.file_type();
            if file_type.is_symlink() {
                let target = std::fs::read_link(&full).map_err(io_error("reading", &full))?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, &path, &target).map_err(io_error("archiving", &full))?;
            } else if file_type.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(MODE_DIRECTORY);
                header.set_size(0);
                builder
                    .append_data(&mut header, &path, std::io::empty())
                    .map_err(io_error("archiving", &full))?;
                pending.push(path);
            } else if file_type.is_file() {
                let executable = metadata.permissions().mode() & EXECUTE_BITS != 0;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if executable { MODE_EXECUTABLE } else { MODE_REGULAR });
                header.set_size(metadata.len());
                let file = std::fs::File::open(&full).map_err(io_error("opening", &full))?;
                builder.append_data(&mut header, &path, file).map_err(io_error("archiving", &full))?;
            }
        }
    }
    builder.into_inner().and_then(|mut writer| writer.flush()).map_err(io_error("finishing", directory))
}

/// Unpacks the tar stream `reader` into `destination`, which must not exist; returns the files and
/// symlinks written. On error the partly written destination is removed.
pub fn unpack_safely(reader: impl Read, destination: &Path) -> Result<usize, ArchiveError> {
    if std::fs::symlink_metadata(destination).is_ok() {
        return Err(ArchiveError::DestinationExists { path: destination.to_path_buf() });
    }
    std::fs::create_dir_all(destination).map_err(io_error("creating", destination))?;
    let unpacked = unpack_entries(reader, destination);
    if unpacked.is_err() {
        let _ = std::fs::remove_dir_all(destination);
    }
    unpacked
}

fn unpack_entries(reader: impl Read, destination: &Path) -> Result<usize, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut symlinks: BTreeSet<PathBuf> = BTreeSet::new();
    let mut written = 0;
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let raw = entry.path().map_err(ArchiveError::Read)?.into_owned();
        let shown = raw.display().to_string();
        let relative =
            safe_relative_path(&raw).ok_or_else(|| ArchiveError::UnsafePath { path: shown.clone() })?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        // Only the archive made symlinks here, so refusing paths through them keeps writes inside.
        if relative.ancestors().skip(1).any(|ancestor| symlinks.contains(ancestor)) {
            return Err(ArchiveError::UnsafePath { path: shown });
        }
        let path = destination.join(&relative);
        let entry_type = entry.header().entry_type();
        let parent = path.parent().unwrap_or(destination);
        std::fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        match entry_type {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&path).map_err(io_error("creating", &path))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(MODE_DIRECTORY))
                    .map_err(io_error("setting permissions of", &path))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let executable = entry.header().mode().map_err(ArchiveError::Read)? & EXECUTE_BITS != 0;
                let mode = if executable { MODE_EXECUTABLE } else { MODE_REGULAR };
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
                    .map_err(io_error("creating", &path))?;
                std::io::copy(&mut entry, &mut file).map_err(io_error("writing", &path))?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(io_error("setting permissions of", &path))?;
                written += 1;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(ArchiveError::Read)?
                    .ok_or_else(|| ArchiveError::UnsafePath { path: shown.clone() })?
                    .into_owned();
                std::os::unix::fs::symlink(&target, &path).map_err(io_error("creating", &path))?;
                symlinks.insert(relative);
                written += 1;
            }
            other => {
                return Err(ArchiveError::UnsupportedEntry { path: shown, kind: format!("{other:?}") });
            }
        }
    }
    Ok(written)
}

/// The path with a leading `./` dropped, if it has only normal components.
fn safe_relative_path(path: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    fn header(entry_type: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(entry_type);
        header.set_size(size);
        header.set_mode(0o644);
        header
    }

    #[test]
    fn a_packed_tree_unpacks_with_modes_and_symlinks() {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("overlay.d/usr/bin")).unwrap();
        std::fs::write(source.path().join("manifest.yaml"), "ref: x\n").unwrap();
        let script = source.path().join("overlay.d/usr/bin/hello");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("manifest.yaml", source.path().join("link.yaml")).unwrap();
        let mut packed = Vec::new();
        pack_directory(source.path(), &mut packed).unwrap();

        let target = tempfile::tempdir().unwrap();
        let destination = target.path().join("tree");
        assert_eq!(unpack_safely(packed.as_slice(), &destination).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(destination.join("link.yaml")).unwrap(), "ref: x\n");
        assert_eq!(std::fs::read_link(destination.join("link.yaml")).unwrap(), Path::new("manifest.yaml"));
        let mode =
            |path: &str| std::fs::metadata(destination.join(path)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("overlay.d/usr/bin/hello"), mode("manifest.yaml")), (0o755, 0o644));
        assert!(matches!(
            unpack_safely(packed.as_slice(), &destination),
            Err(ArchiveError::DestinationExists { .. })
        ));
    }

    #[test]
    fn hostile_entries_are_refused_and_nothing_is_left() {
        let escape_through_link = archive(|builder| {
            let mut link = header(tar::EntryType::Symlink, 0);
            builder.append_link(&mut link, "out", "/tmp").unwrap();
            let mut file = header(tar::EntryType::Regular, 1);
            builder.append_data(&mut file, "out/owned", &b"x"[..]).unwrap();
        });
        let device = archive(|builder| {
            let mut node = header(tar::EntryType::Char, 0);
            builder.append_data(&mut node, "dev-null", std::io::empty()).unwrap();
        });
        let hard_link = archive(|builder| {
            let mut link = header(tar::EntryType::Link, 0);
            builder.append_link(&mut link, "passwd", "/etc/passwd").unwrap();
        });
        let parent = {
            // The tar crate refuses to write `..` itself, so the name goes into the header directly.
            let mut bytes = archive(|_| {});
            let mut file = header(tar::EntryType::Regular, 0);
            file.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
            file.set_cksum();
            bytes.splice(0..0, file.as_bytes().iter().copied());
            bytes
        };
        for (name, bytes) in [
            ("symlink", escape_through_link),
            ("device", device),
            ("hard link", hard_link),
            ("parent", parent),
        ] {
            let target = tempfile::tempdir().unwrap();
            let destination = target.path().join("tree");
            let error = unpack_safely(bytes.as_slice(), &destination).unwrap_err();
            assert!(
                matches!(error, ArchiveError::UnsafePath { .. } | ArchiveError::UnsupportedEntry { .. }),
                "{name}: {error}"
            );
            assert!(!destination.exists(), "{name}: the partial tree is removed");
        }
    }
}
