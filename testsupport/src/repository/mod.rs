//! [`TestRepository`]: an rpm-md repository on disk, made from [`RpmSpec`]s with `createrepo_c`.
//!
//! ```no_run
//! use arbor_testsupport::{RpmSpec, TestRepository};
//! # fn main() -> anyhow::Result<()> {
//! let mut repository = TestRepository::new()?
//!     .add(RpmSpec::new("app", "2.0", "1").requires("libfoo"))?
//!     .add(RpmSpec::new("libfoo", "1.0", "1"))?
//!     .finish()?;
//! let url = repository.url(); // file:///tmp/.../
//! // Later, a newer package appears:
//! repository.add_package(&RpmSpec::new("app", "2.1", "1"))?;
//! repository.write_metadata()?;
//! # Ok(()) }
//! ```
//!
//! Metadata is reproducible: `createrepo_c --no-database --revision R --set-timestamp-to-revision`
//! with `R` starting at [`FIRST_REVISION`] and growing by one per [`TestRepository::write_metadata`],
//! package files carry their build time as mtime, and the `updateinfo` record's timestamp is set to
//! `R` too. Metadata file names include their checksums (the realistic layout) unless
//! [`TestRepository::simple_metadata_filenames`] is set.

mod updateinfo;

pub use updateinfo::{Advisory, AdvisoryKind, AdvisoryPackage, updateinfo_xml};

use crate::rpm_builder::RpmSpec;
use crate::tools::run_tool;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The revision (and metadata timestamp) of the first metadata written: the default package
/// build time, so a fresh repository looks like it was composed right after its packages were built.
pub const FIRST_REVISION: u64 = crate::rpm_builder::DEFAULT_BUILD_TIME as u64;

/// Sub-directory the packages are written to, as in Fedora's repositories.
pub const PACKAGES_DIRECTORY: &str = "Packages";

/// A package that was added to the repository.
#[derive(Clone, Debug)]
struct AddedPackage {
    spec: RpmSpec,
    path: PathBuf,
}

/// An rpm-md repository under construction or finished; a temporary one is deleted on drop.
#[derive(Debug)]
pub struct TestRepository {
    root: PathBuf,
    _temporary_directory: Option<TempDir>,
    packages: Vec<AddedPackage>,
    advisories: Vec<Advisory>,
    next_revision: u64,
    simple_metadata_filenames: bool,
}

impl TestRepository {
    /// An empty repository in a new temporary directory (removed when the value is dropped).
    pub fn new() -> Result<Self> {
        let directory = tempfile::Builder::new()
            .prefix("arbor-test-repository-")
            .tempdir()
            .context("creating a temporary directory for a test repository")?;
        let mut repository = Self::at(directory.path())?;
        repository._temporary_directory = Some(directory);
        Ok(repository)
    }

