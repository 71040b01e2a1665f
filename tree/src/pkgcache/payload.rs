//! Reading an RPM payload for the import: the decompressor chosen by the payload's magic bytes (gzip, xz,
//! zstd or none) and the cpio archive inside it, each archive entry matched to its header file entry by path
//! through a map (the `rpm` crate's streaming reader searches the file list for every entry, which is
//! quadratic in the number of files).

use std::collections::HashMap;
use std::io::{self, BufRead, Read};

use rpm::{FileEntry, FileFlags, FileType, IndexTag};

/// The newc cpio header: six bytes of magic, then thirteen 8-digit hexadecimal fields.
const NEWC_HEADER_SIZE: usize = 110;
/// rpm's stripped cpio (files over 4 GiB): six bytes of magic and the 8-digit header index of the file.
const STRIPPED_HEADER_SIZE: usize = 14;
const MAGIC_SIZE: usize = 6;
/// Archive headers and file data start at multiples of four bytes.
const ARCHIVE_ALIGNMENT: u64 = 4;
/// Longest entry name accepted (the kernel's PATH_MAX; a larger name is a hostile archive).
const MAXIMUM_NAME_SIZE: usize = 4096;
const TRAILER_NAME: &[u8] = b"TRAILER!!!";

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2_MAGIC: &[u8] = b"BZh";

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("reading the payload at archive byte {offset}: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("the payload is compressed with {0}, which arbor does not read (gzip, xz and zstd only)")]
    UnsupportedCompression(&'static str),
    #[error("archive byte {offset}: {detail}")]
    Malformed { offset: u64, detail: String },
    #[error("the payload has \"{path}\", which the header does not list")]
    NotInHeader { path: String },
    #[error("the payload has \"{path}\" twice")]
    Duplicate { path: String },
    #[error("the header lists \"{path}\", which the payload does not have")]
    MissingFromPayload { path: String },
}

/// Wraps the compressed payload (positioned right after the headers) in its decompressor.
pub fn decompressed<'a>(mut compressed: impl BufRead + 'a) -> Result<Box<dyn Read + 'a>, PayloadError> {
    let start = compressed.fill_buf().map_err(|source| PayloadError::Read { offset: 0, source })?;
    Ok(if start.starts_with(GZIP_MAGIC) {
        Box::new(flate2::bufread::GzDecoder::new(compressed))
    } else if start.starts_with(ZSTD_MAGIC) {
        Box::new(
            zstd::stream::Decoder::with_buffer(compressed)
                .map_err(|source| PayloadError::Read { offset: 0, source })?,
        )
    } else if start.starts_with(XZ_MAGIC) {
        Box::new(liblzma::bufread::XzDecoder::new(compressed))
    } else if start.starts_with(BZIP2_MAGIC) {
        return Err(PayloadError::UnsupportedCompression("bzip2"));
    } else {
        Box::new(compressed)
    })
}

/// One archive entry: which header file it is, and how many content bytes follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadEntry {
    pub index: usize,
    pub content_size: u64,
}

/// Walks the cpio archive of a payload. Call [`PayloadArchive::content`] to read an entry's bytes (or
/// not: the next [`PayloadArchive::next_entry`] skips what was left).
pub struct PayloadArchive<'entries, 'reader> {
    archive: Box<dyn Read + 'reader>,
    entries: &'entries [FileEntry<'entries>],
    index_by_path: HashMap<String, usize>,
    /// For the stripped format: whether a file carries the content of its hardlink set.
    carries_content: Vec<bool>,
    seen: Vec<bool>,
    offset: u64,
    remaining: u64,
    finished: bool,
}

