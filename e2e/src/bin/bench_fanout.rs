//! Benchmark: chat fan-out of one ChatRoom Durable Object. One room holds 100, then 500, then 1,000 connected
//! sockets; the stream's host sends chat messages at a fixed rate and every other socket measures the delay from
//! send to receipt (median and p99 over every delivery). Then a ladder of rates finds the highest rate the room
//! sustains with p99 under 250 ms and every message delivered. Prints one table per measurement kind.
//!
//! Run with `make bench`, or `cargo run --release -p sunnylive-e2e --bin bench_fanout` after `make build` (it starts
//! its own stack through the harness), or against a running `make dev` with
//! `SUNNYLIVE_BENCH_URL=http://127.0.0.1:8787 cargo run --release -p sunnylive-e2e --bin bench_fanout`.
//! Knobs: `BENCH_SOCKETS=100,500,1000`, `BENCH_FIXED_RATE=10` (messages/s), `BENCH_FIXED_SECONDS=10`,
//! `BENCH_STEP_SECONDS=5`, `BENCH_MAX_RATE=800`.
//!
//! Everything runs on one machine: the clients' own CPU time (reading up to tens of thousands of frames per second)
//! competes with workerd for the same cores, so the numbers are a floor on what the room does, not a ceiling.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use sunnylive_e2e::{Api, BoxError, TestApp};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// p99 must stay under this for a rate to count as sustained.
const P99_BUDGET_MS: f64 = 250.0;
/// After the last send, how long deliveries may still trickle in before the step counts as losing messages.
const DRAIN: Duration = Duration::from_secs(10);
/// Sockets opened at once while filling the room.
const CONNECT_PARALLELISM: usize = 50;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// When each message (by sequence number) left the sender.
type SentAt = Arc<Mutex<Vec<Option<Instant>>>>;

/// One delivery: message sequence number and when a socket got it.
type Delivery = (usize, Instant);

