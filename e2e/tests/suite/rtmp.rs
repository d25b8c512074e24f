//! The RTMP origin end to end: a real ffmpeg publisher into the real nginx-rtmp (nginx-origin/run), whose callbacks
//! go through the origin's local proxy location to the real worker. Covers the accepted publish (HLS uploaded to the
//! worker and played from the site's own origin, readable by ffprobe, with cache headers; live in the API, offline
//! after the publisher stops),
//! keys that never reach file names or logs, refused keys (bad, deleted, rotated away), the heartbeat cutting off a
//! rotated key's publisher, a second concurrent publisher (409), and the origin token on the callbacks. RTMPS: a
//! publish over TLS (the stream module in front of nginx-rtmp, a self-signed test certificate) to the URL Studio
//! advertises, plain RTMP switched off, and a key posing as the relay over TLS.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sunnylive_e2e::{
    ensure, eventually, next_ip, Api, BoxError, IngestOptions, Session, TestApp, TestResult, ORIGIN_TOKEN,
    TEST_HEARTBEAT_SECONDS,
};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        a_good_key_goes_live_with_playable_hls_and_goes_offline_when_the_publisher_stops,
        the_key_appears_in_no_hls_name_and_no_log,
        bad_deleted_and_rotated_away_keys_are_refused,
        rotating_the_key_cuts_off_a_running_publisher_within_one_heartbeat,
        deleting_a_live_stream_cuts_off_its_publisher_within_one_heartbeat,
        a_second_concurrent_publisher_is_refused_with_409,
        callbacks_reach_the_worker_only_with_the_origin_token,
        the_callback_proxy_serves_only_local_posts_to_the_three_callbacks,
        two_origins_each_carry_their_own_stream_at_once,
        a_key_with_call_update_play_appended_is_cut_within_one_heartbeat_of_a_rotation,
        a_key_with_call_update_play_appended_is_cut_within_one_heartbeat_of_a_deletion,
        fields_appended_to_a_callback_cannot_pose_as_another_publisher_or_as_the_relay,
        a_publish_over_rtmps_goes_live_and_its_segments_reach_the_edge,
        plain_rtmp_can_be_switched_off,
        a_key_with_call_update_play_appended_over_rtmps_is_cut_within_one_heartbeat_of_a_rotation,
        nothing_published_over_rtmps_reaches_the_hls_application,
    )
}

/// Generous bound for "within one heartbeat": the heartbeat interval, plus the callback, plus ffmpeg noticing the
/// closed socket.
fn one_heartbeat() -> Duration {
    Duration::from_secs(TEST_HEARTBEAT_SECONDS + 3)
}

/// ffmpeg's arguments for a test publish to `url` (an rtmp:// or rtmps:// URL with the key): test pattern + tone,
/// H.264/AAC, a keyframe every 2 s, in real time (`-re`), for `seconds`. One place for every suite's publisher.
pub(crate) fn publisher_args(url: &str, seconds: u32, size: &str) -> Vec<String> {
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
        .map(String::from)
        .to_vec();
    // 15 fps, ultrafast: the suite runs up to eight tests at once on two cores, and each publisher must keep up with
    // real time (a keyframe every 2 s, as OBS is told to send).
    args.extend(["-f", "lavfi", "-i"].map(String::from));
    args.push(format!("testsrc=size={size}:rate=15"));
    args.extend(["-f", "lavfi", "-i", "sine", "-t"].map(String::from));
    args.push(seconds.to_string());
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ]
        .map(String::from),
    );
    args.push(url.to_string());
    args
}

/// An ffmpeg test publisher (`publisher_args`), on the runtime: its exit and stderr can be awaited.
pub(crate) struct Publisher {
    child: Child,
    key: String,
}

impl Publisher {
    pub(crate) fn start(app: &TestApp, key: &str, seconds: u32, size: &str) -> Result<Publisher, BoxError> {
        Publisher::start_to(&app.rtmp_url, key, seconds, size)
    }

    /// A publisher into the ingest at `rtmp_url` (another origin than the stack's first).
    pub(crate) fn start_to(rtmp_url: &str, key: &str, seconds: u32, size: &str) -> Result<Publisher, BoxError> {
        let child = Command::new("ffmpeg")
            .args(publisher_args(&format!("{rtmp_url}/{key}"), seconds, size))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting ffmpeg: {e}"))?;
        Ok(Publisher {
            child,
            key: key.to_string(),
        })
    }

    /// Waits up to `timeout` for ffmpeg to exit; its status and its stderr with the key masked (ffmpeg prints the
    /// URL, and test output is no place for keys either).
    pub(crate) async fn finish(mut self, timeout: Duration) -> Result<(ExitStatus, String), BoxError> {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => return Err(format!("ffmpeg still running after {timeout:?}").into()),
        };
        let mut err = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut err).await;
        }
        Ok((status, err.replace(&self.key, "<key>")))
    }

    pub(crate) fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// An API client whose pooled connections are dropped after 4 s idle. wrangler dev's Node server closes idle
