//! File dependencies that primary metadata leaves unresolved, and file provides added from
//! elsewhere. Primary metadata lists only some files (`/etc/*`, `*bin/*`, ...); a dependency on any
//! other path needs filelists, which libsolv loads slowly on large repositories. The caller finds the
//! owners of just the unresolved paths and adds them here.

#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};

use libsolv_sys as sys;

use crate::error::SolvError;
use crate::pool::{Pool, RepoHandle};

impl Pool {
    /// File paths that some package depends on and no loaded package provides.
    pub fn unresolved_file_dependencies(&self) -> Vec<String> {
        self.ensure_prepared();
        let dependencies = self.file_dependencies.borrow().clone();
        let mut unresolved = Vec::new();
        for id in dependencies {
            // SAFETY: `self.raw` is a valid pool with an up-to-date whatprovides index (ensured
            // above); `id` came from pool_addfileprovides_queue on this pool, and the returned list
            // is zero-terminated.
            let provided = unsafe { *sys::pool_whatprovides_ptr(self.raw.as_ptr(), id) != 0 };
            if !provided {
                // SAFETY: as above; pool_id2str returns a NUL-terminated string owned by the pool,
                // copied before any further call.
                let path = unsafe { CStr::from_ptr(sys::pool_id2str(self.raw.as_ptr(), id)) };
                unresolved.push(path.to_string_lossy().into_owned());
            }
        }
        unresolved.sort();
        unresolved.dedup();
        unresolved
    }

    /// Records in `repo`'s metadata which file provides [`Pool::prepare`] added, so that a `.solv`
    /// cache written afterwards lets a later pool skip searching every file list for them (libsolv's
    /// `REPOSITORY_ADDEDFILEPROVIDES`, as its own tools use it). Call after `prepare`, before
    /// [`Pool::write_solv_cache`].
    pub fn record_added_file_provides(&mut self, repo: RepoHandle) {
        self.ensure_prepared();
        let raw_repo = self.repository(repo).raw.as_ptr();
        crate::file_search::mark_file_provides_added(raw_repo, &self.file_dependencies.borrow());
    }

    /// Adds file provides to solvables of `repo`: each owner is (name, `[E:]V-R`, arch, path), and
    /// every solvable matching name, EVR and arch gains `path` as a provide. One pass over the
    /// repository whatever the number of owners. Returns how many provides were added.
    pub fn add_file_provides(
        &mut self,
        repo: RepoHandle,
        owners: &[(&str, &str, &str, &str)],
    ) -> Result<usize, SolvError> {
        let mut wanted: HashMap<(&str, &str, &str), Vec<CString>> = HashMap::new();
        for (name, evr, arch, path) in owners {
            let path = CString::new(*path)
                .map_err(|_| SolvError::NulByte { what: "file path", value: (*path).to_owned() })?;
            wanted.entry((name, evr, arch)).or_default().push(path);
        }
        // Compare interned name ids rather than strings: one pass over the repository, and no
        // allocation for the (many) solvables whose name is not wanted.
        let mut name_ids = HashSet::new();
        for (name, ..) in owners {
            let Ok(name) = CString::new(*name) else { continue };
            // SAFETY: `self.raw` is a valid pool and `name` is NUL-terminated; with create = 0 the
            // pool is not changed, and 0 means that no solvable can have this name.
            let id = unsafe { sys::pool_str2id(self.raw.as_ptr(), name.as_ptr(), 0) };
            if id != 0 {
                name_ids.insert(id);
            }
        }
        let mut added = 0;
        for solvable_id in self.solvables(repo) {
            // SAFETY: `solvable_id` is a solvable of this valid pool (from `solvables(repo)`); only its
            // plain `name` field is read.
            let name_id = unsafe { (*sys::pool_id2solvable(self.raw.as_ptr(), solvable_id.0)).name };
            if !name_ids.contains(&name_id) {
                continue;
            }
            let (name, evr, arch) = (self.name(solvable_id), self.evr(solvable_id), self.arch(solvable_id));
            let Some(paths) = wanted.get(&(name.as_str(), evr.as_str(), arch.as_str())) else { continue };
            for path in paths {
                // SAFETY: `self.raw` is a valid pool, `solvable_id` is one of its solvables (from
                // `solvables(repo)`), and `path` is NUL-terminated. repo_addid_dep may move the repo's
                // dependency array; no pointer into it is held across the call.
                unsafe {
                    let dependency = sys::pool_str2id(self.raw.as_ptr(), path.as_ptr(), 1);
                    let solvable = sys::pool_id2solvable(self.raw.as_ptr(), solvable_id.0);
                    (*solvable).provides =
                        sys::repo_addid_dep((*solvable).repo, (*solvable).provides, dependency, 0);
                }
                added += 1;
            }
        }
        if added > 0 {
            self.whatprovides_current.set(false);
        }
        Ok(added)
    }
}
