//! Benchmark: chat fan-out of one chat room, shards off and on, beside the client-capacity floor. One room holds 100,
//! then 1,000, then 10,000 connected sockets (each from its own client address, as distinct viewers); the stream's
//! host sends chat messages at a fixed rate (10 msg/s, 1 msg/s above 1,000 sockets) and every other socket measures
//! the delay from send to receipt (median and p99 over every delivery, and the median delay to the first socket,
//! which is the room's own path without the fan-out). At 1,000 sockets a ladder of rates finds the highest rate the
//! room sustains with p99 under 250 ms and every message delivered.
//!
//! The floor: the same clients, sizes and rates against a do-nothing broadcaster in this process (its own thread
//! and runtime; every chat it gets is sent straight back to every socket, one frame per message, nothing stored).
//! Everything runs on one machine, so the clients' CPU time competes with workerd's: when the room's figures are
//! near the floor's, the machine (the client) was the bound, not the room.
//!
//! The platform floor: the same clients against a do-nothing Durable Object broadcaster (e2e/bench-floor/worker.js,
//! the same hibernation WebSocket API as our room, nothing stored) in its own `wrangler dev`. It pays what the room
//! pays for workerd and for wrangler's dev proxy (which relays every frame once more, and which production does not
//! have), without our code: the room's distance to it is what our room costs.
//!
//! The room runs twice, each time on a fresh stack: shards off (`CHAT_SHARD_SOCKETS` above any size, so one object
//! holds every socket) and shards on (`BENCH_SHARD_SOCKETS` per object, default 250: past that the room places
//! viewers on ChatShard relays and forwards each frame once per shard). `BENCH_SHARDS=off` or `on` runs one.
//!
//! Run with `make bench` / `scripts/bench fanout`, or `cargo run --release -p sunnylive-e2e --bin bench_fanout`
//! after `make build` (it starts its own stack through the harness), or against a running `make dev` with
//! `SUNNYLIVE_BENCH_URL=http://127.0.0.1:8787`. Knobs: `BENCH_SOCKETS=100,1000,10000`, `BENCH_FIXED_RATE=10`,
//! `BENCH_BIG_RATE=1` (the fixed rate above 1,000 sockets), `BENCH_FIXED_SECONDS=10`, `BENCH_LADDER_SOCKETS=1000`,
//! `BENCH_STEP_SECONDS=5`, `BENCH_MAX_RATE=800`, `BENCH_FLOOR=0` (skip the floor), `BENCH_PLATFORM_FLOOR=0` (skip the
//! platform floor), `BENCH_SHARDS=off,on`,
//! `BENCH_SHARD_SOCKETS=250`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use sunnylive_e2e::{env_list, Api, BoxError, TestApp};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// p99 must stay under this for a rate to count as sustained.
const P99_BUDGET_MS: f64 = 250.0;
/// After the last send, how long deliveries may still trickle in before the step counts as losing messages.
const DRAIN: Duration = Duration::from_secs(10);
/// Sockets opened at once while filling the room.
const CONNECT_PARALLELISM: usize = 50;

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// When each message (by sequence number) left the sender.
type SentAt = Arc<Mutex<Vec<Option<Instant>>>>;

/// One delivery: message sequence number and when a socket got it.
type Delivery = (usize, Instant);

/// Every `"text":"b<seq> ` in a frame (one chat frame, or a `batch` of them) without parsing the JSON: at 1,000
/// sockets the clients read tens of thousands of frames per second on the same cores as workerd, and a full parse
/// would measure the client.
fn seqs_in(frame: &str) -> impl Iterator<Item = usize> + '_ {
    const MARK: &str = r#""text":"b"#;
    frame.match_indices(MARK).filter_map(|(at, _)| {
        let digits = &frame[at + MARK.len()..];
        let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
        digits[..end].parse().ok()
    })
}

struct Receivers {
    count: Arc<AtomicUsize>,
    /// Receivers ever opened (names their client addresses).
    opened: AtomicUsize,
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