/// keep-alive sockets after 5 s; these tests idle that long while ffmpeg runs, and a POST sent on a socket the server
/// is closing fails with "error sending request" (reqwest does not retry non-idempotent requests).
pub(crate) fn api_client(app: &TestApp) -> Result<Api, BoxError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(4))
        .build()?;
    Ok(Api {
        base: app.base.clone(),
        ip: next_ip(),
        client,
    })
}

pub(crate) async fn new_stream(app: &TestApp, who: &str) -> Result<(Api, Session, String, String), BoxError> {
    let api = api_client(app)?;
    let s = api.register(who).await?;
    let (id, key) = api.create_stream(&s, &format!("RTMP {who}")).await?;
    ensure!(
        !id.is_empty() && !key.is_empty(),
        "create_stream returned an id and a key"
    );
    Ok((api, s, id, key))
}

/// The live playlist, as viewers fetch it: from the worker, on the site's own origin.
pub(crate) fn playlist_url(app: &TestApp, id: &str) -> String {
    format!("{}/hls/{id}/live.m3u8", app.base)
}

/// The stream's newest broadcast id (each accepted publish starts one; the origin's HLS directory is named by it).
pub(crate) async fn newest_broadcast(api: &Api, id: &str) -> Result<String, BoxError> {
    let a = api.get(&format!("/api/streams/{id}/broadcasts"), None).await?;
    ensure!(a.status == 200, "list broadcasts: {} {}", a.status, a.text);
    Ok(a.body["broadcasts"][0]["id"].as_str().ok_or("a broadcast")?.to_string())
}

/// The playlist's text once it lists at least one segment (polled every 100 ms up to `timeout`).
pub(crate) async fn wait_for_playlist(app: &TestApp, id: &str, timeout: Duration) -> Result<String, BoxError> {
    let url = playlist_url(app, id);
    let deadline = Instant::now() + timeout;
    loop {
        let r = app.http().get(&url).send().await?;
        if r.status() == 200 {
            let text = r.text().await?;
            if text.lines().any(|l| l.ends_with(".ts")) {
                return Ok(text);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {timeout:?} waiting for {url} to list a segment").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn wait_for_status(api: &Api, id: &str, status: &str, timeout: Duration) -> TestResult {
    eventually(timeout, &format!("stream {id} is {status}"), || async {
        Ok(api.stream(id).await?["status"] == status)
    })
    .await
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Every file and directory under `dir`, recursively (names only matter here).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// How many sessions of the `hls` RTMP application (the internal push) have ended for this broadcast.
fn hls_sessions(app: &TestApp, id: &str) -> usize {
    let needle = format!("PUBLISH \"hls\" \"{id}\"");
    read(&app.origin_prefix.join("logs/rtmp-access.log"))
        .lines()
        .filter(|l| l.contains(&needle))
        .count()
}

async fn ffprobe_video(url: &str) -> Result<Value, BoxError> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
        ])
        .args(["-of", "json", url])
        .output()
        .await
        .map_err(|e| format!("running ffprobe: {e}"))?;
    ensure!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["streams"][0].clone())
}

