//! `compose tree`: from a treefile to an ostree commit. Load the inputs, resolve, stop early when the input
//! hash equals the previous commit's, download and verify, then build the commit (import, assemble,
//! scriptlets, postprocess, rpmdb, commit, publish) on a blocking thread that the cancellation reaches.

use std::path::{Path, PathBuf};

use common::blocking::{Cancellation, run_blocking_cancellable};
use rpmmd::download::download_packages;
use rpmmd::fetch::{FetchOptions, Fetcher};
use rpmmd::lock_update::lockfile_from_resolution;
use rpmmd::resolve::{Resolution, resolve_with};
use tree::{BuildEvent, BuildInputs, BuildOptions, CommitInformation};

use crate::error::{ComposeError, build_error};
use crate::events::{ComposeEvent, EventSink, Phase, PhaseClock};
use crate::inputs::ComposeInputs;
use crate::request::TreeRequest;
use crate::summary::ComposeSummary;

/// How a `compose tree` ended.
#[derive(Debug, Clone)]
pub enum TreeOutcome {
    /// A new commit was written and the ref moved to it.
    Composed(ComposeSummary),
    /// The ref's commit has the same input hash: nothing was composed.
    Unchanged(ComposeSummary),
    /// A dry run: what would be composed.
    DryRun(ComposeSummary),
}

impl TreeOutcome {
    pub fn summary(&self) -> &ComposeSummary {
        match self {
            TreeOutcome::Composed(summary)
            | TreeOutcome::Unchanged(summary)
            | TreeOutcome::DryRun(summary) => summary,
        }
    }

    pub fn into_summary(self) -> ComposeSummary {
        match self {
            TreeOutcome::Composed(summary)
            | TreeOutcome::Unchanged(summary)
            | TreeOutcome::DryRun(summary) => summary,
        }
    }
}

/// A loaded and resolved compose, before anything is built: what `compose image` checks against the
/// previous image before deciding to build.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) inputs: ComposeInputs,
    pub(crate) fetcher: Fetcher,
    pub(crate) resolution: Resolution,
    pub(crate) inputhash: String,
}

/// Runs `future` unless `cancellation` is raised first; then the future is dropped, which cancels the
/// blocking work it started, and the compose stops with [`ComposeError::Cancelled`].
pub(crate) async fn unless_cancelled<T>(
    cancellation: &Cancellation,
    phase: Phase,
    future: impl Future<Output = T>,
) -> Result<T, ComposeError> {
    tokio::select! {
        biased;
        () = cancellation.cancelled() => Err(ComposeError::Cancelled { phase: phase.description() }),
        output = future => Ok(output),
    }
}

/// Loads the treefile and lockfiles, resolves, and computes the input hash.
pub(crate) async fn load_and_resolve(
    request: &TreeRequest,
    clock: &PhaseClock<'_>,
    cancellation: &Cancellation,
) -> Result<Resolved, ComposeError> {
    let inputs = ComposeInputs::load(
        &request.treefile,
        &request.arch,
        &request.variables,
        &request.lockfiles,
        request.lockfile_strict,
    )?;
    for warning in inputs.flattened.warnings.iter().chain(&inputs.lockfile_warnings) {
        clock.warn(warning.located_message());
    }
    let fetcher = Fetcher::new(FetchOptions::new(&request.cache_directory)).map_err(ComposeError::Fetcher)?;
    clock.start(Phase::Resolving);
    let resolving = resolve_with(&fetcher, &inputs.flattened, &inputs.lock, request.resolution_cache);
    let resolution = unless_cancelled(cancellation, Phase::Resolving, resolving)
        .await?
        .map_err(|source| ComposeError::resolve(&request.treefile, source))?
        .resolution;
    for warning in &resolution.warnings {
        clock.warn(warning.clone());
    }
    clock.emit(ComposeEvent::Resolved {
        packages: resolution.packages.len(),
        download_bytes: resolution.packages.iter().map(|package| package.download_size).sum(),
        install_bytes: resolution.packages.iter().map(|package| package.install_size).sum(),
    });
    if let Some(path) = &request.write_lockfile_to {
        let lockfile = lockfile_from_resolution(&resolution, now(), false);
        treefiles::lockfile::write_atomically(path, lockfile.to_json_string().as_bytes())
            .map_err(|source| ComposeError::WriteLockfile { path: path.clone(), source })?;
    }
    let inputhash = rpmmd::inputhash::input_hash(&inputs.flattened, &resolution, |path| std::fs::read(path))
        .map_err(ComposeError::InputHash)?;
    Ok(Resolved { inputs, fetcher, resolution, inputhash })
}

/// `compose tree`: composes the treefile of `request` into a commit on its ref in `request.repo`.
/// Events reach `events` as they happen; raising `cancellation` stops the compose at the next check
/// (downloads at once, the build between files and phases) and returns [`ComposeError::Cancelled`],
/// with both repositories as consistent as before.
pub async fn tree(
    request: &TreeRequest,
    events: EventSink<'_>,
    cancellation: &Cancellation,
) -> Result<TreeOutcome, ComposeError> {
    let clock = PhaseClock::new(events);
    let resolved = load_and_resolve(request, &clock, cancellation).await?;
    compose_resolved(request, resolved, &clock, cancellation).await
}

