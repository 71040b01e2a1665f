//! The `arbor` command line: parses arguments, sets up logging, and hands off to the library crates.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// arbor: compose image-based Linux (ostree / bootc) from rpm-ostree treefiles and lockfiles.
#[derive(Debug, Parser)]
#[command(name = "arbor", version, about, propagate_version = true)]
struct Cli {
    /// Log filter, e.g. "info" or "arbor=debug" (also RUST_LOG).
    #[arg(long, global = true, env = "ARBOR_LOG", default_value = "warn")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read, check and render treefiles.
    #[command(subcommand)]
    Treefile(commands::treefile::TreefileCommand),
    /// Read, show, merge and update lockfiles.
    #[command(subcommand)]
    Lockfile(commands::lockfile::LockfileCommand),
    /// Compose: depsolve, build ostree commits and chunked OCI images.
    #[command(subcommand)]
    Compose(commands::compose::ComposeCommand),
    /// Chunked OCI images of ostree commits: encapsulate, verify, diff.
    #[command(subcommand)]
    Image(commands::image::ImageCommand),
    /// The package cache: garbage collection.
    #[command(subcommand)]
    Cache(commands::cache::CacheCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log.clone());
    // Colour only for a person at a terminal: log files and pipes get plain text.
    let colour =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let result = match cli.command {
        Command::Treefile(command) => commands::treefile::run(command),
        Command::Lockfile(command) => commands::lockfile::run(command),
        Command::Compose(command) => commands::compose::run(command),
        Command::Image(command) => commands::image::run(command),
        Command::Cache(command) => commands::cache::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
