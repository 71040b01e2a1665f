//! The dashboard's building blocks, values in and markup out: the page frame, status badges, times
//! relative to now (absolute on hover), shortened digests with a copy button, sizes, durations, the
//! phase bar and the chart of a stream's last builds (SVG drawn here, no script needed), pagination and
//! the problem box of error pages. No inline styles or scripts: the Content-Security-Policy forbids them.

use common::human::human_bytes;
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::session::Viewer;

/// Hex digits shown of a commit or digest; the full value is one click away.
pub const SHORT_HEX: usize = 12;
/// Phase colours of the stylesheet (`.swatch-0` ... `.swatch-5`), used in turn.
const PHASE_COLOURS: usize = 6;

/// The sections of the site, for the navigation's current entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Streams,
    Queue,
    None,
}

/// What frames a page.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    pub title: &'a str,
    pub section: Section,
    /// Links above the title, home first.
    pub breadcrumbs: &'a [(String, String)],
    pub viewer: &'a Viewer,
    /// The API call that gives this page's data (also answered here with `Accept: application/json`).
    pub api: Option<&'a str>,
}

/// The logo: a small tree of three layers.
fn logo() -> Markup {
    html! {
        svg width="20" height="20" viewBox="0 0 20 20" aria-hidden="true" focusable="false" {
            path d="M10 1 L17 9 H3 Z" fill="#7ed9a0" {}
            path d="M10 5 L18 14 H2 Z" fill="#46b673" {}
            rect x="9" y="14" width="2" height="5" fill="#d9c7a0" {}
        }
    }
}

/// The whole page: header with navigation and account, breadcrumbs, the body, the footer.
pub fn page(frame: &Frame<'_>, body: Markup) -> Markup {
    let current = |section: Section| (frame.section == section).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (frame.title) " · arbor" }
                link rel="stylesheet" href=(assets::STYLESHEET.url());
                link rel="icon" href=(assets::ICON.url()) type="image/svg+xml";
                @if let Some(api) = frame.api {
                    link rel="alternate" type="application/json" href=(api);
                }
                script src=(assets::SCRIPT.url()) defer {}
            }
            body {
                a.skip-link href="#content" { "Skip to content" }
                header.site-header {
                    div.inner {
                        a.brand href="/" { (logo()) "arbor" }
                        nav.site-nav aria-label="Main" {
                            a href="/" aria-current=[current(Section::Streams)] { "Streams" }
                            a href="/queue" aria-current=[current(Section::Queue)] { "Queue & workers" }
                            a href="/api/v1/openapi.json" { "API" }
                        }
                        div.account {
                            @match &frame.viewer.name {
                                Some(name) => {
                                    span { "Signed in as " strong { (name) } }
                                    form.inline method="post" action="/sign-out" {
                                        (csrf_field(frame.viewer))
                                        button.link type="submit" { "Sign out" }
                                    }
                                }
                                None => { a href="/sign-in" { "Sign in" } }
                            }
                        }
                    }
                }
                main id="content" {
                    @if !frame.breadcrumbs.is_empty() {
                        nav.breadcrumbs aria-label="Breadcrumbs" {
                            @for (index, (label, href)) in frame.breadcrumbs.iter().enumerate() {
                                @if index > 0 { span aria-hidden="true" { "/" } }
                                a href=(href) { (label) }
                            }
                        }
                    }
                    (body)
                }
                footer.site-footer {
                    "arbor · "
                    @if let Some(api) = frame.api {
                        "this page's data: " a href=(api) { code { (api) } }
                    } @else {
                        a href="/api/v1/openapi.json" { "API description" }
                    }
                }
            }
        }
    }
}

/// The hidden CSRF field of a form, for a signed-in viewer.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! {
        @if let Some(token) = &viewer.csrf {
            input type="hidden" name="csrf" value=(token);
        }
    }
}

