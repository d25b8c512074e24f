//! Benchmark: video at the edge. One real publisher (ffmpeg -> nginx-rtmp -> uploader -> worker -> R2) and N = 10,
//! 100 and 500 simulated viewers that follow the live playlist as a player does (reload every target duration, fetch
//! each new segment once, start after three segments, count a stall when the playhead passes the buffer), 60 s each.
//! Prints: bytes the origin sent against bytes the viewers received, the delay from "segment written on the origin"
//! to "listed at the edge URL" (p50/p99), errors and stalls, worker invocations and cache misses (R2/D1 reads) per
//! viewer-minute, and what 1,000 viewer-hours would cost at Cloudflare's list prices. A second table says where the
//! machine's cores went (CPU per kind of process: wrangler's dev proxy, the Worker's workerd, the viewers' client,
//! the origin), so a reader sees when the machine, not the design, was the bound.
//! Run with `make bench` (or `scripts/bench hls` after `make build`); `BENCH_VIEWERS=10,100,500` picks the sizes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sunnylive_e2e::{cpu, env_list, BoxError, TestApp};

const RUN: Duration = Duration::from_secs(60);
/// `BENCH_VIEWERS=10,100,500` (the default) picks the audience sizes.
const VIEWERS: [usize; 3] = [10, 100, 500];

/// Workers Paid: $0.30 per million requests beyond the included 10 M.
const WORKER_PER_MILLION: f64 = 0.30;
/// R2 Class B (reads): $0.36 per million.
const R2_READ_PER_MILLION: f64 = 0.36;
/// R2 storage: $0.015 per GB-month.
const R2_GB_MONTH: f64 = 0.015;

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    segment_misses: AtomicU64,
    playlist_misses: AtomicU64,
    stalls: AtomicU64,
    segments_got: AtomicU64,
}

/// Bytes of every upload the origin has sent so far (its access log's request lengths).
fn origin_upload_bytes(app: &TestApp) -> u64 {
    std::fs::read_to_string(app.origin_prefix.join("logs/http-access.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"PUT /_worker/hls/"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn segments_of(playlist: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut dur = 0.0;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            dur = d.trim_end_matches(',').parse().unwrap_or(2.0);
        } else if line.ends_with(".ts") {
            out.push((line.to_string(), dur));
        }
    }
    out
}

