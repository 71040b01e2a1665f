//! The resolution cache against real repositories: a hit answers what solving answers, every input that
//! decides the result misses when it changes, damaged entries are solved again and replaced, the
//! directory stays bounded, and bypassing it neither reads nor writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arbor_testsupport::RpmSpec;
use rpmmd::resolution_cache::{KEPT_RESOLUTIONS, RESOLUTIONS_DIRECTORY};
use rpmmd::resolve::{
    LockSettings, RepositorySnapshot, Resolution, ResolutionCacheMode, ResolutionOrigin, ResolveOutcome,
    ResolvedPackage, resolve_with,
};
use support::{Fixture, base_packages, fixture, lockfile, make_repository, make_treefile_for, runtime};

/// The base lockfile: the requested packages and one more (a pin decides even when nothing asks for
/// the package).
const BASE_LOCKFILE: &str =
    "packages:\n  filesystem: {evr: 3.18-1}\n  app-extras: {evr: 2.0-1}\n  podman: {evr: 4.3-1}\n";

/// One resolve request: what the treefile says, the lockfile, the arch and the repository's URL.
#[derive(Clone)]
struct Inputs {
    manifest: String,
    lock: LockSettings,
    arch: &'static str,
    repository_url: String,
}

impl Inputs {
    fn base(fixture: &Fixture) -> Inputs {
        Inputs {
            manifest: "ref: r\nrepos: [test]\npackages: [app-extras, filesystem]\n".into(),
            lock: LockSettings { lockfile: lockfile(BASE_LOCKFILE), strict: false },
            arch: "x86_64",
            repository_url: fixture.repository_url.clone(),
        }
    }
}