    /// Opens one receiver, retrying twice: with thousands of connects in flight a loaded machine resets a few.
    async fn spawn_one(&self, url: String) -> Result<(), BoxError> {
        let mut last = None;
        for attempt in 0..3u64 {
            match self.try_spawn_one(url.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
        }
        Err(last.unwrap_or_else(|| "no attempt".into()))
    }

    async fn try_spawn_one(&self, url: String) -> Result<(), BoxError> {
        let mut req = url.into_client_request()?;
        // One address each, so the room sees distinct viewers and its per-address socket cap never applies.
        let ip = sunnylive_e2e::viewer_ipv4(self.opened.fetch_add(1, Ordering::SeqCst));
        req.headers_mut().insert("cf-connecting-ip", ip.parse()?);
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
                        for seq in seqs_in(t.as_str()) {
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
    /// Median over messages of the delay to the first socket that got it.
    first_median_ms: f64,
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
        let mut firsts: Vec<f64> = vec![f64::INFINITY; count];
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
                    self.record(d, first, &mut latencies, &mut firsts)?;
                }
                continue;
            }
            if latencies.len() >= expected || tokio::time::Instant::now() > last_send + DRAIN {
                break;
            }
            let left = (last_send + DRAIN).saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(d)) => self.record(d, first, &mut latencies, &mut firsts)?,
                _ => break,
            }
        }
        latencies.sort_by(f64::total_cmp);
        let mut firsts: Vec<f64> = firsts.into_iter().filter(|f| f.is_finite()).collect();
        firsts.sort_by(f64::total_cmp);
        Ok(StepResult {
            sockets,
            rate,
            sent: count,
            delivered: latencies.len(),
            expected,
            median_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
            first_median_ms: percentile(&firsts, 0.5),
        })
    }

    fn record(
        &self,
        (seq, at): Delivery,
        first: usize,
        latencies: &mut Vec<f64>,
        firsts: &mut [f64],
    ) -> Result<(), BoxError> {
        if seq < first {
            return Ok(()); // a straggler from an earlier step
        }
        if let Some(Some(sent)) = self.sent_at.lock().map_err(|_| "poisoned")?.get(seq) {
            let ms = at.duration_since(*sent).as_secs_f64() * 1000.0;
            latencies.push(ms);
            if let Some(f) = firsts.get_mut(seq - first) {
                *f = f.min(ms);
            }
        }
        Ok(())
    }

    /// Lets the room and the clients settle, dropping any late deliveries.
    async fn settle(&mut self) {
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(_)) = tokio::time::timeout_at(until, self.rx.recv()).await {}
    }

    /// Doubles the rate from 1 msg/s until a step misses the budget, then bisects twice between the last pass and
    /// it. Returns the highest sustained rate and every step.
    async fn ladder(&mut self, label: &str, step_seconds: f64, max_rate: f64) -> Result<Ladder, BoxError> {
        let n = self.receivers.count.load(Ordering::SeqCst);
        let mut steps = Vec::new();
        let mut best: Option<f64> = None;
        let mut rate = 1.0;
        let mut failed_at: Option<f64> = None;
        while rate <= max_rate {
            let r = self.step(rate, step_seconds).await?;
            eprintln!(
                "bench: {label}: {n} sockets at {rate} msg/s: median {:.1} ms, p99 {:.1} ms, {}/{} delivered",
                r.median_ms, r.p99_ms, r.delivered, r.expected
            );
            self.settle().await;
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
                let r = self.step(mid, step_seconds).await?;
                eprintln!(
                    "bench: {label}: {n} sockets at {mid} msg/s: p99 {:.1} ms, {}/{}",
                    r.p99_ms, r.delivered, r.expected
                );
                self.settle().await;
                if r.sustained() {
                    low = mid;
                    best = Some(mid);
                } else {
                    high = mid;
                }
                steps.push(r);
            }
        }
        Ok(Ladder {
            sockets: n,
            best,
            steps,
        })
    }
}

struct Ladder {
    sockets: usize,
    best: Option<f64>,
    steps: Vec<StepResult>,
}

/// What one target (the room, or the floor) measured.
struct Measured {
    label: &'static str,
    fixed: Vec<StepResult>,
    ladders: Vec<Ladder>,
}

/// Where the benchmark connects: the sockets' URL and the host's bearer token (the floor needs none).
struct Target {
    label: &'static str,
    ws_url: String,
    host_token: Option<String>,
}

struct Plan {
    sizes: Vec<usize>,
    fixed_rate: f64,
    big_rate: f64,
    fixed_seconds: f64,
    ladder_sizes: Vec<usize>,
    step_seconds: f64,
    max_rate: f64,
}

impl Plan {
    fn from_env() -> Plan {
        Plan {
            sizes: env_list("BENCH_SOCKETS", &[100, 1000, 10_000]),
            fixed_rate: env_num("BENCH_FIXED_RATE", 10.0),
            big_rate: env_num("BENCH_BIG_RATE", 1.0),
            fixed_seconds: env_num("BENCH_FIXED_SECONDS", 10.0),
            ladder_sizes: env_list("BENCH_LADDER_SOCKETS", &[1000]),
            step_seconds: env_num("BENCH_STEP_SECONDS", 5.0),
            max_rate: env_num("BENCH_MAX_RATE", 800.0),
        }
    }

