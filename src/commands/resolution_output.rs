//! What `arbor compose resolve` prints: the package table or the JSON document, rendered straight into
//! one buffered writer (a resolve prints a line per package: 12,884 in the synthetic benchmark).

use std::io::{self, Write};

use common::human::human_bytes;
use rpmmd::resolve::{RepositorySnapshot, Resolution, ResolvedPackage};
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// Writes one line per package (NEVRA padded to the widest, then its repository) and the summary line.
pub fn write_table(output: &mut impl Write, resolution: &Resolution, inputhash: &str) -> io::Result<()> {
    // One line buffer for every package. The width counts bytes, the padding characters (as
    // `{:width$}` pads).
    let mut line = String::new();
    let mut width = 0;
    for package in &resolution.packages {
        line.clear();
        package.push_nevra(&mut line);
        width = width.max(line.len());
    }
    for package in &resolution.packages {
        line.clear();
        package.push_nevra(&mut line);
        let padding = width.saturating_sub(line.chars().count());
        line.extend(std::iter::repeat_n(' ', padding + 2));
        line.push_str(&package.repo);
        line.push('\n');
        output.write_all(line.as_bytes())?;
    }
    let download: u64 = resolution.packages.iter().map(|package| package.download_size).sum();
    let installed: u64 = resolution.packages.iter().map(|package| package.install_size).sum();
    writeln!(
        output,
        "{} packages ({} to download, {} installed), inputhash {inputhash}",
        resolution.packages.len(),
        human_bytes(download),
        human_bytes(installed)
    )
}

/// Writes the JSON document (pretty, keys in alphabetical order, a newline at the end).
pub fn write_json(output: &mut impl Write, resolution: &Resolution, inputhash: &str) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *output, &Document { resolution, inputhash })?;
    output.write_all(b"\n")
}

/// The document of `--json`. Its keys, and those of every package and repository, are written in
/// alphabetical order: the order of the `serde_json::Value` maps this document was first rendered
/// from, kept so the output stays byte for byte the same (a test compares both renderings).
struct Document<'a> {
    resolution: &'a Resolution,
    inputhash: &'a str,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let resolution = self.resolution;
        let mut document = serializer.serialize_struct("Document", 5)?;
        document.serialize_field("arch", &resolution.arch)?;
        document.serialize_field("inputhash", self.inputhash)?;
        document.serialize_field("packages", &Sequence(&resolution.packages, Package))?;
        document.serialize_field("repositories", &Sequence(&resolution.repositories, Repository))?;
        document.serialize_field("warnings", &resolution.warnings)?;
        document.end()
    }
}

/// A slice whose items are serialized through the wrapper `wrap` makes.
struct Sequence<'a, T, W>(&'a [T], fn(&'a T) -> W);

impl<'a, T, W: Serialize> Serialize for Sequence<'a, T, W> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(self.1))
    }
}

struct Package<'a>(&'a ResolvedPackage);

impl Serialize for Package<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ResolvedPackage {
            name,
            epoch,
            version,
            release,
            arch,
            repo,
            url,
            location,
            checksum,
            download_size,
            install_size,
            sourcerpm,
            build_time,
            license,
        } = self.0;
        let mut package = serializer.serialize_struct("ResolvedPackage", 14)?;
        package.serialize_field("arch", arch)?;
        package.serialize_field("build_time", build_time)?;
        package.serialize_field("checksum", checksum)?;
        package.serialize_field("download_size", download_size)?;
        package.serialize_field("epoch", epoch)?;
        package.serialize_field("install_size", install_size)?;
        package.serialize_field("license", license)?;
        package.serialize_field("location", location)?;
        package.serialize_field("name", name)?;
        package.serialize_field("release", release)?;
        package.serialize_field("repo", repo)?;
        package.serialize_field("sourcerpm", sourcerpm)?;
        package.serialize_field("url", url)?;
        package.serialize_field("version", version)?;
        package.end()
    }
}

struct Repository<'a>(&'a RepositorySnapshot);

impl Serialize for Repository<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let RepositorySnapshot { id, repomd_checksum, timestamp } = self.0;
        let mut repository = serializer.serialize_struct("RepositorySnapshot", 3)?;
        repository.serialize_field("id", id)?;
        repository.serialize_field("repomd_checksum", repomd_checksum)?;
        repository.serialize_field("timestamp", timestamp)?;
        repository.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolution() -> Resolution {
        let package = |name: &str, epoch: u64, license: Option<&str>| ResolvedPackage {
            name: name.into(),
            epoch,
            version: "1.0".into(),
            release: "1.fc41".into(),
            arch: "x86_64".into(),
            repo: "fedora".into(),
            url: format!("file:///srv/repo/Packages/{name}.rpm"),
            location: format!("Packages/{name}.rpm"),
            checksum: license.map(|_| "sha256:00ff".to_string()),
            download_size: 1234,
            install_size: 56789,
            sourcerpm: Some(format!("{name}-1.0-1.fc41.src.rpm")),
            build_time: 1_700_000_000,
            license: license.map(str::to_string),
        };
        Resolution {
            arch: "x86_64".into(),
            packages: vec![
                package("bash", 0, Some("GPL-3.0-or-later")),
                package("zoé-\"quoted\"", 2, None),
                package("a", 0, Some("MIT")),
            ],
            repositories: vec![RepositorySnapshot {
                id: "fedora".into(),
                repomd_checksum: "sha256:abcd".into(),
                timestamp: Some(1_700_000_001),
            }],
            warnings: vec!["locked package ghost 1-1 is not in any repository".into()],
        }
    }

    #[test]
    fn json_is_byte_for_byte_the_value_rendering() {
        let resolution = resolution();
        let mut written = Vec::new();
        write_json(&mut written, &resolution, "c0ffee").unwrap();
        // How the document was rendered before it was written directly.
        let value = serde_json::json!({
            "arch": resolution.arch,
            "inputhash": "c0ffee",
            "packages": resolution.packages,
            "repositories": resolution.repositories,
            "warnings": resolution.warnings,
        });
        let expected = format!("{}\n", serde_json::to_string_pretty(&value).unwrap());
        assert_eq!(String::from_utf8(written).unwrap(), expected);
        let empty =
            Resolution { packages: Vec::new(), repositories: Vec::new(), warnings: Vec::new(), ..resolution };
        let mut written = Vec::new();
        write_json(&mut written, &empty, "c0ffee").unwrap();
        let value = serde_json::json!({
            "arch": "x86_64", "inputhash": "c0ffee", "packages": [], "repositories": [], "warnings": [],
        });
        assert_eq!(
            String::from_utf8(written).unwrap(),
            format!("{}\n", serde_json::to_string_pretty(&value).unwrap())
        );
    }

    #[test]
    fn table_pads_names_to_the_widest() {
        let mut written = Vec::new();
        write_table(&mut written, &resolution(), "c0ffee").unwrap();
        let width = "zoé-\"quoted\"-2:1.0-1.fc41.x86_64".len();
        let mut expected = String::new();
        for nevra in ["bash-1.0-1.fc41.x86_64", "zoé-\"quoted\"-2:1.0-1.fc41.x86_64", "a-1.0-1.fc41.x86_64"]
        {
            expected.push_str(&format!("{nevra:width$}  fedora\n"));
        }
        expected.push_str("3 packages (3.6 KiB to download, 166.4 KiB installed), inputhash c0ffee\n");
        assert_eq!(String::from_utf8(written).unwrap(), expected);
    }
}
