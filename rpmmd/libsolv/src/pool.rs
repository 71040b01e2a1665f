//! [`Pool`]: owner of a libsolv pool (all loaded repositories and their solvables), with the
//! identifiers [`SolvableId`] and [`RepoHandle`].

#![allow(unsafe_code)]

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use libsolv_sys as sys;

use crate::considered::ConsideredMap;
use crate::error::SolvError;

/// Architectures a pool can be created for.
pub const SUPPORTED_ARCHITECTURES: [&str; 4] = ["x86_64", "aarch64", "ppc64le", "s390x"];

/// Gives every pool a distinct number, so that a [`RepoHandle`] of one pool is refused by another.
static NEXT_POOL_SERIAL: AtomicU64 = AtomicU64::new(1);

/// A package (solvable) of a [`Pool`]. Only meaningful for the pool that returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SolvableId(pub(crate) i32);

/// A repository loaded into a [`Pool`]. Only meaningful for the pool that returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RepoHandle {
    pub(crate) pool_serial: u64,
    pub(crate) index: usize,
}

/// A repository of the pool: its name as given, and libsolv's `Repo`.
pub(crate) struct Repository {
    pub(crate) name: String,
    pub(crate) raw: NonNull<sys::Repo>,
}

/// A libsolv pool set up for rpm semantics and one architecture (plus `noarch`).
///
/// `Send` (it may move to another thread) but not `Sync`: libsolv pools are not thread-safe.
pub struct Pool {
    pub(crate) raw: NonNull<sys::Pool>,
    pub(crate) serial: u64,
    pub(crate) arch: String,
    pub(crate) repositories: Vec<Repository>,
    /// The exclusion set of [`Pool::set_excluded`]; kept to rebuild the map when solvables are added.
    pub(crate) excluded: BTreeSet<SolvableId>,
    /// The map `pool->considered` points to, while there is an exclusion set.
    pub(crate) considered: Option<ConsideredMap>,
    /// Whether `pool_addfileprovides` ran since the last repository was added.
    pub(crate) file_provides_added: Cell<bool>,
    /// Whether the whatprovides index is up to date with the repositories and exclusions.
    pub(crate) whatprovides_current: Cell<bool>,
    /// The file paths used as dependencies, as recorded by the last `pool_addfileprovides_queue`.
    pub(crate) file_dependencies: std::cell::RefCell<Vec<sys::Id>>,
}

// SAFETY: the pool and everything it points to are owned by this value and only reached through
// it; libsolv keeps no thread-local state for a pool, so using it from another thread after a
// move is fine. `Pool` is not `Sync` (the raw pointers and `Cell`s make sure of that).
unsafe impl Send for Pool {}

impl fmt::Debug for Pool {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.repositories.iter().map(|repository| repository.name.as_str()).collect();
        formatter
            .debug_struct("Pool")
            .field("arch", &self.arch)
            .field("repositories", &names)
            .field("excluded", &self.excluded.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: `self.raw` came from pool_create and is freed exactly once, here; pool_free also
        // frees all repositories. pool_free does not touch `considered`, which is dropped afterwards.
        unsafe { sys::pool_free(self.raw.as_ptr()) };
    }
}

impl Pool {
    /// Creates a pool with rpm semantics (`DISTTYPE_RPM`) that installs packages of `arch` and
    /// `noarch` only (no multilib). `arch` must be one of [`SUPPORTED_ARCHITECTURES`].
    pub fn new(arch: &str) -> Result<Pool, SolvError> {
        if !SUPPORTED_ARCHITECTURES.contains(&arch) {
            return Err(SolvError::UnsupportedArchitecture { arch: arch.to_owned() });
        }
        let arch_policy =
            CString::new(arch).map_err(|_| SolvError::UnsupportedArchitecture { arch: arch.into() })?;
        // SAFETY: pool_create has no preconditions; it aborts on allocation failure, never returns NULL.
        let raw = NonNull::new(unsafe { sys::pool_create() }).expect("pool_create returned NULL");
        // SAFETY: `raw` is a fresh, valid pool. The disttype must be set before the arch policy,
        // because it decides the id of "noarch", which the policy always allows. A policy of a
        // single architecture means that architecture plus noarch and nothing else.
        unsafe {
            sys::pool_setdisttype(raw.as_ptr(), sys::DISTTYPE_RPM as i32);
            sys::pool_setarchpolicy(raw.as_ptr(), arch_policy.as_ptr());
        }
        Ok(Pool {
            raw,
            serial: NEXT_POOL_SERIAL.fetch_add(1, AtomicOrdering::Relaxed),
            arch: arch.to_owned(),
            repositories: Vec::new(),
            excluded: BTreeSet::new(),
            considered: None,
            file_provides_added: Cell::new(false),
            whatprovides_current: Cell::new(false),
            file_dependencies: std::cell::RefCell::new(Vec::new()),
        })
    }

    /// The architecture the pool was created for.
    pub fn architecture(&self) -> &str {
        &self.arch
    }

