//! `compose image`: `compose tree`, then the commit as a chunked OCI image written to a directory, an
//! archive or a registry. Stops before building when the previous build carries the same input hash, and
//! reports what a client of the previous build downloads.

use std::path::{Path, PathBuf};

use common::blocking::{Cancellation, run_blocking_cancellable};
use image::diff::diff_manifests;
use image::encapsulate::{
    EncapsulateOptions, LABEL_INPUT_HASH, LABEL_VERSION, LayerReport, encapsulate_repository_commit,
    oci_architecture, prior_layout_from_manifest,
};
use image::layout::ImageManifest;
use image::target::{Delivery, ImageDescription, ImageTarget, deliver, describe, staging_directory};

use crate::error::ComposeError;
use crate::events::{ComposeEvent, EventSink, Phase, PhaseClock};
use crate::request::{ImageOutput, ImageRequest};
use crate::tree::{TreeOutcome, compose_resolved, load_and_resolve, unless_cancelled};

/// How a `compose image` ended.
#[derive(Debug, Clone)]
pub enum ImageOutcome {
    /// The image was written (its tree composed now, or taken unchanged from the repository).
    Written(Box<WrittenImage>),
    /// The previous build has the same input hash: nothing was composed or written.
    Unchanged(UnchangedImage),
}

/// The previous build that made a compose unnecessary.
#[derive(Debug, Clone)]
pub struct UnchangedImage {
    /// The previous build as given (or the output target when none was).
    pub previous: String,
    /// Its manifest digest.
    pub digest: String,
    pub inputhash: String,
    /// Its `org.opencontainers.image.version` label.
    pub version: Option<String>,
    /// Its `ostree.commit` label.
    pub commit: Option<String>,
}

/// An image written to its target.
#[derive(Debug, Clone)]
pub struct WrittenImage {
    /// Where it went.
    pub target: String,
    /// The tags written, in order (the target's own tag last).
    pub tags: Vec<String>,
    pub commit: String,
    /// How its commit came about.
    pub tree: TreeOutcome,
    pub image: EncapsulatedOutput,
}

/// An encapsulated commit and what delivering it did.
#[derive(Debug, Clone)]
pub struct EncapsulatedOutput {
    /// The manifest digest.
    pub digest: String,
    pub commit: String,
    pub version: Option<String>,
    pub layers: Vec<LayerReport>,
    /// The compressed layers together.
    pub image_bytes: u64,
    pub delivery: Delivery,
    /// What a client of the previous build downloads, when there was one.
    pub update: Option<UpdateDownload>,
    pub manifest: ImageManifest,
}

/// The download of a client that holds the previous build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateDownload {
    pub previous_digest: String,
    pub download_bytes: u64,
    /// The whole new image (its distinct layers and config).
    pub total_bytes: u64,
}

/// `compose image`: composes `request.tree` (stopping early when the previous build has the same input
/// hash), encapsulates the commit and writes it to `request.output`. Events and cancellation as for
/// [`crate::tree`]; a cancelled push never moves a tag.
pub async fn image(
    request: &ImageRequest,
    events: EventSink<'_>,
    cancellation: &Cancellation,
) -> Result<ImageOutcome, ComposeError> {
    let clock = PhaseClock::new(events);
    let output = &request.output;
    // An unusable target fails before anything is composed.
    ImageTarget::parse(&output.target).map_err(ComposeError::target)?;
    let scratch =
        tempfile::tempdir().map_err(|source| ComposeError::Io { path: std::env::temp_dir(), source })?;
    let previous = previous_build(output, scratch.path(), &clock).await;
    let resolved = load_and_resolve(&request.tree, &clock, cancellation).await?;
    if let Some(previous) = &previous
        && !request.tree.force
        && previous.configuration.config.labels.get(LABEL_INPUT_HASH) == Some(&resolved.inputhash)
    {
        let labels = &previous.configuration.config.labels;
        return Ok(ImageOutcome::Unchanged(UnchangedImage {
            previous: output.previous_build.clone().unwrap_or_else(|| output.target.clone()),
            digest: previous.digest.clone(),
            inputhash: resolved.inputhash,
            version: labels.get(LABEL_VERSION).cloned(),
            commit: labels.get(image::encapsulate::LABEL_COMMIT).cloned(),
        }));
    }
    let tree = compose_resolved(&request.tree, resolved, &clock, cancellation).await?;
    let commit = tree.summary().commit.clone().ok_or(ComposeError::NoReference)?;
    if let TreeOutcome::Unchanged(summary) = &tree {
        tracing::info!(
            reference = %summary.reference,
            commit = %commit,
            "the ref's commit already has these inputs; encapsulating it"
        );
    }
    let written = write_image(
        &request.tree.repo,
        &commit,
        &request.tree.arch,
        output,
        previous,
        scratch.path(),
        &clock,
        cancellation,
    )
    .await?;
    let tags = written.1;
    Ok(ImageOutcome::Written(Box::new(WrittenImage {
        target: output.target.clone(),
        tags,
        commit,
        tree,
        image: written.0,
    })))
}

