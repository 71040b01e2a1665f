//! The dashboard in a real browser (headless Chromium through chromium-driver) against a server started
//! here on 127.0.0.1 with real builds in it: every page renders its data, passes axe-core without
//! serious or critical violations in light and dark, and is photographed at 1280x800 and 390x844 into
//! `target/screenshots/`; sign-in, compose, cancel, what visitors see, CSRF; the live log; and content
//! negotiation (pages answer JSON to scripts, errors stay JSON under /api).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../api/harness.rs"]
mod harness;
mod support;

mod actions;
mod live_log;
mod negotiation;
mod pages;
