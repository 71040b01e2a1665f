//! Reading rpm-md `primary.xml` into a repository: a streaming parser that builds the solvables
//! with libsolv's own calls, as `repo_add_rpmmd` does, but about twice as fast on large
//! repositories. libsolv's reader spends half its time in expat and its element dispatch; this one
//! tokenizes with quick-xml, runs beside the decompression thread, and skips the texts nothing
//! reads (descriptions, packager, URL, group, build host, header range).
//!
//! What it records for each package matches libsolv's reader: name, arch, EVR (a zero epoch left
//! out), vendor, dependencies (rich ones parsed by libsolv, `pre="1"` requirements after the
//! prerequisite marker, the package's own `name = EVR` provide), file list, checksum and summary.
//! Location, sizes, build time, license and source rpm go into one string attribute
//! ([`crate::details`]) instead of libsolv's dozen, which are slow to look up. The loading tests
//! compare the two readers on the same files.

#![allow(unsafe_code)]

use std::borrow::Cow;
use std::ffi::{c_char, c_int};
use std::io::BufRead;

use common::xml_text::{CharacterBuffer, resolve_reference};
use libsolv_sys as sys;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::details::{DETAILS_KEY, PackageDetails};
use crate::lookup::solvable_identity;

/// `REPODATA_FILELIST_FILTERED` of libsolv's `repodata.h`: primary's file list holds only some
/// files (`/etc`, `bin/` directories, ...), a later filelists load extends it.
const FILTERED_FILE_LIST: c_int = 1;
/// Longest checksum libsolv knows (SHA-512), in bytes.
const MAXIMUM_CHECKSUM_BYTES: usize = 64;
/// libsolv keeps build times as 32 bits (its reader masks them so); the details do the same.
const BUILD_TIME_MASK: u64 = 0xffff_ffff;
/// Dependency flags in libsolv's order: index + 1 is the `REL_*` combination.
const DEPENDENCY_FLAGS: [&[u8]; 6] = [b"GT", b"EQ", b"GE", b"LT", b"NE", b"LE"];

/// The dependency list of a solvable that an `<rpm:...>` section fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DependencyKind {
    Provides,
    Requires,
    Obsoletes,
    Conflicts,
    Recommends,
    Supplements,
    Suggests,
    Enhances,
}

impl DependencyKind {
    fn from_element(name: &[u8]) -> Option<DependencyKind> {
        Some(match name {
            b"rpm:provides" => DependencyKind::Provides,
            b"rpm:requires" => DependencyKind::Requires,
            b"rpm:obsoletes" => DependencyKind::Obsoletes,
            b"rpm:conflicts" => DependencyKind::Conflicts,
            b"rpm:recommends" => DependencyKind::Recommends,
            b"rpm:supplements" => DependencyKind::Supplements,
            b"rpm:suggests" => DependencyKind::Suggests,
            b"rpm:enhances" => DependencyKind::Enhances,
            _ => return None,
        })
    }
}

/// An element whose text is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextElement {
    Name,
    Arch,
    Checksum,
    Summary,
    Vendor,
    License,
    SourceRpm,
    File,
}