async fn a_good_key_goes_live_with_playable_hls_and_goes_offline_when_the_publisher_stops(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "golive").await?;
    let started = Instant::now();
    // Long enough for three heartbeats: the internal relay must survive them (see the hls_sessions check below).
    let publisher = Publisher::start(app, &key, 12, "640x360")?;

    let playlist = wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    ensure!(playlist.starts_with("#EXTM3U"), "a playlist: {playlist}");
    let stream = api.stream(&id).await?;
    ensure!(stream["status"] == "live", "live while publishing: {stream}");
    let since = stream["live_since"]
        .as_str()
        .ok_or_else(|| format!("live_since set: {stream}"))?;
    ensure!(
        chrono::DateTime::parse_from_rfc3339(since).is_ok(),
        "live_since is RFC 3339: {since}"
    );
    ensure!(
        stream["hls_url"] == format!("/hls/{id}/master.m3u8").as_str(),
        "hls_url points at the site's own origin: {stream}"
    );
    let broadcast = newest_broadcast(&api, &id).await?;

    let video = ffprobe_video(&playlist_url(app, &id)).await?;
    ensure!(
        video["codec_type"] == "video" && video["codec_name"] == "h264",
        "an H.264 video stream: {video}"
    );
    ensure!(
        video["width"] == 640 && video["height"] == 360,
        "the published size: {video}"
    );

    // What players and edge caches get: the right types, a playlist cached for a second, segments for long.
    let r = app.http().get(playlist_url(app, &id)).send().await?;
    let h = r.headers();
    ensure!(
        h.get("content-type")
            .is_some_and(|v| v == "application/vnd.apple.mpegurl"),
        "playlist type: {h:?}"
    );
    ensure!(
        h.get("cache-control").is_some_and(|v| v == "public, max-age=1"),
        "playlist short-lived: {h:?}"
    );
    let segment = playlist.lines().rev().find(|l| l.ends_with(".ts")).ok_or("a segment")?;
    ensure!(
        segment.starts_with(&format!("{broadcast}/")),
        "segments are named per broadcast: {segment}"
    );
    let r = app
        .http()
        .get(format!("{}/hls/{id}/{segment}", app.base))
        .send()
        .await?;
    let h = r.headers().clone();
    ensure!(
        r.status() == 200 && !r.bytes().await?.is_empty(),
        "the segment downloads"
    );
    ensure!(
        h.get("content-type").is_some_and(|v| v == "video/mp2t"),
        "segment type: {h:?}"
    );
    ensure!(
        h.get("cache-control")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("immutable") && !v.contains("max-age=0")),
        "segments are cacheable: {h:?}"
    );

    let (status, err) = publisher.finish(Duration::from_secs(30)).await?;
    ensure!(
        status.success(),
        "an accepted publisher runs to its end: {status} {err}"
    );
    ensure!(
        started.elapsed() >= Duration::from_secs(11),
        "the publish was not cut short"
    );
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await?;
    ensure!(
        api.stream(&id).await?["live_since"].is_null(),
        "live_since cleared when offline"
    );

    // The push into the hls application is a play session inside the ingest application, so it gets on_update
    // heartbeats too (call=update_play, name=<broadcast id>); if the worker refused them, nginx would restart the
    // relay every heartbeat and viewers would see a gap each time. One broadcast must be one hls session.
    eventually(
        Duration::from_secs(5),
        "the hls session of this broadcast is logged",
        || async { Ok(hls_sessions(app, &broadcast) >= 1) },
    )
    .await?;
    let sessions = hls_sessions(app, &broadcast);
    ensure!(
        sessions == 1,
        "the relay into the hls application ran uninterrupted, but it restarted: {sessions} sessions"
    );
    Ok(())
}

async fn the_key_appears_in_no_hls_name_and_no_log(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "nokey").await?;
    let publisher = Publisher::start(app, &key, 8, "320x180")?;
    wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    // The key's secret part: the id is public (and is in file names on purpose), the MAC must be nowhere.
    // Keys are `sk_<id>_<MAC>`, and the base64url MAC may itself contain `_`.
    let mac = key.strip_prefix(&format!("sk_{id}_")).ok_or("a key is sk_<id>_<MAC>")?;
    ensure!(mac.len() >= 22, "a MAC of at least 128 bits: {} characters", mac.len());

    let broadcast = newest_broadcast(&api, &id).await?;
    let hls_root = app.origin_prefix.join("hls");
    let mut names = walk(&hls_root);
    // nginx-rtmp's own HLS of the ingest, which the transcoder reads: named by broadcast id too.
    let ingest_root = app.origin_prefix.join("ingest");
    let ingest = walk(&ingest_root);
    ensure!(
        ingest.iter().any(|p| p.ends_with(format!("{broadcast}/index.m3u8"))),
        "nginx-rtmp's playlist of the ingest is ingest/<broadcast id>/index.m3u8: {ingest:?}"
    );
    names.extend(ingest);
    ensure!(
        names
            .iter()
            .any(|p| p.ends_with(format!("{broadcast}/source/index.m3u8"))),
        "the origin's source playlist is <broadcast id>/source/index.m3u8: {names:?}"
    );
    for p in &names {
        let name = p
            .strip_prefix(&hls_root)
            .or_else(|_| p.strip_prefix(&ingest_root))
            .unwrap_or(p)
            .to_string_lossy()
            .to_string();
        ensure!(
            !name.contains(&key) && !name.contains(mac),
            "an HLS path carries the key: {}",
            name.replace(&key, "<key>")
        );
    }
    let (status, err) = publisher.finish(Duration::from_secs(30)).await?;
    ensure!(status.success(), "publisher: {status} {err}");
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await?;

    // nginx writes its access lines when sessions end; by now every log that could mention this publish has it.
    let logs = app.all_logs();
    ensure!(
        logs.contains(&id),
        "the logs did see this stream (else this check proves nothing)"
    );
    ensure!(
        !logs.contains(&key) && !logs.contains(mac),
        "the key is in the worker's or nginx's logs"
    );
    for p in walk(&app.origin_prefix) {
        if p.is_file() && !p.starts_with(&hls_root) {
            let text = read(&p);
            ensure!(!text.contains(mac), "{} carries the key", p.display());
        }
    }
    Ok(())
}

