//! Test fixtures: rpm-md `primary.xml`, `filelists.xml` and `updateinfo.xml` written as text
//! from a small package description, and helpers to load them into a pool.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use libsolv::{Pool, RepoHandle, SolvableId};

mod fixture;
mod xml;

// Each test binary uses its own subset of the helpers.
#[allow(unused_imports)]
pub use fixture::{FixturePackage, package};
#[allow(unused_imports)]
pub use xml::{filelists_xml, primary_xml, updateinfo_xml};

/// Architecture every test pool is created for.
pub const ARCH: &str = "x86_64";

/// zlib compression level of gzip fixtures.
const GZIP_LEVEL: u32 = 6;
/// xz preset of xz fixtures.
const XZ_PRESET: u32 = 6;
/// zstd level of zstd fixtures.
const ZSTD_LEVEL: i32 = 3;

/// `bytes` compressed as the file suffix `extension` says (`gz`, `xz`, `zst`), else unchanged.
pub fn compress(extension: &str, bytes: &[u8]) -> Vec<u8> {
    match extension {
        "gz" => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        }
        "xz" => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), XZ_PRESET);
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        }
        "zst" => zstd::encode_all(bytes, ZSTD_LEVEL).unwrap(),
        _ => bytes.to_vec(),
    }
}

/// Writes `text` to `path`, compressed as its suffix says.
pub fn write_compressed(path: &Path, text: &str) {
    let extension = path.extension().and_then(|extension| extension.to_str()).unwrap_or_default();
    std::fs::write(path, compress(extension, text.as_bytes())).unwrap();
}

/// A repository written to a temporary directory.
pub struct FixtureRepository {
    pub directory: tempfile::TempDir,
    pub primary: PathBuf,
    pub filelists: PathBuf,
}

impl FixtureRepository {
    pub fn write(packages: &[FixturePackage]) -> FixtureRepository {
        let directory = tempfile::tempdir().unwrap();
        let primary = directory.path().join("primary.xml");
        let filelists = directory.path().join("filelists.xml");
        std::fs::write(&primary, primary_xml(packages)).unwrap();
        std::fs::write(&filelists, filelists_xml(packages)).unwrap();
        FixtureRepository { directory, primary, filelists }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// Loads primary and filelists into `pool` under `name`.
    pub fn load(&self, pool: &mut Pool, name: &str, priority: i32) -> RepoHandle {
        pool.add_rpmmd_repo(name, priority, &self.primary, Some(&self.filelists), None).unwrap()
    }
}

/// A prepared pool holding one repository `main` of `packages`, and the repository's files.
pub fn pool_with(packages: &[FixturePackage]) -> (Pool, FixtureRepository) {
    let repository = FixtureRepository::write(packages);
    let mut pool = Pool::new(ARCH).unwrap();
    repository.load(&mut pool, "main", 0);
    pool.prepare();
    (pool, repository)
}

/// The NEVRAs of some solvables.
pub fn nevras(pool: &Pool, ids: &[SolvableId]) -> Vec<String> {
    ids.iter().map(|id| pool.package(*id).nevra()).collect()
}

/// The sorted NEVRAs of some solvables.
pub fn sorted_nevras(pool: &Pool, ids: &[SolvableId]) -> Vec<String> {
    let mut names = nevras(pool, ids);
    names.sort();
    names
}