    /// An empty repository in `path` (created if missing, never deleted by this value).
    pub fn at(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path.join(PACKAGES_DIRECTORY))
            .with_context(|| format!("creating repository directory {}", path.display()))?;
        let root = path.canonicalize().with_context(|| format!("resolving {}", path.display()))?;
        Ok(Self {
            root,
            _temporary_directory: None,
            packages: Vec::new(),
            advisories: Vec::new(),
            next_revision: FIRST_REVISION,
            simple_metadata_filenames: false,
        })
    }

    /// Names metadata files `primary.xml.gz` etc. instead of `<sha256>-primary.xml.gz`.
    pub fn simple_metadata_filenames(mut self, simple: bool) -> Self {
        self.simple_metadata_filenames = simple;
        self
    }

    /// Builds `spec` into `Packages/` (chaining form of [`add_package`](Self::add_package)).
    #[allow(clippy::should_implement_trait, reason = "fallible builder step, not the `+` operator")]
    pub fn add(mut self, spec: RpmSpec) -> Result<Self> {
        self.add_package(&spec)?;
        Ok(self)
    }

    /// Adds an advisory to `updateinfo.xml` (chaining form of [`add_advisory`](Self::add_advisory)).
    pub fn advisory(mut self, advisory: Advisory) -> Self {
        self.add_advisory(advisory);
        self
    }

    /// Writes the repository metadata and returns the finished repository.
    pub fn finish(mut self) -> Result<Self> {
        self.write_metadata()?;
        Ok(self)
    }

    /// Builds `spec` into `Packages/` and returns the package's path. The metadata only lists it
    /// after the next [`write_metadata`](Self::write_metadata).
    pub fn add_package(&mut self, spec: &RpmSpec) -> Result<PathBuf> {
        if self.packages.iter().any(|package| package.spec.file_name() == spec.file_name()) {
            bail!("repository {} already has package {}", self.root.display(), spec.file_name());
        }
        let path = spec.write_to(&self.packages_directory())?;
        self.packages.push(AddedPackage { spec: spec.clone(), path: path.clone() });
        Ok(path)
    }

    /// Deletes every package named `name` from `Packages/`; returns how many were removed.
    pub fn remove_packages_named(&mut self, name: &str) -> Result<usize> {
        let (removed, kept): (Vec<_>, Vec<_>) =
            self.packages.drain(..).partition(|package| package.spec.name() == name);
        self.packages = kept;
        for package in &removed {
            std::fs::remove_file(&package.path)
                .with_context(|| format!("removing {}", package.path.display()))?;
        }
        Ok(removed.len())
    }

    /// Adds an advisory; `updateinfo.xml` is written by the next [`write_metadata`](Self::write_metadata).
    pub fn add_advisory(&mut self, advisory: Advisory) {
        self.advisories.push(advisory);
    }

    /// (Re)writes `repodata/` for the current packages and advisories with `createrepo_c` (and
    /// `modifyrepo_c` for advisories). Each call uses the next revision, so clients see a change.
    pub fn write_metadata(&mut self) -> Result<()> {
        let revision = self.next_revision;
        let revision_text = revision.to_string();
        let mut arguments = vec!["--quiet", "--no-database", "--revision", revision_text.as_str()];
        arguments.push("--set-timestamp-to-revision");
        if self.simple_metadata_filenames {
            arguments.push("--simple-md-filenames");
        }
        let root = self.root.to_string_lossy().into_owned();
        arguments.push(&root);
        run_tool("createrepo_c", &arguments)
            .with_context(|| format!("writing metadata of repository {root}"))?;
        if !self.advisories.is_empty() {
            updateinfo::add_to_repository(
                &self.root,
                &self.advisories,
                revision,
                self.simple_metadata_filenames,
            )
            .with_context(|| format!("adding updateinfo.xml to repository {root}"))?;
        }
        self.next_revision += 1;
        Ok(())
    }

    /// The revision the last [`write_metadata`](Self::write_metadata) used (`None` before the first).
    pub fn revision(&self) -> Option<u64> {
        (self.next_revision > FIRST_REVISION).then(|| self.next_revision - 1)
    }

    /// The repository's root directory (the one holding `repodata/`).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The repository's root as a `file:///.../` URL (with a trailing slash).
    pub fn url(&self) -> String {
        format!("file://{}/", percent_encode_path(&self.root.to_string_lossy()))
    }

    /// `repodata/repomd.xml`.
    pub fn repomd_path(&self) -> PathBuf {
        self.root.join("repodata").join("repomd.xml")
    }

    /// The `Packages/` directory the packages are written to.
    pub fn packages_directory(&self) -> PathBuf {
        self.root.join(PACKAGES_DIRECTORY)
    }

    /// The paths of all packages, in the order they were added.
    pub fn package_paths(&self) -> Vec<PathBuf> {
        self.packages.iter().map(|package| package.path.clone()).collect()
    }

    /// The path of the only package named `name`; an error if there is none or several.
    pub fn rpm_path(&self, name: &str) -> Result<PathBuf> {
        let matching: Vec<&AddedPackage> =
            self.packages.iter().filter(|package| package.spec.name() == name).collect();
        match matching.as_slice() {
            [package] => Ok(package.path.clone()),
            [] => bail!("repository {} has no package named {name}", self.root.display()),
            several => bail!(
                "repository {} has {} packages named {name} ({}); use rpm_path_of",
                self.root.display(),
                several.len(),
                several.iter().map(|package| package.spec.nevra()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// The path `spec` was (or would be) written to.
    pub fn rpm_path_of(&self, spec: &RpmSpec) -> PathBuf {
        self.packages_directory().join(spec.file_name())
    }

    /// The path of the metadata file of type `metadata_type` (`primary`, `filelists`, `other`,
    /// `updateinfo`), read from `repomd.xml`.
    pub fn metadata_path(&self, metadata_type: &str) -> Result<PathBuf> {
        let repomd_path = self.repomd_path();
        let repomd = std::fs::read_to_string(&repomd_path)
            .with_context(|| format!("reading {}", repomd_path.display()))?;
        let start = repomd
            .find(&format!("<data type=\"{metadata_type}\">"))
            .with_context(|| format!("{} has no `{metadata_type}` record", repomd_path.display()))?;
        let record = &repomd[start..];
        let record = &record[..record.find("</data>").unwrap_or(record.len())];
        let location = record
            .split("<location href=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .with_context(|| format!("{}: `{metadata_type}` has no location", repomd_path.display()))?;
        Ok(self.root.join(location))
    }
}

/// Percent-encodes the bytes of a path that are not allowed verbatim in a URL path.
fn percent_encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~+,=@:".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