fn seq_of(uri: &str) -> Option<u64> {
    uri.rsplit('/').next()?.strip_suffix(".ts")?.parse().ok()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

async fn viewer(http: reqwest::Client, base: String, id: String, c: Arc<Counters>, stop: Arc<AtomicBool>) {
    let playlist_url = format!("{base}/hls/{id}/live.m3u8");
    let mut seen: HashSet<String> = HashSet::new();
    let mut buffered = 0.0f64;
    let mut started: Option<Instant> = None;
    let mut stalled = false;
    // Players start at different moments.
    tokio::time::sleep(Duration::from_millis(rand_ms(2000))).await;
    while !stop.load(Ordering::Relaxed) {
        let reload = Instant::now();
        c.requests.fetch_add(1, Ordering::Relaxed);
        match http.get(&playlist_url).send().await {
            Ok(r) if r.status() == 200 => {
                if r.headers().get("x-cache").is_some_and(|v| v == "MISS") {
                    c.playlist_misses.fetch_add(1, Ordering::Relaxed);
                }
                let text = r.text().await.unwrap_or_default();
                c.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                let segs = segments_of(&text);
                // A player joining starts three segments from the end.
                let skip = if seen.is_empty() {
                    segs.len().saturating_sub(3)
                } else {
                    0
                };
                for (uri, dur) in segs.into_iter().skip(skip) {
                    if !seen.insert(uri.clone()) {
                        continue;
                    }
                    c.requests.fetch_add(1, Ordering::Relaxed);
                    match http.get(format!("{base}/hls/{id}/{uri}")).send().await {
                        Ok(r) if r.status() == 200 => {
                            if r.headers().get("x-cache").is_some_and(|v| v == "MISS") {
                                c.segment_misses.fetch_add(1, Ordering::Relaxed);
                            }
                            let n = r.bytes().await.map(|b| b.len()).unwrap_or(0);
                            c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                            c.segments_got.fetch_add(1, Ordering::Relaxed);
                            buffered += dur;
                        }
                        _ => {
                            c.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            _ => {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if started.is_none() && buffered >= 6.0 {
            started = Some(Instant::now());
        }
        if let Some(t) = started {
            let playhead = t.elapsed().as_secs_f64();
            if playhead > buffered {
                if !stalled {
                    c.stalls.fetch_add(1, Ordering::Relaxed);
                    stalled = true;
                }
                // A real player waits while stalled: the clock restarts from what is buffered.
                started = Some(Instant::now() - Duration::from_secs_f64(buffered));
            } else {
                stalled = false;
            }
        }
        let wait = Duration::from_secs(2).saturating_sub(reload.elapsed());
        tokio::time::sleep(wait).await;
    }
}

fn rand_ms(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos % max
}

struct Row {
    n: usize,
    origin_bytes: u64,
    viewer_bytes: u64,
    delay_p50: f64,
    delay_p99: f64,
    errors: u64,
    stalls: u64,
    segments_expected: u64,
    segments_got: u64,
    requests: u64,
    segment_misses: u64,
    playlist_misses: u64,
    /// CPU seconds per kind of process over the run, and the run's wall time.
    cpu: BTreeMap<&'static str, f64>,
    wall: f64,
}

async fn run_one(app: &TestApp, n: usize) -> Result<Row, BoxError> {
    let api = app.api();
    let who = api.register("benchhls").await?;
    let (id, key) = api.create_stream(&who, &format!("bench {n}")).await?;
    let mut publisher = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine",
        ])
        .args(["-t", &(RUN.as_secs() + 20).to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1M", "-g", "60", "-c:a", "aac", "-f", "flv",
        ])
        .arg(format!("{}/{key}", app.rtmp_url))
        .kill_on_drop(true)
        .spawn()?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    // Wait for the first segment at the edge.
    let deadline = Instant::now() + Duration::from_secs(40);
    let broadcast = loop {
        let a = api.get(&format!("/api/streams/{id}/broadcasts"), None).await?;
        let live = http.get(format!("{}/hls/{id}/live.m3u8", app.base)).send().await?;
        if live.status() == 200 {
            if let Some(b) = a.body["broadcasts"][0]["id"].as_str() {
                break b.to_string();
            }
        }
        if Instant::now() > deadline {
            return Err("the stream never went live at the edge".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stop = Arc::new(AtomicBool::new(false));
    // "Written on the origin": when nginx lists a segment in its own playlist. "Served at the edge": when the live
    // playlist at the worker first lists it (its segment is fetchable from then on).
    let written: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let listed: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let origin_playlist = app.origin_prefix.join("hls").join(&broadcast).join("source/index.m3u8");
    let w = {
        let (written, stop) = (written.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&origin_playlist).unwrap_or_default();
                let first: u64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                let now = Instant::now();
                let count = segments_of(&text).len() as u64;
                {
                    let mut w = written.lock().expect("BUG");
                    for seq in first..first + count {
                        w.entry(seq).or_insert(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let p = {
        let (listed, stop, http) = (listed.clone(), stop.clone(), http.clone());
        let url = format!("{}/hls/{id}/live.m3u8", app.base);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = http.get(&url).send().await {
                    let text = r.text().await.unwrap_or_default();
                    let now = Instant::now();
                    for (uri, _) in segments_of(&text) {
                        if let Some(s) = seq_of(&uri) {
                            listed.lock().expect("BUG").entry(s).or_insert(now);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let counters = Arc::new(Counters::default());
    let origin_before = origin_upload_bytes(app);
    let cpu_before = cpu::sample();
    let started = Instant::now();
    let viewers: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(viewer(
                http.clone(),
                app.base.clone(),
                id.clone(),
                counters.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    for v in viewers {
        let _ = v.await;
    }
    let _ = w.await;
    let _ = p.await;
    let elapsed = started.elapsed();
    let cpu = cpu::difference(&cpu_before, &cpu::sample());
    let origin_bytes = origin_upload_bytes(app) - origin_before;
    let _ = publisher.kill().await;
    let (written, listed) = (written.lock().expect("BUG"), listed.lock().expect("BUG"));
    let mut delays: Vec<f64> = listed
        .iter()
        .filter_map(|(s, at)| {
            written
                .get(s)
                .map(|w| at.saturating_duration_since(*w).as_secs_f64() * 1000.0)
        })
        .collect();
    let segments_in_run = written
        .values()
        .filter(|t| t.saturating_duration_since(started) > Duration::ZERO && **t - started < elapsed)
        .count() as u64;
    Ok(Row {
        n,
        origin_bytes,
        viewer_bytes: counters.bytes.load(Ordering::Relaxed),
        delay_p50: pct(&mut delays, 0.50),
        delay_p99: pct(&mut delays, 0.99),
        errors: counters.errors.load(Ordering::Relaxed),
        stalls: counters.stalls.load(Ordering::Relaxed),
        segments_expected: segments_in_run * n as u64,
        segments_got: counters.segments_got.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        segment_misses: counters.segment_misses.load(Ordering::Relaxed),
        playlist_misses: counters.playlist_misses.load(Ordering::Relaxed),
        cpu,
        wall: elapsed.as_secs_f64(),
    })
}

fn main() -> Result<(), BoxError> {
    sunnylive_e2e::quiet_worker_logs();
    let started = sunnylive_e2e::charts::run_stamp();
    let app = TestApp::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut rows = Vec::new();
    for n in env_list("BENCH_VIEWERS", &VIEWERS) {
        eprintln!("bench_hls: {n} viewers for {} s ...", RUN.as_secs());
        rows.push(rt.block_on(run_one(&app, n))?);
    }
    app.stop();
    println!(
        "HLS at the edge: one 1 Mbit/s publisher, N viewers following the live playlist for {} s each",
        RUN.as_secs()
    );
    println!(
        "{:>5} {:>11} {:>13} {:>7} {:>9} {:>9} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "N",
        "origin MB",
        "viewers MB",
        "ratio",
        "p50 ms",
        "p99 ms",
        "errors",
        "stalls",
        "delivered",
        "req/v-min",
        "R2/min",
        "D1/min"
    );
    let minutes = RUN.as_secs_f64() / 60.0;
    for r in &rows {
        println!(
            "{:>5} {:>11.2} {:>13.2} {:>7.1} {:>9.0} {:>9.0} {:>7} {:>7} {:>9.1}% {:>10.1} {:>10.1} {:>10.1}",
            r.n,
            r.origin_bytes as f64 / 1e6,
            r.viewer_bytes as f64 / 1e6,
            r.viewer_bytes as f64 / r.origin_bytes.max(1) as f64,
            r.delay_p50,
            r.delay_p99,
            r.errors,
            r.stalls,
            100.0 * r.segments_got as f64 / r.segments_expected.max(1) as f64,
            r.requests as f64 / (r.n as f64 * minutes),
            r.segment_misses as f64 / minutes,
            r.playlist_misses as f64 / minutes,
        );
    }
    print_cpu(&rows);
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    println!(
        "origin bytes N={} / N={}: {:.2} (flat in N when close to 1)",
        last.n,
        first.n,
        last.origin_bytes as f64 / first.origin_bytes.max(1) as f64
    );
    // Cost of 1,000 viewer-hours from the largest run's per-viewer rates: every viewer request is a worker request
    // (with MEDIA_BASE_URL set, segment requests are not); R2 reads are cache misses, per colo, not per viewer.
    let req_per_vh = last.requests as f64 / (last.n as f64 * minutes) * 60.0;
    let workers = 1_000.0 * req_per_vh / 1e6 * WORKER_PER_MILLION;
    let r2_reads_per_hour = last.segment_misses as f64 / minutes * 60.0;
    let r2 = r2_reads_per_hour / 1e6 * R2_READ_PER_MILLION;
    let gb_per_hour = last.origin_bytes as f64 / 1e9 / minutes * 60.0;
    let storage = gb_per_hour * R2_GB_MONTH * 7.0 / 30.0;
    println!(
        "1,000 viewer-hours: {:.0} worker requests per viewer-hour -> ${workers:.2} Workers requests; R2 reads ${r2:.4} \
         per colo-hour; storing one broadcast-hour for 7 days ${storage:.4}; total ~${:.2} (Cloudflare Stream: $60)",
        req_per_vh,
        workers + r2 + storage
    );
    write_results(&rows, &started)
}

/// Each audience size's delivery and delay as CSV in the results folder, for `bench_charts` to draw.
fn write_results(rows: &[Row], run: &str) -> Result<(), BoxError> {
    use sunnylive_e2e::charts::{hls_csv, results_dir, write_file, HlsRun};
    let runs: Vec<HlsRun> = rows
        .iter()
        .map(|r| HlsRun {
            run: run.to_string(),
            viewers: r.n,
            delivered_pct: 100.0 * r.segments_got as f64 / r.segments_expected.max(1) as f64,
            delay_p50_ms: r.delay_p50,
            delay_p99_ms: r.delay_p99,
        })
        .collect();
    let path = results_dir().join("hls.csv");
    write_file(&path, &hls_csv(&runs)?)?;
    eprintln!("bench_hls: results in {}", path.display());
    Ok(())
}

/// Where the machine's cores went in each run: CPU time per kind of process, as cores busy on average and as
/// milliseconds per viewer request. On one machine every part of the edge (wrangler's dev proxy, which production
/// does not have, and the one workerd standing in for every Cloudflare colo and its cache) and every simulated
/// viewer share the same cores: when the total nears the machine's cores, the machine was the bound.
fn print_cpu(rows: &[Row]) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut kinds: Vec<&'static str> = rows.iter().flat_map(|r| r.cpu.keys().copied()).collect();
    kinds.sort();
    kinds.dedup();
    println!();
    println!("CPU per run ({cores} cores): cores busy on average / ms per viewer request");
    print!("{:<32}", "process");
    for r in rows {
        print!(" {:>18}", format!("N = {}", r.n));
    }
    println!();
    let line = |name: &str, seconds: &dyn Fn(&Row) -> f64| {
        print!("{name:<32}");
        for r in rows {
            let s = seconds(r);
            print!(
                " {:>18}",
                format!("{:.2} / {:.2}", s / r.wall, 1000.0 * s / r.requests.max(1) as f64)
            );
        }
        println!();
    };
    for k in &kinds {
        line(k, &|r: &Row| r.cpu.get(k).copied().unwrap_or(0.0));
    }
    line("all", &|r: &Row| r.cpu.values().sum());
}
