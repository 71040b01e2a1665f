//! Recording what a worker reports when a job ends, on the server (workers never read the database): a
//! compose's build gets its previous build and package diff (an unchanged one the previous build's
//! image), a join's image index is recorded, and a multi-arch commit whose arches all built gets its join.

use serde::{Deserialize, Serialize};
use tree::ListedPackage;

use super::join::{self, JoinResult};
use super::payload::{ComposeResult, ComposeStatus, JoinPayload};
use super::{COMPOSE_KIND, JOIN_KIND};
use crate::config::StreamSettings;
use crate::queue::{Completed, Lease, Outcome, Queue};
use crate::store::{BuildResult, NewImageIndex, StoreError};

/// How a worker says a job ended (the worker protocol's `outcome`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobOutcome {
    Succeeded {
        result: serde_json::Value,
    },
    Failed {
        /// The whole error chain, one cause per line.
        error: String,
        permanent: bool,
    },
    Cancelled {},
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("job {job_id} reported a result that is not a {kind} result")]
    Result {
        job_id: i64,
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Join(#[from] join::RequestJoinError),
}

impl RecordError {
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, RecordError::Store(StoreError::LeaseLost { .. }))
    }
}

/// Ends the job under `lease` as its worker reported; `streams` are the configured streams (for joins).
pub async fn complete_job(
    queue: &Queue,
    streams: &[StreamSettings],
    lease: &Lease,
    outcome: JobOutcome,
) -> Result<Completed, RecordError> {
    let store = queue.store();
    let job_id = lease.job_id;
    let Some(job) = store.get_job(job_id).await? else {
        return Err(StoreError::LeaseLost { job_id }.into());
    };
    let result = match outcome {
        JobOutcome::Failed { error, permanent } => {
            return Ok(queue.complete(lease, Outcome::Failed { error, permanent }).await?);
        }
        JobOutcome::Cancelled {} => return Ok(queue.complete(lease, Outcome::Cancelled).await?),
        JobOutcome::Succeeded { result } => result,
    };
    match job.kind.as_str() {
        COMPOSE_KIND => {
            let compose: ComposeResult = serde_json::from_value(result)
                .map_err(|source| RecordError::Result { job_id, kind: COMPOSE_KIND, source })?;
            let completed = complete_compose(queue, lease, &compose).await?;
            if let Some(build) = store.build_of_job(job_id).await?
                && let Some(stream) = streams.iter().find(|stream| stream.name == build.stream)
            {
                join::request_if_ready(queue, stream, &build.git_commit).await?;
            }
            Ok(completed)
        }
        JOIN_KIND => {
            let joined: JoinResult = serde_json::from_value(result.clone())
                .map_err(|source| RecordError::Result { job_id, kind: JOIN_KIND, source })?;
            let payload: JoinPayload = serde_json::from_str(&job.payload)
                .map_err(|source| RecordError::Result { job_id, kind: JOIN_KIND, source })?;
            let completed = queue.complete(lease, Outcome::Succeeded { result, build: None }).await?;
            store
                .record_image_index(&NewImageIndex {
                    stream: payload.stream,
                    git_commit: payload.commit,
                    reference: joined.image_reference,
                    digest: joined.digest,
                    build_ids: payload.build_ids,
                })
                .await?;
            Ok(completed)
        }
        _ => Ok(queue.complete(lease, Outcome::Succeeded { result, build: None }).await?),
    }
}

/// Completes a compose job with its build: the previous good build, the package diff against it, and
/// for an unchanged compose the previous build's image, version and packages.
pub async fn complete_compose(
    queue: &Queue,
    lease: &Lease,
    result: &ComposeResult,
) -> Result<Completed, RecordError> {
    let store = queue.store();
    let mut build = result.build_result();
    let previous = match store.build_of_job(lease.job_id).await? {
        Some(current) => store.previous_good_build(&current.stream, &current.arch, current.id).await?,
        None => None,
    };
    if let Some(previous) = previous {
        build.previous_build_id = Some(previous.summary.id);
        match result.status {
            ComposeStatus::Unchanged => {
                copy_previous_image(&mut build, &previous);
                build.package_diff = Some(package_diff(&[], &[]));
            }
            ComposeStatus::Succeeded => {
                let old = previous.packages.as_deref().unwrap_or_default();
                build.package_diff = Some(package_diff(old, &result.packages));
            }
        }
    }
    let result_json = serde_json::to_value(result).map_err(|source| RecordError::Result {
        job_id: lease.job_id,
        kind: COMPOSE_KIND,
        source,
    })?;
    Ok(queue
        .complete(lease, Outcome::Succeeded { result: result_json, build: Some(Box::new(build)) })
        .await?)
}

