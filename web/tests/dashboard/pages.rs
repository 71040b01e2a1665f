//! Every page renders its data, has no serious accessibility violations in light and dark, and is
//! photographed at both sizes.

use std::time::Duration;

use arbor_testsupport::browser::{ColourScheme, DESKTOP, PHONE};

use crate::harness::{Options, STREAM};
use crate::support::{Fixture, browser, screenshot_path};

const LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// What [`break_build_record`] writes as a build's package list.
const BROKEN_PACKAGES: &str = "[\"not json";

/// Makes the oldest build's package list unreadable, as a damaged database would, so that its page
/// is the server's error page (500). The fixture's pages show no other build's package list, and the
/// oldest is nobody's previous build. Returns its id.
fn break_build_record(fixture: &Fixture) -> i64 {
    let database =
        fixture.server.store.sqlite_path().expect("the dashboard tests run on SQLite").to_path_buf();
    fixture.runtime.block_on(async {
        let url = format!("sqlite://{}", database.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let oldest: i64 = sqlx::query_scalar("SELECT MIN(id) FROM builds").fetch_one(&pool).await.unwrap();
        sqlx::query("UPDATE builds SET packages = $1 WHERE id = $2")
            .bind(BROKEN_PACKAGES)
            .bind(oldest)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        oldest
    })
}

#[test]
fn every_page_renders_its_data_accessibly_at_both_sizes_light_and_dark() {
    let fixture = Fixture::start(Options { public_read: true, ..Options::default() });
    let data = &fixture.data;
    let broken_build = break_build_record(&fixture);
    let browser = browser();
    let pages: Vec<(&str, String, Vec<String>)> = vec![
        ("streams", "/".into(), vec![STREAM.into(), "failed".into(), "aarch64".into(), "1 running".into()]),
        (
            "stream",
            format!("/streams/{STREAM}"),
            vec!["Current images".into(), ":testing-devel-x86_64".into(), "History".into(), "median".into()],
        ),
        (
            "stream-failed",
            format!("/streams/{STREAM}?status=failed"),
            vec![format!("#{}", data.failed_build)],
        ),
        (
            "build",
            format!("/builds/{}", data.succeeded_build),
            vec![
                "41.20261201.7".into(),
                "kernel".into(),
                "upgraded".into(),
                "encapsulating".into(),
                "compose step 60".into(),
                "Layers".into(),
                "of 4 layers".into(),
                "already there".into(),
            ],
        ),
        (
            "build-failed",
            format!("/builds/{}", data.failed_build),
            vec!["Why it failed".into(), "the treefile is broken".into()],
        ),
        (
            "compare",
            format!("/compare?stream={STREAM}&from={}&to={}", data.previous_build, data.succeeded_build),
            vec!["downloads".into(), "linux-firmware".into(), "Layers of build".into()],
        ),
        ("job", format!("/jobs/{}", data.running_job), vec!["downloading".into(), "running step 50".into()]),
        (
            "queue",
            "/queue".into(),
            vec![
                "builder-x86-1".into(),
                format!("job {}", data.queued_job),
                "online".into(),
                format!("job {}", data.running_job),
            ],
        ),
        ("sign-in", "/sign-in".into(), vec!["API token".into()]),
        ("not-found", "/no-such-page".into(), vec!["Not found".into(), "See every stream".into()]),
        ("build-not-found", "/builds/424242".into(), vec!["No build 424242".into()]),
        (
            "server-error",
            format!("/builds/{broken_build}"),
            vec![
                "Something went wrong on the server".into(),
                "log has the details".into(),
                "Status 500".into(),
            ],
        ),
    ];
    let mut problems = Vec::new();
    for (name, path, expected) in &pages {
        for size in [DESKTOP, PHONE] {
            for scheme in [ColourScheme::Light, ColourScheme::Dark] {
                browser.set_window_size(size).unwrap();
                browser.set_colour_scheme(scheme).unwrap();
                browser.goto(&fixture.url(path)).unwrap();
                browser.wait_for("main", LOAD_TIMEOUT).unwrap();
                if *name == "job" {
                    // The live log has filled in.
                    browser
                        .wait_until(
                            "return document.querySelectorAll('#log .line').length >= 50",
                            LOAD_TIMEOUT,
                        )
                        .unwrap();
                }
                let text = browser.text(&browser.find("body").unwrap()).unwrap();
                if text.contains(BROKEN_PACKAGES) {
                    problems.push(format!("{name}: the page shows what the database held"));
                }
                for wanted in expected {
                    if !text.contains(wanted.as_str()) {
                        problems
                            .push(format!("{name} ({path}) at {size:?} {}: no {wanted:?}", scheme.name()));
                    }
                }
                let overflow = browser
                    .execute("return document.documentElement.scrollWidth > window.innerWidth + 1", &[])
                    .unwrap();
                if overflow.as_bool() == Some(true) {
                    problems.push(format!("{name} at {size:?}: the page scrolls sideways"));
                }
                for violation in browser.serious_accessibility_violations().unwrap() {
                    problems.push(format!("{name} at {size:?} {}: axe: {violation}", scheme.name()));
                }
                browser.screenshot(&screenshot_path(name, size, scheme)).unwrap();
                browser
                    .full_page_screenshot(&screenshot_path(&format!("{name}-full"), size, scheme))
                    .unwrap();
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