/// A status as colour, symbol and word (never colour alone).
pub fn status(status: &str) -> Markup {
    let symbol = match status {
        "succeeded" => "✓",
        "failed" => "✗",
        "running" => "●",
        "queued" => "◷",
        "unchanged" => "=",
        "cancelled" => "⊘",
        _ => "?",
    };
    html! {
        span class={ "status status-" (status) } {
            span.symbol aria-hidden="true" { (symbol) }
            (status)
        }
    }
}

/// `2026-12-06T20:00:00.123Z` for milliseconds since the epoch (UTC).
pub fn rfc3339(milliseconds: i64) -> String {
    common::time::format_utc_milliseconds(milliseconds)
}

/// A time shown relative to `now` ("5 min ago"), the absolute UTC time on hover; the script keeps the
/// relative text current.
pub fn time(milliseconds: i64, now: i64) -> Markup {
    let absolute = rfc3339(milliseconds);
    let shown = format!("{} UTC", absolute.get(..19).unwrap_or(&absolute).replace('T', " "));
    html! {
        time datetime=(absolute) title=(shown) data-relative { (relative(milliseconds, now)) }
    }
}

/// An optional time, or a dash.
pub fn maybe_time(milliseconds: Option<i64>, now: i64) -> Markup {
    match milliseconds {
        Some(milliseconds) => time(milliseconds, now),
        None => html! { span.muted { "—" } },
    }
}

/// "just now", "5 min ago", "in 2 h", "3 days ago".
pub fn relative(milliseconds: i64, now: i64) -> String {
    let seconds = (now - milliseconds) / 1000;
    let (amount, future) = (seconds.unsigned_abs(), seconds < 0);
    let text = match amount {
        0..=9 => return "just now".to_string(),
        10..=59 => format!("{amount} s"),
        60..=3599 => format!("{} min", amount / 60),
        3600..=86_399 => format!("{} h", amount / 3600),
        _ => {
            let days = amount / 86_400;
            format!("{days} day{}", if days == 1 { "" } else { "s" })
        }
    };
    if future { format!("in {text}") } else { format!("{text} ago") }
}

/// A duration for people: "850 ms", "12.4 s", "3 min 05 s", "1 h 02 min".
pub fn duration(milliseconds: i64) -> String {
    let milliseconds = milliseconds.max(0);
    match milliseconds {
        0..=999 => format!("{milliseconds} ms"),
        1000..=59_999 => format!("{:.1} s", milliseconds as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} min {:02} s", milliseconds / 60_000, milliseconds / 1000 % 60),
        _ => format!("{} h {:02} min", milliseconds / 3_600_000, milliseconds / 60_000 % 60),
    }
}

/// Bytes for people (KiB, MiB, GiB), or a dash.
pub fn bytes(count: Option<i64>) -> Markup {
    match count {
        Some(count) => html! { (human_bytes(count.max(0) as u64)) },
        None => html! { span.muted { "—" } },
    }
}

/// A long value shortened (`sha256:0123456789ab`), the full value in the title and a copy button.
pub fn short(value: &str, what: &str) -> Markup {
    let (prefix, hex) = match value.rsplit_once(':') {
        Some((before, hex)) if before.len() <= 8 => (format!("{before}:"), hex),
        _ => (String::new(), value),
    };
    let shown: String = hex.chars().take(SHORT_HEX).collect();
    html! {
        span.short {
            code title=(value) { (prefix) (shown) }
            button.copy type="button" data-copy=(value) aria-label={ "Copy the full " (what) } { "copy" }
        }
    }
}

/// An optional long value shortened, or a dash.
pub fn maybe_short(value: Option<&str>, what: &str) -> Markup {
    match value {
        Some(value) => short(value, what),
        None => html! { span.muted { "—" } },
    }
}