    /// Builds the indexes the solver needs (`pool_addfileprovides` + `pool_createwhatprovides`).
    /// Call after all repositories are loaded; [`Pool::select`] and [`Pool::solve`] also do it
    /// when something changed since.
    pub fn prepare(&mut self) {
        self.ensure_prepared();
    }

    /// Brings the file provides and the whatprovides index up to date.
    pub(crate) fn ensure_prepared(&self) {
        if !self.file_provides_added.get() {
            self.add_file_provides_by_hash();
            let mut files = crate::queue::Queue::new();
            let mut installed_files = crate::queue::Queue::new();
            // SAFETY: `self.raw` is a valid pool and both queues are initialised and exclusively
            // borrowed. No Rust reference into pool memory is alive: this crate only hands out owned
            // copies of pool data.
            unsafe {
                sys::pool_addfileprovides_queue(
                    self.raw.as_ptr(),
                    files.as_mut_ptr(),
                    installed_files.as_mut_ptr(),
                )
            };
            *self.file_dependencies.borrow_mut() = files.as_slice().to_vec();
            self.file_provides_added.set(true);
            self.whatprovides_current.set(false);
        }
        if !self.whatprovides_current.get() {
            // SAFETY: as above.
            unsafe { sys::pool_createwhatprovides(self.raw.as_ptr()) };
            self.whatprovides_current.set(true);
        }
    }

    /// The name the repository was loaded with.
    ///
    /// # Panics
    /// If `repo` belongs to another pool.
    pub fn repo_name(&self, repo: RepoHandle) -> &str {
        &self.repository(repo).name
    }

    /// The repository loaded under `name` (the first one, if several share the name).
    pub fn repo_by_name(&self, name: &str) -> Option<RepoHandle> {
        self.repositories
            .iter()
            .position(|repository| repository.name == name)
            .map(|index| RepoHandle { pool_serial: self.serial, index })
    }

    /// All repositories in loading order.
    pub fn repos(&self) -> Vec<RepoHandle> {
        (0..self.repositories.len()).map(|index| RepoHandle { pool_serial: self.serial, index }).collect()
    }

    /// Compares two `[E:]V-R` strings with rpm's rules (libsolv's `pool_evrcmp_str`).
    pub fn compare_evr(&self, left: &str, right: &str) -> Ordering {
        let (Ok(left), Ok(right)) = (CString::new(left), CString::new(right)) else {
            return left.cmp(right);
        };
        // SAFETY: `self.raw` is a valid pool and both strings are NUL-terminated and outlive the call.
        let result = unsafe {
            sys::pool_evrcmp_str(self.raw.as_ptr(), left.as_ptr(), right.as_ptr(), sys::EVRCMP_COMPARE as i32)
        };
        result.cmp(&0)
    }

    pub(crate) fn repository(&self, repo: RepoHandle) -> &Repository {
        assert_eq!(repo.pool_serial, self.serial, "RepoHandle used with a pool it does not belong to");
        &self.repositories[repo.index]
    }

    /// The solvable behind `id`, checked to be a package of a repository of this pool.
    ///
    /// # Panics
    /// If `id` is not a package of this pool.
    pub(crate) fn solvable_pointer(&self, id: SolvableId) -> *mut sys::Solvable {
        // SAFETY: `self.raw` is a valid pool; only plain fields are read.
        let (solvables, count) = unsafe { ((*self.raw.as_ptr()).solvables, (*self.raw.as_ptr()).nsolvables) };
        assert!(
            id.0 > sys::SYSTEMSOLVABLE as i32 && id.0 < count,
            "SolvableId {} is not a package of this pool",
            id.0
        );
        // SAFETY: the index was checked against the allocated number of solvables.
        let solvable = unsafe { solvables.add(id.0 as usize) };
        // SAFETY: `solvable` points into the pool's solvable array.
        assert!(!unsafe { (*solvable).repo }.is_null(), "SolvableId {} is not a package of this pool", id.0);
        solvable
    }

    /// Copies the string of a pool string id (`pool_id2str`).
    pub(crate) fn id_to_string(&self, id: sys::Id) -> String {
        // SAFETY: `self.raw` is a valid pool; pool_id2str accepts any id and returns a string
        // owned by the pool, which is copied before anything can change the pool.
        unsafe { c_string_to_owned(sys::pool_id2str(self.raw.as_ptr(), id)) }.unwrap_or_default()
    }

    /// The pool's last error text (`pool_errstr`).
    pub(crate) fn error_string(&self) -> String {
        // SAFETY: `self.raw` is a valid pool; the returned string is owned by the pool and copied at once.
        unsafe { c_string_to_owned(sys::pool_errstr(self.raw.as_ptr())) }
            .unwrap_or_else(|| "unknown libsolv error".to_owned())
    }
}

/// Copies a C string, lossily converting invalid UTF-8; `None` for NULL.
///
/// # Safety
/// `pointer` must be NULL or point to a NUL-terminated string that stays valid during the call.
pub(crate) unsafe fn c_string_to_owned(pointer: *const c_char) -> Option<String> {
    if pointer.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    Some(unsafe { CStr::from_ptr(pointer) }.to_string_lossy().into_owned())
}
