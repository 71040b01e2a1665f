//! `/healthz` (the process answers) and `/readyz` (it can serve: the database answers within
//! [`READINESS_TIMEOUT`] and has every migration, and the git mirror exists), for load balancers and
//! orchestrators. Both are unauthenticated and say nothing secret.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pipeline::api::{Health, Readiness, ReadinessCheck};

use crate::state::AppState;

/// How long the database may take to answer a readiness check.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "get_health",
    security(()),
    responses((status = 200, description = "The process answers", body = Health)),
)]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok".to_string() })
}

/// Whether the process can serve requests.
///
/// 503 with the failing checks otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "get_readiness",
    security(()),
    responses(
        (status = 200, description = "Every check passed", body = Readiness),
        (status = 503, description = "A check failed; its message says why", body = Readiness),
    ),
)]
pub(crate) async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut checks = Vec::new();
    match tokio::time::timeout(READINESS_TIMEOUT, state.store.database_status()).await {
        Err(_) => checks.push(check(
            "database",
            false,
            format!("{} did not answer within {READINESS_TIMEOUT:?}", state.store.database()),
        )),
        Ok(Err(error)) => {
            tracing::warn!(error = %crate::error::chain(&error), "readiness: the database does not answer");
            checks.push(check("database", false, format!("the database does not answer: {error}")));
        }
        Ok(Ok(status)) => {
            checks.push(check("database", true, "the database answers".to_string()));
            let pending = &status.pending_migrations;
            checks.push(if pending.is_empty() {
                check("migrations", true, "every migration is applied".to_string())
            } else {
                let versions = pending.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
                check(
                    "migrations",
                    false,
                    format!(
                        "migrations {versions} are not applied: `arbor serve` applies them when it starts"
                    ),
                )
            });
        }
    }
    let mirror = state.mirror.directory();
    let mirror_exists = tokio::fs::try_exists(mirror.join("HEAD")).await.unwrap_or(false);
    checks.push(if mirror_exists {
        check("git_mirror", true, format!("the git mirror is at {}", mirror.display()))
    } else {
        check(
            "git_mirror",
            false,
            format!("the git mirror {} is missing: restart arbor to create it", mirror.display()),
        )
    });
    let ready = checks.iter().all(|check| check.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, checks }))
}

fn check(name: &str, ok: bool, message: String) -> ReadinessCheck {
    ReadinessCheck { name: name.to_string(), ok, message }
}
