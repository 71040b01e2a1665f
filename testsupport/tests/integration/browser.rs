//! The browser harness against a page served on 127.0.0.1: navigation, clicks, scripts, the colour
//! scheme, screenshots, and axe-core finding (and not finding) serious violations.

use std::time::Duration;

use arbor_testsupport::TestHttpServer;
use arbor_testsupport::browser::{ColourScheme, PHONE, TestBrowser};

const PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>harness</title>
<style>body { background: white; } @media (prefers-color-scheme: dark) { body { background: black; } }</style>
</head><body><main><h1>Harness</h1><p id="said">nothing yet</p>
<button id="say" type="button" onclick="document.getElementById('said').textContent = 'clicked ' + innerWidth">Say</button>
</main></body></html>"#;

const INACCESSIBLE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bad</title></head>
<body><main><img src="x.png"><button></button></main></body></html>"#;

#[test]
fn the_browser_clicks_runs_scripts_switches_schemes_and_checks_accessibility() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("page.html"), PAGE).unwrap();
    std::fs::write(site.path().join("bad.html"), INACCESSIBLE).unwrap();
    let server = TestHttpServer::serve(site.path()).unwrap();
    let browser = TestBrowser::start().unwrap();

    browser.goto(&server.url_for("page.html")).unwrap();
    assert_eq!(browser.title().unwrap(), "harness");
    browser.click(&browser.find("#say").unwrap()).unwrap();
    assert_eq!(browser.text(&browser.find("#said").unwrap()).unwrap(), "clicked 1280");
    let background = "return getComputedStyle(document.body).backgroundColor";
    assert_eq!(browser.execute(background, &[]).unwrap(), "rgb(255, 255, 255)");
    browser.set_colour_scheme(ColourScheme::Dark).unwrap();
    assert_eq!(browser.execute(background, &[]).unwrap(), "rgb(0, 0, 0)");
    browser.set_window_size(PHONE).unwrap();
    browser.goto(&server.url_for("page.html")).unwrap();
    browser.click(&browser.wait_for("#say", Duration::from_secs(5)).unwrap()).unwrap();
    assert_eq!(browser.text(&browser.find("#said").unwrap()).unwrap(), "clicked 390");
    let shot = site.path().join("shots/page.png");
    browser.screenshot(&shot).unwrap();
    assert_eq!(&std::fs::read(&shot).unwrap()[..8], b"\x89PNG\r\n\x1a\n");

    assert_eq!(browser.serious_accessibility_violations().unwrap(), Vec::<serde_json::Value>::new());
    browser.goto(&server.url_for("bad.html")).unwrap();
    let violations = browser.serious_accessibility_violations().unwrap();
    let ids: Vec<&str> = violations.iter().filter_map(|violation| violation["id"].as_str()).collect();
    assert!(ids.contains(&"image-alt") && ids.contains(&"button-name"), "{violations:?}");
}
