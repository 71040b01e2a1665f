//! Adding file provides from the packages' file lists, one hash lookup per file-list entry.
//!
//! libsolv's `pool_addfileprovides` compares every file-list entry in a wanted directory with every
//! wanted path, which is quadratic: for 60,000 packages and 7,000 file dependencies it took about
//! 0.3 s of a 2 s cold resolve. This does the same work with a hash map first and records it, so
//! that libsolv's pass skips the search.

#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};

use libsolv_sys as sys;

use crate::pool::Pool;
use crate::queue::Queue;

/// libsolv marks relation ids (`ISRELDEP`) with the top bit; the rest indexes `pool->rels`.
const RELATION_ID_MARKER: u32 = 0x8000_0000;
/// Relation flags below this value are plain version comparisons (`<`, `=`, `>` combined).
const FIRST_NON_COMPARISON_FLAG: i32 = 8;

/// Wanted paths of one repodata by (directory id, base name): the file dependency ids.
type PathTable<'paths> = HashMap<(sys::Id, &'paths [u8]), Vec<sys::Id>>;

/// A path some package depends on, split as libsolv's file lists store it.
struct WantedPath {
    id: sys::Id,
    directory: CString,
    base_name: Vec<u8>,
}

impl Pool {
    /// Adds to every package the file provides its file list holds for paths that some package
    /// depends on, in every repository whose `.solv` cache does not already have them, and records
    /// that in the repository (`REPOSITORY_ADDEDFILEPROVIDES`), so that `pool_addfileprovides`
    /// afterwards finds nothing left to search and only collects the file dependencies.
    pub(crate) fn add_file_provides_by_hash(&self) {
        // Repositories from `.solv` caches record what was added when they were written; libsolv
        // checks that against the file dependencies itself, and searches only if some are new.
        let recorded: Vec<Option<HashSet<sys::Id>>> = self
            .repositories
            .iter()
            .map(|repository| recorded_file_provides(repository.raw.as_ptr()))
            .collect();
        if recorded.iter().all(Option::is_some) {
            return;
        }
        let dependencies = self.collect_file_dependencies();
        let paths: Vec<WantedPath> = dependencies.iter().filter_map(|&id| self.wanted_path(id)).collect();
        if paths.is_empty() {
            return;
        }
        for (repository, recorded) in self.repositories.iter().zip(recorded) {
            let complete =
                recorded.is_some_and(|recorded| dependencies.iter().all(|id| recorded.contains(id)));
            if !complete {
                let raw_repo = repository.raw.as_ptr();
                self.search_repository_file_lists(raw_repo, &paths);
                mark_file_provides_added(raw_repo, &dependencies);
            }
        }
    }

    fn wanted_path(&self, id: sys::Id) -> Option<WantedPath> {
        // SAFETY: `id` is a string id of this pool; the string is copied at once.
        let path = unsafe { CStr::from_ptr(sys::pool_id2str(self.raw.as_ptr(), id)) }.to_bytes();
        let slash = path.iter().rposition(|&byte| byte == b'/')?;
        // The directory of `/bin` is `/`, not the empty string.
        let directory = CString::new(&path[..slash.max(1)]).ok()?;
        Some(WantedPath { id, directory, base_name: path[slash + 1..].to_vec() })
    }

    /// Every path (a string id starting with `/`) that a dependency of a package names, rich and
    /// namespace dependencies taken apart as libsolv does.
    fn collect_file_dependencies(&self) -> Vec<sys::Id> {
        let pool = self.raw.as_ptr();
        // SAFETY: `pool` is valid; the solvables array has `nsolvables` entries and each solvable's
        // dependency offsets index its repository's zero-terminated `idarraydata`.
        unsafe {
            let string_count = (*pool).ss.nstrings as usize;
            let mut seen = vec![false; string_count + (*pool).nrels as usize];
            let mut files = Vec::new();
            for index in 1..(*pool).nsolvables as usize {
                let solvable = &*(*pool).solvables.add(index);
                if solvable.repo.is_null() {
                    continue;
                }
                let data = (*solvable.repo).idarraydata;
                for offset in [
                    solvable.obsoletes,
                    solvable.conflicts,
                    solvable.requires,
                    solvable.recommends,
                    solvable.suggests,
                    solvable.supplements,
                    solvable.enhances,
                ] {
                    if offset == 0 {
                        continue;
                    }
                    let mut cursor = data.add(offset as usize);
                    while *cursor != 0 {
                        self.collect_file_dependency(*cursor, &mut seen, &mut files);
                        cursor = cursor.add(1);
                    }
                }
            }
            files
        }
    }

