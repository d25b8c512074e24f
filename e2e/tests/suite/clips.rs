//! Clips (issue 25), end to end: a clip of the live stream's last 20 s made during a real publish plays at once
//! (ffprobe: within one segment of 20 s, from the site), has its page with link-preview tags naming it, outlives its
//! broadcast's deletion (R2 listing before and after: the broadcast's other objects go, the clip's stay), and
//! deleting it removes only what it alone held. Every bad request is refused in the contract's shape with nothing
//! written, and clip spam meets the rate limit. Clips made in the same second list in one order on every read and
//! page by two without a skip or a repeat.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sunnylive_e2e::ws::{ChatClient, Credentials};
use sunnylive_e2e::{ensure, eventually, Answer, Api, BoxError, Session, TestApp, TestResult, ORIGIN_TOKEN};

use crate::rtmp::{new_stream, newest_broadcast, wait_for_playlist, wait_for_status, Publisher};
use crate::video::{end_broadcast, ffprobe_duration, start_broadcast, upload};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        a_clip_of_the_live_stream_plays_at_once_outlives_its_broadcast_and_deleting_it_frees_only_its_own_objects,
        bad_clip_requests_are_refused_in_the_contract_shape_and_write_nothing,
        clip_spam_meets_the_rate_limit_and_the_refused_clip_is_not_made,
        a_broadcasts_chat_replays_in_order_at_its_offsets_without_what_a_moderator_deleted,
        a_reported_clip_is_deleted_by_an_operator_and_the_act_is_audited,
        clips_made_in_the_same_second_page_in_a_stable_order_without_skips_or_repeats,
    )
}

async fn make_clip(api: &Api, who: &Session, stream: &str, body: Value) -> Result<Answer, BoxError> {
    api.send(
        api.request(Method::POST, &format!("/api/streams/{stream}/clips"))
            .bearer_auth(&who.access)
            .json(&body),
    )
    .await
}

async fn delete_clip(api: &Api, who: Option<&Session>, clip: &str) -> Result<Answer, BoxError> {
    let mut rb = api.request(Method::DELETE, &format!("/api/clips/{clip}"));
    if let Some(s) = who {
        rb = rb.bearer_auth(&s.access);
    }
    api.send(rb).await
}

fn d1_count(app: &TestApp, sql: &str) -> Result<i64, BoxError> {
    Ok(app.d1_query(sql)?[0]["n"].as_i64().ok_or("a count")?)
}

/// The segment URLs a clip's playlists name, and the longest segment (seconds).
async fn clip_segments(app: &TestApp, playlist_url: &str) -> Result<(Vec<String>, f64), BoxError> {
    let master = app.http().get(format!("{}{playlist_url}", app.base)).send().await?;
    ensure!(master.status() == 200, "the clip's master: {}", master.status());
    let master = master.text().await?;
    let base = playlist_url.trim_end_matches("master.m3u8");
    let mut segments = Vec::new();
    let mut longest: f64 = 0.0;
    for media in master.lines().filter(|l| l.ends_with(".m3u8")) {
        let text = app
            .http()
            .get(format!("{}{base}{media}", app.base))
            .send()
            .await?
            .text()
            .await?;
        ensure!(
            text.ends_with("#EXT-X-ENDLIST\n"),
            "a clip's playlist is closed VOD: {text}"
        );
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                longest = longest.max(d.trim_end_matches(',').parse::<f64>()?);
            } else if line.ends_with(".ts") {
                segments.push(line.to_string());
            }
        }
    }
    ensure!(!segments.is_empty(), "the clip names segments: {master}");
    Ok((segments, longest))
}

