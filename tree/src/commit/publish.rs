//! Moving a finished commit from the package cache into the target repository and pointing the branch at
//! it. When the target is a bare-user repository on the same file system (what `compose tree` creates),
//! every object the target lacks is hardlinked from the package cache: the objects are immutable and in
//! the same format, as libostree's own local pulls do when they can, but without a pull's per-object
//! machinery (a third of an incremental compose). Children are linked before the trees that list them and
//! the commit object last, so an interrupted run leaves only unreferenced objects; the file system is
//! synced before the branch moves. Any other target goes through a libostree pull.

use std::collections::HashSet;
use std::os::fd::OwnedFd;

use ostree::gio;
use ostree::glib;
use ostree::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{CommitError, ostree_error, repo_path};
use common::ostree_format::loose_object_path as object_path;

/// SHA-256.
const CHECKSUM_BYTES: usize = 32;

/// The mode of the `objects/xx` directories libostree creates.
const OBJECT_DIRECTORY_MODE: u32 = 0o777;

/// Publishes `commit` from the package cache `source` (a bare-user repository) on `reference` in `target`.
pub fn publish(
    target: &ostree::Repo,
    source: &ostree::Repo,
    commit: &str,
    reference: &str,
) -> Result<(), CommitError> {
    let linked = match Linker::open(source, target)? {
        Some(linker) => linker.link_commit(commit)?,
        None => false,
    };
    if !linked {
        pull(target, source, commit)?;
    }
    target
        .set_ref_immediate(None, reference, Some(commit), gio::Cancellable::NONE)
        .map_err(|error| ostree_error(target, error))
}

fn pull(target: &ostree::Repo, source: &ostree::Repo, commit: &str) -> Result<(), CommitError> {
    let options = glib::VariantDict::new(None);
    options.insert_value("refs", &vec![commit.to_string()].to_variant());
    options.insert_value("flags", &0i32.to_variant());
    let url = format!("file://{}", repo_path(source).display());
    target
        .pull_with_options(&url, &options.end(), None, gio::Cancellable::NONE)
        .map_err(|error| ostree_error(target, error))
}

struct Linker<'a> {
    source: &'a ostree::Repo,
    target: &'a ostree::Repo,
    source_objects: OwnedFd,
    target_objects: OwnedFd,
    /// Trees and directory metadata already handled in this run (trees repeat across a commit).
    visited: HashSet<String>,
    prefixes_made: HashSet<String>,
}

/// Why linking stopped early: the libostree pull takes over, or a real error.
enum LinkFailure {
    NotLinkable,
    Error(CommitError),
}

impl From<CommitError> for LinkFailure {
    fn from(error: CommitError) -> Self {
        LinkFailure::Error(error)
    }
}

