//! Fuzzes the primary.xml reader: any bytes give a repository or an error, never a panic or a
//! crash, and a failed load leaves the pool as it was.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("primary.xml");
    std::fs::write(&path, data).expect("writing the input");
    let mut pool = libsolv::Pool::new("x86_64").expect("pool");
    match pool.add_rpmmd_repo("fuzz", 0, &path, None, None) {
        Ok(repo) => {
            for id in pool.solvables(repo) {
                let _ = pool.package(id);
            }
            pool.prepare();
        }
        Err(_) => assert!(pool.repos().is_empty(), "a failed load left a repository behind"),
    }
});
