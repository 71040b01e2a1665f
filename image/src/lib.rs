//! Chunked OCI images of ostree commits: the ostree-ext "chunked v1" format, chunk planning, OCI layouts,
//! registry transfer, and the client-side import that verifies an image.

pub mod chunking;
pub mod commit_tree;
pub mod components;
pub mod compress;
pub mod diff;
pub mod encapsulate;
pub mod export;
pub mod import;
pub mod index;
pub mod layout;
pub mod registry;
pub mod tar_writer;
pub mod target;
