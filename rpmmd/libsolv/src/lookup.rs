//! Reading packages out of a [`Pool`]: the solvables of a repository and their details.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_uint};

use libsolv_sys as sys;

use crate::details::{DETAILS_KEY, Identity, OwnedIdentity, PackageDetails};
use crate::package::{Package, split_evr};
use crate::pool::{Pool, RepoHandle, SolvableId, c_string_to_owned};

/// `notfound` value for numeric lookups: an absent size or time reads as 0.
const ABSENT_NUMBER: u64 = 0;

/// Name prefixes libsolv gives solvables that are not packages (updateinfo, products, patterns).
const NON_PACKAGE_PREFIXES: [&str; 4] = ["patch:", "product:", "pattern:", "application:"];

/// libsolv's well-known ids (`solv_knownid`) are `u32` constants; lookups take an `Id`.
fn known_id(id: sys::solv_knownid) -> sys::Id {
    id as sys::Id
}

impl Pool {
    /// All binary packages of a repository, in load order. Source rpms (arch `src`/`nosrc`) and
    /// the `patch:` solvables that updateinfo adds are left out.
    ///
    /// # Panics
    /// If `repo` belongs to another pool.
    pub fn solvables(&self, repo: RepoHandle) -> Vec<SolvableId> {
        let raw_repo = self.repository(repo).raw.as_ptr();
        let source_arches = [known_id(sys::solv_knownid_ARCH_SRC), known_id(sys::solv_knownid_ARCH_NOSRC)];
        // SAFETY: `raw_repo` is a repository of this valid pool, and start..end lies within the
        // pool's solvable array; only plain fields are read.
        let candidates: Vec<(sys::Id, sys::Id)> = unsafe {
            let solvables = (*self.raw.as_ptr()).solvables;
            ((*raw_repo).start..(*raw_repo).end)
                .map(|index| (index, &*solvables.add(index as usize)))
                .filter(|(_, solvable)| solvable.repo == raw_repo && !source_arches.contains(&solvable.arch))
                .map(|(index, solvable)| (index, solvable.name))
                .collect()
        };
        candidates
            .into_iter()
            .filter(|&(_, name)| !self.is_non_package_name(name))
            .map(|(index, _)| SolvableId(index))
            .collect()
    }

    /// Whether a solvable name carries a kind prefix (`patch:`, `product:`, ...) of a non-package.
    fn is_non_package_name(&self, name: sys::Id) -> bool {
        // SAFETY: `self.raw` is a valid pool and `name` one of its ids; pool_id2str returns a
        // NUL-terminated string owned by the pool, only borrowed here (no allocation: this runs for
        // every solvable of a repository).
        let name = unsafe { CStr::from_ptr(sys::pool_id2str(self.raw.as_ptr(), name)) };
        NON_PACKAGE_PREFIXES.iter().any(|prefix| name.to_bytes().starts_with(prefix.as_bytes()))
    }

    /// Package name.
    ///
    /// # Panics
    /// If `id` is not a package of this pool (so for every accessor below).
    pub fn name(&self, id: SolvableId) -> String {
        // SAFETY: `solvable_pointer` returns a checked pointer to a live solvable.
        self.id_to_string(unsafe { (*self.solvable_pointer(id)).name })
    }

    /// `[E:]V-R`, as libsolv stores it (no epoch when it is 0).
    pub fn evr(&self, id: SolvableId) -> String {
        // SAFETY: `solvable_pointer` returns a checked pointer to a live solvable.
        self.id_to_string(unsafe { (*self.solvable_pointer(id)).evr })
    }

    /// Architecture.
    pub fn arch(&self, id: SolvableId) -> String {
        // SAFETY: `solvable_pointer` returns a checked pointer to a live solvable.
        self.id_to_string(unsafe { (*self.solvable_pointer(id)).arch })
    }

    /// `name-[E:]V-R.arch`.
    pub fn nevra(&self, id: SolvableId) -> String {
        format!("{}-{}.{}", self.name(id), self.evr(id), self.arch(id))
    }

    /// The repository the package was loaded from.
    pub fn repo_of(&self, id: SolvableId) -> RepoHandle {
        // SAFETY: `solvable_pointer` returns a checked pointer to a live solvable.
        let raw_repo = unsafe { (*self.solvable_pointer(id)).repo };
        let index = self
            .repositories
            .iter()
            .position(|repository| repository.raw.as_ptr() == raw_repo)
            .expect("every solvable belongs to a registered repository");
        RepoHandle { pool_serial: self.serial, index }
    }

    /// The package's one-line summary. Not part of [`Package`]: resolving thousands of packages
    /// needs no summaries, and each lookup costs. `None` when the repository came from a `.solv`
    /// cache, which leaves summaries out.
    pub fn summary(&self, id: SolvableId) -> Option<String> {
        let solvable = self.solvable_pointer(id);
        // SAFETY: `solvable` is a checked pointer to a live solvable; the string is copied at once.
        unsafe {
            c_string_to_owned(sys::solvable_lookup_str(
                solvable,
                known_id(sys::solv_knownid_SOLVABLE_SUMMARY),
            ))
        }
    }

