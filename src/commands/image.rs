//! `arbor image encapsulate|verify|diff` and `arbor compose image`: ostree commits as chunked OCI images
//! in OCI directories, archives and registries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use composer::blocking::run_blocking;
use composer::oci::compress::Compression;
use composer::oci::diff::diff_manifests;
use composer::oci::encapsulate::{
    DEFAULT_MAX_LAYERS, EncapsulateOptions, EncapsulatedImage, LABEL_INPUT_HASH,
    encapsulate_repository_commit, oci_architecture, prior_layout_from_manifest,
};
use composer::oci::import::verify_image;
use composer::oci::layout::OciDirectory;
use composer::oci::registry::RegistryOptions;
use composer::oci::target::{
    DEFAULT_TAG, ImageDescription, ImageTarget, deliver, describe, open_local, staging_directory,
};

use super::compose::{human_bytes, runtime};
use super::compose_tree::{ComposeInputs, parse_key_value, prepare, print_summary};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Write an ostree commit as a chunked OCI image (oci:DIR[:TAG], oci-archive:FILE[:TAG], registry:HOST/REPO:TAG).
    Encapsulate(EncapsulateArgs),
    /// Import an image exactly as a bootc / rpm-ostree client would, into a scratch repository, and fsck it.
    Verify {
        /// The image (oci:DIR[:TAG], oci-archive:FILE[:TAG], registry:HOST/REPO:TAG).
        image: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Copy an image between an OCI directory, an archive and a registry (blobs first, the tag last).
    Copy {
        /// The image to copy (oci:DIR[:TAG], oci-archive:FILE[:TAG], registry:HOST/REPO:TAG).
        source: String,
        /// Where to copy it.
        destination: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Join images composed separately per architecture into one multi-architecture image index.
    Join {
        /// The per-architecture images (oci:DIR[:TAG], oci-archive:FILE[:TAG], registry:HOST/REPO:TAG).
        #[arg(required = true)]
        images: Vec<String>,
        /// Where to write the index (oci:DIR[:TAG], oci-archive:FILE[:TAG] or registry:HOST/REPO:TAG).
        #[arg(long, value_name = "TARGET")]
        output: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Layers added, removed and kept between two images, and what a client that has OLD downloads.
    Diff {
        old: String,
        new: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// How registries are reached.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Credentials (containers auth.json format). Default: $REGISTRY_AUTH_FILE, the containers auth.json,
    /// then ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Verify TLS certificates (false: also allow plain HTTP, for local registries).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub tls_verify: bool,
}

impl RegistryArgs {
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            auth_file: self.authfile.clone(),
            tls_verify: self.tls_verify,
            ..RegistryOptions::default()
        }
    }
}

/// How the image is laid out and where it goes.
#[derive(Debug, Clone, Args)]
pub struct ImageOutputArgs {
    /// Where to write the image: oci:DIR[:TAG], oci-archive:FILE[:TAG] or registry:HOST/REPO:TAG.
    #[arg(long, value_name = "TARGET")]
    pub output: String,
    /// The previous build, whose layer layout is kept where that costs less than re-planning
    /// (default: the image already at --output, if any).
    #[arg(long, value_name = "IMAGE")]
    pub previous_build: Option<String>,
    /// Layers in the image, the commit layer included (at most 127).
    #[arg(long, default_value_t = DEFAULT_MAX_LAYERS)]
    pub max_layers: usize,
    /// Image label (and manifest annotation): KEY=VALUE.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// Layer compression: gzip (every client) or zstd (ostree-ext 0.13.4 and later).
    #[arg(long, default_value = "gzip", value_parser = parse_compression)]
    pub compression: Compression,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Clone, Args)]
pub struct EncapsulateArgs {
    /// The ostree repository holding the commit.
    #[arg(long)]
    pub repo: PathBuf,
    /// The commit (checksum or ref).
    pub revision: String,
    /// Architecture of the image (rpm naming). Default: the host's.
    #[arg(long, default_value_t = super::host_arch().to_string())]
    pub arch: String,
    #[command(flatten)]
    pub output: ImageOutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ComposeImageArgs {
    #[command(flatten)]
    pub inputs: ComposeInputs,
    /// The ostree repository the commit is written to. Default: `compose-repo` in the cache directory.
    #[arg(long)]
    pub repo: Option<PathBuf>,
    #[command(flatten)]
    pub output: ImageOutputArgs,
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    Compression::parse(text).ok_or_else(|| format!("\"{text}\" is not gzip or zstd"))
}

pub fn run(command: ImageCommand) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    match command {
        ImageCommand::Encapsulate(arguments) => runtime.block_on(run_encapsulate(arguments)),
        ImageCommand::Verify { image, registry } => runtime.block_on(run_verify(&image, &registry)),
        ImageCommand::Diff { old, new, registry } => runtime.block_on(run_diff(&old, &new, &registry)),
        ImageCommand::Join { images, output, registry } => {
            runtime.block_on(run_join(&images, &output, &registry))
        }
        ImageCommand::Copy { source, destination, registry } => {
            runtime.block_on(run_copy(&source, &destination, &registry))
        }
    }
}

