//! rpm-ostree treefiles and lockfiles: read them (YAML, JSON, kickstart), follow includes, evaluate
//! conditions, substitute variables, merge the way rpm-ostree does, validate, and render.
//!
//! This crate is pure: no network, no async runtime, no FFI. Files are read through a [`SourceLoader`]
//! (the file system, or memory for tests, fuzzing and benchmarks).

mod condition;
mod diagnostic;
mod kickstart;
mod load;
mod locate;
pub mod lockfile;
mod node;
mod null;
mod paths;
mod read;
pub mod schema;
mod treefile;

pub use condition::{Condition, Operator};
pub use diagnostic::{Diagnostic, IncludeSite, Problem, Problems, Severity, suggest};
pub use load::{
    FileSystemLoader, Flattened, LoadOptions, MAX_INCLUDE_DEPTH, MemoryLoader, RESERVED_VARIABLES,
    SourceFile, SourceLoader, load, substitute_variables,
};
pub use locate::Position;
pub use node::Format;
pub use read::{
    AddFile, BootLocation, CheckPasswd, Edition, MetadataPlacement, OptUsrlocal, PackageSet, Releasever,
    RemoveFromPackage, RepoPackages, Rojig, RpmdbBackend, Sysusers, Variable,
};
pub use treefile::{KEYS, KeyFlag, KeyInfo, Treefile, key_info};

/// Parses a single condition of `conditional-include` (exposed for tools and tests).
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    condition::parse(text)
}
