//! Finding the owners of a few files in `filelists.xml`: file dependencies that primary metadata does
//! not cover (anything outside `/etc`, `*bin/` and a few others) need it, but loading whole filelists
//! into libsolv costs tens of seconds on a large repository. A streaming scan for just the wanted paths
//! takes a fraction of a second.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use common::xml_text::{CharacterBuffer, resolve_reference};
use quick_xml::Reader;
use quick_xml::events::Event;

/// A package that owns one of the wanted files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileOwner {
    pub name: String,
    /// `[E:]V-R` with a zero epoch left out, as libsolv prints it.
    pub evr: String,
    pub arch: String,
    pub path: String,
}

/// Every (package, path) in `filelists` whose path is in `wanted`.
pub fn find_file_owners(filelists: &Path, wanted: &HashSet<String>) -> io::Result<Vec<FileOwner>> {
    let invalid = |message: String| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {message}", filelists.display()))
    };
    let mut source = libsolv::MetadataReader::open(filelists)?;
    let mut reader = Reader::from_reader(&mut source);
    let mut buffer = Vec::with_capacity(4096);
    let mut owners = Vec::new();
    let (mut name, mut arch, mut evr) = (String::new(), String::new(), String::new());
    let mut in_file = false;
    let mut path = String::new();
    loop {
        let event = reader.read_event_into(&mut buffer).map_err(|error| invalid(error.to_string()))?;
        match event {
            Event::Start(element) | Event::Empty(element) => match element.local_name().as_ref() {
                b"package" => {
                    name.clear();
                    arch.clear();
                    for attribute in element.attributes().flatten() {
                        let value = attribute.unescape_value().map_err(|error| invalid(error.to_string()))?;
                        match attribute.key.local_name().as_ref() {
                            b"name" => name = value.into_owned(),
                            b"arch" => arch = value.into_owned(),
                            _ => {}
                        }
                    }
                }
                b"version" => {
                    let (mut epoch, mut version, mut release) = (String::new(), String::new(), String::new());
                    for attribute in element.attributes().flatten() {
                        let value = attribute
                            .unescape_value()
                            .map_err(|error| invalid(error.to_string()))?
                            .into_owned();
                        match attribute.key.local_name().as_ref() {
                            b"epoch" => epoch = value,
                            b"ver" => version = value,
                            b"rel" => release = value,
                            _ => {}
                        }
                    }
                    evr = if epoch.is_empty() || epoch == "0" {
                        format!("{version}-{release}")
                    } else {
                        format!("{epoch}:{version}-{release}")
                    };
                }
                b"file" => {
                    in_file = true;
                    path.clear();
                }
                _ => {}
            },
            Event::Text(text) if in_file => {
                path.push_str(&text.decode().map_err(|error| invalid(error.to_string()))?);
            }
            // quick-xml hands `&amp;` and `&#38;` over apart from the text around them.
            Event::GeneralRef(reference) if in_file => {
                let mut buffer = CharacterBuffer::default();
                path.push_str(resolve_reference(&reference, &mut buffer).map_err(invalid)?);
            }
            Event::End(_) if in_file => {
                in_file = false;
                if wanted.contains(&path) {
                    owners.push(FileOwner {
                        name: name.clone(),
                        evr: evr.clone(),
                        arch: arch.clone(),
                        path: std::mem::take(&mut path),
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    source.finish().map_err(|error| invalid(format!("decompressing: {error}")))?;
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    const FILELISTS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="2">
<package pkgid="aa" name="data" arch="noarch">
  <version epoch="0" ver="1.0" rel="1"/>
  <file>/usr/share/data/table.txt</file>
  <file type="dir">/usr/share/data</file>
</package>
<package pkgid="bb" name="tools" arch="x86_64">
  <version epoch="2" ver="3" rel="4.fc41"/>
  <file>/usr/libexec/tools/helper</file>
  <file>/usr/share/data/table.txt</file>
  <file>/usr/share/data/a &amp; b</file>
</package>
</filelists>
"#;

    #[test]
    fn finds_only_the_wanted_paths_in_every_compression() {
        let directory = tempfile::tempdir().unwrap();
        let wanted: HashSet<String> =
            ["/usr/share/data/table.txt", "/usr/libexec/tools/helper", "/usr/share/data/a & b"]
                .map(String::from)
                .into();
        let plain = directory.path().join("filelists.xml");
        std::fs::write(&plain, FILELISTS).unwrap();
        let gz = directory.path().join("filelists.xml.gz");
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::default());
        encoder.write_all(FILELISTS.as_bytes()).unwrap();
        encoder.finish().unwrap();
        let zst = directory.path().join("filelists.xml.zst");
        std::fs::write(&zst, zstd::encode_all(FILELISTS.as_bytes(), 3).unwrap()).unwrap();
        for path in [plain, gz, zst] {
            let owners = find_file_owners(&path, &wanted).unwrap();
            let found: Vec<(&str, &str, &str)> = owners
                .iter()
                .map(|owner| (owner.name.as_str(), owner.evr.as_str(), owner.path.as_str()))
                .collect();
            assert_eq!(
                found,
                [
                    ("data", "1.0-1", "/usr/share/data/table.txt"),
                    ("tools", "2:3-4.fc41", "/usr/libexec/tools/helper"),
                    ("tools", "2:3-4.fc41", "/usr/share/data/table.txt"),
                    ("tools", "2:3-4.fc41", "/usr/share/data/a & b"),
                ],
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn truncated_input_is_an_error_naming_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("filelists.xml.gz");
        std::fs::write(&path, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        let error = find_file_owners(&path, &HashSet::new()).unwrap_err();
        assert!(error.to_string().contains("filelists.xml.gz"), "{error}");
    }
}
