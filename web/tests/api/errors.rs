//! Malformed requests get answers that say what was wrong: JSON, content types, body sizes, query
//! strings, paths, cursors, unknown routes and methods.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

use crate::harness::{STREAM, TestServer};

fn compose_request(server: &TestServer, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post(format!("/api/v1/streams/{STREAM}/builds"))
        .header(header::AUTHORIZATION, format!("Bearer {}", server.tokens.write));
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(body.into()).unwrap()
}

#[tokio::test]
async fn malformed_json_is_400_with_the_parsers_message() {
    let server = TestServer::start().await;
    let message = server
        .send(compose_request(&server, Some("application/json"), "{\"commit\": "))
        .await
        .assert_error(400, "invalid_json");
    assert!(message.contains("EOF while parsing a value at line 1 column 11"), "{message}");
    let message = server
        .send(compose_request(&server, Some("application/json"), r#"{"force": "yes"}"#))
        .await
        .assert_error(400, "invalid_body");
    assert!(message.contains("invalid type: string \"yes\", expected a boolean"), "{message}");
    let message = server
        .send(compose_request(&server, Some("application/json"), r#"{"comit": null}"#))
        .await
        .assert_error(400, "invalid_body");
    assert!(
        message.contains("unknown field `comit`, expected one of `commit`, `arch`, `force`"),
        "{message}"
    );
    let message = server
        .send(compose_request(&server, Some("text/plain"), "{}"))
        .await
        .assert_error(415, "unsupported_media_type");
    assert!(message.contains("Content-Type: application/json"), "{message}");
    // An empty body means the defaults, whatever its type.
    assert_eq!(server.send(compose_request(&server, None, "")).await.status, 202);
}

#[tokio::test]
async fn oversized_bodies_are_413_naming_the_limit() {
    let server = TestServer::start().await;
    let body = format!("{{\"commit\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let message = server
        .send(compose_request(&server, Some("application/json"), body))
        .await
        .assert_error(413, "payload_too_large");
    assert_eq!(message, "the request body is larger than the 1048576 bytes this endpoint accepts");
    let body = json!({"name": "x".repeat(1024 * 1024), "scopes": ["read"]});
    server
        .post("/api/v1/tokens", &server.tokens.admin, Some(body))
        .await
        .assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn queries_paths_and_cursors_are_checked() {
    let server = TestServer::start().await;
    let token = &server.tokens.read;
    let builds = format!("/api/v1/streams/{STREAM}/builds");
    let message = server.get(&format!("{builds}?limit=0"), token).await.assert_error(400, "invalid_query");
    assert!(message.contains("1 to 500"), "{message}");
    server.get(&format!("{builds}?limit=501"), token).await.assert_error(400, "invalid_query");
    let message = server.get(&format!("{builds}?limit=ten"), token).await.assert_error(400, "invalid_query");
    assert!(message.contains("limit"), "{message}");
    let message =
        server.get(&format!("{builds}?status=great"), token).await.assert_error(400, "invalid_query");
    assert!(message.contains("unknown variant `great`"), "{message}");
    let message =
        server.get(&format!("{builds}?stauts=failed"), token).await.assert_error(400, "invalid_query");
    assert!(message.contains("unknown field `stauts`"), "{message}");
    let message =
        server.get(&format!("{builds}?cursor=j10"), token).await.assert_error(400, "invalid_cursor");
    assert!(message.contains("start again without a cursor"), "{message}");
    server.get("/api/v1/jobs?state=sleeping", token).await.assert_error(400, "invalid_query");
    server.get("/api/v1/jobs/x", token).await.assert_error(400, "invalid_path");
    server.get("/api/v1/jobs/1/log?after=-1", token).await.assert_error(400, "invalid_query");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = TestServer::start().await;
    let message =
        server.get("/api/v1/nothing-here", &server.tokens.read).await.assert_error(404, "not_found");
    assert!(
        message.contains("GET /api/v1/nothing-here") && message.contains("/api/v1/openapi.json"),
        "{message}"
    );
    let response = server.call(Method::DELETE, "/api/v1/streams", Some(&server.tokens.admin), None).await;
    response.assert_error(405, "method_not_allowed");
    // The worker API is served on the same router, with the same error answers.
    let message = server
        .post("/api/v1/worker/jobs/claim", &server.tokens.worker, Some(json!({})))
        .await
        .assert_error(400, "invalid_body");
    assert!(message.contains("missing field `worker_id`"), "{message}");
    server.get("/api/v1/worker/nothing-here", &server.tokens.worker).await.assert_error(404, "not_found");
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let server = TestServer::start().await;
    let response = server.get("/api/v1/streams", &server.tokens.read).await;
    assert_eq!(response.headers["x-request-id"].len(), 36, "a UUID");
    let request =
        Request::get("/healthz").header("x-request-id", "from-the-proxy").body(Body::empty()).unwrap();
    assert_eq!(server.send(request).await.headers["x-request-id"], "from-the-proxy");
}

#[tokio::test]
async fn json_is_compressed_for_clients_that_ask() {
    let server = TestServer::start().await;
    let request =
        Request::get("/api/v1/openapi.json").header("accept-encoding", "gzip").body(Body::empty()).unwrap();
    let response = server.send(request).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-encoding"], "gzip");
    let request =
        Request::get("/api/v1/openapi.json").header("accept-encoding", "br").body(Body::empty()).unwrap();
    assert_eq!(server.send(request).await.headers["content-encoding"], "br");
    let plain = server.send(Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await;
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(plain.json()["openapi"], "3.1.0");
}
