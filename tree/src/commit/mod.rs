//! Writing the assembled root filesystem as an ostree commit: files that are still the cached objects they
//! were checked out from keep their checksum without being read again; everything scriptlets and
//! postprocessing wrote becomes a new object with the owner, mode and capabilities it has on disk. The
//! commit is written into the package cache (where the objects are) and then published into the target
//! repository ([`publish`]), whose branch moves only after the whole commit is there.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ostree::gio;
use ostree::gio::prelude::*;
use ostree::glib;

use crate::assemble::{Checkout, read_capability};
use crate::capabilities::CAPABILITY_XATTR;
use crate::file_object::{FileObjectMetadata, write_file_object};
use crate::pkgcache::import::directory_metadata;
use crate::pkgcache::manifest::MODE_TYPE_MASK;

mod publish;
pub use publish::publish;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: unsupported file type (only files, directories and symlinks can be committed)")]
    UnsupportedFileType { path: PathBuf },
    #[error("{path}: file names must be UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("ostree repository {repository}: {message}")]
    Ostree { repository: PathBuf, message: String },
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> CommitError {
    CommitError::Io { path: path.to_path_buf(), message: error.to_string() }
}

/// Counts of what writing the tree did (for the compose summary).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct TreeStatistics {
    pub files: usize,
    pub directories: usize,
    /// Files that were still the cached object they were checked out from.
    pub objects_reused: usize,
    pub objects_written: usize,
    pub bytes_written: u64,
}

struct TreeWriter<'a> {
    repo: &'a ostree::Repo,
    checkout: &'a Checkout,
    directory_metadata: HashMap<(u32, u32, u32), String>,
    statistics: TreeStatistics,
}

/// Writes the tree under `root` into `repo` (inside a transaction the caller holds) and returns the root
/// of the written tree.
pub fn write_tree(
    repo: &ostree::Repo,
    root: &Path,
    checkout: &Checkout,
) -> Result<(ostree::RepoFile, TreeStatistics), CommitError> {
    let mut writer = TreeWriter {
        repo,
        checkout,
        directory_metadata: HashMap::new(),
        statistics: TreeStatistics::default(),
    };
    let tree = ostree::MutableTree::new();
    let metadata = std::fs::symlink_metadata(root).map_err(|error| io_error(root, error))?;
    tree.set_metadata_checksum(&writer.directory_metadata_checksum(root, &metadata)?);
    writer.write_directory(root, &tree)?;
    let written =
        repo.write_mtree(&tree, gio::Cancellable::NONE).map_err(|error| ostree_error(repo, error))?;
    let root_file = written.downcast::<ostree::RepoFile>().map_err(|_| CommitError::Ostree {
        repository: repo_path(repo),
        message: "unexpected tree type".into(),
    })?;
    Ok((root_file, writer.statistics))
}

fn repo_path(repo: &ostree::Repo) -> PathBuf {
    repo.path().path().unwrap_or_default()
}

fn ostree_error(repo: &ostree::Repo, error: glib::Error) -> CommitError {
    CommitError::Ostree { repository: repo_path(repo), message: error.to_string() }
}

