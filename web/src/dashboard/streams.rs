//! The home page (every stream and arch: the latest build, its image, the branch head and whether it is
//! built, running jobs; failing ones first), a stream's page (its current images and tags, how often it
//! builds and fails, a chart of the last builds, the history filtered and paginated) and "compose now".

use std::collections::HashMap;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::future::try_join_all;
use maud::{Markup, html};
use pipeline::api::{ArchBuilds, BuildList, BuildRequest, BuildStatus, BuildSummary, Stream};
use serde::Deserialize;

use super::components::{self as ui, ChartBuild, Section};
use super::session::{Viewer, authorize_action};
use super::{Page, href, json_answer, see_other, wants_json};
use crate::api::builds::{BuildListQuery, build, build_list_json, compose};
use crate::api::jobs::job;
use crate::api::streams::{stream, stream_list};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;

/// Builds per page of a stream's history.
const HISTORY_PAGE_SIZE: u32 = 25;
/// Builds in the chart and the statistics: the last 30, as the issue asks.
const CHART_BUILDS: u32 = 30;
const MILLISECONDS_PER_DAY: f64 = 86_400_000.0;

/// `GET /`: every stream and arch.
pub(crate) async fn home(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    viewer.require_read()?;
    let (streams, overview) = tokio::try_join!(stream_list(&state), async {
        state.store.queue_overview().await.map_err(ApiError::from)
    })?;
    if wants_json(&headers) {
        return Ok(json_answer("/api/v1/streams", &streams));
    }
    let mut jobs: HashMap<(&str, &str), (usize, usize)> = HashMap::new();
    for (list, running) in [(&overview.running, true), (&overview.queued, false)] {
        for summary in list {
            let (Some(stream), Some(arch)) = (summary.job.stream.as_deref(), summary.job.arch.as_deref())
            else {
                continue;
            };
            let entry = jobs.entry((stream, arch)).or_default();
            if running { entry.0 += 1 } else { entry.1 += 1 }
        }
    }
    // Where the newest build left no image (it is queued, running or failed), the image clients have is
    // the last good build's.
    let last_good_ids: Vec<i64> = streams
        .items
        .iter()
        .flat_map(|stream| &stream.builds)
        .filter(|arch| !arch.latest.as_ref().is_some_and(is_good))
        .filter_map(|arch| arch.last_good_build_id)
        .collect();
    let last_good: HashMap<i64, BuildSummary> =
        try_join_all(last_good_ids.iter().map(|id| build(&state, *id)))
            .await?
            .into_iter()
            .map(|build| (build.summary.id, build.summary))
            .collect();
    let mut rows: Vec<(&Stream, &ArchBuilds)> = streams
        .items
        .iter()
        .flat_map(|stream| stream.builds.iter().map(move |arch| (stream, arch)))
        .collect();
    // Failing first; otherwise the configuration's order (the sort is stable).
    rows.sort_by_key(|(_, arch)| !is_failing(arch));
    let failing = rows.iter().filter(|(_, arch)| is_failing(arch)).count();
    let now = state.now();
    let body = html! {
        div.page-head {
            div.titles {
                h1 { "Streams" }
                p.muted {
                    (plural(streams.items.len(), "stream")) ", " (plural(rows.len(), "stream–arch pair")) " · "
                    (plural(overview.running.len(), "job")) " running, " (overview.queued.len()) " queued"
                }
            }
        }
        @if failing > 0 {
            div.banner.banner-error role="status" {
                strong { (failing) " failing" }
                "The newest build of these failed; they are listed first."
            }
        }
        div.table-wrap {
            table.responsive #streams {
                caption.visually-hidden { "Every stream and arch with its newest build" }
                thead { tr {
                    th scope="col" { "Stream" } th scope="col" { "Arch" } th scope="col" { "Status" }
                    th scope="col" { "Version" } th scope="col" { "Age" } th scope="col" { "Image digest" }
                    th scope="col" { "Git head" } th scope="col" { "Jobs" }
                } }
                tbody {
                    @for (stream, arch) in &rows {
                        @let (running, queued) = jobs.get(&(stream.name.as_str(), arch.arch.as_str())).copied().unwrap_or_default();
                        tr class=[is_failing(arch).then_some("attention")] {
                            td data-label="Stream" { a href={ "/streams/" (stream.name) } { strong { (stream.name) } } }
                            td data-label="Arch" { code { (arch.arch) } }
                            @match &arch.latest {
                                Some(latest) => {
                                    td data-label="Status" { a href={ "/builds/" (latest.id) } { (ui::status(latest.status.as_str())) } }
                                    @let image = if is_good(latest) { Some(latest) } else { arch.last_good_build_id.and_then(|id| last_good.get(&id)) };
                                    td data-label="Version" {
                                        (image.and_then(|image| image.version.as_deref()).unwrap_or("—"))
                                        @if let Some(image) = image.filter(|image| image.id != latest.id) {
                                            span.last-good { "last good: " a href={ "/builds/" (image.id) } { "#" (image.id) } }
                                        }
                                    }
                                    td data-label="Age" { (ui::time(latest.finished_at.unwrap_or(latest.created_at).milliseconds(), now)) }
                                    td data-label="Image digest" { (ui::maybe_short(image.and_then(|image| image.manifest_digest.as_deref()), "image digest")) }
                                }
                                None => {
                                    td data-label="Status" colspan="4" { span.muted { "no build yet" } }
                                }
                            }
                            td data-label="Git head" { (head_cell(stream, arch)) }
                            td data-label="Jobs" {
                                @if running + queued == 0 { span.muted { "none" } }
                                @else { (running) " running, " (queued) " queued" }
                            }
                        }
                    }
                }
            }
        }
    };
    let page = Page {
        title: "Streams".into(),
        section: Section::Streams,
        breadcrumbs: Vec::new(),
        api: Some("/api/v1/streams".into()),
        body,
    };
    Ok(page.render(&viewer, StatusCode::OK))
}

