//! Streams end to end through the real worker and D1: CRUD with owner-only routes, validation of every field,
//! search by title words and usernames, pagination that returns every stream exactly once, live-first ordering,
//! keys (view, rotate, dead after delete), and the RTMP callbacks called the way nginx-origin's proxy calls them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::json;
use sunnylive_e2e::{
    ensure, eventually, unique_name, Answer, Api, BoxError, TestApp, TestResult, ORIGIN_TOKEN,
    TEST_STALE_STREAM_SECONDS,
};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        an_owner_creates_reads_edits_and_deletes_a_stream,
        owner_only_routes_refuse_anonymous_and_other_users,
        every_field_is_validated_with_422,
        search_finds_streams_by_title_words_and_by_username,
        pagination_returns_every_stream_exactly_once,
        live_streams_come_first,
        keys_can_be_viewed_and_rotated_and_die_with_the_stream,
        callbacks_without_the_origin_token_get_401,
        publish_callbacks_accept_good_keys_and_refuse_bad_ones,
        a_second_publisher_is_refused_and_cannot_end_the_stream,
        a_stream_whose_heartbeats_stop_is_ended_by_the_cron,
    )
}

/// Calls an RTMP callback as nginx-origin's proxy does (form body, origin bearer token).
pub async fn callback(
    api: &Api,
    route: &str,
    key: &str,
    clientid: u32,
    token: Option<&str>,
) -> Result<Answer, BoxError> {
    let mut rb = api
        .request(Method::POST, &format!("/api/rtmp/{route}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("app=live&flashver=FMLE&tcurl=rtmp://127.0.0.1/live&addr=127.0.0.1&clientid={clientid}&call=x&name={key}&type=live"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    api.send(rb).await
}

async fn an_owner_creates_reads_edits_and_deletes_a_stream(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("owner").await?;
    let a = api
        .post(
            "/api/streams",
            Some(&s.access),
            &json!({"title": "  Morning coffee  ", "description": "chill"}),
        )
        .await?;
    ensure!(a.status == 201, "create: {} {}", a.status, a.text);
    let id = a.body["stream"]["id"].as_str().ok_or("no id")?.to_string();
    ensure!(
        a.body["stream"]["title"] == "Morning coffee",
        "title trimmed: {}",
        a.text
    );
    ensure!(
        a.body["stream"]["owner"]["username"] == s.username.as_str(),
        "owner: {}",
        a.text
    );
    ensure!(
        a.body["stream"]["status"] == "offline" && a.body["stream"]["live_since"].is_null(),
        "new streams are offline"
    );
    ensure!(
        a.body["stream"]["hls_url"] == format!("/hls/{id}/master.m3u8").as_str(),
        "hls_url: {}",
        a.text
    );
    ensure!(a.body["rtmp_url"] == app.rtmp_url.as_str(), "rtmp_url: {}", a.text);
    // The test stack's worker has RTMPS_INGEST_URL (its origin serves RTMPS): Studio gets both.
    ensure!(a.body["rtmps_url"] == app.rtmps_url.as_str(), "rtmps_url: {}", a.text);
    let key = a.body["stream_key"].as_str().ok_or("no key")?;
    ensure!(
        !a.body["stream"].to_string().contains(key),
        "the stream object never carries the key"
    );

    let got = api.get(&format!("/api/streams/{id}"), None).await?;
    ensure!(
        got.status == 200 && got.body["stream"]["id"] == id.as_str(),
        "get: {}",
        got.text
    );
    ensure!(!got.text.contains(key), "GET never shows the key");

    let patched = api
        .json(
            Method::PATCH,
            &format!("/api/streams/{id}"),
            Some(&s.access),
            &json!({"title": "Evening tea"}),
        )
        .await?;
    ensure!(
        patched.status == 200
            && patched.body["stream"]["title"] == "Evening tea"
            && patched.body["stream"]["description"] == "chill",
        "patch: {}",
        patched.text
    );

    let mine = api.get("/api/me/streams", Some(&s.access)).await?;
    ensure!(
        mine.body["streams"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["id"] == id.as_str())),
        "my streams: {}",
        mine.text
    );

    let del = api
        .send(
            api.request(Method::DELETE, &format!("/api/streams/{id}"))
                .bearer_auth(&s.access),
        )
        .await?;
    ensure!(del.status == 204, "delete: {} {}", del.status, del.text);
    let gone = api.get(&format!("/api/streams/{id}"), None).await?;
    ensure!(
        gone.status == 404 && gone.code() == "stream_not_found",
        "deleted: {} {}",
        gone.status,
        gone.text
    );
    Ok(())
}

async fn owner_only_routes_refuse_anonymous_and_other_users(app: &TestApp) -> TestResult {
    let api = app.api();
    let owner = api.register("own").await?;
    let other = api.register("other").await?;
    let (id, _) = api.create_stream(&owner, "Mine").await?;
    let routes = [
        (Method::PATCH, format!("/api/streams/{id}")),
        (Method::DELETE, format!("/api/streams/{id}")),
        (Method::GET, format!("/api/streams/{id}/key")),
        (Method::POST, format!("/api/streams/{id}/key")),
    ];
    for (m, path) in &routes {
        let anon = api
            .send(api.request(m.clone(), path).json(&json!({"title": "x"})))
            .await?;
        ensure!(
            anon.status == 401,
            "{m} {path} anonymous: {} {}",
            anon.status,
            anon.text
        );
        let not_owner = api
            .send(
                api.request(m.clone(), path)
                    .bearer_auth(&other.access)
                    .json(&json!({"title": "x"})),
            )
            .await?;
        ensure!(
            not_owner.status == 403 && not_owner.code() == "not_owner",
            "{m} {path} by another user: {} {}",
            not_owner.status,
            not_owner.text
        );
    }
    let missing = api
        .get("/api/streams/aaaaaaaaaaaaaaaa/key", Some(&owner.access))
        .await?;
    ensure!(missing.status == 404, "unknown stream: {}", missing.status);
    let weird = api.get("/api/streams/..%2F..%2Fetc/key", Some(&owner.access)).await?;
    ensure!(
        weird.status == 404,
        "a path that is not an id: {} {}",
        weird.status,
        weird.text
    );
    ensure!(api.stream(&id).await?["title"] == "Mine", "nothing changed");
    Ok(())
}

async fn every_field_is_validated_with_422(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("valid").await?;
    let (id, _) = api.create_stream(&s, "Valid").await?;
    let bodies = [
        (json!({}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "t".repeat(129)}), "title"),
        (json!({"title": 5}), "title"),
        (json!({"title": "bell\u{7}"}), "title"),
        (json!({"title": "ok", "description": "d".repeat(2001)}), "description"),
        (json!({"title": "ok", "description": ["no"]}), "description"),
    ];
    for (body, field) in &bodies {
        let a = api.post("/api/streams", Some(&s.access), body).await?;
        ensure!(
            a.status == 422 && !a.body["error"]["fields"][field].is_null(),
            "create {body}: {} {}",
            a.status,
            a.text
        );
    }
    for (body, field) in &bodies[1..] {
        let a = api
            .json(Method::PATCH, &format!("/api/streams/{id}"), Some(&s.access), body)
            .await?;
        ensure!(
            a.status == 422 && !a.body["error"]["fields"][field].is_null(),
            "patch {body}: {} {}",
            a.status,
            a.text
        );
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=nonsense", "cursor"),
        ("live=maybe", "live"),
        ("live=", "live"),
        ("live=1", "live"),
        (&format!("q={}", "q".repeat(101)), "q"),
    ] {
        let a = api.get(&format!("/api/streams?{query}"), None).await?;
        ensure!(
            a.status == 422 && !a.body["error"]["fields"][field].is_null(),
            "list ?{query}: {} {}",
            a.status,
            a.text
        );
    }
    Ok(())
}