async fn bad_deleted_and_rotated_away_keys_are_refused(app: &TestApp) -> TestResult {
    let (api, s, id, key) = new_stream(app, "refuse").await?;
    let (deleted_id, deleted_key) = api.create_stream(&s, "RTMP to be deleted").await?;
    let del = api
        .send(
            api.request(Method::DELETE, &format!("/api/streams/{deleted_id}"))
                .bearer_auth(&s.access),
        )
        .await?;
    ensure!(del.status == 204, "delete: {} {}", del.status, del.text);
    let rotated = api
        .post(&format!("/api/streams/{id}/key"), Some(&s.access), &json!({}))
        .await?;
    ensure!(
        rotated.status == 200 && rotated.body["stream_key"] != key.as_str(),
        "rotate: {}",
        rotated.text
    );

    let forged = format!("sk_{id}_{}", "A".repeat(32));
    let cases = [
        ("a made-up key", "not-a-key-at-all".to_string()),
        ("a well-formed key with a wrong MAC", forged),
        ("a deleted stream's key", deleted_key),
        ("a rotated-away key", key.clone()),
    ];
    for (what, bad) in cases {
        let t = Instant::now();
        let (status, err) = Publisher::start(app, &bad, 10, "320x180")?
            .finish(Duration::from_secs(15))
            .await?;
        ensure!(!status.success(), "{what}: ffmpeg must fail, got {status}");
        ensure!(
            t.elapsed() < Duration::from_secs(8),
            "{what}: refused at once, not after {:?} ({err})",
            t.elapsed()
        );
    }
    let listed = api.get(&format!("/api/streams/{id}/broadcasts"), None).await?;
    ensure!(
        listed.status == 200 && listed.body["broadcasts"].as_array().is_some_and(|b| b.is_empty()),
        "a refused publish starts no broadcast: {}",
        listed.text
    );
    ensure!(
        api.stream(&id).await?["status"] == "offline",
        "a refused publish leaves the stream offline"
    );
    Ok(())
}

/// Publishes with `key`, waits until the stream is live, runs `act`, and checks the publisher is cut off within
/// one heartbeat and the stream is offline after.
async fn cut_off_by<F, Fut>(app: &TestApp, id: &str, key: &str, act: F) -> TestResult
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    cut_off_by_via(app, &app.rtmp_url, id, key, act).await
}

