//! Test-only helpers for arbor: deterministic RPMs, rpm-md repositories and a misbehaving HTTP server.
//!
//! This crate is used only by the tests and benchmarks of other workspace crates, so that every test
//! can build exactly the RPM repository and the faulty download server it needs:
//!
//! - [`rpm_builder`]: [`RpmSpec`] describes one package and writes a byte-for-byte reproducible `.rpm`
//!   with the pure-Rust `rpm` crate (no rpmbuild).
//! - [`repository`]: [`TestRepository`] collects packages under `Packages/` and runs `createrepo_c`
//!   (plus `modifyrepo_c` for `updateinfo.xml` advisories).
//! - [`http_server`]: [`TestHttpServer`] serves a directory over HTTP/1.1 on 127.0.0.1 and injects
//!   faults (errors, 429, truncation, corruption, hangs, dropped connections, delays) per path prefix,
//!   recording every request.
//! - [`host_files`]: [`HostFiles`] copies host executables and the shared libraries `ldd` lists for
//!   them into an [`RpmSpec`] at merged-`/usr` paths ([`RpmSpec::host_executables`]).
//! - [`keys`]: [`TestKey`], committed test-only OpenPGP key pairs that sign packages
//!   ([`RpmSpec::signed_with`]) and whose public halves tests name in `gpgkey=`.
//! - [`os_fixture`]: [`MinimalOs`], the `filesystem`, `setup` and `shell` packages of a minimal tree
//!   that composes and runs scriptlets, and hostile packages (a device node, a corrupted payload).
//! - [`root`]: a tiny root file system whose `/bin/sh` is the host's shell (and its libraries), for
//!   tests that run programs inside a tree.
//! - [`browser`]: [`browser::TestBrowser`], headless Chromium driven through ChromeDriver, with
//!   screenshots, colour schemes and axe-core checks, for the dashboard's tests.
//! - [`git`]: [`TestGitRemote`], a bare git repository to commit to, force-push and delete branches
//!   of, served over `file://` or over HTTP by `git http-backend` ([`GitHttpServer`], optionally
//!   requiring a token, stoppable to play a remote that is down).
//! - [`postgres`]: [`TestPostgres`], a throwaway PostgreSQL server on 127.0.0.1 (its own cluster in a
//!   temporary directory), stopped even when the test process is killed.
//! - [`tools`]: finds the external tools (`createrepo_c`, `rpm`, ...) and fails with a clear message
//!   naming `scripts/install-deps` when one is missing.

pub mod browser;
mod calendar;
pub mod git;
pub mod host_files;
pub mod http_server;
pub mod keys;
pub mod os_fixture;
pub mod postgres;
pub mod registry;
pub mod repository;
pub mod root;
pub mod rpm_builder;
pub mod tools;

pub use git::{GitHttpServer, TestFile, TestGitRemote};
pub use host_files::HostFiles;
pub use http_server::{Fault, RecordedRequest, TestHttpServer};
pub use keys::TestKey;
pub use os_fixture::MinimalOs;
pub use postgres::TestPostgres;
pub use registry::{FaultProxy, ProxyFault, TestRegistry};
pub use repository::{Advisory, AdvisoryKind, AdvisoryPackage, TestRepository};
pub use rpm_builder::{Compression, RpmSpec};