    /// The fixed rate for a room of `n` sockets: above 1,000 this machine's one client cannot read more.
    fn rate_for(&self, n: usize) -> f64 {
        if n > 1000 {
            self.big_rate
        } else {
            self.fixed_rate
        }
    }
}

async fn measure(target: Target, plan: &Plan) -> Result<Measured, BoxError> {
    let label = target.label;
    let mut req = target.ws_url.clone().into_client_request()?;
    if let Some(token) = &target.host_token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    req.headers_mut().insert("cf-connecting-ip", "198.19.0.1".parse()?);
    let (host_socket, _) = tokio_tungstenite::connect_async(req).await?;
    let (host_sink, mut host_stream) = host_socket.split();
    host_stream.next().await.ok_or("no welcome for the host")??;
    // The host's socket gets its own messages back too: read them so they never pile up.
    tokio::spawn(async move { while let Some(Ok(_)) = host_stream.next().await {} });

    let (tx, rx) = mpsc::unbounded_channel();
    let receivers = Receivers {
        count: Arc::new(AtomicUsize::new(0)),
        opened: AtomicUsize::new(0),
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
    for &n in &plan.sizes {
        let have = bench.receivers.count.load(Ordering::SeqCst);
        if n > have {
            let t = Instant::now();
            if let Err(e) = bench.receivers.add(&target.ws_url, n - have).await {
                // Report what was measured so far rather than nothing.
                eprintln!("bench: {label}: could not open {n} sockets ({e}); skipping {n} and above");
                break;
            }
            eprintln!(
                "bench: {label}: {n} sockets ({:.1} s to add {})",
                t.elapsed().as_secs_f64(),
                n - have
            );
        }
        bench.settle().await;
        // Warm-up: a few messages so the first measured ones do not pay for compilation or a wake-up.
        bench.step(plan.rate_for(n).min(5.0), 3.0).await?;
        bench.settle().await;
        let rate = plan.rate_for(n);
        let r = bench.step(rate, plan.fixed_seconds).await?;
        eprintln!(
            "bench: {label}: {n} sockets at {rate} msg/s: median {:.1} ms, p99 {:.1} ms, first socket {:.1} ms, {}/{}",
            r.median_ms, r.p99_ms, r.first_median_ms, r.delivered, r.expected
        );
        fixed.push(r);
        bench.settle().await;
        if plan.ladder_sizes.contains(&n) {
            ladders.push(bench.ladder(label, plan.step_seconds, plan.max_rate).await?);
        }
    }
    bench.receivers.stop.store(true, Ordering::SeqCst);
    let lost = bench.receivers.lost.load(Ordering::SeqCst);
    if lost > 0 {
        eprintln!("bench: {label}: warning: {lost} receiver sockets closed during the run");
    }
    Ok(Measured { label, fixed, ladders })
}

/// The room under test: a fresh user's fresh stream on `base`.
async fn room_target(base: &str, label: &'static str) -> Result<Target, BoxError> {
    let api = Api::new(base, sunnylive_e2e::next_ip());
    let host = api.register("fanout").await?;
    let (stream_id, _key) = api.create_stream(&host, "fan-out benchmark").await?;
    Ok(Target {
        label,
        ws_url: format!("{}/api/streams/{stream_id}/chat", base.replacen("http", "ws", 1)),
        host_token: Some(host.access),
    })
}

/// The floor: a do-nothing broadcaster on its own thread and runtime. Every socket gets a welcome first; every chat
/// frame any socket sends goes back to every socket as a chat frame of the room's shape, one frame per message.
fn start_floor() -> Result<Target, BoxError> {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("floor".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("BUG: a current-thread runtime always builds");
        rt.block_on(async move {
            // A deep accept queue: thousands of receivers connect at once (the default 128 resets some).
            let listener = tokio::net::TcpSocket::new_v4()
                .and_then(|s| s.bind(([127, 0, 0, 1], 0).into()).map(|_| s))
                .and_then(|s| s.listen(4096));
            let listener = match listener {
                Ok(l) => l,
                Err(e) => {
                    let _ = port_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = port_tx.send(listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string()));
            let sockets: Arc<Mutex<Vec<mpsc::UnboundedSender<Message>>>> = Arc::default();
            let next_id = Arc::new(AtomicUsize::new(1));
            while let Ok((tcp, _)) = listener.accept().await {
                let (sockets, next_id) = (sockets.clone(), next_id.clone());
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let (mut sink, mut stream) = ws.split();
                    let (out, mut inbox) = mpsc::unbounded_channel();
                    let welcome = r#"{"type":"welcome","you":{"id":null,"username":null,"role":"anonymous"},"history":[],"viewers":0,"status":"live","slow_mode_seconds":0}"#;
                    let _ = out.send(Message::text(welcome));
                    if let Ok(mut all) = sockets.lock() {
                        all.push(out);
                    }
                    tokio::spawn(async move {
                        while let Some(m) = inbox.recv().await {
                            if sink.send(m).await.is_err() {
                                break;
                            }
                        }
                    });
                    while let Some(Ok(Message::Text(t))) = stream.next().await {
                        let Ok(frame) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                            continue;
                        };
                        let id = next_id.fetch_add(1, Ordering::SeqCst);
                        let chat = json!({"type": "chat", "id": id.to_string(),
                            "user": {"id": "aaaaaaaaaaaaaaaa", "username": "fanout"},
                            "text": frame["text"], "ts": "2026-01-01T00:00:00.000Z"})
                        .to_string();
                        let chat = Message::text(chat);
                        if let Ok(all) = sockets.lock() {
                            for s in all.iter() {
                                let _ = s.send(chat.clone());
                            }
                        }
                    }
                });
            }
        });
    })?;
    let port = port_rx.recv()??;
    Ok(Target {
        label: "floor",
        ws_url: format!("ws://127.0.0.1:{port}/"),
        host_token: None,
    })
}

