//! Loading metadata: compressed files, filelists, updateinfo, broken input and package details.

mod common;

use std::path::{Path, PathBuf};

use common::{
    ARCH, FixturePackage, FixtureRepository, compress, package, primary_xml, sorted_nevras, updateinfo_xml,
    write_compressed,
};
use libsolv::{MetadataKind, Pool, Request, SolvError};

fn fixture() -> Vec<FixturePackage> {
    vec![
        package("app", "2.0", "1.fc41", "x86_64").requires("libfoo.so.1()(64bit)").requires("/bin/sh"),
        package("libfoo", "1.0", "3.fc41", "x86_64").provides("libfoo.so.1()(64bit)"),
        package("bash", "5.2.15", "2.fc41", "x86_64").file("/bin/sh"),
    ]
}

fn expected_nevras() -> Vec<String> {
    let mut nevras: Vec<String> = fixture().iter().map(FixturePackage::nevra).collect();
    nevras.sort();
    nevras
}

fn load_primary(path: &Path) -> Result<Pool, SolvError> {
    let mut pool = Pool::new(ARCH).expect("x86_64 is supported");
    pool.add_rpmmd_repo("main", 0, path, None, None)?;
    Ok(pool)
}

fn all_nevras(pool: &Pool) -> Vec<String> {
    let ids: Vec<_> = pool.repos().into_iter().flat_map(|repo| pool.solvables(repo)).collect();
    sorted_nevras(pool, &ids)
}

#[test]
fn compressed_primary_files_load() {
    let directory = tempfile::tempdir().unwrap();
    for name in ["primary.xml", "primary.xml.gz", "primary.xml.xz", "primary.xml.zst"] {
        let path = directory.path().join(name);
        write_compressed(&path, &primary_xml(&fixture()));
        let mut pool = load_primary(&path).unwrap();
        assert_eq!(all_nevras(&pool), expected_nevras(), "{name}");
        let transaction = pool.solve(&Request { install: vec!["app".into()], ..Request::default() }).unwrap();
        assert_eq!(transaction.install.len(), 3, "{name}");
    }
}

#[test]
fn compressed_filelists_extend_primary() {
    let packages = [
        package("app", "1.0", "1", "noarch").requires("/usr/libexec/helper/run"),
        package("helper", "1.0", "1", "x86_64").filelist_file("/usr/libexec/helper/run"),
    ];
    let directory = tempfile::tempdir().unwrap();
    let primary = directory.path().join("primary.xml.zst");
    let filelists = directory.path().join("filelists.xml.gz");
    write_compressed(&primary, &primary_xml(&packages));
    write_compressed(&filelists, &common::filelists_xml(&packages));
    let mut pool = Pool::new(ARCH).unwrap();
    let repo = pool.add_rpmmd_repo("main", 0, &primary, Some(&filelists), None).unwrap();
    assert_eq!(pool.solvables(repo).len(), 2, "filelists adds no packages");
    let transaction = pool.solve(&Request { install: vec!["app".into()], ..Request::default() }).unwrap();
    assert_eq!(transaction.install.len(), 2);
}

#[test]
fn updateinfo_loads_without_adding_packages() {
    let packages = fixture();
    let repository = FixtureRepository::write(&packages);
    let updateinfo = repository.path("updateinfo.xml.gz");
    write_compressed(&updateinfo, &updateinfo_xml("FEDORA-2024-0001", &packages[0]));
    let mut pool = Pool::new(ARCH).unwrap();
    let repo = pool
        .add_rpmmd_repo("main", 0, &repository.primary, Some(&repository.filelists), Some(&updateinfo))
        .unwrap();
    assert_eq!(sorted_nevras(&pool, &pool.solvables(repo)), expected_nevras());
    let transaction = pool.solve(&Request { install: vec!["app".into()], ..Request::default() }).unwrap();
    assert_eq!(transaction.install.len(), 3);
}

