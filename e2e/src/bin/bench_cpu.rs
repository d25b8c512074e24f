//! Benchmark: our Worker's own CPU per request, against a floor Worker that gives the same answers with the same
//! bytes and the same platform calls and nothing else (e2e/bench-floor/cpu/worker.js). Both run under `wrangler dev`
//! (wrangler 4.164's workerd), each in its own; what is measured is the CPU time (user + system, /proc) of the workerd
//! process that runs the Worker, over a run of requests, per request. That process also runs miniflare's local
//! stand-ins for D1, R2 and the Cache API, which both Workers pay alike; wrangler's dev proxy and Node are separate
//! processes and not counted. Rounds alternate ours and the floor, and the table shows medians over the rounds.
//!   scripts/bench cpu        (BENCH_CPU_REQUESTS per round, default 300; BENCH_CPU_ROUNDS, default 5)
//! BENCH_CPU_ONLY=<part of a row's name> measures that row alone (and the login row is skipped); the bench prints
//! our workerd's inspector address first, for a V8 CPU profile of the run (e2e/bench-floor/cpu/profile.mjs).
//! Run `make build` (or `make bench`) first.

use serde_json::json;
use sunnylive_e2e::{ensure, BoxError, DevWorker, TestApp, ORIGIN_TOKEN};

/// CPU seconds used so far by the workerd that runs the Worker (not wrangler's proxy) under process `root`.
fn worker_cpu(root: u32) -> f64 {
    sunnylive_e2e::cpu::worker_workerd_seconds(root)
}

/// The floor in its own `wrangler dev`, ready once it answers /healthz (503 until seeded).
fn start_floor() -> Result<DevWorker, BoxError> {
    let dir = sunnylive_e2e::repo_root().join("e2e/bench-floor/cpu");
    DevWorker::start(&dir, "bench-cpu-floor", |port| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut tcp| {
            use std::io::{Read, Write};
            let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut buf = [0u8; 12];
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: floor\r\nConnection: close\r\n\r\n")
                .is_ok()
                && tcp.read_exact(&mut buf).is_ok()
                && buf.starts_with(b"HTTP/1.1 503")
        })
    })
}

/// One kind of request, as sent to ours and to the floor.
struct Case {
    name: &'static str,
    ours: String,
    floor: String,
    /// Ours / floor goal, when the issue sets one.
    goal: Option<f64>,
    /// A new query string per request (a cache miss every time).
    fresh: bool,
}

