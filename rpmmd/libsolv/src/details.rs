//! [`PackageDetails`]: what a resolution reports of a package besides its name, EVR, arch and
//! checksum (location, sizes, source rpm, build time, license), kept as one string attribute per
//! package.
//!
//! libsolv stores these as ten attributes (location alone is three: directory, file name, media
//! number; the source rpm three more) and every lookup walks the package's attribute schema again:
//! about 9,000 instructions per package, a fifth of a warm resolve of 12,000 packages. The primary
//! reader stores them as one string instead, which one lookup returns; `.solv` caches carry it.
//!
//! Encoding: a format tag, then the fields in order, each followed by `;`. Texts are
//! length-prefixed (`<bytes>:<text>`, `-` for an absent one), so any text round-trips without
//! escaping; numbers are decimal. As in libsolv, the usual file names are not repeated: a location
//! ending in the package's own file name (`name-version-release.arch.rpm`) keeps only what comes
//! before it (`*<bytes>:<directory>/`), a source rpm of the same version and release only its name
//! (`*<bytes>:<name>`).

use std::ffi::CStr;

use crate::package::EvrParts;

/// The attribute name (a libsolv key name: any pool string works as one).
pub(crate) const DETAILS_KEY: &CStr = c"arbor:package-details";

/// Leads every encoded value; a string without it (another format) is not decoded.
const FORMAT_TAG: u8 = b'1';
/// Marks an absent text.
const ABSENT: u8 = b'-';
/// Marks a text completed by the package's own file name ([`Identity`]).
const COMPLETED: u8 = b'*';
/// Ends every field.
const END: u8 = b';';

/// The details of one package as its repository metadata gives them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PackageDetails {
    pub(crate) location: Option<String>,
    pub(crate) download_size: u64,
    pub(crate) install_size: u64,
    pub(crate) sourcerpm: Option<String>,
    pub(crate) build_time: u64,
    pub(crate) license: Option<String>,
}

/// What the usual file names are made of: the package's name, version, release and arch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'package> {
    pub(crate) name: &'package str,
    pub(crate) version: &'package str,
    pub(crate) release: &'package str,
    pub(crate) arch: &'package str,
}

/// The name, EVR and arch of a package, owned: what both the primary reader (encoding) and
/// [`crate::Pool::package`] (decoding) take from the solvable, with the same function
/// ([`crate::lookup::solvable_identity`]), so that the texts complete the same way on both sides.
#[derive(Debug, Clone)]
pub(crate) struct OwnedIdentity {
    pub(crate) name: String,
    pub(crate) evr: EvrParts,
    pub(crate) arch: String,
}

impl OwnedIdentity {
    pub(crate) fn borrow(&self) -> Identity<'_> {
        Identity {
            name: &self.name,
            version: &self.evr.version,
            release: &self.evr.release,
            arch: &self.arch,
        }
    }
}

impl<'package> Identity<'package> {
    /// `name-version-release.arch.rpm`, the file name `createrepo` locations end in, in parts.
    fn file_name(&self) -> [&'package str; 8] {
        [self.name, "-", self.version, "-", self.release, ".", self.arch, ".rpm"]
    }

    /// `-version-release.src.rpm`, what the source rpm's name is followed by, in parts.
    fn source_suffix(&self) -> [&'package str; 5] {
        ["-", self.version, "-", self.release, ".src.rpm"]
    }
}

impl PackageDetails {
    /// The encoded form, NUL-terminated for libsolv.
    pub(crate) fn encode(&self, identity: &Identity) -> Vec<u8> {
        let mut encoded = vec![FORMAT_TAG, END];
        push_completed_text(&mut encoded, self.location.as_deref(), &identity.file_name().concat());
        push_number(&mut encoded, self.download_size);
        push_number(&mut encoded, self.install_size);
        push_completed_text(&mut encoded, self.sourcerpm.as_deref(), &identity.source_suffix().concat());
        push_number(&mut encoded, self.build_time);
        push_text(&mut encoded, self.license.as_deref(), false);
        encoded.push(0);
        encoded
    }

    /// Decodes what [`PackageDetails::encode`] made for the same `identity` (without the NUL);
    /// `None` for anything else.
    pub(crate) fn decode(encoded: &[u8], identity: &Identity) -> Option<PackageDetails> {
        let mut cursor = Cursor { rest: encoded.strip_prefix(&[FORMAT_TAG, END])? };
        let details = PackageDetails {
            location: cursor.text(&identity.file_name())?,
            download_size: cursor.number()?,
            install_size: cursor.number()?,
            sourcerpm: cursor.text(&identity.source_suffix())?,
            build_time: cursor.number()?,
            license: cursor.text(&[])?,
        };
        cursor.rest.is_empty().then_some(details)
    }
}

/// A text that is left out as far as it ends in `completion`.
fn push_completed_text(encoded: &mut Vec<u8>, text: Option<&str>, completion: &str) {
    match text.and_then(|text| text.strip_suffix(completion)) {
        Some(start) if !completion.is_empty() => push_text(encoded, Some(start), true),
        _ => push_text(encoded, text, false),
    }
}

