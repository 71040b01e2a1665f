//! The key's inputs one by one, entries refused for every kind of damage, and the pruning.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;
use crate::checksum::Checksum;
use crate::repomd::Repomd;
use crate::resolution_encoding::tests::{parts, sample};

fn repository(id: &str, base_url: &str, repomd: &[u8]) -> FetchedRepository {
    FetchedRepository {
        definition: RepoDefinition {
            id: id.into(),
            name: Some(format!("The {id} repository")),
            baseurls: vec![base_url.into()],
            metalink: None,
            mirrorlist: None,
            enabled: true,
            gpgcheck: false,
            gpgkeys: Vec::new(),
            file: PathBuf::from(format!("{id}.repo")),
            line: 1,
        },
        base_urls: vec![base_url.into()],
        repomd: Repomd::default(),
        repomd_checksum: Checksum::sha256_of(repomd),
    }
}

fn lockfile(text: &str) -> Option<Lockfile> {
    Some(Lockfile::parse(text, "manifest-lock.x86_64.json").unwrap())
}

/// The values a key is computed from, owned, so that each test case changes one of them.
#[derive(Clone)]
struct Inputs {
    arch: String,
    repositories: Vec<FetchedRepository>,
    request: Request,
    constraints: Constraints,
}

impl Inputs {
    fn base() -> Inputs {
        Inputs {
            arch: "x86_64".into(),
            repositories: vec![
                repository("fedora", "file:///srv/fedora", b"<repomd>1</repomd>"),
                repository("pool", "file:///srv/pool", b"<repomd>2</repomd>"),
            ],
            request: Request {
                install: vec!["bash".into(), "podman >= 4".into()],
                install_from_repo: vec![("fedora".into(), "kernel".into())],
                weak_dependencies: true,
            },
            constraints: Constraints {
                lock: LockSettings {
                    lockfile: lockfile(
                        r#"{"packages": {"bash": {"evra": "5.2-1.x86_64", "digest": "sha256:aa"}}}"#,
                    ),
                    strict: false,
                },
                lockfile_repos: BTreeSet::from(["pool".to_string()]),
                excluded_names: BTreeSet::from(["nano".to_string()]),
            },
        }
    }

    fn key_for_version(&self, version: u32) -> ResolutionKey {
        KeyInputs {
            arch: &self.arch,
            repositories: &self.repositories,
            request: &self.request,
            constraints: &self.constraints,
        }
        .key_for_version(version)
    }

    fn key(&self) -> ResolutionKey {
        self.key_for_version(RESOLVER_VERSION)
    }
}

