//! What a script reads and what a person sees never disagree: pages answer `Accept: application/json`
//! with the API's JSON and name their API call; errors are pages for browsers and stay the API's JSON
//! for scripts and under /api; assets are cached for long under hashed URLs; pages forbid other hosts.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::harness::{Options, STREAM, TestServer};

async fn get(server: &TestServer, path: &str, accept: &str) -> crate::harness::TestResponse {
    let request = Request::get(path).header(header::ACCEPT, accept).body(Body::empty()).unwrap();
    server.send(request).await
}

#[tokio::test]
async fn pages_answer_json_with_what_the_api_returns() {
    let server = TestServer::with(Options { public_read: true, ..Options::default() }).await;
    for (page, api) in [
        ("/", "/api/v1/streams"),
        (&format!("/streams/{STREAM}") as &str, &format!("/api/v1/streams/{STREAM}") as &str),
    ] {
        let from_page = get(&server, page, "application/json").await;
        assert_eq!(from_page.status, StatusCode::OK, "{}", from_page.text());
        let from_api = get(&server, api, "application/json").await;
        assert_eq!(from_page.json(), from_api.json(), "{page}");
        let link = from_page.headers[header::LINK].to_str().unwrap();
        assert!(link.starts_with(&format!("<{api}>")), "{link}");
        let html = get(&server, page, "text/html").await;
        assert_eq!(html.status, StatusCode::OK);
        assert!(html.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let policy = html.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("default-src 'none'") && !policy.contains("http"), "{policy}");
        assert!(!html.text().contains("://"), "{page} refers to another host");
    }
}

#[tokio::test]
async fn errors_are_pages_for_browsers_and_json_for_scripts() {
    let server = TestServer::with(Options { public_read: true, ..Options::default() }).await;
    let page = get(&server, "/no-such-page", "text/html,application/xhtml+xml").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.text().contains("<h1>Not found</h1>"), "{}", page.text());
    get(&server, "/no-such-page", "application/json").await.assert_error(404, "not_found");
    get(&server, "/api/v1/builds/4242", "text/html").await.assert_error(404, "not_found");
    get(&server, "/builds/4242", "application/json").await.assert_error(404, "not_found");
    let private = TestServer::start().await;
    let redirected = get(&private, "/queue", "text/html").await;
    assert_eq!(redirected.status, StatusCode::SEE_OTHER);
    assert_eq!(redirected.headers[header::LOCATION], "/sign-in?next=%2Fqueue");
    get(&private, "/queue", "application/json").await.assert_error(401, "missing_token");
}

#[tokio::test]
async fn assets_have_hashed_urls_and_long_cache_lifetimes() {
    let server = TestServer::with(Options { public_read: true, ..Options::default() }).await;
    let home = get(&server, "/", "text/html").await.text();
    let start = home.find("/assets/").expect("an asset link");
    let url = &home[start..home[start..].find('"').unwrap() + start];
    let asset = get(&server, url, "*/*").await;
    assert_eq!(asset.status, StatusCode::OK, "{url}");
    assert!(asset.headers[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    let stale = url.replacen("/assets/", "/assets/0", 1);
    assert_eq!(get(&server, &stale, "*/*").await.status, StatusCode::NOT_FOUND);
}
