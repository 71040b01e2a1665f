//! rpm-md repositories and what is decided from them: `.repo` files, repomd and verified cached metadata
//! downloads, the owners of file dependencies in filelists, depsolving with libsolv under rpm-ostree's
//! lockfile rules and the cache of its results, lockfiles written from a resolution, the input hash, and RPM downloads checked against
//! their checksums and OpenPGP signatures.

pub mod checksum;
pub mod download;
pub mod fetch;
pub mod filelists;
pub mod inputhash;
mod lock_rules;
pub mod lock_update;
pub mod repo_file;
pub mod repomd;
pub mod resolution_cache;
mod resolution_encoding;
pub mod resolve;
pub mod rpm_version;
pub mod signature;
mod solver_pool;
pub mod verified_files;