impl TreeWriter<'_> {
    fn directory_metadata_checksum(
        &mut self,
        path: &Path,
        metadata: &std::fs::Metadata,
    ) -> Result<String, CommitError> {
        let key = (metadata.uid(), metadata.gid(), metadata.mode() & !MODE_TYPE_MASK);
        if let Some(checksum) = self.directory_metadata.get(&key) {
            return Ok(checksum.clone());
        }
        let checksum = self
            .repo
            .write_metadata(
                ostree::ObjectType::DirMeta,
                None,
                &directory_metadata(key.0, key.1, key.2),
                gio::Cancellable::NONE,
            )
            .map_err(|error| io_error(path, error))?
            .to_hex();
        self.directory_metadata.insert(key, checksum.clone());
        Ok(checksum)
    }

    fn write_directory(&mut self, directory: &Path, tree: &ostree::MutableTree) -> Result<(), CommitError> {
        let mut entries: Vec<(std::ffi::OsString, std::fs::DirEntry)> = std::fs::read_dir(directory)
            .map_err(|error| io_error(directory, error))?
            .map(|entry| entry.map(|entry| (entry.file_name(), entry)))
            .collect::<Result<_, _>>()
            .map_err(|error| io_error(directory, error))?;
        entries.sort_by(|(first, _), (second, _)| first.cmp(second));
        for (name, entry) in entries {
            let path = directory.join(&name);
            let name = name.to_str().ok_or_else(|| CommitError::NotUtf8 { path: path.clone() })?;
            // Relative to the open directory (no path lookup from the root); does not follow symlinks.
            let metadata = entry.metadata().map_err(|error| io_error(&path, error))?;
            let file_type = metadata.file_type();
            if file_type.is_dir() {
                let child = tree.ensure_dir(name).map_err(|error| io_error(&path, error))?;
                child.set_metadata_checksum(&self.directory_metadata_checksum(&path, &metadata)?);
                self.statistics.directories += 1;
                self.write_directory(&path, &child)?;
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|error| io_error(&path, error))?;
                let target = target.to_str().ok_or_else(|| CommitError::NotUtf8 { path: path.clone() })?;
                let checksum = self.symlink_checksum(&path, metadata.uid(), metadata.gid(), target)?;
                tree.replace_file(name, &checksum).map_err(|error| io_error(&path, error))?;
                self.statistics.files += 1;
            } else if file_type.is_file() {
                let checksum = self.regular_file_checksum(&path, &metadata)?;
                tree.replace_file(name, &checksum).map_err(|error| io_error(&path, error))?;
                self.statistics.files += 1;
            } else {
                return Err(CommitError::UnsupportedFileType { path });
            }
        }
        Ok(())
    }

    /// Most symlinks are already in the repository: their checksum is computed here, and libostree (which
    /// writes a temporary object for every symlink to find its checksum) is asked only for new ones.
    fn symlink_checksum(&self, path: &Path, uid: u32, gid: u32, target: &str) -> Result<String, CommitError> {
        let checksum = crate::pkgcache::objects::symlink_checksum(uid, gid, target);
        let present = self
            .repo
            .has_object(ostree::ObjectType::File, &checksum, gio::Cancellable::NONE)
            .map_err(|error| ostree_error(self.repo, error))?;
        if present {
            return Ok(checksum);
        }
        let written = self
            .repo
            .write_symlink(None, uid, gid, None, target, gio::Cancellable::NONE)
            .map_err(|error| io_error(path, error))?;
        Ok(written.to_string())
    }

    fn regular_file_checksum(
        &mut self,
        path: &Path,
        metadata: &std::fs::Metadata,
    ) -> Result<String, CommitError> {
        if metadata.nlink() > 1
            && let Some(checksum) = self.checkout.object_by_inode.get(&(metadata.dev(), metadata.ino()))
        {
            self.statistics.objects_reused += 1;
            return Ok(checksum.clone());
        }
        let capability = read_capability(path).map_err(|error| io_error(path, error))?;
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if let Some(value) = capability {
            let mut name = CAPABILITY_XATTR.as_bytes().to_vec();
            name.push(0);
            xattrs.push((name, value));
        }
        let xattrs = xattrs.to_variant();
        let mut file = std::fs::File::open(path).map_err(|error| io_error(path, error))?;
        let size = metadata.len();
        let object = FileObjectMetadata {
            uid: metadata.uid(),
            gid: metadata.gid(),
            mode: metadata.mode(),
            xattrs: &xattrs,
        };
        let checksum = write_file_object(self.repo, &object, size, &mut file, &mut |_| {})
            .map_err(|error| io_error(path, error))?;
        self.statistics.objects_written += 1;
        self.statistics.bytes_written += size;
        Ok(checksum)
    }
}

/// The content checksum of a commit's tree, as `ostree_commit_get_content_checksum` defines it: SHA-256 of
/// the root dirtree checksum bytes followed by the root dirmeta checksum bytes.
pub fn content_checksum(root: &ostree::RepoFile) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for checksum in [root.tree_get_contents_checksum(), root.tree_get_metadata_checksum()] {
        let hex = checksum.map(|checksum| checksum.to_string()).unwrap_or_default();
        hasher.update(hex::decode(hex).unwrap_or_default());
    }
    hex::encode(hasher.finalize())
}
