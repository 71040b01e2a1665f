//! The compose entry points that the command line and the server call: [`tree()`] (a treefile to an
//! ostree commit, like `rpm-ostree compose tree`) and [`image()`] (that commit as a chunked OCI image,
//! written to a directory, an archive or a registry). Each takes a request, a sink for typed progress
//! events, and a cancellation that reaches every long phase; each returns an outcome saying whether it
//! composed or found nothing changed.

mod error;
pub mod events;
mod image;
pub mod inputs;
pub mod request;
mod summary;
mod tree;

pub use crate::image::{
    EncapsulatedOutput, ImageOutcome, UnchangedImage, UpdateDownload, WrittenImage, encapsulate, image,
};
pub use crate::tree::{TreeOutcome, tree};
pub use error::ComposeError;
pub use events::{ComposeEvent, EventSink, Phase, PhaseTiming, PhaseTimings};
pub use inputs::{ComposeInputs, InputError};
pub use request::{ImageOutput, ImageRequest, LockfileSelection, TreeRequest};
pub use summary::{ComposeSummary, PackageChange, package_diff};
