//! Requesting composes of a stream's commit: one build (`queued`) and one compose job per arch, created
//! together. A compose of the same stream and arch that is still queued takes the newer commit instead
//! (coalescing), so a burst of pushes builds only the last one.

use crate::config::StreamSettings;
use crate::queue::{Dedup, NewJob, OnDuplicate};
use crate::store::{CreatedBuild, NewBuild, Store, StoreError};

use super::{COMPOSE_KIND, ComposePayload};

/// A compose of one stream's commit.
#[derive(Debug, Clone)]
pub struct ComposeRequest<'a> {
    pub stream: &'a StreamSettings,
    /// The full commit id.
    pub commit: &'a str,
    /// Its subject line, shown with the build.
    pub subject: Option<String>,
    /// Compose even if the inputs equal the previous build's (a retry after a registry was wiped).
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("stream {stream:?} does not build arch {arch:?} (it builds {})", .arches.join(", "))]
    UnknownArch { stream: String, arch: String, arches: Vec<String> },
    #[error("encoding the compose payload: {0}")]
    Payload(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The dedup key of a stream and arch's queued compose.
pub fn compose_dedup_key(stream: &str, arch: &str) -> String {
    format!("{COMPOSE_KIND}:{stream}:{arch}")
}

/// Requests a compose of `request.commit` for every arch of the stream.
pub async fn request_composes(
    store: &Store,
    request: &ComposeRequest<'_>,
) -> Result<Vec<CreatedBuild>, RequestError> {
    let mut created = Vec::with_capacity(request.stream.arches.len());
    for arch in &request.stream.arches {
        created.push(request_compose(store, request, arch).await?);
    }
    Ok(created)
}

/// Requests a compose of `request.commit` for one arch of the stream (a retry of one build).
pub async fn request_compose(
    store: &Store,
    request: &ComposeRequest<'_>,
    arch: &str,
) -> Result<CreatedBuild, RequestError> {
    let stream = request.stream;
    if !stream.arches.iter().any(|known| known == arch) {
        return Err(RequestError::UnknownArch {
            stream: stream.name.clone(),
            arch: arch.to_string(),
            arches: stream.arches.clone(),
        });
    }
    let payload = ComposePayload::new(stream, arch, request.commit, request.force);
    let mut job = NewJob::new(COMPOSE_KIND, serde_json::to_value(&payload)?);
    job.stream = Some(stream.name.clone());
    job.arch = Some(arch.to_string());
    job.priority = i64::from(stream.priority);
    job.dedup =
        Some(Dedup { key: compose_dedup_key(&stream.name, arch), on_duplicate: OnDuplicate::Coalesce });
    let build = NewBuild {
        stream: stream.name.clone(),
        arch: arch.to_string(),
        git_commit: request.commit.to_string(),
        git_subject: request.subject.clone(),
    };
    let created = store.create_build(&build, &job).await?;
    tracing::info!(
        stream = %stream.name,
        arch,
        commit = %request.commit,
        build.id = created.build_id,
        job.id = created.job_id,
        outcome = ?created.outcome,
        "compose requested"
    );
    Ok(created)
}