async fn a_clip_of_the_live_stream_plays_at_once_outlives_its_broadcast_and_deleting_it_frees_only_its_own_objects(
    app: &TestApp,
) -> TestResult {
    let (api, owner, id, key) = new_stream(app, "clipown").await?;
    let viewer = api.register("clipper").await?;
    let stranger = api.register("clipstranger").await?;
    let publisher = Publisher::start(app, &key, 34, "640x360")?;
    wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    // Enough of the live broadcast for a 20-s clip.
    eventually(Duration::from_secs(60), "the live broadcast holds 24 s", || async {
        let a = api.get(&format!("/api/streams/{id}/broadcasts"), None).await?;
        Ok(a.body["broadcasts"][0]["duration_seconds"].as_f64().unwrap_or(0.0) >= 24.0)
    })
    .await?;

    let made = make_clip(
        &api,
        &viewer,
        &id,
        json!({ "duration_seconds": 20, "title": "The \"moment\" <3" }),
    )
    .await?;
    let made_at = std::time::Instant::now();
    ensure!(
        made.status == 201,
        "clip the live stream: {} {}",
        made.status,
        made.text
    );
    let clip = made.body["clip"].clone();
    let clip_id = clip["id"].as_str().ok_or("a clip id")?.to_string();
    let b = clip["broadcast_id"].as_str().ok_or("its broadcast")?.to_string();
    ensure!(
        clip["creator"]["id"] == viewer.user_id.as_str()
            && clip["title"] == "The \"moment\" <3"
            && clip["page_url"] == format!("/clip/{clip_id}").as_str()
            && clip["playlist_url"] == format!("/hls/{id}/clips/{clip_id}/master.m3u8").as_str(),
        "the clip: {clip}"
    );
    let playlist_url = clip["playlist_url"].as_str().unwrap_or_default().to_string();

    // It plays at once, from the site: its playlists and first segment are there within 2 s of the answer, and
    // ffprobe reads the whole clip, within one segment of 20 s.
    let (segments, longest) = clip_segments(app, &playlist_url).await?;
    let first = app.http().get(format!("{}{}", app.base, segments[0])).send().await?;
    ensure!(first.status() == 200, "the clip's first segment: {}", first.status());
    first.bytes().await?;
    let ready = made_at.elapsed();
    println!(
        "clips: the clip's master, media playlists and first segment fetched {} ms after it was made",
        ready.as_millis()
    );
    ensure!(
        ready <= Duration::from_secs(2),
        "the clip took {ready:?} to be playable"
    );
    let duration = ffprobe_duration(&format!("{}{playlist_url}", app.base)).await?;
    println!("clips: a 20-s clip of live video plays {duration:.2} s (segments up to {longest:.2} s)");
    ensure!(
        (duration - 20.0).abs() <= longest + 0.1,
        "the clip plays {duration:.2} s, more than one segment ({longest} s) off 20 s"
    );
    ensure!(
        (clip["duration_seconds"].as_f64().unwrap_or(0.0) - 20.0).abs() <= longest / 2.0 + 0.01,
        "duration_seconds within half a segment: {clip}"
    );

    // Its page names it for link previews, in the HTML as sent (bots run no script).
    let page = app.http().get(format!("{}/clip/{clip_id}", app.base)).send().await?;
    ensure!(page.status() == 200, "the clip's page: {}", page.status());
    let html = page.text().await?;
    ensure!(
        html.contains(r#"<meta property="og:title" content="The &quot;moment&quot; &lt;3">"#)
            && html.contains(&format!(
                r#"<meta property="og:url" content="{}/clip/{clip_id}">"#,
                app.site
            ))
            && html.contains(&format!(
                r#"<meta property="og:image" content="{}/hls/{id}/clips/{clip_id}/thumb.jpg">"#,
                app.site
            ))
            && html.contains("<title>The &quot;moment&quot; &lt;3 · Sunnylive</title>"),
        "the page's preview tags name the clip: {}",
        html.lines()
            .filter(|l| l.contains("<meta") || l.contains("<title"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let missing = app
        .http()
        .get(format!("{}/clip/aaaaaaaaaaaaaaaa", app.base))
        .send()
        .await?;
    ensure!(missing.status() == 404, "no such clip's page: {}", missing.status());

    // Listed for the stream, newest first, and readable by anyone.
    let a = api.get(&format!("/api/clips/{clip_id}"), None).await?;
    ensure!(
        a.status == 200 && a.body["clip"] == clip,
        "GET the clip: {} {}",
        a.status,
        a.text
    );
    let a = api.get(&format!("/api/streams/{id}/clips"), None).await?;
    ensure!(
        a.status == 200 && a.body["clips"][0]["id"] == clip_id.as_str(),
        "the stream's clips: {}",
        a.text
    );

    let (status, err) = publisher.finish(Duration::from_secs(60)).await?;
    ensure!(status.success(), "publisher: {status} {err}");
    wait_for_status(&api, &id, "offline", Duration::from_secs(15)).await?;
    // The clip's thumbnail is its own copy (the broadcast had one by now).
    let thumb = clip["thumbnail_url"].as_str().ok_or("the clip has a thumbnail")?;
    let r = app.http().get(format!("{}{thumb}", app.base)).send().await?;
    let bytes = r.bytes().await?;
    ensure!(bytes.starts_with(&[0xff, 0xd8]), "the clip's thumbnail is a JPEG");

    // A second clip, of the past broadcast, by the owner; deleting it while the broadcast exists takes only its
    // thumbnail.
    let second = make_clip(
        &api,
        &owner,
        &id,
        json!({ "duration_seconds": 6, "broadcast_id": b, "start_seconds": 2 }),
    )
    .await?;
    ensure!(
        second.status == 201,
        "clip the past broadcast: {} {}",
        second.status,
        second.text
    );
    let second_id = second.body["clip"]["id"].as_str().unwrap_or_default().to_string();
    let before = app.r2_keys(&format!("hls/{id}/"))?;
    let a = delete_clip(&api, Some(&owner), &second_id).await?;
    ensure!(
        a.status == 204,
        "the stream's owner deletes a clip: {} {}",
        a.status,
        a.text
    );
    let after = app.r2_keys(&format!("hls/{id}/"))?;
    let gone: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
    ensure!(
        gone.iter()
            .all(|k| k.starts_with(&format!("hls/{id}/clips/{second_id}/")))
            && after.len() + 1 >= before.len(),
        "deleting a clip of a live broadcast took only its own thumbnail: {gone:?}"
    );

    // The broadcast is deleted: its objects go, but what the clip holds.
    let broadcast_objects = before
        .iter()
        .filter(|k| k.starts_with(&format!("hls/{id}/{b}/")))
        .count();
    let a = api
        .send(
            api.request(Method::DELETE, &format!("/api/streams/{id}/broadcasts/{b}"))
                .bearer_auth(&owner.access),
        )
        .await?;
    ensure!(
        a.status == 204,
        "the owner deletes the broadcast: {} {}",
        a.status,
        a.text
    );
    app.run_cron().await?;
    let left = app.r2_keys(&format!("hls/{id}/{b}/"))?;
    let held: Vec<String> = segments.iter().map(|s| s.trim_start_matches('/').to_string()).collect();
    ensure!(
        !left.is_empty() && left.len() < broadcast_objects,
        "the broadcast's objects went but the clip's: {} of {broadcast_objects} left",
        left.len()
    );
    ensure!(
        held.iter().all(|k| left.contains(k)),
        "every segment the clip plays is still in R2"
    );
    let mut listed: Vec<String> = app
        .d1_query(&format!(
            "SELECT DISTINCT key FROM clip_objects WHERE key LIKE 'hls/{id}/{b}/%' ORDER BY key"
        ))?
        .iter()
        .filter_map(|r| r["key"].as_str().map(String::from))
        .collect();
    listed.sort();
    ensure!(
        left == listed,
        "only objects a clip holds are left: {left:?} vs {listed:?}"
    );
    let r = app
        .http()
        .get(format!("{}/hls/{id}/{b}/index.m3u8", app.base))
        .send()
        .await?;
    ensure!(r.status() == 404, "the broadcast's playlist is gone: {}", r.status());
    let duration = ffprobe_duration(&format!("{}{playlist_url}", app.base)).await?;
    ensure!(
        (duration - 20.0).abs() <= longest + 0.1,
        "after its broadcast's deletion the clip still plays: {duration:.2} s"
    );

    // Someone else cannot delete it; its creator can, and then nothing of it or its broadcast is left.
    let listing = app.r2_keys(&format!("hls/{id}/"))?;
    let a = delete_clip(&api, Some(&stranger), &clip_id).await?;
    ensure!(
        a.status == 403 && a.code() == "not_allowed" && a.body["error"]["message"].is_string(),
        "someone else's clip: {} {}",
        a.status,
        a.text
    );
    let a = delete_clip(&api, None, &clip_id).await?;
    ensure!(a.status == 401, "anonymous: {} {}", a.status, a.text);
    ensure!(
        app.r2_keys(&format!("hls/{id}/"))? == listing,
        "the refused deletes took nothing"
    );
    let a = delete_clip(&api, Some(&viewer), &clip_id).await?;
    ensure!(a.status == 204, "its creator deletes it: {} {}", a.status, a.text);
    let remaining = app.r2_keys(&format!("hls/{id}/"))?;
    ensure!(
        remaining.is_empty(),
        "deleting the clip took what only it held: {remaining:?}"
    );
    let a = api.get(&format!("/api/clips/{clip_id}"), None).await?;
    ensure!(
        a.status == 404 && a.code() == "clip_not_found",
        "a deleted clip: {} {}",
        a.status,
        a.text
    );
    let r = app.http().get(format!("{}{playlist_url}", app.base)).send().await?;
    ensure!(r.status() == 404, "a deleted clip's playlist: {}", r.status());
    Ok(())
}

/// A broadcast of `seconds` of 2-s fake segments, uploaded as the origin would; ended when `end`.
async fn fake_broadcast(api: &Api, key: &str, segments: u32, end: bool) -> Result<String, BoxError> {
    let (b, client) = start_broadcast(api, key).await?;
    for seq in 0..segments {
        let a = upload(
            api,
            &format!("{b}/{seq}.ts?duration=2"),
            Some(ORIGIN_TOKEN),
            vec![0x47; 376],
        )
        .await?;
        ensure!(a.status == 201, "upload {seq}: {} {}", a.status, a.text);
    }
    if end {
        end_broadcast(api, key, client).await?;
    }
    Ok(b)
}

async fn bad_clip_requests_are_refused_in_the_contract_shape_and_write_nothing(app: &TestApp) -> TestResult {
    let (api, owner, id, key) = new_stream(app, "clipbad").await?;
    let viewer = api.register("clipbadv").await?;
    // Not live, no broadcast named: nothing to clip.
    for body in [
        json!({ "duration_seconds": 10 }),
        json!({ "duration_seconds": 10, "start_seconds": 0 }),
    ] {
        let a = make_clip(&api, &viewer, &id, body.clone()).await?;
        ensure!(
            a.status == 409 && a.code() == "not_live",
            "not live, {body}: {} {}",
            a.status,
            a.text
        );
    }
    let b = fake_broadcast(&api, &key, 5, true).await?;
    let count = format!("SELECT COUNT(*) AS n FROM clips WHERE stream_id = '{id}'");
    for (body, status, field) in [
        (
            json!({ "duration_seconds": 61, "broadcast_id": b, "start_seconds": 0 }),
            422,
            "duration_seconds",
        ),
        (
            json!({ "duration_seconds": 4.9, "broadcast_id": b, "start_seconds": 0 }),
            422,
            "duration_seconds",
        ),
        (
            json!({ "duration_seconds": "10", "broadcast_id": b }),
            422,
            "duration_seconds",
        ),
        (json!({ "broadcast_id": b }), 422, "duration_seconds"),
        // The broadcast holds 10 s: a clip from 8 s for 5 s, or from 60 s, lies outside it.
        (
            json!({ "duration_seconds": 5, "broadcast_id": b, "start_seconds": 8 }),
            422,
            "start_seconds",
        ),
        (
            json!({ "duration_seconds": 5, "broadcast_id": b, "start_seconds": 60 }),
            422,
            "start_seconds",
        ),
        (
            json!({ "duration_seconds": 5, "broadcast_id": b, "start_seconds": -1 }),
            422,
            "start_seconds",
        ),
        (
            json!({ "duration_seconds": 5, "broadcast_id": b, "title": "  " }),
            422,
            "title",
        ),
        (
            json!({ "duration_seconds": 5, "broadcast_id": "../../x" }),
            422,
            "broadcast_id",
        ),
        (
            json!({ "duration_seconds": 5, "broadcast_id": "aaaaaaaaaaaaaaaa" }),
            404,
            "",
        ),
    ] {
        let a = make_clip(&api, &viewer, &id, body.clone()).await?;
        ensure!(
            a.status == status && a.body["error"]["message"].is_string(),
            "{body}: {} {}",
            a.status,
            a.text
        );
        if !field.is_empty() {
            ensure!(
                a.code() == "validation_failed" && a.body["error"]["fields"][field].is_string(),
                "{body}: names {field}: {}",
                a.text
            );
        }
    }
    let a = api
        .send(
            api.request(Method::POST, &format!("/api/streams/{id}/clips"))
                .json(&json!({ "duration_seconds": 5, "broadcast_id": b })),
        )
        .await?;
    ensure!(a.status == 401, "anonymous: {} {}", a.status, a.text);
    let a = make_clip(&api, &viewer, "aaaaaaaaaaaaaaaa", json!({ "duration_seconds": 5 })).await?;
    ensure!(
        a.status == 404 && a.code() == "stream_not_found",
        "no such stream: {}",
        a.text
    );
    ensure!(d1_count(app, &count)? == 0, "no refused request wrote a clip");

    // A good one, then someone else's delete is refused and changes nothing.
    let a = make_clip(
        &api,
        &viewer,
        &id,
        json!({ "duration_seconds": 5, "broadcast_id": b, "start_seconds": 0 }),
    )
    .await?;
    ensure!(a.status == 201, "a 5-s clip: {} {}", a.status, a.text);
    ensure!(
        a.body["clip"]["start_seconds"] == 0.0 && a.body["clip"]["duration_seconds"].as_f64() == Some(6.0),
        "cut to whole 2-s segments within half a segment of 5 s: {}",
        a.text
    );
    let clip_id = a.body["clip"]["id"].as_str().unwrap_or_default().to_string();
    let other = api.register("clipother").await?;
    let a = delete_clip(&api, Some(&other), &clip_id).await?;
    ensure!(
        a.status == 403 && a.code() == "not_allowed",
        "someone else's clip: {} {}",
        a.status,
        a.text
    );
    let a = delete_clip(&api, Some(&other), "aaaaaaaaaaaaaaaa").await?;
    ensure!(
        a.status == 404 && a.code() == "clip_not_found",
        "no such clip: {} {}",
        a.status,
        a.text
    );
    ensure!(d1_count(app, &count)? == 1, "the refused delete kept the clip");
    let a = api
        .get(&format!("/api/streams/{id}/clips?cursor=nonsense"), None)
        .await?;
    ensure!(a.status == 422, "a bad cursor: {} {}", a.status, a.text);
    let _ = owner;
    Ok(())
}

async fn clip_spam_meets_the_rate_limit_and_the_refused_clip_is_not_made(app: &TestApp) -> TestResult {
    let (api, _owner, id, key) = new_stream(app, "clipspam").await?;
    let spammer = api.register("clipspammer").await?;
    let b = fake_broadcast(&api, &key, 5, true).await?;
    let count = format!("SELECT COUNT(*) AS n FROM clips WHERE stream_id = '{id}'");
    let mut made = 0;
    for attempt in 0..25 {
        let a = make_clip(&api, &spammer, &id, json!({ "duration_seconds": 5, "broadcast_id": b })).await?;
        if a.status == 429 {
            ensure!(
                a.code() == "rate_limited" && a.header("retry-after").is_some(),
                "the 429: {} {:?}",
                a.text,
                a.header("retry-after")
            );
            ensure!(made >= 10, "at least 10 clips pass before the limit: {made}");
            ensure!(d1_count(app, &count)? == made, "the refused clip was not made");
            return Ok(());
        }
        ensure!(a.status == 201, "clip {attempt}: {} {}", a.status, a.text);
        made += 1;
    }
    Err(format!("{made} clips in a row and no 429").into())
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Unix ms of an RFC 3339 UTC time with milliseconds (`2026-12-06T10:00:05.123Z`), as the playlists write it.
fn parse_pdt(t: &str) -> Option<i64> {
    let (date, time) = t.trim().trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|n| n.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, ms) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|n| n.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms.parse::<i64>().ok()?)
}

async fn a_broadcasts_chat_replays_in_order_at_its_offsets_without_what_a_moderator_deleted(
    app: &TestApp,
) -> TestResult {
    let (api, owner, id, key) = new_stream(app, "replay").await?;
    let viewer = api.register("replayfan").await?;
    let publisher = Publisher::start(app, &key, 16, "320x180")?;
    wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    let b = newest_broadcast(&api, &id).await?;
    let mut host = ChatClient::connect(&app.base, &id, Credentials::Bearer(&owner.access)).await?;
    let mut fan = ChatClient::connect(&app.base, &id, Credentials::Bearer(&viewer.access)).await?;
    let mut sent = Vec::new();
    for text in ["first", "deleted later", "third"] {
        let at = unix_ms();
        fan.send_json(&json!({"type": "chat", "text": text})).await?;
        let frame = host.next_of_type("chat", Duration::from_secs(10)).await?;
        sent.push((text, at, frame["id"].as_str().unwrap_or_default().to_string()));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    host.send_json(&json!({"type": "delete", "id": sent[1].2})).await?;
    host.next_of_type("deleted", Duration::from_secs(10)).await?;
    let (status, err) = publisher.finish(Duration::from_secs(60)).await?;
    ensure!(status.success(), "publisher: {status} {err}");
    wait_for_status(&api, &id, "offline", Duration::from_secs(15)).await?;

    // The broadcast's time starts at its first segment's program date-time.
    let playlist = app
        .http()
        .get(format!("{}/hls/{id}/{b}/index.m3u8", app.base))
        .send()
        .await?
        .text()
        .await?;
    let base = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .and_then(parse_pdt)
        .ok_or_else(|| format!("the playlist carries a program date-time: {playlist}"))?;
    let a = api.get(&format!("/api/streams/{id}/broadcasts/{b}/chat"), None).await?;
    ensure!(a.status == 200, "the replay: {} {}", a.status, a.text);
    let messages = a.body["messages"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = messages.iter().filter_map(|m| m["text"].as_str()).collect();
    ensure!(
        texts == ["first", "third"],
        "in order, without the deleted one: {texts:?}"
    );
    for (m, (text, at, _)) in messages.iter().zip([&sent[0], &sent[2]]) {
        let offset = m["offset_ms"].as_i64().ok_or("offset_ms")?;
        let expected = at - base;
        println!("clips: replay of {text:?}: offset {offset} ms, sent at {expected} ms into the broadcast");
        ensure!(
            (offset - expected).abs() <= 1000,
            "{text:?} replays at {offset} ms, sent at {expected} ms"
        );
        ensure!(
            m["kind"] == "chat" && m["user"]["username"] == viewer.username.as_str() && m["ts"].is_string(),
            "a replay item: {m}"
        );
    }
    ensure!(a.body["next_from_ms"].is_null(), "one page: {}", a.text);

    // Forward pages: one message each, from next_from_ms.
    let first = api
        .get(&format!("/api/streams/{id}/broadcasts/{b}/chat?limit=1"), None)
        .await?;
    let next = first.body["next_from_ms"].as_i64().ok_or("a next page")?;
    let second = api
        .get(
            &format!("/api/streams/{id}/broadcasts/{b}/chat?limit=1&from_ms={next}"),
            None,
        )
        .await?;
    ensure!(
        first.body["messages"][0]["text"] == "first" && second.body["messages"][0]["text"] == "third",
        "paginated forward: {} then {}",
        first.text,
        second.text
    );
    let a = api
        .get(&format!("/api/streams/{id}/broadcasts/{b}/chat?from_ms=-1"), None)
        .await?;
    ensure!(
        a.status == 422 && a.body["error"]["fields"]["from_ms"].is_string(),
        "from_ms=-1: {}",
        a.text
    );
    let a = api
        .get(&format!("/api/streams/{id}/broadcasts/aaaaaaaaaaaaaaaa/chat"), None)
        .await?;
    ensure!(
        a.status == 404 && a.code() == "broadcast_not_found",
        "no such broadcast: {}",
        a.text
    );

    // Deleted with its broadcast.
    let a = api
        .send(
            api.request(Method::DELETE, &format!("/api/streams/{id}/broadcasts/{b}"))
                .bearer_auth(&owner.access),
        )
        .await?;
    ensure!(a.status == 204, "delete the broadcast: {} {}", a.status, a.text);
    let a = api.get(&format!("/api/streams/{id}/broadcasts/{b}/chat"), None).await?;
    ensure!(a.status == 404, "a deleted broadcast's replay: {} {}", a.status, a.text);
    Ok(())
}

/// Issue 26 for clips: a viewer reports a clip; an operator deletes it (whoever made it) and the act is audited; a
/// normal user cannot, and a clip that is gone is 404 to the operator too.
async fn a_reported_clip_is_deleted_by_an_operator_and_the_act_is_audited(app: &TestApp) -> TestResult {
    let (api, _owner, id, key) = new_stream(app, "clipreport").await?;
    let viewer = api.register("clipreporter").await?;
    let b = fake_broadcast(&api, &key, 5, true).await?;
    let made = make_clip(&api, &viewer, &id, json!({ "duration_seconds": 6, "broadcast_id": b })).await?;
    ensure!(made.status == 201, "clip: {} {}", made.status, made.text);
    let clip = made.body["clip"]["id"].as_str().unwrap_or_default().to_string();
    let report = api
        .post(
            "/api/reports",
            Some(&viewer.access),
            &json!({ "target_type": "clip", "target_id": clip, "reason": "harassment" }),
        )
        .await?;
    ensure!(
        report.status == 201 && report.body["report"]["target_type"] == "clip",
        "report: {} {}",
        report.status,
        report.text
    );
    let nothing = api
        .post(
            "/api/reports",
            Some(&viewer.access),
            &json!({ "target_type": "clip", "target_id": "aaaaaaaaaaaaaaaa", "reason": "spam" }),
        )
        .await?;
    ensure!(
        nothing.status == 404 && nothing.code() == "report_target_not_found",
        "a report of no clip: {} {}",
        nothing.status,
        nothing.text
    );
    async fn admin_delete(api: &Api, who: &Session, clip: &str) -> Result<Answer, BoxError> {
        api.send(
            api.request(
                Method::DELETE,
                &format!("/api/admin/clips/{clip}?reason=harassing%20clip"),
            )
            .bearer_auth(&who.access),
        )
        .await
    }
    let refused = admin_delete(&api, &viewer, &clip).await?;
    ensure!(
        refused.status == 403 && refused.code() == "not_operator",
        "a viewer's operator delete: {} {}",
        refused.status,
        refused.text
    );
    ensure!(
        d1_count(app, &format!("SELECT COUNT(*) AS n FROM clips WHERE id = '{clip}'"))? == 1,
        "the refused delete changed nothing"
    );
    let op = crate::operator::operator(app, &api).await?;
    let deleted = admin_delete(&api, &op, &clip).await?;
    ensure!(
        deleted.status == 204,
        "operator delete: {} {}",
        deleted.status,
        deleted.text
    );
    let gone = api.get(&format!("/api/clips/{clip}"), None).await?;
    ensure!(gone.status == 404, "the clip after: {} {}", gone.status, gone.text);
    ensure!(
        d1_count(
            app,
            &format!("SELECT COUNT(*) AS n FROM clip_objects WHERE clip_id = '{clip}'")
        )? == 0,
        "its objects' rows went with it"
    );
    let audit = api.get("/api/admin/audit?limit=100", Some(&op.access)).await?;
    let entries = audit.body["entries"].as_array().cloned().unwrap_or_default();
    ensure!(
        entries.iter().any(|e| e["action"] == "delete_clip"
            && e["target_type"] == "clip"
            && e["target_id"] == clip.as_str()
            && e["reason"] == "harassing clip"),
        "the act is in the audit: {}",
        audit.text
    );
    let again = admin_delete(&api, &op, &clip).await?;
    ensure!(
        again.status == 404 && again.code() == "clip_not_found",
        "a second delete: {} {}",
        again.status,
        again.text
    );
    Ok(())
}

/// `created_at` is in whole seconds, so clips made in the same second are told apart by their id: newest second
/// first, then by id, the same on every read, and a page's cursor resumes exactly after its last clip.
async fn clips_made_in_the_same_second_page_in_a_stable_order_without_skips_or_repeats(app: &TestApp) -> TestResult {
    let (api, _owner, id, key) = new_stream(app, "clipsecond").await?;
    let makers = [api.register("clipsec").await?, api.register("clipsec").await?];
    let b = fake_broadcast(&api, &key, 5, true).await?;
    // Six at once, three by each of two people (inside each one's rate limit); again if no three of them shared a
    // second.
    let mut made: Vec<Value> = Vec::new();
    for round in 0..3 {
        let answers = futures::future::join_all((0..6).map(|i| {
            make_clip(
                &api,
                &makers[i % 2],
                &id,
                json!({ "duration_seconds": 5, "broadcast_id": b, "title": format!("same second {round}-{i}") }),
            )
        }))
        .await;
        for a in answers {
            let a = a?;
            ensure!(a.status == 201, "a clip: {} {}", a.status, a.text);
            made.push(a.body["clip"].clone());
        }
        let mut per_second: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for c in &made {
            *per_second
                .entry(c["created_at"].as_str().unwrap_or_default())
                .or_default() += 1;
        }
        if per_second.values().any(|&n| n >= 3) {
            break;
        }
    }
    let key_of = |c: &Value| {
        (
            c["created_at"].as_str().unwrap_or_default().to_string(),
            c["id"].as_str().unwrap_or_default().to_string(),
        )
    };
    let mut want: Vec<(String, String)> = made.iter().map(key_of).collect();
    ensure!(
        want.iter()
            .any(|(at, _)| want.iter().filter(|(t, _)| t == at).count() >= 3),
        "three clips made in the same second: {want:?}"
    );
    // Newest first; within a second, by id (descending).
    want.sort_by(|a, b| b.cmp(a));
    let whole = api.get(&format!("/api/streams/{id}/clips?limit=100"), None).await?;
    ensure!(whole.status == 200, "the listing: {} {}", whole.status, whole.text);
    let listed: Vec<(String, String)> = whole.body["clips"]
        .as_array()
        .map(|a| a.iter().map(key_of).collect())
        .unwrap_or_default();
    ensure!(
        listed == want,
        "the listing is newest first, by id within a second:\n{listed:?}\nvs\n{want:?}"
    );
    for _ in 0..3 {
        let again = api.get(&format!("/api/streams/{id}/clips?limit=100"), None).await?;
        ensure!(
            again.body["clips"] == whole.body["clips"],
            "every read lists them in the same order"
        );
    }
    // Pages of two: each clip once, in the listing's order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let q = cursor
            .as_ref()
            .map_or("limit=2".to_string(), |c| format!("limit=2&cursor={c}"));
        let a = api.get(&format!("/api/streams/{id}/clips?{q}"), None).await?;
        ensure!(a.status == 200, "a page: {} {}", a.status, a.text);
        let page: Vec<(String, String)> = a.body["clips"]
            .as_array()
            .map(|a| a.iter().map(key_of).collect())
            .unwrap_or_default();
        ensure!(page.len() <= 2, "a page of at most two: {page:?}");
        paged.extend(page);
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    ensure!(
        paged == want,
        "paged by two, every clip once in order:\n{paged:?}\nvs\n{want:?}"
    );
    Ok(())
}
