//! `Pool::solve`: what gets installed, table-driven over small repositories.

mod common;

use common::{FixturePackage, FixtureRepository, nevras, package, pool_with, sorted_nevras};
use libsolv::{Pool, Request};

/// One solving scenario: a repository, the specs to install, and the expected NEVRAs (sorted),
/// or `None` when solving must fail.
struct Case {
    name: &'static str,
    packages: Vec<FixturePackage>,
    install: Vec<&'static str>,
    weak_dependencies: bool,
    expected: Option<Vec<&'static str>>,
}

fn case(name: &'static str, packages: Vec<FixturePackage>, install: &[&'static str]) -> Case {
    Case { name, packages, install: install.to_vec(), weak_dependencies: false, expected: None }
}

impl Case {
    fn expect(mut self, nevras: &[&'static str]) -> Case {
        self.expected = Some(nevras.to_vec());
        self
    }
    fn weak(mut self) -> Case {
        self.weak_dependencies = true;
        self
    }
}

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

fn cases() -> Vec<Case> {
    vec![
        case(
            "install by name pulls dependencies",
            vec![
                package("app", "2.0", "1", "x86_64").requires("libfoo.so.1()(64bit)"),
                package("libfoo", "1.0", "1", "x86_64").provides("libfoo.so.1()(64bit)"),
                package("unrelated", "1.0", "1", "noarch"),
            ],
            &["app"],
        )
        .expect(&["app-2.0-1.x86_64", "libfoo-1.0-1.x86_64"]),
        case("highest version wins", podman_versions(), &["podman"]).expect(&["podman-5.2.1-1.fc41.x86_64"]),
        case(
            "epoch beats version",
            vec![package("tool", "9.0", "1", "noarch"), package("tool", "1.0", "1", "noarch").epoch(1)],
            &["tool"],
        )
        .expect(&["tool-1:1.0-1.noarch"]),
        case("versioned spec picks the highest match", podman_versions(), &["podman >= 4.1"])
            .expect(&["podman-5.2.1-1.fc41.x86_64"]),
        case("versioned spec excludes newer versions", podman_versions(), &["podman < 4.1"])
            .expect(&["podman-4.0.2-1.fc41.x86_64"]),
        case("versioned spec matching nothing fails", podman_versions(), &["podman > 6"]),
        case(
            "versioned requirement picks an older version",
            {
                let mut packages = podman_versions();
                packages.push(package("toolbox", "1.0", "1", "noarch").requires("podman < 5"));
                packages
            },
            &["toolbox", "podman"],
        )
        .expect(&["podman-4.1.0-1.fc41.x86_64", "toolbox-1.0-1.noarch"]),
        case(
            "virtual provide",
            vec![
                package("app", "1.0", "1", "noarch").requires("virtual-thing"),
                package("extra", "1.0", "1", "noarch").provides("virtual-thing"),
            ],
            &["app"],
        )
        .expect(&["app-1.0-1.noarch", "extra-1.0-1.noarch"]),
        case(
            "install by provide",
            vec![package("extra", "1.0", "1", "noarch").provides("virtual-thing")],
            &["virtual-thing"],
        )
        .expect(&["extra-1.0-1.noarch"]),
        case(
            "install by file path",
            vec![package("bash", "5.2", "1", "x86_64").file("/usr/bin/bash")],
            &["/usr/bin/bash"],
        )
        .expect(&["bash-5.2-1.x86_64"]),
        case(
            "file dependency listed in primary",
            vec![
                package("script", "1.0", "1", "noarch").requires("/bin/sh"),
                package("bash", "5.2", "1", "x86_64").file("/bin/sh"),
            ],
            &["script"],
        )
        .expect(&["bash-5.2-1.x86_64", "script-1.0-1.noarch"]),
        case(
            "file dependencies inside a rich dependency, several in one directory, one at the root",
            vec![
                package("app", "1.0", "1", "noarch")
                    .requires("(/usr/bin/zsh or /usr/bin/fish)")
                    .requires("/usr/bin/tool")
                    .requires("/init"),
                package("fish", "3.7", "1", "x86_64").file("/usr/bin/fish"),
                package("tool", "1.0", "1", "noarch").file("/usr/bin/tool").file("/usr/bin/other"),
                package("base", "1.0", "1", "noarch").file("/init"),
            ],
            &["app"],
        )
        .expect(&["app-1.0-1.noarch", "base-1.0-1.noarch", "fish-3.7-1.x86_64", "tool-1.0-1.noarch"]),
        case(
            "file dependency listed only in filelists",
            vec![
                package("app", "1.0", "1", "noarch").requires("/usr/libexec/helper/run"),
                package("helper", "1.0", "1", "x86_64").filelist_file("/usr/libexec/helper/run"),
            ],
            &["app"],
        )
        .expect(&["app-1.0-1.noarch", "helper-1.0-1.x86_64"]),
        case(
            "rich or-dependency with one alternative",
            vec![
                package("podman", "5.0", "1", "x86_64").requires("(crun or runc)"),
                package("runc", "1.1", "1", "x86_64"),
            ],
            &["podman"],
        )
        .expect(&["podman-5.0-1.x86_64", "runc-1.1-1.x86_64"]),
        case(
            "rich or-dependency prefers the first alternative",
            vec![
                package("podman", "5.0", "1", "x86_64").requires("(crun or runc)"),
                package("runc", "1.1", "1", "x86_64"),
                package("crun", "1.15", "1", "x86_64"),
            ],
            &["podman"],
        )
        .expect(&["crun-1.15-1.x86_64", "podman-5.0-1.x86_64"]),
        case(
            "rich or-dependency with no alternative fails",
            vec![package("podman", "5.0", "1", "x86_64").requires("(crun or runc)")],
            &["podman"],
        ),
        case(
            "conditional dependency without its condition",
            vec![
                package("app", "1.0", "1", "noarch").requires("(foo if bar)"),
                package("foo", "1.0", "1", "noarch"),
                package("bar", "1.0", "1", "noarch"),
            ],
            &["app"],
        )
        .expect(&["app-1.0-1.noarch"]),
        case(
            "conditional dependency with its condition",
            vec![
                package("app", "1.0", "1", "noarch").requires("(foo if bar)"),
                package("foo", "1.0", "1", "noarch"),
                package("bar", "1.0", "1", "noarch"),
            ],
            &["app", "bar"],
        )
        .expect(&["app-1.0-1.noarch", "bar-1.0-1.noarch", "foo-1.0-1.noarch"]),
        case(
            "conflict steers the choice of provider",
            vec![
                package("app", "1.0", "1", "noarch").requires("webserver").conflicts("httpd"),
                package("httpd", "2.4", "1", "x86_64").provides("webserver"),
                package("nginx", "1.26", "1", "x86_64").provides("webserver"),
            ],
            &["app"],
        )
        .expect(&["app-1.0-1.noarch", "nginx-1.26-1.x86_64"]),
        case(
            "versioned conflict forces a newer version",
            vec![
                package("app", "1.0", "1", "noarch").requires("libfoo").conflicts("libfoo < 2.0"),
                package("libfoo", "1.0", "1", "x86_64"),
                package("libfoo", "2.0", "1", "x86_64"),
                package("libfoo", "3.0", "1", "x86_64").provides("bad"),
                package("other", "1.0", "1", "noarch").conflicts("bad"),
            ],
            &["app", "other"],
        )
        .expect(&["app-1.0-1.noarch", "libfoo-2.0-1.x86_64", "other-1.0-1.noarch"]),
        case(
            "conflicting requests fail",
            vec![package("c1", "1.0", "1", "noarch").conflicts("c2"), package("c2", "1.0", "1", "noarch")],
            &["c1", "c2"],
        ),
        case(
            "obsoleting package replaces the obsoleted provider",
            vec![
                package("app", "1.0", "1", "noarch").requires("oldname-compat"),
                package("oldname", "1.0", "1", "noarch").provides("oldname-compat"),
                package("newname", "2.0", "1", "noarch").provides("oldname-compat").obsoletes("oldname < 2"),
            ],
            &["app"],
        )
        .expect(&["app-1.0-1.noarch", "newname-2.0-1.noarch"]),
        case(
            "obsoleted and obsoleting package together fail",
            vec![
                package("oldname", "1.0", "1", "noarch"),
                package("newname", "2.0", "1", "noarch").obsoletes("oldname < 2"),
            ],
            &["oldname", "newname"],
        ),
        case(
            "recommends ignored without weak dependencies",
            vec![
                package("app", "1.0", "1", "noarch").recommends("docs"),
                package("docs", "1.0", "1", "noarch"),
            ],
            &["app"],
        )
        .expect(&["app-1.0-1.noarch"]),
        case(
            "recommends installed with weak dependencies",
            vec![
                package("app", "1.0", "1", "noarch").recommends("docs"),
                package("docs", "1.0", "1", "noarch"),
            ],
            &["app"],
        )
        .weak()
        .expect(&["app-1.0-1.noarch", "docs-1.0-1.noarch"]),
        case(
            "missing recommends are no problem",
            vec![package("app", "1.0", "1", "noarch").recommends("docs")],
            &["app"],
        )
        .weak()
        .expect(&["app-1.0-1.noarch"]),
        case(
            "glob spec installs every match",
            vec![
                package("fonts-a", "1.0", "1", "noarch"),
                package("fonts-b", "1.0", "1", "noarch"),
                package("other", "1.0", "1", "noarch"),
            ],
            &["fonts-*"],
        )
        .expect(&["fonts-a-1.0-1.noarch", "fonts-b-1.0-1.noarch"]),
        case("empty request installs nothing", podman_versions(), &[]).expect(&[]),
    ]
}

#[test]
fn scenarios() {
    for case in cases() {
        let (mut pool, _repository) = pool_with(&case.packages);
        let request = Request { weak_dependencies: case.weak_dependencies, ..request(&case.install) };
        let result = pool.solve(&request);
        match (&case.expected, result) {
            (Some(expected), Ok(transaction)) => {
                assert_eq!(sorted_nevras(&pool, &transaction.install), *expected, "{}", case.name)
            }
            (Some(_), Err(problems)) => panic!("{}: unexpected failure: {problems}", case.name),
            (None, Ok(transaction)) => {
                panic!("{}: expected failure, got {:?}", case.name, nevras(&pool, &transaction.install))
            }
            (None, Err(problems)) => assert!(!problems.problems.is_empty(), "{}", case.name),
        }
    }
}

#[test]
fn file_only_in_filelists_needs_filelists() {
    let packages = [
        package("app", "1.0", "1", "noarch").requires("/usr/libexec/helper/run"),
        package("helper", "1.0", "1", "x86_64").filelist_file("/usr/libexec/helper/run"),
    ];
    let repository = FixtureRepository::write(&packages);
    let mut pool = Pool::new(common::ARCH).unwrap();
    pool.add_rpmmd_repo("primary-only", 0, &repository.primary, None, None).unwrap();
    let problems = pool.solve(&request(&["app"])).unwrap_err();
    assert!(problems.problems[0].contains("nothing provides /usr/libexec/helper/run"), "{problems}");
}

#[test]
fn unresolved_file_dependencies_can_be_provided_from_elsewhere() {
    let packages = [
        package("app", "1.0", "1", "noarch").requires("/usr/libexec/helper/run").requires("/usr/bin/tool"),
        package("helper", "1.0", "1", "x86_64").epoch(2).filelist_file("/usr/libexec/helper/run"),
        package("tool", "1.0", "1", "noarch").file("/usr/bin/tool"),
    ];
    let repository = FixtureRepository::write(&packages);
    let mut pool = Pool::new(common::ARCH).unwrap();
    let handle = pool.add_rpmmd_repo("primary-only", 0, &repository.primary, None, None).unwrap();
    pool.prepare();
    assert_eq!(
        pool.unresolved_file_dependencies(),
        ["/usr/libexec/helper/run"],
        "/usr/bin/tool is in primary"
    );
    let added = pool
        .add_file_provides(
            handle,
            &[("helper", "2:1.0-1", "x86_64", "/usr/libexec/helper/run"), ("nope", "1-1", "x86_64", "/x")],
        )
        .unwrap();
    assert_eq!(added, 1);
    assert!(pool.unresolved_file_dependencies().is_empty());
    let transaction = pool.solve(&request(&["app"])).unwrap();
    assert_eq!(
        sorted_nevras(&pool, &transaction.install),
        ["app-1.0-1.noarch", "helper-2:1.0-1.x86_64", "tool-1.0-1.noarch"]
    );
}

#[test]
fn transaction_is_in_installation_order() {
    let packages = [
        package("base-files", "1.0", "1", "noarch"),
        package("app", "2.0", "1", "noarch").requires("foo-tools").requires("/bin/sh"),
        package("libfoo", "1.0", "1", "x86_64").requires("base-files"),
        package("foo-tools", "1.0", "1", "x86_64").requires("libfoo"),
        package("bash", "5.2", "1", "x86_64").file("/bin/sh").requires("base-files"),
    ];
    let (mut pool, _repository) = pool_with(&packages);
    let transaction = pool.solve(&request(&["app"])).unwrap();
    let order = nevras(&pool, &transaction.install);
    let position = |name: &str| order.iter().position(|nevra| nevra.starts_with(name)).unwrap();
    assert_eq!(order.len(), 5, "{order:?}");
    for (dependency, dependent) in [
        ("base-files", "libfoo"),
        ("libfoo", "foo-tools"),
        ("foo-tools", "app"),
        ("bash", "app"),
        ("base-files", "bash"),
    ] {
        assert!(position(dependency) < position(dependent), "{dependency} before {dependent}: {order:?}");
    }
}

#[test]
fn requires_pre_decides_the_order_inside_a_cycle() {
    // zeta and alpha require each other; only zeta's requirement is needed while installing.
    let packages = [
        package("alpha", "1.0", "1", "noarch").requires("zeta"),
        package("zeta", "1.0", "1", "noarch").requires_pre("alpha"),
        package("app", "1.0", "1", "noarch").requires("zeta"),
    ];
    let (mut pool, _repository) = pool_with(&packages);
    let transaction = pool.solve(&request(&["app"])).unwrap();
    assert_eq!(
        nevras(&pool, &transaction.install),
        ["alpha-1.0-1.noarch", "zeta-1.0-1.noarch", "app-1.0-1.noarch"]
    );
}

/// A tangle of requirements with cycles, deterministic but irregular.
fn tangled_packages() -> Vec<FixturePackage> {
    const COUNT: usize = 120;
    (0..COUNT)
        .map(|index| {
            let mut fixture = package(&format!("pkg{index:03}"), "1.0", "1", "noarch")
                .provides(&format!("capability{}", index % 17));
            for step in [7, 31, 64] {
                let target = (index * step + 3) % COUNT;
                fixture = if index % 5 == 0 {
                    fixture.requires_pre(&format!("pkg{target:03}"))
                } else {
                    fixture.requires(&format!("pkg{target:03}"))
                };
            }
            fixture.requires(&format!("capability{}", (index + 5) % 17))
        })
        .collect()
}

#[test]
fn order_is_the_same_from_xml_and_from_cache() {
    let repository = FixtureRepository::write(&tangled_packages());
    let mut from_xml = Pool::new(common::ARCH).unwrap();
    // Another repository first, so that string ids differ from the cached pool's.
    let other =
        FixtureRepository::write(&[package("unrelated", "1.0", "1", "noarch").requires("capability9")]);
    other.load(&mut from_xml, "other", 0);
    let handle = repository.load(&mut from_xml, "main", 0);
    let cache = repository.path("main.solv");
    from_xml.write_solv_cache(handle, &cache).unwrap();
    let mut from_cache = Pool::new(common::ARCH).unwrap();
    from_cache.add_solv_cache_repo("main", 0, &cache).unwrap();

    for specs in [vec!["pkg000"], vec!["pkg077", "pkg013"], vec!["capability3"]] {
        let expected = from_xml.solve(&request(&specs)).unwrap();
        let actual = from_cache.solve(&request(&specs)).unwrap();
        assert!(expected.install.len() > 10, "{specs:?}: the tangle pulls in many packages");
        assert_eq!(nevras(&from_cache, &actual.install), nevras(&from_xml, &expected.install), "{specs:?}");
    }
}
