//! A [`Resolution`] as compact bytes, for the resolution cache: reading one back must cost little next to
//! a process start (an entry of the synthetic benchmark holds 12,884 packages), so it is decoded as it
//! streams from the file, without the whole entry in memory.
//!
//! Integers are little-endian `u64`; a text is its length in bytes (`u32`) and its UTF-8 bytes; an
//! optional value is a byte 0 (absent) or 1 followed by the value; a list is its length (`u64`) and the
//! items. In order: the architecture; the packages, each with name, epoch, version, release, arch,
//! repository, URL, location, checksum (optional), download size, install size, source rpm (optional),
//! build time and license (optional); the repositories, each with id, repomd checksum and timestamp
//! (optional); the warnings. Nothing may follow.

use std::io::{self, BufRead};

use crate::resolve::{RepositorySnapshot, Resolution, ResolvedPackage};

/// Why bytes are not an encoded resolution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated at byte {offset} (reading {what})")]
    Truncated { offset: u64, what: &'static str },
    #[error("{what} at byte {offset} is not UTF-8")]
    NotUtf8 { offset: u64, what: &'static str },
    #[error("{what} at byte {offset}: presence byte {byte} is neither 0 nor 1")]
    BadPresence { offset: u64, what: &'static str, byte: u8 },
    #[error("{count} bytes follow the resolution")]
    TrailingBytes { count: u64 },
    #[error("reading {what} at byte {offset}: {message}")]
    Read { offset: u64, what: &'static str, message: String },
}

/// The bytes of `resolution`.
pub fn encode(resolution: &Resolution) -> Vec<u8> {
    let Resolution { arch, packages, repositories, warnings } = resolution;
    let mut output = Encoder(Vec::with_capacity(packages.len() * ESTIMATED_PACKAGE_BYTES));
    output.text(arch);
    output.number(packages.len() as u64);
    for package in packages {
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
        } = package;
        output.text(name);
        output.number(*epoch);
        output.text(version);
        output.text(release);
        output.text(arch);
        output.text(repo);
        output.text(url);
        output.text(location);
        output.optional_text(checksum.as_deref());
        output.number(*download_size);
        output.number(*install_size);
        output.optional_text(sourcerpm.as_deref());
        output.number(*build_time);
        output.optional_text(license.as_deref());
    }
    output.number(repositories.len() as u64);
    for RepositorySnapshot { id, repomd_checksum, timestamp } in repositories {
        output.text(id);
        output.text(repomd_checksum);
        match timestamp {
            None => output.0.push(0),
            Some(timestamp) => {
                output.0.push(1);
                output.number(*timestamp);
            }
        }
    }
    output.number(warnings.len() as u64);
    for warning in warnings {
        output.text(warning);
    }
    output.0
}

/// The resolution the next `length` bytes of `input` encode; they must be exactly that.
pub fn decode(input: &mut impl BufRead, length: u64) -> Result<Resolution, DecodeError> {
    let mut input = Decoder { input, offset: 0, length };
    let arch = input.text("the architecture")?;
    let count = input.count("the package count", MINIMUM_PACKAGE_BYTES)?;
    let mut packages = Vec::with_capacity(count);
    for _ in 0..count {
        packages.push(ResolvedPackage {
            name: input.text("a package name")?,
            epoch: input.number("an epoch")?,
            version: input.text("a version")?,
            release: input.text("a release")?,
            arch: input.text("a package architecture")?,
            repo: input.text("a package repository")?,
            url: input.text("a URL")?,
            location: input.text("a location")?,
            checksum: input.optional_text("a checksum")?,
            download_size: input.number("a download size")?,
            install_size: input.number("an install size")?,
            sourcerpm: input.optional_text("a source rpm")?,
            build_time: input.number("a build time")?,
            license: input.optional_text("a license")?,
        });
    }
    let count = input.count("the repository count", MINIMUM_REPOSITORY_BYTES)?;
    let mut repositories = Vec::with_capacity(count);
    for _ in 0..count {
        repositories.push(RepositorySnapshot {
            id: input.text("a repository id")?,
            repomd_checksum: input.text("a repomd checksum")?,
            timestamp: match input.presence("a timestamp")? {
                false => None,
                true => Some(input.number("a timestamp")?),
            },
        });
    }
    let count = input.count("the warning count", TEXT_LENGTH_BYTES)?;
    let mut warnings = Vec::with_capacity(count);
    for _ in 0..count {
        warnings.push(input.text("a warning")?);
    }
    match input.remaining() {
        0 => Ok(Resolution { arch, packages, repositories, warnings }),
        count => Err(DecodeError::TrailingBytes { count }),
    }
}

/// What a package takes, about, in a real entry: sizes the output buffer in one go.
const ESTIMATED_PACKAGE_BYTES: usize = 350;
/// Bytes of a text's length.
const TEXT_LENGTH_BYTES: usize = 4;
/// Bytes of an integer.
const NUMBER_BYTES: usize = 8;
/// The fewest bytes a package can take (eight empty texts, three absent values, five numbers): a
/// count larger than the remaining bytes allow is refused before anything is allocated for it.
const MINIMUM_PACKAGE_BYTES: usize = 8 * TEXT_LENGTH_BYTES + 3 + 5 * NUMBER_BYTES;
/// The fewest bytes a repository can take (two empty texts and an absent timestamp).
const MINIMUM_REPOSITORY_BYTES: usize = 2 * TEXT_LENGTH_BYTES + 1;

struct Encoder(Vec<u8>);

impl Encoder {
    fn number(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn text(&mut self, text: &str) {
        // Texts of a resolution (names, URLs, warnings) are far below 4 GiB; a longer one would be
        // cut at a character boundary.
        let mut length = text.len().min(u32::MAX as usize);
        while !text.is_char_boundary(length) {
            length -= 1;
        }
        self.0.extend_from_slice(&(length as u32).to_le_bytes());
        self.0.extend_from_slice(&text.as_bytes()[..length]);
    }

    fn optional_text(&mut self, text: Option<&str>) {
        match text {
            None => self.0.push(0),
            Some(text) => {
                self.0.push(1);
                self.text(text);
            }
        }
    }
}

/// Reads an encoded resolution of `length` bytes from `input`; `offset` bytes of it are read.
struct Decoder<'a, Input> {
    input: &'a mut Input,
    offset: u64,
    length: u64,
}

impl<Input: BufRead> Decoder<'_, Input> {
    fn remaining(&self) -> u64 {
        self.length - self.offset
    }

    /// Hands the next `count` bytes to `use_bytes`, refusing to read past `length`: straight from the
    /// input's buffer when they are all in it (nearly always), else gathered first.
    fn with_bytes<T>(
        &mut self,
        count: usize,
        what: &'static str,
        use_bytes: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, DecodeError> {
        let offset = self.offset;
        if (count as u64) > self.remaining() {
            return Err(DecodeError::Truncated { offset, what });
        }
        let failed = |error: io::Error| match error.kind() {
            io::ErrorKind::UnexpectedEof => DecodeError::Truncated { offset, what },
            _ => DecodeError::Read { offset, what, message: error.to_string() },
        };
        let buffered = self.input.fill_buf().map_err(failed)?;
        let result = if buffered.len() >= count {
            let result = use_bytes(&buffered[..count]);
            self.input.consume(count);
            result
        } else {
            let mut gathered = vec![0; count];
            self.input.read_exact(&mut gathered).map_err(failed)?;
            use_bytes(&gathered)
        };
        self.offset += count as u64;
        Ok(result)
    }

    fn number(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.with_bytes(NUMBER_BYTES, what, |bytes| {
            let mut number = [0; NUMBER_BYTES];
            number.copy_from_slice(bytes);
            u64::from_le_bytes(number)
        })
    }

    /// A list's length, refused when the remaining bytes cannot hold that many items of at least
    /// `minimum_item_bytes` each.
    fn count(&mut self, what: &'static str, minimum_item_bytes: usize) -> Result<usize, DecodeError> {
        let offset = self.offset;
        let count = self.number(what)?;
        usize::try_from(count)
            .ok()
            .filter(|count| (count.saturating_mul(minimum_item_bytes) as u64) <= self.remaining())
            .ok_or(DecodeError::Truncated { offset, what })
    }

    fn text(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let length = self.with_bytes(TEXT_LENGTH_BYTES, what, |bytes| {
            let mut length = [0; TEXT_LENGTH_BYTES];
            length.copy_from_slice(bytes);
            u32::from_le_bytes(length) as usize
        })?;
        let offset = self.offset;
        self.with_bytes(length, what, |bytes| std::str::from_utf8(bytes).map(str::to_owned))?
            .map_err(|_| DecodeError::NotUtf8 { offset, what })
    }

    fn presence(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let offset = self.offset;
        match self.with_bytes(1, what, |bytes| bytes[0])? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(DecodeError::BadPresence { offset, what, byte }),
        }
    }

    fn optional_text(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        match self.presence(what)? {
            false => Ok(None),
            true => self.text(what).map(Some),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A resolution with every kind of value: absent and present options, an epoch, non-ASCII and
    /// empty texts, the largest number.
    pub(crate) fn sample() -> Resolution {
        let package = |name: &str, epoch: u64, optional: bool| ResolvedPackage {
            name: name.into(),
            epoch,
            version: "1.0".into(),
            release: "1.fc41".into(),
            arch: "x86_64".into(),
            repo: "fedora".into(),
            url: format!("file:///srv/repo/Packages/{name}.rpm"),
            location: format!("Packages/{name}.rpm"),
            checksum: optional.then(|| "sha256:00ff".to_string()),
            download_size: 1234,
            install_size: u64::MAX,
            sourcerpm: optional.then(|| format!("{name}-1.0-1.fc41.src.rpm")),
            build_time: 1_700_000_000,
            license: optional.then(|| "MIT".to_string()),
        };
        Resolution {
            arch: "x86_64".into(),
            packages: vec![package("bash", 0, true), package("zoé", 3, false), package("", 0, true)],
            repositories: vec![
                RepositorySnapshot {
                    id: "fedora".into(),
                    repomd_checksum: "sha256:ab".into(),
                    timestamp: Some(7),
                },
                RepositorySnapshot {
                    id: "updates".into(),
                    repomd_checksum: "sha256:cd".into(),
                    timestamp: None,
                },
            ],
            warnings: vec!["locked package ghost 1-1 is not in any repository".into(), String::new()],
        }
    }

    /// Everything that tells two resolutions apart (`Resolution` has no `PartialEq`).
    pub(crate) fn parts(
        resolution: &Resolution,
    ) -> (String, Vec<ResolvedPackage>, Vec<RepositorySnapshot>, Vec<String>) {
        let Resolution { arch, packages, repositories, warnings } = resolution.clone();
        (arch, packages, repositories, warnings)
    }

    fn decode_all(bytes: &[u8]) -> Result<Resolution, DecodeError> {
        decode(&mut &bytes[..], bytes.len() as u64)
    }

    #[test]
    fn round_trips() {
        let resolution = sample();
        assert_eq!(parts(&decode_all(&encode(&resolution)).unwrap()), parts(&resolution));
        let empty =
            Resolution { arch: String::new(), packages: vec![], repositories: vec![], warnings: vec![] };
        assert_eq!(parts(&decode_all(&encode(&empty)).unwrap()), parts(&empty));
    }

    #[test]
    fn every_truncation_and_bad_bytes_are_refused() {
        let bytes = encode(&sample());
        for length in 0..bytes.len() {
            assert!(decode_all(&bytes[..length]).is_err(), "truncated to {length} of {} bytes", bytes.len());
            // The input has more bytes than the length says: never read past it.
            assert!(decode(&mut &bytes[..], length as u64).is_err(), "a length of {length}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(decode_all(&trailing).unwrap_err(), DecodeError::TrailingBytes { count: 1 });
        // A count far beyond the bytes is refused before anything is allocated.
        let mut huge = bytes.clone();
        let count_offset = TEXT_LENGTH_BYTES + "x86_64".len();
        huge[count_offset..count_offset + NUMBER_BYTES].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode_all(&huge), Err(DecodeError::Truncated { what: "the package count", .. })));
        // A text length beyond the bytes.
        let mut long = bytes.clone();
        long[..TEXT_LENGTH_BYTES].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_all(&long), Err(DecodeError::Truncated { what: "the architecture", .. })));
        // Text that is not UTF-8: the first byte of the name "bash".
        let mut invalid = bytes.clone();
        let name_offset = count_offset + NUMBER_BYTES + TEXT_LENGTH_BYTES;
        invalid[name_offset] = 0xff;
        assert!(matches!(decode_all(&invalid), Err(DecodeError::NotUtf8 { what: "a package name", .. })));
        // A presence byte that is neither 0 nor 1: the first package's checksum.
        let mut presence = bytes.clone();
        let checksum_offset = (0..bytes.len())
            .find(|&offset| bytes[offset..].starts_with(b"\x01\x0b\0\0\0sha256:00ff"))
            .unwrap();
        presence[checksum_offset] = 2;
        assert!(matches!(
            decode_all(&presence),
            Err(DecodeError::BadPresence { what: "a checksum", byte: 2, .. })
        ));
    }
}
