//! Why a compose stopped, each variant saying what was being done; and whether trying again may help.

use std::path::PathBuf;

use common::blocking::BlockingError;
use image::encapsulate::EncapsulateError;
use image::registry::RegistryError;
use image::target::TargetError;
use rpmmd::download::DownloadError;
use rpmmd::fetch::FetchError;
use rpmmd::resolve::ResolveError;
use tree::BuildError;

use crate::inputs::InputError;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Inputs(#[from] InputError),
    #[error("setting up downloads")]
    Fetcher(#[source] FetchError),
    #[error("resolving {}", .treefile.display())]
    Resolve {
        treefile: PathBuf,
        #[source]
        source: Box<ResolveError>,
    },
    #[error("writing lockfile {}", .path.display())]
    WriteLockfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("computing the input hash")]
    InputHash(#[source] std::io::Error),
    #[error("the treefile has no \"ref\"")]
    NoReference,
    #[error("downloading packages")]
    Download(#[source] DownloadError),
    #[error("composing {}", .treefile.display())]
    Build {
        treefile: PathBuf,
        #[source]
        source: Box<BuildError>,
    },
    #[error("{}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Target(Box<TargetError>),
    #[error("encapsulating commit {commit}")]
    Encapsulate {
        commit: String,
        #[source]
        source: Box<EncapsulateError>,
    },
    #[error("writing the image to {target}")]
    Deliver {
        target: String,
        #[source]
        source: Box<TargetError>,
    },
    #[error(transparent)]
    Blocking(#[from] BlockingError),
    #[error("cancelled while {phase}")]
    Cancelled { phase: &'static str },
}

impl ComposeError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ComposeError::Cancelled { .. })
    }

    /// Whether composing the same inputs again may succeed: repositories or the registry were
    /// unreachable or answered with a server error. A broken treefile, an unsolvable package set or a
    /// failing scriptlet fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            ComposeError::Resolve { source, .. } => match &**source {
                ResolveError::Fetch(error) => fetch_is_transient(error),
                _ => false,
            },
            ComposeError::Fetcher(error) => fetch_is_transient(error),
            ComposeError::Download(DownloadError::Fetch { source, .. }) => fetch_is_transient(source),
            ComposeError::Deliver { source, .. } | ComposeError::Target(source) => match &**source {
                TargetError::Registry(error) => registry_is_transient(error),
                _ => false,
            },
            ComposeError::Blocking(_) => true,
            _ => false,
        }
    }
}

fn fetch_is_transient(error: &FetchError) -> bool {
    error.is_retryable() || matches!(error, FetchError::AllLocationsFailed { .. })
}

fn registry_is_transient(error: &RegistryError) -> bool {
    let last = error.last_attempt();
    last.is_retryable() || last.is_timeout()
}

/// A build error as a compose error: a cancelled build is a cancelled compose.
pub(crate) fn build_error(treefile: &std::path::Path, source: BuildError) -> ComposeError {
    match source.cancelled_phase() {
        Some(phase) => ComposeError::Cancelled { phase },
        None => ComposeError::Build { treefile: treefile.to_path_buf(), source: Box::new(source) },
    }
}

impl ComposeError {
    pub(crate) fn target(source: TargetError) -> ComposeError {
        ComposeError::Target(Box::new(source))
    }

    pub(crate) fn resolve(treefile: &std::path::Path, source: ResolveError) -> ComposeError {
        ComposeError::Resolve { treefile: treefile.to_path_buf(), source: Box::new(source) }
    }

    pub(crate) fn deliver(target: &impl std::fmt::Display, source: TargetError) -> ComposeError {
        ComposeError::Deliver { target: target.to_string(), source: Box::new(source) }
    }
}