/// Reads `input` (decompressed `primary.xml`) into `repo`, then internalizes its data. On error
/// the caller frees the repository; the message names the byte offset.
pub(crate) fn read_primary(
    pool: *mut sys::Pool,
    repo: *mut sys::Repo,
    input: impl BufRead,
) -> Result<(), String> {
    // SAFETY: `repo` is a valid repository of `pool`; flags 0 = a new repodata.
    let data = unsafe { sys::repo_add_repodata(repo, 0) };
    // SAFETY: `pool` is valid and the name NUL-terminated; create = 1 interns it.
    let details_key = unsafe { sys::pool_str2id(pool, DETAILS_KEY.as_ptr(), 1) };
    let mut parser = PrimaryParser {
        pool,
        repo,
        data,
        details_key,
        details: PackageDetails::default(),
        package: None,
        dependencies: None,
        text_element: None,
        text: Vec::new(),
        checksum_type: 0,
        summary_wanted: false,
        scratch: Vec::new(),
        last_directory: (Vec::new(), 0),
    };
    let mut reader = Reader::from_reader(input);
    let mut buffer = Vec::with_capacity(4096);
    // Open elements, and whether there was any: quick-xml leaves both checks to its caller.
    let (mut depth, mut root_seen) = (0usize, false);
    let result = loop {
        let position = reader.buffer_position();
        let event = match reader.read_event_into(&mut buffer) {
            Ok(event) => event,
            Err(error) => break Err(format!("XML error at byte {}: {error}", reader.error_position())),
        };
        let outcome = match event {
            Event::Start(element) => {
                (depth, root_seen) = (depth + 1, true);
                parser.start(&element, false)
            }
            Event::Empty(element) => {
                root_seen = true;
                parser.start(&element, true)
            }
            Event::End(element) => {
                depth = depth.saturating_sub(1);
                parser.end(element.name().as_ref())
            }
            Event::Text(text) if parser.text_element.is_some() => {
                parser.text.extend_from_slice(&text);
                Ok(())
            }
            Event::CData(text) if parser.text_element.is_some() => {
                parser.text.extend_from_slice(&text);
                Ok(())
            }
            Event::GeneralRef(reference) if parser.text_element.is_some() => {
                parser.resolve_reference(&reference)
            }
            Event::Eof if !root_seen => break Err("no XML element in the file".to_string()),
            Event::Eof if depth > 0 => {
                break Err(format!("the file ends inside {depth} unclosed element(s): truncated?"));
            }
            Event::Eof => break Ok(()),
            _ => Ok(()),
        };
        if let Err(message) = outcome {
            break Err(format!("at byte {position}: {message}"));
        }
        buffer.clear();
    };
    // SAFETY: `data` is the repodata created above; the dircache is only a lookup speed-up.
    unsafe {
        sys::repodata_free_dircache(data);
        if (*data).end > (*data).start {
            sys::repodata_set_filelisttype(data, FILTERED_FILE_LIST);
            let key = sys::solv_knownid_REPOSITORY_FILTEREDFILELIST as sys::Id;
            sys::repodata_set_void(data, sys::SOLVID_META, key);
        }
        sys::repodata_internalize(data);
    }
    result
}

/// The package being read.
#[derive(Debug, Clone, Copy)]
struct PackageInProgress {
    handle: sys::Id,
    solvable: *mut sys::Solvable,
}

struct PrimaryParser {
    pool: *mut sys::Pool,
    repo: *mut sys::Repo,
    data: *mut sys::Repodata,
    /// The key id of [`DETAILS_KEY`].
    details_key: sys::Id,
    /// The details of the package being read, stored when it ends.
    details: PackageDetails,
    package: Option<PackageInProgress>,
    dependencies: Option<DependencyKind>,
    text_element: Option<TextElement>,
    text: Vec<u8>,
    checksum_type: sys::Id,
    summary_wanted: bool,
    /// Reused for NUL-terminated strings handed to libsolv.
    scratch: Vec<u8>,
    /// The last file's directory and its id: files come grouped by directory.
    last_directory: (Vec<u8>, sys::Id),
}

