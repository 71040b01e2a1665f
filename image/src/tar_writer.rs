//! A minimal GNU tar writer with every header field fixed (mtime 0, no user or group names), so the same
//! entries always give the same bytes. Names and link targets longer than the 100-byte header fields
//! use GNU `././@LongLink` records, as GNU tar and ostree-ext's layers do.

use std::io::{self, Write};

/// tar works in 512-byte blocks.
const BLOCK: usize = 512;
/// Length of the name and link-name fields of a header.
const NAME_FIELD: usize = 100;
/// The largest value an octal field of `width` bytes (with its terminating NUL) can hold.
fn octal_limit(width: usize) -> u64 {
    (1u64 << (3 * (width - 1) as u32)) - 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Regular,
    Directory,
    Symlink,
    Hardlink,
}

impl EntryKind {
    fn type_flag(self) -> u8 {
        match self {
            EntryKind::Regular => b'0',
            EntryKind::Hardlink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::Directory => b'5',
        }
    }
}

/// Owner and permission bits of an entry (`mode` may carry the file type; only the low 12 bits are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Writes tar entries to `W`, counting the bytes written.
#[derive(Debug)]
pub struct TarWriter<W: Write> {
    output: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(output: W) -> TarWriter<W> {
        TarWriter { output, written: 0 }
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    pub fn directory(&mut self, path: &str, ownership: Ownership) -> io::Result<()> {
        self.header(path, EntryKind::Directory, ownership, 0, "")
    }

    pub fn symlink(&mut self, path: &str, target: &str, ownership: Ownership) -> io::Result<()> {
        self.header(path, EntryKind::Symlink, ownership, 0, target)
    }

    pub fn hardlink(&mut self, path: &str, target: &str, ownership: Ownership) -> io::Result<()> {
        self.header(path, EntryKind::Hardlink, ownership, 0, target)
    }

    /// A regular file whose content is all of `content`.
    pub fn file(&mut self, path: &str, ownership: Ownership, content: &[u8]) -> io::Result<()> {
        self.header(path, EntryKind::Regular, ownership, content.len() as u64, "")?;
        self.write_padded(content)
    }

    /// A regular file of `size` bytes streamed from `content`, which must yield exactly that many.
    pub fn file_from_reader(
        &mut self,
        path: &str,
        ownership: Ownership,
        size: u64,
        content: &mut dyn io::Read,
    ) -> io::Result<()> {
        self.header(path, EntryKind::Regular, ownership, size, "")?;
        let copied = io::copy(&mut io::Read::take(content, size), &mut CountingWriter(self))?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: expected {size} bytes of content, read {copied}"),
            ));
        }
        self.pad(size)
    }

    /// Ends the archive with the two zero blocks tar readers expect and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(&[0u8; 2 * BLOCK])?;
        Ok(self.output)
    }

    fn header(
        &mut self,
        path: &str,
        kind: EntryKind,
        ownership: Ownership,
        size: u64,
        link: &str,
    ) -> io::Result<()> {
        if path.len() > NAME_FIELD {
            self.long_name(b'L', path)?;
        }
        if link.len() > NAME_FIELD {
            self.long_name(b'K', link)?;
        }
        let mut header = [0u8; BLOCK];
        put_bytes(&mut header[0..NAME_FIELD], path.as_bytes());
        put_number(&mut header[100..108], u64::from(ownership.mode & 0o7777));
        put_number(&mut header[108..116], u64::from(ownership.uid));
        put_number(&mut header[116..124], u64::from(ownership.gid));
        put_number(&mut header[124..136], size);
        put_number(&mut header[136..148], 0);
        header[156] = kind.type_flag();
        put_bytes(&mut header[157..157 + NAME_FIELD], link.as_bytes());
        finish_header(&mut header);
        self.emit(&header)
    }

    /// A GNU long-name (`L`) or long-link (`K`) record carrying `name` with its terminating NUL.
    fn long_name(&mut self, type_flag: u8, name: &str) -> io::Result<()> {
        let mut header = [0u8; BLOCK];
        put_bytes(&mut header[0..NAME_FIELD], b"././@LongLink");
        put_number(&mut header[100..108], 0o644);
        put_number(&mut header[108..116], 0);
        put_number(&mut header[116..124], 0);
        put_number(&mut header[124..136], name.len() as u64 + 1);
        put_number(&mut header[136..148], 0);
        header[156] = type_flag;
        finish_header(&mut header);
        self.emit(&header)?;
        let mut data = Vec::with_capacity(name.len() + 1);
        data.extend_from_slice(name.as_bytes());
        data.push(0);
        self.write_padded(&data)
    }

    fn write_padded(&mut self, content: &[u8]) -> io::Result<()> {
        self.emit(content)?;
        self.pad(content.len() as u64)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let remainder = (size % BLOCK as u64) as usize;
        if remainder != 0 {
            self.emit(&[0u8; BLOCK][..BLOCK - remainder])?;
        }
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.output.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Lets `io::copy` stream file content through the writer's byte count.
struct CountingWriter<'a, W: Write>(&'a mut TarWriter<W>);

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.emit(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.output.flush()
    }
}

