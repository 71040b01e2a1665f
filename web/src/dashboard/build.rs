//! A build's page: what it is (commit with subject and link, version, input hash, ostree commit, image
//! reference and digest), how long each phase took, the package diff against the previous build
//! (searchable), the image, its layers and which of them a client of the previous build downloads, its
//! error and the end of its log; and "retry" for a failed or cancelled build.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use pipeline::api::{Build, BuildStatus};
use serde::Deserialize;

use super::components::{self as ui, Section};
use super::layers;
use super::session::{Viewer, authorize_action};
use super::streams::{build_duration, form_or_error};
use super::{Page, json_answer, see_other, wants_json};
use crate::api::builds::{build, retry as retry_build};
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

/// Lines of the log shown at the end of a build's page (the job's page has all of them, live).
const LOG_TAIL_LINES: i64 = 200;

/// One change of the package diff, flattened for the table.
#[derive(Debug)]
pub(crate) struct Change {
    pub kind: &'static str,
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The package diff's changes (`{"upgraded": [{name, from, to}], "added": [{name, version}], ...}`), by
/// name.
pub(crate) fn changes(diff: Option<&serde_json::Value>) -> Vec<Change> {
    let Some(diff) = diff else { return Vec::new() };
    let mut changes = Vec::new();
    for kind in ["upgraded", "downgraded", "added", "removed"] {
        for entry in diff[kind].as_array().into_iter().flatten() {
            let text = |key: &str| entry[key].as_str().map(str::to_string);
            let (from, to) = match kind {
                "added" => (None, text("version")),
                "removed" => (text("version"), None),
                _ => (text("from"), text("to")),
            };
            changes.push(Change { kind, name: text("name").unwrap_or_default(), from, to });
        }
    }
    changes.sort_by(|left, right| left.name.cmp(&right.name));
    changes
}

/// The package diff as counts and a table a search box filters.
pub(crate) fn diff_table(id: &str, changes: &[Change]) -> Markup {
    let count = |kind: &str| changes.iter().filter(|change| change.kind == kind).count();
    html! {
        ul.counts {
            @for kind in ["upgraded", "downgraded", "added", "removed"] {
                li class={ "count change-" (kind) } { (count(kind)) " " (kind) }
            }
        }
        @if changes.is_empty() {
            p.empty { "No package changed." }
        } @else {
            div.filters {
                div {
                    label for={ (id) "-search" } { "Search packages" }
                    input type="search" id={ (id) "-search" } data-filter=(id) placeholder="name or version";
                }
                p.muted { span data-filter-count=(id) { (changes.len()) } " shown" }
            }
            div.table-wrap {
                table.responsive id=(id) {
                    caption.visually-hidden { "Package changes" }
                    thead { tr { th scope="col" { "Package" } th scope="col" { "Change" } th scope="col" { "From" } th scope="col" { "To" } } }
                    tbody {
                        @for change in changes {
                            tr {
                                td data-label="Package" { code { (change.name) } }
                                td data-label="Change" { span class={ "change-" (change.kind) } { (change.kind) } }
                                td data-label="From" { code { (change.from.as_deref().unwrap_or("")) } }
                                td data-label="To" { code { (change.to.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A link to the commit on its forge, when the remote is a web forge's HTTPS URL.
fn commit_link(remote: &str, commit: &str) -> Option<String> {
    let base = remote.strip_prefix("https://")?.trim_end_matches('/').trim_end_matches(".git");
    let host = base.split('/').next()?;
    if host.contains("gitlab") {
        Some(format!("https://{base}/-/commit/{commit}"))
    } else if host.contains("github") || host.contains("codeberg") || host.contains("gitea") {
        Some(format!("https://{base}/commit/{commit}"))
    } else {
        None
    }
}

/// `GET /builds/{id}`.
pub(crate) async fn build_page(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    viewer.require_read()?;
    let api = format!("/api/v1/builds/{id}");
    let build = build(&state, id).await?;
    if wants_json(&headers) {
        return Ok(json_answer(&api, &build));
    }
    let summary = &build.summary;
    let log = match summary.job_id {
        Some(job_id) => {
            let job = state.store.get_job(job_id).await?;
            let after = job.map_or(0, |job| (job.log_lines - LOG_TAIL_LINES).max(0));
            state.store.read_logs(job_id, after, LOG_TAIL_LINES as u32).await?
        }
        None => Vec::new(),
    };
    let now = state.now();
    let changes = changes(build.package_diff.as_ref());
    let phases: Vec<(&str, i64)> =
        build.phases.iter().map(|phase| (phase.name.as_str(), phase.duration_ms)).collect();
    let retryable = matches!(summary.status, BuildStatus::Failed | BuildStatus::Cancelled);
    // What a client of the previous build holds, to mark the layers it downloads.
    let previous_layers = match (summary.previous_build_id, &build.layers) {
        (Some(previous), Some(_)) => {
            build_or_none(&state, previous).await?.and_then(|previous| previous.layers)
        }
        _ => None,
    };
    let previous_label = summary.previous_build_id.map(|previous| format!("build #{previous}"));
    let body = html! {
        div.page-head {
            div.titles {
                h1 { "Build " (summary.id) " " (ui::status(summary.status.as_str())) }
                p.muted {
                    a href={ "/streams/" (summary.stream) } { (summary.stream) } " · " code { (summary.arch) }
                    @if let Some(version) = &summary.version { " · version " strong { (version) } }
                }
            }
            div.actions {
                @if let Some(previous) = summary.previous_build_id {
                    a.button href={ "/compare?stream=" (summary.stream) "&from=" (previous) "&to=" (summary.id) } { "Compare with #" (previous) }
                }
                @if let Some(job_id) = summary.job_id { a.button href={ "/jobs/" (job_id) } { "Job and log" } }
                @if viewer.can_write && retryable {
                    form.inline method="post" action={ "/builds/" (summary.id) "/retry" } {
                        (ui::csrf_field(&viewer))
                        button.button.button-primary type="submit" { "Retry" }
                    }
                }
            }
        }
        @if let Some(error) = &build.error {
            div.banner.banner-error { strong { "Why it failed" } pre { (error) } }
        }
        div.grid {
            section.panel aria-labelledby="facts-heading" {
                h2 #facts-heading { "What it is" }
                (facts(&state, &build, now))
            }
            section.panel aria-labelledby="image-heading" {
                h2 #image-heading { "Image" }
                dl.facts {
                    dt { "Reference" } dd { (ui::maybe_reference(summary.image_reference.as_deref())) }
                    dt { "Digest" } dd { (ui::maybe_short(summary.manifest_digest.as_deref(), "image digest")) }
                    dt { "Size" } dd { (ui::bytes(summary.image_bytes)) }
                    dt { "Download" }
                    dd {
                        (ui::bytes(summary.download_bytes))
                        @if let Some(previous) = summary.previous_build_id {
                            span.muted { " for a client of " a href={ "/builds/" (previous) } { "build #" (previous) } }
                        }
                    }
                }
            }
        }
        @if !phases.is_empty() {
            section.panel aria-labelledby="phases-heading" {
                h2 #phases-heading { "Phases" }
                (ui::phase_bar(&phases))
            }
        }
        @if let Some(image_layers) = &build.layers {
            section aria-labelledby="layers-heading" {
                h2 #layers-heading { "Layers" span.muted { " (" (image_layers.len()) ")" } }
                (layers::table("layers", image_layers, previous_label.as_deref().zip(previous_layers.as_deref())))
            }
        }
        section aria-labelledby="packages-heading" {
            h2 #packages-heading {
                "Package changes"
                @if let Some(previous) = summary.previous_build_id { span.muted { " against build #" (previous) } }
            }
            @if build.package_diff.is_some() { (diff_table("packages", &changes)) }
            @else { p.empty { "No package diff was recorded for this build." } }
        }
        section aria-labelledby="log-heading" {
            h2 #log-heading { "Log" }
            @if log.is_empty() {
                p.empty { "No log lines." }
            } @else {
                p.muted {
                    "The last " (log.len()) " lines. "
                    @if let Some(job_id) = summary.job_id {
                        a href={ "/jobs/" (job_id) } { "All of it, live" } " · "
                        a href={ "/api/v1/jobs/" (job_id) "/log" } { "as text" }
                    }
                }
                pre.log tabindex="0" aria-label="The end of the build's log" {
                    @for line in &log { span.line data-seq=(line.seq) { (line.line) } }
                }
            }
        }
    };
    let page = Page {
        title: format!("Build {} of {}", summary.id, summary.stream),
        section: Section::Streams,
        breadcrumbs: vec![
            ("Streams".into(), "/".into()),
            (summary.stream.clone(), format!("/streams/{}", summary.stream)),
        ],
        api: Some(api),
        body,
    };
    Ok(page.render(&viewer, StatusCode::OK))
}

/// A build that may be gone (the previous build of an old build), `None` then.
async fn build_or_none(state: &AppState, id: i64) -> Result<Option<Build>, ApiError> {
    match build(state, id).await {
        Ok(found) => Ok(Some(found)),
        Err(error) if error.status == StatusCode::NOT_FOUND => Ok(None),
        Err(error) => Err(error),
    }
}

fn facts(state: &AppState, build: &Build, now: i64) -> Markup {
    let summary = &build.summary;
    let link = commit_link(&state.config.git.url, &summary.git_commit);
    html! {
        dl.facts {
            dt { "Commit" }
            dd {
                (ui::short(&summary.git_commit, "commit"))
                @if let Some(link) = link { " " a href=(link) rel="noopener" { "on the forge" } }
                @if let Some(subject) = &summary.git_subject { div { (subject) } }
            }
            dt { "Version" } dd { (summary.version.as_deref().unwrap_or("—")) }
            dt { "Input hash" } dd { (ui::maybe_short(summary.inputhash.as_deref(), "input hash")) }
            dt { "ostree commit" } dd { (ui::maybe_short(summary.ostree_commit.as_deref(), "ostree commit")) }
            dt { "Created" } dd { (ui::time(summary.created_at.milliseconds(), now)) }
            dt { "Started" } dd { (ui::maybe_time(summary.started_at.map(|time| time.milliseconds()), now)) }
            dt { "Finished" } dd { (ui::maybe_time(summary.finished_at.map(|time| time.milliseconds()), now)) }
            dt { "Took" } dd { @match build_duration(summary) { Some(ms) => (ui::duration(ms)), None => "—" } }
        }
    }
}

/// The form of "retry".
#[derive(Debug, Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    pub csrf: Option<String>,
}

/// `POST /builds/{id}/retry`: builds it again, then shows the new job.
pub(crate) async fn retry(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    form: Result<axum::Form<ActionForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let form = form_or_error(form)?;
    let caller = authorize_action(&viewer, &headers, form.csrf.as_deref())?;
    let answer = retry_build(&state, id, caller).await?;
    Ok(match answer.builds.first() {
        Some(build) => see_other(&format!("/jobs/{}", build.job_id)),
        None => see_other(&format!("/builds/{id}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_link_to_web_forges_only() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let table = [
            ("https://github.com/org/os.git", Some(format!("https://github.com/org/os/commit/{commit}"))),
            (
                "https://gitlab.example.com/org/os",
                Some(format!("https://gitlab.example.com/org/os/-/commit/{commit}")),
            ),
            ("file:///srv/git/os", None),
            ("ssh://git@github.com/org/os", None),
        ];
        for (remote, expected) in table {
            assert_eq!(commit_link(remote, commit), expected, "{remote}");
        }
    }

    #[test]
    fn package_diffs_flatten_by_name() {
        let diff = serde_json::json!({
            "upgraded": [{"name": "kernel", "from": "6.1-1", "to": "6.2-1"}],
            "downgraded": [],
            "added": [{"name": "bash", "version": "5.2-1"}],
            "removed": [{"name": "zsh", "version": "5.9-1"}],
        });
        let changes = changes(Some(&diff));
        let names: Vec<_> = changes.iter().map(|change| (change.kind, change.name.as_str())).collect();
        assert_eq!(names, [("added", "bash"), ("upgraded", "kernel"), ("removed", "zsh")]);
        assert_eq!(changes[1].from.as_deref(), Some("6.1-1"));
    }
}
