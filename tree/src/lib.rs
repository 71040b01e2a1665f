//! From resolved, downloaded RPMs to an ostree commit: the package cache (one ostree commit per NEVRA),
//! assembly of the root by hardlinks, scriptlets and treefile scripts in bubblewrap, postprocessing
//! (passwd/group, /etc -> /usr/etc, tmpfiles, kernel and initramfs), the rpm database, the commit with its
//! metadata, and publishing it to the target repository.

pub mod assemble;
pub mod build;
pub mod capabilities;
pub mod commit;
pub mod file_object;
pub mod metadata;
pub mod passwd;
pub mod pkgcache;
pub mod postprocess;
mod replace;
pub mod rpmdb;
pub mod sandbox;
pub mod scriptlets;
pub mod scripts;
pub mod umask;
mod workdir;

pub use build::{
    BuildError, BuildEvent, BuildInputs, BuildOptions, BuildPhase, BuiltCommit, build_commit,
    commit_information, open_target_repository, previous_commit,
};
pub use metadata::{CommitInformation, ListedPackage, read_commit_information};
pub use workdir::{CacheLock, CacheLockError};
