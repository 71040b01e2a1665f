//! Two builds of a stream side by side: what each is, the package changes from the first to the second
//! (from their package lists) and what a client of the first downloads to get the second. Without two
//! builds chosen, a form to choose them from the stream's recent builds.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use pipeline::api::{Build, BuildList};
use pipeline::jobs::record::package_diff;
use serde::{Deserialize, Serialize};

use super::build::{changes, diff_table};
use super::components::{self as ui, Section};
use super::layers;
use super::session::Viewer;
use super::{Page, json_answer, wants_json};
use crate::api::builds::{BuildListQuery, build, build_list_json};
use crate::api::configured_stream;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;

/// Builds offered in the compare form's lists.
const CHOICES: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CompareQuery {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// What `Accept: application/json` gets: both builds as the API gives them, and the diff between them.
#[derive(Debug, Serialize)]
struct Comparison<'a> {
    from: &'a Build,
    to: &'a Build,
    package_diff: serde_json::Value,
}

fn build_id(text: &Option<String>) -> Result<Option<i64>, ApiError> {
    match text.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .trim_start_matches('#')
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request("invalid_query", format!("{text:?} is not a build id"))),
    }
}

/// `GET /compare?stream=NAME&from=ID&to=ID`.
pub(crate) async fn compare_page(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Query(query): Query<CompareQuery>,
) -> Result<Response, ApiError> {
    viewer.require_read()?;
    let stream = match query.stream.as_deref().filter(|name| !name.is_empty()) {
        Some(name) => name.to_string(),
        None => state.config.streams.first().map(|stream| stream.name.clone()).unwrap_or_default(),
    };
    configured_stream(&state.config, &stream)?;
    let (from, to) = (build_id(&query.from)?, build_id(&query.to)?);
    let choices = build_list_json(
        &state,
        stream.clone(),
        BuildListQuery { limit: Some(CHOICES), ..BuildListQuery::default() },
    )
    .await?;
    let choices: BuildList = serde_json::from_slice(&choices)
        .map_err(|error| ApiError::internal("reading a build list", &error))?;
    let form = chooser(&stream, &choices, from, to);
    let (body, api) = match (from, to) {
        (Some(from), Some(to)) => {
            let (from, to) = tokio::try_join!(build(&state, from), build(&state, to))?;
            for one in [&from, &to] {
                if one.summary.stream != stream {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("build {} is of stream {}, not {stream}", one.summary.id, one.summary.stream),
                    ));
                }
            }
            let diff = package_diff(
                from.packages.as_deref().unwrap_or_default(),
                to.packages.as_deref().unwrap_or_default(),
            );
            let api = format!("/api/v1/builds/{}", to.summary.id);
            if wants_json(&headers) {
                return Ok(json_answer(&api, &Comparison { from: &from, to: &to, package_diff: diff }));
            }
            (comparison(&from, &to, &diff, state.now(), form), api)
        }
        _ => {
            if wants_json(&headers) {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "give two builds: ?stream=NAME&from=ID&to=ID",
                ));
            }
            (html! { h1 { "Compare builds" } (form) }, format!("/api/v1/streams/{stream}/builds"))
        }
    };
    let page = Page {
        title: format!("Compare builds of {stream}"),
        section: Section::Streams,
        breadcrumbs: vec![("Streams".into(), "/".into()), (stream.clone(), format!("/streams/{stream}"))],
        api: Some(api),
        body,
    };
    Ok(page.render(&viewer, StatusCode::OK))
}

fn chooser(stream: &str, choices: &BuildList, from: Option<i64>, to: Option<i64>) -> Markup {
    let options = |selected: Option<i64>| {
        html! {
            @for choice in &choices.items {
                option value=(choice.id) selected[selected == Some(choice.id)] {
                    "#" (choice.id) " " (choice.arch) " " (choice.status.as_str())
                    @if let Some(version) = &choice.version { " " (version) }
                }
            }
        }
    };
    html! {
        form.filters method="get" action="/compare" {
            input type="hidden" name="stream" value=(stream);
            div { label for="compare-from" { "From" } select #compare-from name="from" { (options(from)) } }
            div { label for="compare-to" { "To" } select #compare-to name="to" { (options(to)) } }
            button.button type="submit" { "Compare" }
        }
    }
}

fn comparison(from: &Build, to: &Build, diff: &serde_json::Value, now: i64, form: Markup) -> Markup {
    let side = |build: &Build| {
        let summary = &build.summary;
        html! {
            section.panel {
                h2 { a href={ "/builds/" (summary.id) } { "Build " (summary.id) } " " (ui::status(summary.status.as_str())) }
                dl.facts {
                    dt { "Arch" } dd { code { (summary.arch) } }
                    dt { "Version" } dd { (summary.version.as_deref().unwrap_or("—")) }
                    dt { "Commit" } dd { (ui::short(&summary.git_commit, "commit")) " " (summary.git_subject.as_deref().unwrap_or("")) }
                    dt { "Digest" } dd { (ui::maybe_short(summary.manifest_digest.as_deref(), "image digest")) }
                    dt { "Image size" } dd { (ui::bytes(summary.image_bytes)) }
                    dt { "Packages" } dd { (build.packages.as_ref().map_or(0, Vec::len)) }
                    dt { "Created" } dd { (ui::time(summary.created_at.milliseconds(), now)) }
                }
            }
        }
    };
    let direct = to.summary.previous_build_id == Some(from.summary.id);
    html! {
        div.page-head { div.titles { h1 { "Build " (from.summary.id) " → build " (to.summary.id) } } }
        (form)
        div.compare { (side(from)) (side(to)) }
        section.panel aria-labelledby="download-heading" {
            h2 #download-heading { "Download" }
            @if let (Some(held), Some(wanted)) = (&from.layers, &to.layers) {
                @let (missing, bytes) = layers::download(held, wanted);
                p { "A client of build " (from.summary.id) " downloads " strong { (ui::bytes(Some(bytes))) }
                    " (" (missing.len()) " of " (wanted.len()) " layers) to update to build " (to.summary.id)
                    ", of " (ui::bytes(to.summary.image_bytes)) "." }
            } @else if direct {
                p { "A client of build " (from.summary.id) " downloads " strong { (ui::bytes(to.summary.download_bytes)) }
                    " to update to build " (to.summary.id) " (of " (ui::bytes(to.summary.image_bytes)) ")." }
            } @else {
                p { "Build " (to.summary.id) " was measured against "
                    @match to.summary.previous_build_id {
                        Some(previous) => { a href={ "/builds/" (previous) } { "build " (previous) } }
                        None => "no build",
                    }
                    ", not build " (from.summary.id) ": a client of that build downloads "
                    (ui::bytes(to.summary.download_bytes)) "; from build " (from.summary.id)
                    " it is at most the whole image, " (ui::bytes(to.summary.image_bytes)) "." }
            }
        }
        section aria-labelledby="compare-packages-heading" {
            h2 #compare-packages-heading { "Package changes" }
            (diff_table("compare-packages", &changes(Some(diff))))
        }
        @if let Some(wanted) = &to.layers {
            section aria-labelledby="compare-layers-heading" {
                h2 #compare-layers-heading { "Layers of build " (to.summary.id) }
                @let from_label = format!("build #{}", from.summary.id);
                (layers::table("compare-layers", wanted, from.layers.as_deref().map(|held| (from_label.as_str(), held))))
            }
        }
    }
}
