//! Signing in, composing and cancelling through the pages; what a visitor and a read-only user see;
//! forms from other sites refused.

use std::time::Duration;

use arbor_testsupport::browser::{ColourScheme, DESKTOP, PHONE};
use axum::http::StatusCode;
use pipeline::store::JobState;

use crate::harness::{Options, STREAM};
use crate::support::{Fixture, browser, screenshot_path};

const TIMEOUT: Duration = Duration::from_secs(10);
const ACTION_FORMS: &str = "form[action$='/compose'], form[action$='/retry'], form[action$='/cancel']";

fn sign_in(browser: &arbor_testsupport::browser::TestBrowser, fixture: &Fixture, token: &str) {
    browser.goto(&fixture.url("/sign-in")).unwrap();
    browser.type_text(&browser.find("#token").unwrap(), token).unwrap();
    browser.click(&browser.find("form[action='/sign-in'] button[type='submit']").unwrap()).unwrap();
    browser.wait_for(".account strong", TIMEOUT).unwrap();
}

#[test]
fn visitors_see_no_actions_and_signed_in_writers_compose_and_cancel() {
    let fixture = Fixture::start(Options { public_read: true, ..Options::default() });
    let data = &fixture.data;
    let browser = browser();
    let action_pages = [
        format!("/streams/{STREAM}"),
        format!("/builds/{}", data.failed_build),
        format!("/jobs/{}", data.running_job),
    ];
    for path in &action_pages {
        browser.goto(&fixture.url(path)).unwrap();
        browser.wait_for("main", TIMEOUT).unwrap();
        assert!(browser.find_all(ACTION_FORMS).unwrap().is_empty(), "a visitor sees an action on {path}");
        assert!(browser.find_all("a[href='/sign-in']").unwrap().len() == 1, "{path} offers signing in");
    }

    // A read-only token signs in but gets no buttons either.
    sign_in(&browser, &fixture, &fixture.server.tokens.read);
    for path in &action_pages {
        browser.goto(&fixture.url(path)).unwrap();
        browser.wait_for("main", TIMEOUT).unwrap();
        assert!(browser.find_all(ACTION_FORMS).unwrap().is_empty(), "a reader sees an action on {path}");
    }

    // A write token: the cookie is HttpOnly and SameSite=Strict, and the buttons are there.
    sign_in(&browser, &fixture, &fixture.server.tokens.write);
    let name = browser.text(&browser.find(".account strong").unwrap()).unwrap();
    assert_eq!(name, "ci");
    let cookies = browser.cookies().unwrap();
    let session =
        cookies.iter().find(|cookie| cookie["name"] == "arbor_session").expect("the session cookie");
    assert_eq!((session["httpOnly"].as_bool(), session["sameSite"].as_str()), (Some(true), Some("Strict")));
    let scripts_see = browser.execute("return document.cookie", &[]).unwrap();
    assert!(!scripts_see.as_str().unwrap_or_default().contains("arbor_session"), "scripts must not read it");

    // Retry the failed build: a new queued build and job.
    browser.goto(&fixture.url(&format!("/builds/{}", data.failed_build))).unwrap();
    browser.click(&browser.find("form[action$='/retry'] button").unwrap()).unwrap();
    browser.wait_until("return /\\/jobs\\/\\d+$/.test(location.pathname)", TIMEOUT).unwrap();

    // Compose now (aarch64): shows its job (the retried build's, which now builds the head).
    browser.goto(&fixture.url(&format!("/streams/{STREAM}"))).unwrap();
    for size in [DESKTOP, PHONE] {
        browser.set_window_size(size).unwrap();
        browser.screenshot(&screenshot_path("stream-signed-in", size, ColourScheme::Light)).unwrap();
    }
    browser.set_window_size(DESKTOP).unwrap();
    browser.execute("document.querySelector('#compose-arch').value = 'aarch64'", &[]).unwrap();
    browser.click(&browser.find("form[action$='/compose'] button").unwrap()).unwrap();
    browser.wait_until("return /\\/jobs\\/\\d+$/.test(location.pathname)", TIMEOUT).unwrap();
    let url = browser.current_url().unwrap();
    let job_id: i64 = url.rsplit('/').next().unwrap().parse().unwrap();
    let job = fixture.runtime.block_on(fixture.server.store.get_job(job_id)).unwrap().unwrap();
    assert_eq!(
        (job.kind.as_str(), job.arch.as_deref(), job.state),
        ("compose", Some("aarch64"), JobState::Queued)
    );

    browser.screenshot(&screenshot_path("job-signed-in", DESKTOP, ColourScheme::Light)).unwrap();
    // Cancel it: the page asks first, then the job is cancelled.
    browser.click(&browser.find("form[action$='/cancel'] button").unwrap()).unwrap();
    browser.accept_dialog().unwrap();
    browser.wait_for("[data-job-state='cancelled']", TIMEOUT).unwrap();
    let job = fixture.runtime.block_on(fixture.server.store.get_job(job_id)).unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);

    // A form another site sends (here a data: page, an opaque origin) does nothing.
    let target = fixture.url(&format!("/jobs/{}/cancel", data.queued_job));
    let page = format!(
        "data:text/html,<form id=f method=post action='{target}'><input name=csrf value=x></form>\
         <script>document.getElementById('f').submit()</script>"
    );
    browser.goto(&page).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let queued = fixture.runtime.block_on(fixture.server.store.get_job(data.queued_job)).unwrap().unwrap();
    assert_eq!(queued.state, JobState::Queued, "a cross-site form cancelled a job");
}

#[test]
fn forms_without_the_session_csrf_token_or_from_another_origin_are_refused() {
    let fixture = Fixture::start(Options::default());
    let job = fixture.data.queued_job;
    let token = fixture.server.tokens.write.clone();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let csrf = fixture.runtime.block_on(async {
        let page = client
            .get(fixture.url(&format!("/jobs/{job}")))
            .header("cookie", format!("arbor_session={token}"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let start =
            page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
        page[start..start + 64].to_string()
    });
    let post = |csrf: Option<&str>, extra: Option<(&str, &str)>| {
        fixture.runtime.block_on(async {
            let mut request = client
                .post(fixture.url(&format!("/jobs/{job}/cancel")))
                .header("cookie", format!("arbor_session={token}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(csrf.map(|csrf| format!("csrf={csrf}")).unwrap_or_default());
            if let Some((name, value)) = extra {
                request = request.header(name, value);
            }
            request.send().await.unwrap().status()
        })
    };
    assert_eq!(post(None, None), StatusCode::FORBIDDEN, "no CSRF token");
    assert_eq!(post(Some(&"0".repeat(64)), None), StatusCode::FORBIDDEN, "another session's token");
    assert_eq!(post(Some(&csrf), Some(("origin", "http://evil.example"))), StatusCode::FORBIDDEN);
    assert_eq!(post(Some(&csrf), Some(("sec-fetch-site", "cross-site"))), StatusCode::FORBIDDEN);
    let still = fixture.runtime.block_on(fixture.server.store.get_job(job)).unwrap().unwrap();
    assert_eq!(still.state, JobState::Queued);
    // The JSON API takes the cookie for reading only.
    let api = fixture.runtime.block_on(async {
        client
            .post(fixture.url(&format!("/api/v1/jobs/{job}/cancel")))
            .header("cookie", format!("arbor_session={token}"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(api, StatusCode::FORBIDDEN);
    assert_eq!(post(Some(&csrf), Some(("origin", &fixture.url("")))), StatusCode::SEE_OTHER, "the real form");
    let cancelled = fixture.runtime.block_on(fixture.server.store.get_job(job)).unwrap().unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
}
