//! Renditions end to end (issue 22): a real 1280x720 30 fps publish with audio through nginx-rtmp, the origin's
//! transcoder (one ffmpeg: the source remuxed plus the configured ladder) and the uploader into the Worker; the
//! master playlist at the edge with measured bandwidth, resolution, frame rate and codecs, lowest first; every
//! variant's segments decoding at the advertised size, segment k starting at the same time in every rendition,
//! `#EXT-X-PROGRAM-DATE-TIME` within a second of the publisher's own clock; the past broadcast keeping every
//! rendition. Bad input: a rendition name outside the allowlist (422, nothing written), a rendition a broadcast does
//! not have (404 in the error shape), an audio-only publish (source only, logged). An upload puts the new live window
//! into the colo's cache after answering (write-through), instead of leaving every viewer's next poll to miss.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libtest_mimic::Trial;
use serde_json::Value;
use sunnylive_e2e::{ensure, BoxError, TestApp, TestResult, ORIGIN_TOKEN};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::rtmp::{new_stream, newest_broadcast, wait_for_status};
use crate::video::{end_broadcast, start_broadcast, upload};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        a_rendition_outside_the_allowlist_is_refused_and_a_missing_one_is_not_found,
        an_uploaded_rendition_is_listed_in_the_master_with_its_details_and_times,
        an_audio_only_publish_goes_out_as_source_only,
        an_upload_writes_the_new_live_window_through_to_the_cache,
        a_just_ended_rendition_stays_open_until_it_has_the_sources_last_segment,
    )
}

/// The 720p publish transcodes in real time: alone, after the parallel tests, so it does not starve them (or they it).
pub fn serial_tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        a_720p_publish_gets_aligned_renditions_in_a_master_playlist_with_program_date_times,
    )
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An ffmpeg publisher that reports its progress, so the test knows the wall-clock time of any of its timestamps:
/// `clock` is the smallest `now - out_time` seen (a report read late only makes it larger).
struct ClockedPublisher {
    child: Child,
    clock: Arc<Mutex<Option<f64>>>,
    key: String,
}

impl ClockedPublisher {
    /// `video`: Some("WxH") for a test pattern at 30 fps with a keyframe every 2 s (CBR 2.5 Mbit/s, as OBS sends);
    /// None for audio only.
    fn start(app: &TestApp, key: &str, seconds: u32, video: Option<&str>) -> Result<ClockedPublisher, BoxError> {
        let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
            .map(String::from)
            .to_vec();
        if let Some(size) = video {
            args.extend(["-f", "lavfi", "-i"].map(String::from));
            args.push(format!("testsrc=size={size}:rate=30"));
        }
        args.extend(["-f", "lavfi", "-i", "sine", "-t"].map(String::from));
        args.push(seconds.to_string());
        if video.is_some() {
            args.extend(
                [
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-pix_fmt",
                    "yuv420p",
                    "-g",
                    "60",
                    "-b:v",
                    "2500k",
                    "-minrate",
                    "2500k",
                    "-maxrate",
                    "2500k",
                    "-bufsize",
                    "2500k",
                    "-x264-params",
                    "nal-hrd=cbr",
                ]
                .map(String::from),
            );
        }
        args.extend(
            [
                "-c:a",
                "aac",
                "-progress",
                "pipe:1",
                "-stats_period",
                "0.25",
                "-f",
                "flv",
            ]
            .map(String::from),
        );
        args.push(format!("{}/{key}", app.rtmp_url));
        let mut child = Command::new("ffmpeg")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting ffmpeg: {e}"))?;
        let clock = Arc::new(Mutex::new(None::<f64>));
        let stdout = child.stdout.take().ok_or("ffmpeg's stdout")?;
        let c = clock.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(us) = line
                    .strip_prefix("out_time_us=")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                {
                    if us > 0 {
                        let base = unix_now() - us as f64 / 1e6;
                        let mut held = c.lock().unwrap();
                        *held = Some(held.map_or(base, |b: f64| b.min(base)));
                    }
                }
            }
        });
        Ok(ClockedPublisher {
            child,
            clock,
            key: key.to_string(),
        })
    }

    /// The wall-clock time (unix seconds) at which the publisher sent its timestamp 0.
    fn clock(&self) -> Option<f64> {
        *self.clock.lock().unwrap()
    }

    async fn finish(mut self, timeout: Duration) -> Result<String, BoxError> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .map_err(|_| format!("ffmpeg still running after {timeout:?}"))??;
        let mut err = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut err).await;
        }
        let err = err.replace(&self.key, "<key>");
        ensure!(status.success(), "publisher: {status} {err}");
        Ok(err)
    }
}