/// An unchanged build shows the image it found unchanged: the previous build's.
fn copy_previous_image(build: &mut BuildResult, previous_build: &crate::store::Build) {
    let previous = &previous_build.summary;
    build.image_reference = previous.image_reference.clone().or(build.image_reference.take());
    build.manifest_digest = previous.manifest_digest.clone().or(build.manifest_digest.take());
    build.version = previous.version.clone().or(build.version.take());
    build.ostree_commit = previous.ostree_commit.clone().or(build.ostree_commit.take());
    build.image_bytes = previous.image_bytes.or(build.image_bytes);
    build.packages = previous_build.packages.clone().or(build.packages.take());
    build.layers = previous_build.layers.clone().or(build.layers.take());
}

/// The package changes from `old` to `new` (NEVRAs) as the build's `package_diff`:
/// `{"upgraded": [{name, from, to}], "downgraded": [...], "added": [{name, version}], "removed": [...]}`.
pub fn package_diff(old: &[String], new: &[String]) -> serde_json::Value {
    let parse = |nevras: &[String]| -> Vec<ListedPackage> {
        nevras.iter().filter_map(|text| parse_nevra(text)).collect()
    };
    let mut diff = serde_json::json!({"upgraded": [], "downgraded": [], "added": [], "removed": []});
    for change in compose::package_diff(&parse(old), &parse(new)) {
        let (key, entry) = match change {
            compose::PackageChange::Added { name, version } => {
                ("added", serde_json::json!({"name": name, "version": version}))
            }
            compose::PackageChange::Removed { name, version } => {
                ("removed", serde_json::json!({"name": name, "version": version}))
            }
            compose::PackageChange::Upgraded { name, from, to } => {
                ("upgraded", serde_json::json!({"name": name, "from": from, "to": to}))
            }
            compose::PackageChange::Downgraded { name, from, to } => {
                ("downgraded", serde_json::json!({"name": name, "from": from, "to": to}))
            }
        };
        if let Some(list) = diff[key].as_array_mut() {
            list.push(entry);
        }
    }
    diff
}

/// `name-[epoch:]version-release.arch` (names may hold `-`; version, release and arch do not).
pub fn parse_nevra(text: &str) -> Option<ListedPackage> {
    let (nevr, arch) = text.rsplit_once('.')?;
    let (nev, release) = nevr.rsplit_once('-')?;
    let (name, epoch_version) = nev.rsplit_once('-')?;
    let (epoch, version) = epoch_version.split_once(':').unwrap_or(("0", epoch_version));
    if [name, epoch, version, release, arch].iter().any(|part| part.is_empty()) {
        return None;
    }
    Some(ListedPackage {
        name: name.to_string(),
        epoch: epoch.to_string(),
        version: version.to_string(),
        release: release.to_string(),
        arch: arch.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nevras_parse_with_dashes_in_names_and_epochs() {
        let cases = [
            ("glibc-2.39-1.fc41.x86_64", Some(("glibc", "0", "2.39", "1.fc41", "x86_64"))),
            ("python3-libs-3.12.1-2.noarch", Some(("python3-libs", "0", "3.12.1", "2", "noarch"))),
            ("shadow-utils-2:4.15.1-1.x86_64", Some(("shadow-utils", "2", "4.15.1", "1", "x86_64"))),
            ("nodots", None),
            ("-1-1.x86_64", None),
        ];
        for (text, expected) in cases {
            let parsed = parse_nevra(text);
            let parts = parsed.as_ref().map(|package| {
                (
                    package.name.as_str(),
                    package.epoch.as_str(),
                    package.version.as_str(),
                    package.release.as_str(),
                    package.arch.as_str(),
                )
            });
            assert_eq!(parts, expected, "{text}");
            if let Some(package) = parsed {
                assert_eq!(package.nevra(), text.replace("-0:", "-"));
            }
        }
    }

    #[test]
    fn package_diffs_name_versions() {
        let old = ["bash-5.2-1.x86_64", "gone-1.0-1.noarch", "kernel-6.8-1.x86_64", "zlib-1.3-2.x86_64"];
        let new = ["bash-5.2-2.x86_64", "kernel-6.7-1.x86_64", "new-0.1-1.noarch", "zlib-1.3-2.x86_64"];
        let strings = |list: &[&str]| list.iter().map(|text| text.to_string()).collect::<Vec<_>>();
        insta::assert_snapshot!(
            serde_json::to_string_pretty(&package_diff(&strings(&old), &strings(&new))).unwrap()
        );
    }
}