impl std::fmt::Debug for PayloadArchive<'_, '_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PayloadArchive")
            .field("files", &self.entries.len())
            .field("offset", &self.offset)
            .field("remaining", &self.remaining)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<'entries, 'reader> PayloadArchive<'entries, 'reader> {
    pub fn new(
        metadata: &rpm::PackageMetadata,
        entries: &'entries [FileEntry<'entries>],
        archive: Box<dyn Read + 'reader>,
    ) -> Self {
        let index_by_path = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let directory = entry.dirname().strip_prefix('/').unwrap_or(entry.dirname());
                (format!("{directory}{}", entry.basename()), index)
            })
            .collect();
        PayloadArchive {
            archive,
            entries,
            index_by_path,
            carries_content: content_carriers(metadata, entries),
            seen: vec![false; entries.len()],
            offset: 0,
            remaining: 0,
            finished: false,
        }
    }

    /// The next entry, `None` after the trailer (when every file the header lists has been seen).
    pub fn next_entry(&mut self) -> Result<Option<PayloadEntry>, PayloadError> {
        if self.finished {
            return Ok(None);
        }
        self.skip(self.remaining)?;
        self.remaining = 0;
        self.skip(self.offset.next_multiple_of(ARCHIVE_ALIGNMENT) - self.offset)?;
        let header_offset = self.offset;
        let mut magic = [0u8; MAGIC_SIZE];
        self.read_exact(&mut magic)?;
        let entry = match &magic {
            b"070701" | b"070702" => self.newc_entry(header_offset)?,
            b"07070X" => self.stripped_entry(header_offset)?,
            _ => {
                return Err(PayloadError::Malformed {
                    offset: header_offset,
                    detail: format!("no cpio header (found {:?})", String::from_utf8_lossy(&magic)),
                });
            }
        };
        let Some(entry) = entry else {
            self.finished = true;
            self.check_complete()?;
            return Ok(None);
        };
        if std::mem::replace(&mut self.seen[entry.index], true) {
            return Err(PayloadError::Duplicate { path: self.path(entry.index) });
        }
        self.remaining = entry.content_size;
        Ok(Some(entry))
    }

    /// The content of the current entry, exactly its size.
    pub fn content(&mut self) -> EntryContent<'_, 'entries, 'reader> {
        EntryContent { archive: self }
    }

    fn newc_entry(&mut self, header_offset: u64) -> Result<Option<PayloadEntry>, PayloadError> {
        let mut fields = [0u8; NEWC_HEADER_SIZE - MAGIC_SIZE];
        self.read_exact(&mut fields)?;
        let field = |number: usize| -> Result<u64, PayloadError> {
            let text = &fields[number * 8..number * 8 + 8];
            std::str::from_utf8(text).ok().and_then(|text| u64::from_str_radix(text, 16).ok()).ok_or_else(
                || PayloadError::Malformed {
                    offset: header_offset,
                    detail: format!("cpio header field {number} is not hexadecimal"),
                },
            )
        };
        // Fields: inode, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
        // namesize, check.
        let file_size = field(6)?;
        let name_size = field(11)? as usize;
        if name_size == 0 || name_size > MAXIMUM_NAME_SIZE {
            return Err(PayloadError::Malformed {
                offset: header_offset,
                detail: format!("entry name of {name_size} bytes"),
            });
        }
        let mut name = vec![0u8; name_size];
        self.read_exact(&mut name)?;
        if name.pop() != Some(0) {
            return Err(PayloadError::Malformed {
                offset: header_offset,
                detail: "entry name without its terminating NUL".into(),
            });
        }
        self.skip(self.offset.next_multiple_of(ARCHIVE_ALIGNMENT) - self.offset)?;
        if name == TRAILER_NAME {
            return Ok(None);
        }
        let name = String::from_utf8_lossy(&name);
        let relative = name.strip_prefix("./").unwrap_or(&name);
        let relative = relative.strip_prefix('/').unwrap_or(relative);
        let index = *self
            .index_by_path
            .get(relative)
            .ok_or_else(|| PayloadError::NotInHeader { path: format!("/{relative}") })?;
        Ok(Some(PayloadEntry { index, content_size: file_size }))
    }

    fn stripped_entry(&mut self, header_offset: u64) -> Result<Option<PayloadEntry>, PayloadError> {
        let mut field = [0u8; STRIPPED_HEADER_SIZE - MAGIC_SIZE];
        self.read_exact(&mut field)?;
        let index = std::str::from_utf8(&field)
            .ok()
            .and_then(|text| usize::from_str_radix(text, 16).ok())
            .filter(|index| *index < self.entries.len())
            .ok_or_else(|| PayloadError::Malformed {
                offset: header_offset,
                detail: "stripped cpio entry with a file index the header does not have".into(),
            })?;
        let entry = &self.entries[index];
        let content_size = match entry.file_type() {
            FileType::Regular if self.carries_content[index] => entry.size() as u64,
            FileType::SymbolicLink => entry.size() as u64,
            _ => 0,
        };
        Ok(Some(PayloadEntry { index, content_size }))
    }

    /// After the trailer: every file the header lists, apart from %ghost files, was in the archive.
    fn check_complete(&self) -> Result<(), PayloadError> {
        let missing = self
            .entries
            .iter()
            .enumerate()
            .find(|(index, entry)| !self.seen[*index] && !entry.flags().contains(FileFlags::GHOST));
        match missing {
            Some((index, _)) => Err(PayloadError::MissingFromPayload { path: self.path(index) }),
            None => Ok(()),
        }
    }

    fn path(&self, index: usize) -> String {
        self.entries[index].path().display().to_string()
    }

    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<(), PayloadError> {
        let offset = self.offset;
        self.archive.read_exact(buffer).map_err(|source| PayloadError::Read { offset, source })?;
        self.offset += buffer.len() as u64;
        Ok(())
    }

    fn skip(&mut self, count: u64) -> Result<(), PayloadError> {
        if count == 0 {
            return Ok(());
        }
        let offset = self.offset;
        let skipped = io::copy(&mut (&mut self.archive).take(count), &mut io::sink())
            .map_err(|source| PayloadError::Read { offset, source })?;
        self.offset += skipped;
        if skipped < count {
            return Err(PayloadError::Read {
                offset: self.offset,
                source: io::ErrorKind::UnexpectedEof.into(),
            });
        }
        Ok(())
    }
}