/// An image reference `HOST/REPOSITORY@sha256:...`: the repository in full, the digest shortened, the
/// whole reference copied.
pub fn maybe_reference(reference: Option<&str>) -> Markup {
    let Some(reference) = reference else {
        return html! { span.muted { "—" } };
    };
    let (repository, digest) = reference.split_once('@').unwrap_or((reference, ""));
    let digest = common::human::short_digest(digest);
    html! {
        span.short.reference {
            code title=(reference) { (repository) @if !digest.is_empty() { "@" (digest) } }
            button.copy type="button" data-copy=(reference) aria-label="Copy the full image reference" { "copy" }
        }
    }
}

/// The phases of a compose as one bar (widths proportional to time, drawn as SVG) with a legend.
pub fn phase_bar(phases: &[(&str, i64)]) -> Markup {
    let total: i64 = phases.iter().map(|(_, milliseconds)| (*milliseconds).max(0)).sum::<i64>().max(1);
    let summary = phases
        .iter()
        .map(|(name, milliseconds)| format!("{name} {}", duration(*milliseconds)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut offset = 0.0;
    let segments: Vec<(f64, f64)> = phases
        .iter()
        .map(|(_, milliseconds)| {
            let width = (*milliseconds).max(0) as f64 / total as f64 * 1000.0;
            let start = offset;
            offset += width;
            (start, width)
        })
        .collect();
    html! {
        svg.phases viewBox="0 0 1000 24" preserveAspectRatio="none" role="img" aria-label={ "Phases: " (summary) } {
            @for (index, ((name, milliseconds), (start, width))) in phases.iter().zip(&segments).enumerate() {
                rect class={ "swatch-" (index % PHASE_COLOURS) } x=(format!("{start:.1}")) y="0"
                    width=(format!("{:.1}", width.max(2.0))) height="24" {
                    title { (name) ": " (duration(*milliseconds)) }
                }
            }
        }
        ul.phase-legend {
            @for (index, (name, milliseconds)) in phases.iter().enumerate() {
                li { i class={ "swatch-" (index % PHASE_COLOURS) } {} (name) " " span.muted { (duration(*milliseconds)) } }
            }
        }
    }
}

/// One build of the chart of a stream's last builds.
#[derive(Debug, Clone)]
pub struct ChartBuild<'a> {
    pub id: i64,
    pub status: &'a str,
    pub duration_ms: i64,
}

/// Chart geometry: the SVG's own units (it scales to its container's width).
const CHART_WIDTH: f64 = 600.0;
const CHART_HEIGHT: f64 = 140.0;
const CHART_MARGIN_LEFT: f64 = 52.0;
const CHART_MARGIN_BOTTOM: f64 = 18.0;
const CHART_MARGIN_TOP: f64 = 8.0;
const CHART_BAR_GAP: f64 = 3.0;
/// The shortest bar, so a build that took no time is still there to hover and click.
const CHART_MINIMUM_BAR: f64 = 2.0;

/// The last builds' durations as bars coloured by outcome, oldest left; each bar links to its build and
/// says what it was to screen readers and on hover.
pub fn build_chart(builds: &[ChartBuild<'_>]) -> Markup {
    let longest = builds.iter().map(|build| build.duration_ms).max().unwrap_or(0).max(1000);
    let plot_width = CHART_WIDTH - CHART_MARGIN_LEFT;
    let base = CHART_HEIGHT - CHART_MARGIN_BOTTOM;
    let plot_height = base - CHART_MARGIN_TOP;
    let slot = plot_width / builds.len().max(1) as f64;
    let bar_width = (slot - CHART_BAR_GAP).max(1.0);
    let count = |status: &str| builds.iter().filter(|build| build.status == status).count();
    let description = format!(
        "Durations of the last {} builds, oldest first: {} succeeded, {} failed, {} unchanged, {} cancelled",
        builds.len(),
        count("succeeded"),
        count("failed"),
        count("unchanged"),
        count("cancelled"),
    );
    html! {
        svg.chart viewBox={ "0 0 " (CHART_WIDTH) " " (CHART_HEIGHT) } role="group" aria-label=(description) {
            line.axis x1=(CHART_MARGIN_LEFT) y1=(base) x2=(CHART_WIDTH) y2=(base) {}
            text x="0" y="14" { (duration(longest)) }
            text x="0" y=(base) { "0" }
            @for (index, build) in builds.iter().enumerate() {
                @let height = (build.duration_ms.max(0) as f64 / longest as f64 * plot_height).max(CHART_MINIMUM_BAR);
                @let x = CHART_MARGIN_LEFT + index as f64 * slot + CHART_BAR_GAP / 2.0;
                a href={ "/builds/" (build.id) } aria-label={ "build " (build.id) ", " (build.status) } {
                    rect class={ "bar-" (build.status) } x=(format!("{x:.1}")) y=(format!("{:.1}", base - height))
                        width=(format!("{bar_width:.1}")) height=(format!("{height:.1}")) rx="1.5" {
                        title { "build " (build.id) ": " (build.status) ", " (duration(build.duration_ms)) }
                    }
                }
            }
        }
        div.legend {
            @for name in ["succeeded", "failed", "unchanged", "cancelled"] {
                (status(name))
            }
        }
    }
}

/// Links to the first and the next page of a cursor-paginated list.
pub fn pagination(first: Option<&str>, older: Option<&str>) -> Markup {
    html! {
        @if first.is_some() || older.is_some() {
            nav.pagination aria-label="Pages" {
                @if let Some(href) = first { a href=(href) rel="first" { "← Newest" } } @else { span {} }
                @if let Some(href) = older { a href=(href) rel="next" { "Older →" } } @else { span {} }
            }
        }
    }
}

/// An error page's body: what happened and what to do next.
pub fn problem(heading: &str, explanation: &str, next: Markup) -> Markup {
    html! {
        div.page-head { div.titles { h1 { (heading) } } }
        div.panel.problem { p { (explanation) } (next) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        let now = 1_765_000_000_000;
        let table = [
            (now - 3_000, "just now"),
            (now - 42_000, "42 s ago"),
            (now - 5 * 60_000, "5 min ago"),
            (now - 3 * 86_400_000, "3 days ago"),
            (now - 86_400_000, "1 day ago"),
            (now + 2 * 3_600_000, "in 2 h"),
        ];
        for (time, expected) in table {
            assert_eq!(relative(time, now), expected);
        }
        for (milliseconds, expected) in
            [(850, "850 ms"), (12_400, "12.4 s"), (185_000, "3 min 05 s"), (3_720_000, "1 h 02 min")]
        {
            assert_eq!(duration(milliseconds), expected);
        }
        assert_eq!(rfc3339(1_765_000_000_123), "2025-12-06T05:46:40.123Z");
    }

    #[test]
    fn statuses_carry_a_word_and_a_symbol() {
        let markup = status("failed").into_string();
        assert!(markup.contains("status-failed") && markup.contains("failed</span>"), "{markup}");
        assert!(markup.contains('✗'), "{markup}");
    }

    #[test]
    fn short_values_keep_the_full_value_for_copying() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let markup = short(&digest, "digest").into_string();
        assert!(markup.contains(">sha256:abababababab<"), "{markup}");
        assert!(markup.contains(&format!("data-copy=\"{digest}\"")), "{markup}");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert!(short(commit, "commit").into_string().contains(">0123456789ab<"));
        let reference = format!("registry.example.com/os@{digest}");
        assert!(short(&reference, "reference").into_string().contains(&format!("data-copy=\"{reference}\"")));
    }

    #[test]
    fn the_chart_links_every_build_and_describes_itself() {
        let builds = [
            ChartBuild { id: 1, status: "succeeded", duration_ms: 60_000 },
            ChartBuild { id: 2, status: "failed", duration_ms: 0 },
        ];
        let markup = build_chart(&builds).into_string();
        assert!(markup.contains("href=\"/builds/1\"") && markup.contains("href=\"/builds/2\""), "{markup}");
        assert!(markup.contains("1 succeeded, 1 failed"), "{markup}");
    }
}