fn is_good(build: &BuildSummary) -> bool {
    matches!(build.status, BuildStatus::Succeeded | BuildStatus::Unchanged)
}

/// "1 job", "3 jobs".
fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

fn is_failing(arch: &ArchBuilds) -> bool {
    arch.latest.as_ref().is_some_and(|latest| latest.status == BuildStatus::Failed)
}

/// The branch head and whether the newest build is of it.
fn head_cell(stream: &Stream, arch: &ArchBuilds) -> Markup {
    let Some(head) = &stream.head else {
        return html! { span.muted { "not fetched yet" } };
    };
    let latest = arch.latest.as_ref().filter(|latest| latest.git_commit == head.commit);
    let state = match latest.map(|latest| latest.status) {
        Some(BuildStatus::Succeeded | BuildStatus::Unchanged) => ("built", "state-built"),
        Some(BuildStatus::Queued | BuildStatus::Running) => ("building", "state-building"),
        Some(BuildStatus::Failed) => ("failed", "state-failed"),
        Some(BuildStatus::Cancelled) | None => ("not built", "state-unbuilt"),
    };
    html! {
        span.head {
            (ui::short(&head.commit, "commit"))
            " " span class={ "tag " (state.1) } { (state.0) }
        }
    }
}

/// The filters and page of a stream's page (empty values, as forms send them, mean "any").
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamPageQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|text| text.trim().to_string()).filter(|text| !text.is_empty())
}

