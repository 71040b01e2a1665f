//! Keeping a worker's package cache within its configured size after each job: least recently used
//! packages go first, never those of the images the worker composed last for each stream.

use std::collections::BTreeSet;
use std::path::Path;

use common::blocking::run_blocking;
use tree::pkgcache::gc::prune_if_over;

/// Prunes `cache_directory` down to `max_size` bytes when it is larger, keeping the packages (NEVRAs)
/// in `keep`. Runs after every job; a failure is logged, never fatal.
pub async fn prune_cache(cache_directory: &Path, max_size: u64, keep: BTreeSet<String>) {
    let directory = cache_directory.to_path_buf();
    let pruned = run_blocking("pruning the package cache", move |cancellation| {
        prune_if_over(&directory, max_size, &keep, cancellation)
    })
    .await;
    match pruned {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(report))) => tracing::info!(
            cache = %cache_directory.display(),
            packages.evicted = report.evicted.len(),
            bytes.freed = report.bytes_freed,
            size.after = report.size_after.total(),
            "pruned the package cache"
        ),
        Ok(Err(error)) => {
            tracing::warn!(cache = %cache_directory.display(), %error, "pruning the package cache failed")
        }
        Err(error) => {
            tracing::warn!(cache = %cache_directory.display(), %error, "pruning the package cache failed")
        }
    }
}