async fn list_ids(api: &Api, query: &str) -> Result<Vec<String>, BoxError> {
    let a = api.get(&format!("/api/streams?{query}"), None).await?;
    ensure!(a.status == 200, "list ?{query}: {} {}", a.status, a.text);
    Ok(a.body["streams"]
        .as_array()
        .ok_or("no streams array")?
        .iter()
        .filter_map(|s| s["id"].as_str().map(String::from))
        .collect())
}

async fn search_finds_streams_by_title_words_and_by_username(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("searcher").await?;
    let word = unique_name("zebra");
    let (by_title, _) = api.create_stream(&s, &format!("Late night {word} speedrun")).await?;
    let found = list_ids(&api, &format!("q={word}")).await?;
    ensure!(found == vec![by_title.clone()], "title word: {found:?}");
    let prefix = &word[..word.len() - 2];
    ensure!(
        list_ids(&api, &format!("q={prefix}")).await?.contains(&by_title),
        "a word prefix finds it too"
    );
    ensure!(
        list_ids(&api, &format!("q=SPEEDRUN+{word}")).await?.contains(&by_title),
        "several words, any case"
    );
    let by_user = list_ids(&api, &format!("q={}", s.username)).await?;
    ensure!(by_user.contains(&by_title), "username: {by_user:?}");
    ensure!(
        list_ids(&api, "q=%22%29%28*%20OR%20NEAR").await?.len() <= 100,
        "FTS operators in q are plain text, not a 500"
    );
    ensure!(
        list_ids(&api, &format!("q={word}+nomatchxyz")).await?.is_empty(),
        "all words must match"
    );
    Ok(())
}

