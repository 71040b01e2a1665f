//! Tokens and scopes on the public API, `public-read`, and the token endpoints.

use axum::body::Body;
use axum::http::{Method, Request, header};
use pipeline::api::{CreatedToken, Token, TokenList};
use pipeline::store::{NewToken, Scope};
use serde_json::json;

use crate::harness::{Options, STREAM, TestServer};

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let server = TestServer::start().await;
    let response = server.call(Method::GET, "/api/v1/streams", None, None).await;
    let message = response.assert_error(401, "missing_token");
    assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert!(message.contains("Authorization: Bearer"), "{message}");
    let unknown = "arbor_00000000000000000000000000000000";
    server.get("/api/v1/streams", unknown).await.assert_error(401, "invalid_token");
    server.get("/api/v1/streams", "not-an-arbor-token").await.assert_error(401, "invalid_token");
    let basic = Request::get("/api/v1/streams")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .unwrap();
    server.send(basic).await.assert_error(401, "invalid_authorization");
    for path in [
        "/api/v1/jobs",
        "/api/v1/builds/1",
        &format!("/api/v1/streams/{STREAM}/builds"),
        "/api/v1/jobs/1/log",
    ] {
        server.call(Method::GET, path, None, None).await.assert_error(401, "missing_token");
    }
    server.call(Method::POST, "/api/v1/jobs/1/cancel", None, None).await.assert_error(401, "missing_token");
}

#[tokio::test]
async fn scopes_include_the_lower_ones_and_worker_tokens_stay_on_the_worker_api() {
    let server = TestServer::start().await;
    let compose = format!("/api/v1/streams/{STREAM}/builds");
    let message = server.post(&compose, &server.tokens.read, None).await.assert_error(403, "missing_scope");
    assert!(message.contains("\"reader\"") && message.contains("needs write (or admin)"), "{message}");
    assert_eq!(server.post(&compose, &server.tokens.write, None).await.status, 202);
    assert_eq!(server.post(&compose, &server.tokens.admin, None).await.status, 202, "admin includes write");
    assert_eq!(server.get("/api/v1/jobs", &server.tokens.write).await.status, 200, "write includes read");
    server.get("/api/v1/tokens", &server.tokens.write).await.assert_error(403, "missing_scope");
    server.get("/api/v1/workers", &server.tokens.read).await.assert_error(403, "missing_scope");
    let message =
        server.get("/api/v1/streams", &server.tokens.worker).await.assert_error(403, "worker_token");
    assert!(message.contains("/api/v1/worker/"), "{message}");
    server.post(&compose, &server.tokens.worker, None).await.assert_error(403, "worker_token");
}

#[tokio::test]
async fn public_read_allows_anonymous_reads_of_the_public_api_only() {
    let server = TestServer::with(Options { public_read: true, ..Options::default() }).await;
    for path in ["/api/v1/streams", "/api/v1/jobs", &format!("/api/v1/streams/{STREAM}/builds")] {
        let response = server.call(Method::GET, path, None, None).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
    }
    let head = server.call(Method::HEAD, "/api/v1/streams", None, None).await;
    assert_eq!(head.status, 200);
    server
        .call(Method::POST, &format!("/api/v1/streams/{STREAM}/builds"), None, None)
        .await
        .assert_error(401, "missing_token");
    server.call(Method::GET, "/api/v1/tokens", None, None).await.assert_error(401, "missing_token");
    server.call(Method::GET, "/api/v1/workers", None, None).await.assert_error(401, "missing_token");
    // A presented token is checked even where none is needed.
    server
        .get("/api/v1/streams", "arbor_00000000000000000000000000000000")
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn tokens_are_created_once_listed_and_revoked() {
    let server = TestServer::start().await;
    let body = json!({"name": "release-bot", "scopes": ["write"]});
    let response = server.post("/api/v1/tokens", &server.tokens.admin, Some(body)).await;
    assert_eq!(response.status, 201, "{}", response.text());
    let created: CreatedToken = response.parse();
    assert!(created.secret.starts_with("arbor_") && created.secret.len() == 38);
    assert_eq!(
        (created.token.name.as_str(), created.token.scopes.as_slice()),
        ("release-bot", &[Scope::Write][..])
    );
    assert_eq!(
        server.post(&format!("/api/v1/streams/{STREAM}/builds"), &created.secret, None).await.status,
        202
    );

    let list: TokenList = server.get("/api/v1/tokens", &server.tokens.admin).await.parse();
    assert_eq!(list.items[0].id, created.token.id, "newest first");
    assert_eq!(list.items.len(), 5);
    assert!(!server.get("/api/v1/tokens", &server.tokens.admin).await.text().contains(&created.secret));

    let revoked: Token = server
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", created.token.id),
            Some(&server.tokens.admin),
            None,
        )
        .await
        .parse();
    assert!(revoked.revoked_at.is_some());
    // Cached a moment ago, refused at once.
    server.get("/api/v1/jobs", &created.secret).await.assert_error(401, "invalid_token");
    server
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", created.token.id),
            Some(&server.tokens.admin),
            None,
        )
        .await
        .assert_error(409, "already_revoked");
    server
        .call(Method::DELETE, "/api/v1/tokens/999", Some(&server.tokens.admin), None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn token_requests_are_checked() {
    let server = TestServer::start().await;
    let cases = [
        (json!({"name": " ", "scopes": ["read"]}), 422, "invalid_name"),
        (json!({"name": "x", "scopes": []}), 422, "invalid_scopes"),
        (json!({"name": "x", "scopes": ["worker", "read"]}), 422, "invalid_scopes"),
        (
            json!({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}),
            422,
            "invalid_expiry",
        ),
        (json!({"name": "x", "scopes": ["root"]}), 400, "invalid_body"),
        (json!({"name": "x", "scopes": ["read"], "expires_at": "tomorrow"}), 400, "invalid_body"),
        (json!({"name": "x"}), 400, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let message = server
            .post("/api/v1/tokens", &server.tokens.admin, Some(body.clone()))
            .await
            .assert_error(status, code);
        assert!(!message.is_empty(), "{body}");
    }
    let worker: CreatedToken = server
        .post(
            "/api/v1/tokens",
            &server.tokens.admin,
            Some(json!({"name": "builder-2", "scopes": ["worker"]})),
        )
        .await
        .parse();
    server.get("/api/v1/jobs", &worker.secret).await.assert_error(403, "worker_token");
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let server = TestServer::start().await;
    let expires_at = server.clock_now() + 60_000;
    let new = NewToken { name: "short".into(), scopes: vec![Scope::Read], expires_at: Some(expires_at) };
    let token = server.store.create_token(&new).await.unwrap().plaintext;
    assert_eq!(server.get("/api/v1/jobs", &token).await.status, 200);
    server.clock.advance(std::time::Duration::from_secs(61));
    server.get("/api/v1/jobs", &token).await.assert_error(401, "invalid_token");
}

impl TestServer {
    fn clock_now(&self) -> i64 {
        use pipeline::Clock;
        self.clock.now()
    }
}