    fn collect_file_dependency(&self, mut dependency: sys::Id, seen: &mut [bool], files: &mut Vec<sys::Id>) {
        let pool = self.raw.as_ptr();
        // SAFETY: `pool` is valid and `dependency` one of its ids; relation ids index `rels`.
        unsafe {
            let string_count = (*pool).ss.nstrings as usize;
            while dependency as u32 & RELATION_ID_MARKER != 0 {
                let relation_index = (dependency as u32 ^ RELATION_ID_MARKER) as usize;
                if std::mem::replace(&mut seen[string_count + relation_index], true) {
                    return;
                }
                let relation = &*(*pool).rels.add(relation_index);
                if relation.flags < FIRST_NON_COMPARISON_FLAG {
                    dependency = relation.name;
                } else if relation.flags == sys::REL_NAMESPACE as i32 {
                    if relation.name == sys::solv_knownid_NAMESPACE_SPLITPROVIDES as sys::Id {
                        // Only meaningful against installed packages, which a compose has none of.
                        return;
                    }
                    dependency = relation.evr;
                } else if relation.flags == sys::REL_FILECONFLICT as i32 {
                    return;
                } else {
                    self.collect_file_dependency(relation.name, seen, files);
                    dependency = relation.evr;
                }
            }
            if dependency <= 0 || std::mem::replace(&mut seen[dependency as usize], true) {
                return;
            }
            if *sys::pool_id2str(pool, dependency) == b'/' as std::ffi::c_char {
                files.push(dependency);
            }
        }
    }

    /// One pass over the file lists of a repository: each entry whose directory and base name are a
    /// wanted path gains that path as a file provide.
    fn search_repository_file_lists(&self, raw_repo: *mut sys::Repo, paths: &[WantedPath]) {
        let pool = self.raw.as_ptr();
        // Directory ids are per repodata: the lookup table is built for each one met.
        let mut tables: HashMap<*mut sys::Repodata, PathTable> = HashMap::new();
        let mut additions: Vec<(sys::Id, sys::Id)> = Vec::new();
        let mut iterator = std::mem::MaybeUninit::<sys::Dataiterator>::uninit();
        let key = sys::solv_knownid_SOLVABLE_FILELIST as sys::Id;
        // SAFETY: the iterator is initialised by dataiterator_init before use and freed after; the
        // repodata pointers and base-name strings it yields stay valid until the next step, and the
        // base names are only compared (the table borrows the wanted paths, not libsolv memory).
        unsafe {
            sys::dataiterator_init(iterator.as_mut_ptr(), pool, raw_repo, 0, key, std::ptr::null(), 0);
            let iterator = iterator.assume_init_mut();
            while sys::dataiterator_step(iterator) != 0 {
                let data = iterator.data;
                let table = tables.entry(data).or_insert_with(|| {
                    let mut table: PathTable = HashMap::new();
                    for path in paths {
                        let directory_id = sys::repodata_str2dir(data, path.directory.as_ptr(), 0);
                        if directory_id != 0 {
                            table.entry((directory_id, &path.base_name)).or_default().push(path.id);
                        }
                    }
                    sys::repodata_free_dircache(data);
                    table
                });
                if table.is_empty() || iterator.kv.str_.is_null() {
                    continue;
                }
                let base_name = CStr::from_ptr(iterator.kv.str_).to_bytes();
                if let Some(ids) = table.get(&(iterator.kv.id, base_name)) {
                    additions.extend(ids.iter().map(|&id| (iterator.solvid, id)));
                }
            }
            sys::dataiterator_free(iterator);
            let marker = sys::solv_knownid_SOLVABLE_FILEMARKER as sys::Id;
            for (solvable_id, path) in additions {
                // repo_addid_dep may move the repo's dependency array; no pointer into it is held.
                let solvable = (*pool).solvables.add(solvable_id as usize);
                (*solvable).provides = sys::repo_addid_dep(raw_repo, (*solvable).provides, path, marker);
            }
        }
    }
}

/// Records in the repository that its file provides for `dependencies` are complete: on the
/// repodata that holds its file lists, whose solvable range libsolv checks before skipping them
/// (the last repodata may be updateinfo's, which covers only the advisories).
pub(crate) fn mark_file_provides_added(raw_repo: *mut sys::Repo, dependencies: &[sys::Id]) {
    let mut queue = Queue::new();
    for id in dependencies {
        queue.push(*id);
    }
    let key = sys::solv_knownid_REPOSITORY_ADDEDFILEPROVIDES as sys::Id;
    let file_list = sys::solv_knownid_SOLVABLE_FILELIST as sys::Id;
    // SAFETY: `raw_repo` is a valid repository; its repodata array has `nrepodata` entries (index 0
    // unused); the queue is initialised and copied by repodata_set_idarray.
    unsafe {
        let mut target = None;
        for index in 1..(*raw_repo).nrepodata {
            let data = sys::repo_id2repodata(raw_repo, index);
            if sys::repodata_has_keyname(data, file_list) != 0 {
                target = Some(data);
            }
        }
        let data = target.unwrap_or_else(|| sys::repo_last_repodata(raw_repo));
        sys::repodata_set_idarray(data, sys::SOLVID_META, key, queue.as_mut_ptr());
        sys::repodata_internalize(data);
    }
}

/// The file dependencies whose provides a repository records as added, if it records any.
fn recorded_file_provides(raw_repo: *mut sys::Repo) -> Option<HashSet<sys::Id>> {
    let mut recorded = Queue::new();
    let key = sys::solv_knownid_REPOSITORY_ADDEDFILEPROVIDES as sys::Id;
    // SAFETY: `raw_repo` is a valid repository; the queue is initialised and receives a copy.
    let found = unsafe { sys::repo_lookup_idarray(raw_repo, sys::SOLVID_META, key, recorded.as_mut_ptr()) };
    (found != 0).then(|| recorded.as_slice().iter().copied().collect())
}