/// The platform floor: a do-nothing Durable Object broadcaster (e2e/bench-floor/worker.js) in its own `wrangler
/// dev`, so the same client measures workerd and wrangler's dev proxy without our room's code between them.
fn start_platform_floor() -> Result<(Target, sunnylive_e2e::DevWorker), BoxError> {
    let dir = sunnylive_e2e::repo_root().join("e2e/bench-floor");
    // Ready when a plain GET gets the floor's own 426 (a WebSocket endpoint).
    let floor = sunnylive_e2e::DevWorker::start(&dir, "bench-floor", |port| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut tcp| {
            use std::io::{Read, Write};
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 12];
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: floor\r\nConnection: close\r\n\r\n")
                .is_ok()
                && tcp.read_exact(&mut buf).is_ok()
                && buf.starts_with(b"HTTP/1.1 426")
        })
    })?;
    let port = floor.port;
    Ok((
        Target {
            label: "platform floor",
            ws_url: format!("ws://127.0.0.1:{port}/"),
            host_token: None,
        },
        floor,
    ))
}

fn main() -> Result<(), BoxError> {
    let plan = Plan::from_env();
    let with_floor = std::env::var("BENCH_FLOOR").map_or(true, |v| v != "0");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let load_before = load_average();
    let started = sunnylive_e2e::charts::run_stamp();
    let mut results = Vec::new();
    // The floor first, on a quiet machine (no stack yet), then the room.
    if with_floor {
        results.push(rt.block_on(measure(start_floor()?, &plan))?);
    }
    if std::env::var("BENCH_PLATFORM_FLOOR").map_or(true, |v| v != "0") {
        let (target, floor) = start_platform_floor()?;
        let measured = rt.block_on(measure(target, &plan));
        drop(floor);
        results.push(measured?);
    }
    if let Ok(url) = std::env::var("SUNNYLIVE_BENCH_URL") {
        // A running stack shards as it was configured.
        let base = url.trim_end_matches('/').to_string();
        results.push(rt.block_on(async { measure(room_target(&base, "room").await?, &plan).await })?);
    } else {
        // Each mode on a fresh stack of its own, one after the other: shards off (one object holds every socket)
        // beside shards on (`BENCH_SHARD_SOCKETS` per object).
        for mode in shard_modes() {
            let (label, per_object) = match mode {
                ShardMode::Off => ("room, shards off", SHARDS_OFF),
                ShardMode::On => ("room, shards on", shard_sockets()),
            };
            eprintln!("bench: {label}: CHAT_SHARD_SOCKETS={per_object}");
            sunnylive_e2e::quiet_worker_logs();
            let app = TestApp::start_with_chat_shard_sockets(per_object)?;
            let base = app.base.clone();
            let room = rt.block_on(async { measure(room_target(&base, label).await?, &plan).await });
            app.stop();
            results.push(room?);
        }
    }
    let load_after = load_average();
    print_tables(&results, &load_before, &load_after);
    write_results(&results, &started)
}