/// `GET /streams/{name}`.
pub(crate) async fn stream_page(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<StreamPageQuery>,
) -> Result<Response, ApiError> {
    viewer.require_read()?;
    let api = format!("/api/v1/streams/{name}");
    let stream = stream(&state, &name).await?;
    if wants_json(&headers) {
        return Ok(json_answer(&api, &stream));
    }
    let status = match non_empty(&query.status) {
        None => None,
        Some(text) => Some(BuildStatus::parse(&text).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("{text:?} is not a build status"))
        })?),
    };
    let arch = non_empty(&query.arch);
    let cursor = non_empty(&query.cursor);
    let history =
        BuildListQuery { status, arch: arch.clone(), cursor: cursor.clone(), limit: Some(HISTORY_PAGE_SIZE) };
    let recent =
        BuildListQuery { arch: arch.clone(), limit: Some(CHART_BUILDS), ..BuildListQuery::default() };
    let (history, recent) = tokio::try_join!(
        build_list_json(&state, name.clone(), history),
        build_list_json(&state, name.clone(), recent)
    )?;
    let parse = |bytes: &[u8]| {
        serde_json::from_slice::<BuildList>(bytes)
            .map_err(|error| ApiError::internal("reading a build list", &error))
    };
    let (history, recent) = (parse(&history)?, parse(&recent)?);
    let images = current_images(&state, &stream).await?;
    let now = state.now();
    let status_text = status.map(BuildStatus::as_str);
    let first = cursor
        .is_some()
        .then(|| href(&format!("/streams/{name}"), &[("status", status_text), ("arch", arch.as_deref())]));
    let older = history.next_cursor.as_deref().map(|next| {
        href(
            &format!("/streams/{name}"),
            &[("status", status_text), ("arch", arch.as_deref()), ("cursor", Some(next))],
        )
    });
    let body = html! {
        div.page-head {
            div.titles {
                h1 { (stream.name) }
                p.muted { "branch " code { (stream.branch) } " · " code { (stream.treefile) } " · priority " (stream.priority) }
            }
            @if viewer.can_write {
                form.actions method="post" action={ "/streams/" (stream.name) "/compose" } {
                    (ui::csrf_field(&viewer))
                    label.visually-hidden for="compose-arch" { "Arch to compose" }
                    select #compose-arch name="arch" {
                        option value="" { "every arch" }
                        @for arch in &stream.arches { option value=(arch) { (arch) } }
                    }
                    button.button.button-primary type="submit" { "Compose now" }
                }
            }
        }
        @if let Some(problem) = &stream.git_error {
            div.banner.banner-error { strong { "Fetching the branch fails" } pre { (problem.message) } }
        }
        @if let Some(event) = &stream.last_event {
            div.banner.banner-info { strong { "Last event" } (event.message) }
        }
        div.grid {
            section.panel aria-labelledby="images-heading" {
                h2 #images-heading { "Current images" }
                (images)
                @if let Some(head) = &stream.head {
                    p { "Branch head " (ui::short(&head.commit, "commit")) " " (head.subject.as_deref().unwrap_or("")) }
                }
            }
            section.panel aria-labelledby="health-heading" {
                h2 #health-heading { "Last " (recent.items.len()) " builds" }
                (statistics(&recent.items))
                (ui::build_chart(&recent.items.iter().rev().map(|build| ChartBuild {
                    id: build.id,
                    status: build.status.as_str(),
                    duration_ms: build_duration(build).unwrap_or(0),
                }).collect::<Vec<_>>()))
            }
        }
        section aria-labelledby="history-heading" {
            h2 #history-heading { "History" }
            form.filters method="get" action={ "/streams/" (stream.name) } {
                div {
                    label for="filter-status" { "Status" }
                    select #filter-status name="status" {
                        option value="" { "any" }
                        @for choice in BuildStatus::ALL {
                            option value=(choice.as_str()) selected[status == Some(choice)] { (choice.as_str()) }
                        }
                    }
                }
                div {
                    label for="filter-arch" { "Arch" }
                    select #filter-arch name="arch" {
                        option value="" { "any" }
                        @for choice in &stream.arches {
                            option value=(choice) selected[arch.as_deref() == Some(choice.as_str())] { (choice) }
                        }
                    }
                }
                button.button type="submit" { "Filter" }
            }
            (build_table(&history.items, now))
            (ui::pagination(first.as_deref(), older.as_deref()))
        }
    };
    let page = Page {
        title: stream.name.clone(),
        section: Section::Streams,
        breadcrumbs: vec![("Streams".into(), "/".into())],
        api: Some(api),
        body,
    };
    Ok(page.render(&viewer, StatusCode::OK))
}

/// How long a build ran, once it ended.
pub(crate) fn build_duration(build: &BuildSummary) -> Option<i64> {
    Some(build.finished_at?.milliseconds() - build.started_at?.milliseconds())
}

/// Success and failure counts, the typical duration and how often builds come.
fn statistics(builds: &[BuildSummary]) -> Markup {
    let count = |status: BuildStatus| builds.iter().filter(|build| build.status == status).count();
    let mut durations: Vec<i64> = builds.iter().filter_map(build_duration).collect();
    durations.sort_unstable();
    let median = durations.get(durations.len() / 2).copied();
    let span = match (builds.first(), builds.last()) {
        (Some(newest), Some(oldest)) if builds.len() > 1 => {
            Some((newest.created_at.milliseconds() - oldest.created_at.milliseconds()) as f64)
        }
        _ => None,
    };
    let per_day =
        span.filter(|span| *span > 0.0).map(|span| (builds.len() - 1) as f64 / (span / MILLISECONDS_PER_DAY));
    html! {
        ul.counts {
            li.count { (count(BuildStatus::Succeeded)) " succeeded" }
            li.count { (count(BuildStatus::Failed)) " failed" }
            li.count { (count(BuildStatus::Unchanged)) " unchanged" }
            @if let Some(median) = median { li.count { "median " (ui::duration(median)) } }
            @if let Some(per_day) = per_day { li.count { (format!("{per_day:.1}")) " builds a day" } }
        }
    }
}

