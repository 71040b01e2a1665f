//! Integration tests of arbor-testsupport against the real tools (rpm, createrepo_c, dnf, curl).
//!
//! One test binary with several modules, to link once. A missing tool fails the test with a message
//! naming the tool and `scripts/install-deps`.

mod browser;
mod http_client;
mod http_server;
mod repository;
mod rpm_builder;
mod tools;