/// Resolves `inputs` from a treefile directory of their own (named by a counter, so that the directory
/// is never what tells two requests apart).
fn resolve_inputs(fixture: &Fixture, inputs: &Inputs, mode: ResolutionCacheMode) -> ResolveOutcome {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!("treefile-{}", COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let flattened = make_treefile_for(
        &fixture.root.join(name),
        &inputs.manifest,
        &[("test", inputs.repository_url.clone())],
        inputs.arch,
    );
    runtime().block_on(resolve_with(&fixture.fetcher, &flattened, &inputs.lock, mode)).unwrap()
}

fn resolve_cached(fixture: &Fixture, inputs: &Inputs) -> ResolveOutcome {
    resolve_inputs(fixture, inputs, ResolutionCacheMode::Enabled)
}

/// Everything that tells two resolutions apart (`Resolution` has no `PartialEq`).
fn parts(resolution: &Resolution) -> (String, Vec<ResolvedPackage>, Vec<RepositorySnapshot>, Vec<String>) {
    let Resolution { arch, packages, repositories, warnings } = resolution.clone();
    (arch, packages, repositories, warnings)
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(cache.join(RESOLUTIONS_DIRECTORY))
        .map(|items| items.map(|item| item.unwrap().path()).collect())
        .unwrap_or_default();
    entries.retain(|path| path.extension().is_some_and(|extension| extension == "resolution"));
    entries.sort();
    entries
}

fn cache_of(fixture: &Fixture) -> PathBuf {
    fixture.root.join("cache")
}

#[test]
fn a_hit_answers_exactly_what_solving_answers() {
    let fixture = fixture(&base_packages());
    let inputs = Inputs {
        manifest: "ref: r\nrepos: [test]\npackages: [app, podman]\n".into(),
        lock: LockSettings {
            lockfile: lockfile("packages:\n  libfoo: {evra: 1.0-1.x86_64}\n  ghost: {evr: 9-9}\n"),
            strict: false,
        },
        ..Inputs::base(&fixture)
    };
    let solved = resolve_cached(&fixture, &inputs);
    assert_eq!(solved.origin, ResolutionOrigin::Solved);
    assert_eq!(entries(&cache_of(&fixture)).len(), 1, "the solved resolution is stored");
    let cached = resolve_cached(&fixture, &inputs);
    assert_eq!(cached.origin, ResolutionOrigin::Cached);
    assert_eq!(parts(&cached.resolution), parts(&solved.resolution));
    assert_eq!(cached.resolution.warnings, ["locked package ghost 9-9 is not in any repository"]);
    let fresh = resolve_inputs(&fixture, &inputs, ResolutionCacheMode::Bypassed);
    assert_eq!(fresh.origin, ResolutionOrigin::Solved);
    assert_eq!(parts(&fresh.resolution), parts(&cached.resolution));
}

#[test]
fn each_input_that_decides_the_result_misses_when_it_changes() {
    let fixture = fixture(&base_packages());
    let base = Inputs::base(&fixture);
    let first = resolve_cached(&fixture, &base);
    assert_eq!(first.origin, ResolutionOrigin::Solved);
    assert_eq!(resolve_cached(&fixture, &base).origin, ResolutionOrigin::Cached);

    // The same metadata served from another place: package URLs change, so must the answer.
    let copy = fixture.root.join("copy");
    arbor_testsupport::tools::run_tool(
        "cp",
        ["-a", fixture.root.join("repo").to_str().unwrap(), copy.to_str().unwrap()],
    )
    .unwrap();
    let with_lock = |text: &str, strict: bool| LockSettings { lockfile: lockfile(text), strict };
    let cases: Vec<(&str, Inputs)> = vec![
        (
            "a package more",
            Inputs { manifest: base.manifest.replace("filesystem]", "filesystem, bash]"), ..base.clone() },
        ),
        (
            "weak dependencies off",
            Inputs { manifest: format!("{}recommends: false\n", base.manifest), ..base.clone() },
        ),
        (
            "exclude-packages",
            Inputs { manifest: format!("{}exclude-packages: [podman]\n", base.manifest), ..base.clone() },
        ),
        (
            "a lockfile entry",
            Inputs {
                lock: with_lock(&format!("{BASE_LOCKFILE}  bash: {{evr: 5.2-1}}\n"), false),
                ..base.clone()
            },
        ),
        (
            "a locked version",
            Inputs { lock: with_lock(&BASE_LOCKFILE.replace("4.3-1", "4.0-1"), false), ..base.clone() },
        ),
        (
            "lockfile strict mode",
            Inputs { lock: LockSettings { strict: true, ..base.lock.clone() }, ..base.clone() },
        ),
        ("no lockfile", Inputs { lock: LockSettings::default(), ..base.clone() }),
        ("the arch", Inputs { arch: "aarch64", ..base.clone() }),
        (
            "the repository's baseurl",
            Inputs { repository_url: format!("file://{}", copy.display()), ..base.clone() },
        ),
    ];
    for (what, inputs) in &cases {
        let first = resolve_cached(&fixture, inputs);
        assert_eq!(
            first.origin,
            ResolutionOrigin::Solved,
            "{what} changed: solved, not answered from the cache"
        );
        let again = resolve_cached(&fixture, inputs);
        assert_eq!(again.origin, ResolutionOrigin::Cached, "{what}: the same inputs again hit");
        assert_eq!(parts(&again.resolution), parts(&first.resolution), "{what}");
    }
    let moved = &cases.last().unwrap().1;
    let moved = resolve_cached(&fixture, moved).resolution;
    assert!(
        moved.packages.iter().all(|package| package.url.contains("/copy/")),
        "{:?}",
        moved.packages[0].url
    );
    assert_eq!(
        resolve_cached(&fixture, &base).origin,
        ResolutionOrigin::Cached,
        "the base entry is still there"
    );

    // New metadata (a package more, so a new repomd.xml) at the same URL.
    let mut packages = base_packages();
    packages.push(RpmSpec::new("newcomer", "1", "1"));
    make_repository(&fixture.root.join("repo"), &packages);
    let after_update = resolve_cached(&fixture, &base);
    assert_eq!(after_update.origin, ResolutionOrigin::Solved, "new repository metadata: solved");
    assert_ne!(
        after_update.resolution.repositories[0].repomd_checksum,
        first.resolution.repositories[0].repomd_checksum
    );
    assert_eq!(resolve_cached(&fixture, &base).origin, ResolutionOrigin::Cached);
}

#[test]
fn damaged_entries_are_solved_again_and_replaced() {
    let fixture = fixture(&base_packages());
    let base = Inputs::base(&fixture);
    let other =
        Inputs { manifest: base.manifest.replace("filesystem]", "filesystem, bash]"), ..base.clone() };
    let expected = resolve_cached(&fixture, &base).resolution;
    let entry = entries(&cache_of(&fixture)).pop().unwrap();
    resolve_cached(&fixture, &other);
    let other_entry = entries(&cache_of(&fixture)).into_iter().find(|path| *path != entry).unwrap();
    let sound = std::fs::read(&entry).unwrap();

    let flipped = |offset: usize| {
        let mut bytes = sound.clone();
        bytes[offset] ^= 0x20;
        bytes
    };
    let damages: [(&str, Vec<u8>); 7] = [
        ("empty", Vec::new()),
        ("truncated in the header", sound[..40].to_vec()),
        ("truncated in the payload", sound[..sound.len() / 2].to_vec()),
        ("a flipped byte in the payload", flipped(sound.len() - 10)),
        ("a flipped byte in the header", flipped(3)),
        ("another key's entry", std::fs::read(&other_entry).unwrap()),
        ("garbage", b"\x00\xffnot a resolution at all ".repeat(200)),
    ];
    for (what, damaged) in damages {
        std::fs::write(&entry, &damaged).unwrap();
        let again = resolve_cached(&fixture, &base);
        assert_eq!(again.origin, ResolutionOrigin::Solved, "{what}: solved again");
        assert_eq!(parts(&again.resolution), parts(&expected), "{what}");
        assert_eq!(std::fs::read(&entry).unwrap(), sound, "{what}: the entry is replaced");
        assert_eq!(resolve_cached(&fixture, &base).origin, ResolutionOrigin::Cached, "{what}: then hit");
    }
}

#[test]
fn the_directory_keeps_the_most_recently_used_entries() {
    let fixture = fixture(&base_packages());
    let base = Inputs::base(&fixture);
    let directory = cache_of(&fixture).join(RESOLUTIONS_DIRECTORY);
    std::fs::create_dir_all(&directory).unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(86_400);
    for index in 0..KEPT_RESOLUTIONS + 5 {
        let path = directory.join(format!("{index:064x}.resolution"));
        std::fs::write(&path, b"an old entry").unwrap();
        let file = std::fs::File::options().append(true).open(&path).unwrap();
        file.set_modified(long_ago + Duration::from_secs(index as u64)).unwrap();
    }
    assert_eq!(resolve_cached(&fixture, &base).origin, ResolutionOrigin::Solved);
    let kept = entries(&cache_of(&fixture));
    assert_eq!(kept.len(), KEPT_RESOLUTIONS);
    assert!(!kept.contains(&directory.join(format!("{:064x}.resolution", 0))), "the oldest went first");
    assert_eq!(resolve_cached(&fixture, &base).origin, ResolutionOrigin::Cached, "the new entry is kept");
}

#[test]
fn bypassing_neither_reads_nor_writes() {
    let fixture = fixture(&base_packages());
    let base = Inputs::base(&fixture);
    assert_eq!(
        resolve_inputs(&fixture, &base, ResolutionCacheMode::Bypassed).origin,
        ResolutionOrigin::Solved
    );
    assert!(entries(&cache_of(&fixture)).is_empty(), "nothing stored");
    assert_eq!(resolve_cached(&fixture, &base).origin, ResolutionOrigin::Solved);
    assert_eq!(
        resolve_inputs(&fixture, &base, ResolutionCacheMode::Bypassed).origin,
        ResolutionOrigin::Solved
    );
}
