//! Pool set-up: rpm semantics (not Debian's default), architectures and the arch policy.

mod common;

use std::cmp::Ordering;

use common::{ARCH, nevras, package, pool_with, sorted_nevras};
use libsolv::{Pool, Request, SolvError};

#[test]
fn evr_comparison_follows_rpm_rules() {
    let pool = Pool::new(ARCH).unwrap();
    let cases = [
        // Under Debian rules "1_0" > "1.0"; rpm treats both separators alike.
        ("1_0", "1.0", Ordering::Equal),
        ("1.0-1", "1.0-1.fc41", Ordering::Less),
        ("1.0", "1.0", Ordering::Equal),
        ("1.10", "1.9", Ordering::Greater),
        ("1:1.0-1", "2.0-1", Ordering::Greater),
        ("1.0~rc1-1", "1.0-1", Ordering::Less),
        ("1.0^post1-1", "1.0-1", Ordering::Greater),
        ("2.0a-1", "2.0-1", Ordering::Greater),
        ("4.9-1", "4.10-1", Ordering::Less),
    ];
    for (left, right, expected) in cases {
        assert_eq!(pool.compare_evr(left, right), expected, "{left} vs {right}");
        assert_eq!(pool.compare_evr(right, left), expected.reverse(), "{right} vs {left}");
    }
}

#[test]
fn supported_architectures_only() {
    for arch in ["x86_64", "aarch64", "ppc64le", "s390x"] {
        let pool = Pool::new(arch).unwrap();
        assert_eq!(pool.architecture(), arch);
    }
    for arch in ["i686", "noarch", "", "x86_64:i686", "armv7hl"] {
        let error = Pool::new(arch).unwrap_err();
        assert!(matches!(error, SolvError::UnsupportedArchitecture { .. }), "{arch}");
        assert!(error.to_string().contains(&format!("{arch:?}")), "{error}");
    }
}

#[test]
fn only_the_pool_arch_and_noarch_are_installable() {
    let packages = [
        package("app", "1.0", "1", "x86_64").requires("libbar").requires("data"),
        package("libbar", "1.0", "1", "x86_64"),
        // A newer multilib build must never win.
        package("libbar", "2.0", "1", "i686"),
        package("data", "1.0", "1", "noarch"),
        package("lib32only", "1.0", "1", "i686"),
        package("armonly", "1.0", "1", "aarch64"),
    ];
    let (mut pool, _repository) = pool_with(&packages);
    let request = Request { install: vec!["app".into()], ..Request::default() };
    let transaction = pool.solve(&request).unwrap();
    assert_eq!(
        sorted_nevras(&pool, &transaction.install),
        ["app-1.0-1.x86_64", "data-1.0-1.noarch", "libbar-1.0-1.x86_64"]
    );
    assert_eq!(nevras(&pool, &pool.select("libbar")), ["libbar-1.0-1.x86_64"]);
    for spec in ["lib32only", "armonly", "libbar.i686"] {
        assert!(pool.select(spec).is_empty(), "{spec}");
        let problems = pool.solve(&Request { install: vec![spec.into()], ..Request::default() }).unwrap_err();
        assert_eq!(problems.problems, [format!("no package provides {spec}")]);
    }
}

#[test]
fn other_pool_arch_picks_its_own_packages() {
    let packages = [package("tool", "1.0", "1", "x86_64"), package("tool", "1.0", "1", "aarch64")];
    let repository = common::FixtureRepository::write(&packages);
    let mut pool = Pool::new("aarch64").unwrap();
    repository.load(&mut pool, "main", 0);
    let transaction = pool.solve(&Request { install: vec!["tool".into()], ..Request::default() }).unwrap();
    assert_eq!(nevras(&pool, &transaction.install), ["tool-1.0-1.aarch64"]);
}

#[test]
fn pool_moves_to_another_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let (pool, repository) = pool_with(&[package("app", "1.0", "1", "noarch")]);
    assert_send(&pool);
    let handle = std::thread::spawn(move || {
        let mut pool = pool;
        let transaction = pool.solve(&Request { install: vec!["app".into()], ..Request::default() }).unwrap();
        nevras(&pool, &transaction.install)
    });
    assert_eq!(handle.join().unwrap(), ["app-1.0-1.noarch"]);
    drop(repository);
}