#[test]
fn every_input_that_decides_the_result_changes_the_key() {
    let base = Inputs::base();
    type Change = fn(&mut Inputs);
    let changes: [(&str, Change); 19] = [
        ("arch", |inputs| inputs.arch = "aarch64".into()),
        ("repository id", |inputs| inputs.repositories[0].definition.id = "updates".into()),
        ("repository order", |inputs| inputs.repositories.reverse()),
        ("a repository less", |inputs| drop(inputs.repositories.pop())),
        ("the base URL that served repomd.xml", |inputs| {
            inputs.repositories[0].base_urls = vec!["https://mirror.example/fedora".into()]
        }),
        ("repomd.xml", |inputs| {
            inputs.repositories[1].repomd_checksum = Checksum::sha256_of(b"<repomd>3</repomd>")
        }),
        ("a package spec", |inputs| inputs.request.install.push("vim".into())),
        ("package spec order", |inputs| inputs.request.install.reverse()),
        ("repo-packages", |inputs| inputs.request.install_from_repo[0].0 = "pool".into()),
        ("weak dependencies", |inputs| inputs.request.weak_dependencies = false),
        ("exclude-packages", |inputs| {
            inputs.constraints.excluded_names.insert("vim".into());
        }),
        ("lockfile-repos", |inputs| inputs.constraints.lockfile_repos.clear()),
        ("a locked version", |inputs| {
            inputs.constraints.lock.lockfile =
                lockfile(r#"{"packages": {"bash": {"evra": "5.3-1.x86_64", "digest": "sha256:aa"}}}"#)
        }),
        ("evr instead of evra", |inputs| {
            inputs.constraints.lock.lockfile =
                lockfile(r#"{"packages": {"bash": {"evr": "5.2-1.x86_64", "digest": "sha256:aa"}}}"#)
        }),
        ("a locked digest", |inputs| {
            inputs.constraints.lock.lockfile = lockfile(r#"{"packages": {"bash": {"evra": "5.2-1.x86_64"}}}"#)
        }),
        ("a locked package more", |inputs| {
            inputs.constraints.lock.lockfile = lockfile(
                r#"{"packages": {"bash": {"evra": "5.2-1.x86_64", "digest": "sha256:aa"}, "vim": {"evr": "9-1"}}}"#,
            )
        }),
        ("no lockfile", |inputs| inputs.constraints.lock.lockfile = None),
        ("an empty lockfile", |inputs| inputs.constraints.lock.lockfile = lockfile(r#"{"packages": {}}"#)),
        ("strict mode", |inputs| inputs.constraints.lock.strict = true),
    ];
    let mut keys = vec![("base", base.key())];
    for (what, change) in changes {
        let mut changed = base.clone();
        change(&mut changed);
        keys.push((what, changed.key()));
    }
    keys.push(("the resolver version", base.key_for_version(RESOLVER_VERSION + 1)));
    for (index, (what, key)) in keys.iter().enumerate() {
        for (other, other_key) in &keys[..index] {
            assert_ne!(key, other_key, "{what} gives the key of {other}");
        }
    }
}

#[test]
fn what_decides_nothing_leaves_the_key() {
    let base = Inputs::base();
    let mut changed = base.clone();
    let definition = &mut changed.repositories[0].definition;
    definition.name = Some("Renamed".into());
    definition.gpgcheck = true;
    definition.file = PathBuf::from("elsewhere/fedora.repo");
    definition.line = 40;
    changed.repositories[0].base_urls.push("https://fallback.example/fedora".into());
    changed.constraints.lock.lockfile = lockfile(
        r#"{"metadata": {"generated": "2025-01-01T00:00:00Z"},
            "packages": {"bash": {"evra": "5.2-1.x86_64", "digest": "sha256:aa", "metadata": {"sourcerpm": "bash"}}}}"#,
    );
    assert_eq!(changed.key(), base.key());
}

#[test]
fn entries_round_trip_and_damaged_ones_are_refused() {
    let key = Inputs::base().key();
    let resolution = sample();
    let bytes = entry_bytes(&key, &resolution);
    assert_eq!(parts(&read_entry(&bytes[..], bytes.len() as u64, &key).unwrap()), parts(&resolution));

    let mut flipped_payload = bytes.clone();
    *flipped_payload.last_mut().unwrap() ^= 0x01;
    let mut flipped_header = bytes.clone();
    flipped_header[MAGIC.len() + 4 + 32 + 8] ^= 0x80;
    let mut other_version = bytes.clone();
    other_version[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&(RESOLVER_VERSION + 1).to_le_bytes());
    let other_key = entry_bytes(&Inputs { arch: "s390x".into(), ..Inputs::base() }.key(), &resolution);
    let cases: [(&str, Vec<u8>, &str); 9] = [
        ("empty", Vec::new(), "shorter than the header"),
        ("truncated header", bytes[..HEADER_BYTES - 1].to_vec(), "shorter than the header"),
        ("truncated payload", bytes[..bytes.len() - 1].to_vec(), "the header says"),
        ("a byte more", [bytes.as_slice(), b"x"].concat(), "the header says"),
        ("a flipped payload byte", flipped_payload, "does not match its checksum"),
        ("a flipped checksum byte", flipped_header, "does not match its checksum"),
        ("another version", other_version, "written by resolver version"),
        ("another key", other_key, "the entry is for key"),
        ("garbage", b"garbage ".repeat(64), "wrong magic"),
    ];
    // The file grew after its size was taken.
    let grown = [bytes.as_slice(), b"x"].concat();
    let error = read_entry(&grown[..], bytes.len() as u64, &key).err().unwrap();
    assert!(error.contains("bytes follow the payload"), "{error}");
    for (what, damaged, expected) in cases {
        let error = read_entry(&damaged[..], damaged.len() as u64, &key)
            .err()
            .unwrap_or_else(|| panic!("{what} was accepted"));
        assert!(error.contains(expected), "{what}: {error}");
    }
}

#[test]
fn pruning_keeps_the_most_recently_used_and_removes_abandoned_temporaries() {
    let directory = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let entry = |index: usize| directory.path().join(format!("{index:064x}{ENTRY_SUFFIX}"));
    for index in 0..10 {
        std::fs::write(entry(index), b"x").unwrap();
        let file = std::fs::File::options().append(true).open(entry(index)).unwrap();
        file.set_modified(now - Duration::from_secs(60 * (10 - index as u64))).unwrap();
    }
    let abandoned = directory.path().join(format!(".{:064x}.partial-1-0", 0));
    let fresh_temporary = directory.path().join(format!(".{:064x}.partial-2-0", 1));
    let unrelated = directory.path().join("notes.txt");
    for path in [&abandoned, &fresh_temporary, &unrelated] {
        std::fs::write(path, b"x").unwrap();
    }
    std::fs::File::options()
        .append(true)
        .open(&abandoned)
        .unwrap()
        .set_modified(now - ABANDONED_TEMPORARY_AGE - Duration::from_secs(1))
        .unwrap();

    prune(directory.path(), 4).unwrap();
    let kept: Vec<bool> = (0..10).map(|index| entry(index).exists()).collect();
    assert_eq!(kept, [false, false, false, false, false, false, true, true, true, true]);
    assert!(!abandoned.exists(), "an abandoned temporary file is removed");
    assert!(fresh_temporary.exists(), "another process may still be writing");
    assert!(unrelated.exists(), "only entries are pruned");
}

#[test]
fn entry_names_are_recognised() {
    assert!(is_entry_name(&format!("{}{ENTRY_SUFFIX}", "0a".repeat(32))));
    assert!(!is_entry_name(&format!("{}{ENTRY_SUFFIX}", "0A".repeat(32))));
    assert!(!is_entry_name(&format!("{}{ENTRY_SUFFIX}", "0a".repeat(31))));
    assert!(!is_entry_name(&"0a".repeat(32)));
}
