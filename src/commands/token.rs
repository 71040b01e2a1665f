//! `arbor token create|list|revoke`: API tokens, written straight into the server's database with
//! `--config` (so the first admin token can be made before any token exists), or through a running
//! server's API (`ARBOR_URL` and an admin token).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pipeline::api::{Timestamp, Token, TokenRequest};
use pipeline::store::{NewToken, Scope};

use super::compose::runtime;
use super::remote::RemoteArgs;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: only its hash is stored).
    Create {
        /// What the token is for, e.g. "ci" or "build-host-1".
        name: String,
        /// read (look), write (compose, retry, cancel), admin (tokens, workers), worker (the worker API).
        #[arg(long = "scope", value_name = "SCOPE", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Expire after this long, e.g. 90d or 12h (default: never).
        #[arg(long, value_name = "DURATION", value_parser = pipeline::config::parse_duration)]
        expires_in: Option<std::time::Duration>,
        #[command(flatten)]
        target: TokenTarget,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        target: TokenTarget,
    },
    /// Revoke a token by its id (see `arbor token list`).
    Revoke {
        id: i64,
        #[command(flatten)]
        target: TokenTarget,
    },
}

/// Where tokens live: the server's database (`--config`), or a running server's API.
#[derive(Debug, Clone, Args)]
pub struct TokenTarget {
    /// The server's arbor.toml: write to its database directly (run on the server host).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| format!("{text:?} is not a scope (read, write, admin or worker)"))
}

pub fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            TokenCommand::Create { name, scopes, expires_in, target } => {
                create(&target, name, scopes, expires_in).await
            }
            TokenCommand::List { target } => list(&target).await,
            TokenCommand::Revoke { id, target } => revoke(&target, id).await,
        }
    })
}

/// The server's store, opened (and migrated) from its configuration.
async fn open_store(config_path: &std::path::Path) -> anyhow::Result<pipeline::Store> {
    let config = match pipeline::config::Config::load(config_path) {
        Ok(config) => config,
        Err(errors) => anyhow::bail!("{errors}"),
    };
    super::serve::open_store(&config).await
}

async fn create(
    target: &TokenTarget,
    name: String,
    scopes: Vec<Scope>,
    expires_in: Option<std::time::Duration>,
) -> anyhow::Result<ExitCode> {
    let plaintext = match &target.config {
        Some(config) => {
            let store = open_store(config).await?;
            let expires_at = expires_in.map(|duration| store.now() + duration.as_millis() as i64);
            let created = store.create_token(&NewToken { name, scopes, expires_at }).await?;
            eprintln!("created token {} ({}); it is shown once:", created.token.id, created.token.name);
            created.plaintext
        }
        None => {
            let client = target.remote.client()?;
            let expires_at = expires_in.map(|duration| {
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                Timestamp((now + duration).as_millis() as i64)
            });
            let created = client.create_token(&TokenRequest { name, scopes, expires_at }).await?;
            eprintln!("created token {} ({}); it is shown once:", created.token.id, created.token.name);
            created.secret
        }
    };
    println!("{plaintext}");
    Ok(ExitCode::SUCCESS)
}

async fn list(target: &TokenTarget) -> anyhow::Result<ExitCode> {
    let tokens = match &target.config {
        Some(config) => open_store(config).await?.list_tokens().await?.iter().map(Token::from).collect(),
        None => target.remote.client()?.tokens().await?.items,
    };
    super::remote::print_tokens(&tokens);
    Ok(ExitCode::SUCCESS)
}

async fn revoke(target: &TokenTarget, id: i64) -> anyhow::Result<ExitCode> {
    let revoked = match &target.config {
        Some(config) => open_store(config).await?.revoke_token(id).await?,
        None => match target.remote.client()?.revoke_token(id).await {
            Ok(_) => true,
            Err(error) if error.status() == Some(pipeline::client::StatusCode::NOT_FOUND) => false,
            Err(error) => return Err(error.into()),
        },
    };
    if revoked {
        println!("revoked token {id}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: no token {id} that is not revoked already (see `arbor token list`)");
        Ok(ExitCode::FAILURE)
    }
}
