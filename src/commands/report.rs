//! What the compose and image commands print when they finish: the commit summary, the image written,
//! and what a client of the previous build downloads.

use common::human::{human_bytes, short_digest};
use compose::{ComposeSummary, EncapsulatedOutput};
use image::target::ImageTarget;
use rpmmd::lock_update::DiffReport;

pub fn print_summary(summary: &ComposeSummary) {
    if summary.unchanged {
        println!(
            "No changes since {} (inputhash {}); nothing composed.",
            summary.commit.as_deref().unwrap_or("?"),
            summary.inputhash
        );
        return;
    }
    if summary.dry_run {
        for package in &summary.packages {
            println!("{}", package.nevra());
        }
        println!(
            "{} packages, inputhash {} (dry run: nothing composed)",
            summary.packages.len(),
            summary.inputhash
        );
        print!("{}", DiffReport(&summary.changes));
        return;
    }
    println!("Committed {} => {}", summary.reference, summary.commit.as_deref().unwrap_or("?"));
    if let Some(version) = &summary.version {
        println!("  version    {version}");
    }
    println!("  inputhash  {}", summary.inputhash);
    println!(
        "  packages   {} ({} imported, {} from the package cache)",
        summary.packages.len(),
        summary.import.imported,
        summary.import.cache_hits
    );
    println!(
        "  objects    {} files, {} new objects ({}), {} reused",
        summary.statistics.files,
        summary.statistics.objects_written,
        human_bytes(summary.statistics.bytes_written),
        summary.statistics.objects_reused
    );
    print!("{}", DiffReport(&summary.changes));
}

/// The image written to `target`: digest, commit, layers, what was pushed and the client download.
pub fn print_image(target: &str, image: &EncapsulatedOutput) {
    println!("Wrote {target} => {}", image.digest);
    println!("  commit     {}", image.commit);
    println!("  layers     {} ({} compressed)", image.layers.len(), human_bytes(image.image_bytes));
    if matches!(ImageTarget::parse(target), Ok(ImageTarget::Registry(_))) {
        print_pushed(&image.delivery);
    }
    if let Some(update) = &image.update {
        println!(
            "  update     a client with {} downloads {} of {}",
            short_digest(&update.previous_digest),
            human_bytes(update.download_bytes),
            human_bytes(update.total_bytes)
        );
    }
}

pub fn print_pushed(delivery: &image::target::Delivery) {
    println!(
        "  pushed     {} blobs ({}), {} already in the registry",
        delivery.uploaded_blobs,
        human_bytes(delivery.uploaded_bytes),
        delivery.present_blobs
    );
}
