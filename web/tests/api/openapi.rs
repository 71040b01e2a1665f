//! The OpenAPI document: a snapshot, structural checks (every operation has an id, responses and a tag;
//! every reference resolves; every route of the router is documented), and PyPI's
//! `openapi-spec-validator` (installed by scripts/install-deps).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use axum::http::Method;
use serde_json::Value;

use crate::harness::TestServer;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    serde_json::to_value(web::openapi()).expect("the document as JSON")
}

#[test]
fn the_document_matches_its_snapshot() {
    let text = serde_json::to_string_pretty(&document()).unwrap();
    insta::assert_snapshot!("openapi", text);
}

#[test]
fn every_operation_has_an_id_responses_and_a_tag_and_every_reference_resolves() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        let operations: Vec<(&str, &Value)> = METHODS
            .iter()
            .filter_map(|method| item.get(*method).map(|operation| (*method, operation)))
            .collect();
        assert!(!operations.is_empty(), "{path} has no operation");
        for (method, operation) in operations {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(operation_ids.insert(id.to_string()), "operationId {id} twice");
            let responses =
                operation["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for (status, response) in responses {
                assert!(
                    response["description"].as_str().is_some_and(|text| !text.is_empty()),
                    "{method} {path} {status}"
                );
            }
            assert!(
                operation["tags"].as_array().is_some_and(|tags| !tags.is_empty()),
                "{method} {path}: no tag"
            );
            assert!(operation["summary"].as_str().is_some(), "{method} {path}: no summary");
        }
    }
    let schemas = document["components"]["schemas"].as_object().expect("schemas");
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(schemas.contains_key(name), "{reference} does not resolve");
    }
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}

fn collect_references<'a>(value: &'a Value, references: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                references.push(reference);
            }
            map.values().for_each(|value| collect_references(value, references));
        }
        Value::Array(items) => items.iter().for_each(|value| collect_references(value, references)),
        _ => {}
    }
}

/// Every documented operation is routed (it does not answer 404 or 405), and the document is served.
#[tokio::test]
async fn the_served_document_is_the_routes_document() {
    let server = TestServer::start().await;
    let served = server.get("/api/v1/openapi.json", &server.tokens.read).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json(), document());
    let document = document();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS.iter().filter(|method| item.get(**method).is_some()) {
            let concrete = path.replace("{name}", "testing-devel").replace("{id}", "1");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server.call(method.clone(), &concrete, Some(&server.tokens.admin), None).await;
            let routed = response.status != 405
                && !(response.status == 404 && response.text().contains("there is no"));
            assert!(routed, "{method} {concrete}: {} {}", response.status, response.text());
        }
    }
}

/// `openapi-spec-validator` accepts the document as OpenAPI 3.1.
#[test]
fn the_document_passes_openapi_spec_validator() {
    let tools =
        std::env::var_os("ARBOR_TOOLS_DIR").map_or_else(|| PathBuf::from("/opt/arbor-tools"), PathBuf::from);
    let validator = tools.join("openapi/bin/openapi-spec-validator");
    assert!(
        validator.exists(),
        "{} is missing: run scripts/install-deps (it installs PyPI's openapi-spec-validator there)",
        validator.display()
    );
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&document()).unwrap()).unwrap();
    let output = Command::new(&validator)
        .arg("--schema")
        .arg("3.1")
        .arg(&file)
        .output()
        .expect("running openapi-spec-validator");
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