async fn run_encapsulate(arguments: EncapsulateArgs) -> anyhow::Result<ExitCode> {
    let repo_path = arguments.repo.clone();
    let revision = arguments.revision.clone();
    let (commit, _) = run_blocking("resolving the commit", move |_| {
        composer::compose::commit_information(&repo_path, &revision)
            .with_context(|| format!("reading {revision} in {}", repo_path.display()))
    })
    .await??;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    encapsulate_and_deliver(
        &arguments.repo,
        &commit,
        &arguments.arch,
        &arguments.output,
        None,
        scratch.path(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the previous build (or the image already at the output); a missing or unreadable one is a warning.
async fn previous_build(
    output: &ImageOutputArgs,
    scratch: &Path,
) -> anyhow::Result<Option<ImageDescription>> {
    let registry = output.registry.options();
    let (text, explicit) = match &output.previous_build {
        Some(text) => (text.clone(), true),
        None => (output.output.clone(), false),
    };
    let target = ImageTarget::parse(&text)?;
    match describe(&target, &registry, &scratch.join("previous")).await {
        Ok(description) => Ok(Some(description)),
        Err(error) if explicit => {
            eprintln!("warning: ignoring previous build {text}: {error} (planning the layout afresh)");
            Ok(None)
        }
        Err(error) => {
            tracing::info!(%error, "no previous image at the output");
            Ok(None)
        }
    }
}

/// Encapsulates `commit`, writes it to `--output`, and prints the layers and the client download size.
async fn encapsulate_and_deliver(
    repo_path: &Path,
    commit: &str,
    arch: &str,
    output: &ImageOutputArgs,
    previous: Option<ImageDescription>,
    scratch: &Path,
) -> anyhow::Result<EncapsulatedImage> {
    let target = ImageTarget::parse(&output.output)?;
    let previous = match previous {
        Some(previous) => Some(previous),
        None => previous_build(output, scratch).await?,
    };
    let prior = previous.as_ref().and_then(|previous| match prior_layout_from_manifest(&previous.manifest) {
        Ok(prior) => Some(prior),
        Err(reason) => {
            eprintln!("warning: not reusing the previous build's layout: {reason}");
            None
        }
    });
    let options = EncapsulateOptions {
        compression: output.compression,
        max_layers: output.max_layers,
        labels: output.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        prior,
        architecture: oci_architecture(arch).to_string(),
        threads: 0,
    };
    let (staged, tag) = staging_directory(&target, &scratch.join("staging"))?;
    let repo_path = repo_path.to_path_buf();
    let commit_owned = commit.to_string();
    let staged_for_work = staged.clone();
    let tag_for_work = tag.clone();
    let image =
        run_blocking("encapsulating the commit", move |cancellation| -> anyhow::Result<EncapsulatedImage> {
            encapsulate_repository_commit(
                &repo_path,
                &commit_owned,
                &staged_for_work,
                &tag_for_work,
                &options,
                cancellation,
            )
            .with_context(|| format!("encapsulating commit {commit_owned}"))
        })
        .await??;
    for warning in &image.plan_warnings {
        eprintln!("warning: previous build's layout: {warning}");
    }
    let delivery = deliver(&target, &staged, Some(&tag), &output.registry.options())
        .await
        .with_context(|| format!("writing the image to {target}"))?;
    let total: u64 = image.layers.iter().map(|layer| layer.size).sum();
    println!("Wrote {target} => {}", image.manifest.digest);
    println!("  commit     {}", image.commit);
    println!("  layers     {} ({} compressed)", image.layers.len(), human_bytes(total));
    if matches!(target, ImageTarget::Registry(_)) {
        println!(
            "  pushed     {} blobs ({}), {} already in the registry",
            delivery.uploaded_blobs,
            human_bytes(delivery.uploaded_bytes),
            delivery.present_blobs
        );
    }
    if let Some(previous) = &previous {
        let new_manifest =
            serde_json::from_slice(&image.manifest_bytes).context("reading back the manifest")?;
        let diff = diff_manifests(&previous.manifest, &new_manifest);
        println!(
            "  update     a client with {} downloads {} of {}",
            short_digest(&previous.digest),
            human_bytes(diff.download_bytes),
            human_bytes(diff.new_total_bytes)
        );
    }
    Ok(image)
}

fn short_digest(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

async fn run_verify(image: &str, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let target = ImageTarget::parse(image)?;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let (directory, tag) = open_local(&target, &registry.options(), scratch.path())
        .await
        .with_context(|| format!("reading {target}"))?;
    let repository = scratch.path().join("repo");
    let report =
        run_blocking("importing the image", move |_| verify_image(&directory, tag.as_deref(), &repository))
            .await?
            .with_context(|| format!("verifying {target}"))?;
    println!("{target}: OK");
    println!("  manifest   {}", report.manifest_digest);
    println!("  commit     {} (equals the ostree.commit label)", report.commit);
    println!(
        "  layers     {}, {} content objects imported, ostree fsck clean",
        report.layers, report.content_objects
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_copy(source: &str, destination: &str, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let source = ImageTarget::parse(source)?;
    let destination = ImageTarget::parse(destination)?;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let options = registry.options();
    let (directory, tag) =
        open_local(&source, &options, scratch.path()).await.with_context(|| format!("reading {source}"))?;
    let descriptor = directory.resolve(tag.as_deref()).with_context(|| format!("reading {source}"))?;
    let delivery = match &destination {
        ImageTarget::Directory { path, tag: destination_tag } => {
            let target = OciDirectory::create(path)?;
            target.copy_image_from(&directory, &descriptor)?;
            let mut entry = descriptor.clone();
            entry.annotations.clear();
            target.set_tag(destination_tag.as_deref().unwrap_or(DEFAULT_TAG), entry)?;
            composer::oci::target::Delivery::default()
        }
        _ => deliver(&destination, &directory, tag.as_deref(), &options)
            .await
            .with_context(|| format!("writing {destination}"))?,
    };
    println!("Copied {source} => {destination} ({})", descriptor.digest);
    if matches!(destination, ImageTarget::Registry(_)) {
        println!(
            "  pushed     {} blobs ({}), {} already in the registry",
            delivery.uploaded_blobs,
            human_bytes(delivery.uploaded_bytes),
            delivery.present_blobs
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_join(images: &[String], output: &str, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let target = ImageTarget::parse(output)?;
    let options = registry.options();
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let mut sources = Vec::new();
    for (index, text) in images.iter().enumerate() {
        let source = ImageTarget::parse(text)?;
        let (directory, tag) = open_local(&source, &options, &scratch.path().join(index.to_string()))
            .await
            .with_context(|| format!("reading {source}"))?;
        let descriptor = directory.resolve(tag.as_deref()).with_context(|| format!("reading {source}"))?;
        sources.push((directory, descriptor));
    }
    let (staged, tag) = staging_directory(&target, &scratch.path().join("staging"))?;
    let index = composer::oci::index::join_images(&staged, &tag, &sources).context("joining the images")?;
    deliver(&target, &staged, Some(&tag), &options).await.with_context(|| format!("writing {target}"))?;
    println!("Wrote {target} => {} ({} architectures)", index.digest, sources.len());
    Ok(ExitCode::SUCCESS)
}

async fn run_diff(old: &str, new: &str, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let mut descriptions = Vec::new();
    for (index, text) in [old, new].into_iter().enumerate() {
        let target = ImageTarget::parse(text)?;
        let description = describe(&target, &registry.options(), &scratch.path().join(index.to_string()))
            .await
            .with_context(|| format!("reading {target}"))?;
        descriptions.push(description);
    }
    print!("{}", diff_manifests(&descriptions[0].manifest, &descriptions[1].manifest));
    Ok(ExitCode::SUCCESS)
}

/// `arbor compose image`: compose (stopping early when the previous image has the same input hash),
/// encapsulate, write or push.
pub fn run_compose_image(arguments: ComposeImageArgs) -> anyhow::Result<ExitCode> {
    let inputs = &arguments.inputs;
    let prepared = match prepare(inputs)? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    let repo = arguments
        .repo
        .clone()
        .unwrap_or_else(|| prepared.fetcher.options().cache_directory.join("compose-repo"));
    runtime()?.block_on(async {
        let scratch = tempfile::tempdir().context("creating a scratch directory")?;
        let previous = previous_build(&arguments.output, scratch.path()).await?;
        let resolution = prepared.resolve(inputs).await?;
        let inputhash = super::compose::input_hash(&prepared.flattened, &resolution)?;
        if let Some(previous) = &previous
            && !inputs.force_nocache
            && previous.configuration.config.labels.get(LABEL_INPUT_HASH) == Some(&inputhash)
        {
            println!("No changes since image {} (inputhash {inputhash}); nothing composed.", previous.digest);
            return Ok(ExitCode::SUCCESS);
        }
        let summary = prepared.compose(inputs, &repo, false, resolution).await?;
        if summary.unchanged {
            println!(
                "{} at {} already has these inputs; encapsulating it.",
                summary.reference,
                summary.commit.as_deref().unwrap_or("?")
            );
        } else {
            print_summary(&summary);
        }
        let commit = summary.commit.clone().context("the compose produced no commit")?;
        encapsulate_and_deliver(
            &repo,
            &commit,
            &inputs.treefile.arch,
            &arguments.output,
            previous,
            scratch.path(),
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}