/// Finds `"text":"b<seq> ` in a chat frame without parsing the JSON: at 1,000 sockets the clients read tens of
/// thousands of frames per second on the same cores as workerd, and a full parse would measure the client.
fn seq_of(frame: &str) -> Option<usize> {
    let start = frame.find(r#""text":"b"#)? + r#""text":"b"#.len();
    let digits: String = frame[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

struct Receivers {
    count: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Delivery>,
}

impl Receivers {
    /// Opens `n` more anonymous sockets; each forwards every chat delivery to the collector.
    async fn add(&self, ws_url: &str, n: usize) -> Result<(), BoxError> {
        let results: Vec<Result<(), BoxError>> = futures::stream::iter(0..n)
            .map(|_| self.spawn_one(ws_url.to_string()))
            .buffer_unordered(CONNECT_PARALLELISM)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn spawn_one(&self, url: String) -> Result<(), BoxError> {
        let req = url.into_client_request()?;
        let (mut socket, _) =
            tokio::time::timeout(Duration::from_secs(30), tokio_tungstenite::connect_async(req)).await??;
        // The welcome comes first; wait for it so the socket counts only once it is really in the room.
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await? {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"welcome""#) => {}
            other => return Err(format!("expected a welcome, got {other:?}").into()),
        }
        self.count.fetch_add(1, Ordering::SeqCst);
        let (tx, lost, stop) = (self.tx.clone(), self.lost.clone(), self.stop.clone());
        tokio::spawn(async move {
            while let Some(msg) = socket.next().await {
                let now = Instant::now();
                match msg {
                    Ok(Message::Text(t)) => {
                        if let Some(seq) = seq_of(t.as_str()) {
                            let _ = tx.send((seq, now));
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if !stop.load(Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(())
    }
}

struct StepResult {
    sockets: usize,
    rate: f64,
    sent: usize,
    delivered: usize,
    expected: usize,
    median_ms: f64,
    p99_ms: f64,
}

impl StepResult {
    fn sustained(&self) -> bool {
        self.delivered == self.expected && self.p99_ms < P99_BUDGET_MS
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

type HostSink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

struct Bench {
    host: HostSink,
    sent_at: SentAt,
    next_seq: usize,
    rx: mpsc::UnboundedReceiver<Delivery>,
    receivers: Receivers,
}

impl Bench {
    /// Sends `rate` messages per second for `seconds` and measures every delivery of them.
    async fn step(&mut self, rate: f64, seconds: f64) -> Result<StepResult, BoxError> {
        let sockets = self.receivers.count.load(Ordering::SeqCst);
        let count = ((rate * seconds).round() as usize).max(1);
        let first = self.next_seq;
        self.next_seq += count;
        {
            let mut sent = self.sent_at.lock().map_err(|_| "poisoned")?;
            sent.resize(self.next_seq, None);
        }
        let interval = Duration::from_secs_f64(1.0 / rate);
        let padding = "x".repeat(60);
        let mut latencies: Vec<f64> = Vec::with_capacity(count * sockets);
        let expected = count * sockets;
        let start = tokio::time::Instant::now();
        let mut seq = first;
        let mut last_send = start;
        loop {
            // Send on schedule; between sends, collect deliveries.
            if seq < first + count {
                let due = start + interval.mul_f64((seq - first) as f64);
                if tokio::time::Instant::now() >= due {
                    let text = json!({"type": "chat", "text": format!("b{seq} {padding}")}).to_string();
                    self.sent_at.lock().map_err(|_| "poisoned")?[seq] = Some(Instant::now());
                    self.host.send(Message::text(text)).await?;
                    seq += 1;
                    last_send = tokio::time::Instant::now();
                    continue;
                }
                let wait = due.saturating_duration_since(tokio::time::Instant::now());
                if let Ok(Some(d)) = tokio::time::timeout(wait, self.rx.recv()).await {
                    self.record(d, first, &mut latencies)?;
                }
                continue;
            }
            if latencies.len() >= expected || tokio::time::Instant::now() > last_send + DRAIN {
                break;
            }
            let left = (last_send + DRAIN).saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(d)) => self.record(d, first, &mut latencies)?,
                _ => break,
            }
        }
        latencies.sort_by(f64::total_cmp);
        Ok(StepResult {
            sockets,
            rate,
            sent: count,
            delivered: latencies.len(),
            expected,
            median_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
        })
    }

    fn record(&self, (seq, at): Delivery, first: usize, latencies: &mut Vec<f64>) -> Result<(), BoxError> {
        if seq < first {
            return Ok(()); // a straggler from an earlier step
        }
        if let Some(Some(sent)) = self.sent_at.lock().map_err(|_| "poisoned")?.get(seq) {
            latencies.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
        }
        Ok(())
    }

    /// Lets the room and the clients settle, dropping any late deliveries.
    async fn settle(&mut self) {
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(_)) = tokio::time::timeout_at(until, self.rx.recv()).await {}
    }
}

async fn run(base: String) -> Result<(Vec<StepResult>, Vec<(usize, Option<f64>, Vec<StepResult>)>), BoxError> {
    let sizes = env_list("BENCH_SOCKETS", &[100, 500, 1000]);
    let fixed_rate = env_num("BENCH_FIXED_RATE", 10.0);
    let fixed_seconds = env_num("BENCH_FIXED_SECONDS", 10.0);
    let step_seconds = env_num("BENCH_STEP_SECONDS", 5.0);
    let max_rate = env_num("BENCH_MAX_RATE", 800.0);

    let api = Api::new(&base, sunnylive_e2e::next_ip());
    let host = api.register("fanout").await?;
    let (stream_id, _key) = api.create_stream(&host, "fan-out benchmark").await?;
    let ws_url = format!("{}/api/streams/{stream_id}/chat", base.replacen("http", "ws", 1));
    let mut req = ws_url.clone().into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", host.access).parse()?);
    let (host_socket, _) = tokio_tungstenite::connect_async(req).await?;
    let (host_sink, mut host_stream) = host_socket.split();
    host_stream.next().await.ok_or("no welcome for the host")??;
    // The host's socket gets its own messages back too: read them so they never pile up.
    tokio::spawn(async move { while let Some(Ok(_)) = host_stream.next().await {} });

    let (tx, rx) = mpsc::unbounded_channel();
    let receivers = Receivers {
        count: Arc::new(AtomicUsize::new(0)),
        lost: Arc::new(AtomicUsize::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
        tx,
    };
    let mut bench = Bench {
        host: host_sink,
        sent_at: Arc::new(Mutex::new(Vec::new())),
        next_seq: 0,
        rx,
        receivers,
    };
    let mut fixed = Vec::new();
    let mut ladders = Vec::new();
    for &n in &sizes {
        let have = bench.receivers.count.load(Ordering::SeqCst);
        if n > have {
            let t = Instant::now();
            bench.receivers.add(&ws_url, n - have).await?;
            eprintln!(
                "bench: {n} sockets in the room ({:.1} s to add {})",
                t.elapsed().as_secs_f64(),
                n - have
            );
        }
        bench.settle().await;
        // Warm-up: a few messages so the first measured ones do not pay for compilation or a wake-up.
        bench.step(5.0, 3.0).await?;
        bench.settle().await;
        let r = bench.step(fixed_rate, fixed_seconds).await?;
        eprintln!(
            "bench: {n} sockets at {fixed_rate} msg/s: median {:.1} ms, p99 {:.1} ms",
            r.median_ms, r.p99_ms
        );
        fixed.push(r);
        bench.settle().await;

        // Ladder: double the rate until a step misses the budget, then bisect twice between the last pass and it.
        let mut steps = Vec::new();
        let mut best: Option<f64> = None;
        let mut rate = 1.0;
        let mut failed_at: Option<f64> = None;
        while rate <= max_rate {
            let r = bench.step(rate, step_seconds).await?;
            eprintln!(
                "bench: {n} sockets at {rate} msg/s: median {:.1} ms, p99 {:.1} ms, {}/{} delivered",
                r.median_ms, r.p99_ms, r.delivered, r.expected
            );
            bench.settle().await;
            let ok = r.sustained();
            steps.push(r);
            if ok {
                best = Some(rate);
                rate *= 2.0;
            } else {
                failed_at = Some(rate);
                break;
            }
        }
        if let Some(mut high) = failed_at {
            let mut low = best.unwrap_or(0.0);
            for _ in 0..2 {
                let mid = ((low + high) / 2.0).round();
                if mid <= low || mid >= high {
                    break;
                }
                let r = bench.step(mid, step_seconds).await?;
                eprintln!(
                    "bench: {n} sockets at {mid} msg/s: p99 {:.1} ms, {}/{}",
                    r.p99_ms, r.delivered, r.expected
                );
                bench.settle().await;
                if r.sustained() {
                    low = mid;
                    best = Some(mid);
                } else {
                    high = mid;
                }
                steps.push(r);
            }
        }
        ladders.push((n, best, steps));
    }
    bench.receivers.stop.store(true, Ordering::SeqCst);
    let lost = bench.receivers.lost.load(Ordering::SeqCst);
    if lost > 0 {
        eprintln!("bench: warning: {lost} receiver sockets closed during the run");
    }
    Ok((fixed, ladders))
}

fn main() -> Result<(), BoxError> {
    let (app, base) = match std::env::var("SUNNYLIVE_BENCH_URL") {
        Ok(url) => (None, url.trim_end_matches('/').to_string()),
        Err(_) => {
            let app = TestApp::start()?;
            let base = app.base.clone();
            (Some(app), base)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let load_before = load_average();
    let result = rt.block_on(run(base));
    let load_after = load_average();
    if let Some(app) = &app {
        app.stop();
    }
    let (fixed, ladders) = result?;

    println!("\nChat fan-out through wrangler dev: one room, one sender (the host), every other socket measuring");
    println!("send-to-receipt delay over every delivery (loopback; clients share the machine's cores with workerd).");
    println!(
        "{} cores; 1-minute load average {load_before} at the start, {load_after} at the end (other work skews these numbers).\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| sockets | rate msg/s | messages | frames/s out | delivered | median ms | p99 ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in &fixed {
        println!(
            "| {} | {} | {} | {:.0} | {}/{} | {:.1} | {:.1} |",
            r.sockets,
            r.rate,
            r.sent,
            r.rate * r.sockets as f64,
            r.delivered,
            r.expected,
            r.median_ms,
            r.p99_ms
        );
    }
    println!("\nHighest rate sustained with p99 < {P99_BUDGET_MS} ms and nothing lost (doubling from 1 msg/s, then two bisection steps)\n");
    println!("| sockets | highest rate msg/s | frames/s out | p99 ms there | first failing rate (p99 ms, delivered) |");
    println!("|---:|---:|---:|---:|---|");
    for (n, best, steps) in &ladders {
        let at_best = best.and_then(|b| steps.iter().find(|s| s.rate == b));
        let failing = steps
            .iter()
            .filter(|s| !s.sustained())
            .min_by(|a, b| a.rate.total_cmp(&b.rate))
            .map(|s| format!("{} ({:.0} ms, {}/{})", s.rate, s.p99_ms, s.delivered, s.expected))
            .unwrap_or_else(|| "none up to BENCH_MAX_RATE".into());
        println!(
            "| {n} | {} | {} | {} | {failing} |",
            best.map_or("below 1".into(), |b| format!("{b}")),
            best.map_or("-".into(), |b| format!("{:.0}", b * *n as f64)),
            at_best.map_or("-".into(), |s| format!("{:.1}", s.p99_ms)),
        );
    }
    Ok(())
}

/// The 1-minute load average (Linux), printed with the results: on a shared machine it explains most of the spread.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
