//! `arbor cache gc`: garbage collection of the package cache, with the packages of given commits kept,
//! and what it did printed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use common::blocking::Cancellation;
use common::human::human_bytes;
use tree::pkgcache::gc::{self, CacheSize, GcOptions, GcReport};

use super::arguments::CacheArgs;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove least recently used packages, what no package reaches and unneeded downloads from the
    /// package cache (never while a compose uses it).
    Gc(GcArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Evict least recently used packages until the cache is no larger: e.g. 20GiB, 500MB, 4096 (bytes).
    /// Without it nothing is evicted; only what no package reaches and stale downloads go.
    #[arg(long, value_name = "SIZE", value_parser = pipeline::config::parse_size)]
    pub max_size: Option<u64>,
    /// Never evict the packages of this commit (REPO is an ostree repository, REV a ref or checksum in
    /// it), e.g. the image clients run now. Repeatable.
    #[arg(long = "keep-commit", value_name = "REPO:REV", value_parser = parse_keep_commit)]
    pub keep_commits: Vec<(PathBuf, String)>,
    /// Show what would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        CacheCommand::Gc(arguments) => run_gc(&arguments),
    }
}

/// `REPO:REV`, split at the first colon (a ref may name a remote, `remote:ref`; a repository path with a
/// colon is not supported).
fn parse_keep_commit(text: &str) -> Result<(PathBuf, String), String> {
    match text.split_once(':') {
        Some((repository, revision)) if !repository.is_empty() && !revision.is_empty() => {
            Ok((PathBuf::from(repository), revision.to_string()))
        }
        _ => Err(format!("\"{text}\" is not REPO:REV (an ostree repository, a colon, a ref or checksum)")),
    }
}

fn run_gc(arguments: &GcArgs) -> anyhow::Result<ExitCode> {
    let mut keep = BTreeSet::new();
    for (repository, revision) in &arguments.keep_commits {
        let (commit, information) = tree::commit_information(repository, revision)
            .with_context(|| format!("reading the packages of {revision} in {}", repository.display()))?;
        if information.packages.is_empty() {
            anyhow::bail!(
                "{revision} ({commit}) in {} lists no packages (no rpmostree.rpmdb.pkglist): nothing to keep",
                repository.display()
            );
        }
        keep.extend(information.packages.iter().map(|package| package.nevra()));
    }
    let cache_directory = arguments.cache.directory();
    let options = GcOptions { max_size: arguments.max_size, keep, dry_run: arguments.dry_run };
    let report = gc::collect_garbage(&cache_directory, &options, &Cancellation::new())?;
    print_report(&cache_directory, &report);
    Ok(ExitCode::SUCCESS)
}

fn print_report(cache_directory: &std::path::Path, report: &GcReport) {
    let would = if report.dry_run { "would be " } else { "" };
    if !report.evicted.is_empty() {
        println!(
            "Evicted{} (least recently used first):",
            if report.dry_run { " in a real run" } else { "" }
        );
        let width = report.evicted.iter().map(|package| package.nevra.len()).max().unwrap_or(0);
        for package in &report.evicted {
            let used = common::time::format_utc(gc::unix_seconds(package.last_used));
            let note = if package.broken { "  (unreadable commit)" } else { "" };
            println!("  {:width$}  last used {used}{note}", package.nevra);
        }
    }
    println!(
        "Package cache {}{}",
        cache_directory.display(),
        if report.dry_run { " (dry run: nothing removed)" } else { "" }
    );
    let maximum = report.max_size.map(|size| format!(" (max {})", human_bytes(size))).unwrap_or_default();
    println!("  size       {} -> {}{maximum}", describe(&report.size_before), describe(&report.size_after));
    println!(
        "  packages   {} cached, {} {would}evicted, {} kept as asked",
        report.packages_before,
        report.evicted.len(),
        report.protected
    );
    println!(
        "  objects    {} {would}removed ({}), {} of them commits",
        report.objects_removed,
        human_bytes(report.object_bytes_removed),
        report.commits_removed
    );
    let in_use = if report.downloads_in_use > 0 {
        format!(", {} left because a compose used them meanwhile", report.downloads_in_use)
    } else {
        String::new()
    };
    println!(
        "  downloads  {} {would}removed ({}){in_use}",
        report.downloads_removed,
        human_bytes(report.download_bytes_removed)
    );
    if report.tree_dropped {
        println!(
            "  kept tree  {would}removed: it linked evicted packages (the next compose checks out afresh)"
        );
    }
    println!("  freed      {} on disk", human_bytes(report.bytes_freed));
    if !report.target_reached {
        println!("warning: the packages kept as asked are larger than --max-size on their own");
    }
}

/// `1.2 GiB` with its parts: `[package cache …, downloads …, kept tree …]`.
fn describe(size: &CacheSize) -> String {
    format!(
        "{} [package cache {}, downloads {}, kept tree {}]",
        human_bytes(size.total()),
        human_bytes(size.package_cache),
        human_bytes(size.downloads),
        human_bytes(size.kept_tree)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_commit_arguments() {
        let cases = [
            ("/srv/repo:exampleos/x86_64/stable", Some(("/srv/repo", "exampleos/x86_64/stable"))),
            ("repo:remote:ref", Some(("repo", "remote:ref"))),
            ("repo:0123abcd", Some(("repo", "0123abcd"))),
            ("repo", None),
            (":ref", None),
            ("repo:", None),
        ];
        for (text, expected) in cases {
            let parsed = parse_keep_commit(text).ok();
            let expected =
                expected.map(|(repository, revision)| (PathBuf::from(repository), revision.to_string()));
            assert_eq!(parsed, expected, "{text}");
        }
    }
}
