//! Webhook tests: realistic payloads of each forge, signed with HMACs computed once with
//! `openssl dgst -sha256 -hmac arbor-webhook-test-secret < FILE` and hardcoded here.

use super::*;

const SECRET: &str = "arbor-webhook-test-secret";
const GITHUB_PUSH: &[u8] = include_bytes!("testdata/github-push.json");
const GITHUB_PUSH_HMAC: &str = "dac317e085c3ba7234b60332d1c6796e3b8bccd0385e4a2c25e26b9154d3c9fb";
const GITHUB_DELETE: &[u8] = include_bytes!("testdata/github-delete.json");
const GITHUB_DELETE_HMAC: &str = "c4d77cb40715367a0a19eb8b5062ea4827a02113d7bd05a5e278104cbfb8cb1d";
const GITHUB_PING: &[u8] = include_bytes!("testdata/github-ping.json");
const GITHUB_PING_HMAC: &str = "58cb883f40a991da89b50f43ffe9776fae57461f37f459e2a2ebd9436e694299";
const GITLAB_PUSH: &[u8] = include_bytes!("testdata/gitlab-push.json");
const GITLAB_DELETE: &[u8] = include_bytes!("testdata/gitlab-delete.json");
const FORGEJO_PUSH: &[u8] = include_bytes!("testdata/forgejo-push.json");
const FORGEJO_PUSH_HMAC: &str = "8a0d699ade493a7c0ff21f31a85c4867ba8d3735dd6d48e1e033d52bec9ad0be";

fn headers(pairs: &[(&str, &str)]) -> WebhookHeaders {
    pairs.iter().copied().collect()
}

fn commit(text: &str) -> Option<CommitId> {
    Some(CommitId::parse(text).unwrap())
}

#[test]
fn githubs_documented_test_vector_verifies() {
    let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let secret = Secret::new("It's a Secret to Everybody");
    let request = headers(&[("X-Hub-Signature-256", signature)]);
    assert_eq!(verify(Forge::GitHub, &request, b"Hello, World!", &secret), Ok(()));
    assert!(verify(Forge::GitHub, &request, b"Hello, World?", &secret).is_err());
}

