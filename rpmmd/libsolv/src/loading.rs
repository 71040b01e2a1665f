//! Loading repositories into a [`Pool`]: rpm-md XML files and `.solv` caches, and writing caches.

#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use libsolv_sys as sys;

use crate::error::{MetadataKind, SolvError};
use crate::file::{CFile, MetadataReader};
use crate::pool::{Pool, RepoHandle, Repository};
use crate::primary::read_primary;

impl Pool {
    /// Loads an rpm-md repository: `primary.xml`, and optionally `filelists.xml` (which extends
    /// the packages of primary with their full file lists) and `updateinfo.xml`. Each file may be
    /// plain or compressed (`.gz`, `.xz`, `.zst`, `.bz2`, recognised by suffix).
    ///
    /// `priority`: packages of a repository with a higher priority win over those of lower ones.
    /// On error, nothing of the repository stays in the pool.
    pub fn add_rpmmd_repo(
        &mut self,
        name: &str,
        priority: i32,
        primary: &Path,
        filelists: Option<&Path>,
        updateinfo: Option<&Path>,
    ) -> Result<RepoHandle, SolvError> {
        self.add_repository(name, priority, |pool, repo| {
            pool.read_primary_into(repo, primary)?;
            if let Some(filelists) = filelists {
                pool.read_into(repo, MetadataKind::Filelists, filelists, |stream| {
                    // REPO_EXTEND_SOLVABLES adds the files to the packages read from primary
                    // (joined by pkgid); REPO_REUSE_REPODATA keeps them in primary's repodata:
                    // with a second repodata, repo_write merges two directory pools, which is
                    // quadratic (48 s instead of 0.3 s for 60,000 packages).
                    // SAFETY: `repo` and `stream` are valid for the call.
                    unsafe {
                        sys::repo_add_rpmmd(
                            repo,
                            stream,
                            std::ptr::null(),
                            (sys::REPO_EXTEND_SOLVABLES | sys::REPO_REUSE_REPODATA) as i32,
                        )
                    }
                })?;
            }
            if let Some(updateinfo) = updateinfo {
                pool.read_into(repo, MetadataKind::Updateinfo, updateinfo, |stream| {
                    // SAFETY: `repo` and `stream` are valid for the call.
                    unsafe { sys::repo_add_updateinfoxml(repo, stream, 0) }
                })?;
            }
            Ok(())
        })
    }

    /// Loads a repository from a `.solv` cache written by [`Pool::write_solv_cache`].
    pub fn add_solv_cache_repo(
        &mut self,
        name: &str,
        priority: i32,
        path: &Path,
    ) -> Result<RepoHandle, SolvError> {
        self.add_repository(name, priority, |pool, repo| {
            pool.read_into(repo, MetadataKind::SolvCache, path, |stream| {
                // SAFETY: `repo` and `stream` are valid for the call.
                unsafe { sys::repo_add_solv(repo, stream, 0) }
            })
        })
    }

    /// Writes the repository as a `.solv` cache: to `path` + `.tmp` first, then renamed to `path`,
    /// so that readers never see a partial file. A `.gz`/`.xz`/`.zst` suffix of `path` compresses.
    /// Attributes nothing here reads ([`CACHE_DROPPED_KEYS`]) are left out.
    pub fn write_solv_cache(&self, repo: RepoHandle, path: &Path) -> Result<(), SolvError> {
        let raw_repo = self.repository(repo).raw;
        let mut temporary_name = OsString::from(path.as_os_str());
        temporary_name.push(".tmp");
        let temporary_path = PathBuf::from(temporary_name);
        let write_error = |message: String| SolvError::WriteCache { path: path.to_path_buf(), message };

        let stream = CFile::create_for_writing(&temporary_path, path)
            .map_err(|error| write_error(format!("creating {}: {error}", temporary_path.display())))?;
        // SAFETY: `raw_repo` is a repository of this valid pool and `stream` is open for writing;
        // the writer is freed after use, and the key filter is a plain function.
        let status = unsafe {
            let writer = sys::repowriter_create(raw_repo.as_ptr());
            sys::repowriter_set_keyfilter(writer, Some(keep_solver_keys), std::ptr::null_mut());
            let status = sys::repowriter_write(writer, stream.as_ptr());
            sys::repowriter_free(writer);
            status
        };
        let closed = stream.close();
        let result = if status != 0 {
            Err(write_error(self.error_string()))
        } else if let Err(error) = closed {
            Err(write_error(format!("closing {}: {error}", temporary_path.display())))
        } else {
            std::fs::rename(&temporary_path, path)
                .map_err(|error| write_error(format!("renaming {}: {error}", temporary_path.display())))
        };
        if result.is_err() {
            // Best effort: the partial file is useless, and its absence is what matters.
            let _ = std::fs::remove_file(&temporary_path);
        }
        result
    }

