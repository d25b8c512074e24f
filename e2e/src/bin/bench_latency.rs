//! Benchmark: glass-to-glass latency, measured where a viewer feels it. For each segment length (the origin's latency
//! mode, `SUNNYLIVE_HLS_FRAGMENT`; `BENCH_LATENCY_SEGMENTS=2,1` by default), on a fresh stack:
//!
//! - a publisher draws the wall-clock time into every frame it makes: 1280x720 at 30 fps, generated here and piped
//!   raw into ffmpeg (libx264 `veryfast`, `zerolatency`, 2.5 Mbit/s CBR, a keyframe every segment, as OBS is told to
//!   send), published over RTMP to the origin. The time is a barcode of 48 black or white blocks (the low 44 bits of
//!   unix milliseconds and a 4-bit check), big enough to survive H.264 and the 360p rendition, read back from pixels:
//!   no OCR, no metadata the pipeline could rewrite. The time is taken when the frame is handed to the encoder, so the
//!   encoder's own delay counts, as a camera's would;
//! - headless Chromium (e2e/browser/latency.mjs) opens the stream's watch page over https through the Worker and
//!   plays it with the site's own player (hls.js, Auto quality); after a 20-s warm-up it reads the barcode of the
//!   frame on screen every second for 60 s: glass-to-glass = now - that time (one machine, one clock). Beside it the
//!   player's own figure (now - `hls.playingDate`, from PROGRAM-DATE-TIME, what the LIVE badge shows) and stalls;
//! - this process polls the live playlist at the edge every 100 ms: per segment, "listed at the edge" minus its
//!   PROGRAM-DATE-TIME minus its duration is the ingest-to-edge delay (the upload and the playlist, nothing of the
//!   player).
//!
//! Prints one table row per segment length: p50 and p95 of each figure, stalls, unreadable samples.
//! Run with `scripts/bench latency` after `make build` (`BENCH_LATENCY_WARMUP`, `BENCH_LATENCY_SECONDS` change the
//! 20 s and 60 s).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sunnylive_e2e::charts;
use sunnylive_e2e::{env_list, BoxError, TestApp};

const WIDTH: usize = 1280;
const HEIGHT: usize = 720;
const FPS: u64 = 30;
/// Blocks of the barcode: the low 44 bits of unix ms, then the xor of their eleven nibbles.
const BITS: usize = 48;
const COLS: usize = 24;
/// One block, in the 1280x720 picture (latency.mjs reads the middle of each, scaled to the rendition's size).
const CELL_W: usize = 48;
const CELL_H: usize = 96;
const MARGIN: usize = 40;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The 48 bits drawn for `ms`.
fn barcode_bits(ms: u64) -> u64 {
    let value = ms & ((1 << 44) - 1);
    let check = (0..11).fold(0, |x, n| x ^ ((value >> (4 * n)) & 15));
    value | (check << 44)
}

/// Draws frame `n` made at `ms` into `frame` (8-bit gray): mid-gray, a bar that moves (so the picture is never still),
/// and the barcode.
fn draw(frame: &mut [u8], ms: u64, n: u64) {
    frame.fill(110);
    let bar = (n as usize * 8) % WIDTH;
    for y in HEIGHT / 2..HEIGHT / 2 + 120 {
        frame[y * WIDTH + bar..y * WIDTH + (bar + 60).min(WIDTH)].fill(200);
    }
    let bits = barcode_bits(ms);
    for i in 0..BITS {
        let shade = if bits >> i & 1 == 1 { 235 } else { 16 };
        let (x0, y0) = (MARGIN + (i % COLS) * CELL_W, MARGIN + (i / COLS) * CELL_H);
        for y in y0..y0 + CELL_H {
            frame[y * WIDTH + x0..y * WIDTH + x0 + CELL_W].fill(shade);
        }
    }
}

