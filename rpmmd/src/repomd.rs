//! `repodata/repomd.xml`: where a repository's metadata files are and their checksums.

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::checksum::Checksum;

/// One metadata file (`primary`, `filelists`, `updateinfo`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepomdEntry {
    /// Relative to the repository base URL, e.g. `repodata/<hash>-primary.xml.gz`.
    pub location: String,
    pub checksum: Checksum,
    pub size: Option<u64>,
    pub timestamp: Option<u64>,
}

/// A parsed repomd.xml.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Repomd {
    pub revision: Option<String>,
    pub entries: BTreeMap<String, RepomdEntry>,
}

impl Repomd {
    /// The newest timestamp of any metadata file: when the repository was last generated.
    pub fn timestamp(&self) -> Option<u64> {
        self.entries.values().filter_map(|entry| entry.timestamp).max()
    }

    pub fn entry(&self, kind: &str) -> Option<&RepomdEntry> {
        self.entries.get(kind)
    }

    /// Parses repomd.xml. Every `data` element must have a location and a valid checksum.
    pub fn parse(text: &str) -> Result<Repomd, String> {
        let mut reader = Reader::from_str(text);
        let mut repomd = Repomd::default();
        let mut saw_root = false;
        // The `data` element being read: (type, location, checksum (type, hex), size, timestamp).
        let mut current: Option<PartialEntry> = None;
        let mut text_target: Option<&'static str> = None;
        let mut checksum_type = String::new();
        loop {
            let event = reader
                .read_event()
                .map_err(|error| format!("at byte {}: {error}", reader.buffer_position()))?;
            match event {
                Event::Start(element) | Event::Empty(element) => {
                    let name = element.local_name();
                    let attribute = |wanted: &[u8]| -> Result<Option<String>, String> {
                        for attribute in element.attributes() {
                            let attribute = attribute.map_err(|error| error.to_string())?;
                            if attribute.key.local_name().as_ref() == wanted {
                                let value = attribute.unescape_value().map_err(|error| error.to_string())?;
                                return Ok(Some(value.into_owned()));
                            }
                        }
                        Ok(None)
                    };
                    match name.as_ref() {
                        b"repomd" => saw_root = true,
                        b"data" => {
                            let kind = attribute(b"type")?.ok_or("a <data> element without type")?;
                            current = Some(PartialEntry { kind, ..PartialEntry::default() });
                        }
                        b"location" => {
                            if let Some(entry) = current.as_mut() {
                                entry.location = attribute(b"href")?;
                            }
                        }
                        b"checksum" => {
                            checksum_type = attribute(b"type")?.unwrap_or_default();
                            text_target = Some("checksum");
                        }
                        b"size" => text_target = Some("size"),
                        b"timestamp" => text_target = Some("timestamp"),
                        b"revision" => text_target = Some("revision"),
                        _ => text_target = None,
                    }
                }
                Event::Text(content) => {
                    let value = content.decode().map_err(|error| error.to_string())?.trim().to_string();
                    match (text_target, current.as_mut()) {
                        (Some("revision"), None) => repomd.revision = Some(value),
                        (Some("checksum"), Some(entry)) => {
                            entry.checksum = Some((checksum_type.clone(), value))
                        }
                        (Some("size"), Some(entry)) => entry.size = value.parse().ok(),
                        (Some("timestamp"), Some(entry)) => entry.timestamp = parse_timestamp(&value),
                        _ => {}
                    }
                }
                Event::End(element) => {
                    text_target = None;
                    if element.local_name().as_ref() == b"data"
                        && let Some(entry) = current.take()
                    {
                        let kind = entry.kind.clone();
                        repomd.entries.insert(kind, entry.finish()?);
                    }
                }
                Event::Eof => {
                    if let Some(entry) = current {
                        return Err(format!("truncated: <data type=\"{}\"> is not closed", entry.kind));
                    }
                    break;
                }
                _ => {}
            }
        }
        if !saw_root {
            return Err("not a repomd.xml document (no <repomd> element)".into());
        }
        if !repomd.entries.contains_key("primary") {
            return Err("repomd.xml lists no primary metadata".into());
        }
        Ok(repomd)
    }
}

/// createrepo_c writes integer seconds; some tools write fractional seconds.
fn parse_timestamp(text: &str) -> Option<u64> {
    text.parse::<u64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().filter(|value| *value >= 0.0).map(|value| value as u64))
}

#[derive(Default)]
struct PartialEntry {
    kind: String,
    location: Option<String>,
    checksum: Option<(String, String)>,
    size: Option<u64>,
    timestamp: Option<u64>,
}

impl PartialEntry {
    fn finish(self) -> Result<RepomdEntry, String> {
        let location = self.location.ok_or_else(|| format!("{} has no location", self.kind))?;
        if location.starts_with('/') || location.split('/').any(|part| part == "..") {
            return Err(format!("{} location \"{location}\" leaves the repository", self.kind));
        }
        let (algorithm, hex) = self.checksum.ok_or_else(|| format!("{} has no checksum", self.kind))?;
        let checksum = Checksum::new(&algorithm, &hex).map_err(|error| format!("{}: {error}", self.kind))?;
        Ok(RepomdEntry { location, checksum, size: self.size, timestamp: self.timestamp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPOMD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1700000000</revision>
  <data type="primary">
    <checksum type="sha256">e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855</checksum>
    <open-checksum type="sha256">0000000000000000000000000000000000000000000000000000000000000000</open-checksum>
    <location href="repodata/e3b0-primary.xml.gz"/>
    <timestamp>1700000001</timestamp>
    <size>20</size>
  </data>
  <data type="filelists">
    <checksum type="sha256">e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855</checksum>
    <location href="repodata/e3b0-filelists.xml.gz"/>
    <timestamp>1700000005</timestamp>
  </data>
</repomd>"#;

    #[test]
    fn parses_entries() {
        let repomd = Repomd::parse(REPOMD).unwrap();
        assert_eq!(repomd.revision.as_deref(), Some("1700000000"));
        let primary = repomd.entry("primary").unwrap();
        assert_eq!(primary.location, "repodata/e3b0-primary.xml.gz");
        assert_eq!(primary.size, Some(20));
        assert_eq!(repomd.timestamp(), Some(1_700_000_005));
        assert!(repomd.entry("updateinfo").is_none());
    }

    #[test]
    fn rejects_bad_documents() {
        let cases = [
            ("<html/>", "not a repomd.xml"),
            ("<repomd></repomd>", "no primary"),
            (&REPOMD.replace("e3b0c442", "zz"), "is not a sha256 checksum"),
            (&REPOMD.replace("repodata/e3b0-primary", "../x"), "leaves the repository"),
            (
                &REPOMD.replace("<location href=\"repodata/e3b0-primary.xml.gz\"/>", ""),
                "primary has no location",
            ),
            ("<repomd><data type=\"primary\">", "is not closed"),
        ];
        for (text, expected) in cases {
            let error = Repomd::parse(text).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }
}
