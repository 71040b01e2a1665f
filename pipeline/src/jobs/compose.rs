//! The compose job: `compose image` of a stream's commit (already exported into the job's work
//! directory) for one arch, pushed to the stream's image repository (every blob, then `:<version>`, then
//! the stream's tag last), planned against and stopped early on the stream's previous good build.

use std::path::Path;

use compose::{ComposeError, ImageOutcome, ImageOutput, ImageRequest, TreeRequest};

use super::compose_log::ComposeLog;
use super::context::{JobContext, JobError, error_chain};
use super::payload::{ComposePayload, ComposeResult, ComposeStatus, PreviousBuild};
use crate::store::Layer;

/// Composes `payload` in `context`; `previous` is the stream and arch's last good build, if any.
pub async fn run(
    context: &JobContext,
    payload: &ComposePayload,
    previous: Option<PreviousBuild>,
) -> Result<ComposeResult, JobError> {
    let request = image_request(context, payload, previous.as_ref())?;
    context.log.line(format!(
        "Composing {} of stream {} for {} ({}), pushing to {}",
        payload.treefile,
        payload.stream,
        payload.arch,
        short(&payload.commit),
        request.output.target
    ));
    if let Some(previous) = &previous {
        context.log.line(format!("Previous build: {} ({})", previous.build_id, previous.image));
    }
    let compose_log = ComposeLog::new(context.log.clone(), context.phase.clone());
    let outcome = compose::image(&request, &|event| compose_log.observe(event), &context.cancellation).await;
    let phases = compose_log.into_phases();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) if error.is_cancelled() || context.cancellation.is_cancelled() => {
            context.log.line(format!("Cancelled: {error}"));
            return Err(JobError::Cancelled);
        }
        Err(error) => {
            let chain = describe_failure(&error, &context.work_directory);
            for line in chain.lines() {
                context.log.line(format!("error: {line}"));
            }
            return Err(JobError::Failed { chain, permanent: !error.is_transient() });
        }
    };
    Ok(match outcome {
        ImageOutcome::Written(written) => {
            let summary = written.tree.summary();
            let mut packages: Vec<String> = summary.packages.iter().map(|package| package.nevra()).collect();
            packages.sort();
            let image = &written.image;
            let image_reference = format!("{}@{}", payload.image, image.digest);
            context.log.line(format!(
                "Pushed {image_reference} as {}",
                written.tags.iter().map(|tag| format!(":{tag}")).collect::<Vec<_>>().join(", ")
            ));
            ComposeResult {
                status: ComposeStatus::Succeeded,
                version: image.version.clone().or_else(|| summary.version.clone()),
                inputhash: Some(summary.inputhash.clone()),
                ostree_commit: Some(written.commit.clone()),
                image_reference: Some(image_reference),
                manifest_digest: Some(image.digest.clone()),
                packages,
                // Without a previous build a client downloads the whole image.
                download_bytes: Some(
                    image.update.as_ref().map_or(image.image_bytes, |update| update.download_bytes),
                ),
                image_bytes: Some(image.image_bytes),
                phases,
                layers: image
                    .layers
                    .iter()
                    .map(|layer| Layer {
                        digest: layer.digest.clone(),
                        size: layer.size as i64,
                        description: layer.description.clone(),
                        components: layer.components.clone(),
                    })
                    .collect(),
            }
        }
        ImageOutcome::Unchanged(unchanged) => {
            context.log.line(format!(
                "Unchanged: the inputs hash to {} as {} does; nothing was composed or pushed",
                unchanged.inputhash, unchanged.previous
            ));
            ComposeResult {
                status: ComposeStatus::Unchanged,
                version: unchanged.version,
                inputhash: Some(unchanged.inputhash),
                ostree_commit: unchanged.commit,
                image_reference: Some(format!("{}@{}", payload.image, unchanged.digest)),
                manifest_digest: Some(unchanged.digest),
                packages: Vec::new(),
                download_bytes: Some(0),
                image_bytes: None,
                phases,
                layers: Vec::new(),
            }
        }
    })
}

/// The `compose image` request of a payload: the treefile in the work tree, the worker's cache and
/// compose repository, `registry:IMAGE:TAG` with the stream's tag last.
fn image_request(
    context: &JobContext,
    payload: &ComposePayload,
    previous: Option<&PreviousBuild>,
) -> Result<ImageRequest, JobError> {
    let permanent = |chain: String| JobError::Failed { chain, permanent: true };
    let variables =
        payload.treefile_variables().map_err(|message| permanent(format!("the job's {message}")))?;
    let Some((target_tag, additional_tags)) = payload.tags.split_last() else {
        return Err(permanent(format!("the compose of stream {} names no tag to push", payload.stream)));
    };
    let mut tree = TreeRequest::new(
        context.work_directory.join(&payload.treefile),
        &payload.arch,
        &context.cache_directory,
    );
    tree.variables = variables;
    tree.force = payload.force;
    tree.source_date_epoch = context.source_date_epoch;
    let mut output = ImageOutput::new(format!("registry:{}:{target_tag}", payload.image));
    output.previous_build = previous.map(|previous| previous.image.clone());
    output.tag_version = payload.tag_version;
    output.additional_tags = additional_tags.to_vec();
    output.registry = context.registry.clone();
    Ok(ImageRequest { tree, output })
}

/// The error chain, one cause per line; a treefile's or lockfile's problems each on a line of their own
/// with file:line:column. Paths are shown relative to the repository (the work directory is the job's).
pub fn describe_failure(error: &ComposeError, work_directory: &Path) -> String {
    let mut text = error_chain(error);
    if let ComposeError::Inputs(inputs) = error {
        for problem in inputs.problems().errors() {
            text.push('\n');
            text.push_str(&problem.located_message());
        }
    }
    let prefix = format!("{}/", work_directory.display());
    text.replace(&prefix, "")
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