/// `image encapsulate`: an existing commit as a chunked OCI image written to `output`.
pub async fn encapsulate(
    repo: &Path,
    commit: &str,
    arch: &str,
    output: &ImageOutput,
    events: EventSink<'_>,
    cancellation: &Cancellation,
) -> Result<(EncapsulatedOutput, Vec<String>), ComposeError> {
    let clock = PhaseClock::new(events);
    let scratch =
        tempfile::tempdir().map_err(|source| ComposeError::Io { path: std::env::temp_dir(), source })?;
    let previous = previous_build(output, scratch.path(), &clock).await;
    write_image(repo, commit, arch, output, previous, scratch.path(), &clock, cancellation).await
}

/// Reads the previous build (or the image already at the output); a missing or unreadable one is a
/// warning when it was asked for, and expected otherwise.
async fn previous_build(
    output: &ImageOutput,
    scratch: &Path,
    clock: &PhaseClock<'_>,
) -> Option<ImageDescription> {
    let (text, explicit) = match &output.previous_build {
        Some(text) => (text.as_str(), true),
        None => (output.target.as_str(), false),
    };
    let described = match ImageTarget::parse(text) {
        Ok(target) => describe(&target, &output.registry, &scratch.join("previous")).await,
        Err(error) => Err(error),
    };
    match described {
        Ok(description) => Some(description),
        Err(error) if explicit => {
            clock.warn(format!("ignoring previous build {text}: {error} (planning the layout afresh)"));
            None
        }
        Err(error) => {
            tracing::info!(%error, "no previous image at the output");
            None
        }
    }
}

