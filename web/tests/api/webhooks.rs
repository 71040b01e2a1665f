//! `POST /api/v1/hooks/git` with GitHub, GitLab and Forgejo events: signed pushes wake the scheduler's
//! fetch, anything unsigned or wrongly signed is 401 and wakes nothing.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hmac::{Hmac, Mac};
use pipeline::api::{WebhookEventKind, WebhookResult};
use serde_json::json;
use sha2::Sha256;

use crate::harness::{Options, STREAM, TestServer, WEBHOOK_SECRET};

const HOOK: &str = "/api/v1/hooks/git";
/// Long enough for a notification sent before the wait to be seen; a missing one is waited out.
const NOTIFY_WAIT: Duration = Duration::from_millis(300);

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn push_body(branch: &str, after: &str) -> Vec<u8> {
    json!({
        "object_kind": "push",
        "ref": format!("refs/heads/{branch}"),
        "before": "0000000000000000000000000000000000000000",
        "after": after,
    })
    .to_string()
    .into_bytes()
}

fn hook(headers: &[(&str, String)], body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post(HOOK).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(Body::from(body)).unwrap()
}

async fn fetch_requested(server: &TestServer) -> bool {
    tokio::time::timeout(NOTIFY_WAIT, server.state.store.fetch_requests().notified()).await.is_ok()
}

#[tokio::test]
async fn signed_pushes_of_every_forge_wake_the_fetch() {
    let server = TestServer::start().await;
    let head = server.commits.last().unwrap();
    let body = push_body(STREAM, head);
    let signed = signature(WEBHOOK_SECRET, &body);
    let forges: [(&str, Vec<(&str, String)>); 3] = [
        (
            "GitHub",
            vec![
                ("x-github-event", "push".into()),
                ("x-github-delivery", "d-1".into()),
                ("x-hub-signature-256", format!("sha256={signed}")),
            ],
        ),
        ("GitLab", vec![("x-gitlab-event", "Push Hook".into()), ("x-gitlab-token", WEBHOOK_SECRET.into())]),
        (
            "Forgejo",
            vec![
                ("x-forgejo-event", "push".into()),
                ("x-github-event", "push".into()),
                ("x-forgejo-signature", signed.clone()),
            ],
        ),
    ];
    for (forge, headers) in forges {
        let response = server.send(hook(&headers, body.clone())).await;
        assert_eq!(response.status, 202, "{forge}: {}", response.text());
        let result: WebhookResult = response.parse();
        assert_eq!((result.event, result.forge.as_str()), (WebhookEventKind::Push, forge));
        assert_eq!(result.streams, [STREAM]);
        assert!(result.message.contains("fetching the remote now"), "{}", result.message);
        assert!(fetch_requested(&server).await, "{forge}: the scheduler was woken");
    }
}

#[tokio::test]
async fn bad_or_missing_signatures_are_401_and_wake_nothing() {
    let server = TestServer::start().await;
    let body = push_body(STREAM, server.commits.last().unwrap());
    let cases: [(&str, Vec<(&str, String)>); 4] = [
        ("missing_signature", vec![("x-github-event", "push".into())]),
        (
            "bad_signature",
            vec![
                ("x-github-event", "push".into()),
                ("x-hub-signature-256", format!("sha256={}", signature("another secret", &body))),
            ],
        ),
        ("bad_signature", vec![("x-gitlab-event", "Push Hook".into()), ("x-gitlab-token", "guess".into())]),
        ("bad_signature", vec![("x-forgejo-event", "push".into()), ("x-forgejo-signature", "00".repeat(32))]),
    ];
    for (code, headers) in cases {
        let message = server.send(hook(&headers, body.clone())).await.assert_error(401, code);
        assert!(message.contains("webhook-secret-file"), "{message}");
    }
    assert!(!fetch_requested(&server).await, "no fetch was asked for");
    server.send(hook(&[], body)).await.assert_error(400, "unknown_forge");
}

#[tokio::test]
async fn pings_other_events_and_other_branches() {
    let server = TestServer::start().await;
    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 1}).to_string().into_bytes();
    let headers = [
        ("x-github-event", "ping".to_string()),
        ("x-hub-signature-256", format!("sha256={}", signature(WEBHOOK_SECRET, &ping))),
    ];
    let response = server.send(hook(&headers, ping)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.parse::<WebhookResult>().event, WebhookEventKind::Ping);

    let issue = json!({"action": "opened"}).to_string().into_bytes();
    let headers = [
        ("x-github-event", "issues".to_string()),
        ("x-hub-signature-256", format!("sha256={}", signature(WEBHOOK_SECRET, &issue))),
    ];
    let response = server.send(hook(&headers, issue)).await;
    assert_eq!(response.status, 202);
    let result: WebhookResult = response.parse();
    assert_eq!(result.event, WebhookEventKind::Ignored);
    assert!(result.message.contains("push events only"), "{}", result.message);

    let other = push_body("feature/x", server.commits.last().unwrap());
    let headers = [
        ("x-github-event", "push".to_string()),
        ("x-hub-signature-256", format!("sha256={}", signature(WEBHOOK_SECRET, &other))),
    ];
    let result: WebhookResult = server.send(hook(&headers, other)).await.parse();
    assert_eq!(result.event, WebhookEventKind::Ignored);
    assert!(result.message.contains("no stream builds refs/heads/feature/x"), "{}", result.message);
    assert!(!fetch_requested(&server).await, "neither wakes the fetch");
}

#[tokio::test]
async fn webhooks_without_a_configured_secret_are_refused() {
    let server = TestServer::with(Options { webhook_secret: false, ..Options::default() }).await;
    let body = push_body(STREAM, server.commits.last().unwrap());
    let headers =
        [("x-gitlab-event", "Push Hook".to_string()), ("x-gitlab-token", WEBHOOK_SECRET.to_string())];
    let message = server.send(hook(&headers, body)).await.assert_error(403, "webhooks_disabled");
    assert!(message.contains("webhook-secret-file or webhook-secret-env"), "{message}");
    assert!(!fetch_requested(&server).await);
}

#[tokio::test]
async fn webhook_bodies_up_to_25_mib_are_read_and_larger_ones_are_413() {
    let server = TestServer::start().await;
    // Larger than the API's 1 MiB: the hook's own limit applies.
    let mut large = json!({"ref": format!("refs/heads/{STREAM}"), "before": "0".repeat(40), "after": server.commits[0], "padding": "x".repeat(2 * 1024 * 1024)})
        .to_string()
        .into_bytes();
    let headers = [
        ("x-github-event", "push".to_string()),
        ("x-hub-signature-256", format!("sha256={}", signature(WEBHOOK_SECRET, &large))),
    ];
    assert_eq!(server.send(hook(&headers, large.clone())).await.status, 202);
    large.resize(pipeline::webhook::MAXIMUM_BODY_BYTES + 1, b' ');
    let message = server.send(hook(&headers, large)).await.assert_error(413, "payload_too_large");
    assert!(message.contains("26214400 bytes"), "{message}");
}