async fn run(client: &reqwest::Client, url: &str, n: usize, fresh: bool, expect: usize) -> Result<(), BoxError> {
    for i in 0..n {
        let url = if fresh {
            format!("{url}?miss={i}-{}", rand_suffix())
        } else {
            url.to_string()
        };
        let r = client.get(&url).header("cf-connecting-ip", "10.9.0.1").send().await?;
        let status = r.status().as_u16();
        let body = r.bytes().await?;
        ensure!(
            status == 200 && body.len() == expect,
            "GET {url}: {status}, {} bytes (expected 200 and {expect})",
            body.len()
        );
    }
    Ok(())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), BoxError> {
    sunnylive_e2e::quiet_worker_logs();
    let n: usize = std::env::var("BENCH_CPU_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let rounds: usize = std::env::var("BENCH_CPU_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let app = TestApp::start()?;
    eprintln!(
        "bench cpu: our workerd's inspector: ws://127.0.0.1:{}/ws",
        app.inspector_port()
    );
    let floor = start_floor()?;
    let ours_pid = app.worker_pid().ok_or("our wrangler dev is not running")?;
    let floor_pid = floor.pid();
    let floor_base = format!("http://127.0.0.1:{}", floor.port);
    let rt = tokio::runtime::Runtime::new()?;
    let client = reqwest::Client::builder().build()?;
    let result: Result<(), BoxError> = rt.block_on(async {
        // Our side: a live stream with one 150 KB segment, as the origin makes it.
        let api = app.api();
        let owner = api.register("benchcpu").await?;
        let (stream, key) = api.create_stream(&owner, "bench cpu").await?;
        let form = format!("app=live&name={key}&addr=127.0.0.1&clientid=8800001&call=publish&tcurl=rtmp://x/live");
        let publish = api
            .send(
                api.request(reqwest::Method::POST, "/api/rtmp/on-publish")
                    .bearer_auth(ORIGIN_TOKEN)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form),
            )
            .await?;
        ensure!(publish.status == 302, "on-publish: {} {}", publish.status, publish.text);
        let broadcast = publish.header("location").ok_or("a Location")?.to_string();
        let segment: Vec<u8> = (0..188 * 800)
            .map(|i| if i % 188 == 0 { 0x47 } else { (i % 251) as u8 })
            .collect();
        let put = api
            .send(
                api.request(
                    reqwest::Method::PUT,
                    &format!("/api/origin/hls/{broadcast}/0.ts?duration=2"),
                )
                .bearer_auth(ORIGIN_TOKEN)
                .header("content-type", "video/mp2t")
                .body(segment.clone()),
            )
            .await?;
        ensure!(put.status < 300, "upload: {} {}", put.status, put.text);
        let seg_path = format!("/hls/{stream}/{broadcast}/0.ts");
        let live_path = format!("/hls/{stream}/live.m3u8");
        // What ours answers, byte for byte, seeded into the floor.
        let get = |path: String| {
            let client = client.clone();
            let base = app.base.clone();
            async move {
                let r = client.get(format!("{base}{path}")).send().await?;
                ensure!(r.status().as_u16() == 200, "GET {path}: {}", r.status());
                Ok::<Vec<u8>, BoxError>(r.bytes().await?.to_vec())
            }
        };
        let healthz = get("/healthz".into()).await?;
        let streams = get("/api/streams?limit=20".into()).await?;
        let playlist = get(live_path.clone()).await?;
        let seed = |name: &'static str, query: String, body: Vec<u8>| {
            let client = client.clone();
            let base = floor_base.clone();
            async move {
                let r = client
                    .put(format!("{base}/__seed/{name}{query}"))
                    .body(body)
                    .send()
                    .await?;
                ensure!(r.status().as_u16() == 204, "seed {name}: {}", r.status());
                Ok::<(), BoxError>(())
            }
        };
        seed("healthz", String::new(), healthz.clone()).await?;
        seed("streams", String::new(), streams.clone()).await?;
        seed("playlist", format!("?into=cache&at={live_path}"), playlist.clone()).await?;
        seed("cached-segment", format!("?into=cache&at={seg_path}"), segment.clone()).await?;
        seed("segment", "?into=r2".into(), segment.clone()).await?;

        let cases = [
            Case {
                name: "GET /healthz",
                ours: format!("{}/healthz", app.base),
                floor: format!("{}/healthz", floor_base),
                goal: Some(1.5),
                fresh: false,
            },
            Case {
                name: "GET /api/streams",
                ours: format!("{}/api/streams?limit=20", app.base),
                floor: format!("{}/api/streams", floor_base),
                goal: None,
                fresh: false,
            },
            Case {
                name: "GET live playlist (cached 1 s)",
                ours: format!("{}{live_path}", app.base),
                floor: format!("{}{live_path}", floor_base),
                goal: Some(1.3),
                fresh: false,
            },
            Case {
                name: "GET cached segment (150 KB)",
                ours: format!("{}{seg_path}", app.base),
                floor: format!("{}{seg_path}", floor_base),
                goal: Some(1.3),
                fresh: false,
            },
            Case {
                name: "GET segment miss (R2 + cache put)",
                ours: format!("{}{seg_path}", app.base),
                floor: format!("{}{seg_path}", floor_base),
                goal: None,
                fresh: true,
            },
        ];
        let sizes = [
            healthz.len(),
            streams.len(),
            playlist.len(),
            segment.len(),
            segment.len(),
        ];
        // Warm both: compile, open the stand-ins' databases, fill the caches.
        for (case, size) in cases.iter().zip(sizes) {
            run(&client, &case.ours, 20, case.fresh, size).await?;
            run(&client, &case.floor, 20, case.fresh, size).await?;
        }
        println!(
            "CPU per request of the workerd running each Worker (ms; median of {rounds} rounds of {n} requests, \
             alternating ours and the floor)\n"
        );
        println!("| request | ours ms | floor ms | ours / floor | goal | verdict |");
        println!("|---|---:|---:|---:|---:|---|");
        let only = std::env::var("BENCH_CPU_ONLY").unwrap_or_default();
        for (case, size) in cases.iter().zip(sizes) {
            if !case.name.contains(&only) {
                continue;
            }
            let (mut ours, mut base) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                for (url, pid, out) in [(&case.ours, ours_pid, &mut ours), (&case.floor, floor_pid, &mut base)] {
                    let before = worker_cpu(pid);
                    run(&client, url, n, case.fresh, size).await?;
                    out.push((worker_cpu(pid) - before) * 1000.0 / n as f64);
                }
            }
            let (o, f) = (median(ours), median(base));
            let ratio = o / f.max(1e-6);
            let (goal, verdict) = match case.goal {
                Some(g) => (format!("<= {g:.1}x"), if ratio <= g { "met" } else { "NOT met" }),
                None => ("-".to_string(), "-"),
            };
            println!("| {} | {o:.3} | {f:.3} | {ratio:.2}x | {goal} | {verdict} |", case.name);
        }
        if !only.is_empty() {
            return Ok(());
        }
        // Sign-in: PBKDF2 (100,000 iterations through WebCrypto) is most of it; the free plan allows 10 ms of CPU.
        let mut logins = Vec::new();
        for round in 0..rounds {
            let mut users = Vec::new();
            for _ in 0..20 {
                users.push(app.api().register("benchcpul").await?);
            }
            let before = worker_cpu(ours_pid);
            for user in &users {
                let a = app
                    .api()
                    .post(
                        "/api/auth/login",
                        None,
                        &json!({"username": user.username, "password": user.password}),
                    )
                    .await?;
                ensure!(a.status == 200, "login (round {round}): {} {}", a.status, a.text);
            }
            logins.push((worker_cpu(ours_pid) - before) * 1000.0 / users.len() as f64);
        }
        println!(
            "| POST /api/auth/login (PBKDF2 100,000) | {:.3} | - | - | free plan: 10 ms | - |",
            median(logins)
        );
        Ok(())
    });
    drop(floor);
    app.stop();
    result
}