/// One `#EXT-X-STREAM-INF` of a master playlist: its attributes and URI.
#[derive(Debug, Clone)]
struct Variant {
    attrs: BTreeMap<String, String>,
    uri: String,
}

impl Variant {
    fn number(&self, name: &str) -> u64 {
        self.attrs.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
    fn resolution(&self) -> Option<(u32, u32)> {
        let (w, h) = self.attrs.get("RESOLUTION")?.split_once('x')?;
        Some((w.parse().ok()?, h.parse().ok()?))
    }
    /// The rendition's name: the URI's first path segment (`480p/live.m3u8`).
    fn rendition(&self) -> &str {
        self.uri.split('/').next().unwrap_or_default()
    }
}

fn parse_master(text: &str) -> Vec<Variant> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(list) = line.strip_prefix("#EXT-X-STREAM-INF:") else {
            continue;
        };
        let mut attrs = BTreeMap::new();
        let mut rest = list;
        while !rest.is_empty() {
            let Some((name, after)) = rest.split_once('=') else {
                break;
            };
            let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (&quoted[..end], quoted[end..].trim_start_matches('"'))
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            attrs.insert(name.to_string(), value.to_string());
            rest = next.trim_start_matches(',');
        }
        out.push(Variant {
            attrs,
            uri: lines.next().unwrap_or_default().to_string(),
        });
    }
    out
}

/// A media playlist's segments: (URI, PROGRAM-DATE-TIME in unix seconds if given).
fn parse_media(text: &str) -> Vec<(String, Option<f64>)> {
    let mut out = Vec::new();
    let mut pdt = None;
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|d| d.timestamp_millis() as f64 / 1000.0);
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.to_string(), pdt.take()));
        }
    }
    out
}

