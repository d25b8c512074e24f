//! What an operator relies on: static files served by Cloudflare without running the Worker (free, unbilled), still
//! with the security headers (web/_headers), while pages and the API go through the Worker; and one JSON log line
//! per request with the request id the response carries, naming the route and never a stream key.
//!
//! How a test tells who answered: the Worker stamps `x-request-id` on every response it produces (routes.rs
//! `handle`); the asset server knows nothing of it.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Trial;
use serde_json::Value;
use sunnylive_e2e::{ensure, eventually, Answer, TestApp, TestResult, ORIGIN_TOKEN};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        static_files_are_served_without_the_worker_with_the_security_headers,
        page_templates_and_unknown_files_still_reach_the_worker,
        pages_carry_the_shared_parts_and_revalidate_by_their_own_etag,
        every_request_is_one_json_log_line_with_its_request_id_and_no_key,
    )
}

/// Headers every response we serve carries, with the page's value where it must be the same.
const SAME_AS_PAGES: [&str; 4] = [
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
    "x-frame-options",
];

async fn static_files_are_served_without_the_worker_with_the_security_headers(app: &TestApp) -> TestResult {
    let api = app.api();
    let page = api.get("/login", None).await?;
    ensure!(page.status == 200, "GET /login: {}", page.status);
    ensure!(
        page.header("x-request-id").is_some(),
        "a page is served by the Worker, which stamps x-request-id"
    );
    for path in [
        "/css/sunnylive.css",
        "/js/api.js",
        "/favicon.svg",
        "/vendor/hls.light.min.js",
    ] {
        let file = api.get(path, None).await?;
        ensure!(file.status == 200, "GET {path}: {}", file.status);
        ensure!(
            file.header("x-request-id").is_none(),
            "GET {path} ran the Worker (x-request-id {:?}); static files must not",
            file.header("x-request-id")
        );
        for name in SAME_AS_PAGES {
            ensure!(
                file.header(name).is_some() && file.header(name) == page.header(name),
                "GET {path}: {name} is {:?}, a page's is {:?}",
                file.header(name),
                page.header(name)
            );
        }
        let csp = file.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            ensure!(
                csp.contains(directive),
                "GET {path}: the policy lacks {directive}: {csp}"
            );
        }
    }
    Ok(())
}

async fn page_templates_and_unknown_files_still_reach_the_worker(app: &TestApp) -> TestResult {
    let api = app.api();
    for path in [
        "/watch",
        "/watch.html",
        "/404.html",
        "/index.html",
        "/nope.css",
        "/js/nope.js",
        // web/README.md is for developers: .assetsignore keeps it out of the assets.
        "/README.md",
    ] {
        let a = api.get(path, None).await?;
        ensure!(
            a.status == 404 && a.header("x-request-id").is_some(),
            "GET {path}: {} (x-request-id {:?}); the Worker must answer it 404",
            a.status,
            a.header("x-request-id")
        );
    }
    // The overlay may be framed by streaming tools: web/_headers' X-Frame-Options must not reach it.
    let overlay = api.get("/overlay/abcdefghij234567", None).await?;
    ensure!(overlay.status == 200, "overlay: {}", overlay.status);
    ensure!(
        overlay.header("x-frame-options").is_none(),
        "the overlay carries x-frame-options {:?}",
        overlay.header("x-frame-options")
    );
    Ok(())
}

