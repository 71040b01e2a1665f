//! The file manifest stored in each package-cache commit: every path of the package with its mode, RPM
//! owner names, flags and ostree object. Assembly, conflict checks, ownership fix-ups and file triggers
//! read it instead of walking the commit's trees.

use ostree::glib;
use ostree::glib::prelude::*;

/// `%doc` in the RPM header (RPMFILE_DOC).
pub const FLAG_DOCUMENTATION: u32 = 1 << 0;
/// `%config` in the RPM header (RPMFILE_CONFIG).
pub const FLAG_CONFIGURATION: u32 = 1 << 1;

pub use common::ostree_format::{MODE_DIRECTORY, MODE_REGULAR, MODE_SYMLINK, MODE_TYPE_MASK};

/// The GVariant type of a manifest: path, mode, flags, object checksum (empty for directories), symlink
/// target (empty unless a symlink), user, group.
pub const MANIFEST_VARIANT_TYPE: &str = "a(suussss)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Absolute, normalized path (`/usr/bin/ls`).
    pub path: String,
    /// `st_mode` including the file type bits.
    pub mode: u32,
    pub flags: u32,
    /// The ostree content object (regular files and symlinks).
    pub checksum: String,
    pub target: String,
    pub user: String,
    pub group: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    Regular,
    Symlink,
}

impl ManifestEntry {
    pub fn kind(&self) -> EntryKind {
        match self.mode & MODE_TYPE_MASK {
            MODE_DIRECTORY => EntryKind::Directory,
            MODE_SYMLINK => EntryKind::Symlink,
            _ => EntryKind::Regular,
        }
    }

    pub fn permissions(&self) -> u32 {
        self.mode & !MODE_TYPE_MASK
    }

    /// Whether the owner must be looked up in the tree's passwd / group at assembly.
    pub fn has_non_root_owner(&self) -> bool {
        self.user != "root" || self.group != "root"
    }

    /// The path without its leading slash, relative to a root directory.
    pub fn relative_path(&self) -> &str {
        self.path.trim_start_matches('/')
    }
}

pub fn to_variant(entries: &[ManifestEntry]) -> glib::Variant {
    let tuples: Vec<(String, u32, u32, String, String, String, String)> = entries
        .iter()
        .map(|entry| {
            (
                entry.path.clone(),
                entry.mode,
                entry.flags,
                entry.checksum.clone(),
                entry.target.clone(),
                entry.user.clone(),
                entry.group.clone(),
            )
        })
        .collect();
    tuples.to_variant()
}

/// `None` when the variant does not have the manifest type (a cache entry from another format).
pub fn from_variant(variant: &glib::Variant) -> Option<Vec<ManifestEntry>> {
    let tuples = variant.get::<Vec<(String, u32, u32, String, String, String, String)>>()?;
    Some(
        tuples
            .into_iter()
            .map(|(path, mode, flags, checksum, target, user, group)| ManifestEntry {
                path,
                mode,
                flags,
                checksum,
                target,
                user,
                group,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_variant() {
        let entries = vec![
            ManifestEntry {
                path: "/usr/bin".into(),
                mode: MODE_DIRECTORY | 0o755,
                flags: 0,
                checksum: String::new(),
                target: String::new(),
                user: "root".into(),
                group: "root".into(),
            },
            ManifestEntry {
                path: "/usr/bin/sh".into(),
                mode: MODE_SYMLINK | 0o777,
                flags: FLAG_CONFIGURATION,
                checksum: "ab".repeat(32),
                target: "bash".into(),
                user: "root".into(),
                group: "wheel".into(),
            },
        ];
        let variant = to_variant(&entries);
        assert_eq!(variant.type_().as_str(), MANIFEST_VARIANT_TYPE);
        let decoded = from_variant(&variant).unwrap();
        assert_eq!(decoded, entries);
        assert_eq!(decoded[1].kind(), EntryKind::Symlink);
        assert!(decoded[1].has_non_root_owner());
        assert_eq!(decoded[0].relative_path(), "usr/bin");
    }
}