/// Fetches `path` every 500 ms until `done(status, body)` holds or `timeout` passes; the last answer either way.
async fn poll_text(
    app: &TestApp,
    path: &str,
    timeout: Duration,
    done: impl Fn(u16, &str) -> bool,
) -> Result<(bool, u16, String), BoxError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (status, body) = get_text(app, path).await?;
        if done(status, &body) {
            return Ok((true, status, body));
        }
        if std::time::Instant::now() > deadline {
            return Ok((false, status, body));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn get_text(app: &TestApp, path: &str) -> Result<(u16, String), BoxError> {
    let r = app.http().get(format!("{}{path}", app.base)).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// ffprobe of one segment's video: (width, height, start time in seconds).
async fn probe_video(url: &str) -> Result<(u32, u32, f64), BoxError> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,start_time",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .next()
        .ok_or_else(|| format!("ffprobe {url}: no video stream"))?;
    let f: Vec<&str> = line.split(',').collect();
    ensure!(f.len() >= 3, "ffprobe {url}: {line}");
    Ok((f[0].parse()?, f[1].parse()?, f[2].parse()?))
}

/// ffmpeg's MPEG-TS muxer starts a stream's timestamps 1.4 s in (its default mux delay and preload, 0.7 s each):
/// a segment's start time less this is the publisher's own timestamp.
const TS_OFFSET: f64 = 1.4;

async fn a_720p_publish_gets_aligned_renditions_in_a_master_playlist_with_program_date_times(
    app: &TestApp,
) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "ladder").await?;
    ensure!(
        api.stream(&id).await?["hls_url"] == format!("/hls/{id}/master.m3u8").as_str(),
        "hls_url names the master playlist"
    );
    let publish_seconds = 24u32;
    let publisher = ClockedPublisher::start(app, &key, publish_seconds, Some("1280x720"))?;

    // Live: the master lists the source and both default renditions once each has a segment.
    let (ok, _, text) = poll_text(
        app,
        &format!("/hls/{id}/master.m3u8"),
        Duration::from_secs(60),
        |status, body| status == 200 && parse_master(body).len() >= 3,
    )
    .await?;
    ensure!(ok, "the live master lists three renditions within 60 s: {text}");
    let master = parse_master(&text);
    let names: Vec<&str> = master.iter().map(Variant::rendition).collect();
    ensure!(names == ["360p", "480p", "source"], "lowest first: {names:?}\n{text}");
    let sizes: Vec<(u32, u32)> = master.iter().filter_map(Variant::resolution).collect();
    ensure!(
        sizes == [(640, 360), (854, 480), (1280, 720)],
        "RESOLUTION ascending up to the source's: {sizes:?}\n{text}"
    );
    let bandwidth: Vec<u64> = master.iter().map(|v| v.number("BANDWIDTH")).collect();
    ensure!(
        bandwidth.windows(2).all(|w| w[0] < w[1]) && bandwidth[0] > 0,
        "BANDWIDTH ascending: {bandwidth:?}\n{text}"
    );
    for v in &master {
        ensure!(
            v.attrs.get("FRAME-RATE").map(String::as_str) == Some("30.000")
                && v.attrs
                    .get("CODECS")
                    .is_some_and(|c| c.starts_with("avc1.") && c.ends_with(",mp4a.40.2")),
            "FRAME-RATE and CODECS of {}: {:?}",
            v.uri,
            v.attrs
        );
        let (status, live) = get_text(app, &format!("/hls/{id}/{}", v.uri)).await?;
        let segments = parse_media(&live);
        ensure!(
            status == 200 && !segments.is_empty() && segments.iter().all(|(_, pdt)| pdt.is_some()),
            "{}'s live playlist lists segments, each with a PROGRAM-DATE-TIME: {status} {live}",
            v.uri
        );
    }
    let b = newest_broadcast(&api, &id).await?;
    let clock = publisher.clock().ok_or("the publisher reported no progress")?;
    publisher.finish(Duration::from_secs(60)).await?;
    wait_for_status(&api, &id, "offline", Duration::from_secs(15)).await?;

    // The past broadcast keeps every rendition, each closed.
    let (status, text) = get_text(app, &format!("/hls/{id}/{b}/master.m3u8")).await?;
    let vod_master = parse_master(&text);
    let names: Vec<&str> = vod_master.iter().map(Variant::rendition).collect();
    ensure!(
        status == 200 && names == ["360p", "480p", "source"],
        "the past broadcast's master: {status} {text}"
    );
    let frame = 1.0 / 30.0;
    // Per rendition: (segment URI, start time, PROGRAM-DATE-TIME) of its first segments.
    type Probed = Vec<(String, f64, f64)>;
    let mut pdt_offsets: Vec<f64> = Vec::new();
    let mut starts: Vec<(String, Probed)> = Vec::new();
    for v in &vod_master {
        let path = format!("/hls/{id}/{b}/{}", v.uri);
        // A rendition's last segments are made from the source's after it (a second or so; more on a busy host),
        // so they may reach the broadcast after it was closed: wait for them as a player of the past broadcast would.
        let expected = (publish_seconds / 2 - 3) as usize;
        let (closed, _, vod) = poll_text(app, &path, Duration::from_secs(30), |status, body| {
            status == 200 && body.ends_with("#EXT-X-ENDLIST\n") && parse_media(body).len() >= expected
        })
        .await?;
        ensure!(closed, "{path} is closed within 30 s: {vod}");
        let segments = parse_media(&vod);
        ensure!(
            segments.len() >= expected && segments.iter().all(|(_, pdt)| pdt.is_some()),
            "{path} lists at least {expected} segments, each with a PROGRAM-DATE-TIME: {vod}"
        );
        let (want_w, want_h) = v.resolution().ok_or("a resolution")?;
        let mut probed = Vec::new();
        for (uri, pdt) in segments.iter().take(5) {
            let url = format!("{}/hls/{id}/{b}/{}/{uri}", app.base, v.rendition());
            let (w, h, start) = probe_video(&url).await?;
            ensure!(
                (w, h) == (want_w, want_h),
                "{url} decodes at {w}x{h}, the master says {want_w}x{want_h}"
            );
            let pdt = pdt.unwrap_or_default();
            let published = clock + (start - TS_OFFSET);
            ensure!(
                (pdt - published).abs() <= 1.0,
                "{url}: PROGRAM-DATE-TIME {pdt:.3} is {:+.3} s from the publisher's clock for its start ({published:.3})",
                pdt - published
            );
            pdt_offsets.push(pdt - published);
            probed.push((uri.clone(), start, pdt));
        }
        starts.push((v.rendition().to_string(), probed));
    }
    let spread = |f: fn(&(String, f64, f64)) -> f64| {
        (0..starts[0].1.len())
            .map(|k| {
                let v: Vec<f64> = starts.iter().filter_map(|(_, s)| s.get(k).map(f)).collect();
                v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
            })
            .fold(0.0, f64::max)
    };
    eprintln!(
        "renditions: PROGRAM-DATE-TIME minus the publisher's clock {:+.3} .. {:+.3} s; segment start spread across \
         renditions at most {:.1} ms; BANDWIDTH {bandwidth:?}",
        pdt_offsets.iter().cloned().fold(f64::MAX, f64::min),
        pdt_offsets.iter().cloned().fold(f64::MIN, f64::max),
        spread(|s| s.1) * 1000.0
    );
    let (source_name, source) = starts.last().ok_or("renditions")?.clone();
    for (name, segments) in &starts {
        for ((uri, start, pdt), (source_uri, source_start, source_pdt)) in segments.iter().zip(&source) {
            ensure!(
                uri == source_uri && (start - source_start).abs() <= frame && pdt == source_pdt,
                "segment {uri} of {name} starts at {start:.4} s ({pdt:.3}), {source_uri} of {source_name} at \
                 {source_start:.4} s ({source_pdt:.3}): not within one frame"
            );
        }
    }
    Ok(())
}

