//! The job execution side of `arbor serve` against real things: a git remote, an rpm-md repository of the
//! minimal OS, Debian's docker-registry (behind a fault proxy where a test breaks it), SQLite files and a
//! throwaway PostgreSQL. Commits go through the scheduler to embedded workers that compose and push; the
//! builds, the registry's tags, the streams and the queue are checked afterwards. Composing needs root,
//! bwrap, rofiles-fuse, rpm, createrepo_c and ostree (scripts/install-deps).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod composes;
mod git_events;
mod join;
mod workers;