/// The rest of `compose tree` once resolved: the early stop, the download and the build.
pub(crate) async fn compose_resolved(
    request: &TreeRequest,
    resolved: Resolved,
    clock: &PhaseClock<'_>,
    cancellation: &Cancellation,
) -> Result<TreeOutcome, ComposeError> {
    let Resolved { inputs, fetcher, resolution, inputhash } = resolved;
    let flattened = &inputs.flattened;
    let reference = flattened.treefile.reference.clone().ok_or(ComposeError::NoReference)?;
    // rpm and ostree's file:// pulls need absolute paths.
    let repo = absolute(&request.repo)?;
    let cache_directory = absolute(&request.cache_directory)?;

    let previous = {
        let (repo, reference) = (repo.clone(), reference.clone());
        run_blocking_cancellable("reading the previous commit", cancellation, move |_| {
            tree::previous_commit(&repo, &reference)
        })
        .await?
        .map_err(|source| build_error(&request.treefile, source))?
    };
    if let Some((commit, information)) = &previous
        && information.inputhash.as_deref() == Some(inputhash.as_str())
        && !request.force
    {
        return Ok(TreeOutcome::Unchanged(ComposeSummary::unchanged(
            &reference,
            commit,
            information,
            &inputhash,
        )));
    }
    if request.dry_run {
        return Ok(TreeOutcome::DryRun(ComposeSummary::dry_run(
            &reference,
            &inputhash,
            &resolution,
            previous.as_ref(),
        )));
    }

    clock.start(Phase::Downloading);
    let definitions = rpmmd::resolve::treefile_repositories(flattened)
        .map_err(|source| ComposeError::resolve(&request.treefile, source))?
        .0;
    let rpm_paths = unless_cancelled(
        cancellation,
        Phase::Downloading,
        download_packages(&fetcher, &resolution, &definitions, &|event| {
            clock.emit(ComposeEvent::Downloaded(event))
        }),
    )
    .await?
    .map_err(ComposeError::Download)?;

    let options = BuildOptions {
        repo,
        cache_directory,
        source_date_epoch: request.source_date_epoch,
        add_metadata_strings: request.add_metadata_strings.clone(),
        threads: threads(request.threads),
    };
    let work = BuildWork {
        flattened: inputs.flattened.clone(),
        reference: reference.clone(),
        inputhash: inputhash.clone(),
        resolution: resolution.clone(),
        rpm_paths,
        previous: previous.clone(),
        options,
    };
    let built = build(work, clock, cancellation).await.map_err(|error| match error {
        BuildFailure::Build(source) => build_error(&request.treefile, source),
        BuildFailure::Blocking(error) => ComposeError::Blocking(error),
    })?;
    clock.finish();
    Ok(TreeOutcome::Composed(ComposeSummary::composed(
        &reference,
        &built,
        &inputhash,
        &resolution,
        previous.as_ref(),
    )))
}

/// What the blocking build owns.
struct BuildWork {
    flattened: treefiles::Flattened,
    reference: String,
    inputhash: String,
    resolution: Resolution,
    rpm_paths: Vec<PathBuf>,
    previous: Option<(String, CommitInformation)>,
    options: BuildOptions,
}

enum BuildFailure {
    Build(tree::BuildError),
    Blocking(common::blocking::BlockingError),
}

/// Builds the commit on a blocking thread, relaying its events as they happen.
async fn build(
    work: BuildWork,
    clock: &PhaseClock<'_>,
    cancellation: &Cancellation,
) -> Result<tree::BuiltCommit, BuildFailure> {
    // Events reach the caller as they happen: a phase's start is its real start in the log.
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<BuildEvent>();
    let blocking = run_blocking_cancellable("composing the tree", cancellation, move |cancellation| {
        let inputs = BuildInputs {
            flattened: &work.flattened,
            reference: &work.reference,
            inputhash: &work.inputhash,
            resolution: &work.resolution,
            rpm_paths: &work.rpm_paths,
            previous: work.previous.as_ref(),
        };
        let report = |event| {
            let _ = sender.send(event);
        };
        tree::build_commit(&inputs, &work.options, &report, cancellation)
    });
    tokio::pin!(blocking);
    let relay = |event: BuildEvent| match event {
        BuildEvent::PhaseStarted(phase) => clock.start(phase.into()),
        BuildEvent::Imported(progress) => clock.emit(ComposeEvent::Imported(progress)),
    };
    loop {
        tokio::select! {
            biased;
            Some(event) = receiver.recv() => relay(event),
            result = &mut blocking => {
                while let Ok(event) = receiver.try_recv() {
                    relay(event);
                }
                return result.map_err(BuildFailure::Blocking)?.map_err(BuildFailure::Build);
            }
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, ComposeError> {
    std::path::absolute(path).map_err(|source| ComposeError::Io { path: path.to_path_buf(), source })
}

/// Import threads: `requested`, or one per core when 0.
fn threads(requested: usize) -> usize {
    if requested > 0 { requested } else { std::thread::available_parallelism().map_or(1, usize::from) }
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs())
}