async fn a_rendition_outside_the_allowlist_is_refused_and_a_missing_one_is_not_found(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "badrend").await?;
    let (b, client) = start_broadcast(&api, &key).await?;
    let small = || vec![0x47u8; 1000];
    for bad in ["4k", "Source", "480P", "1080i", "sk_x", "index.m3u8"] {
        let a = upload(&api, &format!("{b}/{bad}/0.ts?duration=2"), Some(ORIGIN_TOKEN), small()).await?;
        ensure!(
            a.status == 422 && a.code() == "validation_failed",
            "rendition {bad:?}: want 422 in the error shape, got {} {}",
            a.status,
            a.text
        );
        ensure!(a.text.contains("rendition"), "the error names the field: {}", a.text);
    }
    // Bad details of a good rendition are refused too.
    for (what, query) in [
        ("a future pdt", format!("pdt={}", (unix_now() as i64 + 3600) * 1000)),
        ("a pdt that is no number", "pdt=yesterday".to_string()),
        ("a width without a height", "width=854".to_string()),
        ("a zero height", "width=854&height=0".to_string()),
        ("a frame rate of 0", "fps=0".to_string()),
        ("codecs with a quote", "codecs=avc1%22x".to_string()),
        ("a thumbnail in a rendition", String::new()),
    ] {
        let path = if query.is_empty() {
            format!("{b}/480p/thumb.jpg")
        } else {
            format!("{b}/480p/0.ts?duration=2&{query}")
        };
        let a = upload(&api, &path, Some(ORIGIN_TOKEN), small()).await?;
        ensure!(
            a.status == 422 && !a.code().is_empty(),
            "{what}: {} {}",
            a.status,
            a.text
        );
    }
    // Nothing was written: the broadcast's master lists no rendition (a rendition is listed from its first segment
    // row), and no object exists under any name.
    let (status, master) = get_text(app, &format!("/hls/{id}/{b}/master.m3u8")).await?;
    ensure!(
        status == 200 && parse_master(&master).is_empty(),
        "no segment recorded: {status} {master}"
    );
    for path in [format!("{b}/4k/0.ts"), format!("{b}/480p/0.ts"), format!("{b}/0.ts")] {
        let (status, _) = get_text(app, &format!("/hls/{id}/{path}")).await?;
        ensure!(status == 404, "{path} was not stored: {status}");
    }
    // A source segment makes the broadcast live; renditions it does not have are 404 `rendition_not_found`.
    let a = upload(
        &api,
        &format!("{b}/source/0.ts?duration=2"),
        Some(ORIGIN_TOKEN),
        small(),
    )
    .await?;
    ensure!(a.status == 201, "source upload: {} {}", a.status, a.text);
    for path in [
        format!("/hls/{id}/480p/live.m3u8"),
        format!("/hls/{id}/4k/live.m3u8"),
        format!("/hls/{id}/{b}/720p/index.m3u8"),
        format!("/hls/{id}/{b}/4k/index.m3u8"),
    ] {
        let r = app.http().get(format!("{}{path}", app.base)).send().await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(
            status == 404 && body["error"]["code"] == "rendition_not_found" && body["error"]["message"].is_string(),
            "{path}: want 404 rendition_not_found, got {status} {body}"
        );
    }
    // The source is there under both its names.
    for path in [format!("/hls/{id}/source/live.m3u8"), format!("/hls/{id}/live.m3u8")] {
        let (status, text) = get_text(app, &path).await?;
        ensure!(status == 200 && text.contains("0.ts\n"), "{path}: {status} {text}");
    }
    end_broadcast(&api, &key, client).await
}

