//! Reads an ostree commit the way the exporter needs it: the commit, detached metadata, every dirtree and
//! dirmeta object in traversal order (interleaved with the directory entries of the checkout), and every
//! content object with the checkout paths that use it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ostree::gio;
use ostree::glib;

/// The commit's root is mapped to `./` in tar; `usr/etc` is written as `etc` (ostree's /etc convention).
const USR_ETC: &str = "usr/etc";
/// A toplevel `sysroot` in the commit would collide with the repository the layers carry.
const SYSROOT: &str = "sysroot";

#[derive(Debug, thiserror::Error)]
pub enum CommitTreeError {
    #[error("ostree repository: reading {what} {checksum}: {message}")]
    Ostree { what: &'static str, checksum: String, message: String },
    #[error("ostree repository: {what} {checksum} is malformed: {message}")]
    Malformed { what: &'static str, checksum: String, message: String },
}

/// Owner and mode of a directory (from its dirmeta object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryMetadata {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// One step of the commit layer, in the order ostree-ext writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeStep {
    /// A `.dirtree` object.
    DirTree(String),
    /// A `.dirmeta` object (each distinct one once).
    DirMeta(String),
    /// A directory of the checkout: its tar path and its dirmeta checksum.
    Directory { path: String, dirmeta: String },
}

/// A content object and where it appears in the checkout.
#[derive(Debug, Clone, Default)]
pub struct ContentObject {
    /// Paths as committed (`usr/etc/passwd`), in traversal order.
    pub paths: Vec<String>,
}

#[derive(Debug)]
pub struct CommitTree {
    pub commit: String,
    /// The serialized commit variant.
    pub commit_object: Vec<u8>,
    pub detached_metadata: Option<Vec<u8>>,
    pub root_dirmeta: String,
    pub steps: Vec<TreeStep>,
    pub dirtrees: HashMap<String, Vec<u8>>,
    pub dirmetas: HashMap<String, Vec<u8>>,
    pub directory_metadata: HashMap<String, DirectoryMetadata>,
    /// Content objects in checksum order (the order every layer writes them in).
    pub content: BTreeMap<String, ContentObject>,
    /// Commit timestamp (seconds since the epoch) and subject.
    pub timestamp: u64,
    pub subject: String,
    /// The commit's metadata dictionary (`a{sv}`).
    pub metadata: glib::Variant,
}

/// The tar path of a committed path: `usr/etc/...` becomes `etc/...`.
pub fn tar_path(path: &str) -> String {
    match path.strip_prefix(USR_ETC) {
        Some("") => "etc".to_string(),
        Some(rest) if rest.starts_with('/') => format!("etc{rest}"),
        _ => path.to_string(),
    }
}

impl CommitTree {
    pub fn read(repo: &ostree::Repo, commit: &str) -> Result<CommitTree, CommitTreeError> {
        let commit_variant = load(repo, ostree::ObjectType::Commit, commit, "commit")?;
        let malformed = |message: &str| CommitTreeError::Malformed {
            what: "commit",
            checksum: commit.to_string(),
            message: message.to_string(),
        };
        if commit_variant.n_children() < 8 {
            return Err(malformed("fewer than 8 fields"));
        }
        let subject = commit_variant.child_value(3).str().unwrap_or_default().to_string();
        let timestamp = u64::from_be(commit_variant.child_value(5).get::<u64>().unwrap_or_default());
        let root_dirtree =
            checksum_of(&commit_variant.child_value(6)).ok_or_else(|| malformed("root dirtree"))?;
        let root_dirmeta =
            checksum_of(&commit_variant.child_value(7)).ok_or_else(|| malformed("root dirmeta"))?;
        let detached_metadata = repo
            .read_commit_detached_metadata(commit, gio::Cancellable::NONE)
            .map_err(|error| ostree_error("detached metadata of", commit, error))?
            .map(|variant| variant.data().to_vec());
        let mut tree = CommitTree {
            commit: commit.to_string(),
            commit_object: commit_variant.data().to_vec(),
            detached_metadata,
            root_dirmeta: root_dirmeta.clone(),
            steps: Vec::new(),
            dirtrees: HashMap::new(),
            dirmetas: HashMap::new(),
            directory_metadata: HashMap::new(),
            content: BTreeMap::new(),
            timestamp,
            subject,
            metadata: commit_variant.child_value(0),
        };
        let mut seen_dirmeta = BTreeSet::new();
        tree.add_dirmeta(repo, &root_dirmeta, &mut seen_dirmeta)?;
        tree.walk(repo, "", &root_dirtree, &mut seen_dirmeta)?;
        Ok(tree)
    }