fn push_text(encoded: &mut Vec<u8>, text: Option<&str>, completed: bool) {
    match text {
        Some(text) => {
            if completed {
                encoded.push(COMPLETED);
            }
            encoded.extend_from_slice(text.len().to_string().as_bytes());
            encoded.push(b':');
            encoded.extend_from_slice(text.as_bytes());
        }
        None => encoded.push(ABSENT),
    }
    encoded.push(END);
}

fn push_number(encoded: &mut Vec<u8>, number: u64) {
    encoded.extend_from_slice(number.to_string().as_bytes());
    encoded.push(END);
}

/// Reads the fields of an encoded value in order.
struct Cursor<'encoded> {
    rest: &'encoded [u8],
}

impl Cursor<'_> {
    /// Decimal digits up to `stop`, consumed with it.
    fn digits_until(&mut self, stop: u8) -> Option<u64> {
        let end = self.rest.iter().position(|&byte| byte == stop)?;
        if end == 0 {
            return None;
        }
        let mut number: u64 = 0;
        for &byte in &self.rest[..end] {
            let digit = byte.checked_sub(b'0').filter(|digit| *digit <= 9)?;
            number = number.checked_mul(10)?.checked_add(u64::from(digit))?;
        }
        self.rest = &self.rest[end + 1..];
        Some(number)
    }

    /// A number field.
    fn number(&mut self) -> Option<u64> {
        self.digits_until(END)
    }

    /// A text field: `Some(None)` when absent; a completed one gets the `completion` parts appended.
    fn text(&mut self, completion: &[&str]) -> Option<Option<String>> {
        if let [ABSENT, END, rest @ ..] = self.rest {
            self.rest = rest;
            return Some(None);
        }
        let completed = self.rest.first() == Some(&COMPLETED);
        if completed {
            self.rest = &self.rest[1..];
        }
        let length = usize::try_from(self.digits_until(b':')?).ok()?;
        let (text, rest) = self.rest.split_at_checked(length)?;
        self.rest = rest.strip_prefix(&[END])?;
        let text = std::str::from_utf8(text).ok()?;
        if !completed {
            return Some(Some(text.to_owned()));
        }
        let mut completed_text =
            String::with_capacity(text.len() + completion.iter().map(|part| part.len()).sum::<usize>());
        completed_text.push_str(text);
        completion.iter().for_each(|part| completed_text.push_str(part));
        Some(Some(completed_text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASH: Identity = Identity { name: "bash", version: "5.2.26", release: "1.fc41", arch: "x86_64" };

    #[test]
    fn round_trips() {
        let cases = [
            PackageDetails::default(),
            PackageDetails {
                location: Some("Packages/b/bash-5.2.26-1.fc41.x86_64.rpm".into()),
                download_size: 1_234_567,
                install_size: u64::MAX,
                sourcerpm: Some("bash-5.2.26-1.fc41.src.rpm".into()),
                build_time: 1_700_000_000,
                license: Some("GPL-3.0-or-later".into()),
            },
            PackageDetails {
                location: Some("bash-5.2.26-1.fc41.x86_64.rpm".into()),
                sourcerpm: Some("bash-5.2.26-2.fc41.src.rpm".into()),
                ..PackageDetails::default()
            },
            PackageDetails {
                location: Some(String::new()),
                license: Some("weird; 12:text\nwith - everything;*".into()),
                sourcerpm: Some("-".into()),
                ..PackageDetails::default()
            },
        ];
        for details in cases {
            let encoded = details.encode(&BASH);
            assert_eq!(encoded.last(), Some(&0));
            let decoded = PackageDetails::decode(&encoded[..encoded.len() - 1], &BASH);
            assert_eq!(decoded.as_ref(), Some(&details), "{}", String::from_utf8_lossy(&encoded));
        }
    }

    #[test]
    fn usual_file_names_are_not_repeated() {
        let details = PackageDetails {
            location: Some("Packages/b/bash-5.2.26-1.fc41.x86_64.rpm".into()),
            sourcerpm: Some("bash-5.2.26-1.fc41.src.rpm".into()),
            ..PackageDetails::default()
        };
        assert_eq!(details.encode(&BASH), b"1;*11:Packages/b/;0;0;*4:bash;0;-;\0");
    }

    #[test]
    fn refuses_what_it_did_not_encode() {
        let cases: [&[u8]; 10] = [
            b"",
            b"0;-;0;0;-;0;-;",
            b"1;-;0;0;-;0;-",
            b"1;-;0;0;-;0;-;extra",
            b"1;99:short;0;0;-;0;-;",
            b"1;-;x;0;-;0;-;",
            b"1;-;;0;-;0;-;",
            b"1;-;99999999999999999999;0;-;0;-;",
            b"1;*:x;0;0;-;0;-;",
            b"1;2:\xff\xfe;0;0;-;0;-;",
        ];
        for encoded in cases {
            assert_eq!(PackageDetails::decode(encoded, &BASH), None, "{}", String::from_utf8_lossy(encoded));
        }
    }
}