/// The bytes of one archive entry; reading stops at the entry's end.
#[derive(Debug)]
pub struct EntryContent<'archive, 'entries, 'reader> {
    archive: &'archive mut PayloadArchive<'entries, 'reader>,
}

impl Read for EntryContent<'_, '_, '_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let archive = &mut *self.archive;
        let wanted = buffer.len().min(usize::try_from(archive.remaining).unwrap_or(usize::MAX));
        if wanted == 0 {
            return Ok(0);
        }
        let read = archive.archive.read(&mut buffer[..wanted])?;
        if read == 0 {
            // The payload ended inside the entry: its content is shorter than the archive said.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the payload ends {} bytes before the end of the entry's content (at offset {})",
                    archive.remaining, archive.offset
                ),
            ));
        }
        archive.remaining -= read as u64;
        archive.offset += read as u64;
        Ok(read)
    }
}

/// rpm writes a hardlink set's content once, with the set's last member; the stripped format has no sizes
/// in the archive, so the carrier comes from the header's inode and device numbers.
fn content_carriers(metadata: &rpm::PackageMetadata, entries: &[FileEntry<'_>]) -> Vec<bool> {
    let inodes = metadata.header.get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEINODES).unwrap_or_default();
    let devices =
        metadata.header.get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEDEVICES).unwrap_or_default();
    let mut last_of_set: HashMap<(u32, u32), usize> = HashMap::new();
    for index in 0..entries.len() {
        if let (Some(inode), Some(device)) = (inodes.get(index), devices.get(index)) {
            last_of_set.insert((*device, *inode), index);
        }
    }
    (0..entries.len())
        .map(|index| match (inodes.get(index), devices.get(index)) {
            (Some(inode), Some(device)) => last_of_set.get(&(*device, *inode)) == Some(&index),
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A package whose header lists `/usr/bin/tool` and `/usr/share/doc/tool/README`.
    fn metadata() -> rpm::PackageMetadata {
        let mut builder = rpm::PackageBuilder::new("tool", "1.0", "MIT", "noarch", "a tool");
        for (path, content) in
            [("/usr/bin/tool", &b"#!/bin/sh\n"[..]), ("/usr/share/doc/tool/README", b"read me")]
        {
            builder.with_file_contents(content.to_vec(), rpm::FileOptions::new(path)).unwrap();
        }
        builder.build().unwrap().metadata
    }

    /// One newc entry: header, NUL-terminated name, padding, content, padding.
    fn newc(name: &str, content: &[u8]) -> Vec<u8> {
        let mut entry = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            0o100_644,
            0,
            0,
            1,
            0,
            content.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        )
        .into_bytes();
        entry.extend_from_slice(name.as_bytes());
        entry.push(0);
        entry.resize(entry.len().next_multiple_of(4), 0);
        entry.extend_from_slice(content);
        entry.resize(entry.len().next_multiple_of(4), 0);
        entry
    }

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut bytes: Vec<u8> = entries.iter().flat_map(|(name, content)| newc(name, content)).collect();
        bytes.extend(newc("TRAILER!!!", b""));
        bytes
    }

    /// Every entry (path, content) until the end, or the first error.
    fn walk(bytes: Vec<u8>) -> Result<Vec<(String, String)>, PayloadError> {
        let metadata = metadata();
        let entries = metadata.get_file_entries().unwrap();
        walk_with(&metadata, &entries, bytes)
    }

    fn walk_with(
        metadata: &rpm::PackageMetadata,
        entries: &[FileEntry<'_>],
        bytes: Vec<u8>,
    ) -> Result<Vec<(String, String)>, PayloadError> {
        let mut archive = PayloadArchive::new(metadata, entries, Box::new(io::Cursor::new(bytes)));
        let mut seen = Vec::new();
        while let Some(entry) = archive.next_entry()? {
            let mut content = String::new();
            archive
                .content()
                .read_to_string(&mut content)
                .map_err(|source| PayloadError::Read { offset: 0, source })?;
            seen.push((entries[entry.index].path().display().to_string(), content));
        }
        Ok(seen)
    }

    #[test]
    fn entries_are_matched_to_the_header_by_path() {
        let bytes =
            archive(&[("./usr/bin/tool", b"#!/bin/sh\n"), ("./usr/share/doc/tool/README", b"read me")]);
        let seen = walk(bytes).unwrap();
        assert_eq!(
            seen,
            [
                ("/usr/bin/tool".to_string(), "#!/bin/sh\n".to_string()),
                ("/usr/share/doc/tool/README".to_string(), "read me".to_string())
            ]
        );
    }

    #[test]
    fn unread_content_is_skipped() {
        let metadata = metadata();
        let entries = metadata.get_file_entries().unwrap();
        let bytes =
            archive(&[("./usr/bin/tool", b"#!/bin/sh\n"), ("./usr/share/doc/tool/README", b"read me")]);
        let mut archive = PayloadArchive::new(&metadata, &entries, Box::new(io::Cursor::new(bytes)));
        assert_eq!(archive.next_entry().unwrap().map(|entry| entry.content_size), Some(10));
        let second = archive.next_entry().unwrap().unwrap();
        assert_eq!(entries[second.index].basename(), "README");
        assert!(archive.next_entry().unwrap().is_none());
        assert!(archive.next_entry().unwrap().is_none());
    }

    #[test]
    fn archives_that_disagree_with_the_header_are_rejected() {
        let tool: (&str, &[u8]) = ("./usr/bin/tool", b"#!/bin/sh\n");
        let readme: (&str, &[u8]) = ("./usr/share/doc/tool/README", b"read me");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "not in the header",
                archive(&[tool, readme, ("./etc/shadow", b"x")]),
                "\"/etc/shadow\", which the header does not list",
            ),
            ("twice", archive(&[tool, tool, readme]), "has \"/usr/bin/tool\" twice"),
            (
                "missing",
                archive(&[tool]),
                "lists \"/usr/share/doc/tool/README\", which the payload does not have",
            ),
            ("not cpio", b"PK\x03\x04 a zip file".to_vec(), "no cpio header"),
            ("truncated", archive(&[tool, readme])[..150].to_vec(), "reading the payload"),
        ];
        for (case, bytes, expected) in cases {
            let error = walk(bytes).expect_err(case).to_string();
            assert!(error.contains(expected), "{case}: {error}");
        }
    }

    #[test]
    fn a_payload_that_ends_inside_a_files_content_is_an_error_not_a_short_file() {
        let metadata = metadata();
        let entries = metadata.get_file_entries().unwrap();
        let bytes =
            archive(&[("./usr/bin/tool", b"#!/bin/sh\n"), ("./usr/share/doc/tool/README", b"read me")]);
        // The README's content starts at 280 (140 for the first entry, 110 of header, 28 of name, 2 of
        // padding); three of its seven bytes are left.
        let truncated = bytes[..283].to_vec();
        let mut archive = PayloadArchive::new(&metadata, &entries, Box::new(io::Cursor::new(truncated)));
        archive.next_entry().unwrap().unwrap();
        let readme = archive.next_entry().unwrap().unwrap();
        assert_eq!(readme.content_size, 7);
        let mut content = Vec::new();
        let error = archive.content().read_to_end(&mut content).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("ends 4 bytes before"), "{error}");
        assert_eq!(content, b"rea");
    }

    /// Every truncation and every single-byte corruption of a valid archive gives entries or an error,
    /// never a panic (the archive comes from an untrusted RPM).
    #[test]
    fn damaged_archives_never_panic() {
        let metadata = metadata();
        let entries = metadata.get_file_entries().unwrap();
        let bytes =
            archive(&[("./usr/bin/tool", b"#!/bin/sh\n"), ("./usr/share/doc/tool/README", b"read me")]);
        for length in 0..bytes.len() {
            let _ = walk_with(&metadata, &entries, bytes[..length].to_vec());
        }
        for position in 0..bytes.len() {
            for replacement in [0u8, b'0', b'f', b'X', 0xff] {
                let mut damaged = bytes.clone();
                damaged[position] = replacement;
                let _ = walk_with(&metadata, &entries, damaged);
            }
        }
    }

    #[test]
    fn compression_is_chosen_by_magic_bytes() {
        let plain = archive(&[("./usr/bin/tool", b"#!/bin/sh\n")]);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&plain).unwrap();
        let compressed = [gzip.finish().unwrap(), zstd::encode_all(&plain[..], 1).unwrap()];
        for bytes in compressed.iter().chain([&plain]) {
            let mut decompressed_bytes = Vec::new();
            decompressed(io::Cursor::new(bytes.clone()))
                .unwrap()
                .read_to_end(&mut decompressed_bytes)
                .unwrap();
            assert_eq!(decompressed_bytes, plain);
        }
        let bzip2 = decompressed(io::Cursor::new(b"BZh91AY&SY".to_vec())).err().unwrap();
        assert!(bzip2.to_string().contains("bzip2"), "{bzip2}");
    }
}