/// ffmpeg fed raw frames from a thread that makes them in real time; runs until `stop`.
fn start_publisher(url: &str, gop: u64, stop: Arc<AtomicBool>) -> Result<std::process::Child, BoxError> {
    let size = format!("{WIDTH}x{HEIGHT}");
    let gop = gop.to_string();
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-s",
            &size,
            "-framerate",
            "30",
            "-i",
            "pipe:0",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
        .args([
            "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k", "-f", "flv", url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("ffmpeg's stdin")?;
    std::thread::spawn(move || {
        let mut frame = vec![0u8; WIDTH * HEIGHT];
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = start + Duration::from_micros(n * 1_000_000 / FPS);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            draw(&mut frame, unix_ms(), n);
            if stdin.write_all(&frame).is_err() {
                break;
            }
            n += 1;
        }
    });
    Ok(child)
}

/// `#EXT-X-PROGRAM-DATE-TIME:2026-12-06T08:30:00.123Z` as unix ms.
fn parse_pdt(text: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    u64::try_from(t.timestamp_millis()).ok()
}

/// Per segment URI of a live playlist: its PROGRAM-DATE-TIME and duration (ms).
fn listed_segments(playlist: &str) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let (mut pdt, mut dur) = (None, 0u64);
    for line in playlist.lines() {
        if let Some(t) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = parse_pdt(t);
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            dur = (d.trim_end_matches(',').parse::<f64>().unwrap_or(0.0) * 1000.0).round() as u64;
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            if let Some(p) = pdt.take() {
                out.push((line.trim().to_string(), p, dur));
            }
        }
    }
    out
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

struct Row {
    segment: u64,
    /// The machine's 1-minute load average at the end of the run (the stack, the publisher, the transcoder and
    /// Chromium share its cores with whatever else runs).
    load: String,
    glass: Vec<f64>,
    pdt: Vec<f64>,
    edge: Vec<f64>,
    stalls: u64,
    unreadable: usize,
    heights: Vec<u64>,
}