#[test]
fn pushes_of_every_forge_are_parsed() {
    let github_signature = format!("sha256={GITHUB_PUSH_HMAC}");
    let github_delete_signature = format!("sha256={GITHUB_DELETE_HMAC}");
    let forgejo_compatible_signature = format!("sha256={FORGEJO_PUSH_HMAC}");
    let cases: Vec<(&str, WebhookHeaders, &[u8], PushEvent)> = vec![
        (
            "GitHub push",
            headers(&[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                ("X-Hub-Signature-256", &github_signature),
                ("User-Agent", "GitHub-Hookshot/044aadd"),
            ]),
            GITHUB_PUSH,
            PushEvent {
                forge: Forge::GitHub,
                reference: "refs/heads/testing-devel".into(),
                before: commit("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
                after: commit("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"),
                deleted: false,
                delivery: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
            },
        ),
        (
            "GitHub branch deletion",
            headers(&[("x-github-event", "push"), ("x-hub-signature-256", &github_delete_signature)]),
            GITHUB_DELETE,
            PushEvent {
                forge: Forge::GitHub,
                reference: "refs/heads/next".into(),
                before: commit("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"),
                after: None,
                deleted: true,
                delivery: None,
            },
        ),
        (
            "GitLab push",
            headers(&[
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Token", SECRET),
                ("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e"),
                ("Idempotency-Key", "f5e5f430-f57b-4e6e-9fac-d9128cd7232f"),
            ]),
            GITLAB_PUSH,
            PushEvent {
                forge: Forge::GitLab,
                reference: "refs/heads/stable".into(),
                before: commit("95790bf891e76fee5e1747ab589903a6a1f80f22"),
                after: commit("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
                deleted: false,
                delivery: Some("f5e5f430-f57b-4e6e-9fac-d9128cd7232f".into()),
            },
        ),
        (
            "GitLab branch deletion",
            headers(&[
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Token", SECRET),
                ("X-Gitlab-Event-UUID", "0e1b7f0c-2d2b-4c55-b1b5-bd6f5a5a7c11"),
            ]),
            GITLAB_DELETE,
            PushEvent {
                forge: Forge::GitLab,
                reference: "refs/heads/old-stream".into(),
                before: commit("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
                after: None,
                deleted: true,
                delivery: Some("0e1b7f0c-2d2b-4c55-b1b5-bd6f5a5a7c11".into()),
            },
        ),
        (
            // Forgejo sends its own, Gitea's and GitHub's headers; its own win.
            "Forgejo branch creation",
            headers(&[
                ("X-GitHub-Event", "push"),
                ("X-Gitea-Event", "push"),
                ("X-Forgejo-Event", "push"),
                ("X-Forgejo-Delivery", "2c5b8c28-8a1f-4b1e-9d5e-1c0a7e8c9d10"),
                ("X-Gitea-Delivery", "2c5b8c28-8a1f-4b1e-9d5e-1c0a7e8c9d10"),
                ("X-Forgejo-Signature", FORGEJO_PUSH_HMAC),
                ("X-Gitea-Signature", FORGEJO_PUSH_HMAC),
                ("X-Hub-Signature-256", &forgejo_compatible_signature),
            ]),
            FORGEJO_PUSH,
            PushEvent {
                forge: Forge::Forgejo,
                reference: "refs/heads/testing-devel".into(),
                before: None,
                after: commit("b8d1d7a3d4b3e0f1c2a9e8d7c6b5a4f3e2d1c0b9"),
                deleted: false,
                delivery: Some("2c5b8c28-8a1f-4b1e-9d5e-1c0a7e8c9d10".into()),
            },
        ),
        (
            "Gitea push, signed only GitHub-style",
            headers(&[
                ("X-Gitea-Event", "push"),
                ("X-Gitea-Signature", ""),
                ("X-Hub-Signature-256", &forgejo_compatible_signature),
            ]),
            FORGEJO_PUSH,
            PushEvent {
                forge: Forge::Gitea,
                reference: "refs/heads/testing-devel".into(),
                before: None,
                after: commit("b8d1d7a3d4b3e0f1c2a9e8d7c6b5a4f3e2d1c0b9"),
                deleted: false,
                delivery: None,
            },
        ),
    ];
    for (name, request, body, expected) in cases {
        let event =
            receive(&request, body, &Secret::new(SECRET)).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(event, WebhookEvent::Push(expected.clone()), "{name}");
        assert_eq!(event.into_push().unwrap().branch(), expected.branch(), "{name}");
    }
}

#[test]
fn pings_and_other_events_are_recognized() {
    let secret = Secret::new(SECRET);
    let ping_signature = format!("sha256={GITHUB_PING_HMAC}");
    let ping = headers(&[
        ("X-GitHub-Event", "ping"),
        ("X-GitHub-Delivery", "d1"),
        ("X-Hub-Signature-256", &ping_signature),
    ]);
    let event = receive(&ping, GITHUB_PING, &secret).unwrap();
    assert_eq!(event, WebhookEvent::Ping { forge: Forge::GitHub, delivery: Some("d1".into()) });
    assert_eq!(event.into_push(), Err(WebhookError::NotAPush { forge: Forge::GitHub, event: "ping".into() }));

    let issue = headers(&[("X-Gitlab-Event", "Issue Hook"), ("X-Gitlab-Token", SECRET)]);
    let event = receive(&issue, b"{\"object_kind\": \"issue\"}", &secret).unwrap();
    assert!(
        matches!(&event, WebhookEvent::Ignored { forge: Forge::GitLab, event, reason, .. }
            if event == "Issue Hook" && reason.contains("push events only")),
        "{event:?}"
    );
    // Ignored events are still verified first.
    let unsigned_issue = headers(&[("X-Gitlab-Event", "Issue Hook")]);
    assert_eq!(receive(&unsigned_issue, b"{}", &secret).unwrap_err().status(), 401);
}

#[test]
fn refusals_are_typed_and_happen_before_parsing() {
    let secret = Secret::new(SECRET);
    let github_signature = format!("sha256={GITHUB_PUSH_HMAC}");
    let not_json_hmac = "5f0c1b5c8f5e6b7f1b27d8d8fb86bde62e7a1b6c5b9bbd3c1bf0b8c7a3a4d2e1";
    let cases: Vec<(&str, WebhookHeaders, &[u8], WebhookError)> = vec![
        (
            "no event header",
            headers(&[("Content-Type", "application/json")]),
            GITHUB_PUSH,
            WebhookError::UnknownForge,
        ),
        (
            "GitHub without signature",
            headers(&[("X-GitHub-Event", "push")]),
            GITHUB_PUSH,
            WebhookError::MissingSignature { forge: Forge::GitHub, header: "X-Hub-Signature-256" },
        ),
        (
            "GitHub with a signature of another body",
            headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &github_signature)]),
            GITHUB_DELETE,
            WebhookError::BadSignature { forge: Forge::GitHub, header: "X-Hub-Signature-256" },
        ),
        (
            "GitHub with the bare hex form",
            headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", GITHUB_PUSH_HMAC)]),
            GITHUB_PUSH,
            WebhookError::BadSignature { forge: Forge::GitHub, header: "X-Hub-Signature-256" },
        ),
        (
            "GitHub with a non-hex signature",
            headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", "sha256=zz")]),
            GITHUB_PUSH,
            WebhookError::BadSignature { forge: Forge::GitHub, header: "X-Hub-Signature-256" },
        ),
        (
            "GitLab with the wrong token",
            headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "arbor-webhook-test-secreT")]),
            GITLAB_PUSH,
            WebhookError::BadSignature { forge: Forge::GitLab, header: "X-Gitlab-Token" },
        ),
        (
            "Forgejo with an empty signature (no secret set on the forge)",
            headers(&[("X-Forgejo-Event", "push"), ("X-Forgejo-Signature", "")]),
            FORGEJO_PUSH,
            WebhookError::MissingSignature { forge: Forge::Forgejo, header: "X-Forgejo-Signature" },
        ),
        (
            "garbage with a bad signature is refused as unsigned, not as garbage",
            headers(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", not_json_hmac)]),
            b"{not json",
            WebhookError::BadSignature { forge: Forge::Gitea, header: "X-Gitea-Signature" },
        ),
    ];
    for (name, request, body, expected) in cases {
        let error = receive(&request, body, &secret).unwrap_err();
        assert!(!error.to_string().contains(SECRET), "{name}: {error}");
        assert_eq!(error, expected, "{name}");
    }
}