async fn pagination_returns_every_stream_exactly_once(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("pager").await?;
    let word = unique_name("page");
    let mut created = HashSet::new();
    for i in 0..7 {
        created.insert(api.create_stream(&s, &format!("{word} part {i}")).await?.0);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("q={word}&limit=3&cursor={c}"),
            None => format!("q={word}&limit=3"),
        };
        let a = api.get(&format!("/api/streams?{q}"), None).await?;
        ensure!(a.status == 200, "page: {}", a.text);
        let page: Vec<String> = a.body["streams"]
            .as_array()
            .ok_or("no array")?
            .iter()
            .filter_map(|x| x["id"].as_str().map(String::from))
            .collect();
        ensure!(page.len() <= 3, "limit respected");
        seen.extend(page);
        cursor = a.body["next_cursor"].as_str().map(String::from);
        if cursor.is_none() {
            break;
        }
    }
    ensure!(
        seen.len() == 7,
        "7 streams over the pages, got {}: {seen:?}",
        seen.len()
    );
    ensure!(
        seen.iter().cloned().collect::<HashSet<_>>() == created,
        "each stream exactly once"
    );
    let all = api.get("/api/streams", None).await?;
    ensure!(
        all.body["streams"].as_array().is_some_and(|l| l.len() <= 20),
        "default limit is 20"
    );
    Ok(())
}

async fn live_streams_come_first(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("livefirst").await?;
    let word = unique_name("order");
    let (live, key) = api.create_stream(&s, &format!("{word} live")).await?;
    let (_offline, _) = api.create_stream(&s, &format!("{word} offline")).await?;
    let a = callback(&api, "on-publish", &key, 9001, Some(ORIGIN_TOKEN)).await?;
    ensure!(a.status == 302, "publish: {} {}", a.status, a.text);
    let ids = list_ids(&api, &format!("q={word}")).await?;
    ensure!(ids.first() == Some(&live) && ids.len() == 2, "live first: {ids:?}");
    ensure!(
        list_ids(&api, &format!("q={word}&live=true")).await? == vec![live.clone()],
        "live=true filters"
    );
    callback(&api, "on-publish-done", &key, 9001, Some(ORIGIN_TOKEN)).await?;
    Ok(())
}

async fn keys_can_be_viewed_and_rotated_and_die_with_the_stream(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("keys").await?;
    let (id, key) = api.create_stream(&s, "Keys").await?;
    let shown = api.get(&format!("/api/streams/{id}/key"), Some(&s.access)).await?;
    ensure!(
        shown.status == 200 && shown.body["stream_key"] == key.as_str(),
        "view: {}",
        shown.text
    );
    ensure!(
        shown.body["rtmp_url"] == app.rtmp_url.as_str() && shown.body["rtmps_url"] == app.rtmps_url.as_str(),
        "rtmp_url and rtmps_url: {}",
        shown.text
    );
    ensure!(key.len() >= 40 && !key.contains('/'), "a long URL-safe key: {key}");
    let rotated = api
        .post(&format!("/api/streams/{id}/key"), Some(&s.access), &json!({}))
        .await?;
    let new_key = rotated.body["stream_key"].as_str().ok_or("no key")?.to_string();
    ensure!(rotated.status == 200 && new_key != key, "rotate: {}", rotated.text);
    ensure!(
        rotated.body["rtmps_url"] == app.rtmps_url.as_str(),
        "rotate names the RTMPS ingest too: {}",
        rotated.text
    );
    let refused = callback(&api, "on-publish", &key, 1, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        refused.status == 403,
        "the rotated-away key: {} {}",
        refused.status,
        refused.text
    );
    ensure!(
        api.get(&format!("/api/streams/{id}/key"), Some(&s.access)).await?.body["stream_key"] == new_key.as_str(),
        "the view follows the rotation"
    );
    api.send(
        api.request(Method::DELETE, &format!("/api/streams/{id}"))
            .bearer_auth(&s.access),
    )
    .await?;
    let dead = callback(&api, "on-publish", &new_key, 2, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        dead.status == 403,
        "a deleted stream's key: {} {}",
        dead.status,
        dead.text
    );
    Ok(())
}

async fn callbacks_without_the_origin_token_get_401(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("tok").await?;
    let (_, key) = api.create_stream(&s, "Token").await?;
    for route in ["on-publish", "on-update", "on-publish-done"] {
        for token in [None, Some("wrong-token"), Some("dev-only-origin-token-change-mf")] {
            let a = callback(&api, route, &key, 3, token).await?;
            ensure!(a.status == 401, "{route} with {token:?}: {} {}", a.status, a.text);
        }
    }
    Ok(())
}