    /// All details of a package, copied out of the pool.
    pub fn package(&self, id: SolvableId) -> Package {
        let solvable = self.solvable_pointer(id);
        // SAFETY: `solvable_pointer` returns a checked pointer to a live solvable of this pool.
        let identity = unsafe { solvable_identity(self.raw.as_ptr(), solvable) };
        let repo = self.repo_name(self.repo_of(id)).to_owned();
        let details = self
            .stored_details(solvable, &identity.borrow())
            .unwrap_or_else(|| self.looked_up_details(solvable));
        let OwnedIdentity { name, evr, arch } = identity;
        Package {
            checksum: self.checksum(solvable),
            name,
            epoch: evr.epoch,
            version: evr.version,
            release: evr.release,
            arch,
            repo,
            location: details.location.unwrap_or_default(),
            download_size: details.download_size,
            install_size: details.install_size,
            sourcerpm: details.sourcerpm,
            build_time: details.build_time,
            license: details.license,
        }
    }

    /// The package checksum: type name and lowercase hex digest.
    fn checksum(&self, solvable: *mut sys::Solvable) -> Option<(String, String)> {
        let mut checksum_type: sys::Id = 0;
        // SAFETY: `solvable` is a checked pointer to a live solvable; the digest is NULL or
        // `solv_chksum_len(type)` bytes owned by the repository data, copied at once, and the
        // type name a static string.
        unsafe {
            let key = known_id(sys::solv_knownid_SOLVABLE_CHECKSUM);
            let digest = sys::solvable_lookup_bin_checksum(solvable, key, &mut checksum_type);
            let length = usize::try_from(sys::solv_chksum_len(checksum_type)).unwrap_or(0);
            if digest.is_null() || length == 0 {
                return None;
            }
            let digest = std::slice::from_raw_parts(digest, length);
            let type_name = c_string_to_owned(sys::solv_chksum_type2str(checksum_type))?;
            Some((type_name, lowercase_hex(digest)))
        }
    }

    /// The details the primary reader stored as one attribute ([`crate::details`]), if any.
    fn stored_details(&self, solvable: *mut sys::Solvable, identity: &Identity) -> Option<PackageDetails> {
        // SAFETY: `self.raw` is a valid pool and the name NUL-terminated; create = 0 leaves the
        // pool unchanged, and 0 means no repository has the attribute.
        let key = unsafe { sys::pool_str2id(self.raw.as_ptr(), DETAILS_KEY.as_ptr(), 0) };
        if key == 0 {
            return None;
        }
        // SAFETY: `solvable` is a checked pointer to a live solvable; the string is NULL or owned
        // by the repository data, and is decoded (copied) before any further libsolv call.
        unsafe {
            let encoded = sys::solvable_lookup_str(solvable, key);
            if encoded.is_null() {
                return None;
            }
            PackageDetails::decode(CStr::from_ptr(encoded).to_bytes(), identity)
        }
    }

    /// The details from libsolv's own attributes, as its rpm-md reader stores them.
    fn looked_up_details(&self, solvable: *mut sys::Solvable) -> PackageDetails {
        // SAFETY: `solvable` is a checked pointer to a live solvable of this pool. The lookup
        // functions return NULL or strings in pool-owned temporary space, which are copied before
        // the next libsolv call can reuse that space.
        unsafe {
            let mut media_number: c_uint = 0;
            let location = c_string_to_owned(sys::solvable_lookup_location(solvable, &mut media_number));
            let number =
                |key: sys::solv_knownid| sys::solvable_lookup_num(solvable, known_id(key), ABSENT_NUMBER);
            let string =
                |key: sys::solv_knownid| c_string_to_owned(sys::solvable_lookup_str(solvable, known_id(key)));
            PackageDetails {
                location,
                download_size: number(sys::solv_knownid_SOLVABLE_DOWNLOADSIZE),
                install_size: number(sys::solv_knownid_SOLVABLE_INSTALLSIZE),
                sourcerpm: c_string_to_owned(sys::solvable_lookup_sourcepkg(solvable)),
                build_time: number(sys::solv_knownid_SOLVABLE_BUILDTIME),
                license: string(sys::solv_knownid_SOLVABLE_LICENSE),
            }
        }
    }
}

/// A solvable's name, EVR and arch, copied (invalid UTF-8 replaced, as everywhere in this crate).
///
/// # Safety
/// `solvable` must point to a live solvable of `pool`, a valid pool.
pub(crate) unsafe fn solvable_identity(
    pool: *mut sys::Pool,
    solvable: *const sys::Solvable,
) -> OwnedIdentity {
    // SAFETY: guaranteed by the caller; pool_id2str returns pool-owned strings, copied at once.
    unsafe {
        let text = |id: sys::Id| c_string_to_owned(sys::pool_id2str(pool, id)).unwrap_or_default();
        OwnedIdentity {
            name: text((*solvable).name),
            evr: split_evr(&text((*solvable).evr)),
            arch: text((*solvable).arch),
        }
    }
}

/// `bytes` as lowercase hex digits.
fn lowercase_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = vec![0; 2 * bytes.len()];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    String::from_utf8(hex).unwrap_or_default()
}
