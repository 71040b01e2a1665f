//! Chunk planning: which components (packages, unpackaged content, rpmdb, kernel) share a layer.
