//! `Pool::solve` with excluded packages and with several repositories.

mod common;

use std::collections::BTreeSet;

use common::{FixturePackage, FixtureRepository, nevras, package, pool_with, sorted_nevras};
use libsolv::{Pool, Request};

fn request(install: &[&str]) -> Request {
    Request { install: install.iter().map(|spec| spec.to_string()).collect(), ..Request::default() }
}

fn podman_versions() -> Vec<FixturePackage> {
    vec![
        package("podman", "4.0.2", "1.fc41", "x86_64"),
        package("podman", "4.1.0", "1.fc41", "x86_64"),
        package("podman", "5.2.1", "1.fc41", "x86_64"),
    ]
}

#[test]
fn excluded_packages_are_not_chosen() {
    let mut packages = podman_versions();
    packages.push(package("app", "1.0", "1", "noarch").requires("virtual-thing"));
    packages.push(package("extra", "1.0", "1", "noarch").provides("virtual-thing"));
    let (mut pool, _repository) = pool_with(&packages);
    let newest = pool.select("podman = 5.2.1");
    assert_eq!(newest.len(), 1);

    pool.set_excluded(&newest.iter().copied().collect());
    let transaction = pool.solve(&request(&["podman"])).unwrap();
    assert_eq!(nevras(&pool, &transaction.install), ["podman-4.1.0-1.fc41.x86_64"]);
    assert_eq!(pool.select("podman").len(), 2, "excluded packages are not selected");

    // A new call replaces the set: the newest is back, the only provider of virtual-thing is gone.
    let extra = pool.select("extra");
    pool.set_excluded(&extra.iter().copied().collect());
    let transaction = pool.solve(&request(&["podman"])).unwrap();
    assert_eq!(nevras(&pool, &transaction.install), ["podman-5.2.1-1.fc41.x86_64"]);
    let problems = pool.solve(&request(&["app"])).unwrap_err();
    assert_eq!(problems.problems, ["nothing provides virtual-thing needed by app-1.0-1.noarch"]);

    // Excluding the package asked for by name: nothing matches any more.
    let problems = pool.solve(&request(&["extra"])).unwrap_err();
    assert_eq!(problems.problems, ["no package provides extra"]);

    pool.set_excluded(&BTreeSet::new());
    let transaction = pool.solve(&request(&["app"])).unwrap();
    assert_eq!(sorted_nevras(&pool, &transaction.install), ["app-1.0-1.noarch", "extra-1.0-1.noarch"]);
}

#[test]
fn exclusions_survive_loading_more_repositories() {
    let first = FixtureRepository::write(&podman_versions());
    let second = FixtureRepository::write(&[package("podman", "6.0", "1", "x86_64")]);
    let mut pool = Pool::new(common::ARCH).unwrap();
    first.load(&mut pool, "first", 0);
    pool.prepare();
    let excluded_first: BTreeSet<_> = pool.select("podman = 5.2.1").into_iter().collect();
    pool.set_excluded(&excluded_first);
    let repository = second.load(&mut pool, "second", 0);
    let newest = pool.solvables(repository);
    let transaction = pool.solve(&request(&["podman"])).unwrap();
    assert_eq!(transaction.install, newest);
    let mut excluded = excluded_first;
    excluded.extend(&newest);
    pool.set_excluded(&excluded);
    let transaction = pool.solve(&request(&["podman"])).unwrap();
    assert_eq!(nevras(&pool, &transaction.install), ["podman-4.1.0-1.fc41.x86_64"]);
}

#[test]
fn install_from_repo_takes_the_named_repository() {
    let stable = FixtureRepository::write(&[
        package("tool", "1.0", "1", "noarch"),
        package("lib", "1.0", "1", "noarch"),
    ]);
    let testing = FixtureRepository::write(&[
        package("tool", "1.0", "1", "noarch"),
        package("tool", "2.0", "1", "noarch"),
    ]);
    let mut pool = Pool::new(common::ARCH).unwrap();
    let stable_handle = stable.load(&mut pool, "stable", 0);
    let testing_handle = testing.load(&mut pool, "testing", 0);
    pool.prepare();

    let from = |repo: &str, spec: &str| Request {
        install_from_repo: vec![(repo.to_string(), spec.to_string())],
        ..Request::default()
    };
    let transaction = pool.solve(&from("stable", "tool")).unwrap();
    assert_eq!(transaction.install.len(), 1);
    assert_eq!(pool.package(transaction.install[0]).repo, "stable");
    assert_eq!(pool.repo_of(transaction.install[0]), stable_handle);

    let transaction = pool.solve(&from("testing", "tool < 2")).unwrap();
    assert_eq!(pool.package(transaction.install[0]).nevra(), "tool-1.0-1.noarch");
    assert_eq!(pool.repo_of(transaction.install[0]), testing_handle);

    let transaction = pool.solve(&request(&["tool"])).unwrap();
    assert_eq!(pool.package(transaction.install[0]).nevra(), "tool-2.0-1.noarch");

    let problems = pool.solve(&from("testing", "lib")).unwrap_err();
    assert_eq!(problems.problems, ["no package provides lib in repository testing"]);
    let problems = pool.solve(&from("nowhere", "lib")).unwrap_err();
    assert_eq!(problems.problems, ["no repository named nowhere (requested for lib)"]);
}

#[test]
fn repository_priority_beats_version() {
    let preferred = FixtureRepository::write(&[package("tool", "1.0", "1", "noarch")]);
    let other = FixtureRepository::write(&[package("tool", "2.0", "1", "noarch")]);
    let mut pool = Pool::new(common::ARCH).unwrap();
    preferred.load(&mut pool, "preferred", 10);
    other.load(&mut pool, "other", 0);
    let transaction = pool.solve(&request(&["tool"])).unwrap();
    assert_eq!(pool.package(transaction.install[0]).repo, "preferred");
}