impl PrimaryParser {
    fn start(&mut self, element: &BytesStart, empty: bool) -> Result<(), String> {
        let name = element.name();
        let name = name.as_ref();
        if name == b"package" {
            // SAFETY: `repo` is valid; the new solvable's pointer stays valid until the next
            // solvable is added (at the next <package>), which replaces it.
            let handle = unsafe { sys::repo_add_solvable(self.repo) };
            let solvable = unsafe { sys::pool_id2solvable(self.pool, handle) };
            self.package = Some(PackageInProgress { handle, solvable });
            self.details = PackageDetails::default();
            return Ok(());
        }
        let Some(package) = self.package else { return Ok(()) };
        let text_element = match name {
            b"name" => Some(TextElement::Name),
            b"arch" => Some(TextElement::Arch),
            b"checksum" => {
                let kind = attribute(element, b"type")?.unwrap_or_default();
                self.scratch_string(kind.as_bytes());
                // SAFETY: `scratch` is NUL-terminated.
                self.checksum_type = unsafe { sys::solv_chksum_str2type(self.scratch.as_ptr().cast()) };
                if self.checksum_type == 0 {
                    return Err(format!("unknown checksum type: {kind}"));
                }
                Some(TextElement::Checksum)
            }
            b"summary" => {
                let language = attribute(element, b"lang")?;
                self.summary_wanted = language.is_none_or(|language| language.is_empty() || language == "en");
                Some(TextElement::Summary)
            }
            b"rpm:vendor" | b"vendor" => Some(TextElement::Vendor),
            b"rpm:license" => Some(TextElement::License),
            b"rpm:sourcerpm" => Some(TextElement::SourceRpm),
            b"file" => Some(TextElement::File),
            b"version" => {
                let evr = self.evr_from_attributes(element)?;
                // SAFETY: `solvable` is the live solvable of the package being read.
                unsafe { (*package.solvable).evr = evr };
                None
            }
            b"time" => {
                if let Some(build) = attribute(element, b"build")? {
                    self.details.build_time = leading_number(&build) & BUILD_TIME_MASK;
                }
                None
            }
            b"size" => {
                if let Some(installed) = attribute(element, b"installed")? {
                    self.details.install_size = leading_number(&installed);
                }
                if let Some(download) = attribute(element, b"package")? {
                    self.details.download_size = leading_number(&download);
                }
                None
            }
            b"location" => {
                // `xml:base` (another base URL, a media number) is not kept: nothing reads it.
                if let Some(href) = attribute(element, b"href")? {
                    self.details.location = Some(href.into_owned());
                }
                None
            }
            b"rpm:entry" => {
                if let Some(kind) = self.dependencies {
                    self.add_dependency(package, kind, element)?;
                }
                None
            }
            _ => {
                if let Some(kind) = DependencyKind::from_element(name) {
                    // SAFETY: as above; a section replaces the list, as in libsolv.
                    unsafe { *dependency_list(package.solvable, kind) = 0 };
                    self.dependencies = (!empty).then_some(kind);
                }
                None
            }
        };
        if !empty {
            self.text_element = text_element;
            self.text.clear();
        } else if let Some(text_element) = text_element {
            // `<name/>`: an empty text.
            self.text.clear();
            self.finish_text(package, text_element)?;
        }
        Ok(())
    }

    fn end(&mut self, name: &[u8]) -> Result<(), String> {
        let Some(package) = self.package else { return Ok(()) };
        if name == b"package" {
            self.finish_package(package);
            self.package = None;
            return Ok(());
        }
        if DependencyKind::from_element(name).is_some() {
            self.dependencies = None;
        }
        if let Some(text_element) = self.text_element.take() {
            self.finish_text(package, text_element)?;
        }
        Ok(())
    }

    fn resolve_reference(&mut self, reference: &quick_xml::events::BytesRef) -> Result<(), String> {
        let mut buffer = CharacterBuffer::default();
        self.text.extend_from_slice(resolve_reference(reference, &mut buffer)?.as_bytes());
        Ok(())
    }

    fn finish_text(&mut self, package: PackageInProgress, element: TextElement) -> Result<(), String> {
        let text = std::mem::take(&mut self.text);
        let outcome = self.store_text(package, element, &text);
        self.text = text;
        outcome
    }