impl<'a> Linker<'a> {
    /// A linker when both repositories are bare-user on one file system, else `None`.
    fn open(source: &'a ostree::Repo, target: &'a ostree::Repo) -> Result<Option<Linker<'a>>, CommitError> {
        if target.mode() != ostree::RepoMode::BareUser || source.mode() != ostree::RepoMode::BareUser {
            return Ok(None);
        }
        let open = |repo: &ostree::Repo| {
            let path = repo_path(repo).join("objects");
            rustix::fs::open(&path, OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY, Mode::empty())
                .map_err(|error| CommitError::Io { path, message: error.to_string() })
        };
        let (source_objects, target_objects) = (open(source)?, open(target)?);
        let device = |directory: &OwnedFd, repo: &ostree::Repo| {
            rustix::fs::fstat(directory).map(|stat| stat.st_dev).map_err(|error| CommitError::Io {
                path: repo_path(repo).join("objects"),
                message: error.to_string(),
            })
        };
        if device(&source_objects, source)? != device(&target_objects, target)? {
            return Ok(None);
        }
        Ok(Some(Linker {
            source,
            target,
            source_objects,
            target_objects,
            visited: HashSet::new(),
            prefixes_made: HashSet::new(),
        }))
    }

    /// Links everything `commit` needs; `false` when the file system refused a hardlink (then nothing is
    /// referenced yet and a pull does the rest).
    fn link_commit(mut self, commit: &str) -> Result<bool, CommitError> {
        match self.link_commit_objects(commit) {
            Ok(()) => Ok(true),
            Err(LinkFailure::NotLinkable) => Ok(false),
            Err(LinkFailure::Error(error)) => Err(error),
        }
    }

    fn link_commit_objects(&mut self, commit: &str) -> Result<(), LinkFailure> {
        let variant = self.load(ostree::ObjectType::Commit, commit)?;
        let tree = self.checksum_in(&variant, 6, commit)?;
        let meta = self.checksum_in(&variant, 7, commit)?;
        self.link_tree(&tree, &meta)?;
        let detached = object_path(commit, "commitmeta");
        if rustix::fs::statat(&self.source_objects, detached.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            self.link(&detached)?;
        }
        if !self.target.is_disable_fsync() {
            rustix::fs::syncfs(&self.target_objects).map_err(|error| self.target_error(error))?;
        }
        // Last: with the commit object in place the target has the whole commit.
        self.link(&object_path(commit, "commit"))?;
        if !self.target.is_disable_fsync() {
            rustix::fs::syncfs(&self.target_objects).map_err(|error| self.target_error(error))?;
        }
        Ok(())
    }

    fn link_tree(&mut self, tree: &str, meta: &str) -> Result<(), LinkFailure> {
        if self.visited.insert(format!("{meta}.dirmeta")) {
            self.link(&object_path(meta, "dirmeta"))?;
        }
        if !self.visited.insert(format!("{tree}.dirtree")) {
            return Ok(());
        }
        let variant = self.load(ostree::ObjectType::DirTree, tree)?;
        let files = variant.child_value(0);
        for index in 0..files.n_children() {
            let file = files.child_value(index);
            let checksum = self.checksum_in(&file, 1, tree)?;
            self.link(&object_path(&checksum, "file"))?;
        }
        let directories = variant.child_value(1);
        for index in 0..directories.n_children() {
            let directory = directories.child_value(index);
            let subtree = self.checksum_in(&directory, 1, tree)?;
            let submeta = self.checksum_in(&directory, 2, tree)?;
            self.link_tree(&subtree, &submeta)?;
        }
        // After everything it lists.
        self.link(&object_path(tree, "dirtree"))
    }

    /// The checksum in field `index` of `variant` (a part of object `object`), as hex.
    fn checksum_in(
        &self,
        variant: &glib::Variant,
        index: usize,
        object: &str,
    ) -> Result<String, CommitError> {
        match variant.child_value(index).fixed_array::<u8>() {
            Ok(bytes) if bytes.len() == CHECKSUM_BYTES => Ok(hex::encode(bytes)),
            _ => Err(CommitError::Ostree {
                repository: repo_path(self.source),
                message: format!("object {object} has a malformed checksum"),
            }),
        }
    }

    fn load(&self, kind: ostree::ObjectType, checksum: &str) -> Result<glib::Variant, CommitError> {
        self.source.load_variant(kind, checksum).map_err(|error| ostree_error(self.source, error))
    }

    /// Hardlinks `path` (relative to `objects/`) from the source unless the target has it.
    fn link(&mut self, path: &str) -> Result<(), LinkFailure> {
        if rustix::fs::statat(&self.target_objects, path, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Ok(());
        }
        let prefix = &path[..2];
        if !self.prefixes_made.contains(prefix) {
            match rustix::fs::mkdirat(
                &self.target_objects,
                prefix,
                Mode::from_raw_mode(OBJECT_DIRECTORY_MODE),
            ) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(error) => return Err(self.target_error(error).into()),
            }
            self.prefixes_made.insert(prefix.to_string());
        }
        match rustix::fs::linkat(&self.source_objects, path, &self.target_objects, path, AtFlags::empty()) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            // Hardlinks across these directories are not possible here (another file system below, a
            // link count limit, protected hardlinks): copying is libostree's job.
            Err(Errno::XDEV | Errno::PERM | Errno::MLINK) => Err(LinkFailure::NotLinkable),
            Err(error) => Err(CommitError::Io {
                path: repo_path(self.source).join("objects").join(path),
                message: format!("linking into {}: {error}", repo_path(self.target).display()),
            }
            .into()),
        }
    }

    fn target_error(&self, error: Errno) -> CommitError {
        CommitError::Io { path: repo_path(self.target).join("objects"), message: error.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn ostree(repository: &Path, arguments: &[&str]) -> String {
        let output = Command::new("ostree")
            .arg(format!("--repo={}", repository.display()))
            .args(arguments)
            .output()
            .expect("running ostree (scripts/install-deps installs it)");
        assert!(output.status.success(), "ostree {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn open(path: &Path) -> ostree::Repo {
        let repo = ostree::Repo::new_for_path(path);
        repo.open(gio::Cancellable::NONE).unwrap();
        repo
    }

    /// A source repository with a commit of a small tree (a file, a symlink, nested and repeated
    /// directories) and an empty target, both bare-user.
    fn repositories(directory: &Path) -> (ostree::Repo, ostree::Repo, String) {
        let tree = directory.join("tree");
        for nested in ["usr/bin", "usr/share/a/same", "usr/share/b/same"] {
            std::fs::create_dir_all(tree.join(nested)).unwrap();
        }
        std::fs::write(tree.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::write(tree.join("usr/share/a/same/file"), "same\n").unwrap();
        std::fs::write(tree.join("usr/share/b/same/file"), "same\n").unwrap();
        std::os::unix::fs::symlink("tool", tree.join("usr/bin/alias")).unwrap();
        let (source, target) = (directory.join("source"), directory.join("target"));
        for repository in [&source, &target] {
            ostree(repository, &["init", "--mode=bare-user"]);
        }
        let tree_argument = format!("--tree=dir={}", tree.display());
        let commit = ostree(&source, &["commit", "--branch=scratch", &tree_argument]);
        (open(&source), open(&target), commit)
    }

    #[test]
    fn a_commit_is_linked_into_a_bare_user_target_whole() {
        let directory = tempfile::tempdir().unwrap();
        let (source, target, commit) = repositories(directory.path());
        publish(&target, &source, &commit, "published").unwrap();
        let target_path = directory.path().join("target");
        assert_eq!(ostree(&target_path, &["rev-parse", "published"]), commit);
        ostree(&target_path, &["fsck"]);
        assert_eq!(ostree(&target_path, &["cat", "published", "/usr/share/b/same/file"]), "same");
        // Linked, not copied.
        let object = |repository: &str| {
            let listing = ostree(&directory.path().join(repository), &["ls", "-C", &commit, "/usr/bin/tool"]);
            let checksum = listing.split_whitespace().nth(4).unwrap().to_string();
            let path = format!("{repository}/objects/{}/{}.file", &checksum[..2], &checksum[2..]);
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(directory.path().join(path)).unwrap())
        };
        assert_eq!(object("source"), object("target"));
        // Again: nothing to do, still whole.
        publish(&target, &source, &commit, "published").unwrap();
        ostree(&target_path, &["fsck"]);
    }

    #[test]
    fn an_archive_target_is_pulled_into() {
        let directory = tempfile::tempdir().unwrap();
        let (source, _, commit) = repositories(directory.path());
        let archive_path = directory.path().join("archive");
        ostree(&archive_path, &["init", "--mode=archive"]);
        publish(&open(&archive_path), &source, &commit, "published").unwrap();
        assert_eq!(ostree(&archive_path, &["rev-parse", "published"]), commit);
        ostree(&archive_path, &["fsck"]);
        assert_eq!(ostree(&archive_path, &["cat", "published", "/usr/bin/tool"]), "#!/bin/sh");
    }

    #[test]
    fn an_interrupted_publish_leaves_no_commit_and_the_next_one_completes() {
        let directory = tempfile::tempdir().unwrap();
        let (source, target, commit) = repositories(directory.path());
        // Interrupted after the trees, before the commit object (where a kill would leave it).
        let mut linker = Linker::open(&source, &target).unwrap().expect("both are bare-user here");
        let variant = linker.load(ostree::ObjectType::Commit, &commit).unwrap();
        let (tree, meta) = (
            linker.checksum_in(&variant, 6, &commit).unwrap(),
            linker.checksum_in(&variant, 7, &commit).unwrap(),
        );
        assert!(linker.link_tree(&tree, &meta).is_ok());
        let target_path = directory.path().join("target");
        ostree(&target_path, &["fsck"]);
        let has_commit =
            target.has_object(ostree::ObjectType::Commit, &commit, gio::Cancellable::NONE).unwrap();
        assert!(!has_commit, "no commit object yet");

        publish(&target, &source, &commit, "published").unwrap();
        assert_eq!(ostree(&target_path, &["rev-parse", "published"]), commit);
        ostree(&target_path, &["fsck"]);
    }
}
