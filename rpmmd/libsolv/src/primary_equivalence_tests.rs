//! The primary.xml reader against libsolv's own (`repo_add_rpmmd`): the same file must give the
//! same solvables, dependencies, file lists and package details.

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CStr;
use std::path::Path;

use libsolv_sys as sys;

use crate::pool::Pool;

/// Every construct of primary.xml the readers handle, several edge cases among them (also the
/// fuzzing seed).
const PRIMARY: &str = include_str!("../tests/data/primary.xml");

/// Everything libsolv knows of each solvable of the pool's first repository, as text.
fn dump(pool: &Pool) -> Vec<String> {
    let repo = pool.repos()[0];
    let raw_pool = pool.raw.as_ptr();
    let raw_repo = pool.repository(repo).raw.as_ptr();
    let text = |id: sys::Id| -> String {
        // SAFETY: `id` is an id of this pool; the string is copied at once.
        unsafe { CStr::from_ptr(sys::pool_dep2str(raw_pool, id)) }.to_string_lossy().into_owned()
    };
    let mut lines = Vec::new();
    // SAFETY: start..end of a valid repository lies within the solvable array.
    unsafe {
        for index in (*raw_repo).start..(*raw_repo).end {
            let solvable = &*(*raw_pool).solvables.add(index as usize);
            if solvable.repo != raw_repo {
                continue;
            }
            lines.push(format!(
                "solvable {} {} {} vendor={}",
                text(solvable.name),
                text(solvable.evr),
                text(solvable.arch),
                if solvable.vendor == 0 { String::new() } else { text(solvable.vendor) }
            ));
            for (label, offset) in [
                ("provides", solvable.provides),
                ("requires", solvable.requires),
                ("conflicts", solvable.conflicts),
                ("obsoletes", solvable.obsoletes),
                ("recommends", solvable.recommends),
                ("suggests", solvable.suggests),
                ("supplements", solvable.supplements),
                ("enhances", solvable.enhances),
            ] {
                let mut cursor = (*raw_repo).idarraydata.add(offset as usize);
                while offset != 0 && *cursor != 0 {
                    lines.push(format!("  {label} {}", text(*cursor)));
                    cursor = cursor.add(1);
                }
            }
            let mut iterator = std::mem::MaybeUninit::<sys::Dataiterator>::uninit();
            let key = sys::solv_knownid_SOLVABLE_FILELIST as sys::Id;
            sys::dataiterator_init(
                iterator.as_mut_ptr(),
                raw_pool,
                raw_repo,
                index,
                key,
                std::ptr::null(),
                0,
            );
            let iterator = iterator.assume_init_mut();
            while sys::dataiterator_step(iterator) != 0 {
                let path = sys::repodata_dir2str(iterator.data, iterator.kv.id, iterator.kv.str_);
                lines.push(format!("  file {}", CStr::from_ptr(path).to_string_lossy()));
            }
            sys::dataiterator_free(iterator);
            let id = crate::pool::SolvableId(index);
            lines.push(format!("  {:?} summary {:?}", pool.package(id), pool.summary(id)));
        }
    }
    lines
}

fn load_with_libsolv(path: &Path) -> Pool {
    let mut pool = Pool::new("x86_64").unwrap();
    pool.add_repository("r", 0, |pool, repo| pool.read_primary_with_libsolv(repo, path)).unwrap();
    pool
}

fn load_with_ours(path: &Path) -> Pool {
    let mut pool = Pool::new("x86_64").unwrap();
    pool.add_rpmmd_repo("r", 0, path, None, None).unwrap();
    pool
}

#[test]
fn same_solvables_as_libsolv() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("primary.xml");
    std::fs::write(&path, PRIMARY).unwrap();
    let ours = dump(&load_with_ours(&path));
    let theirs = dump(&load_with_libsolv(&path));
    assert!(ours.len() > 30, "{ours:#?}");
    assert_eq!(ours, theirs);
}

/// Set `ARBOR_PRIMARY_XML` to a (large) primary.xml to compare the two readers on it.
#[test]
fn same_solvables_as_libsolv_on_a_given_file() {
    let Some(path) = std::env::var_os("ARBOR_PRIMARY_XML") else { return };
    let path = std::path::PathBuf::from(path);
    let ours = dump(&load_with_ours(&path));
    let theirs = dump(&load_with_libsolv(&path));
    assert_eq!(ours.len(), theirs.len());
    for (our, their) in ours.iter().zip(&theirs) {
        assert_eq!(our, their);
    }
}
