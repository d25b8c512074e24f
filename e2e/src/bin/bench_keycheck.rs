//! Benchmark: the stream-key check as nginx-rtmp sees it. Each call is made the way nginx-rtmp makes it (a new TCP
//! connection, HTTP/1.0, `Connection: Close`, the form in the body, read until EOF) to the origin's local proxy
//! location, which adds the bearer token and forwards to the worker (wrangler dev) over keep-alive HTTP/1.1.
//! Median and p99 over 1,000 calls each, with 10 and then 10,000 streams in D1: the check is a primary-key lookup
//! plus an HMAC, so it should not grow with the table.
//! Run with `make bench` (or `cargo run --release -p sunnylive-e2e --bin bench_keycheck` after `make build`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sunnylive_e2e::{BoxError, Session, TestApp, ORIGIN_TOKEN};

/// Calls per measured row.
const N: usize = 1_000;
/// The large table.
const STREAMS: usize = 10_000;
/// Calls in the row that skips the proxy (each waits for workerd to close the socket).
const N_DIRECT: usize = 5;

/// One request exactly as nginx-rtmp's netcall module writes it; returns the HTTP status.
fn nginx_style_call(port: u16, path: &str, body: &str, authorization: Option<&str>) -> Result<u16, BoxError> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Connection: Close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())?;
    // nginx-rtmp reads the answer to EOF, so the call costs whatever the far side takes to close.
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {head:?}").into())
}

/// nginx-rtmp's form for a call (`publish` or `update_publish`).
fn form(key: &str, call: &str, clientid: u32) -> String {
    format!(
        "app=live&flashver=FMLE%2F3.0%20(compatible%3B%20Lavf59.27&swfurl=&tcurl=rtmp%3A%2F%2F127.0.0.1%3A1935%2Flive\
         &pageurl=&addr=127.0.0.1&clientid={clientid}&call={call}&time=3&timestamp=3000&name={key}&type=live"
    )
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[(v.len() * 99 / 100).min(v.len() - 1)]))
}

/// Times `n` calls of `call`, each of which must answer `expect`.
fn measure(n: usize, expect: u16, mut call: impl FnMut() -> Result<u16, BoxError>) -> Result<(f64, f64), BoxError> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let status = call()?;
        times.push(t.elapsed());
        if status != expect {
            return Err(format!("call {i}: expected {expect}, got {status}").into());
        }
    }
    Ok(stats(times))
}

/// Measured rows: (what was called, (median ms, p99 ms)).
type Rows = Vec<(&'static str, (f64, f64))>;

struct Target {
    key: String,
    forged: String,
}

/// The three rows measured at each table size, as (name, (median ms, p99 ms)).
fn measure_rows(app: &TestApp, t: &Target, live_clientid: u32) -> Result<Rows, BoxError> {
    let port = app.origin_http_port;
    let beat = form(&t.key, "update_publish", live_clientid);
    let forged = form(&t.forged, "publish", 1);
    // Warm-up: the first calls compile code paths and open connections.
    for _ in 0..20 {
        nginx_style_call(port, "/_worker/on-update", &beat, None)?;
    }
    Ok(vec![
        (
            "origin /healthz, no worker (floor: nginx-style connection)",
            measure(N, 200, || nginx_style_call(port, "/healthz", "", None))?,
        ),
        (
            "on-update, valid key (heartbeat: key check + write)",
            measure(N, 200, || nginx_style_call(port, "/_worker/on-update", &beat, None))?,
        ),
        (
            "on-publish, wrong MAC (key check, refused 403)",
            measure(N, 403, || nginx_style_call(port, "/_worker/on-publish", &forged, None))?,
        ),
    ])
}

async fn create_streams(app: &TestApp, owner: &Session, count: usize) -> Result<(), BoxError> {
    let api = Arc::new(app.api());
    let owner = Arc::new(owner.clone());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (api, owner, next) = (api.clone(), owner.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= count {
                    return Ok::<_, BoxError>(());
                }
                api.create_stream(&owner, &format!("bench filler {i}")).await?;
                if (i + 1) % 1000 == 0 {
                    eprintln!("bench: {} streams created", i + 1);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    sunnylive_e2e::quiet_worker_logs();
    let app = TestApp::start()?;
    let result = run(&app);
    app.stop();
    let (small, large, direct, fill) = result?;

    println!("\nStream-key check as nginx-rtmp makes it: new connection, HTTP/1.0, read to EOF, through the origin's");
    println!(
        "/_worker/ proxy (token added, keep-alive HTTP/1.1 to wrangler dev). N = {N} per cell, one call at a time.\n"
    );
    println!("| call | 10 streams: median ms | p99 ms | {STREAMS} streams: median ms | p99 ms | median ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    for ((name, (m1, p1)), (_, (m2, p2))) in small.iter().zip(&large) {
        println!("| {name} | {m1:.2} | {p1:.2} | {m2:.2} | {p2:.2} | {:.2} |", m2 / m1);
    }
    println!(
        "\nWithout the proxy (nginx-rtmp straight to wrangler dev, HTTP/1.0 read to EOF), N = {N_DIRECT}: median {:.0} ms, p99 {:.0} ms",
        direct.0, direct.1
    );
    println!(
        "Filling D1 to {STREAMS} streams through POST /api/streams took {:.1} s.",
        fill.as_secs_f64()
    );
    Ok(())
}

fn run(app: &TestApp) -> Result<(Rows, Rows, (f64, f64), Duration), BoxError> {
    let rt = tokio::runtime::Runtime::new()?;
    let api = app.api();
    let owner = rt.block_on(api.register("benchkey"))?;
    let (id, key) = rt.block_on(api.create_stream(&owner, "bench target"))?;
    rt.block_on(create_streams(app, &owner, 9))?;
    let target = Target {
        forged: format!("sk_{id}_{}", "A".repeat(32)),
        key,
    };

    // Live, held by a made-up nginx client, so that heartbeats for it are accepted.
    let clientid = 4_242_424;
    let status = nginx_style_call(
        app.origin_http_port,
        "/_worker/on-publish",
        &form(&target.key, "publish", clientid),
        None,
    )?;
    if status != 302 {
        return Err(format!("on-publish for the target stream answered {status}, not 302").into());
    }

    eprintln!("bench: measuring with 10 streams");
    let small = measure_rows(app, &target, clientid)?;

    eprintln!("bench: filling D1 to {STREAMS} streams");
    let t = Instant::now();
    rt.block_on(create_streams(app, &owner, STREAMS - 10))?;
    let fill = t.elapsed();
    let listed = rt.block_on(api.get("/api/streams?limit=1", None))?;
    if listed.status != 200 {
        return Err(format!("listing after the fill: {} {}", listed.status, listed.text).into());
    }

    eprintln!("bench: measuring with {STREAMS} streams");
    let large = measure_rows(app, &target, clientid)?;

    eprintln!("bench: {N_DIRECT} calls straight to the worker (no proxy)");
    let bearer = format!("Bearer {ORIGIN_TOKEN}");
    let beat = form(&target.key, "update_publish", clientid);
    let direct = measure(N_DIRECT, 200, || {
        nginx_style_call(app.worker_port, "/api/rtmp/on-update", &beat, Some(&bearer))
    })?;

    let done = nginx_style_call(
        app.origin_http_port,
        "/_worker/on-publish-done",
        &form(&target.key, "publish_done", clientid),
        None,
    )?;
    if done != 200 {
        return Err(format!("on-publish-done answered {done}").into());
    }
    Ok((small, large, direct, fill))
}
