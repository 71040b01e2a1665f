//! `Pool::select`: every kind of spec, table-driven.

mod common;

use common::{FixturePackage, package, pool_with, sorted_nevras};

fn fixture() -> Vec<FixturePackage> {
    vec![
        package("podman", "4.0.2", "1.fc41", "x86_64"),
        package("podman", "4.1.0", "1.fc41", "x86_64"),
        package("podman", "5.2.1", "1.fc41", "x86_64").epoch(2),
        package("podman-docker", "5.2.1", "1.fc41", "noarch"),
        package("libfoo", "1.0", "1", "x86_64").provides("libfoo.so.1()(64bit)"),
        package("bash", "5.2.15", "2.fc41", "x86_64")
            .provides("config(bash) = 5.2.15-2.fc41")
            .file("/bin/sh")
            .file("/usr/bin/bash")
            .filelist_file("/usr/share/doc/bash/README"),
        package("extra", "1.0", "1", "noarch").provides("virtual-thing"),
        package("other-extra", "3.0", "1", "noarch").provides("virtual-thing = 3.0"),
        package("app", "1.0", "1", "noarch").provides("podman-compat"),
    ]
}

#[test]
fn specs_select_the_expected_packages() {
    let (pool, _repository) = pool_with(&fixture());
    let podman_all =
        ["podman-2:5.2.1-1.fc41.x86_64", "podman-4.0.2-1.fc41.x86_64", "podman-4.1.0-1.fc41.x86_64"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("podman", podman_all.to_vec()),
        ("  podman  ", podman_all.to_vec()),
        ("podman >= 4.1", vec!["podman-2:5.2.1-1.fc41.x86_64", "podman-4.1.0-1.fc41.x86_64"]),
        // rpm compares "4.1.0" > "4.1"; a constraint without release ignores the release.
        ("podman > 4.1", vec!["podman-2:5.2.1-1.fc41.x86_64", "podman-4.1.0-1.fc41.x86_64"]),
        ("podman > 4.1.0", vec!["podman-2:5.2.1-1.fc41.x86_64"]),
        ("podman < 4.1", vec!["podman-4.0.2-1.fc41.x86_64"]),
        ("podman <= 4.1.0-1.fc41", vec!["podman-4.0.2-1.fc41.x86_64", "podman-4.1.0-1.fc41.x86_64"]),
        ("podman = 4.1.0", vec!["podman-4.1.0-1.fc41.x86_64"]),
        ("podman = 2:5.2.1", vec!["podman-2:5.2.1-1.fc41.x86_64"]),
        // A missing epoch is epoch 0, so epoch 2 beats any plain version.
        ("podman >= 6", vec!["podman-2:5.2.1-1.fc41.x86_64"]),
        ("podman >= 3:1", vec![]),
        ("podman.x86_64", podman_all.to_vec()),
        ("podman-4.1.0-1.fc41.x86_64", vec!["podman-4.1.0-1.fc41.x86_64"]),
        ("podman-docker", vec!["podman-docker-5.2.1-1.fc41.noarch"]),
        ("podman*", {
            let mut all = podman_all.to_vec();
            all.push("podman-docker-5.2.1-1.fc41.noarch");
            all
        }),
        ("libfoo.so.1()(64bit)", vec!["libfoo-1.0-1.x86_64"]),
        ("config(bash)", vec!["bash-5.2.15-2.fc41.x86_64"]),
        ("virtual-thing", vec!["extra-1.0-1.noarch", "other-extra-3.0-1.noarch"]),
        // An unversioned provide satisfies every version constraint (rpm semantics).
        ("virtual-thing >= 2", vec!["extra-1.0-1.noarch", "other-extra-3.0-1.noarch"]),
        ("virtual-thing < 2", vec!["extra-1.0-1.noarch"]),
        ("podman-compat", vec!["app-1.0-1.noarch"]),
        ("/bin/sh", vec!["bash-5.2.15-2.fc41.x86_64"]),
        ("/usr/bin/bash", vec!["bash-5.2.15-2.fc41.x86_64"]),
        ("/usr/share/doc/bash/README", vec!["bash-5.2.15-2.fc41.x86_64"]),
        ("/usr/bin/nothing", vec![]),
        ("no-such-package", vec![]),
        ("", vec![]),
        ("nul\0byte", vec![]),
    ];
    for (spec, expected) in cases {
        let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
        expected.sort();
        assert_eq!(sorted_nevras(&pool, &pool.select(spec)), expected, "spec {spec:?}");
    }
}

#[test]
fn names_win_over_provides() {
    // "podman" is also provided by podman-docker in real repositories; the name match is kept alone.
    let mut packages = fixture();
    packages.push(package("podmanlike", "9.0", "1", "noarch").provides("podman = 9.0"));
    let (pool, _repository) = pool_with(&packages);
    let selected = sorted_nevras(&pool, &pool.select("podman"));
    assert!(!selected.iter().any(|nevra| nevra.starts_with("podmanlike")), "{selected:?}");
}