/// `cut_off_by`, publishing into the ingest at `ingest` (`rtmp://` or `rtmps://`).
async fn cut_off_by_via<F, Fut>(app: &TestApp, ingest: &str, id: &str, key: &str, act: F) -> TestResult
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    let mut publisher = Publisher::start_to(ingest, key, 60, "320x180")?;
    wait_for_playlist(app, id, Duration::from_secs(45)).await?;
    ensure!(publisher.still_running(), "the publisher is running");
    act().await?;
    let t = Instant::now();
    let (status, err) = publisher.finish(one_heartbeat()).await?;
    ensure!(
        !status.success(),
        "a cut-off publisher ends with an error: {status} {err}"
    );
    eprintln!(
        "rtmp: publisher cut off {:.1} s after the change (heartbeat {TEST_HEARTBEAT_SECONDS} s)",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn rotating_the_key_cuts_off_a_running_publisher_within_one_heartbeat(app: &TestApp) -> TestResult {
    let (api, s, id, key) = new_stream(app, "rotlive").await?;
    cut_off_by(app, &id, &key, || async {
        let r = api
            .post(&format!("/api/streams/{id}/key"), Some(&s.access), &json!({}))
            .await?;
        ensure!(r.status == 200, "rotate: {} {}", r.status, r.text);
        Ok(())
    })
    .await?;
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await?;
    // The new key works at once.
    let new_key = api.get(&format!("/api/streams/{id}/key"), Some(&s.access)).await?.body["stream_key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let publisher = Publisher::start(app, &new_key, 4, "320x180")?;
    wait_for_status(&api, &id, "live", Duration::from_secs(10)).await?;
    let (status, err) = publisher.finish(Duration::from_secs(20)).await?;
    ensure!(status.success(), "the rotated-in key publishes: {status} {err}");
    Ok(())
}

async fn deleting_a_live_stream_cuts_off_its_publisher_within_one_heartbeat(app: &TestApp) -> TestResult {
    let (api, s, id, key) = new_stream(app, "dellive").await?;
    cut_off_by(app, &id, &key, || async {
        let r = api
            .send(
                api.request(Method::DELETE, &format!("/api/streams/{id}"))
                    .bearer_auth(&s.access),
            )
            .await?;
        ensure!(r.status == 204, "delete: {} {}", r.status, r.text);
        Ok(())
    })
    .await
}

/// Lines of the origin's HTTP access log for on-publish callbacks that the worker answered with `status`.
fn proxied_publishes_with(app: &TestApp, status: u16) -> usize {
    let needle = format!("\"POST /_worker/on-publish HTTP/1.0\" {status} ");
    read(&app.origin_prefix.join("logs/http-access.log"))
        .lines()
        .filter(|l| l.contains(&needle))
        .count()
}

async fn a_second_concurrent_publisher_is_refused_with_409(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "second").await?;
    // Long enough that a slow first segment on a busy machine still leaves it running through the checks below.
    let mut first = Publisher::start(app, &key, 30, "320x180")?;
    wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    let since = api.stream(&id).await?["live_since"].clone();

    let conflicts_before = proxied_publishes_with(app, 409);
    let (status, err) = Publisher::start(app, &key, 10, "320x180")?
        .finish(Duration::from_secs(15))
        .await?;
    ensure!(!status.success(), "the second publisher must fail: {status} {err}");
    // nginx-rtmp only tells ffmpeg "publish failed"; the origin's access log shows what the worker answered.
    eventually(
        Duration::from_secs(3),
        "the worker answered the second on-publish with 409",
        || async { Ok(proxied_publishes_with(app, 409) > conflicts_before) },
    )
    .await?;

    ensure!(first.still_running(), "the first publisher keeps going");
    let stream = api.stream(&id).await?;
    ensure!(
        stream["status"] == "live" && stream["live_since"] == since,
        "still live since the first publish: {stream}"
    );
    // Segments keep coming from the first publisher.
    let before = wait_for_playlist(app, &id, Duration::from_secs(1)).await?;
    let last = |p: &str| p.lines().rev().find(|l| l.ends_with(".ts")).map(str::to_string);
    eventually(
        Duration::from_secs(8),
        "a new segment after the refused publisher",
        || async { Ok(last(&wait_for_playlist(app, &id, Duration::from_secs(1)).await?) != last(&before)) },
    )
    .await?;
    let (status, err) = first.finish(Duration::from_secs(60)).await?;
    ensure!(status.success(), "the first publisher ran to its end: {status} {err}");
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await
}

/// A callback form the way nginx-rtmp writes one.
pub(crate) fn callback_form(key: &str, call: &str, clientid: u32) -> String {
    format!(
        "app=live&flashver=FMLE%2F3.0&swfurl=&tcurl=rtmp%3A%2F%2F127.0.0.1%2Flive&pageurl=&addr=127.0.0.1&clientid={clientid}&call={call}&name={key}&type=live"
    )
}

async fn callbacks_reach_the_worker_only_with_the_origin_token(app: &TestApp) -> TestResult {
    let (api, _s, _id, key) = new_stream(app, "token").await?;
    let form = callback_form(&key, "publish", 4_000_001);
    // Straight to the worker, around the proxy: without the token, or with a wrong one, 401 for every callback.
    for route in ["on-publish", "on-update", "on-publish-done"] {
        for token in [
            None,
            Some("wrong-origin-token-0123456789"),
            Some(&ORIGIN_TOKEN[..ORIGIN_TOKEN.len() - 1]),
        ] {
            let mut rb = api
                .request(Method::POST, &format!("/api/rtmp/{route}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone());
            if let Some(t) = token {
                rb = rb.bearer_auth(t);
            }
            let a = api.send(rb).await?;
            ensure!(a.status == 401, "{route} with token {token:?}: {} {}", a.status, a.text);
        }
    }
    // Through the origin's proxy the token is added, and a caller's own Authorization header is replaced: a wrong
    // one does not reach the worker. A made-up key then gets the key check's 403, not 401.
    let bad = callback_form("not-a-key-at-all", "publish", 4_000_002);
    let r = app
        .http()
        .post(format!("http://127.0.0.1:{}/_worker/on-publish", app.origin_http_port))
        .header("authorization", "Bearer wrong-origin-token-0123456789")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(bad)
        .send()
        .await?;
    ensure!(
        r.status() == 403,
        "through the proxy with a caller's wrong token: {}",
        r.status()
    );
    Ok(())
}

async fn the_callback_proxy_serves_only_local_posts_to_the_three_callbacks(app: &TestApp) -> TestResult {
    let origin = format!("http://127.0.0.1:{}", app.origin_http_port);
    let http = app.http();
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let r = http
            .request(method.clone(), format!("{origin}/_worker/on-publish"))
            .send()
            .await?;
        ensure!(r.status() == 403, "{method} /_worker/on-publish: {}", r.status());
    }
    for path in [
        "/_worker/",
        "/_worker/streams",
        "/_worker/../api/streams",
        "/api/rtmp/on-publish",
        "/hls/",
    ] {
        let r = http.post(format!("{origin}{path}")).body("name=x").send().await?;
        ensure!(r.status() == 404, "POST {path} on the origin: {}", r.status());
    }
    let r = http.get(format!("{origin}/healthz")).send().await?;
    ensure!(r.status() == 200, "readiness probe: {}", r.status());
    Ok(())
}

/// Ingest spread over several origin hosts (one per region): each origin is independent, needs only the worker's
/// URL and the token, and the worker tells their broadcasts apart by id.
async fn two_origins_each_carry_their_own_stream_at_once(app: &TestApp) -> TestResult {
    let second = app.start_extra_origin("b")?;
    let (api, _s, id_a, key_a) = new_stream(app, "regiona").await?;
    let (_, _s2, id_b, key_b) = new_stream(app, "regionb").await?;
    let a = Publisher::start(app, &key_a, 24, "320x180")?;
    let b = Publisher::start_to(&second.rtmp_url, &key_b, 24, "320x180")?;
    wait_for_playlist(app, &id_a, Duration::from_secs(45)).await?;
    wait_for_playlist(app, &id_b, Duration::from_secs(45)).await?;
    for id in [&id_a, &id_b] {
        ensure!(
            api.stream(id).await?["status"] == "live",
            "{id} is live while both publish"
        );
    }
    let (ba, bb) = (
        newest_broadcast(&api, &id_a).await?,
        newest_broadcast(&api, &id_b).await?,
    );
    // Each origin wrote only its own broadcast.
    let first_dirs = walk(&app.origin_prefix.join("hls"));
    let second_dirs = walk(&second.prefix.join("hls"));
    ensure!(
        first_dirs.iter().any(|p| p.ends_with(&ba)) && !first_dirs.iter().any(|p| p.ends_with(&bb)),
        "the first origin carries only stream A"
    );
    ensure!(
        second_dirs.iter().any(|p| p.ends_with(&bb)) && !second_dirs.iter().any(|p| p.ends_with(&ba)),
        "the second origin carries only stream B: {second_dirs:?}"
    );
    for p in [a, b] {
        let (status, err) = p.finish(Duration::from_secs(60)).await?;
        ensure!(status.success(), "both publishers run to their end: {status} {err}");
    }
    wait_for_status(&api, &id_a, "offline", Duration::from_secs(10)).await?;
    wait_for_status(&api, &id_b, "offline", Duration::from_secs(10)).await
}

/// Security review item 1: nginx-rtmp appends whatever follows `?` in the stream name to every callback form, after
/// its own fields. A leaked key published as `<key>?call=update_play` must not pass its heartbeats off as the
/// origin's relay (which the worker accepts without a key check): a rotation cuts it within one heartbeat.
async fn a_key_with_call_update_play_appended_is_cut_within_one_heartbeat_of_a_rotation(app: &TestApp) -> TestResult {
    let (api, s, id, key) = new_stream(app, "appendrot").await?;
    cut_off_by(app, &id, &format!("{key}?call=update_play"), || async {
        let r = api
            .post(&format!("/api/streams/{id}/key"), Some(&s.access), &json!({}))
            .await?;
        ensure!(r.status == 200, "rotate: {} {}", r.status, r.text);
        Ok(())
    })
    .await?;
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await
}

async fn a_key_with_call_update_play_appended_is_cut_within_one_heartbeat_of_a_deletion(app: &TestApp) -> TestResult {
    let (api, s, id, key) = new_stream(app, "appenddel").await?;
    cut_off_by(app, &id, &format!("{key}?call=update_play&addr=127.0.0.1"), || async {
        let r = api
            .send(
                api.request(Method::DELETE, &format!("/api/streams/{id}"))
                    .bearer_auth(&s.access),
            )
            .await?;
        ensure!(r.status == 204, "delete: {} {}", r.status, r.text);
        Ok(())
    })
    .await
}

/// The same forms as nginx writes them, posted straight to the worker: the publisher's appended fields come after
/// nginx's own, and only the first value of each field counts.
async fn fields_appended_to_a_callback_cannot_pose_as_another_publisher_or_as_the_relay(app: &TestApp) -> TestResult {
    let (api, s, id, key) = new_stream(app, "appendform").await?;
    let post = |route: &'static str, form: String| {
        api.send(
            api.request(Method::POST, &format!("/api/rtmp/{route}"))
                .bearer_auth(ORIGIN_TOKEN)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
    };
    // The victim's publish, from 127.0.0.1 as client 8_000_001.
    let a = post("on-publish", callback_form(&key, "publish", 8_000_001)).await?;
    ensure!(a.status == 302, "the victim goes live: {} {}", a.status, a.text);
    // Someone holding the key ends "their own" session with the victim's address and client id appended.
    let forged = format!(
        "{}&addr=127.0.0.1&clientid=8000001",
        callback_form(&key, "publish_done", 8_000_002).replace("addr=127.0.0.1", "addr=203.0.113.9")
    );
    let a = post("on-publish-done", forged).await?;
    ensure!(a.status == 200, "publish-done: {} {}", a.status, a.text);
    ensure!(
        api.stream(&id).await?["status"] == "live",
        "appended addr/clientid ended someone else's broadcast"
    );
    // After a rotation the old key's heartbeat is refused, even with `call=update_play` appended.
    let r = api
        .post(&format!("/api/streams/{id}/key"), Some(&s.access), &json!({}))
        .await?;
    ensure!(r.status == 200, "rotate: {} {}", r.status, r.text);
    let beat = format!("{}&call=update_play", callback_form(&key, "update_publish", 8_000_001));
    let a = post("on-update", beat).await?;
    ensure!(
        a.status == 403,
        "a rotated key's heartbeat posing as the relay: {} {}",
        a.status,
        a.text
    );
    Ok(())
}

/// Security issue 12: stream keys over TLS. The RTMPS URL is the one the key route gives Studio (the worker's
/// `RTMPS_INGEST_URL`); ffmpeg publishes to it through the stream module's TLS, nginx-rtmp checks the key with the
/// worker as for plain RTMP, and the segments reach the worker and its viewers.
async fn a_publish_over_rtmps_goes_live_and_its_segments_reach_the_edge(app: &TestApp) -> TestResult {
    let (api, s, id, key) = new_stream(app, "rtmpslive").await?;
    let shown = api.get(&format!("/api/streams/{id}/key"), Some(&s.access)).await?;
    ensure!(shown.status == 200, "view key: {} {}", shown.status, shown.text);
    let rtmps = shown.body["rtmps_url"].as_str().unwrap_or_default().to_string();
    ensure!(
        rtmps == app.rtmps_url && rtmps.starts_with("rtmps://"),
        "the key route names the origin's RTMPS ingest: {}",
        shown.text.replace(&key, "<key>")
    );
    // Long enough for three heartbeats over TLS, which the relay into the hls application must survive.
    let publisher = Publisher::start_to(&rtmps, &key, 12, "320x180")?;
    let playlist = wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    ensure!(
        api.stream(&id).await?["status"] == "live",
        "live while publishing over RTMPS"
    );
    let broadcast = newest_broadcast(&api, &id).await?;
    let video = ffprobe_video(&playlist_url(app, &id)).await?;
    ensure!(
        video["codec_name"] == "h264" && video["width"] == 320 && video["height"] == 180,
        "the published video, played from the worker: {video}"
    );
    let segment = playlist.lines().rev().find(|l| l.ends_with(".ts")).ok_or("a segment")?;
    ensure!(
        segment.starts_with(&format!("{broadcast}/")),
        "segments are named per broadcast: {segment}"
    );
    let r = app
        .http()
        .get(format!("{}/hls/{id}/{segment}", app.base))
        .send()
        .await?;
    ensure!(
        r.status() == 200 && !r.bytes().await?.is_empty(),
        "the segment downloads from the worker"
    );
    let (status, err) = publisher.finish(Duration::from_secs(30)).await?;
    ensure!(status.success(), "the RTMPS publisher runs to its end: {status} {err}");
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await?;
    // The relay's heartbeats were accepted as the relay's (not refused, which would restart it each time).
    eventually(
        Duration::from_secs(5),
        "the hls session of this broadcast is logged",
        || async { Ok(hls_sessions(app, &broadcast) >= 1) },
    )
    .await?;
    let sessions = hls_sessions(app, &broadcast);
    ensure!(sessions == 1, "the relay ran uninterrupted: {sessions} sessions");
    // nginx-rtmp took the publisher's address from the PROXY protocol header, so its ingest session is logged as
    // the live application's, and the key is in no log.
    ensure!(!app.all_logs().contains(&key), "the key reached a log over RTMPS");
    Ok(())
}

/// `SUNNYLIVE_RTMP_PLAIN=off`: a publish over plain RTMP is refused, to the advertised port, with a good key, and the
/// stream never goes live; the same key over RTMPS goes live. On a public address the plain port is not even
/// listened on (checked in the rendered configuration: only 127.0.0.1 has it, for the internal push); in this test,
/// where everything is on 127.0.0.1, the plain server has no ingest application at all, so even a local publisher
/// is refused.
async fn plain_rtmp_can_be_switched_off(app: &TestApp) -> TestResult {
    let origin = app.start_extra_origin_with(
        "tlsonly",
        IngestOptions {
            rtmps: true,
            plain: false,
        },
    )?;
    let rtmps = origin.rtmps_url.clone().ok_or("an RTMPS origin")?;
    let (api, _s, id, key) = new_stream(app, "plainoff").await?;

    let plain = Publisher::start_to(&origin.rtmp_url, &key, 4, "320x180")?;
    let (status, err) = plain.finish(Duration::from_secs(20)).await?;
    ensure!(
        !status.success(),
        "a plain-RTMP publish with a good key was accepted with plain RTMP off: {status} {err}"
    );
    ensure!(
        api.stream(&id).await?["status"] == "offline",
        "the refused plain publisher made the stream live"
    );

    let tls = Publisher::start_to(&rtmps, &key, 6, "320x180")?;
    wait_for_playlist(app, &id, Duration::from_secs(45)).await?;
    let (status, err) = tls.finish(Duration::from_secs(30)).await?;
    ensure!(status.success(), "the RTMPS publisher runs to its end: {status} {err}");
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await?;

    // What production (SUNNYLIVE_ORIGIN_LISTEN=0.0.0.0) would listen on with plain RTMP off: the plain port on
    // loopback only, RTMPS on every address.
    let conf = origin.prefix.join("render-check");
    let out = std::process::Command::new(sunnylive_e2e::repo_root().join("nginx-origin/run"))
        .arg("render")
        .env("SUNNYLIVE_ORIGIN_PREFIX", &conf)
        .env("SUNNYLIVE_ORIGIN_LISTEN", "0.0.0.0")
        .env("SUNNYLIVE_RTMP_PORT", "1935")
        .env("SUNNYLIVE_RTMP_PLAIN", "off")
        .env("SUNNYLIVE_RTMPS_CERT", app.run_dir.join("origin-tls/cert.pem"))
        .env("SUNNYLIVE_RTMPS_KEY", app.run_dir.join("origin-tls/key.pem"))
        .output()?;
    ensure!(
        out.status.success(),
        "nginx-origin/run render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = std::fs::read_to_string(conf.join("nginx.conf"))?;
    let listens: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("listen "))
        .collect();
    ensure!(
        listens.contains(&"listen 127.0.0.1:1935;") && listens.contains(&"listen 0.0.0.0:1936 ssl;"),
        "plain RTMP on loopback, RTMPS public: {listens:?}"
    );
    ensure!(
        listens
            .iter()
            .all(|l| !l.contains("1935") || l.starts_with("listen 127.0.0.1:")),
        "plain RTMP listens beyond loopback: {listens:?}"
    );
    ensure!(
        rendered.matches("application live").count() == 1,
        "exactly one ingest application (the RTMPS one)"
    );
    Ok(())
}

/// Over RTMPS every publisher reaches nginx-rtmp through the local TLS proxy. nginx-rtmp still reports the
/// publisher's own address (PROXY protocol), and the worker still keeps nginx's own `call` (the first value), so a
/// key published over TLS with `?call=update_play&addr=127.0.0.1` appended cannot pass its heartbeats off as the
/// relay's: a rotation cuts it within one heartbeat.
async fn a_key_with_call_update_play_appended_over_rtmps_is_cut_within_one_heartbeat_of_a_rotation(
    app: &TestApp,
) -> TestResult {
    let (api, s, id, key) = new_stream(app, "rtmpsrelay").await?;
    cut_off_by_via(
        app,
        &app.rtmps_url,
        &id,
        &format!("{key}?call=update_play&addr=127.0.0.1"),
        || async {
            let r = api
                .post(&format!("/api/streams/{id}/key"), Some(&s.access), &json!({}))
                .await?;
            ensure!(r.status == 200, "rotate: {} {}", r.status, r.text);
            Ok(())
        },
    )
    .await?;
    wait_for_status(&api, &id, "offline", Duration::from_secs(10)).await
}

/// The hls application writes whatever is published to it under the name given, and lets 127.0.0.1 publish (the
/// internal push). Every RTMPS publisher comes out of the local TLS proxy, so if that proxy fed the plain RTMP server,
/// anyone could publish over TLS straight into it, without a key, under a live broadcast's id. The RTMPS server has
/// only the ingest application: such a publish is refused and no HLS is written under that name.
async fn nothing_published_over_rtmps_reaches_the_hls_application(app: &TestApp) -> TestResult {
    let name = "zzzzrtmpshls2345";
    let rtmps_root = app.rtmps_url.trim_end_matches("/live");
    let publisher = Publisher::start_to(&format!("{rtmps_root}/hls"), name, 4, "320x180")?;
    let (status, err) = publisher.finish(Duration::from_secs(20)).await?;
    ensure!(
        !status.success(),
        "a publish over RTMPS into the hls application was accepted: {status} {err}"
    );
    for dir in ["hls", "ingest"] {
        ensure!(
            !walk(&app.origin_prefix.join(dir)).iter().any(|p| p.ends_with(name)),
            "HLS was written under {dir}/ under a name published over RTMPS"
        );
    }
    Ok(())
}
