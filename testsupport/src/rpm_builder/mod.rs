//! [`RpmSpec`]: describe one RPM package and write it, byte-for-byte reproducibly, with the `rpm` crate.
//!
//! ```no_run
//! use arbor_testsupport::{Compression, RpmSpec};
//! # fn main() -> anyhow::Result<()> {
//! # let directory = std::path::Path::new("/tmp");
//! let path = RpmSpec::new("app", "2.0", "1")
//!     .arch("x86_64")
//!     .requires("libfoo.so.1()(64bit)")
//!     .requires("foo >= 1.0")
//!     .requires("(crun or runc >= 1.0)")
//!     .file("/usr/bin/app", b"#!/bin/sh\necho hi\n", 0o755)
//!     .config_file("/etc/app.conf", b"x=1\n", 0o644)
//!     .compression(Compression::Gzip)
//!     .write_to(directory)?; // <directory>/app-2.0-1.x86_64.rpm
//! # Ok(()) }
//! ```
//!
//! What the `rpm` crate (0.30) supports and this builder exposes: epoch, rich and versioned
//! dependencies of every kind, `Requires(pre)`, regular files with owner/mode, directories,
//! symlinks, hardlink sets, `%config(noreplace)`, `%ghost`, `%doc`, `%license`, file capabilities,
//! all install/uninstall/transaction scriptlets and `%changelog`.
//!
//! Limits of the `rpm` crate, worked around or accepted here:
//! - It always writes `SOURCERPM` as `(none)`: [`RpmSpec::write_to`] rewrites that header tag and
//!   recomputes the signature-header digests, so `rpm -K` still says "digests OK". A package is
//!   signed (see [`RpmSpec::signed_with`]) only after that rewrite, so its signature covers the
//!   final header.
//! - It writes no file classes (`FILECLASS`/`CLASSDICT`) and no automatic ELF/soname dependencies:
//!   `rpm -qp --fileclass` shows no class and every dependency must be declared explicitly.
//! - Every scriptlet adds `Requires(interp): /bin/sh` (as rpmbuild does), so a repository that is
//!   depsolved needs a package providing `/bin/sh` when any package has scriptlets.
//! - Hardlink members must share content, mode, owner, flags and capabilities (the crate checks);
//!   [`RpmSpec::hardlink`] therefore copies all of them from its target.
//! - A non-root file owner adds `Recommends: user(NAME)` / `group(NAME)` (the crate's sysusers
//!   support for v4 packages).

mod build;
mod dependency;
mod files;

use files::FileEntry;

use crate::keys::TestKey;

use std::path::{Path, PathBuf};

/// Build time of every package unless set: 2023-11-14T22:13:20Z, a fixed instant so that building
/// the same spec twice gives the same bytes.
pub const DEFAULT_BUILD_TIME: u32 = 1_700_000_000;

/// Build host written into every package unless set, fixed for reproducibility.
pub const DEFAULT_BUILD_HOST: &str = "arbor-testsupport.invalid";

/// Payload compression of a built package.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// `gzip`, rpm's historical default (and Debian rpmbuild's).
    Gzip,
    /// `zstd`, what Fedora and RHEL 9+ use.
    #[default]
    Zstd,
    /// `xz`, what older RHEL/CentOS use.
    Xz,
    /// An uncompressed cpio payload.
    None,
}

/// Which dependency header a declared dependency goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DependencyKind {
    Requires,
    RequiresPreInstall,
    Provides,
    Conflicts,
    Obsoletes,
    Recommends,
    Suggests,
    Supplements,
    Enhances,
}

/// A scriptlet slot of the package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScriptPhase {
    PreInstall,
    PostInstall,
    PreUninstall,
    PostUninstall,
    PreTransaction,
    PostTransaction,
}

/// One `%changelog` entry.
#[derive(Clone, Debug)]
struct ChangelogEntry {
    timestamp: u32,
    author: String,
    text: String,
}