/// Encapsulates `commit` and delivers it to `output` (the version tag first when asked, then the
/// additional tags, the target's tag last). Returns the image and the tags written.
#[allow(clippy::too_many_arguments)]
async fn write_image(
    repo: &Path,
    commit: &str,
    arch: &str,
    output: &ImageOutput,
    previous: Option<ImageDescription>,
    scratch: &Path,
    clock: &PhaseClock<'_>,
    cancellation: &Cancellation,
) -> Result<(EncapsulatedOutput, Vec<String>), ComposeError> {
    let target = ImageTarget::parse(&output.target).map_err(ComposeError::target)?;
    let prior = previous.as_ref().and_then(|previous| match prior_layout_from_manifest(&previous.manifest) {
        Ok(prior) => Some(prior),
        Err(reason) => {
            clock.warn(format!("not reusing the previous build's layout: {reason}"));
            None
        }
    });
    let options = EncapsulateOptions {
        compression: output.compression,
        max_layers: output.max_layers,
        labels: output.labels.clone(),
        prior,
        architecture: oci_architecture(arch).to_string(),
        threads: 0,
    };
    clock.start(Phase::Encapsulating);
    let (staged, tag) = staging_directory(&target, &scratch.join("staging")).map_err(ComposeError::target)?;
    let encapsulated = {
        let (repo, commit, staged, tag) =
            (PathBuf::from(repo), commit.to_string(), staged.clone(), tag.clone());
        run_blocking_cancellable("encapsulating the commit", cancellation, move |cancellation| {
            encapsulate_repository_commit(&repo, &commit, &staged, &tag, &options, cancellation)
                .map_err(|source| ComposeError::Encapsulate { commit, source: Box::new(source) })
        })
        .await??
    };
    for warning in &encapsulated.plan_warnings {
        clock.warn(format!("previous build's layout: {warning}"));
    }
    let image_bytes: u64 = encapsulated.layers.iter().map(|layer| layer.size).sum();
    clock.emit(ComposeEvent::Encapsulated { layers: encapsulated.layers.len(), bytes: image_bytes });
    let manifest: ImageManifest = serde_json::from_slice(&encapsulated.manifest_bytes)
        .map_err(|error| ComposeError::Io { path: staged.path().join("index.json"), source: error.into() })?;
    let version = manifest.annotations.get(LABEL_VERSION).cloned();

    clock.start(Phase::Writing);
    let mut tags = Vec::new();
    let mut destinations = Vec::new();
    if output.tag_version
        && let Some(version) = &version
    {
        match tag_destination(&target, version) {
            Some(destination) => destinations.push((destination, version.clone())),
            None => {
                clock.warn(format!("version {version:?} is not a valid tag; the image is not tagged with it"))
            }
        }
    }
    for additional in output.additional_tags.iter().filter(|additional| **additional != tag) {
        match tag_destination(&target, additional) {
            Some(destination) => destinations.push((destination, additional.clone())),
            None => clock.warn(format!(
                "{additional:?} is not a valid tag, or {target} holds one image; the image is not tagged with it"
            )),
        }
    }
    destinations.push((target.clone(), tag.clone()));
    let mut delivery = Delivery::default();
    for (destination, destination_tag) in destinations {
        if let ImageTarget::Directory { .. } = destination
            && destination_tag != tag
        {
            staged
                .set_tag(&destination_tag, encapsulated.manifest.clone())
                .map_err(|source| ComposeError::deliver(&destination, source.into()))?;
        } else {
            let delivered = unless_cancelled(
                cancellation,
                Phase::Writing,
                deliver(&destination, &staged, Some(&tag), &output.registry),
            )
            .await?
            .map_err(|source| ComposeError::deliver(&destination, source))?;
            delivery.uploaded_blobs += delivered.uploaded_blobs;
            delivery.uploaded_bytes += delivered.uploaded_bytes;
            delivery.present_blobs = delivered.present_blobs;
        }
        tags.push(destination_tag);
    }
    clock.emit(ComposeEvent::Written {
        target: target.to_string(),
        uploaded_blobs: delivery.uploaded_blobs,
        uploaded_bytes: delivery.uploaded_bytes,
        present_blobs: delivery.present_blobs,
    });
    clock.finish();
    let update = previous.map(|previous| {
        let diff = diff_manifests(&previous.manifest, &manifest);
        UpdateDownload {
            previous_digest: previous.digest,
            download_bytes: diff.download_bytes,
            total_bytes: diff.new_total_bytes,
        }
    });
    Ok((
        EncapsulatedOutput {
            digest: encapsulated.manifest.digest.clone(),
            commit: encapsulated.commit.clone(),
            version,
            layers: encapsulated.layers,
            image_bytes,
            delivery,
            update,
            manifest,
        },
        tags,
    ))
}

/// Where another tag of the image goes (its version, or an additional tag): the target's repository
/// (registry or OCI directory) with `tag`; `None` for archives (one archive, one image) and for text that
/// is not a valid tag.
fn tag_destination(target: &ImageTarget, tag: &str) -> Option<ImageTarget> {
    if !is_valid_tag(tag) {
        return None;
    }
    match target {
        ImageTarget::Directory { path, .. } => {
            Some(ImageTarget::Directory { path: path.clone(), tag: Some(tag.to_string()) })
        }
        ImageTarget::Registry(reference) => {
            let mut reference = reference.clone();
            reference.tag = Some(tag.to_string());
            reference.digest = None;
            Some(ImageTarget::Registry(reference))
        }
        ImageTarget::Archive { .. } => None,
    }
}

/// The distribution spec's tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn is_valid_tag(text: &str) -> bool {
    const MAXIMUM_TAG_LENGTH: usize = 128;
    let mut characters = text.chars();
    matches!(characters.next(), Some(first) if first.is_ascii_alphanumeric() || first == '_')
        && text.len() <= MAXIMUM_TAG_LENGTH
        && characters.all(|character| character.is_ascii_alphanumeric() || "._-".contains(character))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_tags_follow_the_tag_grammar() {
        for (text, valid) in
            [("41.20261206.0", true), ("_x", true), (".x", false), ("1+2", false), ("", false)]
        {
            assert_eq!(is_valid_tag(text), valid, "{text:?}");
        }
        assert!(!is_valid_tag(&"a".repeat(129)));
    }
}
