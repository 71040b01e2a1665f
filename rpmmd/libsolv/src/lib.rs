//! Safe wrapper around libsolv for rpm-md repositories: load metadata (or `.solv` caches), select
//! packages by spec, exclude packages, depsolve and read package details.
//!
//! This crate is the only place in the project where `unsafe` code touches libsolv. Every module
//! that calls into the C library opts in with `#![allow(unsafe_code)]` and documents each unsafe
//! block with a `// SAFETY:` comment. Everything public is safe to call.
//!
//! Typical use:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use libsolv::{Pool, Request};
//! let mut pool = Pool::new("x86_64")?;
//! pool.add_rpmmd_repo("fedora", 0, "repodata/primary.xml.gz".as_ref(), None, None)?;
//! pool.prepare();
//! let request = Request { install: vec!["bash".into()], ..Request::default() };
//! let transaction = pool.solve(&request)?;
//! for id in transaction.install {
//!     println!("{}", pool.package(id).nevra());
//! }
//! # Ok(())
//! # }
//! ```

//!
//! Performance (60,000 synthetic packages, release build): primary alone loads in about 1.5 s;
//! adding filelists costs about 10 s more, because libsolv 0.7.23 looks up sibling directories
//! linearly (`/usr/share/doc/*` has one entry per package). Write a `.solv` cache with
//! [`Pool::write_solv_cache`] (0.3 s) and load that next time (under 1 s with filelists).
//! A solve of a 2,700-package closure takes about 50 ms.

mod considered;
mod details;
mod error;
mod file;
mod file_provides;
mod file_search;
mod loading;
mod lookup;
mod ordering;
mod package;
mod pool;
mod primary;
mod queue;
mod request;
mod requirements;
mod selection;
mod solve;
mod version;

pub use error::{MetadataKind, SolvError};
pub use file::MetadataReader;
pub use package::Package;
pub use pool::{Pool, RepoHandle, SUPPORTED_ARCHITECTURES, SolvableId};
pub use request::{Request, SolveProblems, Transaction};
pub use version::library_version;
#[cfg(test)]
mod primary_equivalence_tests;
