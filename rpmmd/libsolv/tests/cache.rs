//! `.solv` caches: writing, reloading into a fresh pool, and broken or unwritable caches.

mod common;

use common::{ARCH, FixturePackage, FixtureRepository, nevras, package};
use libsolv::{MetadataKind, Pool, Request, SolvError};

fn fixture() -> Vec<FixturePackage> {
    vec![
        package("app", "2.0", "1.fc41", "x86_64")
            .requires("libfoo.so.1()(64bit)")
            .requires("/bin/sh")
            .requires("/usr/libexec/helper/run")
            .requires("(crun or runc)")
            .recommends("docs"),
        package("libfoo", "1.0", "3.fc41", "x86_64").provides("libfoo.so.1()(64bit)"),
        package("libfoo", "0.9", "1.fc41", "x86_64").provides("libfoo.so.1()(64bit)"),
        package("bash", "5.2.15", "2.fc41", "x86_64").file("/bin/sh").epoch(1),
        package("helper", "1.0", "1", "noarch").filelist_file("/usr/libexec/helper/run"),
        package("runc", "1.1", "1", "x86_64"),
        package("docs", "1.0", "1", "noarch"),
        package("multilib", "1.0", "1", "i686"),
    ]
}

fn requests() -> Vec<Request> {
    let install = |specs: &[&str], weak: bool| Request {
        install: specs.iter().map(|spec| spec.to_string()).collect(),
        weak_dependencies: weak,
        ..Request::default()
    };
    vec![install(&["app"], false), install(&["app"], true), install(&["/bin/sh", "libfoo < 1"], false)]
}

/// For every request: the transaction's packages with all their details, in order.
fn solve_all(pool: &mut Pool) -> Vec<Vec<libsolv::Package>> {
    requests()
        .iter()
        .map(|request| {
            let transaction = pool.solve(request).expect("fixture requests are solvable");
            transaction.install.iter().map(|id| pool.package(*id)).collect()
        })
        .collect()
}

#[test]
fn cache_round_trip_gives_identical_results() {
    let repository = FixtureRepository::write(&fixture());
    let mut original = Pool::new(ARCH).unwrap();
    let handle = repository.load(&mut original, "main", 0);
    original.prepare();
    let expected = solve_all(&mut original);
    assert_eq!(expected[1].len(), 6, "{:?}", nevras(&original, &original.select("*")));

    for cache_name in ["main.solv", "main.solv.zst", "main.solv.gz"] {
        let cache = repository.path(cache_name);
        original.write_solv_cache(handle, &cache).unwrap();
        assert!(cache.exists(), "{cache_name}");
        assert!(!repository.path(&format!("{cache_name}.tmp")).exists(), "{cache_name}: temporary file left");

        let mut reloaded = Pool::new(ARCH).unwrap();
        let reloaded_handle = reloaded.add_solv_cache_repo("main", 0, &cache).unwrap();
        reloaded.prepare();
        assert_eq!(reloaded.solvables(reloaded_handle).len(), original.solvables(handle).len());
        assert_eq!(solve_all(&mut reloaded), expected, "{cache_name}");
    }
}

#[test]
fn cache_written_before_prepare_also_works() {
    let repository = FixtureRepository::write(&fixture());
    let mut original = Pool::new(ARCH).unwrap();
    let handle = repository.load(&mut original, "main", 0);
    let cache = repository.path("early.solv");
    original.write_solv_cache(handle, &cache).unwrap();
    let expected = solve_all(&mut original);
    let mut reloaded = Pool::new(ARCH).unwrap();
    reloaded.add_solv_cache_repo("main", 0, &cache).unwrap();
    assert_eq!(solve_all(&mut reloaded), expected);
}

#[test]
fn cache_replaces_an_existing_file() {
    let repository = FixtureRepository::write(&fixture());
    let mut pool = Pool::new(ARCH).unwrap();
    let handle = repository.load(&mut pool, "main", 0);
    let cache = repository.path("main.solv");
    std::fs::write(&cache, "stale").unwrap();
    pool.write_solv_cache(handle, &cache).unwrap();
    let mut reloaded = Pool::new(ARCH).unwrap();
    let reloaded_handle = reloaded.add_solv_cache_repo("main", 0, &cache).unwrap();
    assert_eq!(reloaded.solvables(reloaded_handle).len(), fixture().len());
}

#[test]
fn unwritable_cache_path_is_an_error() {
    let repository = FixtureRepository::write(&fixture());
    let mut pool = Pool::new(ARCH).unwrap();
    let handle = repository.load(&mut pool, "main", 0);
    let cache = repository.path("no-such-directory/main.solv");
    let error = pool.write_solv_cache(handle, &cache).unwrap_err();
    assert!(matches!(&error, SolvError::WriteCache { path, .. } if *path == cache), "{error}");
    assert!(error.to_string().starts_with(&format!("writing solv cache {}: ", cache.display())), "{error}");
}

#[test]
fn broken_cache_is_an_error() {
    let repository = FixtureRepository::write(&fixture());
    let mut pool = Pool::new(ARCH).unwrap();
    let handle = repository.load(&mut pool, "main", 0);
    let cache = repository.path("main.solv");
    pool.write_solv_cache(handle, &cache).unwrap();
    let bytes = std::fs::read(&cache).unwrap();
    let cases = [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("not a cache", b"<metadata/>".to_vec()),
        ("empty", Vec::new()),
    ];
    for (description, broken) in cases {
        let path = repository.path(&format!("broken-{description}.solv"));
        std::fs::write(&path, broken).unwrap();
        let mut fresh = Pool::new(ARCH).unwrap();
        let error = fresh.add_solv_cache_repo("main", 0, &path).unwrap_err();
        assert!(
            matches!(error, SolvError::Read { kind: MetadataKind::SolvCache, .. }),
            "{description}: {error}"
        );
        assert!(fresh.repos().is_empty(), "{description}");
    }
}
