//! The tar layers of ostree-ext's "chunked v1" format: every layer carries the skeleton of an ostree
//! repository (`sysroot/ostree/repo`, mode `bare-split-xattrs`); the commit layer holds the commit, every
//! dirtree and dirmeta object and the directories of the checkout; each chunk layer holds content objects
//! (in checksum order: xattrs, the object, then one hardlink per checkout path).

use std::io::{self, Write};

use ostree::gio;
use ostree::prelude::*;

use super::commit_tree::{CommitTree, TreeStep, tar_path};
use super::tar_writer::{Ownership, TarWriter};

const REPOSITORY: &str = "sysroot/ostree/repo";
/// What a client's importer expects in the layer's repository config.
const REPOSITORY_CONFIG: &[u8] = b"[core]\nrepo_version=1\nmode=bare-split-xattrs\n";
/// Directories of the repository skeleton after `objects/00..ff`, in ostree-ext's order.
const REPOSITORY_DIRECTORIES: [&str; 8] =
    ["extensions", "refs", "refs/heads", "refs/mirrors", "refs/remotes", "state", "tmp", "tmp/cache"];
const DIRECTORY_OWNERSHIP: Ownership = Ownership { uid: 0, gid: 0, mode: 0o40755 };
const METADATA_OWNERSHIP: Ownership = Ownership { uid: 0, gid: 0, mode: 0o100644 };
/// `/var/tmp` is sticky and world-writable; clients expect it in the image even when the commit has no /var.
const VAR_TMP: &str = "var/tmp";
const VAR_TMP_OWNERSHIP: Ownership = Ownership { uid: 0, gid: 0, mode: 0o41777 };

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading content object {checksum}: {message}")]
    Object { checksum: String, message: String },
    #[error("writing the layer: {0}")]
    Write(#[from] io::Error),
}

/// `sysroot/ostree/repo/objects/ab/cdef….<extension>`.
pub fn object_path(checksum: &str, extension: &str) -> String {
    format!("{REPOSITORY}/objects/{}", common::ostree_format::loose_object_path(checksum, extension))
}

fn directory_name(path: &str) -> String {
    format!("{path}/")
}

fn write_repository_skeleton<W: Write>(tar: &mut TarWriter<W>) -> io::Result<()> {
    for directory in ["sysroot", "sysroot/ostree", REPOSITORY] {
        tar.directory(&directory_name(directory), DIRECTORY_OWNERSHIP)?;
    }
    tar.directory(&directory_name(&format!("{REPOSITORY}/objects")), DIRECTORY_OWNERSHIP)?;
    for prefix in 0..=u8::MAX {
        tar.directory(&format!("{REPOSITORY}/objects/{prefix:02x}/"), DIRECTORY_OWNERSHIP)?;
    }
    for directory in REPOSITORY_DIRECTORIES {
        tar.directory(&directory_name(&format!("{REPOSITORY}/{directory}")), DIRECTORY_OWNERSHIP)?;
    }
    tar.file(&format!("{REPOSITORY}/config"), METADATA_OWNERSHIP, REPOSITORY_CONFIG)
}