#[test]
fn package_details_are_read() {
    let mut bash = package("bash", "5.2.15", "2.fc41", "x86_64").epoch(1);
    bash.license = "GPL-3.0-or-later".into();
    bash.download_size = 1_234_567;
    bash.install_size = 7_654_321;
    bash.build_time = 1_712_345_678;
    let (pool, _repository) = common::pool_with(std::slice::from_ref(&bash));
    let id = pool.select("bash")[0];
    let details = pool.package(id);
    assert_eq!(details.name, "bash");
    assert_eq!(details.epoch, 1);
    assert_eq!(details.version, "5.2.15");
    assert_eq!(details.release, "2.fc41");
    assert_eq!(details.arch, "x86_64");
    assert_eq!(details.repo, "main");
    assert_eq!(details.location, "Packages/b/bash-5.2.15-2.fc41.x86_64.rpm");
    assert_eq!(details.checksum, Some(("sha256".to_string(), bash.checksum())));
    assert_eq!(details.download_size, 1_234_567);
    assert_eq!(details.install_size, 7_654_321);
    assert_eq!(details.sourcerpm.as_deref(), Some("bash-5.2.15-2.fc41.src.rpm"));
    assert_eq!(details.build_time, 1_712_345_678);
    assert_eq!(details.license.as_deref(), Some("GPL-3.0-or-later"));
    assert_eq!(pool.summary(id).as_deref(), Some("The bash package"));
    assert_eq!(details.evr(), "1:5.2.15-2.fc41");
    assert_eq!(details.nevra(), "bash-1:5.2.15-2.fc41.x86_64");
    assert_eq!(pool.name(id), "bash");
    assert_eq!(pool.evr(id), "1:5.2.15-2.fc41");
    assert_eq!(pool.arch(id), "x86_64");
    assert_eq!(pool.nevra(id), details.nevra());
}

/// A name that is not UTF-8 reads back with replacement characters; the location, which ends in
/// what the name's bytes spell, must still come back as written.
#[test]
fn details_of_a_package_whose_name_is_not_utf8() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("primary.xml");
    let mut xml = b"<metadata><package type=\"rpm\"><name>n".to_vec();
    xml.push(0xff);
    xml.extend_from_slice(
        b"</name><arch>x86_64</arch><version epoch=\"0\" ver=\"1.0\" rel=\"1\"/>\
          <location href=\"Packages/nX-1.0-1.x86_64.rpm\"/></package></metadata>",
    );
    std::fs::write(&path, xml).unwrap();
    let pool = load_primary(&path).unwrap();
    let id = pool.solvables(pool.repos()[0])[0];
    let details = pool.package(id);
    assert_eq!(details.name, "n\u{fffd}");
    assert_eq!(details.location, "Packages/nX-1.0-1.x86_64.rpm");
}

#[test]
fn repositories_keep_their_names_and_order() {
    let repository = FixtureRepository::write(&fixture());
    let mut pool = Pool::new(ARCH).unwrap();
    let first = repository.load(&mut pool, "fedora", 0);
    let second = repository.load(&mut pool, "updates", 0);
    assert_eq!(pool.repos(), [first, second]);
    assert_eq!(pool.repo_name(first), "fedora");
    assert_eq!(pool.repo_name(second), "updates");
    assert_eq!(pool.repo_by_name("updates"), Some(second));
    assert_eq!(pool.repo_by_name("nope"), None);
    let ids = pool.solvables(second);
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "load order");
    assert!(ids.iter().all(|id| pool.package(*id).repo == "updates"));
}

/// Every way a metadata file can be broken: (description, file name, file bytes).
fn broken_files() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let text = primary_xml(&fixture());
    let gzip = compress("gz", text.as_bytes());
    let zstd = compress("zst", text.as_bytes());
    vec![
        ("truncated gzip", "primary.xml.gz", gzip[..gzip.len() / 2].to_vec()),
        ("gzip with garbage", "primary.xml.gz", {
            let mut bytes = gzip[..40].to_vec();
            bytes.extend(std::iter::repeat_n(0x5a, 500));
            bytes
        }),
        ("not gzip at all", "primary.xml.gz", b"this is not compressed".to_vec()),
        ("truncated zstd", "primary.xml.zst", zstd[..zstd.len() / 2].to_vec()),
        ("truncated xml", "primary.xml", text.as_bytes()[..text.len() / 2].to_vec()),
        ("not xml", "primary.xml", b"{\"json\": true}".to_vec()),
        ("empty file", "primary.xml", Vec::new()),
    ]
}

