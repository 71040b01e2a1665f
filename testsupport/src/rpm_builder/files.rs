//! The file list of an [`RpmSpec`]: regular files, `%config`, `%doc`, directories, links, ghosts.

use super::RpmSpec;

/// Default permissions of `%doc` and `%license` files.
const DOCUMENTATION_MODE: u16 = 0o644;

/// How rpm should treat a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RegularFileKind {
    Plain,
    /// `%config(noreplace)`.
    Configuration,
    /// `%doc`.
    Documentation,
    /// `%license`.
    License,
}

/// One entry of the package's file list.
#[derive(Clone, Debug)]
pub(super) enum FileEntry {
    Regular { path: String, content: Vec<u8>, mode: u16, user: String, group: String, kind: RegularFileKind },
    Directory { path: String, mode: u16, user: String, group: String },
    Symlink { path: String, target: String },
    Hardlink { path: String, target: String },
    Ghost { path: String, mode: u16 },
}

impl RpmSpec {
    fn regular(
        self,
        path: &str,
        content: &[u8],
        mode: u16,
        owner: (&str, &str),
        kind: RegularFileKind,
    ) -> Self {
        let (user, group) = owner;
        self.entry(FileEntry::Regular {
            path: path.to_string(),
            content: content.to_vec(),
            mode,
            user: user.to_string(),
            group: group.to_string(),
            kind,
        })
    }

    fn entry(mut self, entry: FileEntry) -> Self {
        self.entries.push(entry);
        self
    }

    /// Adds a regular file owned by `root:root`.
    pub fn file(self, path: &str, content: impl AsRef<[u8]>, mode: u16) -> Self {
        self.regular(path, content.as_ref(), mode, ("root", "root"), RegularFileKind::Plain)
    }

    /// Adds a regular file owned by `user:group`.
    pub fn file_owned(
        self,
        path: &str,
        content: impl AsRef<[u8]>,
        mode: u16,
        user: &str,
        group: &str,
    ) -> Self {
        self.regular(path, content.as_ref(), mode, (user, group), RegularFileKind::Plain)
    }

    /// Adds a `%config(noreplace)` file owned by `root:root`.
    pub fn config_file(self, path: &str, content: impl AsRef<[u8]>, mode: u16) -> Self {
        self.regular(path, content.as_ref(), mode, ("root", "root"), RegularFileKind::Configuration)
    }

    /// Adds a `%doc` file (mode 0644, `root:root`).
    pub fn doc_file(self, path: &str, content: impl AsRef<[u8]>) -> Self {
        let kind = RegularFileKind::Documentation;
        self.regular(path, content.as_ref(), DOCUMENTATION_MODE, ("root", "root"), kind)
    }

    /// Adds a `%license` file (mode 0644, `root:root`).
    pub fn license_file(self, path: &str, content: impl AsRef<[u8]>) -> Self {
        self.regular(path, content.as_ref(), DOCUMENTATION_MODE, ("root", "root"), RegularFileKind::License)
    }

    /// Adds a directory owned by `root:root`.
    pub fn directory(self, path: &str, mode: u16) -> Self {
        self.directory_owned(path, mode, "root", "root")
    }

    /// Adds a directory owned by `user:group`.
    pub fn directory_owned(self, path: &str, mode: u16, user: &str, group: &str) -> Self {
        let (user, group) = (user.to_string(), group.to_string());
        self.entry(FileEntry::Directory { path: path.to_string(), mode, user, group })
    }

    /// Adds a symlink `path -> target` (the target is stored as given, relative or absolute).
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.entry(FileEntry::Symlink { path: path.to_string(), target: target.to_string() })
    }

    /// Adds `path` as a hardlink of the regular file `target` of this package: same inode, content,
    /// mode, owner, flags and capabilities. `target` is any regular file of the spec
    /// ([`file`](Self::file), [`file_owned`](Self::file_owned), [`config_file`](Self::config_file), ...).
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.entry(FileEntry::Hardlink { path: path.to_string(), target: target.to_string() })
    }

    /// Adds a `%ghost` file: owned by the package, not in the payload.
    pub fn ghost(self, path: &str, mode: u16) -> Self {
        self.entry(FileEntry::Ghost { path: path.to_string(), mode })
    }

    /// Sets file capabilities (e.g. `cap_net_raw=ep`) on the regular file `path` of this package.
    pub fn file_capabilities(mut self, path: &str, capabilities: &str) -> Self {
        self.file_capabilities.push((path.to_string(), capabilities.to_string()));
        self
    }
}
