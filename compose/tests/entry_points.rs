//! The library entry points as the server calls them: `compose::tree` and `compose::image` with an event
//! sink and a cancellation. Their events come in order (each phase started, then finished once, with
//! the package counts), their outcomes say `Composed` / `Written` or `Unchanged`, and a compose
//! cancelled while it imports packages stops with `Cancelled`, leaving both repositories consistent and
//! nothing half-done. Needs root, bwrap, rofiles-fuse, rpm, createrepo_c and ostree (scripts/install-deps).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Mutex;

use arbor_testsupport::{RpmSpec, os_fixture};
use common::blocking::Cancellation;
use compose::{ComposeError, ComposeEvent, ImageOutcome, ImageOutput, ImageRequest, Phase, TreeOutcome};
use support::*;

/// Packages beyond the minimal OS in the cancellation test: enough that the import is still running
/// when the first one is reported imported.
const BULK_PACKAGES: usize = 24;

/// Every event of a compose, in the order they came.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<ComposeEvent>>);

impl Recorded {
    fn record(&self, event: ComposeEvent) {
        self.0.lock().unwrap().push(event);
    }

    fn take(&self) -> Vec<ComposeEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The phases started, in order; checks that each one finished exactly once, before the next started.
fn phases(events: &[ComposeEvent]) -> Vec<Phase> {
    let mut started = Vec::new();
    let mut running: Option<Phase> = None;
    for event in events {
        match event {
            ComposeEvent::PhaseStarted(phase) => {
                assert_eq!(running, None, "{phase:?} started while {running:?} ran");
                running = Some(*phase);
                started.push(*phase);
            }
            ComposeEvent::PhaseFinished { phase, .. } => {
                assert_eq!(running, Some(*phase), "{phase:?} finished without running");
                running = None;
            }
            _ => {}
        }
    }
    assert_eq!(running, None, "every phase finished");
    started
}

#[test]
fn compose_tree_reports_its_phases_and_says_composed_then_unchanged() {
    let extra =
        package("extra").file("/usr/share/extra", "extra\n", 0o644).post_install_script("echo post\n");
    let repository = repository_with(&[extra]);
    let workspace = Workspace::new(&repository.url(), None);
    let request = workspace.request();
    std::fs::write(&request.treefile, treefile(&["extra"], "")).unwrap();
    let recorded = Recorded::default();
    let cancellation = Cancellation::new();

    let outcome = runtime().block_on(compose::tree(&request, &|event| recorded.record(event), &cancellation));
    let TreeOutcome::Composed(summary) = outcome.unwrap() else { panic!("the first compose composes") };
    assert_eq!(summary.commit, workspace.published_commit(), "the outcome names the published commit");
    let events = recorded.take();
    assert_eq!(
        phases(&events),
        [
            Phase::Resolving,
            Phase::Downloading,
            Phase::Importing,
            Phase::Assembling,
            Phase::Scriptlets,
            Phase::Postprocessing,
            Phase::Committing,
            Phase::Publishing,
        ]
    );
    let packages = os_fixture::PACKAGE_NAMES.len() + 1;
    assert!(
        events.iter().any(
            |event| matches!(event, ComposeEvent::Resolved { packages: count, .. } if *count == packages)
        ),
        "the package count is reported: {events:?}"
    );
    let downloaded = events.iter().filter(|event| matches!(event, ComposeEvent::Downloaded(_))).count();
    assert_eq!(downloaded, packages, "one download event per package");
    let last_import = events.iter().rev().find_map(|event| match event {
        ComposeEvent::Imported(progress) => Some((progress.done, progress.total)),
        _ => None,
    });
    assert_eq!(last_import, Some((packages, packages)), "the import reports its progress to the end");

    let again = runtime().block_on(compose::tree(&request, &|event| recorded.record(event), &cancellation));
    let TreeOutcome::Unchanged(unchanged) = again.unwrap() else {
        panic!("unchanged inputs compose nothing")
    };
    assert_eq!(unchanged.commit, summary.commit);
    assert_eq!(phases(&recorded.take()), [Phase::Resolving], "an unchanged compose stops after resolving");
}

#[test]
fn compose_image_writes_the_image_with_its_version_and_additional_tags_then_finds_it_unchanged() {
    let repository = repository_with(&[]);
    let workspace = Workspace::new(&repository.url(), None);
    let layout = workspace.directory.path().join("images");
    let mut output = ImageOutput::new(format!("oci:{}:testing", layout.display()));
    output.tag_version = true;
    output.additional_tags = vec!["candidate".to_string()];
    let request = ImageRequest { tree: workspace.request(), output };
    std::fs::write(&request.tree.treefile, treefile(&[], "")).unwrap();
    let recorded = Recorded::default();
    let cancellation = Cancellation::new();

    let outcome =
        runtime().block_on(compose::image(&request, &|event| recorded.record(event), &cancellation));
    let ImageOutcome::Written(written) = outcome.unwrap() else {
        panic!("the first compose writes an image")
    };
    assert!(matches!(written.tree, TreeOutcome::Composed(_)));
    let version = format!("{VERSION_PREFIX}.0");
    assert_eq!(written.image.version.as_deref(), Some(version.as_str()));
    assert_eq!(
        written.tags,
        [version.clone(), "candidate".to_string(), "testing".to_string()],
        "the version tag first, then the additional tags, the target's last"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tagged: Vec<(&str, &str)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap(),
                entry["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(tagged.len(), 3, "{tagged:?}");
    assert!(
        tagged.iter().all(|(_, digest)| *digest == written.image.digest),
        "every tag names the image: {tagged:?}"
    );
    let events = recorded.take();
    let started = phases(&events);
    assert_eq!(started.last(), Some(&Phase::Writing));
    assert!(started.contains(&Phase::Encapsulating), "{started:?}");
    assert!(
        events.iter().any(|event| matches!(event, ComposeEvent::Encapsulated { layers, .. } if *layers > 1))
    );

    let again = runtime().block_on(compose::image(&request, &|event| recorded.record(event), &cancellation));
    let ImageOutcome::Unchanged(unchanged) = again.unwrap() else { panic!("the same inputs write nothing") };
    assert_eq!(unchanged.digest, written.image.digest, "the previous image is the one at the target");
    assert_eq!(unchanged.version.as_deref(), Some(version.as_str()));
    assert_eq!(unchanged.commit.as_deref(), Some(written.commit.as_str()));
}

#[test]
fn a_compose_cancelled_while_importing_stops_and_leaves_nothing_half_done() {
    let bulk: Vec<RpmSpec> = (0..BULK_PACKAGES)
        .map(|index| {
            package(&format!("bulk-{index}")).file(&format!("/usr/share/bulk/{index}"), "bulk\n", 0o644)
        })
        .collect();
    let names: Vec<String> = (0..BULK_PACKAGES).map(|index| format!("bulk-{index}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let repository = repository_with(&bulk);
    let workspace = Workspace::new(&repository.url(), None);
    let mut request = workspace.request();
    request.threads = 1;
    std::fs::write(&request.treefile, treefile(&names, "")).unwrap();
    let cancellation = Cancellation::new();
    let recorded = Recorded::default();
    let cancel_on_first_import = |event: ComposeEvent| {
        if matches!(event, ComposeEvent::Imported(_)) {
            cancellation.cancel();
        }
        recorded.record(event);
    };

    let error =
        runtime().block_on(compose::tree(&request, &cancel_on_first_import, &cancellation)).unwrap_err();
    assert!(
        matches!(error, ComposeError::Cancelled { phase: "importing packages" }),
        "cancelled while importing, got: {error}"
    );
    let imported = recorded.take().iter().filter(|event| matches!(event, ComposeEvent::Imported(_))).count();
    assert!(imported < BULK_PACKAGES, "the import stopped early ({imported} packages imported)");
    assert_eq!(workspace.published_commit(), None, "no ref names a commit of the cancelled compose");
    assert_fsck_clean(&workspace.package_cache());
    workspace.assert_scratch_space_is_clean();

    let composed = runtime().block_on(compose::tree(&request, &|_| {}, &Cancellation::new()));
    let TreeOutcome::Composed(summary) = composed.unwrap() else { panic!("the next compose composes") };
    assert!(summary.import.cache_hits >= 1, "what the cancelled compose imported is reused");
    assert_eq!(summary.import.cache_hits + summary.import.imported, summary.packages.len());
    assert_fsck_clean(&workspace.target());
    assert_fsck_clean(&workspace.package_cache());
}
