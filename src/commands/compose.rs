//! `arbor compose resolve|tree|diff|image`: arguments to library requests, the progress display, and
//! what is printed at the end.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use common::blocking::Cancellation;
use compose::{ComposeError, ComposeInputs, ImageOutcome, ImageRequest, TreeOutcome, package_diff};
use rpmmd::fetch::{FetchOptions, Fetcher};
use rpmmd::lock_update::DiffReport;
use rpmmd::resolve::resolve_with;
use treefiles::lockfile::write_atomically;

use super::arguments::{CacheArgs, ComposeInputArgs, ImageOutputArgs, LockfileArgs, TreefileArgs};
use super::progress::Progress;
use super::report::{print_image, print_summary};
use super::resolution_output::{write_json, write_table};

#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Depsolve the treefile and print the package set (nothing is downloaded but metadata).
    Resolve {
        #[command(flatten)]
        treefile: TreefileArgs,
        #[command(flatten)]
        lockfiles: LockfileArgs,
        #[command(flatten)]
        cache: CacheArgs,
        /// Print JSON (packages, repositories, inputhash) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compose the treefile into an ostree commit (download, import, assemble, scriptlets, commit).
    Tree(Box<TreeArgs>),
    /// Show the package changes between two commits.
    Diff(DiffArgs),
    /// Compose the treefile into a chunked OCI image (compose tree + encapsulate + write or push).
    Image(Box<ComposeImageArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct TreeArgs {
    #[command(flatten)]
    pub inputs: ComposeInputArgs,
    /// The ostree repository to commit to (created bare-user if the directory does not exist).
    #[arg(long)]
    pub repo: PathBuf,
    /// Resolve and show what would be composed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ComposeImageArgs {
    #[command(flatten)]
    pub inputs: ComposeInputArgs,
    /// The ostree repository the commit is written to. Default: `compose-repo` in the cache directory.
    #[arg(long)]
    pub repo: Option<PathBuf>,
    #[command(flatten)]
    pub output: ImageOutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The ostree repository holding both commits.
    #[arg(long)]
    pub repo: PathBuf,
    /// The older commit (checksum or ref).
    pub old: String,
    /// The newer commit (checksum or ref).
    pub new: String,
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// The runtime of `compose resolve`: one thread, as a resolve waits for little but files and the
/// blocking pool (where the solving runs), so no worker threads are started and stopped.
fn resolve_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

pub fn run(command: ComposeCommand) -> anyhow::Result<ExitCode> {
    match command {
        ComposeCommand::Tree(arguments) => run_tree(*arguments),
        ComposeCommand::Diff(arguments) => run_diff(arguments),
        ComposeCommand::Image(arguments) => run_image(*arguments),
        ComposeCommand::Resolve { treefile, lockfiles, cache, json } => {
            run_resolve(&treefile, &lockfiles, &cache, json)
        }
    }
}

/// A compose error as the exit code: problems in the treefile or lockfiles are printed one per line
/// (exit status 1), anything else goes up as an error chain.
fn failure(error: ComposeError) -> anyhow::Result<ExitCode> {
    match error {
        ComposeError::Inputs(error) => Ok(super::fail_with(error.problems())),
        error => Err(error.into()),
    }
}

fn run_resolve(
    treefile: &TreefileArgs,
    lockfiles: &LockfileArgs,
    cache: &CacheArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let inputs = match ComposeInputs::load(
        &treefile.treefile,
        &treefile.arch,
        &treefile.variables(),
        &lockfiles.selection(),
        lockfiles.lockfile_strict,
    ) {
        Ok(inputs) => inputs,
        Err(error) => return Ok(super::fail_with(error.problems())),
    };
    for warning in inputs.flattened.warnings.iter().chain(&inputs.lockfile_warnings) {
        eprintln!("{warning}");
    }
    let fetcher = Fetcher::new(FetchOptions::new(cache.directory())).context("setting up downloads")?;
    let runtime = resolve_runtime()?;
    let resolved =
        runtime.block_on(resolve_with(&fetcher, &inputs.flattened, &inputs.lock, cache.resolution_cache()));
    // Nothing runs on the runtime any more; its idle blocking threads need not be waited for.
    runtime.shutdown_background();
    let resolution =
        resolved.with_context(|| format!("resolving {}", treefile.treefile.display()))?.resolution;
    let inputhash = rpmmd::inputhash::input_hash(&inputs.flattened, &resolution, |path| std::fs::read(path))
        .context("computing the input hash")?;
    for warning in &resolution.warnings {
        eprintln!("warning: {warning}");
    }
    // One buffer for the whole output: stdout alone writes each line with a system call of its own.
    let mut output = std::io::BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, std::io::stdout().lock());
    let written = if json {
        write_json(&mut output, &resolution, &inputhash)
    } else {
        write_table(&mut output, &resolution, &inputhash)
    };
    written.and_then(|()| output.flush()).context("writing the resolution to standard output")?;
    // The process ends now: the kernel takes the resolution back at once, which spares freeing its
    // strings one by one (over 100,000 for a large OS, a few milliseconds).
    std::mem::forget(resolution);
    Ok(ExitCode::SUCCESS)
}

/// Output buffer of `compose resolve`: large writes, few system calls.
const OUTPUT_BUFFER_BYTES: usize = 256 * 1024;

fn run_tree(arguments: TreeArgs) -> anyhow::Result<ExitCode> {
    let request = arguments.inputs.request(Some(arguments.repo.clone()), arguments.dry_run);
    let progress = Progress::new();
    let outcome =
        runtime()?.block_on(compose::tree(&request, &|event| progress.show(event), &Cancellation::new()));
    progress.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => return failure(error),
    };
    write_compose_json(&arguments.inputs, outcome.summary())?;
    print_summary(outcome.summary());
    Ok(ExitCode::SUCCESS)
}

fn write_compose_json(inputs: &ComposeInputArgs, summary: &compose::ComposeSummary) -> anyhow::Result<()> {
    if let Some(path) = &inputs.write_composejson_to {
        let text = serde_json::to_string_pretty(&summary.to_json()).context("rendering compose JSON")?;
        write_atomically(path, format!("{text}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn run_image(arguments: ComposeImageArgs) -> anyhow::Result<ExitCode> {
    let request = ImageRequest {
        tree: arguments.inputs.request(arguments.repo.clone(), false),
        output: arguments.output.output(),
    };
    let progress = Progress::new();
    let outcome =
        runtime()?.block_on(compose::image(&request, &|event| progress.show(event), &Cancellation::new()));
    progress.finish();
    let written = match outcome {
        Ok(ImageOutcome::Unchanged(unchanged)) => {
            println!(
                "No changes since image {} (inputhash {}); nothing composed.",
                unchanged.digest, unchanged.inputhash
            );
            return Ok(ExitCode::SUCCESS);
        }
        Ok(ImageOutcome::Written(written)) => written,
        Err(error) => return failure(error),
    };
    write_compose_json(&arguments.inputs, written.tree.summary())?;
    match &written.tree {
        TreeOutcome::Unchanged(summary) => println!(
            "{} at {} already has these inputs; encapsulating it.",
            summary.reference,
            summary.commit.as_deref().unwrap_or("?")
        ),
        outcome => print_summary(outcome.summary()),
    }
    print_image(&written.target, &written.image);
    Ok(ExitCode::SUCCESS)
}

fn run_diff(arguments: DiffArgs) -> anyhow::Result<ExitCode> {
    let mut lists = Vec::new();
    for revision in [&arguments.old, &arguments.new] {
        let (_, information) = tree::commit_information(&arguments.repo, revision)
            .with_context(|| format!("reading {revision} in {}", arguments.repo.display()))?;
        lists.push(information.packages);
    }
    print!("{}", DiffReport(&package_diff(&lists[0], &lists[1])));
    Ok(ExitCode::SUCCESS)
}