/// Layer 0: the root, the repository skeleton, the commit (and its detached metadata), every dirtree and
/// dirmeta object with the directories of the checkout, `/var/tmp`, and then `remainder` content objects.
pub fn write_commit_layer<W: Write>(
    tar: &mut TarWriter<W>,
    repo: &ostree::Repo,
    tree: &CommitTree,
    remainder: &[&str],
) -> Result<(), ExportError> {
    let root =
        tree.directory_metadata.get(&tree.root_dirmeta).copied().unwrap_or(
            super::commit_tree::DirectoryMetadata { uid: 0, gid: 0, mode: DIRECTORY_OWNERSHIP.mode },
        );
    tar.directory("./", Ownership { uid: root.uid, gid: root.gid, mode: root.mode })?;
    write_repository_skeleton(tar)?;
    tar.file(&object_path(&tree.commit, "commit"), METADATA_OWNERSHIP, &tree.commit_object)?;
    if let Some(detached) = &tree.detached_metadata {
        tar.file(&object_path(&tree.commit, "commitmeta"), METADATA_OWNERSHIP, detached)?;
    }
    if let Some(root_dirmeta) = tree.dirmetas.get(&tree.root_dirmeta) {
        tar.file(&object_path(&tree.root_dirmeta, "dirmeta"), METADATA_OWNERSHIP, root_dirmeta)?;
    }
    let mut has_var_tmp = false;
    for step in &tree.steps {
        match step {
            TreeStep::DirTree(checksum) => {
                let bytes = tree.dirtrees.get(checksum).map(Vec::as_slice).unwrap_or_default();
                tar.file(&object_path(checksum, "dirtree"), METADATA_OWNERSHIP, bytes)?;
            }
            TreeStep::DirMeta(checksum) => {
                let bytes = tree.dirmetas.get(checksum).map(Vec::as_slice).unwrap_or_default();
                tar.file(&object_path(checksum, "dirmeta"), METADATA_OWNERSHIP, bytes)?;
            }
            TreeStep::Directory { path, dirmeta } => {
                has_var_tmp |= path == VAR_TMP;
                let metadata = tree.directory_metadata.get(dirmeta).copied().unwrap_or(root);
                let ownership = Ownership { uid: metadata.uid, gid: metadata.gid, mode: metadata.mode };
                tar.directory(&directory_name(path), ownership)?;
            }
        }
    }
    if !has_var_tmp {
        tar.directory(&directory_name(VAR_TMP), VAR_TMP_OWNERSHIP)?;
    }
    for checksum in remainder {
        write_content_object(tar, repo, tree, checksum)?;
    }
    Ok(())
}

/// A chunk layer: the repository skeleton and `objects` (sorted by checksum), each with its checkout paths.
pub fn write_chunk_layer<W: Write>(
    tar: &mut TarWriter<W>,
    repo: &ostree::Repo,
    tree: &CommitTree,
    objects: &[&str],
    cancelled: &dyn Fn() -> bool,
) -> Result<(), ExportError> {
    write_repository_skeleton(tar)?;
    for checksum in objects {
        if cancelled() {
            return Err(ExportError::Write(io::Error::new(io::ErrorKind::Interrupted, "cancelled")));
        }
        write_content_object(tar, repo, tree, checksum)?;
    }
    Ok(())
}

fn write_content_object<W: Write>(
    tar: &mut TarWriter<W>,
    repo: &ostree::Repo,
    tree: &CommitTree,
    checksum: &str,
) -> Result<(), ExportError> {
    let object_error = |message: String| ExportError::Object { checksum: checksum.to_string(), message };
    let (stream, info, xattrs) =
        repo.load_file(checksum, gio::Cancellable::NONE).map_err(|error| object_error(error.to_string()))?;
    let ownership = Ownership {
        uid: info.attribute_uint32("unix::uid"),
        gid: info.attribute_uint32("unix::gid"),
        mode: info.attribute_uint32("unix::mode"),
    };
    let xattrs = xattrs.data().to_vec();
    tar.file(&object_path(checksum, "file-xattrs-link"), METADATA_OWNERSHIP, &xattrs)?;
    let object = object_path(checksum, "file");
    let paths = tree.content.get(checksum).map(|object| object.paths.as_slice()).unwrap_or_default();
    match info.file_type() {
        gio::FileType::SymbolicLink => {
            let target =
                info.symlink_target().ok_or_else(|| object_error("symlink without a target".to_string()))?;
            tar.symlink(&object, &target.to_string_lossy(), ownership)?;
        }
        gio::FileType::Regular => {
            let size = u64::try_from(info.size()).map_err(|_| object_error("negative size".to_string()))?;
            let stream = stream.ok_or_else(|| object_error("no content stream".to_string()))?;
            let mut reader = stream.into_read();
            tar.file_from_reader(&object, ownership, size, &mut reader)
                .map_err(|error| object_error(error.to_string()))?;
            if size == 0 {
                // Clients expect empty files as plain files, not as hardlinks to the object.
                for path in paths {
                    tar.file(&tar_path(path), ownership, &[])?;
                }
                return Ok(());
            }
        }
        other => return Err(object_error(format!("unsupported object type {other:?}"))),
    }
    for path in paths {
        tar.hardlink(&tar_path(path), &object, ownership)?;
    }
    Ok(())
}