    fn store_text(
        &mut self,
        package: PackageInProgress,
        element: TextElement,
        text: &[u8],
    ) -> Result<(), String> {
        let (data, handle, solvable) = (self.data, package.handle, package.solvable);
        // SAFETY: `pool`, `data` and `solvable` are valid (see `start`); strings handed over are
        // NUL-terminated (`scratch_string`) or come with their length, and libsolv copies them.
        unsafe {
            match element {
                TextElement::Name => (*solvable).name = self.intern(text),
                TextElement::Arch => (*solvable).arch = self.intern(text),
                TextElement::Vendor => (*solvable).vendor = self.intern(text),
                TextElement::Checksum => {
                    let length = sys::solv_chksum_len(self.checksum_type) as usize;
                    if length == 0 || length > MAXIMUM_CHECKSUM_BYTES {
                        return Ok(());
                    }
                    let binary = decode_hex(text, length)
                        .ok_or_else(|| format!("invalid checksum {:?}", String::from_utf8_lossy(text)))?;
                    let key = sys::solv_knownid_SOLVABLE_CHECKSUM as sys::Id;
                    sys::repodata_set_bin_checksum(data, handle, key, self.checksum_type, binary.as_ptr());
                }
                TextElement::Summary => {
                    if self.summary_wanted {
                        self.scratch_string(text);
                        let key = sys::solv_knownid_SOLVABLE_SUMMARY as sys::Id;
                        sys::repodata_set_str(data, handle, key, self.scratch.as_ptr().cast());
                    }
                }
                TextElement::License => self.details.license = Some(c_text(text)),
                TextElement::SourceRpm => {
                    if !text.is_empty() {
                        self.details.sourcerpm = Some(c_text(text));
                    }
                }
                TextElement::File => self.add_file(handle, text),
            }
        }
        Ok(())
    }

    /// Adds a path to the package's file list: directory id plus base name, as libsolv stores it.
    fn add_file(&mut self, handle: sys::Id, path: &[u8]) {
        let (directory, base_name): (&[u8], &[u8]) = match path.iter().rposition(|&byte| byte == b'/') {
            Some(slash) => (&path[..slash], &path[slash + 1..]),
            None => (b"", path),
        };
        if self.last_directory.1 == 0 || self.last_directory.0 != directory {
            // A relative directory is taken from the root, an empty one is the root.
            let mut absolute = Vec::with_capacity(directory.len() + 2);
            if directory.first() != Some(&b'/') {
                absolute.push(b'/');
            }
            absolute.extend_from_slice(directory);
            absolute.push(0);
            // SAFETY: `data` is valid and `absolute` NUL-terminated; create = 1 adds the directory.
            let id = unsafe { sys::repodata_str2dir(self.data, absolute.as_ptr().cast(), 1) };
            self.last_directory = (directory.to_vec(), id);
        }
        self.scratch_string(base_name);
        let key = sys::solv_knownid_SOLVABLE_FILELIST as sys::Id;
        // SAFETY: as above; libsolv copies the base name.
        unsafe {
            sys::repodata_add_dirstr(
                self.data,
                handle,
                key,
                self.last_directory.1,
                self.scratch.as_ptr().cast(),
            )
        };
    }

