//! A repository of many packages loads, lists, selects and solves in linear-ish time (a guard
//! against accidentally quadratic code; the real benchmark uses rpm-corpus synth-metadata).

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::{ARCH, FixturePackage, package, primary_xml};
use libsolv::{Pool, Request};

/// Number of packages in the generated repository.
const PACKAGE_COUNT: usize = 20_000;
/// Length of the dependency chain the solve test installs.
const CHAIN_LENGTH: usize = 300;

fn packages() -> Vec<FixturePackage> {
    (0..PACKAGE_COUNT)
        .map(|index| {
            let mut fixture =
                package(&format!("pkg{index:05}"), "1.0", "1", if index % 3 == 0 { "noarch" } else { ARCH })
                    .provides(&format!("libpkg{index:05}.so.1()(64bit)"))
                    .file(&format!("/usr/bin/pkg{index:05}"));
            if index > 0 && index % CHAIN_LENGTH != 0 {
                fixture = fixture.requires(&format!("libpkg{:05}.so.1()(64bit)", index - 1));
            }
            fixture
        })
        .collect()
}

#[test]
fn many_packages() {
    let directory = tempfile::tempdir().unwrap();
    let primary = directory.path().join("primary.xml");
    std::fs::write(&primary, primary_xml(&packages())).unwrap();

    let started = Instant::now();
    let mut pool = Pool::new(ARCH).unwrap();
    let repo = pool.add_rpmmd_repo("big", 0, &primary, None, None).unwrap();
    pool.prepare();
    let loaded = started.elapsed();

    let ids = pool.solvables(repo);
    assert_eq!(ids.len(), PACKAGE_COUNT);
    let details: Vec<_> = ids.iter().map(|id| pool.package(*id)).collect();
    assert_eq!(details[PACKAGE_COUNT - 1].name, format!("pkg{:05}", PACKAGE_COUNT - 1));
    let read = started.elapsed();

    assert_eq!(pool.select("pkg1*").len(), 10_000);
    assert_eq!(pool.select("/usr/bin/pkg00042").len(), 1);
    let excluded: BTreeSet<_> = ids.iter().step_by(2).copied().collect();
    pool.set_excluded(&excluded);
    pool.set_excluded(&BTreeSet::new());

    let last_of_chain = format!("pkg{:05}", CHAIN_LENGTH - 1);
    let transaction = pool.solve(&Request { install: vec![last_of_chain], ..Request::default() }).unwrap();
    assert_eq!(transaction.install.len(), CHAIN_LENGTH);
    assert_eq!(pool.name(transaction.install[0]), "pkg00000", "dependencies first");
    eprintln!(
        "{PACKAGE_COUNT} packages: load+prepare {loaded:?}, list+details {:?}, total {:?}",
        read - loaded,
        started.elapsed()
    );
}
