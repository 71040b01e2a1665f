//! The live log grows while the job runs, keeps the reader's position when they scroll up, and resumes
//! after the connection is cut (the server stops and starts again) without repeating a line.

use std::time::Duration;

use crate::harness::Options;
use crate::support::{Fixture, RUNNING_LOG_LINES, browser};

const TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of the long log (the 100,000, less the 420 appended before).
const LONG_LOG: i64 = 100_000;
const LONG_LOG_TIMEOUT: Duration = Duration::from_secs(120);

fn lines(count: i64) -> String {
    format!("return document.querySelectorAll('#log .line').length >= {count}")
}

#[test]
fn the_live_log_follows_keeps_the_position_and_resumes_without_duplicates() {
    let mut fixture = Fixture::start(Options { public_read: true, ..Options::default() });
    let browser = browser();
    browser.goto(&fixture.url(&format!("/jobs/{}", fixture.data.running_job))).unwrap();
    browser.wait_until(&lines(RUNNING_LOG_LINES), TIMEOUT).unwrap();

    // Lines appended while the page is open appear.
    fixture.append_running_log((1..=300).map(|number| format!("new line {number}")));
    browser.wait_until(&lines(RUNNING_LOG_LINES + 300), TIMEOUT).unwrap();
    let at_end = browser
        .execute("const log = document.getElementById('log'); return log.scrollHeight - log.scrollTop - log.clientHeight < 40", &[])
        .unwrap();
    assert_eq!(at_end.as_bool(), Some(true), "the view follows the end");

    // Scrolled up, the reader keeps their place while lines arrive.
    browser.execute("const log = document.getElementById('log'); log.scrollTop = 0; log.dispatchEvent(new Event('scroll'))", &[]).unwrap();
    fixture.append_running_log((301..=350).map(|number| format!("new line {number}")));
    browser.wait_until(&lines(RUNNING_LOG_LINES + 350), TIMEOUT).unwrap();
    let top = browser.execute("return document.getElementById('log').scrollTop", &[]).unwrap();
    assert_eq!(top.as_f64(), Some(0.0), "the position is kept");
    let follow_hidden = browser.execute("return document.getElementById('log-follow').hidden", &[]).unwrap();
    assert_eq!(follow_hidden.as_bool(), Some(false), "a button offers to follow the end again");

    // The connection is cut: the server stops (live logs end) and lines arrive while it is down.
    fixture.restart(|fixture| {
        fixture.append_running_log((351..=400).map(|number| format!("new line {number}")));
    });
    fixture.append_running_log((401..=420).map(|number| format!("new line {number}")));
    browser.wait_until(&lines(RUNNING_LOG_LINES + 420), TIMEOUT).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let sequence = browser
        .execute("return Array.from(document.querySelectorAll('#log .line')).map((line) => Number(line.dataset.seq))", &[])
        .unwrap();
    let sequence: Vec<i64> = sequence.as_array().unwrap().iter().map(|seq| seq.as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..=RUNNING_LOG_LINES + 420).collect();
    assert_eq!(sequence, expected, "every line once, in order");
    let last = browser
        .execute("const lines = document.querySelectorAll('#log .line'); return lines[lines.length - 1].textContent", &[])
        .unwrap();
    assert_eq!(last.as_str(), Some("new line 420"));

    // A long log arrives whole, in batches; the longest pause of the page's main thread meanwhile is
    // printed (speed is the benchmark's business, not an assertion's).
    browser
        .execute(
            "window.longestPause = 0; let last = performance.now(); (function tick() { const now = performance.now(); \
             window.longestPause = Math.max(window.longestPause, now - last); last = now; setTimeout(tick, 10); })();",
            &[],
        )
        .unwrap();
    fixture.append_running_log((421..=LONG_LOG).map(|number| format!("new line {number}")));
    browser.wait_until(&lines(RUNNING_LOG_LINES + LONG_LOG), LONG_LOG_TIMEOUT).unwrap();
    let pause = browser.execute("return window.longestPause", &[]).unwrap();
    eprintln!("{LONG_LOG} lines shown; the longest pause of the page meanwhile: {pause} ms");
    let seqs = browser
        .execute("const lines = document.querySelectorAll('#log .line'); return [lines.length, Number(lines[lines.length - 1].dataset.seq)]", &[])
        .unwrap();
    assert_eq!(seqs, serde_json::json!([RUNNING_LOG_LINES + LONG_LOG, RUNNING_LOG_LINES + LONG_LOG]));
}