/// Every step of every target as CSV in the results folder, for `bench_charts` to draw.
fn write_results(results: &[Measured], run: &str) -> Result<(), BoxError> {
    use sunnylive_e2e::charts::{fanout_csv, results_dir, write_file, FanoutStep};
    let as_step = |label: &str, phase: &str, r: &StepResult| FanoutStep {
        run: run.to_string(),
        target: label.to_string(),
        phase: phase.to_string(),
        sockets: r.sockets,
        rate: r.rate,
        median_ms: r.median_ms,
        p99_ms: r.p99_ms,
        delivered: r.delivered as u64,
        expected: r.expected as u64,
    };
    let mut steps = Vec::new();
    for m in results {
        steps.extend(m.fixed.iter().map(|r| as_step(m.label, "fixed", r)));
        for l in &m.ladders {
            steps.extend(l.steps.iter().map(|r| as_step(m.label, "ladder", r)));
        }
    }
    let path = results_dir().join("fanout.csv");
    write_file(&path, &fanout_csv(&steps)?)?;
    eprintln!("bench: results in {}", path.display());
    Ok(())
}

/// `CHAT_SHARD_SOCKETS` for the shards-off run: more sockets than any run opens, so the room never shards.
const SHARDS_OFF: u32 = 1_000_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ShardMode {
    Off,
    On,
}

/// `BENCH_SHARDS=off,on` (the default), `off` or `on`.
fn shard_modes() -> Vec<ShardMode> {
    let v = std::env::var("BENCH_SHARDS").unwrap_or_else(|_| "off,on".into());
    let modes: Vec<ShardMode> = v
        .split(',')
        .filter_map(|m| match m.trim() {
            "off" => Some(ShardMode::Off),
            "on" => Some(ShardMode::On),
            _ => None,
        })
        .collect();
    if modes.is_empty() {
        vec![ShardMode::Off, ShardMode::On]
    } else {
        modes
    }
}

/// Sockets per object in the shards-on run (`BENCH_SHARD_SOCKETS`, default 250: 1,000 sockets are the room and
/// three shards, 10,000 the room and 39).
fn shard_sockets() -> u32 {
    std::env::var("BENCH_SHARD_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(250)
}

fn print_tables(results: &[Measured], load_before: &str, load_after: &str) {
    println!(
        "\nChat fan-out through wrangler dev: one room (shards off: one object; shards on: the room and its ChatShard"
    );
    println!("relays), one sender (the host), every other socket (each from its own");
    println!("address) measuring send-to-receipt delay over every delivery; `floor` is the same client against a");
    println!(
        "do-nothing broadcaster (one frame per message, nothing stored): the client's and the machine's own limit;"
    );
    println!("`platform floor` the same client against a do-nothing Durable Object broadcaster (e2e/bench-floor/) in");
    println!("its own wrangler dev: workerd's and wrangler dev's cost, without our room's code.");
    println!(
        "{} cores; 1-minute load average {load_before} at the start, {load_after} at the end (other work skews these numbers).\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| target | sockets | rate msg/s | messages | delivered | median ms | p99 ms | first socket median ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for m in results {
        for r in &m.fixed {
            println!(
                "| {} | {} | {} | {} | {}/{} | {:.1} | {:.1} | {:.1} |",
                m.label, r.sockets, r.rate, r.sent, r.delivered, r.expected, r.median_ms, r.p99_ms, r.first_median_ms
            );
        }
    }
    println!("\nHighest rate sustained with p99 < {P99_BUDGET_MS} ms and nothing lost (doubling from 1 msg/s, then two bisection steps)\n");
    println!("| target | sockets | highest rate msg/s | messages/s delivered | p99 ms there | first failing rate (p99 ms, delivered) |");
    println!("|---|---:|---:|---:|---:|---|");
    for m in results {
        for l in &m.ladders {
            let at_best = l.best.and_then(|b| l.steps.iter().find(|s| s.rate == b));
            let failing = l
                .steps
                .iter()
                .filter(|s| !s.sustained())
                .min_by(|a, b| a.rate.total_cmp(&b.rate))
                .map(|s| format!("{} ({:.0} ms, {}/{})", s.rate, s.p99_ms, s.delivered, s.expected))
                .unwrap_or_else(|| "none up to BENCH_MAX_RATE".into());
            println!(
                "| {} | {} | {} | {} | {} | {failing} |",
                m.label,
                l.sockets,
                l.best.map_or("below 1".into(), |b| format!("{b}")),
                l.best.map_or("-".into(), |b| format!("{:.0}", b * l.sockets as f64)),
                at_best.map_or("-".into(), |s| format!("{:.1}", s.p99_ms)),
            );
        }
    }
}

/// The 1-minute load average (Linux), printed with the results: on a shared machine it explains most of the spread.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
