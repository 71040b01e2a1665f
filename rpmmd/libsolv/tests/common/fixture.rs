//! [`FixturePackage`]: the description of one package of a test repository.

use std::fmt::Write as _;

/// A package of a fixture repository. Dependencies are written as in a spec file:
/// `name`, `name >= 1.0`, `name = 1:2.0-3`, or a rich dependency `(a or b)`.
#[derive(Debug, Clone)]
pub struct FixturePackage {
    pub name: String,
    pub epoch: u64,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub provides: Vec<String>,
    pub requires: Vec<String>,
    /// `Requires(pre)`: needed while the package installs.
    pub requires_pre: Vec<String>,
    pub conflicts: Vec<String>,
    pub obsoletes: Vec<String>,
    pub recommends: Vec<String>,
    /// Files listed in primary.xml (and in filelists.xml).
    pub primary_files: Vec<String>,
    /// Files listed only in filelists.xml.
    pub filelist_files: Vec<String>,
    pub license: String,
    pub download_size: u64,
    pub install_size: u64,
    pub build_time: u64,
}

/// A package `name-version-release.arch`.
pub fn package(name: &str, version: &str, release: &str, arch: &str) -> FixturePackage {
    FixturePackage {
        name: name.into(),
        epoch: 0,
        version: version.into(),
        release: release.into(),
        arch: arch.into(),
        provides: Vec::new(),
        requires: Vec::new(),
        requires_pre: Vec::new(),
        conflicts: Vec::new(),
        obsoletes: Vec::new(),
        recommends: Vec::new(),
        primary_files: Vec::new(),
        filelist_files: Vec::new(),
        license: "MIT".into(),
        download_size: 1000,
        install_size: 4000,
        build_time: 1_700_000_000,
    }
}

impl FixturePackage {
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }
    pub fn provides(mut self, dependency: &str) -> Self {
        self.provides.push(dependency.into());
        self
    }
    pub fn requires(mut self, dependency: &str) -> Self {
        self.requires.push(dependency.into());
        self
    }
    pub fn requires_pre(mut self, dependency: &str) -> Self {
        self.requires_pre.push(dependency.into());
        self
    }
    pub fn conflicts(mut self, dependency: &str) -> Self {
        self.conflicts.push(dependency.into());
        self
    }
    pub fn obsoletes(mut self, dependency: &str) -> Self {
        self.obsoletes.push(dependency.into());
        self
    }
    pub fn recommends(mut self, dependency: &str) -> Self {
        self.recommends.push(dependency.into());
        self
    }
    pub fn file(mut self, path: &str) -> Self {
        self.primary_files.push(path.into());
        self
    }
    pub fn filelist_file(mut self, path: &str) -> Self {
        self.filelist_files.push(path.into());
        self
    }

    pub fn evr(&self) -> String {
        let epoch = if self.epoch == 0 { String::new() } else { format!("{}:", self.epoch) };
        format!("{epoch}{}-{}", self.version, self.release)
    }

    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr(), self.arch)
    }

    pub fn location(&self) -> String {
        let first = self.name.chars().next().unwrap_or('x');
        format!("Packages/{first}/{}-{}-{}.{}.rpm", self.name, self.version, self.release, self.arch)
    }

    pub fn sourcerpm(&self) -> String {
        format!("{}-{}-{}.src.rpm", self.name, self.version, self.release)
    }

    /// A made-up but unique sha256-length hex digest (it is also the pkgid joining filelists).
    pub fn checksum(&self) -> String {
        let mut hex = String::new();
        for seed in 0u64..4 {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
            for byte in self.nevra().bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
            write!(hex, "{hash:016x}").unwrap();
        }
        hex
    }
}