#[test]
fn verified_but_malformed_pushes_are_typed() {
    let secret = Secret::new(SECRET);
    let gitlab = |body: &[u8]| {
        receive(&headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", SECRET)]), body, &secret)
    };
    assert_eq!(
        gitlab(b"{\n  \"ref\": \"refs/heads/x\",\n  oops\n}"),
        Err(WebhookError::MalformedJson {
            forge: Forge::GitLab,
            message: "key must be a string".into(),
            line: 3,
            column: 3
        })
    );
    assert_eq!(
        gitlab(b"{\"ref\": \"refs/heads/x\"}"),
        Err(WebhookError::MissingField { forge: Forge::GitLab, field: "object_kind" })
    );
    let zero = "0000000000000000000000000000000000000000";
    let cases: [(String, WebhookError); 4] = [
        (
            format!("{{\"object_kind\": \"push\", \"before\": \"{zero}\", \"after\": \"{zero}\"}}"),
            WebhookError::MissingField { forge: Forge::GitLab, field: "ref" },
        ),
        (
            format!(
                "{{\"object_kind\": \"push\", \"ref\": \"main\", \"before\": \"{zero}\", \"after\": \"{zero}\"}}"
            ),
            WebhookError::InvalidField {
                forge: Forge::GitLab,
                field: "ref",
                message: "\"main\" is not a full reference (refs/heads/... or refs/tags/...)".into(),
            },
        ),
        (
            format!(
                "{{\"object_kind\": \"push\", \"ref\": \"refs/heads/x\", \"before\": 7, \"after\": \"{zero}\"}}"
            ),
            WebhookError::InvalidField {
                forge: Forge::GitLab,
                field: "before",
                message: "must be a string, found 7".into(),
            },
        ),
        (
            "{\"object_kind\": \"note\", \"ref\": \"refs/heads/x\"}".to_string(),
            WebhookError::InvalidField {
                forge: Forge::GitLab,
                field: "object_kind",
                message: "\"note\" in a \"Push Hook\"".into(),
            },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(gitlab(body.as_bytes()), Err(expected.clone()), "{body}");
        assert_eq!(expected.status(), 400);
    }
}

#[test]
fn error_messages_say_what_to_do() {
    let errors = [
        WebhookError::UnknownForge,
        WebhookError::MissingSignature { forge: Forge::GitHub, header: "X-Hub-Signature-256" },
        WebhookError::BadSignature { forge: Forge::GitLab, header: "X-Gitlab-Token" },
        WebhookError::PayloadTooLarge { bytes: MAXIMUM_BODY_BYTES + 1, limit: MAXIMUM_BODY_BYTES },
        WebhookError::MalformedJson {
            forge: Forge::Gitea,
            message: "EOF while parsing".into(),
            line: 1,
            column: 9,
        },
        WebhookError::NotAPush { forge: Forge::Forgejo, event: "issues".into() },
    ];
    let rendered: Vec<String> = errors.iter().map(|error| format!("{} {error}", error.status())).collect();
    insta::assert_snapshot!(rendered.join("\n"));
}

#[test]
fn oversized_bodies_are_refused_before_anything_else() {
    let body = vec![b' '; MAXIMUM_BODY_BYTES + 1];
    let error = receive(&WebhookHeaders::new(), &body, &Secret::new(SECRET)).unwrap_err();
    assert_eq!(error.status(), 413);
}
