//! The platform's two caches of our answers, end to end. Workers Cache sits in front of the Worker and keys an answer
//! by path and query alone (never by cookie, `Authorization` or host): an answer that depends on who asked must say
//! `private`/`no-store`, or one person's answer is served to the next. So every route of the contract is walked
//! anonymously, with a Bearer token and with a session cookie, and each answer's `Cache-Control` is held to the rule
//! (`sunnylive_core::cache`). D1's read replicas are the other: a client that wrote reads its own write next time by
//! sending back the bookmark the write's answer named. (Locally there is one D1 and no replica: what the suite shows
//! is the bookmark's round trip and that a session started from it sees the write; a replica's lag it cannot show.)

use std::sync::Arc;

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sunnylive_e2e::{ensure, Answer, Api, BoxError, TestApp, TestResult, ORIGIN_TOKEN};

use crate::streams::callback;

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        every_answer_says_who_may_cache_it,
        a_client_reads_its_own_writes_through_the_bookmark,
    )
}

const BOOKMARK: &str = "sunnylive-bookmark";

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    Anonymous,
    Bearer,
    Cookie,
}

async fn ask(api: &Api, method: &Method, path: &str, asker: Asker, token: &str) -> Result<Answer, BoxError> {
    let mut rb = api.request(method.clone(), path);
    match asker {
        Asker::Anonymous => {}
        Asker::Bearer => rb = rb.bearer_auth(token),
        Asker::Cookie => {
            rb = rb
                .header("cookie", format!("sl_access={token}"))
                // A cookie sign-in is Origin-checked on writes; a browser sends its own.
                .header("origin", api.base.as_str());
        }
    }
    if !matches!(*method, Method::GET | Method::HEAD) {
        // Never a valid body: the walk must change nothing, only see how each refusal may be cached.
        rb = rb.header("content-type", "application/json").body("{}");
    }
    api.send(rb).await
}

fn directives(a: &Answer) -> Vec<String> {
    a.header("cache-control")
        .unwrap_or_default()
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect()
}

fn is_private(a: &Answer) -> bool {
    let d = directives(a);
    d.iter().any(|d| d == "private" || d == "no-store")
}

fn max_age(a: &Answer) -> Option<u64> {
    directives(a)
        .iter()
        .find_map(|d| d.strip_prefix("max-age=").and_then(|v| v.parse().ok()))
}

