//! Video at the edge, end to end: the origin's uploads into the worker (and every way a bad one is refused with
//! nothing written), playback from the site's own origin through the cache (types, Range, If-None-Match), past
//! broadcasts as VOD, thumbnails, deleting a broadcast, and uploads surviving a worker restart mid-stream.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::Value;
use sunnylive_e2e::{ensure, eventually, Api, BoxError, TestApp, TestResult, ORIGIN_TOKEN};
use tokio::process::Command;

use crate::rtmp::{new_stream, newest_broadcast, playlist_url, wait_for_playlist, wait_for_status, Publisher};
use crate::streams::callback;

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        bad_uploads_are_refused_in_the_contract_shape_and_write_nothing,
        uploaded_segments_are_served_with_ranges_validators_and_discontinuities,
        a_video_cache_hit_writes_no_log_line_and_a_miss_does,
        a_publish_plays_from_the_site_and_stays_watchable_as_vod_with_a_thumbnail,
        only_the_owner_deletes_a_broadcast_and_its_video_goes_with_it,
    )
}

/// Tests that restart the worker: run after everything else, one at a time.
pub fn serial_tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(app, uploads_resume_after_a_worker_restart_mid_stream)
}

static CLIENT_IDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(7_000_000);

/// Starts a broadcast the way nginx-rtmp does (on_publish with the key), without a real publisher.
pub(crate) async fn start_broadcast(api: &Api, key: &str) -> Result<(String, u32), BoxError> {
    let client = CLIENT_IDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let a = callback(api, "on-publish", key, client, Some(ORIGIN_TOKEN)).await?;
    ensure!(a.status == 302, "on-publish: {} {}", a.status, a.text);
    Ok((a.header("location").ok_or("a Location")?.to_string(), client))
}

pub(crate) async fn end_broadcast(api: &Api, key: &str, client: u32) -> TestResult {
    let a = callback(api, "on-publish-done", key, client, Some(ORIGIN_TOKEN)).await?;
    ensure!(a.status == 200, "on-publish-done: {} {}", a.status, a.text);
    Ok(())
}

