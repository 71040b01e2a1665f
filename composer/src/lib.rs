//! The compose engine: rpm-md repositories (`.repo` files, repomd, verified cached downloads),
//! depsolving with libsolv under rpm-ostree's lockfile rules, lockfile generation and the input hash.

pub mod blocking;
pub mod checksum;
pub mod fetch;
pub mod filelists;
pub mod inputhash;
pub mod lock_update;
pub mod repo_file;
pub mod repomd;
pub mod resolve;
pub mod rpm_version;