async fn every_answer_says_who_may_cache_it(app: &TestApp) -> TestResult {
    let api = app.api();
    let owner = api.register("cacheowner").await?;
    let (stream_id, key) = api.create_stream(&owner, "cache walk").await?;
    // A broadcast with one segment, the way the origin makes one.
    let on_publish = callback(&api, "on-publish", &key, 7_900_001, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        on_publish.status == 302,
        "on-publish: {} {}",
        on_publish.status,
        on_publish.text
    );
    let broadcast_id = on_publish.header("location").ok_or("a Location")?.to_string();
    let put = api
        .send(
            api.request(Method::PUT, &format!("/api/origin/hls/{broadcast_id}/0.ts?duration=2"))
                .header("content-type", "video/mp2t")
                .bearer_auth(ORIGIN_TOKEN)
                .body(vec![0x47u8; 188 * 20]),
        )
        .await?;
    ensure!(put.status < 300, "upload a segment: {} {}", put.status, put.text);
    // Someone who owns nothing here: writes in the walk go out as them, so nothing of the owner's changes.
    let stranger = api.register("cachestranger").await?;

    let doc = api.get("/api/openapi.json", None).await?;
    let paths = doc.body["paths"].as_object().ok_or("openapi.json has paths")?;
    let mut walked = 0;
    // Video answers served from the colo's cache (the Worker's first step, `video_cache`): the same rules hold.
    let mut video_hits = 0;
    let mut problems = Vec::new();
    for (pattern, ops) in paths {
        let path = pattern
            .replace("{id}", &stream_id)
            .replace("{broadcast_id}", &broadcast_id)
            .replace("{file}", "0.ts")
            .replace("{order_id}", "sl-nosuchorder-0001")
            .replace("{rendition}", "source")
            .replace("{output_id}", "aaaaaaaaaaaaaaaa")
            .replace("{login_id}", "aaaaaaaaaaaaaaaa")
            .replace("{user_id}", "aaaaaaaaaaaaaaaa")
            .replace("{report_id}", "aaaaaaaaaaaaaaaa")
            .replace("{message_id}", "1")
            .replace("{clip_id}", "aaaaaaaaaaaaaaaa");
        ensure!(!path.contains('{'), "a path parameter the walk cannot fill: {pattern}");
        for method in ops.as_object().ok_or("an operation map")?.keys() {
            // The path item's other keys ("parameters", ...) are not operations.
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            let reads = matches!(method, Method::GET | Method::HEAD);
            let video = path.starts_with("/hls/");
            let mut bodies: Vec<(Asker, Answer)> = Vec::new();
            for asker in [Asker::Anonymous, Asker::Bearer, Asker::Cookie] {
                // Reads as the owner (the personal answers: /api/me, the key); writes as the stranger.
                let token = if reads { &owner.access } else { &stranger.access };
                let a = ask(&api, &method, &path, asker, token).await?;
                walked += 1;
                let what = format!("{method} {path} ({asker:?}) -> {}", a.status);
                if a.status >= 500 {
                    problems.push(format!("{what}: a server error: {}", a.text));
                }
                if a.status == 101 {
                    continue;
                }
                if a.header("cache-control").is_none() {
                    problems.push(format!("{what}: no Cache-Control at all"));
                } else if a.header("set-cookie").is_some() && !is_private(&a) {
                    problems.push(format!("{what}: sets a cookie but may be cached: {:?}", directives(&a)));
                } else if !reads && !is_private(&a) {
                    problems.push(format!("{what}: a write's answer may be cached: {:?}", directives(&a)));
                } else if !video && asker != Asker::Anonymous && !is_private(&a) {
                    problems.push(format!(
                        "{what}: asked with credentials but may be cached for everybody: {:?}",
                        directives(&a)
                    ));
                } else if video && a.status == 200 && method == Method::GET {
                    if a.header("x-cache") == Some("HIT") {
                        video_hits += 1;
                    }
                    let age = max_age(&a).unwrap_or(0);
                    let long_lived = path.ends_with(".ts");
                    let tag = a.header("cache-tag").unwrap_or_default();
                    if is_private(&a) || !directives(&a).iter().any(|d| d == "public") {
                        problems.push(format!("{what}: video must be public: {:?}", directives(&a)));
                    } else if long_lived && (age < 86_400 || !directives(&a).iter().any(|d| d == "immutable")) {
                        problems.push(format!(
                            "{what}: a segment must be long-lived and immutable: {:?}",
                            directives(&a)
                        ));
                    } else if !long_lived && age == 0 {
                        problems.push(format!("{what}: a playlist needs a max-age: {:?}", directives(&a)));
                    } else if !tag.split(',').any(|t| t.trim() == format!("stream-{stream_id}")) {
                        problems.push(format!("{what}: no Cache-Tag naming the stream: {tag:?}"));
                    } else if pattern.contains("{broadcast_id}")
                        && !tag.split(',').any(|t| t.trim() == format!("broadcast-{broadcast_id}"))
                    {
                        problems.push(format!("{what}: no Cache-Tag naming the broadcast: {tag:?}"));
                    }
                }
                bodies.push((asker, a));
            }
            // An answer public when asked anonymously is served to everybody: it must be what everybody gets.
            if let Some((_, anonymous)) = bodies.iter().find(|(w, a)| *w == Asker::Anonymous && a.status == 200) {
                if !video && directives(anonymous).iter().any(|d| d == "public") {
                    ensure!(
                        anonymous
                            .header("vary")
                            .is_some_and(|v| v.to_ascii_lowercase().contains(BOOKMARK)),
                        "{method} {path}: a public read must vary by the bookmark (a writer reads past the cache)"
                    );
                    for (asker, a) in &bodies {
                        if a.status == 200 && a.body != Value::Null && a.body != anonymous.body {
                            problems.push(format!(
                                "{method} {path}: public when asked anonymously, yet {asker:?} gets another answer"
                            ));
                        }
                    }
                }
            }
        }
    }
    ensure!(
        walked >= 60,
        "walked only {walked} requests: the contract lost its paths?"
    );
    ensure!(
        video_hits >= 3,
        "only {video_hits} video answers came from the cache: the walk no longer checks cached answers"
    );
    ensure!(
        problems.is_empty(),
        "{} answer(s) break the caching rule:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // A public read, asked anonymously, is public for a few seconds; the same asked signed in is private.
    let anon = api.get(&format!("/api/streams/{stream_id}"), None).await?;
    ensure!(
        directives(&anon).iter().any(|d| d == "public") && max_age(&anon).is_some_and(|s| (1..=60).contains(&s)),
        "GET /api/streams/{{id}} anonymously: {:?}",
        directives(&anon)
    );
    Ok(())
}

async fn a_client_reads_its_own_writes_through_the_bookmark(app: &TestApp) -> TestResult {
    let api = app.api();
    let owner = api.register("bookmark").await?;
    // Create, then list: the create's answer names a bookmark, and a list sent with it has the new stream.
    let title = sunnylive_e2e::unique_name("bookmarked stream");
    let created = api
        .post("/api/streams", Some(&owner.access), &json!({ "title": title }))
        .await?;
    ensure!(created.status == 201, "create: {} {}", created.status, created.text);
    let id = created.body["stream"]["id"].as_str().ok_or("an id")?.to_string();
    let bookmark = created
        .header(BOOKMARK)
        .ok_or("a write's answer names the bookmark (Sunnylive-Bookmark)")?
        .to_string();
    let with = |path: &str, bookmark: &str| {
        api.request(Method::GET, path)
            .bearer_auth(&owner.access)
            .header(BOOKMARK, bookmark.to_string())
    };
    let mine = api.send(with("/api/me/streams", &bookmark)).await?;
    ensure!(mine.status == 200, "my streams: {} {}", mine.status, mine.text);
    ensure!(
        mine.text.contains(&id),
        "a read sent with the create's bookmark lists the new stream: {}",
        mine.text
    );
    ensure!(mine.header(BOOKMARK).is_some(), "a read names a bookmark too");
    // Edit, then read.
    let edited = api
        .json(
            Method::PATCH,
            &format!("/api/streams/{id}"),
            Some(&owner.access),
            &json!({ "title": "edited title" }),
        )
        .await?;
    ensure!(edited.status == 200, "edit: {} {}", edited.status, edited.text);
    let bookmark = edited
        .header(BOOKMARK)
        .ok_or("an edit's answer names the bookmark")?
        .to_string();
    let read = api.send(with(&format!("/api/streams/{id}"), &bookmark)).await?;
    ensure!(
        read.body["stream"]["title"] == "edited title",
        "read after edit: {}",
        read.text
    );
    ensure!(
        read.header("cache-control").is_some_and(|c| c.contains("private")),
        "a read with a bookmark is this client's own: {:?}",
        read.header("cache-control")
    );
    // Donate, then read the donation.
    let donated = api
        .post(
            &format!("/api/streams/{id}/donations"),
            Some(&owner.access),
            &json!({ "amount": 10000, "donor_name": "Reader", "message": "read me" }),
        )
        .await?;
    ensure!(donated.status == 201, "donate: {} {}", donated.status, donated.text);
    let order = donated.body["order_id"].as_str().ok_or("an order id")?.to_string();
    let bookmark = donated
        .header(BOOKMARK)
        .ok_or("a donation's answer names the bookmark")?
        .to_string();
    let got = api.send(with(&format!("/api/donations/{order}"), &bookmark)).await?;
    ensure!(got.status == 200, "read the donation: {} {}", got.status, got.text);
    ensure!(got.text.contains(&order), "the donation as read: {}", got.text);
    // A damaged bookmark is ignored, never an error.
    let damaged = api
        .send(with(&format!("/api/streams/{id}"), "not a bookmark <>"))
        .await?;
    ensure!(
        damaged.status == 200,
        "a damaged bookmark: {} {}",
        damaged.status,
        damaged.text
    );
    Ok(())
}
