//! Errors of loading metadata and setting up a pool.

use std::fmt;
use std::path::PathBuf;

/// Which kind of file an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    /// rpm-md `primary.xml`.
    Primary,
    /// rpm-md `filelists.xml`.
    Filelists,
    /// rpm-md `updateinfo.xml`.
    Updateinfo,
    /// A libsolv `.solv` cache file.
    SolvCache,
}

impl fmt::Display for MetadataKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            MetadataKind::Primary => "primary metadata",
            MetadataKind::Filelists => "filelists metadata",
            MetadataKind::Updateinfo => "updateinfo metadata",
            MetadataKind::SolvCache => "solv cache",
        })
    }
}

/// An error of [`crate::Pool`] set-up and loading; each variant names the file or architecture concerned.
#[derive(Debug, thiserror::Error)]
pub enum SolvError {
    /// The architecture is not one of [`crate::SUPPORTED_ARCHITECTURES`].
    #[error("unsupported architecture {arch:?} (supported: x86_64, aarch64, ppc64le, s390x)")]
    UnsupportedArchitecture {
        /// The architecture asked for.
        arch: String,
    },
    /// A file could not be opened.
    #[error("opening {kind} {}: {source}", path.display())]
    Open {
        /// What the file holds.
        kind: MetadataKind,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// libsolv could not parse a file.
    #[error("reading {kind} {}: {message}", path.display())]
    Read {
        /// What the file holds.
        kind: MetadataKind,
        /// The file.
        path: PathBuf,
        /// libsolv's error text (`pool_errstr`).
        message: String,
    },
    /// Writing a `.solv` cache failed.
    #[error("writing solv cache {}: {message}", path.display())]
    WriteCache {
        /// The cache file that was to be written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A name or path contains a NUL byte and cannot be passed to libsolv.
    #[error("{what} {value:?} contains a NUL byte")]
    NulByte {
        /// What the string is (for example "repository name").
        what: &'static str,
        /// The string, lossily converted.
        value: String,
    },
}