    /// Creates a repository, fills it with `load`, and registers it; frees it again if `load` fails.
    pub(crate) fn add_repository(
        &mut self,
        name: &str,
        priority: i32,
        load: impl FnOnce(&Pool, *mut sys::Repo) -> Result<(), SolvError>,
    ) -> Result<RepoHandle, SolvError> {
        let c_name = CString::new(name)
            .map_err(|_| SolvError::NulByte { what: "repository name", value: name.to_owned() })?;
        // SAFETY: `self.raw` is a valid pool and `c_name` a NUL-terminated string (libsolv copies it).
        let raw_repo = unsafe { sys::repo_create(self.raw.as_ptr(), c_name.as_ptr()) };
        let raw_repo = NonNull::new(raw_repo).expect("repo_create returned NULL");
        // SAFETY: `raw_repo` is the valid repository just created; only a plain field is written.
        unsafe { (*raw_repo.as_ptr()).priority = priority };

        let loaded = load(self, raw_repo.as_ptr());
        // The repository's solvables (even some of a failed load) invalidate the indexes.
        self.file_provides_added.set(false);
        self.whatprovides_current.set(false);
        match loaded {
            Ok(()) => {
                // SAFETY: `raw_repo` is a valid repository; internalizing makes its data searchable.
                unsafe { sys::repo_internalize(raw_repo.as_ptr()) };
                self.repositories.push(Repository { name: name.to_owned(), raw: raw_repo });
                self.refresh_considered();
                Ok(RepoHandle { pool_serial: self.serial, index: self.repositories.len() - 1 })
            }
            Err(error) => {
                // SAFETY: `raw_repo` is valid and no handle to it was given out; reuseids=1 lets
                // the pool reuse the ids of its solvables.
                unsafe { sys::repo_free(raw_repo.as_ptr(), 1) };
                Err(error)
            }
        }
    }

    /// Reads `primary.xml` (plain, `.gz`, `.zst` or `.xz`) with [`crate::primary`], decompressing
    /// on a second thread; `.bz2` with libsolv's own reader.
    fn read_primary_into(&self, repo: *mut sys::Repo, path: &Path) -> Result<(), SolvError> {
        let kind = MetadataKind::Primary;
        let open_error = |source| SolvError::Open { kind, path: path.to_path_buf(), source };
        let read_error = |message| SolvError::Read { kind, path: path.to_path_buf(), message };
        if path.extension().is_some_and(|extension| extension == "bz2") {
            return self.read_primary_with_libsolv(repo, path);
        }
        let mut input = MetadataReader::open(path).map_err(open_error)?;
        let parsed = read_primary(self.raw.as_ptr(), repo, &mut input);
        decompressed_then_parsed(input.finish(), parsed).map_err(read_error)
    }

    /// Reads `primary.xml` with libsolv's own reader (`repo_add_rpmmd`).
    pub(crate) fn read_primary_with_libsolv(
        &self,
        repo: *mut sys::Repo,
        path: &Path,
    ) -> Result<(), SolvError> {
        self.read_into(repo, MetadataKind::Primary, path, |stream| {
            // SAFETY: `repo` and `stream` are valid for the call; NULL = the default language.
            unsafe { sys::repo_add_rpmmd(repo, stream, std::ptr::null(), 0) }
        })
    }

