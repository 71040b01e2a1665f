//! The OpenAPI 3.1 document of the API, generated from the handlers' annotations (utoipa) and served at
//! `/api/v1/openapi.json`.

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The document's frame: information, tags, the bearer scheme required by default.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "arbor",
        description = "The API of `arbor serve`, a compose server for image-based Linux (ostree, bootc): streams \
                       (branches composed into images), builds, jobs and their logs, workers and tokens.\n\n\
                       Authentication: `Authorization: Bearer arbor_...` with a token's scopes: `read`, `write` \
                       (compose, retry, cancel; includes read), `admin` (tokens, workers; includes write). Worker \
                       tokens (`worker`) are valid only on the worker API. With `public-read`, GETs of streams, \
                       builds and jobs need no token.\n\n\
                       Errors are `{\"error\": {\"code\": ..., \"message\": ...}}`. Lists are `{\"items\": [...], \
                       \"next_cursor\": ...}`: pass `next_cursor` as `cursor` for the next page. Times are RFC \
                       3339 in UTC.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags(
        (name = "streams", description = "Branches composed into images"),
        (name = "builds", description = "One compose of a stream's commit for one arch"),
        (name = "jobs", description = "The queue: composes and joins, their logs, cancellation"),
        (name = "workers", description = "Embedded and remote workers"),
        (name = "tokens", description = "API tokens"),
        (name = "webhooks", description = "Push events of GitHub, GitLab and Forgejo"),
        (name = "operations", description = "Health, readiness and metrics"),
    ),
)]
pub(crate) struct ApiDoc;

#[derive(Debug)]
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("arbor_ and 32 characters")
                    .description(Some("An arbor API token (`arbor token create`, or POST /api/v1/tokens)"))
                    .build(),
            ),
        );
    }
}

/// The whole document, as served.
pub fn openapi() -> Document {
    crate::router::documented_routes().1
}
