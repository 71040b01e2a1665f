//! `arbor image encapsulate|verify|diff` and `arbor compose image`: ostree commits as chunked OCI images
//! in OCI directories, archives and registries.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use common::blocking::{Cancellation, run_blocking};
use image::diff::diff_manifests;
use image::import::verify_image;
use image::layout::OciDirectory;
use image::target::{DEFAULT_TAG, Delivery, ImageTarget, deliver, describe, open_local, staging_directory};

use super::arguments::{ImageOutputArgs, RegistryArgs, host_arch};
use super::compose::runtime;
use super::progress::Progress;
use super::report::{print_image, print_pushed};

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

#[derive(Debug, Clone, Args)]
pub struct EncapsulateArgs {
    /// The ostree repository holding the commit.
    #[arg(long)]
    pub repo: PathBuf,
    /// The commit (checksum or ref).
    pub revision: String,
    /// Architecture of the image (rpm naming). Default: the host's.
    #[arg(long, default_value_t = host_arch().to_string())]
    pub arch: String,
    #[command(flatten)]
    pub output: ImageOutputArgs,
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
        tree::commit_information(&repo_path, &revision)
            .with_context(|| format!("reading {revision} in {}", repo_path.display()))
    })
    .await??;
    let output = arguments.output.output();
    let progress = Progress::new();
    let written = compose::encapsulate(
        &arguments.repo,
        &commit,
        &arguments.arch,
        &output,
        &|event| progress.show(event),
        &Cancellation::new(),
    )
    .await;
    progress.finish();
    let (image, _tags) = written?;
    print_image(&output.target, &image);
    Ok(ExitCode::SUCCESS)
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
            Delivery::default()
        }
        _ => deliver(&destination, &directory, tag.as_deref(), &options)
            .await
            .with_context(|| format!("writing {destination}"))?,
    };
    println!("Copied {source} => {destination} ({})", descriptor.digest);
    if matches!(destination, ImageTarget::Registry(_)) {
        print_pushed(&delivery);
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
    let index = image::index::join_images(&staged, &tag, &sources).context("joining the images")?;
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
