//! The domain of `arbor serve`: the configuration file, the git mirror and work trees, and webhook
//! push events.

pub mod config;
pub mod git;
pub mod secret;
pub mod webhook;
