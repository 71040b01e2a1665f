//! Failed solves: every problem is reported, each in words.

mod common;

use common::{package, pool_with};
use libsolv::Request;

fn request(install: &[&str]) -> Request {
    Request { install: install.iter().map(|spec| spec.to_string()).collect(), ..Request::default() }
}

#[test]
fn missing_dependency_is_named() {
    let (mut pool, _repository) =
        pool_with(&[package("app", "2.0", "1", "x86_64").requires("libfoo.so.1()(64bit)")]);
    let problems = pool.solve(&request(&["app"])).unwrap_err();
    assert_eq!(problems.problems, ["nothing provides libfoo.so.1()(64bit) needed by app-2.0-1.x86_64"]);
    assert_eq!(
        problems.to_string(),
        "1 problem:\n  problem 1: nothing provides libfoo.so.1()(64bit) needed by app-2.0-1.x86_64"
    );
}

#[test]
fn every_problem_is_listed() {
    let packages = [
        package("app", "2.0", "1", "x86_64").requires("libfoo.so.1()(64bit)"),
        package("tool", "1.0", "1", "noarch").requires("virtual-thing"),
        package("c1", "1.0", "1", "noarch").conflicts("c2"),
        package("c2", "1.0", "1", "noarch"),
        package("fine", "1.0", "1", "noarch"),
    ];
    let (mut pool, _repository) = pool_with(&packages);
    let problems = pool.solve(&request(&["app", "fine", "missing-package", "tool", "c1", "c2"])).unwrap_err();
    let expected_fragments = [
        "no package provides missing-package",
        "nothing provides libfoo.so.1()(64bit) needed by app-2.0-1.x86_64",
        "nothing provides virtual-thing needed by tool-1.0-1.noarch",
        "package c1-1.0-1.noarch conflicts with c2 provided by c2-1.0-1.noarch",
    ];
    assert_eq!(problems.problems.len(), expected_fragments.len(), "{problems}");
    for fragment in expected_fragments {
        assert!(
            problems.problems.iter().any(|problem| problem.contains(fragment)),
            "{fragment} in {problems}"
        );
    }
    let text = problems.to_string();
    assert!(text.starts_with("4 problems:\n  problem 1: "), "{text}");
    assert!(text.contains("\n  problem 4: "), "{text}");
}

#[test]
fn problem_lists_every_rule_involved() {
    // Both providers of "runtime" are uninstallable, for different reasons; both are reported.
    let packages = [
        package("app", "1.0", "1", "noarch").requires("runtime"),
        package("runtime-a", "1.0", "1", "noarch").provides("runtime").requires("missing-a"),
        package("runtime-b", "1.0", "1", "noarch").provides("runtime").requires("missing-b"),
    ];
    let (mut pool, _repository) = pool_with(&packages);
    let problems = pool.solve(&request(&["app"])).unwrap_err();
    assert_eq!(problems.problems.len(), 1, "{problems}");
    let problem = &problems.problems[0];
    for fragment in
        ["missing-a needed by runtime-a-1.0-1.noarch", "missing-b needed by runtime-b-1.0-1.noarch"]
    {
        assert!(problem.contains(fragment), "{fragment} in {problem}");
    }
    assert!(!problem.contains("conflicting requests"), "{problem}");
}

#[test]
fn obsoletes_problem_is_described() {
    let packages = [
        package("oldname", "1.0", "1", "noarch"),
        package("newname", "2.0", "1", "noarch").obsoletes("oldname < 2"),
    ];
    let (mut pool, _repository) = pool_with(&packages);
    let problems = pool.solve(&request(&["oldname", "newname"])).unwrap_err();
    assert_eq!(problems.problems.len(), 1, "{problems}");
    assert!(problems.problems[0].contains("obsoletes oldname < 2"), "{problems}");
}
