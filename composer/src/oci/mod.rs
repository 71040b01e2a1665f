//! OCI images of ostree commits: the ostree-ext "chunked v1" format, chunk planning, OCI layouts,
//! registry transfer, and the client-side import that verifies an image.

pub mod chunking;
pub mod registry;
