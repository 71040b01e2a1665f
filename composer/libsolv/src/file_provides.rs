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
        let names: HashSet<&str> = owners.iter().map(|(name, ..)| *name).collect();
        let mut added = 0;
        for solvable_id in self.solvables(repo) {
            let name = self.name(solvable_id);
            if !names.contains(name.as_str()) {
                continue;
            }
            let (evr, arch) = (self.evr(solvable_id), self.arch(solvable_id));
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