    fn add_dirmeta(
        &mut self,
        repo: &ostree::Repo,
        checksum: &str,
        seen: &mut BTreeSet<String>,
    ) -> Result<bool, CommitTreeError> {
        if !seen.insert(checksum.to_string()) {
            return Ok(false);
        }
        let variant = load(repo, ostree::ObjectType::DirMeta, checksum, "dirmeta")?;
        let field = |index: usize| u32::from_be(variant.child_value(index).get::<u32>().unwrap_or_default());
        if variant.n_children() < 4 {
            return Err(CommitTreeError::Malformed {
                what: "dirmeta",
                checksum: checksum.to_string(),
                message: "fewer than 4 fields".to_string(),
            });
        }
        self.directory_metadata
            .insert(checksum.to_string(), DirectoryMetadata { uid: field(0), gid: field(1), mode: field(2) });
        self.dirmetas.insert(checksum.to_string(), variant.data().to_vec());
        Ok(true)
    }

    fn walk(
        &mut self,
        repo: &ostree::Repo,
        directory: &str,
        dirtree: &str,
        seen_dirmeta: &mut BTreeSet<String>,
    ) -> Result<(), CommitTreeError> {
        let variant = load(repo, ostree::ObjectType::DirTree, dirtree, "dirtree")?;
        if !self.dirtrees.contains_key(dirtree) {
            self.dirtrees.insert(dirtree.to_string(), variant.data().to_vec());
            self.steps.push(TreeStep::DirTree(dirtree.to_string()));
        }
        let malformed = |message: &str| CommitTreeError::Malformed {
            what: "dirtree",
            checksum: dirtree.to_string(),
            message: message.to_string(),
        };
        if variant.n_children() < 2 {
            return Err(malformed("fewer than 2 fields"));
        }
        let join =
            |name: &str| if directory.is_empty() { name.to_string() } else { format!("{directory}/{name}") };
        let files = variant.child_value(0);
        for index in 0..files.n_children() {
            let entry = files.child_value(index);
            let name =
                entry.child_value(0).str().map(str::to_string).ok_or_else(|| malformed("file name"))?;
            let checksum = checksum_of(&entry.child_value(1)).ok_or_else(|| malformed("file checksum"))?;
            self.content.entry(checksum).or_default().paths.push(join(&name));
        }
        let directories = variant.child_value(1);
        for index in 0..directories.n_children() {
            let entry = directories.child_value(index);
            let name =
                entry.child_value(0).str().map(str::to_string).ok_or_else(|| malformed("directory name"))?;
            let contents = checksum_of(&entry.child_value(1)).ok_or_else(|| malformed("directory tree"))?;
            let metadata =
                checksum_of(&entry.child_value(2)).ok_or_else(|| malformed("directory metadata"))?;
            if self.add_dirmeta(repo, &metadata, seen_dirmeta)? {
                self.steps.push(TreeStep::DirMeta(metadata.clone()));
            }
            if directory.is_empty() && name == SYSROOT {
                continue;
            }
            let path = join(&name);
            self.steps.push(TreeStep::Directory { path: tar_path(&path), dirmeta: metadata });
            self.walk(repo, &path, &contents, seen_dirmeta)?;
        }
        Ok(())
    }

    /// The commit's `version` metadata, if any.
    pub fn version(&self) -> Option<String> {
        self.string_metadata("version")
    }

    pub fn string_metadata(&self, key: &str) -> Option<String> {
        glib::VariantDict::new(Some(&self.metadata)).lookup::<String>(key).ok().flatten()
    }

    pub fn bool_metadata(&self, key: &str) -> Option<bool> {
        glib::VariantDict::new(Some(&self.metadata)).lookup::<bool>(key).ok().flatten()
    }
}

fn ostree_error(what: &'static str, checksum: &str, error: glib::Error) -> CommitTreeError {
    CommitTreeError::Ostree { what, checksum: checksum.to_string(), message: error.to_string() }
}

fn load(
    repo: &ostree::Repo,
    object_type: ostree::ObjectType,
    checksum: &str,
    what: &'static str,
) -> Result<glib::Variant, CommitTreeError> {
    repo.load_variant(object_type, checksum).map_err(|error| ostree_error(what, checksum, error))
}

/// A 32-byte `ay` checksum as hex.
fn checksum_of(variant: &glib::Variant) -> Option<String> {
    let bytes = variant.fixed_array::<u8>().ok()?;
    (bytes.len() == 32).then(|| hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usr_etc_is_written_as_etc() {
        for (committed, written) in [
            ("usr/etc", "etc"),
            ("usr/etc/passwd", "etc/passwd"),
            ("usr/etcetera", "usr/etcetera"),
            ("usr/bin/ls", "usr/bin/ls"),
        ] {
            assert_eq!(tar_path(committed), written, "{committed}");
        }
    }
}
