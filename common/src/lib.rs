//! What every engine crate shares, below the domain crates (`rpmmd`, `tree`, `image`, `compose`): the
//! blocking door that takes libsolv, libostree, compression and file work off the async runtime with
//! cancellation, and the small formats people read (sizes, short digests, UTC times) and rpm-md's XML
//! references.

pub mod blocking;
pub mod human;
pub mod ostree_format;
pub mod time;
pub mod xml_text;
