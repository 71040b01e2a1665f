//! The join job of a multi-arch stream: once every arch of a commit built (or was unchanged), the
//! per-arch images are pulled, joined into one OCI image index and pushed as `:<version>`, then the
//! stream's tag last. Requested when the last arch's compose completes.

use std::path::PathBuf;

use common::blocking::run_blocking_cancellable;
use image::index::join_images;
use image::layout::OciDirectory;
use image::registry::{RegistryError, RegistryReference, pull_to_layout, push_layout};
use serde::{Deserialize, Serialize};

use super::JOIN_KIND;
use super::context::{JobContext, JobError};
use super::payload::JoinPayload;
use crate::config::StreamSettings;
use crate::queue::{Dedup, Enqueued, NewJob, OnDuplicate, Queue};
use crate::store::{BuildStatus, StoreError};

/// The tag each pulled image and the index get inside their local layouts.
const LOCAL_TAG: &str = "join";

/// What a join reports: the index pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResult {
    /// `HOST/REPOSITORY@sha256:...` of the index.
    pub image_reference: String,
    pub digest: String,
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestJoinError {
    #[error("encoding the join payload")]
    Payload(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The dedup key of a stream commit's join.
pub fn join_dedup_key(stream: &str, commit: &str) -> String {
    format!("{JOIN_KIND}:{stream}:{commit}")
}

/// Joins the images of `payload` and pushes the index with its tags in order.
pub async fn run(context: &JobContext, payload: &JoinPayload) -> Result<JoinResult, JobError> {
    let failed = |error: &(dyn std::error::Error + 'static), permanent: bool| {
        let failure = JobError::failed(error, permanent);
        context.log.line(format!("error: {failure}"));
        failure
    };
    let repository = RegistryReference::parse(&payload.image).map_err(|error| failed(&error, true))?;
    context.phase.set("pulling");
    let mut sources: Vec<PathBuf> = Vec::new();
    for (index, image) in payload.images.iter().enumerate() {
        let reference = RegistryReference::parse(image).map_err(|error| failed(&error, true))?;
        let directory = context.work_directory.join(format!("image-{index}"));
        context.log.line(format!("Pulling {image}"));
        tokio::select! {
            () = context.cancellation.cancelled() => return Err(JobError::Cancelled),
            pulled = pull_to_layout(&reference, &directory, LOCAL_TAG, &context.registry) => {
                pulled.map_err(|error| failed(&error, !is_transient(&error)))?;
            }
        }
        sources.push(directory);
    }
    context.phase.set("joining");
    let index_directory = context.work_directory.join("index");
    let joined = {
        let index_directory = index_directory.clone();
        run_blocking_cancellable("joining the images", &context.cancellation, move |_| {
            let destination = OciDirectory::create(&index_directory)?;
            let mut opened = Vec::new();
            for source in &sources {
                let directory = OciDirectory::open(source)?;
                let descriptor = directory.resolve(Some(LOCAL_TAG))?;
                opened.push((directory, descriptor));
            }
            join_images(&destination, LOCAL_TAG, &opened)
        })
        .await
    };
    let descriptor = match joined {
        Ok(Ok(descriptor)) => descriptor,
        Ok(Err(error)) => return Err(failed(&error, true)),
        Err(_) if context.cancellation.is_cancelled() => return Err(JobError::Cancelled),
        Err(error) => return Err(failed(&error, false)),
    };
    context.phase.set("writing");
    for tag in &payload.tags {
        let destination = RegistryReference { tag: Some(tag.clone()), digest: None, ..repository.clone() };
        tokio::select! {
            () = context.cancellation.cancelled() => return Err(JobError::Cancelled),
            pushed = push_layout(&index_directory, Some(LOCAL_TAG), &destination, &context.registry) => {
                let report = pushed.map_err(|error| failed(&error, !is_transient(&error)))?;
                metrics::counter!("arbor_pushed_bytes_total").increment(report.bytes_uploaded);
                context.log.line(format!("Pushed the index {} as :{tag}", descriptor.digest));
            }
        }
    }
    Ok(JoinResult {
        image_reference: format!("{}@{}", payload.image, descriptor.digest),
        digest: descriptor.digest,
        tags: payload.tags.clone(),
    })
}

fn is_transient(error: &RegistryError) -> bool {
    let last = error.last_attempt();
    last.is_retryable() || last.is_timeout()
}

/// Requests the join of `commit` once every arch of the multi-arch `stream` has a good build of it and
/// no index of exactly those builds exists; `None` when nothing was requested.
pub async fn request_if_ready(
    queue: &Queue,
    stream: &StreamSettings,
    commit: &str,
) -> Result<Option<Enqueued>, RequestJoinError> {
    if stream.arches.len() < 2 {
        return Ok(None);
    }
    let store = queue.store();
    let builds = store.builds_of_commit(&stream.name, commit).await?;
    let mut chosen = Vec::new();
    for arch in &stream.arches {
        let good = builds.iter().find(|build| {
            build.arch == *arch
                && matches!(build.status, BuildStatus::Succeeded | BuildStatus::Unchanged)
                && build.image_reference.is_some()
        });
        match good {
            Some(build) => chosen.push(build),
            None => return Ok(None),
        }
    }
    let build_ids: Vec<i64> = chosen.iter().map(|build| build.id).collect();
    if store.get_image_index(&stream.name, commit).await?.is_some_and(|index| index.build_ids == build_ids) {
        return Ok(None);
    }
    let payload = JoinPayload {
        stream: stream.name.clone(),
        commit: commit.to_string(),
        image: stream.image.clone(),
        build_ids,
        images: chosen.iter().filter_map(|build| build.image_reference.clone()).collect(),
        tags: chosen[0].version.iter().cloned().chain([stream.name.clone()]).collect(),
    };
    let mut job = NewJob::new(JOIN_KIND, serde_json::to_value(&payload)?);
    job.stream = Some(stream.name.clone());
    job.priority = i64::from(stream.priority);
    job.dedup = Some(Dedup { key: join_dedup_key(&stream.name, commit), on_duplicate: OnDuplicate::Skip });
    let enqueued = queue.enqueue(&job).await?;
    tracing::info!(stream = %stream.name, commit, job.id = enqueued.job_id, "join requested");
    Ok(Some(enqueued))
}
