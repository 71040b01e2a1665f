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
    let nevras = SortedNevras::new(resolution);
    for (nevra, checksum) in nevras.iter() {
        record(nevra.as_bytes());
        record(checksum.as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Every package's NEVRA and checksum, sorted (by NEVRA, then checksum). The NEVRAs share one buffer,
/// and each entry carries the first bytes of its NEVRA, so that most comparisons of the sort touch
/// neither the heap nor the buffer (an unchanged compose hashes 12,884 packages in the synthetic
/// benchmark).
struct SortedNevras<'a> {
    text: String,
    entries: Vec<NevraEntry<'a>>,
}

struct NevraEntry<'a> {
    /// The first 8 bytes of the NEVRA as a big-endian number, zeros after a shorter one: numbers
    /// compare as the bytes do.
    prefix: u64,
    start: usize,
    end: usize,
    checksum: &'a str,
}

impl<'a> SortedNevras<'a> {
    fn new(resolution: &'a Resolution) -> SortedNevras<'a> {
        let mut text = String::with_capacity(resolution.packages.len() * ESTIMATED_NEVRA_BYTES);
        let mut entries = Vec::with_capacity(resolution.packages.len());
        for package in &resolution.packages {
            let start = text.len();
            package.push_nevra(&mut text);
            let mut prefix = [0; 8];
            let nevra = &text.as_bytes()[start..];
            let length = nevra.len().min(prefix.len());
            prefix[..length].copy_from_slice(&nevra[..length]);
            entries.push(NevraEntry {
                prefix: u64::from_be_bytes(prefix),
                start,
                end: text.len(),
                checksum: package.checksum.as_deref().unwrap_or_default(),
            });
        }
        entries.sort_unstable_by(|left, right| {
            left.prefix
                .cmp(&right.prefix)
                .then_with(|| text[left.start..left.end].cmp(&text[right.start..right.end]))
                .then_with(|| left.checksum.cmp(right.checksum))
        });
        SortedNevras { text, entries }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &'a str)> + '_ {
        self.entries.iter().map(|entry| (&self.text[entry.start..entry.end], entry.checksum))
    }
}

/// A NEVRA's length, about: sizes the buffer in one go.
const ESTIMATED_NEVRA_BYTES: usize = 48;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::ResolvedPackage;

    #[test]
    fn nevras_sort_as_their_strings_do() {
        let package = |name: &str, version: &str, checksum: Option<&str>| ResolvedPackage {
            name: name.into(),
            epoch: 0,
            version: version.into(),
            release: "1".into(),
            arch: "x86_64".into(),
            repo: "r".into(),
            url: String::new(),
            location: String::new(),
            checksum: checksum.map(str::to_string),
            download_size: 0,
            install_size: 0,
            sourcerpm: None,
            build_time: 0,
            license: None,
        };
        // Shared and short prefixes, a name that is a prefix of another, non-ASCII, equal NEVRAs
        // told apart by their checksums.
        let packages = vec![
            package("libfoo-devel", "1", Some("sha256:b")),
            package("libfoo", "10", None),
            package("libfoo", "1", Some("sha256:b")),
            package("libfoo", "1", Some("sha256:a")),
            package("a", "1", None),
            package("é", "1", None),
            package("libfo", "2", None),
            package("libfoo", "1", None),
        ];
        let resolution =
            Resolution { arch: "x86_64".into(), packages, repositories: Vec::new(), warnings: Vec::new() };
        let mut expected: Vec<(String, &str)> = resolution
            .packages
            .iter()
            .map(|package| (package.nevra(), package.checksum.as_deref().unwrap_or_default()))
            .collect();
        expected.sort_unstable();
        let sorted = SortedNevras::new(&resolution);
        let sorted: Vec<(String, &str)> =
            sorted.iter().map(|(nevra, checksum)| (nevra.to_string(), checksum)).collect();
        assert_eq!(sorted, expected);
    }
}