    /// `<rpm:entry name= flags= epoch= ver= rel= pre= kind=>` appended to the section's list.
    fn add_dependency(
        &mut self,
        package: PackageInProgress,
        kind: DependencyKind,
        element: &BytesStart,
    ) -> Result<(), String> {
        let (mut name, mut flags, mut package_kind, mut prerequisite) = (None, None, None, false);
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|error| error.to_string())?;
            match attribute.key.as_ref() {
                b"name" => name = Some(unescape(attribute.value)?),
                b"flags" => flags = Some(attribute.value),
                b"kind" => package_kind = Some(unescape(attribute.value)?),
                b"pre" => prerequisite = attribute.value.first() == Some(&b'1'),
                _ => {}
            }
        }
        let Some(name) = name else { return Ok(()) };
        let package_kind = package_kind.filter(|kind| kind != "package");
        let mut id = match package_kind {
            Some(package_kind) => self.intern(format!("{package_kind}:{name}").as_bytes()),
            None if flags.is_none() && name.starts_with('(') => {
                self.scratch_string(name.as_bytes());
                // SAFETY: `pool` is valid and `scratch` NUL-terminated; 0 = not a valid rich dependency.
                let id = unsafe { sys::pool_parserpmrichdep(self.pool, self.scratch.as_ptr().cast()) };
                if id == 0 {
                    return Ok(());
                }
                id
            }
            None => self.intern(name.as_bytes()),
        };
        if let Some(flags) = flags {
            let evr = self.evr_from_attributes(element)?;
            let relation = DEPENDENCY_FLAGS
                .iter()
                .position(|known| *known == flags.as_ref())
                .map_or(0, |index| index + 1);
            // SAFETY: `pool` is valid; `id` and `evr` are its ids.
            id = unsafe { sys::pool_rel2id(self.pool, id, evr, relation as c_int, 1) };
        }
        let marker = match (kind, prerequisite) {
            (DependencyKind::Requires, true) => sys::solv_knownid_SOLVABLE_PREREQMARKER as sys::Id,
            (DependencyKind::Requires, false) => -(sys::solv_knownid_SOLVABLE_PREREQMARKER as sys::Id),
            _ => 0,
        };
        // SAFETY: the solvable is live; repo_addid_dep may move the repository's dependency array,
        // and only the returned offset is kept.
        unsafe {
            let list = dependency_list(package.solvable, kind);
            *list = sys::repo_addid_dep(self.repo, *list, id, marker);
        }
        Ok(())
    }

    /// `[epoch:]ver[-rel]` from `epoch`, `ver` and `rel` attributes; a zero or empty epoch is left
    /// out unless the version itself looks like `digits:`. 0 when all are empty.
    fn evr_from_attributes(&mut self, element: &BytesStart) -> Result<sys::Id, String> {
        let (mut epoch, mut version, mut release) = (None, None, None);
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|error| error.to_string())?;
            match attribute.key.as_ref() {
                b"epoch" => epoch = Some(unescape(attribute.value)?),
                b"ver" => version = Some(unescape(attribute.value)?),
                b"rel" => release = Some(unescape(attribute.value)?),
                _ => {}
            }
        }
        let mut epoch = epoch.filter(|epoch| !epoch.is_empty() && epoch != "0");
        if epoch.is_none()
            && let Some(version) = &version
        {
            let digits = version.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && version.as_bytes().get(digits) == Some(&b':') {
                epoch = Some(Cow::Borrowed("0"));
            }
        }
        let mut evr = Vec::new();
        if let Some(epoch) = epoch {
            evr.extend_from_slice(epoch.as_bytes());
            evr.push(b':');
        }
        if let Some(version) = version {
            evr.extend_from_slice(version.as_bytes());
        }
        if let Some(release) = release {
            evr.push(b'-');
            evr.extend_from_slice(release.as_bytes());
        }
        Ok(if evr.is_empty() { 0 } else { self.intern(&evr) })
    }

    /// The end of a package: defaults, and the package's own `name = EVR` provide.
    fn finish_package(&mut self, package: PackageInProgress) {
        let solvable = package.solvable;
        // SAFETY: the solvable is live; the ids are the pool's.
        unsafe {
            if (*solvable).arch == 0 {
                (*solvable).arch = sys::solv_knownid_ARCH_NOARCH as sys::Id;
            }
            if (*solvable).evr == 0 {
                (*solvable).evr = sys::solv_knownid_ID_EMPTY as sys::Id;
            }
            let arch = (*solvable).arch;
            let source = arch == sys::solv_knownid_ARCH_SRC as sys::Id
                || arch == sys::solv_knownid_ARCH_NOSRC as sys::Id;
            if (*solvable).name != 0 && !source {
                let relation = sys::REL_EQ as c_int;
                let own = sys::pool_rel2id(self.pool, (*solvable).name, (*solvable).evr, relation, 1);
                (*solvable).provides = sys::repo_addid_dep(self.repo, (*solvable).provides, own, 0);
            }
            sys::repo_rewrite_suse_deps(solvable, 0);
        }
        // SAFETY: the solvable is live, of this valid pool.
        let identity = unsafe { solvable_identity(self.pool, solvable) };
        let details = self.details.encode(&identity.borrow());
        // SAFETY: `data` is valid, `handle` the package's solvable, the value NUL-terminated (libsolv
        // copies it).
        unsafe {
            sys::repodata_set_str(self.data, package.handle, self.details_key, details.as_ptr().cast())
        };
        self.dependencies = None;
        self.text_element = None;
    }

    fn intern(&self, text: &[u8]) -> sys::Id {
        // SAFETY: `pool` is valid; the string is passed with its length and copied.
        unsafe { sys::pool_strn2id(self.pool, text.as_ptr().cast::<c_char>(), text.len() as u32, 1) }
    }

    /// Puts `text` NUL-terminated into `scratch` (a NUL inside cuts it short, as in C).
    fn scratch_string(&mut self, text: &[u8]) {
        self.scratch.clear();
        self.scratch.extend_from_slice(text);
        self.scratch.push(0);
    }
}