/// A PUT as the origin's proxy makes it (`token` None: no Authorization at all).
pub(crate) async fn upload(
    api: &Api,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<sunnylive_e2e::Answer, BoxError> {
    let mut rb = api
        .request(Method::PUT, &format!("/api/origin/hls/{path}"))
        .header("content-type", "video/mp2t")
        .body(body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    api.send(rb).await
}

async fn broadcasts(api: &Api, id: &str) -> Result<Vec<Value>, BoxError> {
    let a = api.get(&format!("/api/streams/{id}/broadcasts"), None).await?;
    ensure!(a.status == 200, "list broadcasts: {} {}", a.status, a.text);
    Ok(a.body["broadcasts"].as_array().cloned().unwrap_or_default())
}

async fn bad_uploads_are_refused_in_the_contract_shape_and_write_nothing(app: &TestApp) -> TestResult {
    let (api, s, id, key) = new_stream(app, "badupload").await?;
    let (b, _client) = start_broadcast(&api, &key).await?;
    let small = || vec![0x47u8; 1000];
    // (what, path, token, body, expected status)
    type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("no token", format!("{b}/0.ts?duration=2"), None, small(), 401),
        (
            "a wrong token",
            format!("{b}/0.ts?duration=2"),
            Some("wrong-origin-token-0123456789"),
            small(),
            401,
        ),
        (
            "an unknown broadcast",
            "aaaaaaaaaaaaaaaa/0.ts?duration=2".into(),
            Some(ORIGIN_TOKEN),
            small(),
            404,
        ),
        (
            "a playlist",
            format!("{b}/index.m3u8"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "a leading zero",
            format!("{b}/01.ts?duration=2"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "an upper-case extension",
            format!("{b}/1.TS?duration=2"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "an encoded slash",
            format!("{b}/..%2F1.ts?duration=2"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "an encoded slash inside",
            format!("{b}/a%2F1.ts?duration=2"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "the stream key as a name",
            format!("{b}/{key}"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "the stream key as a segment",
            format!("{b}/{key}.ts?duration=2"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "another image type",
            format!("{b}/thumb.png"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        ("no duration", format!("{b}/0.ts"), Some(ORIGIN_TOKEN), small(), 422),
        (
            "a zero duration",
            format!("{b}/0.ts?duration=0"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "an absurd duration",
            format!("{b}/0.ts?duration=999"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "a bad discontinuity flag",
            format!("{b}/0.ts?duration=2&discontinuity=yes"),
            Some(ORIGIN_TOKEN),
            small(),
            422,
        ),
        (
            "an empty body",
            format!("{b}/0.ts?duration=2"),
            Some(ORIGIN_TOKEN),
            Vec::new(),
            422,
        ),
        (
            "a segment over 16 MiB",
            format!("{b}/0.ts?duration=2"),
            Some(ORIGIN_TOKEN),
            vec![0; 16 * 1024 * 1024 + 1],
            413,
        ),
        (
            "a thumbnail over 1 MiB",
            format!("{b}/thumb.jpg"),
            Some(ORIGIN_TOKEN),
            vec![0; 1024 * 1024 + 1],
            413,
        ),
    ];
    for (what, path, token, body, want) in cases {
        let a = upload(&api, &path, token, body).await?;
        ensure!(a.status == want, "{what}: want {want}, got {} {}", a.status, a.text);
        ensure!(
            !a.code().is_empty() && a.body["error"]["message"].is_string(),
            "{what}: the contract's error shape: {}",
            a.text
        );
    }
    // A path that climbs out of the route is not a route at all.
    let a = upload(&api, &format!("{b}/../0.ts?duration=2"), Some(ORIGIN_TOKEN), small()).await?;
    ensure!(a.status == 404, "a dot-dot path: {} {}", a.status, a.text);
    // Nothing reached R2 or D1.
    let listed = broadcasts(&api, &id).await?;
    ensure!(
        listed.len() == 1 && listed[0]["segment_count"] == 0 && listed[0]["thumbnail_url"].is_null(),
        "nothing recorded: {listed:?}"
    );
    for file in ["0.ts", "1.ts", "thumb.jpg"] {
        let r = app
            .http()
            .get(format!("{}/hls/{id}/{b}/{file}", app.base))
            .send()
            .await?;
        ensure!(r.status() == 404, "{file} was not stored: {}", r.status());
    }
    // A stream that is gone takes no more uploads.
    let del = api
        .send(
            api.request(Method::DELETE, &format!("/api/streams/{id}"))
                .bearer_auth(&s.access),
        )
        .await?;
    ensure!(del.status == 204, "delete stream: {}", del.status);
    let a = upload(&api, &format!("{b}/0.ts?duration=2"), Some(ORIGIN_TOKEN), small()).await?;
    ensure!(
        a.status == 409 && a.code() == "broadcast_ended",
        "upload into a deleted stream's broadcast: {} {}",
        a.status,
        a.text
    );
    Ok(())
}

async fn uploaded_segments_are_served_with_ranges_validators_and_discontinuities(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "serve").await?;
    let (b, client) = start_broadcast(&api, &key).await?;
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let a = upload(
        &api,
        &format!("{b}/0.ts?duration=2.000"),
        Some(ORIGIN_TOKEN),
        body.clone(),
    )
    .await?;
    ensure!(
        a.status == 201 && a.body["stored"] == true,
        "first upload: {} {}",
        a.status,
        a.text
    );
    let a = upload(
        &api,
        &format!("{b}/0.ts?duration=2.000"),
        Some(ORIGIN_TOKEN),
        body.clone(),
    )
    .await?;
    ensure!(
        a.status == 200 && a.body["stored"] == false,
        "a repeated upload is not stored again: {}",
        a.text
    );

    let live = app.http().get(playlist_url(app, &id)).send().await?;
    ensure!(live.status() == 200, "live playlist: {}", live.status());
    let text = live.text().await?;
    ensure!(
        text.contains(&format!("\n{b}/0.ts\n")),
        "the live playlist lists the segment: {text}"
    );

    let url = format!("{}/hls/{id}/{b}/0.ts", app.base);
    let r = app.http().get(&url).send().await?;
    let etag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ensure!(r.status() == 200, "segment: {}", r.status());
    ensure!(
        r.bytes().await?.as_ref() == body.as_slice(),
        "the segment comes back byte for byte"
    );
    let etag = etag.ok_or("segments carry an ETag")?;
    let r = app.http().get(&url).header("range", "bytes=100-199").send().await?;
    let range = r
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ensure!(r.status() == 206, "a range request: {}", r.status());
    ensure!(
        range.as_deref() == Some("bytes 100-199/1000"),
        "Content-Range: {range:?}"
    );
    ensure!(r.bytes().await?.as_ref() == &body[100..200], "the requested bytes");
    let r = app.http().get(&url).header("if-none-match", &etag).send().await?;
    ensure!(r.status() == 304, "If-None-Match with the ETag: {}", r.status());

    // The live playlist is now in the colo's cache (max-age=1) ... (a slow machine may have let that copy expire
    // since: a miss stores a fresh one, so ask again until the answer comes from the cache)
    let mut hit = false;
    for _ in 0..5 {
        let again = app.http().get(playlist_url(app, &id)).send().await?;
        hit = again.headers().get("x-cache").and_then(|v| v.to_str().ok()) == Some("HIT");
        if hit {
            break;
        }
    }
    // Segment 1 never arrives (the origin gave up on it): 2 starts a discontinuity, so players re-sync.
    let a = upload(&api, &format!("{b}/2.ts?duration=2"), Some(ORIGIN_TOKEN), body.clone()).await?;
    ensure!(a.status == 201, "segment 2: {} {}", a.status, a.text);
    // ... and a new segment drops that copy: the next player sees it at once, not a second later.
    let fresh = app.http().get(playlist_url(app, &id)).send().await?.text().await?;
    ensure!(
        hit && fresh.contains(&format!("\n{b}/2.ts\n")),
        "the live playlist lists a new segment at once (it was cached: {hit}): {fresh}"
    );
    let event = app
        .http()
        .get(format!("{}/hls/{id}/{b}/index.m3u8", app.base))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        event.contains("#EXT-X-PLAYLIST-TYPE:EVENT")
            && event.contains("0.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n2.ts"),
        "the gap is a discontinuity in the growing playlist: {event}"
    );
    end_broadcast(&api, &key, client).await?;
    // The live playlist is cached at the edge for a second (max-age=1): gone within that, not at once.
    eventually(Duration::from_secs(4), "no live playlist once offline", || async {
        Ok(app.http().get(playlist_url(app, &id)).send().await?.status() == 404)
    })
    .await?;
    // Cached for up to two seconds while the tail may still arrive.
    eventually(Duration::from_secs(6), "the playlist is closed as VOD", || async {
        let t = app
            .http()
            .get(format!("{}/hls/{id}/{b}/index.m3u8", app.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(t.contains("#EXT-X-PLAYLIST-TYPE:VOD") && t.ends_with("#EXT-X-ENDLIST\n"))
    })
    .await
}

/// The length of what ffprobe can play at `url`, in seconds.
/// Video answers served from the colo's cache are nearly every request a live stream makes: they get no log line
/// (each is a billed Workers Logs event); a miss (an R2 read) and any error keep theirs.
async fn a_video_cache_hit_writes_no_log_line_and_a_miss_does(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "quiethits").await?;
    let (b, client) = start_broadcast(&api, &key).await?;
    let a = upload(
        &api,
        &format!("{b}/0.ts?duration=2"),
        Some(ORIGIN_TOKEN),
        vec![7u8; 500],
    )
    .await?;
    ensure!(a.status == 201, "upload: {} {}", a.status, a.text);
    let url = format!("{}/hls/{id}/{b}/0.ts", app.base);
    let get = |url: String| async move {
        let r = app.http().get(&url).send().await?;
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (cache, request_id) = (header("x-cache"), header("x-request-id").ok_or("no x-request-id")?);
        ensure!(r.status() == 200, "GET {url}: {}", r.status());
        Ok::<_, BoxError>((cache, request_id))
    };
    let (cache, miss_id) = get(url.clone()).await?;
    ensure!(cache.as_deref() == Some("MISS"), "the first fetch: x-cache {cache:?}");
    let line = crate::ops::log_line(app, &miss_id).await?;
    ensure!(line["status"] == 200, "the miss's line: {line}");
    let (cache, hit_id) = get(url.clone()).await?;
    ensure!(cache.as_deref() == Some("HIT"), "the second fetch: x-cache {cache:?}");
    // A request after the hit: once its line is written, the hit's would have been too. (Not /healthz: a healthy
    // health check writes no line either.)
    let later = app.http().get(format!("{}/api/streams/{id}", app.base)).send().await?;
    let later_id = later
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("no x-request-id")?
        .to_string();
    crate::ops::log_line(app, &later_id).await?;
    ensure!(
        !app.all_logs().contains(&format!("\"request_id\":\"{hit_id}\"")),
        "a cache hit wrote a log line"
    );
    end_broadcast(&api, &key, client).await
}

pub(crate) async fn ffprobe_duration(url: &str) -> Result<f64, BoxError> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
            url,
        ])
        .output()
        .await
        .map_err(|e| format!("running ffprobe: {e}"))?;
    ensure!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Waits for a broadcast's closed playlist to hold at least `seconds` of video, and returns it.
async fn wait_for_vod(app: &TestApp, id: &str, b: &str, seconds: f64) -> Result<String, BoxError> {
    let url = format!("{}/hls/{id}/{b}/index.m3u8", app.base);
    let mut text = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        text = app.http().get(&url).send().await?.text().await?;
        let listed: f64 = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .filter_map(|l| l.trim_end_matches(',').parse::<f64>().ok())
            .sum();
        if text.ends_with("#EXT-X-ENDLIST\n") && listed >= seconds {
            return Ok(text);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("{url} never held {seconds} s of closed video: {text}").into())
}

async fn a_publish_plays_from_the_site_and_stays_watchable_as_vod_with_a_thumbnail(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "vod").await?;
    let publish_seconds = 14u32;
    let publisher = Publisher::start(app, &key, publish_seconds, "640x360")?;
    wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    let b = newest_broadcast(&api, &id).await?;

    // The first thumbnail follows the first segment; the stream's cards and the broadcast show it.
    eventually(Duration::from_secs(15), "the stream has a thumbnail", || async {
        Ok(api.stream(&id).await?["thumbnail_url"].is_string())
    })
    .await?;
    let thumb = api.stream(&id).await?["thumbnail_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        thumb.starts_with(&format!("/hls/{id}/{b}/thumb.jpg?v=")),
        "thumbnail URL: {thumb}"
    );
    let r = app.http().get(format!("{}{thumb}", app.base)).send().await?;
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = r.bytes().await?;
    ensure!(
        ct == "image/jpeg" && bytes.starts_with(&[0xff, 0xd8]),
        "a JPEG thumbnail: {ct}, {} bytes",
        bytes.len()
    );

    let (status, err) = publisher.finish(Duration::from_secs(40)).await?;
    ensure!(status.success(), "publisher: {status} {err}");
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await?;
    let listed = broadcasts(&api, &id).await?;
    ensure!(
        listed[0]["id"] == b.as_str() && listed[0]["live"] == false && listed[0]["ended_at"].is_string(),
        "the broadcast ended: {listed:?}"
    );
    ensure!(
        listed[0]["playlist_url"] == format!("/hls/{id}/{b}/master.m3u8").as_str(),
        "playlist_url: {listed:?}"
    );
    // Nothing of the start is lost (nginx-rtmp writes the source from the publish's first frame; the renditions
    // are made from its segments): the VOD is the whole publish, within the slack of ffmpeg's own start and end.
    const SLACK: f64 = 2.0;
    let vod = wait_for_vod(app, &id, &b, f64::from(publish_seconds) - SLACK).await?;
    ensure!(
        vod.contains("#EXT-X-MEDIA-SEQUENCE:0\n"),
        "the VOD starts at the broadcast's start: {vod}"
    );
    let duration = ffprobe_duration(&format!("{}/hls/{id}/{b}/index.m3u8", app.base)).await?;
    eprintln!("video: the VOD plays {duration:.2} s of a {publish_seconds} s publish");
    ensure!(
        (duration - f64::from(publish_seconds)).abs() <= SLACK,
        "the VOD plays {duration:.2} s of a {publish_seconds} s publish"
    );

    // The origin served no viewer: its HTTP side saw only callbacks and uploads.
    let log = std::fs::read_to_string(app.origin_prefix.join("logs/http-access.log")).unwrap_or_default();
    ensure!(
        log.contains("PUT /_worker/hls/"),
        "the origin uploaded (else this check proves nothing)"
    );
    // (Other tests probe the proxy with refused requests on the same origin: only what it answered with success
    // counts.)
    for line in log.lines() {
        let mut fields = line.split('"');
        let request = fields.nth(1).unwrap_or_default();
        let status = fields
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default();
        ensure!(
            !(status.starts_with('2') || status.starts_with('3'))
                || request.split(' ').nth(1).is_some_and(|p| p.starts_with("/_worker/")),
            "the origin served something other than callbacks and uploads: {line}"
        );
    }
    Ok(())
}

async fn only_the_owner_deletes_a_broadcast_and_its_video_goes_with_it(app: &TestApp) -> TestResult {
    let (api, owner, id, key) = new_stream(app, "delb").await?;
    let stranger = api.register("stranger").await?;
    let (b, client) = start_broadcast(&api, &key).await?;
    for seq in 0..3 {
        let a = upload(
            &api,
            &format!("{b}/{seq}.ts?duration=2"),
            Some(ORIGIN_TOKEN),
            vec![0x47; 500],
        )
        .await?;
        ensure!(a.status == 201, "upload {seq}: {} {}", a.status, a.text);
    }
    let path = format!("/api/streams/{id}/broadcasts/{b}");
    let delete = |token: Option<String>| {
        let mut rb = api.request(Method::DELETE, &path);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        api.send(rb)
    };
    let a = delete(Some(owner.access.clone())).await?;
    ensure!(
        a.status == 409 && a.code() == "broadcast_live",
        "a live broadcast: {} {}",
        a.status,
        a.text
    );
    end_broadcast(&api, &key, client).await?;
    let a = delete(None).await?;
    ensure!(a.status == 401, "anonymous: {} {}", a.status, a.text);
    let a = delete(Some(stranger.access.clone())).await?;
    ensure!(a.status == 403, "someone else: {} {}", a.status, a.text);
    let (other_stream, _) = api.create_stream(&owner, "another").await?;
    let a = api
        .send(
            api.request(Method::DELETE, &format!("/api/streams/{other_stream}/broadcasts/{b}"))
                .bearer_auth(&owner.access),
        )
        .await?;
    ensure!(
        a.status == 404,
        "a broadcast of another stream: {} {}",
        a.status,
        a.text
    );
    ensure!(
        broadcasts(&api, &id).await?.len() == 1,
        "nothing was deleted by the refused calls"
    );
    let r = app.http().get(format!("{}/hls/{id}/{b}/0.ts", app.base)).send().await?;
    ensure!(r.status() == 200, "the video is there before: {}", r.status());

    let a = delete(Some(owner.access.clone())).await?;
    ensure!(a.status == 204, "the owner deletes it: {} {}", a.status, a.text);
    ensure!(broadcasts(&api, &id).await?.is_empty(), "gone from the list");
    // Objects never fetched before cannot be in any cache: they must be gone from R2.
    for file in ["1.ts", "2.ts"] {
        let r = app
            .http()
            .get(format!("{}/hls/{id}/{b}/{file}", app.base))
            .send()
            .await?;
        ensure!(r.status() == 404, "{file} after delete: {}", r.status());
    }
    let r = app
        .http()
        .get(format!("{}/hls/{id}/{b}/index.m3u8", app.base))
        .send()
        .await?;
    ensure!(r.status() == 404, "its playlist after delete: {}", r.status());
    Ok(())
}

async fn uploads_resume_after_a_worker_restart_mid_stream(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "restart").await?;
    let publish_seconds = 40u32;
    let publisher = Publisher::start(app, &key, publish_seconds, "320x180")?;
    wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    let b = newest_broadcast(&api, &id).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarted = std::time::Instant::now();
    // The harness's restart blocks on the shared runtime, so it runs on a thread of its own while this test's
    // publisher keeps going.
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| scope.spawn(|| app.restart_worker().map_err(|e| e.to_string())).join())
    })
    .map_err(|_| "the restart panicked")??;
    eprintln!(
        "video: wrangler dev was down for {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    // The publisher is not cut off by heartbeats that could not reach the worker, and runs to its end.
    let (status, err) = publisher.finish(Duration::from_secs(90)).await?;
    ensure!(status.success(), "the publisher survived the restart: {status} {err}");
    // Nothing is lost, neither at the start (nginx-rtmp writes the source from the publish's first frame) nor across
    // the restart (the uploader queues what it cannot send): the VOD is the whole publish, within the slack of
    // ffmpeg's own start and end.
    const SLACK: f64 = 3.0;
    let vod = wait_for_vod(app, &id, &b, f64::from(publish_seconds) - SLACK).await?;
    // Every segment the origin wrote arrived: sequence numbers without a gap, and no discontinuity.
    let seqs: Vec<u32> = vod
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .filter_map(|l| l.trim_end_matches(".ts").parse().ok())
        .collect();
    ensure!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1) && !vod.contains("#EXT-X-DISCONTINUITY\n"),
        "a segment went missing across the restart: {seqs:?}"
    );
    let duration = ffprobe_duration(&format!("{}/hls/{id}/{b}/index.m3u8", app.base)).await?;
    eprintln!("video: the VOD plays {duration:.2} s of a {publish_seconds} s publish");
    ensure!(
        (duration - f64::from(publish_seconds)).abs() <= SLACK,
        "the VOD plays {duration:.2} s of a {publish_seconds} s publish"
    );
    Ok(())
}
