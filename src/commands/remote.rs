//! `arbor remote ...`: drives a running server through its API, as `gh` does GitHub, so scripts never
//! need curl: streams, builds, compose now, retry, jobs, logs (`--follow` live), cancel, workers.
//! The server comes from `--url` or `ARBOR_URL`, the token from `--token-file` or `ARBOR_TOKEN`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use common::human::{human_bytes, short_digest};
use pipeline::api::{BuildRequest, BuildSummary, Token};
use pipeline::client::{ApiClient, BuildQuery};
use pipeline::secret::{Secret, SecretSource};

use super::compose::runtime;

/// Which server, as whom.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The server, e.g. https://arbor.example.com (default: $ARBOR_URL).
    #[arg(long = "url", value_name = "URL", env = "ARBOR_URL")]
    pub url: Option<String>,
    /// A file holding the API token (default: the token in $ARBOR_TOKEN; none: anonymous reading).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl RemoteArgs {
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        let url = self.url.as_deref().context("no server given: pass --url URL or set ARBOR_URL")?;
        let token = match &self.token_file {
            Some(path) => Some(SecretSource::File(path.clone()).load().context("reading the token file")?),
            None => std::env::var("ARBOR_TOKEN").ok().filter(|token| !token.is_empty()).map(Secret::new),
        };
        Ok(ApiClient::new(url, token)?)
    }
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Every stream with its latest build per arch.
    Streams(Output),
    /// A stream's builds, newest first.
    Builds {
        stream: String,
        /// queued, running, succeeded, failed, unchanged or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        arch: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        output: Output,
    },
    /// One build: metadata, phases, package changes, error.
    Build {
        id: i64,
        #[command(flatten)]
        output: Output,
    },
    /// Compose a stream's branch head (or a commit) now.
    Compose {
        stream: String,
        /// A full commit id (default: the branch head).
        #[arg(long)]
        commit: Option<String>,
        /// Only this arch (default: every arch of the stream).
        #[arg(long)]
        arch: Option<String>,
        /// Compose even if the inputs equal the previous build's.
        #[arg(long)]
        force: bool,
        /// Wait for the builds to end, following their logs; exit status 1 if one failed.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Compose a failed or cancelled build's commit again.
    Retry {
        build: i64,
        #[command(flatten)]
        output: Output,
    },
    /// Jobs, newest first.
    Jobs {
        /// queued, running, succeeded, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// A job's log; with --follow, live until the job ends.
    Logs {
        job: i64,
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Cancel a job (a running compose stops at once on an embedded worker, at its next heartbeat on a
    /// remote one).
    Cancel {
        job: i64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Workers and what they run.
    Workers(Output),
}

/// How answers are printed.
#[derive(Debug, Clone, Args)]
pub struct Output {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(command: RemoteCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(run_async(command))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value).context("rendering JSON")?);
    Ok(())
}

async fn run_async(command: RemoteCommand) -> anyhow::Result<ExitCode> {
    match command {
        RemoteCommand::Streams(output) => {
            let streams = output.remote.client()?.streams().await?;
            if output.json {
                return print_json(&streams).map(|()| ExitCode::SUCCESS);
            }
            for stream in &streams.items {
                let head = stream.head.as_ref().map_or("(not fetched yet)".to_string(), |head| {
                    format!(
                        "{} {}",
                        &head.commit[..head.commit.len().min(12)],
                        head.subject.as_deref().unwrap_or("")
                    )
                });
                println!("{}  ({}, {})  head {head}", stream.name, stream.branch, stream.image);
                if let Some(problem) = &stream.git_error {
                    println!("  git: {}", problem.message);
                }
                for arch in &stream.builds {
                    match &arch.latest {
                        Some(build) => println!("  {:8} {}", arch.arch, build_line(build)),
                        None => println!("  {:8} no build yet", arch.arch),
                    }
                }
            }
        }
        RemoteCommand::Builds { stream, status, arch, limit, output } => {
            let query = BuildQuery { status, arch, limit: Some(limit), cursor: None };
            let builds = output.remote.client()?.builds(&stream, &query).await?;
            if output.json {
                return print_json(&builds).map(|()| ExitCode::SUCCESS);
            }
            for build in &builds.items {
                println!("{}", build_line(build));
            }
        }
        RemoteCommand::Build { id, output } => {
            let build = output.remote.client()?.build(id).await?;
            if output.json {
                return print_json(&build).map(|()| ExitCode::SUCCESS);
            }
            let summary = &build.summary;
            println!("{}", build_line(summary));
            println!("  commit     {} {}", summary.git_commit, summary.git_subject.as_deref().unwrap_or(""));
            for (label, value) in [
                ("version", &summary.version),
                ("inputhash", &summary.inputhash),
                ("ostree", &summary.ostree_commit),
                ("image", &summary.image_reference),
            ] {
                if let Some(value) = value {
                    println!("  {label:10} {value}");
                }
            }
            if let Some(bytes) = summary.download_bytes {
                let client = match summary.previous_build_id {
                    Some(previous) => format!("a client of build {previous}"),
                    None => String::from("a new client (no previous build)"),
                };
                println!("  download   {} for {client}", human_bytes(bytes.max(0) as u64));
            }
            for phase in &build.phases {
                println!("  phase      {:16} {:.1} s", phase.name, phase.duration_ms as f64 / 1000.0);
            }
            for layer in build.layers.iter().flatten() {
                println!(
                    "  layer      {}  {:>10}  {}",
                    short_digest(&layer.digest),
                    human_bytes(layer.size.max(0) as u64),
                    layer.description
                );
            }
            if let Some(diff) = &build.package_diff {
                println!("  packages   {}", serde_json::to_string(diff).unwrap_or_default());
            }
            if let Some(error) = &build.error {
                println!("  error:");
                for line in error.lines() {
                    println!("    {line}");
                }
            }
        }
        RemoteCommand::Compose { stream, commit, arch, force, wait, output } => {
            let client = output.remote.client()?;
            let requested = client.compose(&stream, &BuildRequest { commit, arch, force }).await?;
            if output.json && !wait {
                return print_json(&requested).map(|()| ExitCode::SUCCESS);
            }
            println!(
                "{} at {} {}",
                requested.stream,
                &requested.commit[..requested.commit.len().min(12)],
                requested.subject.as_deref().unwrap_or("")
            );
            for build in &requested.builds {
                println!(
                    "  {:8} build {} (job {}, {:?})",
                    build.arch, build.build.id, build.job_id, build.outcome
                );
            }
            if wait {
                let mut failed = false;
                for build in &requested.builds {
                    let end = client
                        .follow_log(build.job_id, 0, |line| {
                            println!("[{} {}] {}", build.arch, line.seq, line.line)
                        })
                        .await?;
                    let finished = client.build(build.build.id).await?;
                    println!("{}", build_line(&finished.summary));
                    failed |= !matches!(end.state, pipeline::api::JobState::Succeeded);
                }
                return Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS });
            }
        }
        RemoteCommand::Retry { build, output } => {
            let requested = output.remote.client()?.retry(build).await?;
            if output.json {
                return print_json(&requested).map(|()| ExitCode::SUCCESS);
            }
            for build in &requested.builds {
                println!(
                    "{} {}: build {} (job {})",
                    requested.stream, build.arch, build.build.id, build.job_id
                );
            }
        }
        RemoteCommand::Jobs { state, output } => {
            let jobs = output.remote.client()?.jobs(state.as_deref()).await?;
            if output.json {
                return print_json(&jobs).map(|()| ExitCode::SUCCESS);
            }
            for job in &jobs.items {
                println!(
                    "job {:6} {:8} {:10} {} {} {}",
                    job.id,
                    job.kind,
                    format!("{:?}", job.state).to_lowercase(),
                    job.stream.as_deref().unwrap_or("-"),
                    job.arch.as_deref().unwrap_or("-"),
                    job.phase.as_deref().unwrap_or("")
                );
            }
        }
        RemoteCommand::Logs { job, follow, remote } => {
            let client = remote.client()?;
            if follow {
                let end = client.follow_log(job, 0, |line| println!("{}", line.line)).await?;
                eprintln!("job {} ended: {:?}", end.job_id, end.state);
                return Ok(if end.error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS });
            }
            print!("{}", client.log_text(job).await?);
        }
        RemoteCommand::Cancel { job, remote } => {
            let result = remote.client()?.cancel(job).await?;
            println!("job {}: {:?} (now {:?})", result.job_id, result.outcome, result.state);
        }
        RemoteCommand::Workers(output) => {
            let workers = output.remote.client()?.workers().await?;
            if output.json {
                return print_json(&workers).map(|()| ExitCode::SUCCESS);
            }
            for worker in &workers.items {
                println!(
                    "{} {:12} {:?} {} {} job {}",
                    worker.id,
                    worker.name,
                    worker.kind,
                    worker.arches.join(","),
                    if worker.online { "online" } else { "offline" },
                    worker.current_job_id.map_or("-".to_string(), |job| job.to_string())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `build 17  x86_64  succeeded  41.20261206.0  sha256:0123456789ab  abc123def456 subject`.
fn build_line(build: &BuildSummary) -> String {
    format!(
        "build {:6} {:8} {:10} {:18} {:20} {} {}",
        build.id,
        build.arch,
        build.status.as_str(),
        build.version.as_deref().unwrap_or("-"),
        build.manifest_digest.as_deref().map(short_digest).unwrap_or_else(|| "-".to_string()),
        &build.git_commit[..build.git_commit.len().min(12)],
        build.git_subject.as_deref().unwrap_or("")
    )
}

/// Tokens as a table (never their secrets).
pub fn print_tokens(tokens: &[Token]) {
    for token in tokens {
        let scopes: Vec<&str> = token.scopes.iter().map(|scope| scope.as_str()).collect();
        let state = if token.revoked_at.is_some() { "revoked" } else { "active" };
        println!(
            "{:4} {:24} {:20} {state:8} created {} last used {}",
            token.id,
            token.name,
            scopes.join(","),
            token.created_at,
            token.last_used_at.map_or("never".to_string(), |time| time.to_string())
        );
    }
}