/// Every page's head links and site header are written once (web/partials/) and filled in by the Worker: a page
/// carries them, no marker is left, the partials are not files anyone can fetch, and a page's ETag is its own, so a
/// revalidation is a 304 while the page is unchanged.
async fn pages_carry_the_shared_parts_and_revalidate_by_their_own_etag(app: &TestApp) -> TestResult {
    let api = app.api();
    let get = |path: &'static str, if_none_match: Option<String>| {
        let mut rb = api.request(reqwest::Method::GET, path);
        if let Some(etag) = if_none_match {
            rb = rb.header("if-none-match", etag);
        }
        api.send(rb)
    };
    for path in ["/", "/login", "/studio", "/s/abcdefghij234567", "/no/such/page"] {
        let page = get(path, None).await?;
        ensure!(
            page.text.matches(r#"<header class="site-header">"#).count() == 1
                && page.text.matches(r#"<footer class="site-footer">"#).count() == 1
                && page
                    .text
                    .contains(r#"<link rel="stylesheet" href="/css/sunnylive.css">"#)
                && !page.text.contains("<!--#include"),
            "GET {path}: the shared parts are not filled in:\n{}",
            page.text
        );
        if path == "/no/such/page" {
            ensure!(page.status == 404, "GET {path}: {}", page.status);
            continue;
        }
        let etag = page
            .header("etag")
            .ok_or_else(|| format!("GET {path}: a page carries an ETag"))?;
        let again = get(path, Some(etag.to_string())).await?;
        ensure!(
            again.status == 304,
            "GET {path} with If-None-Match {etag}: {}",
            again.status
        );
        let other = get(path, Some(etag.replace("-p", "-q"))).await?;
        ensure!(other.status == 200, "GET {path} with another ETag: {}", other.status);
    }
    for path in [
        "/partials/site-header",
        "/partials/site-header.html",
        "/partials/page-head",
    ] {
        let a = get(path, None).await?;
        ensure!(
            a.status == 404 && a.header("x-request-id").is_some(),
            "GET {path}: {}; the Worker must answer a partial 404",
            a.status
        );
    }
    Ok(())
}

/// The log line with this request id, once the worker has written it.
pub(crate) async fn log_line(app: &TestApp, request_id: &str) -> Result<Value, sunnylive_e2e::BoxError> {
    let needle = format!("\"request_id\":\"{request_id}\"");
    let mut found = Value::Null;
    eventually(Duration::from_secs(10), "the request's log line", || {
        let line = app.all_logs().lines().find(|l| l.contains(&needle)).map(str::to_string);
        if let Some(line) = &line {
            let json = &line[line.find('{').unwrap_or(0)..];
            found = serde_json::from_str(json).unwrap_or(Value::Null);
        }
        let ok = line.is_some();
        async move { Ok(ok) }
    })
    .await?;
    Ok(found)
}

fn request_id(a: &Answer) -> Result<String, sunnylive_e2e::BoxError> {
    let id = a.header("x-request-id").ok_or("no x-request-id")?;
    ensure!(
        (8..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "odd request id {id}"
    );
    Ok(id.to_string())
}

async fn every_request_is_one_json_log_line_with_its_request_id_and_no_key(app: &TestApp) -> TestResult {
    let api = app.api();
    let who = api.register("logs").await?;
    let (id, key) = api.create_stream(&who, "log lines").await?;

    let shown = api.get(&format!("/api/streams/{id}/key"), Some(&who.access)).await?;
    ensure!(shown.status == 200, "GET key: {}", shown.status);
    let line = log_line(app, &request_id(&shown)?).await?;
    ensure!(
        line["type"] == "request"
            && line["method"] == "GET"
            && line["route"] == "/api/streams/{id}/key"
            && line["status"] == 200
            && line["duration_ms"].is_u64(),
        "the line of GET .../key: {line}"
    );

    let published = crate::streams::callback(&api, "on-publish", &key, 7, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        published.status == 302,
        "on-publish: {} {}",
        published.status,
        published.text
    );
    let line = log_line(app, &request_id(&published)?).await?;
    ensure!(
        line["route"] == "/api/rtmp/on-publish" && line["status"] == 302,
        "the line of on-publish: {line}"
    );
    let refused = crate::streams::callback(&api, "on-publish", &format!("{key}x"), 8, Some(ORIGIN_TOKEN)).await?;
    let line = log_line(app, &request_id(&refused)?).await?;
    ensure!(
        line["status"] == 403 && line["error"] == "stream_key_refused",
        "the line of a refused publish: {line}"
    );
    let done = crate::streams::callback(&api, "on-publish-done", &key, 7, Some(ORIGIN_TOKEN)).await?;
    ensure!(done.status == 200, "on-publish-done: {}", done.status);

    let logs = app.all_logs();
    ensure!(!logs.contains(&key), "a stream key is in the logs");
    // wrangler dev logs each request's path itself (a local convenience); our own lines never do.
    let ours: Vec<&str> = logs.lines().filter(|l| l.contains("\"type\":\"request\"")).collect();
    ensure!(!ours.is_empty(), "no request lines at all");
    ensure!(
        ours.iter().all(|l| !l.contains(&id) && !l.contains('?')),
        "a request line names a concrete path: {:?}",
        ours.iter().find(|l| l.contains(&id))
    );
    Ok(())
}