    /// Opens `path` and hands the stream to `read`, which returns libsolv's status (0 = success).
    fn read_into(
        &self,
        repo: *mut sys::Repo,
        kind: MetadataKind,
        path: &Path,
        read: impl FnOnce(*mut sys::FILE) -> i32,
    ) -> Result<(), SolvError> {
        debug_assert!(!repo.is_null());
        let stream = CFile::open_for_reading(path).map_err(|source| SolvError::Open {
            kind,
            path: path.to_path_buf(),
            source,
        })?;
        let status = read(stream.as_ptr());
        let parsed = if status == 0 { Ok(()) } else { Err(self.error_string()) };
        decompressed_then_parsed(stream.finish_reading(), parsed).map_err(|message| SolvError::Read {
            kind,
            path: path.to_path_buf(),
            message,
        })
    }
}

/// How reading a possibly compressed file went: a corrupt or truncated file is the cause of
/// whatever the parser then said, so it comes first.
fn decompressed_then_parsed(
    decompressed: std::io::Result<()>,
    parsed: Result<(), String>,
) -> Result<(), String> {
    match (decompressed, parsed) {
        (Ok(()), parsed) => parsed,
        (Err(error), Ok(())) => Err(format!("decompressing: {error}")),
        (Err(error), Err(message)) => Err(format!("decompressing: {error}; then {message}")),
    }
}

/// `KEY_STORAGE_DROPPED` of libsolv's `repodata.h`: a key filter's answer for "do not write".
const KEY_STORAGE_DROPPED: std::ffi::c_int = 0;
/// `KEY_STORAGE_INCORE` of libsolv's `repodata.h`: a key filter's answer for "load into memory"
/// (rather than read from the file on each lookup).
const KEY_STORAGE_INCORE: std::ffi::c_int = 2;

/// Package attributes a `.solv` cache leaves out: texts and build details that neither solving
/// nor the package details read ([`crate::Package`]); so a pool loaded from a cache has no
/// summaries ([`Pool::summary`]). The long descriptions alone are a third of a cache's strings,
/// and writing and reading them made up a good part of the cold and warm times.
const CACHE_DROPPED_KEYS: [sys::solv_knownid; 7] = [
    sys::solv_knownid_SOLVABLE_SUMMARY,
    sys::solv_knownid_SOLVABLE_DESCRIPTION,
    sys::solv_knownid_SOLVABLE_PACKAGER,
    sys::solv_knownid_SOLVABLE_URL,
    sys::solv_knownid_SOLVABLE_BUILDHOST,
    sys::solv_knownid_SOLVABLE_GROUP,
    sys::solv_knownid_SOLVABLE_HEADEREND,
];

/// Key filter for the cache writer: libsolv's standard filter minus [`CACHE_DROPPED_KEYS`], with
/// checksums kept in memory.
unsafe extern "C" fn keep_solver_keys(
    repo: *mut sys::Repo,
    key: *mut sys::Repokey,
    filter_data: *mut std::ffi::c_void,
) -> std::ffi::c_int {
    // SAFETY: libsolv calls the filter with a valid key of `repo`; the standard filter gets the
    // arguments libsolv gave.
    unsafe {
        if CACHE_DROPPED_KEYS.iter().any(|&dropped| (*key).name == dropped as sys::Id) {
            return KEY_STORAGE_DROPPED;
        }
        // libsolv's filter pages checksums in from the file on lookup, 32 KiB at a time and only
        // a few pages held: looking up the checksums of 12,000 packages spread over a 60,000
        // package repository read 320 MB. Kept in memory they cost 2 MB.
        if (*key).name == sys::solv_knownid_SOLVABLE_CHECKSUM as sys::Id {
            return KEY_STORAGE_INCORE;
        }
        sys::repo_write_stdkeyfilter(repo, key, filter_data)
    }
}