async fn an_uploaded_rendition_is_listed_in_the_master_with_its_details_and_times(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "uprend").await?;
    let (b, client) = start_broadcast(&api, &key).await?;
    let pdt = (unix_now() as i64 - 10) * 1000 + 123;
    // 250,000 bytes in 2 s: 1,000,000 bit/s; 100,000 and 150,000 bytes: 400,000 and 600,000 bit/s.
    for (rendition, seq, bytes, details) in [
        (
            "source",
            0,
            250_000,
            "&width=1280&height=720&fps=30&codecs=avc1.64001f,mp4a.40.2",
        ),
        (
            "480p",
            0,
            100_000,
            "&width=854&height=480&fps=29.97&codecs=avc1.64001e,mp4a.40.2",
        ),
        ("480p", 1, 150_000, ""),
    ] {
        let a = upload(
            &api,
            &format!(
                "{b}/{rendition}/{seq}.ts?duration=2&pdt={}{details}",
                pdt + i64::from(seq) * 2000
            ),
            Some(ORIGIN_TOKEN),
            vec![0x47u8; bytes],
        )
        .await?;
        ensure!(a.status == 201, "{rendition}/{seq}: {} {}", a.status, a.text);
    }
    for master_path in [format!("/hls/{id}/master.m3u8"), format!("/hls/{id}/{b}/master.m3u8")] {
        let (status, text) = get_text(app, &master_path).await?;
        ensure!(status == 200, "{master_path}: {status} {text}");
        let m = parse_master(&text);
        let got: Vec<(String, u64, u64, String, String)> = m
            .iter()
            .map(|v| {
                (
                    v.rendition().to_string(),
                    v.number("BANDWIDTH"),
                    v.number("AVERAGE-BANDWIDTH"),
                    v.attrs.get("RESOLUTION").cloned().unwrap_or_default(),
                    v.attrs.get("FRAME-RATE").cloned().unwrap_or_default(),
                )
            })
            .collect();
        let want = [
            ("480p".into(), 600_000, 500_000, "854x480".into(), "29.970".into()),
            (
                "source".into(),
                1_000_000,
                1_000_000,
                "1280x720".into(),
                "30.000".into(),
            ),
        ];
        ensure!(got == want, "{master_path}: {got:?}\n{text}");
        ensure!(
            text.contains("CODECS=\"avc1.64001e,mp4a.40.2\""),
            "{master_path}: {text}"
        );
    }
    let (status, text) = get_text(app, &format!("/hls/{id}/480p/live.m3u8")).await?;
    let want_first = format!(
        "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:2.000,\n../{b}/480p/0.ts\n",
        chrono::DateTime::from_timestamp_millis(pdt)
            .ok_or("a time")?
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    ensure!(
        status == 200 && text.contains(&want_first),
        "480p live: {status} {text}"
    );
    // The relative segment URI resolves to the rendition's segment.
    let r = app
        .http()
        .get(format!("{}/hls/{id}/{b}/480p/1.ts", app.base))
        .send()
        .await?;
    ensure!(
        r.status() == 200 && r.bytes().await?.len() == 150_000,
        "a rendition's segment is served from its own name"
    );
    end_broadcast(&api, &key, client).await?;
    let (status, vod) = get_text(app, &format!("/hls/{id}/{b}/480p/index.m3u8")).await?;
    ensure!(
        status == 200 && vod.ends_with("1.ts\n#EXT-X-ENDLIST\n") && vod.contains("#EXT-X-PROGRAM-DATE-TIME:"),
        "the past broadcast keeps the rendition: {status} {vod}"
    );
    Ok(())
}