/// GNU magic and version, then the checksum over the header with its own field read as spaces.
fn finish_header(header: &mut [u8; BLOCK]) {
    header[257..263].copy_from_slice(b"ustar ");
    header[263..265].copy_from_slice(b" \0");
    header[148..156].fill(b' ');
    let checksum: u32 = header.iter().map(|&byte| u32::from(byte)).sum();
    let text = format!("{checksum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
}

fn put_bytes(field: &mut [u8], bytes: &[u8]) {
    let length = bytes.len().min(field.len());
    field[..length].copy_from_slice(&bytes[..length]);
}

/// Octal with a terminating NUL when it fits; GNU base-256 (high bit set, big-endian) when it does not.
fn put_number(field: &mut [u8], value: u64) {
    let width = field.len();
    if value <= octal_limit(width) {
        let text = format!("{value:0digits$o}", digits = width - 1);
        field[..width - 1].copy_from_slice(text.as_bytes());
        field[width - 1] = 0;
    } else {
        field.fill(0);
        let bytes = value.to_be_bytes();
        field[width - bytes.len()..].copy_from_slice(&bytes);
        field[0] |= 0x80;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: Ownership = Ownership { uid: 0, gid: 0, mode: 0o100644 };

    fn entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, u64, Option<String>, u32, u64)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .expect("entries")
            .map(|entry| {
                let entry = entry.expect("entry");
                let header = entry.header();
                (
                    entry.path().expect("path").to_string_lossy().into_owned(),
                    header.entry_type(),
                    header.size().expect("size"),
                    entry.link_name().expect("link").map(|link| link.to_string_lossy().into_owned()),
                    header.mode().expect("mode"),
                    header.uid().expect("uid"),
                )
            })
            .collect()
    }

    #[test]
    fn the_tar_crate_reads_back_every_kind_of_entry() {
        let long_name = format!("sysroot/ostree/repo/objects/ab/{}.file-xattrs-link", "c".repeat(62));
        let long_target = format!("{}/{}", "d".repeat(80), "e".repeat(80));
        let mut writer = TarWriter::new(Vec::new());
        writer.directory("./", Ownership { uid: 0, gid: 0, mode: 0o40755 }).expect("dir");
        writer
            .file("usr/bin/tool", Ownership { uid: 1000, gid: 10, mode: 0o104755 }, b"#!/bin/sh\n")
            .expect("file");
        writer.file(&long_name, OWNER, b"").expect("long");
        writer
            .symlink("usr/lib/link", &long_target, Ownership { uid: 0, gid: 0, mode: 0o120777 })
            .expect("link");
        writer.hardlink("etc/passwd", "usr/bin/tool", OWNER).expect("hardlink");
        let mut streamed = &b"streamed content"[..];
        writer.file_from_reader("streamed", OWNER, 16, &mut streamed).expect("stream");
        let bytes = writer.finish().expect("finish");
        assert_eq!(bytes.len() % BLOCK, 0);
        let listed = entries(&bytes);
        assert_eq!(listed[0].0, "./");
        assert_eq!(listed[1], ("usr/bin/tool".to_string(), tar::EntryType::Regular, 10, None, 0o4755, 1000));
        assert_eq!(listed[2].0, long_name);
        assert_eq!(listed[3].3.as_deref(), Some(long_target.as_str()));
        assert_eq!(listed[4].1, tar::EntryType::Link);
        assert_eq!(listed[5].2, 16);
    }

    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let write = || {
            let mut writer = TarWriter::new(Vec::new());
            writer.file("a", OWNER, b"x").expect("file");
            writer.finish().expect("finish")
        };
        assert_eq!(write(), write());
    }

    #[test]
    fn a_short_reader_is_an_error() {
        let mut writer = TarWriter::new(Vec::new());
        let mut content = &b"abc"[..];
        let error = writer.file_from_reader("short", OWNER, 10, &mut content).expect_err("short");
        assert!(error.to_string().contains("expected 10 bytes"), "{error}");
    }

    #[test]
    fn numbers_too_large_for_octal_use_base_256() {
        let mut field = [0u8; 8];
        put_number(&mut field, 0o7777777);
        assert_eq!(&field, b"7777777\0");
        put_number(&mut field, 1 << 40);
        assert_eq!(field[0] & 0x80, 0x80);
        assert_eq!(u64::from_be_bytes(field) & !(0x80 << 56), 1 << 40);
    }
}