/// Per arch, the last good build's image, digest and tags (from its compose job's payload).
async fn current_images(state: &AppState, stream: &Stream) -> Result<Markup, ApiError> {
    let mut rows = Vec::new();
    for arch in &stream.builds {
        let Some(id) = arch.last_good_build_id else {
            rows.push((arch.arch.clone(), None, Vec::new()));
            continue;
        };
        // The newest build is usually the good one: then it needs no query.
        let good = match arch.latest.as_ref().filter(|latest| latest.id == id) {
            Some(latest) => latest.clone(),
            None => build(state, id).await?.summary,
        };
        let mut tags = Vec::new();
        if let Some(job_id) = good.job_id {
            let payload = job(state, job_id).await?.payload;
            if payload["tag_version"].as_bool() == Some(true)
                && let Some(version) = &good.version
            {
                tags.push(version.clone());
            }
            tags.extend(
                payload["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|tag| tag.as_str().map(str::to_string)),
            );
        }
        rows.push((arch.arch.clone(), Some(good), tags));
    }
    Ok(html! {
        dl.facts {
            @for (arch, good, tags) in &rows {
                dt { code { (arch) } }
                dd {
                    @match good {
                        Some(good) => {
                            a href={ "/builds/" (good.id) } { (good.version.as_deref().unwrap_or("build")) }
                            " " (ui::maybe_short(good.manifest_digest.as_deref(), "image digest"))
                            @if !tags.is_empty() {
                                div.tags { @for tag in tags { span.tag { ":" (tag) } " " } }
                            }
                        }
                        None => { span.muted { "no image yet" } }
                    }
                }
            }
        }
    })
}

/// A table of builds (the stream's history).
pub(crate) fn build_table(builds: &[BuildSummary], now: i64) -> Markup {
    html! {
        @if builds.is_empty() {
            p.empty { "No builds match." }
        } @else {
            div.table-wrap {
                table.responsive #builds {
                    caption.visually-hidden { "Builds, newest first" }
                    thead { tr {
                        th scope="col" { "Build" } th scope="col" { "Arch" } th scope="col" { "Status" }
                        th scope="col" { "Version" } th scope="col" { "Commit" } th scope="col" { "Created" }
                        th.number scope="col" { "Duration" }
                    } }
                    tbody {
                        @for build in builds {
                            tr {
                                td data-label="Build" { a href={ "/builds/" (build.id) } { "#" (build.id) } }
                                td data-label="Arch" { code { (build.arch) } }
                                td data-label="Status" { (ui::status(build.status.as_str())) }
                                td data-label="Version" { (build.version.as_deref().unwrap_or("—")) }
                                td data-label="Commit" {
                                    (ui::short(&build.git_commit, "commit"))
                                    @if let Some(subject) = &build.git_subject { " " span.subject { (subject) } }
                                }
                                td.nowrap data-label="Created" { (ui::time(build.created_at.milliseconds(), now)) }
                                td.number data-label="Duration" {
                                    @match build_duration(build) { Some(ms) => (ui::duration(ms)), None => span.muted { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The form of "compose now".
#[derive(Debug, Deserialize)]
pub(crate) struct ComposeForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    arch: Option<String>,
}

/// `POST /streams/{name}/compose`: composes the branch head (every arch or one), then shows the job.
pub(crate) async fn compose_now(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Result<axum::Form<ComposeForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let form = form_or_error(form)?;
    let caller = authorize_action(&viewer, &headers, form.csrf.as_deref())?;
    let request = BuildRequest { commit: None, arch: non_empty(&form.arch), force: false };
    let answer = compose(&state, &name, &request, caller).await?;
    Ok(match answer.builds.as_slice() {
        [one] => see_other(&format!("/jobs/{}", one.job_id)),
        _ => see_other(&format!("/streams/{name}")),
    })
}

/// A form's fields, or a 400 that says what was wrong.
pub(crate) fn form_or_error<T>(form: Result<axum::Form<T>, FormRejection>) -> Result<T, ApiError> {
    form.map(|form| form.0).map_err(|rejection| {
        ApiError::bad_request("invalid_form", format!("the form is not valid: {}", rejection.body_text()))
    })
}
