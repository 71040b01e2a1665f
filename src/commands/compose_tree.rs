//! `arbor compose tree` (treefile → ostree commit, with progress and a compose.json summary) and
//! `arbor compose diff` (package changes between two commits).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use composer::compose::{ComposeEvent, ComposeOptions, ComposeSummary, compose_tree, package_diff};
use composer::lock_update::{DiffReport, lockfile_from_resolution};
use composer::resolve::{LockSettings, resolve};
use indicatif::{ProgressBar, ProgressStyle};
use treefiles::lockfile::write_atomically;

use super::compose::{CacheArgs, LockfileArgs, default_lockfiles, read_lockfiles, runtime};
use super::{TreefileArgs, load_treefile};

/// What every compose reads: the treefile, its lockfiles, the cache, and the commit's fixed inputs.
#[derive(Debug, Clone, Args)]
pub struct ComposeInputs {
    #[command(flatten)]
    pub treefile: TreefileArgs,
    #[command(flatten)]
    pub lockfiles: LockfileArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Write the resolved package set as a lockfile (rpm-ostree's format).
    #[arg(long, value_name = "FILE")]
    pub write_lockfile_to: Option<PathBuf>,
    /// Write a JSON summary (rpm-ostree's compose.json fields).
    #[arg(long, value_name = "FILE")]
    pub write_composejson_to: Option<PathBuf>,
    /// Compose even if nothing changed since the previous commit.
    #[arg(long)]
    pub force_nocache: bool,
    /// Commit timestamp for reproducible composes (default: $SOURCE_DATE_EPOCH, else now).
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,
    /// Extra commit metadata; `version=X` overrides automatic versioning.
    #[arg(long = "add-metadata-string", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub add_metadata_strings: Vec<(String, String)>,
}

#[derive(Debug, Clone, Args)]
pub struct TreeArgs {
    #[command(flatten)]
    pub inputs: ComposeInputs,
    /// The ostree repository to commit to (created bare-user if the directory does not exist).
    #[arg(long)]
    pub repo: PathBuf,
    /// Resolve and show what would be composed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// A loaded treefile with its lockfiles and a fetcher, ready to resolve and compose.
pub struct PreparedCompose {
    pub flattened: treefiles::Flattened,
    pub lock: LockSettings,
    pub fetcher: composer::fetch::Fetcher,
}

/// Loads the treefile and lockfiles; `Err(code)` after printing the problems found in them.
pub fn prepare(inputs: &ComposeInputs) -> anyhow::Result<Result<PreparedCompose, ExitCode>> {
    let flattened = match load_treefile(&inputs.treefile) {
        Ok(flattened) => flattened,
        Err(problems) => return Ok(Err(super::fail_with(&problems))),
    };
    let paths = if inputs.lockfiles.no_lockfiles {
        Vec::new()
    } else if inputs.lockfiles.lockfiles.is_empty() {
        default_lockfiles(&inputs.treefile.treefile, &inputs.treefile.arch, true)
    } else {
        inputs.lockfiles.lockfiles.clone()
    };
    let lockfile = match read_lockfiles(&paths) {
        Ok(lockfile) => lockfile,
        Err(code) => return Ok(Err(code)),
    };
    let lock = LockSettings { lockfile, strict: inputs.lockfiles.lockfile_strict };
    let fetcher = inputs.cache.fetcher()?;
    Ok(Ok(PreparedCompose { flattened, lock, fetcher }))
}

impl PreparedCompose {
    /// Depsolves, printing warnings and writing `--write-lockfile-to`.
    pub async fn resolve(&self, inputs: &ComposeInputs) -> anyhow::Result<composer::resolve::Resolution> {
        let treefile_path = &inputs.treefile.treefile;
        let resolution = resolve(&self.fetcher, &self.flattened, &self.lock)
            .await
            .with_context(|| format!("resolving {}", treefile_path.display()))?;
        for warning in &resolution.warnings {
            eprintln!("warning: {warning}");
        }
        if let Some(path) = &inputs.write_lockfile_to {
            let lockfile = lockfile_from_resolution(&resolution, now(), false);
            write_atomically(path, lockfile.to_json_string().as_bytes())
                .with_context(|| format!("writing lockfile {}", path.display()))?;
        }
        Ok(resolution)
    }

