//! The `arbor` command line: parses arguments, sets up logging, and hands off to the library crates.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// arbor: compose image-based Linux (ostree / bootc) from rpm-ostree treefiles and lockfiles.
#[derive(Debug, Parser)]
#[command(name = "arbor", version, about, propagate_version = true)]
struct Cli {
    /// Log filter, e.g. "info" or "arbor=debug" (also RUST_LOG). Default: warn; info for serve and worker.
    #[arg(long, global = true, env = "ARBOR_LOG")]
    log: Option<String>,

    /// Log lines as text for people or as JSON objects for log collectors (serve: default from its
    /// configuration's [server] log-format).
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,

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
    /// Run the compose server: API, dashboard, scheduler and embedded workers.
    Serve(commands::serve::ServeArgs),
    /// Run a compose worker for a server (claims jobs of this host's arches over HTTP).
    Worker(Box<commands::worker::WorkerArgs>),
    /// API tokens: create, list, revoke.
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// Drive a running server: streams, builds, compose, retry, jobs, logs, cancel, workers.
    #[command(subcommand)]
    Remote(commands::remote::RemoteCommand),
}

/// Sets up logging to stderr: colour only for a person at a terminal (log files and pipes get plain
/// text), or one JSON object per line.
fn init_logging(filter: &str, json: bool) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(true).init();
    } else {
        let colour =
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
        builder.with_ansi(colour).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let long_running = matches!(cli.command, Command::Serve(_) | Command::Worker(_));
    let filter = cli.log.clone().unwrap_or_else(|| if long_running { "info" } else { "warn" }.to_string());
    let json_flag = cli.log_format.as_deref().map(|format| format == "json");
    let result = match cli.command {
        Command::Serve(arguments) => {
            // The configuration first: its log-format applies unless --log-format says otherwise.
            let config = match commands::serve::load_config(&arguments.config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let json = json_flag.unwrap_or(config.server.log_format == pipeline::config::LogFormat::Json);
            init_logging(&filter, json);
            commands::serve::run(arguments, config)
        }
        command => {
            init_logging(&filter, json_flag.unwrap_or(false));
            match command {
                Command::Treefile(command) => commands::treefile::run(command),
                Command::Lockfile(command) => commands::lockfile::run(command),
                Command::Compose(command) => commands::compose::run(command),
                Command::Image(command) => commands::image::run(command),
                Command::Cache(command) => commands::cache::run(command),
                Command::Worker(arguments) => commands::worker::run(*arguments),
                Command::Token(command) => commands::token::run(command),
                Command::Remote(command) => commands::remote::run(command),
                Command::Serve(_) => unreachable!("handled above"),
            }
        }
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