/// Everything needed to write one RPM package; build it with chained calls, then
/// [`write_to`](Self::write_to) a directory.
///
/// Defaults: arch `noarch`, license `MIT`, summary `Test package NAME`, build time
/// [`DEFAULT_BUILD_TIME`], build host [`DEFAULT_BUILD_HOST`], source RPM `NAME-VERSION-RELEASE.src.rpm`,
/// zstd payload, files owned by `root:root`, unsigned. Dependency strings are `name`, `name OP version`
/// (`OP` one of `<`, `<=`, `=`, `>=`, `>`; version may be `epoch:version-release`) or a rich
/// dependency in parentheses; they are checked when the package is built.
#[derive(Clone, Debug)]
pub struct RpmSpec {
    name: String,
    version: String,
    release: String,
    epoch: Option<u32>,
    arch: String,
    summary: Option<String>,
    description: Option<String>,
    license: String,
    url: Option<String>,
    vendor: Option<String>,
    packager: Option<String>,
    group: Option<String>,
    source_rpm: Option<String>,
    build_time: u32,
    build_host: String,
    compression: Compression,
    dependencies: Vec<(DependencyKind, String)>,
    entries: Vec<FileEntry>,
    file_capabilities: Vec<(String, String)>,
    scripts: Vec<(ScriptPhase, String)>,
    changelog: Vec<ChangelogEntry>,
    signing_key: Option<TestKey>,
}

impl RpmSpec {
    /// A package `name-version-release` with the defaults listed on [`RpmSpec`].
    pub fn new(name: &str, version: &str, release: &str) -> Self {
        Self {
            name: name.to_string(),
            version: version.to_string(),
            release: release.to_string(),
            epoch: None,
            arch: "noarch".to_string(),
            summary: None,
            description: None,
            license: "MIT".to_string(),
            url: None,
            vendor: None,
            packager: None,
            group: None,
            source_rpm: None,
            build_time: DEFAULT_BUILD_TIME,
            build_host: DEFAULT_BUILD_HOST.to_string(),
            compression: Compression::default(),
            dependencies: Vec::new(),
            entries: Vec::new(),
            file_capabilities: Vec::new(),
            scripts: Vec::new(),
            changelog: Vec::new(),
            signing_key: None,
        }
    }

    /// The package name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The release.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// The epoch, when one was set.
    pub fn declared_epoch(&self) -> Option<u32> {
        self.epoch
    }

    /// The `SOURCERPM` the package carries (default `name-version-release.src.rpm`).
    pub fn source_rpm_name(&self) -> String {
        self.source_rpm
            .clone()
            .unwrap_or_else(|| format!("{}-{}-{}.src.rpm", self.name, self.version, self.release))
    }

    /// The architecture (`noarch` unless set).
    pub fn architecture(&self) -> &str {
        &self.arch
    }

    /// `[epoch:]version-release`, the epoch only when set.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(epoch) => format!("{epoch}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }

    /// `name-[epoch:]version-release.arch`.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr(), self.arch)
    }

    /// The file name the package is written as: `name-version-release.arch.rpm`.
    pub fn file_name(&self) -> String {
        format!("{}-{}-{}.{}.rpm", self.name, self.version, self.release, self.arch)
    }

    /// Sets the epoch (absent unless set).
    pub fn epoch(mut self, epoch: u32) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// Sets the architecture, e.g. `x86_64` (default `noarch`).
    pub fn arch(mut self, arch: &str) -> Self {
        self.arch = arch.to_string();
        self
    }

    /// Sets the one-line summary.
    pub fn summary(mut self, summary: &str) -> Self {
        self.summary = Some(summary.to_string());
        self
    }

    /// Sets the description (defaults to the summary).
    pub fn description(mut self, description: &str) -> Self {
        self.description = Some(description.to_string());
        self
    }

    /// Sets the license (default `MIT`).
    pub fn license(mut self, license: &str) -> Self {
        self.license = license.to_string();
        self
    }

    /// Sets the upstream URL.
    pub fn url(mut self, url: &str) -> Self {
        self.url = Some(url.to_string());
        self
    }

    /// Sets the vendor.
    pub fn vendor(mut self, vendor: &str) -> Self {
        self.vendor = Some(vendor.to_string());
        self
    }

    /// Sets the packager.
    pub fn packager(mut self, packager: &str) -> Self {
        self.packager = Some(packager.to_string());
        self
    }

    /// Sets the (legacy) group tag.
    pub fn group(mut self, group: &str) -> Self {
        self.group = Some(group.to_string());
        self
    }

    /// Sets the source RPM file name (default `name-version-release.src.rpm`).
    pub fn source_rpm(mut self, source_rpm: &str) -> Self {
        self.source_rpm = Some(source_rpm.to_string());
        self
    }

    /// Sets the build time in seconds since the epoch; it is also every file's mtime. It must be in
    /// the past: the `rpm` crate replaces a future build time by "now", which is not reproducible.
    pub fn build_time(mut self, seconds_since_epoch: u32) -> Self {
        self.build_time = seconds_since_epoch;
        self
    }

    /// Sets the build host (default [`DEFAULT_BUILD_HOST`]).
    pub fn build_host(mut self, build_host: &str) -> Self {
        self.build_host = build_host.to_string();
        self
    }

    /// Sets the payload compression (default zstd).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    fn dependency(mut self, kind: DependencyKind, dependency: &str) -> Self {
        self.dependencies.push((kind, dependency.to_string()));
        self
    }

    /// Adds `Requires: dependency` (`name`, `name OP version` or a rich `(...)` dependency).
    pub fn requires(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::Requires, dependency)
    }

    /// Adds `Requires: name operator version`, e.g. `("foo", ">=", "1.0")`.
    pub fn requires_versioned(self, name: &str, operator: &str, version: &str) -> Self {
        self.dependency(DependencyKind::Requires, &format!("{name} {operator} {version}"))
    }

    /// Adds `Requires(pre): dependency`, needed by the pre-install scriptlet.
    pub fn requires_pre_install(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::RequiresPreInstall, dependency)
    }

    /// Adds `Provides: dependency` (the crate adds `name = evr` by itself).
    pub fn provides(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::Provides, dependency)
    }

    /// Adds `Conflicts: dependency`.
    pub fn conflicts(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::Conflicts, dependency)
    }

    /// Adds `Obsoletes: dependency`.
    pub fn obsoletes(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::Obsoletes, dependency)
    }

    /// Adds `Recommends: dependency` (a weak dependency).
    pub fn recommends(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::Recommends, dependency)
    }

    /// Adds `Suggests: dependency`.
    pub fn suggests(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::Suggests, dependency)
    }

    /// Adds `Supplements: dependency`.
    pub fn supplements(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::Supplements, dependency)
    }

    /// Adds `Enhances: dependency`.
    pub fn enhances(self, dependency: &str) -> Self {
        self.dependency(DependencyKind::Enhances, dependency)
    }

    fn script(mut self, phase: ScriptPhase, body: &str) -> Self {
        self.scripts.retain(|(existing, _)| *existing != phase);
        self.scripts.push((phase, body.to_string()));
        self
    }

    /// Sets the `%pre` scriptlet (interpreter `/bin/sh`).
    pub fn pre_install_script(self, body: &str) -> Self {
        self.script(ScriptPhase::PreInstall, body)
    }

    /// Sets the `%post` scriptlet (interpreter `/bin/sh`).
    pub fn post_install_script(self, body: &str) -> Self {
        self.script(ScriptPhase::PostInstall, body)
    }

    /// Sets the `%preun` scriptlet (interpreter `/bin/sh`).
    pub fn pre_uninstall_script(self, body: &str) -> Self {
        self.script(ScriptPhase::PreUninstall, body)
    }

    /// Sets the `%postun` scriptlet (interpreter `/bin/sh`).
    pub fn post_uninstall_script(self, body: &str) -> Self {
        self.script(ScriptPhase::PostUninstall, body)
    }

    /// Sets the `%pretrans` scriptlet (interpreter `/bin/sh`).
    pub fn pre_transaction_script(self, body: &str) -> Self {
        self.script(ScriptPhase::PreTransaction, body)
    }

    /// Sets the `%posttrans` scriptlet (interpreter `/bin/sh`).
    pub fn post_transaction_script(self, body: &str) -> Self {
        self.script(ScriptPhase::PostTransaction, body)
    }

    /// Adds a `%changelog` entry; `author` is `Name <mail> - version-release`, `text` e.g. `- Fix`.
    /// rpm lists entries in the order they are added (newest first by convention).
    pub fn changelog_entry(mut self, timestamp: u32, author: &str, text: &str) -> Self {
        let entry = ChangelogEntry { timestamp, author: author.to_string(), text: text.to_string() };
        self.changelog.push(entry);
        self
    }

    /// Signs the package with a committed test key: an OpenPGP header signature dated the build
    /// time, so the bytes stay reproducible (Ed25519 signatures are deterministic). Unsigned unless set.
    pub fn signed_with(mut self, key: TestKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// The key the package is signed with, if any.
    pub fn signing_key(&self) -> Option<TestKey> {
        self.signing_key
    }

    /// The bytes of the `.rpm` file; the same spec always gives the same bytes.
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        build::package_bytes(self)
    }

    /// Writes the package as `directory/`[`file_name`](Self::file_name) (creating `directory`),
    /// with the file's mtime set to the build time so repository metadata is reproducible too.
    pub fn write_to(&self, directory: &Path) -> anyhow::Result<PathBuf> {
        build::write_package(self, directory)
    }
}