#[test]
fn broken_primary_gives_a_clean_error() {
    let directory = tempfile::tempdir().unwrap();
    for (description, name, bytes) in broken_files() {
        let path = directory.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut pool = Pool::new(ARCH).unwrap();
        let good = FixtureRepository::write(&fixture());
        good.load(&mut pool, "good", 0);
        match pool.add_rpmmd_repo("broken", 0, &path, None, None) {
            Err(error @ SolvError::Read { kind: MetadataKind::Primary, .. }) => {
                let text = error.to_string();
                assert!(
                    text.starts_with(&format!("reading primary metadata {}: ", path.display())),
                    "{text}"
                );
                let reasons = ["decompressing: ", "XML error", "unclosed element", "no XML element"];
                assert!(
                    reasons.iter().any(|reason| text.contains(reason)),
                    "{description}: says why: {text}"
                );
            }
            Err(other) => panic!("{description}: unexpected error {other}"),
            Ok(_) => panic!("{description}: loaded without error"),
        }
        assert_eq!(pool.repos().len(), 1, "{description}: the broken repository is gone");
        // The pool stays usable: the good repository still solves.
        let transaction = pool.solve(&Request { install: vec!["app".into()], ..Request::default() }).unwrap();
        assert_eq!(transaction.install.len(), 3, "{description}");
    }
}

#[test]
fn failed_load_leaves_no_repository_behind() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("primary.xml");
    std::fs::write(&path, &primary_xml(&fixture()).as_bytes()[..300]).unwrap();
    let mut pool = Pool::new(ARCH).unwrap();
    assert!(pool.add_rpmmd_repo("broken", 0, &path, None, None).is_err());
    assert!(pool.repos().is_empty());
    assert_eq!(pool.repo_by_name("broken"), None);
}

#[test]
fn missing_files_name_the_path_and_kind() {
    let repository = FixtureRepository::write(&fixture());
    let missing = PathBuf::from("/nonexistent/arbor/primary.xml.gz");
    let mut pool = Pool::new(ARCH).unwrap();
    let cases: [(Option<&Path>, Option<&Path>, &Path, MetadataKind); 3] = [
        (None, None, &missing, MetadataKind::Primary),
        (Some(&missing), None, &missing, MetadataKind::Filelists),
        (None, Some(&missing), &missing, MetadataKind::Updateinfo),
    ];
    for (filelists, updateinfo, expected_path, expected_kind) in cases {
        let primary = if expected_kind == MetadataKind::Primary { &missing } else { &repository.primary };
        let error = pool.add_rpmmd_repo("main", 0, primary, filelists, updateinfo).unwrap_err();
        match &error {
            SolvError::Open { kind, path, .. } => {
                assert_eq!((*kind, path.as_path()), (expected_kind, expected_path));
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(error.to_string().starts_with(&format!("opening {expected_kind} {}: ", missing.display())));
    }
    assert!(pool.repos().is_empty());
}

#[test]
fn broken_updateinfo_is_reported() {
    let repository = FixtureRepository::write(&fixture());
    let updateinfo = repository.path("updateinfo.xml");
    std::fs::write(&updateinfo, "<updates><update><id>X</id><pkglist>").unwrap();
    let mut pool = Pool::new(ARCH).unwrap();
    let error = pool.add_rpmmd_repo("main", 0, &repository.primary, None, Some(&updateinfo)).unwrap_err();
    assert!(matches!(error, SolvError::Read { kind: MetadataKind::Updateinfo, .. }), "{error}");
}

#[test]
fn names_with_nul_bytes_are_refused() {
    let repository = FixtureRepository::write(&fixture());
    let mut pool = Pool::new(ARCH).unwrap();
    let error = pool.add_rpmmd_repo("bad\0name", 0, &repository.primary, None, None).unwrap_err();
    assert!(matches!(error, SolvError::NulByte { what: "repository name", .. }), "{error}");
}

#[test]
fn source_packages_and_advisories_are_not_listed() {
    let mut packages = fixture();
    packages.push(package("bash", "5.2.15", "2.fc41", "src"));
    let repository = FixtureRepository::write(&packages);
    let updateinfo = repository.path("updateinfo.xml");
    std::fs::write(&updateinfo, updateinfo_xml("FEDORA-2024-0002", &packages[0])).unwrap();
    let mut pool = Pool::new(ARCH).unwrap();
    let repo = pool.add_rpmmd_repo("main", 0, &repository.primary, None, Some(&updateinfo)).unwrap();
    assert_eq!(sorted_nevras(&pool, &pool.solvables(repo)), expected_nevras());
    assert_eq!(sorted_nevras(&pool, &pool.select("bash")), ["bash-5.2.15-2.fc41.x86_64"]);
}