/// The offset field of `solvable` that holds dependencies of `kind`.
///
/// # Safety
/// `solvable` must point to a live solvable.
unsafe fn dependency_list(solvable: *mut sys::Solvable, kind: DependencyKind) -> *mut sys::Offset {
    // SAFETY: the caller guarantees `solvable` is live; only a field address is taken.
    unsafe {
        match kind {
            DependencyKind::Provides => &raw mut (*solvable).provides,
            DependencyKind::Requires => &raw mut (*solvable).requires,
            DependencyKind::Obsoletes => &raw mut (*solvable).obsoletes,
            DependencyKind::Conflicts => &raw mut (*solvable).conflicts,
            DependencyKind::Recommends => &raw mut (*solvable).recommends,
            DependencyKind::Supplements => &raw mut (*solvable).supplements,
            DependencyKind::Suggests => &raw mut (*solvable).suggests,
            DependencyKind::Enhances => &raw mut (*solvable).enhances,
        }
    }
}

/// An attribute's value, unescaped.
fn attribute<'element>(
    element: &'element BytesStart,
    key: &[u8],
) -> Result<Option<Cow<'element, str>>, String> {
    match element.try_get_attribute(key).map_err(|error| error.to_string())? {
        Some(attribute) => Ok(Some(unescape(attribute.value)?)),
        None => Ok(None),
    }
}

fn unescape(value: Cow<'_, [u8]>) -> Result<Cow<'_, str>, String> {
    let text = match value {
        Cow::Borrowed(bytes) => Cow::Borrowed(std::str::from_utf8(bytes).map_err(|error| error.to_string())?),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8(bytes).map_err(|error| error.to_string())?),
    };
    if !text.contains('&') {
        return Ok(text);
    }
    quick_xml::escape::unescape(&text)
        .map(|unescaped| Cow::Owned(unescaped.into_owned()))
        .map_err(|error| error.to_string())
}

/// The number at the start of `text` (as C's `strtoull`: leading digits, 0 if none).
fn leading_number(text: &str) -> u64 {
    text.trim_start()
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0u64, |number, digit| number.saturating_mul(10).saturating_add(u64::from(digit - b'0')))
}

/// A text as C code would see it: cut at a NUL, invalid UTF-8 replaced.
fn c_text(text: &[u8]) -> String {
    let end = text.iter().position(|&byte| byte == 0).unwrap_or(text.len());
    String::from_utf8_lossy(&text[..end]).into_owned()
}

/// Exactly `length` bytes of hex digits, nothing after them.
fn decode_hex(text: &[u8], length: usize) -> Option<[u8; MAXIMUM_CHECKSUM_BYTES]> {
    if text.len() != 2 * length {
        return None;
    }
    let mut binary = [0; MAXIMUM_CHECKSUM_BYTES];
    for (index, pair) in text.chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        binary[index] = (high * 16 + low) as u8;
    }
    Some(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_media_and_hex() {
        assert_eq!(leading_number("123abc"), 123);
        assert_eq!(leading_number(" 42"), 42);
        assert_eq!(leading_number("x"), 0);
        assert_eq!(decode_hex(b"0aFF", 2).map(|binary| binary[..2].to_vec()), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex(b"0aF", 2), None);
        assert_eq!(decode_hex(b"0aFFzz", 2), None);
        assert_eq!(decode_hex(b"0g", 1), None);
    }
}