    /// Composes `resolution` into `repo` with a progress display, then writes `--write-composejson-to`.
    pub async fn compose(
        &self,
        inputs: &ComposeInputs,
        repo: &std::path::Path,
        dry_run: bool,
        resolution: composer::resolve::Resolution,
    ) -> anyhow::Result<ComposeSummary> {
        let options = ComposeOptions {
            repo: repo.to_path_buf(),
            cache_directory: self.fetcher.options().cache_directory.clone(),
            force: inputs.force_nocache,
            dry_run,
            source_date_epoch: inputs.source_date_epoch,
            add_metadata_strings: inputs.add_metadata_strings.iter().cloned().collect::<BTreeMap<_, _>>(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        };
        let progress = Progress::new();
        let summary =
            compose_tree(&self.fetcher, &self.flattened, resolution, &options, &|event| progress.show(event))
                .await
                .with_context(|| format!("composing {}", inputs.treefile.treefile.display()));
        progress.finish();
        let summary = summary?;
        if let Some(path) = &inputs.write_composejson_to {
            let text = serde_json::to_string_pretty(&summary.to_json()).context("rendering compose JSON")?;
            write_atomically(path, format!("{text}\n").as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(summary)
    }
}

pub fn run_tree(arguments: TreeArgs) -> anyhow::Result<ExitCode> {
    let inputs = &arguments.inputs;
    let prepared = match prepare(inputs)? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    let summary = runtime()?.block_on(async {
        let resolution = prepared.resolve(inputs).await?;
        prepared.compose(inputs, &arguments.repo, arguments.dry_run, resolution).await
    })?;
    print_summary(&summary);
    Ok(ExitCode::SUCCESS)
}

pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("\"{text}\" is not KEY=VALUE")),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs())
}

pub fn print_summary(summary: &ComposeSummary) {
    if summary.unchanged {
        println!(
            "No changes since {} (inputhash {}); nothing composed.",
            summary.commit.as_deref().unwrap_or("?"),
            summary.inputhash
        );
        return;
    }
    if summary.dry_run {
        for package in &summary.packages {
            println!("{}", package.nevra());
        }
        println!(
            "{} packages, inputhash {} (dry run: nothing composed)",
            summary.packages.len(),
            summary.inputhash
        );
        print!("{}", DiffReport(&summary.changes));
        return;
    }
    println!("Committed {} => {}", summary.reference, summary.commit.as_deref().unwrap_or("?"));
    if let Some(version) = &summary.version {
        println!("  version    {version}");
    }
    println!("  inputhash  {}", summary.inputhash);
    println!(
        "  packages   {} ({} imported, {} from the package cache)",
        summary.packages.len(),
        summary.import.imported,
        summary.import.cache_hits
    );
    println!(
        "  objects    {} files, {} new objects ({}), {} reused",
        summary.statistics.files,
        summary.statistics.objects_written,
        super::compose::human_bytes(summary.statistics.bytes_written),
        summary.statistics.objects_reused
    );
    print!("{}", DiffReport(&summary.changes));
}

/// A progress bar on a terminal; plain log lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg:30} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress { bar }
    }

    fn show(&self, event: ComposeEvent) {
        let Some(bar) = &self.bar else {
            match event {
                ComposeEvent::Stage(stage) => tracing::info!("{stage}"),
                ComposeEvent::Resolved { packages } => tracing::info!(packages, "resolved"),
                ComposeEvent::Downloaded(_) | ComposeEvent::Imported(_) => {}
            }
            return;
        };
        match event {
            ComposeEvent::Resolved { packages } => {
                bar.set_message("downloading packages");
                bar.set_length(packages as u64);
                bar.set_position(0);
            }
            ComposeEvent::Downloaded(download) => {
                bar.set_length(download.total as u64);
                bar.set_position(download.done as u64);
            }
            ComposeEvent::Imported(import) => {
                bar.set_message("importing packages");
                bar.set_length(import.total as u64);
                bar.set_position(import.done as u64);
            }
            ComposeEvent::Stage(stage) => {
                bar.set_message(stage);
                bar.tick();
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
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

pub fn run_diff(arguments: DiffArgs) -> anyhow::Result<ExitCode> {
    let mut lists = Vec::new();
    for revision in [&arguments.old, &arguments.new] {
        let (_, information) = composer::compose::commit_information(&arguments.repo, revision)
            .with_context(|| format!("reading {revision} in {}", arguments.repo.display()))?;
        lists.push(information.packages);
    }
    print!("{}", DiffReport(&package_diff(&lists[0], &lists[1])));
    Ok(ExitCode::SUCCESS)
}
