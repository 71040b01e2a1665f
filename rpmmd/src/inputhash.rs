//! The input hash of a compose: when it equals the previous build's, composing again would produce the
//! same tree, so the compose stops early ("no changes"). Computed after depsolving, before downloading.
//!
//! SHA-256 over length-prefixed records, in this order:
//! 1. the format tag `arbor-inputhash-v1` and the architecture;
//! 2. the flattened treefile as compact JSON, keys in table order, without `metadata` (free-form notes
//!    that do not change the tree);
//! 3. every file the treefile names (postprocess-script, add-files sources, check-passwd/-groups files),
//!    sorted by name: the name and the SHA-256 of its contents;
//! 4. every resolved package, sorted by NEVRA: the NEVRA and its checksum from the repository metadata.
//!
//! Repository metadata snapshots themselves (repomd.xml checksums) are deliberately not included: a
//! repository that gained unrelated packages resolves to the same set and must not force a rebuild.
//! (rpm-ostree makes the same choice.)

use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};
use treefiles::Flattened;

use crate::resolve::Resolution;

const FORMAT_TAG: &str = "arbor-inputhash-v1";

/// Computes the input hash; `read_file` reads files named by the treefile (relative to its directory).
pub fn input_hash(
    flattened: &Flattened,
    resolution: &Resolution,
    read_file: impl Fn(&Path) -> io::Result<Vec<u8>>,
) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut record = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    record(FORMAT_TAG.as_bytes());
    record(resolution.arch.as_bytes());
    let mut treefile = flattened.treefile.to_json();
    treefile.remove("metadata");
    record(serde_json::Value::Object(treefile).to_string().as_bytes());
    let mut files: Vec<&str> =
        flattened.treefile.referenced_files().into_iter().map(|(_, name)| name).collect();
    files.sort_unstable();
    files.dedup();
    for name in files {
        let contents = read_file(&flattened.directory.join(name)).map_err(|error| {
            io::Error::new(error.kind(), format!("reading {name} for the input hash: {error}"))
        })?;
        record(name.as_bytes());
        record(hex::encode(Sha256::digest(&contents)).as_bytes());
    }
    let mut packages: Vec<(String, &str)> = resolution
        .packages
        .iter()
        .map(|package| (package.nevra(), package.checksum.as_deref().unwrap_or_default()))
        .collect();
    packages.sort_unstable();
    for (nevra, checksum) in packages {
        record(nevra.as_bytes());
        record(checksum.as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}