async fn run_one(app: &TestApp, segment: u64, warmup: u64, seconds: u64) -> Result<Row, BoxError> {
    let api = app.api();
    let who = api.register("benchlat").await?;
    let (id, key) = api.create_stream(&who, &format!("latency {segment} s")).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut publisher = start_publisher(&format!("{}/{key}", app.rtmp_url), FPS * segment, stop.clone())?;
    let http = reqwest::Client::new();
    let live_url = format!("{}/hls/{id}/live.m3u8", app.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(&live_url).send().await?.status() != 200 {
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            let _ = publisher.kill();
            return Err("the stream never went live at the edge".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The edge: when each segment is first listed, against its PROGRAM-DATE-TIME and duration.
    let edge: Arc<Mutex<Vec<f64>>> = Arc::default();
    let poll_stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (edge, poll_stop, http, live_url) = (edge.clone(), poll_stop.clone(), http.clone(), live_url.clone());
        tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut first = true;
            while !poll_stop.load(Ordering::Relaxed) {
                if let Ok(r) = http.get(&live_url).send().await {
                    let text = r.text().await.unwrap_or_default();
                    let now = unix_ms();
                    for (uri, pdt, dur) in listed_segments(&text) {
                        // Segments already listed at the first poll were listed at some unknown earlier time.
                        if seen.insert(uri) && !first {
                            edge.lock()
                                .expect("BUG")
                                .push((now as f64 - (pdt + dur) as f64) / 1000.0);
                        }
                    }
                    first = false;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let out = tokio::process::Command::new(sunnylive_e2e::node())
        .arg("e2e/browser/latency.mjs")
        .current_dir(sunnylive_e2e::repo_root())
        .env("SUNNYLIVE_BASE_URL", &app.site)
        .env("SUNNYLIVE_SITE_HOST", sunnylive_e2e::SITE_HOST)
        .env("SUNNYLIVE_SITE_SPKI", &app.site_spki)
        .env("LATENCY_STREAM", &id)
        .env("LATENCY_WARMUP_S", warmup.to_string())
        .env("LATENCY_SAMPLE_S", seconds.to_string())
        .output()
        .await?;
    poll_stop.store(true, Ordering::Relaxed);
    let _ = poller.await;
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.wait();
    if !out.status.success() {
        return Err(format!(
            "the viewer failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let samples = report["samples"].as_array().cloned().unwrap_or_default();
    let glass: Vec<f64> = samples.iter().filter_map(|s| s["glass"].as_f64()).collect();
    let pdt: Vec<f64> = samples.iter().filter_map(|s| s["pdt"].as_f64()).collect();
    let mut heights: Vec<u64> = samples.iter().filter_map(|s| s["height"].as_u64()).collect();
    heights.sort_unstable();
    heights.dedup();
    let edge = edge.lock().expect("BUG").clone();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    Ok(Row {
        segment,
        load,
        unreadable: samples.len() - glass.len(),
        glass,
        pdt,
        edge,
        stalls: report["stalls"].as_u64().unwrap_or(0),
        heights,
    })
}

fn main() -> Result<(), BoxError> {
    sunnylive_e2e::quiet_worker_logs();
    let warmup: u64 = std::env::var("BENCH_LATENCY_WARMUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seconds: u64 = std::env::var("BENCH_LATENCY_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let stamp = charts::run_stamp();
    let mut rows = Vec::new();
    for segment in env_list("BENCH_LATENCY_SEGMENTS", &[2, 1])
        .into_iter()
        .map(|s| s as u64)
    {
        eprintln!("bench_latency: {segment}-s segments: {warmup} s warm-up, {seconds} s sampled ...");
        // The origin reads its segment length from the environment it is started with.
        std::env::set_var("SUNNYLIVE_HLS_FRAGMENT", format!("{segment}s"));
        let app = TestApp::start()?;
        let row = rt.block_on(run_one(&app, segment, warmup, seconds));
        app.stop();
        rows.push(row?);
    }
    println!(
        "Glass-to-glass: a 1280x720 30 fps publisher drawing its clock into the picture, read back from the frame on \
         screen in headless Chromium (the watch page, hls.js Auto) every second for {seconds} s after {warmup} s"
    );
    println!();
    println!(
        "| segment | glass p50 s | glass p95 s | player (PDT) p50 s | ingest-to-edge p50 s | p95 s | stalls | unreadable | heights played | load |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for r in &rows {
        let heights: Vec<String> = r.heights.iter().map(|h| format!("{h}p")).collect();
        println!(
            "| {} s | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} of {} | {} | {} |",
            r.segment,
            percentile(&r.glass, 50.0),
            percentile(&r.glass, 95.0),
            percentile(&r.pdt, 50.0),
            percentile(&r.edge, 50.0),
            percentile(&r.edge, 95.0),
            r.stalls,
            r.unreadable,
            r.unreadable + r.glass.len(),
            heights.join(" "),
            r.load
        );
    }
    println!();
    let results: Vec<charts::LatencyRun> = rows
        .iter()
        .map(|r| charts::LatencyRun {
            run: stamp.clone(),
            segment_s: r.segment,
            glass_p50_s: percentile(&r.glass, 50.0),
            glass_p95_s: percentile(&r.glass, 95.0),
            edge_p50_s: percentile(&r.edge, 50.0),
            stalls: r.stalls,
        })
        .collect();
    let csv_path = charts::results_dir().join("latency.csv");
    charts::write_file(&csv_path, &charts::latency_csv(&results)?)?;
    println!("results: {}", csv_path.display());
    println!(
        "load: the 1-minute load average at the end of the run, against {} cores.",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("For comparison (their documentation): Owncast about 5 s at its lowest latency setting; Cloudflare Stream LL-HLS \"under 10 s in many cases\".");
    Ok(())
}
