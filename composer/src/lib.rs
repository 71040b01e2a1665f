//! The compose engine: rpm-md repositories (`.repo` files, repomd, verified cached downloads),
//! depsolving with libsolv under rpm-ostree's lockfile rules, lockfile generation and the input hash.

pub mod assemble;
pub mod blocking;
pub mod capabilities;
pub mod checksum;
pub mod commit;
pub mod compose;
pub mod download;
pub mod fetch;
pub mod file_object;
pub mod filelists;
pub mod human;
pub mod inputhash;
pub mod lock_update;
pub mod oci;
pub mod passwd;
pub mod pkgcache;
pub mod postprocess;
pub mod repo_file;
pub mod repomd;
pub mod resolve;
pub mod rpm_version;
pub mod rpmdb;
pub mod sandbox;
pub mod scriptlets;
pub mod signature;
pub mod verified_files;