async fn an_audio_only_publish_goes_out_as_source_only(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "audioonly").await?;
    let publisher = ClockedPublisher::start(app, &key, 12, None)?;
    let (ok, _, text) = poll_text(
        app,
        &format!("/hls/{id}/master.m3u8"),
        Duration::from_secs(45),
        |status, body| status == 200 && !parse_master(body).is_empty(),
    )
    .await?;
    ensure!(ok, "the master lists the source within 45 s: {text}");
    let m = parse_master(&text);
    ensure!(
        m.len() == 1
            && m[0].rendition() == "source"
            && m[0].attrs.get("CODECS").map(String::as_str) == Some("mp4a.40.2")
            && m[0].resolution().is_none(),
        "an audio-only publish is its source alone: {text}"
    );
    let b = newest_broadcast(&api, &id).await?;
    let log = std::fs::read_to_string(app.origin_prefix.join("logs/transcoder.log")).unwrap_or_default();
    ensure!(
        log.lines()
            .any(|l| l.contains(&b) && l.contains("audio-only publish: source only")),
        "the transcoder logs why: {log}"
    );
    publisher.finish(Duration::from_secs(40)).await.map(|_| ())
}

/// The live playlist is written through: after an upload is answered, the colo's cache holds the new live window,
/// so the next viewer's poll is a hit that already lists the new segment (before, the upload dropped the cached
/// window and every poll until the first re-render missed and read D1). Shown as: with the previous window cached
/// (and fresh for its 1-s max-age), polls after the upload see a HIT listing the new segment before any MISS.
/// Without the write-through they would see the old window's HIT until it expired and then a MISS. The write runs
/// after the answer (`waitUntil`), so under heavy load one of three segments is allowed to miss the 1-s window.
async fn an_upload_writes_the_new_live_window_through_to_the_cache(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "through").await?;
    let (b, client) = start_broadcast(&api, &key).await?;
    let pdt = (unix_now() as i64 - 30) * 1000;
    let put = |seq: u32| {
        let api = &api;
        let b = &b;
        async move {
            let a = upload(
                api,
                &format!("{b}/source/{seq}.ts?duration=2&pdt={}", pdt + i64::from(seq) * 2000),
                Some(ORIGIN_TOKEN),
                vec![0x47u8; 20_000],
            )
            .await?;
            ensure!(a.status == 201, "source/{seq}: {} {}", a.status, a.text);
            Ok::<(), BoxError>(())
        }
    };
    let fetch = |path: String| async move {
        let r = app.http().get(format!("{}{path}", app.base)).send().await?;
        let cache = r
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let status = r.status().as_u16();
        Ok::<(u16, String, String), BoxError>((status, cache, r.text().await?))
    };
    put(0).await?;
    let mut seen = Vec::new();
    let mut shown = false;
    for seq in 1..=3u32 {
        // The previous window, cached now (a miss renders and stores it, a hit is the write-through's copy).
        for path in [format!("/hls/{id}/source/live.m3u8"), format!("/hls/{id}/live.m3u8")] {
            let (status, _, text) = fetch(path.clone()).await?;
            let last = format!("{}.ts", seq - 1);
            ensure!(
                status == 200 && text.contains(&last),
                "{path} before {seq}: {status} {text}"
            );
        }
        put(seq).await?;
        let want = format!("{seq}.ts");
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        // Both URLs the upload writes: the rendition's own and the legacy source URL.
        let mut through = [false, false];
        let mut missed = [false, false];
        while std::time::Instant::now() < deadline && through.iter().zip(&missed).any(|(t, m)| !t && !m) {
            for (i, path) in [format!("/hls/{id}/source/live.m3u8"), format!("/hls/{id}/live.m3u8")]
                .into_iter()
                .enumerate()
            {
                if through[i] || missed[i] {
                    continue;
                }
                let (status, cache, text) = fetch(path).await?;
                ensure!(status == 200, "live playlist after {seq}: {status} {text}");
                match (cache.as_str(), text.contains(&want)) {
                    ("HIT", true) => through[i] = true,
                    ("HIT", false) => {}
                    _ => missed[i] = true,
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen.push(format!(
            "segment {seq}: written through {through:?}, missed first {missed:?}"
        ));
        if through == [true, true] {
            shown = true;
            break;
        }
        // Let the window cached by a miss expire before the next try.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    end_broadcast(&api, &key, client).await?;
    ensure!(
        shown,
        "no upload's new window was found in the cache before a miss: {seen:?}"
    );
    Ok(())
}

/// A rendition is made from each source segment after it arrives, so when a publish ends its last rendition segments
/// are still on their way: its playlist of the past broadcast stays open (EVENT, no `#EXT-X-ENDLIST`) until it has the
/// source's last segment, and then closes; the source's closes at once.
async fn a_just_ended_rendition_stays_open_until_it_has_the_sources_last_segment(app: &TestApp) -> TestResult {
    let (api, _s, id, key) = new_stream(app, "lastrend").await?;
    let (b, client) = start_broadcast(&api, &key).await?;
    let pdt = (unix_now() as i64 - 30) * 1000;
    let put = |path: String| {
        let api = &api;
        async move {
            let a = upload(api, &path, Some(ORIGIN_TOKEN), vec![0x47u8; 20_000]).await?;
            ensure!(a.status == 201, "{path}: {} {}", a.status, a.text);
            Ok::<(), BoxError>(())
        }
    };
    for (rendition, seq) in [("source", 0), ("source", 1), ("480p", 0)] {
        put(format!("{b}/{rendition}/{seq}.ts?duration=2&pdt={}", pdt + seq * 2000)).await?;
    }
    end_broadcast(&api, &key, client).await?;
    let (status, source) = get_text(app, &format!("/hls/{id}/{b}/source/index.m3u8")).await?;
    ensure!(
        status == 200 && source.contains("#EXT-X-ENDLIST"),
        "the source closes at once: {status} {source}"
    );
    let path = format!("/hls/{id}/{b}/480p/index.m3u8");
    let (status, open) = get_text(app, &path).await?;
    ensure!(
        status == 200 && !open.contains("#EXT-X-ENDLIST") && open.contains("#EXT-X-PLAYLIST-TYPE:EVENT"),
        "480p lacks the source's last segment, so it stays open: {status} {open}"
    );
    // The last rendition segment arrives within the upload grace, and the playlist closes with it.
    put(format!("{b}/480p/1.ts?duration=2&pdt={}", pdt + 2000)).await?;
    let (status, closed) = get_text(app, &path).await?;
    ensure!(
        status == 200 && closed.contains("#EXT-X-ENDLIST") && closed.contains("1.ts"),
        "480p closes once it has segment 1: {status} {closed}"
    );
    Ok(())
}