async fn publish_callbacks_accept_good_keys_and_refuse_bad_ones(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("pub").await?;
    let (id, key) = api.create_stream(&s, "Publish").await?;
    for bad in [
        "",
        "nonsense",
        "sk_aaaaaaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &key[..key.len() - 1],
        &format!("{key}x"),
    ] {
        let a = callback(&api, "on-publish", bad, 4, Some(ORIGIN_TOKEN)).await?;
        ensure!(a.status == 403, "key {bad:?}: {} {}", a.status, a.text);
    }
    let a = callback(&api, "on-publish", &key, 4, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        // The stream is renamed to a new broadcast's id (never the key, and not the stream id: each publish is a
        // broadcast of its own).
        a.status == 302
            && a.header("location")
                .is_some_and(|l| l.len() == 16 && l != id && !l.contains("sk_")),
        "good key: {} {:?}",
        a.status,
        a.header("location")
    );
    let live = api.stream(&id).await?;
    ensure!(
        live["status"] == "live" && live["live_since"].as_str().is_some(),
        "live: {live}"
    );
    ensure!(
        callback(&api, "on-update", &key, 4, Some(ORIGIN_TOKEN)).await?.status == 200,
        "heartbeat"
    );
    api.post(&format!("/api/streams/{id}/key"), Some(&s.access), &json!({}))
        .await?;
    let cut = callback(&api, "on-update", &key, 4, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        cut.status == 403,
        "heartbeat with a rotated key: {} {}",
        cut.status,
        cut.text
    );
    ensure!(
        callback(&api, "on-publish-done", &key, 4, Some(ORIGIN_TOKEN))
            .await?
            .status
            == 200,
        "done"
    );
    ensure!(
        api.stream(&id).await?["status"] == "offline",
        "offline after publish-done"
    );
    // A heartbeat still in flight when the publisher stopped arrives after publish-done: it must not bring the
    // stream back to life (it did once; the RTMP suite caught it as a stream that never went offline).
    let current = api.get(&format!("/api/streams/{id}/key"), Some(&s.access)).await?;
    let new_key = current.body["stream_key"].as_str().unwrap_or_default().to_string();
    ensure!(
        callback(&api, "on-publish", &new_key, 5, Some(ORIGIN_TOKEN))
            .await?
            .status
            == 302,
        "publish again"
    );
    ensure!(
        callback(&api, "on-publish-done", &new_key, 5, Some(ORIGIN_TOKEN))
            .await?
            .status
            == 200,
        "done again"
    );
    let late = callback(&api, "on-update", &new_key, 5, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        late.status == 403,
        "a heartbeat after publish-done: {} {}",
        late.status,
        late.text
    );
    ensure!(
        api.stream(&id).await?["status"] == "offline",
        "a late heartbeat must not resurrect the stream"
    );
    Ok(())
}

async fn a_second_publisher_is_refused_and_cannot_end_the_stream(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("dup").await?;
    let (id, key) = api.create_stream(&s, "Duplicate").await?;
    ensure!(
        callback(&api, "on-publish", &key, 10, Some(ORIGIN_TOKEN)).await?.status == 302,
        "first publisher"
    );
    let second = callback(&api, "on-publish", &key, 11, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        second.status == 409 && second.code() == "already_live",
        "second: {} {}",
        second.status,
        second.text
    );
    callback(&api, "on-publish-done", &key, 11, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        api.stream(&id).await?["status"] == "live",
        "the refused publisher's done must not end the stream"
    );
    callback(&api, "on-publish-done", &key, 10, Some(ORIGIN_TOKEN)).await?;
    ensure!(
        api.stream(&id).await?["status"] == "offline",
        "the holder's done ends it"
    );
    Ok(())
}

async fn a_stream_whose_heartbeats_stop_is_ended_by_the_cron(app: &TestApp) -> TestResult {
    let api = app.api();
    let s = api.register("stale").await?;
    let (id, key) = api.create_stream(&s, "Crashed publisher").await?;
    ensure!(
        callback(&api, "on-publish", &key, 77, Some(ORIGIN_TOKEN)).await?.status == 302,
        "publish"
    );
    app.run_cron().await?;
    ensure!(
        api.stream(&id).await?["status"] == "live",
        "a fresh stream survives the sweep"
    );
    // No heartbeats from here on, as when a publisher dies without on_publish_done.
    tokio::time::sleep(Duration::from_secs(TEST_STALE_STREAM_SECONDS + 1)).await;
    eventually(Duration::from_secs(20), "the cron ends the stale stream", || async {
        app.run_cron().await?;
        Ok(api.stream(&id).await?["status"] == "offline")
    })
    .await
}
