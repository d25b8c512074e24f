//! Benchmark: chat fan-out of one chat room, shards off and on, beside two floors. One room holds 100, then 1,000,
//! then 10,000 connected sockets (each from its own client address, as distinct viewers); the stream's host sends
//! chat messages at fixed rates and every other socket measures the delay from send to receipt (median and p99 over
//! every delivery, and the median delay to the first socket, which is the room's own path without the fan-out),
//! counts what it got (delivered, duplicates, out of order). At the ladder sizes a ladder of rates finds the highest
//! rate the room sustains with p99 under budget (250 ms up to 1,000 sockets, 1 s above) and every message delivered.
//!
//! Every target is reached straight at the workerd that runs it, not through `wrangler dev`'s proxy (which relays
//! every frame once more, holds two descriptors per socket, and which production does not have): the port is found
//! as `TestApp::direct_worker_port` does. The table says which path each row took.
//!
//! The clients are child processes of this one (this binary again, with `SUNNYLIVE_FANOUT_CLIENT=1`), each holding
//! at most `BENCH_SOCKETS_PER_CLIENT` sockets (default 2,500, and never more than half the open-file hard limit,
//! which is per process): 10,000 sockets are four clients. The sender stamps each message with its wall-clock send
//! time (one clock for every process on the machine); each client measures its own deliveries and hands back a
//! latency histogram (0.5 % buckets), its counts and the per-message first delivery at the end of each step.
//!
//! The floor: the same clients against a do-nothing broadcaster in this process (its own thread and runtime; every
//! chat it gets is sent straight back to every socket, one frame per message, nothing stored).
//!
//! The platform floor: the same clients against a do-nothing Durable Object broadcaster (e2e/bench-floor/worker.js,
//! the same hibernation WebSocket API as our room, nothing stored) in its own `wrangler dev`, reached at its workerd
//! directly like the room. It pays what the room pays for workerd, without our code: the room's distance to it is
//! what our room costs, printed as ratios (goal: within 1.10x).
//!
//! The room runs once per `BENCH_SHARDS` entry, each time on a fresh stack: `off` (`CHAT_SHARD_SOCKETS` above any
//! size, so one object holds every socket), `on` (`BENCH_SHARD_SOCKETS` per object, default 500, the Worker's own
//! default: 10,000 sockets are the room and 19 shards) or a number (that many per object: `BENCH_SHARDS=500,2000`
//! compares two sizes).
//!
//! Per row, beside the delays: workerd's resident memory per socket (growth since before the first socket), the
//! cores workerd kept busy during the step, and the time it took to open the row's sockets.
//!
//! Run with `make bench` / `scripts/bench fanout`, or `cargo run --release -p sunnylive-e2e --bin bench_fanout`
//! after `make build` (it starts its own stack through the harness), or against a running `make dev` with
//! `SUNNYLIVE_BENCH_URL=http://127.0.0.1:8787` (as given: no direct path). Knobs: `BENCH_SOCKETS=100,1000,10000`,
//! `BENCH_FIXED_RATES=10` (up to 1,000 sockets), `BENCH_BIG_RATES=1,10` (above 1,000), `BENCH_FIXED_SECONDS=10`,
//! `BENCH_LADDER_SOCKETS=1000`, `BENCH_STEP_SECONDS=5`, `BENCH_MAX_RATE=800`, `BENCH_FLOOR=0` (skip the floor),
//! `BENCH_PLATFORM_FLOOR=0` (skip the platform floor), `BENCH_SHARDS=off,on`, `BENCH_SHARD_SOCKETS=500`,
//! `BENCH_SOCKETS_PER_CLIENT=2500`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use sunnylive_e2e::{env_list, Api, BoxError, TestApp};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// p99 must stay under this for a rate to count as sustained, up to 1,000 sockets ...
const P99_BUDGET_MS: f64 = 250.0;
/// ... and above 1,000 sockets.
const BIG_P99_BUDGET_MS: f64 = 1000.0;
/// After the last send, how long deliveries may still trickle in before the step counts as losing messages.
const DRAIN: Duration = Duration::from_secs(10);
/// Sockets one client process opens at once while filling the room.
const CONNECT_PARALLELISM: usize = 25;
/// Set in a client process's environment: it reads commands on stdin instead of running the benchmark.
const CLIENT_ENV: &str = "SUNNYLIVE_FANOUT_CLIENT";
/// Latency histogram buckets: each 0.5 % wider than the last (bucket b holds exp(b * ln 1.005) microseconds).
const BUCKET_GROWTH: f64 = 1.005;

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn env_rates(name: &str, default: &[f64]) -> Vec<f64> {
    let parsed: Vec<f64> = std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|r: &f64| *r > 0.0)
        .collect();
    if parsed.is_empty() {
        default.to_vec()
    } else {
        parsed
    }
}

/// Microseconds since the epoch: the send stamp every client process can read against its own clock.
fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn bucket_of(micros: u64) -> u32 {
    ((micros.max(1) as f64).ln() / BUCKET_GROWTH.ln()) as u32
}

fn bucket_ms(bucket: u32) -> f64 {
    ((f64::from(bucket) + 0.5) * BUCKET_GROWTH.ln()).exp() / 1000.0
}

/// Every `"text":"b<seq> t<micros>` in a frame (one chat frame, or a `batch` of them) without parsing the JSON: the
/// clients read tens of thousands of frames per second on the same cores as workerd, and a full parse would
/// measure the client.
fn stamps_in(frame: &str) -> impl Iterator<Item = (usize, u64)> + '_ {
    const MARK: &str = r#""text":"b"#;
    frame.match_indices(MARK).filter_map(|(at, _)| {
        let rest = &frame[at + MARK.len()..];
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let seq = rest[..end].parse().ok()?;
        let rest = rest[end..].strip_prefix(" t")?;
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        Some((seq, rest[..end].parse().ok()?))
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The client process: opens sockets, measures deliveries, answers one line per command.
// Commands (stdin): `open <n> <first address index> <url>`, `step <first seq> <count>`, `end <drain ms>`,
// `quiet <max ms>`, `stop`. Answers (stdout): `opened <n>` / `failed <why>`, `ready`, `quiet`, `result <delivered>
// <duplicates> <out of order> <closed> <firsts> <histogram>` (firsts: per message the first delivery's
// microseconds, `-` for none, comma separated; histogram: `bucket:count` comma separated, `-` when empty).

/// One delivery in a client: which of its sockets, which message, and its delay in microseconds.
type Delivery = (usize, usize, u64);

struct StepState {
    first: usize,
    count: usize,
    sockets: usize,
    /// Per socket, which of the step's messages it got.
    seen: Vec<Vec<bool>>,
    /// Per socket, the highest sequence number it got in this step.
    highest: Vec<Option<usize>>,
    delivered: usize,
    duplicates: usize,
    disorder: usize,
    firsts: Vec<Option<u64>>,
    histogram: BTreeMap<u32, u64>,
}

impl StepState {
    fn new(first: usize, count: usize, sockets: usize) -> StepState {
        StepState {
            first,
            count,
            sockets,
            seen: vec![vec![false; count]; sockets],
            highest: vec![None; sockets],
            delivered: 0,
            duplicates: 0,
            disorder: 0,
            firsts: vec![None; count],
            histogram: BTreeMap::new(),
        }
    }

    fn record(&mut self, (socket, seq, micros): Delivery) {
        if seq < self.first || seq >= self.first + self.count || socket >= self.sockets {
            return; // a straggler from an earlier step, or a socket opened after the step began
        }
        let i = seq - self.first;
        if std::mem::replace(&mut self.seen[socket][i], true) {
            self.duplicates += 1;
            return;
        }
        if self.highest[socket].is_some_and(|h| seq < h) {
            self.disorder += 1;
        }
        self.highest[socket] = Some(self.highest[socket].map_or(seq, |h| h.max(seq)));
        self.delivered += 1;
        *self.histogram.entry(bucket_of(micros)).or_default() += 1;
        self.firsts[i] = Some(self.firsts[i].map_or(micros, |f| f.min(micros)));
    }

    fn complete(&self) -> bool {
        self.delivered >= self.count * self.sockets
    }

    fn line(&self, closed: usize) -> String {
        let firsts: Vec<String> = self
            .firsts
            .iter()
            .map(|f| f.map_or("-".into(), |f| f.to_string()))
            .collect();
        let histogram: Vec<String> = self.histogram.iter().map(|(b, n)| format!("{b}:{n}")).collect();
        format!(
            "result {} {} {} {closed} {} {}",
            self.delivered,
            self.duplicates,
            self.disorder,
            if firsts.is_empty() {
                "-".into()
            } else {
                firsts.join(",")
            },
            if histogram.is_empty() {
                "-".into()
            } else {
                histogram.join(",")
            },
        )
    }
}

struct ClientSockets {
    open: AtomicUsize,
    closed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Delivery>,
}

impl ClientSockets {
    /// Opens one receiver, retrying twice: with thousands of connects in flight a loaded machine resets a few.
    async fn spawn_one(&self, url: &str, address: usize) -> Result<(), BoxError> {
        let mut last = None;
        for attempt in 0..3u64 {
            match self.try_spawn_one(url, address).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
        }
        Err(last.unwrap_or_else(|| "no attempt".into()))
    }

    async fn try_spawn_one(&self, url: &str, address: usize) -> Result<(), BoxError> {
        let mut req = url.into_client_request()?;
        // One address each, so the room sees distinct viewers and its per-address socket cap never applies.
        let ip = sunnylive_e2e::viewer_ipv4(address);
        req.headers_mut().insert("cf-connecting-ip", ip.parse()?);
        let (mut socket, _) =
            tokio::time::timeout(Duration::from_secs(30), tokio_tungstenite::connect_async(req)).await??;
        // The welcome comes first; wait for it so the socket counts only once it is really in the room.
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await? {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"welcome""#) => {}
            other => return Err(format!("expected a welcome, got {other:?}").into()),
        }
        let index = self.open.fetch_add(1, Ordering::SeqCst);
        let (tx, closed, stop) = (self.tx.clone(), self.closed.clone(), self.stop.clone());
        tokio::spawn(async move {
            while let Some(msg) = socket.next().await {
                match msg {
                    Ok(Message::Text(t)) => {
                        let now = wall_micros();
                        for (seq, sent) in stamps_in(t.as_str()) {
                            let _ = tx.send((index, seq, now.saturating_sub(sent)));
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if !stop.load(Ordering::SeqCst) {
                closed.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(())
    }
}

fn run_client() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sockets = Arc::new(ClientSockets {
            open: AtomicUsize::new(0),
            closed: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            tx,
        });
        let mut stdout = tokio::io::stdout();
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut step: Option<StepState> = None;
        loop {
            // Between commands, keep taking deliveries so the channel never piles up.
            let line = tokio::select! {
                line = lines.next_line() => line?,
                Some(d) = rx.recv() => {
                    if let Some(s) = step.as_mut() { s.record(d); }
                    continue;
                }
            };
            let Some(line) = line else { break };
            let words: Vec<&str> = line.split_whitespace().collect();
            let answer = match words.as_slice() {
                ["open", n, address, url] => {
                    let (n, address): (usize, usize) = (n.parse()?, address.parse()?);
                    let url = url.to_string();
                    let before = sockets.open.load(Ordering::SeqCst);
                    // Deliveries keep flowing while sockets open (stragglers): drop them meanwhile.
                    let opening = futures::stream::iter(0..n)
                        .map(|i| {
                            let (sockets, url) = (sockets.clone(), url.clone());
                            async move { sockets.spawn_one(&url, address + i).await }
                        })
                        .buffer_unordered(CONNECT_PARALLELISM)
                        .collect::<Vec<_>>();
                    tokio::pin!(opening);
                    let results = loop {
                        tokio::select! {
                            r = &mut opening => break r,
                            Some(_) = rx.recv() => {}
                        }
                    };
                    match results.into_iter().collect::<Result<Vec<()>, BoxError>>() {
                        Ok(_) => format!("opened {}", sockets.open.load(Ordering::SeqCst) - before),
                        Err(e) => format!("failed {}", e.to_string().replace('\n', " ")),
                    }
                }
                ["step", first, count] => {
                    step = Some(StepState::new(
                        first.parse()?,
                        count.parse()?,
                        sockets.open.load(Ordering::SeqCst),
                    ));
                    "ready".to_string()
                }
                ["end", drain_ms] => {
                    let until = tokio::time::Instant::now() + Duration::from_millis(drain_ms.parse()?);
                    let mut s = step.take().ok_or("end without a step")?;
                    while !s.complete() {
                        match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some(d)) => s.record(d),
                            _ => break,
                        }
                    }
                    s.line(sockets.closed.load(Ordering::SeqCst))
                }
                ["quiet", max_ms] => {
                    // Until a second passes with no delivery (an overloaded step leaves a backlog that would spill
                    // into the next step's time), at most `max_ms`.
                    let until = tokio::time::Instant::now() + Duration::from_millis(max_ms.parse()?);
                    while tokio::time::Instant::now() < until {
                        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                            Ok(Some(d)) => {
                                if let Some(s) = step.as_mut() {
                                    s.record(d);
                                }
                            }
                            _ => break,
                        }
                    }
                    "quiet".to_string()
                }
                ["stop"] => {
                    sockets.stop.store(true, Ordering::SeqCst);
                    break;
                }
                _ => format!("failed unknown command {line}"),
            };
            stdout.write_all(format!("{answer}\n").as_bytes()).await?;
            stdout.flush().await?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The benchmark process: starts the targets and the client processes, sends, and merges what the clients measured.

struct Client {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    sockets: usize,
}

impl Client {
    async fn ask(&mut self, command: &str) -> Result<String, BoxError> {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let line = self.lines.next_line().await?.ok_or("a client process ended")?;
        match line.strip_prefix("failed ") {
            Some(why) => Err(why.to_string().into()),
            None => Ok(line),
        }
    }
}

/// The client processes of one target.
struct Clients {
    procs: Vec<Client>,
    per_process: usize,
    /// Sockets ever asked for (names their client addresses).
    addresses: usize,
}

/// Sockets one client process may hold: `BENCH_SOCKETS_PER_CLIENT` (default 2,500), and at most half this
/// process's open-file hard limit (a child inherits it; the rest is for the runtime and margin).
fn sockets_per_client() -> usize {
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).and_then(|v| v.parse::<usize>().ok()))
        })
        .unwrap_or(4096);
    (env_num("BENCH_SOCKETS_PER_CLIENT", 2500.0) as usize).clamp(1, (hard / 2).max(1))
}

impl Clients {
    fn new() -> Clients {
        Clients {
            procs: Vec::new(),
            per_process: sockets_per_client(),
            addresses: 0,
        }
    }

    fn sockets(&self) -> usize {
        self.procs.iter().map(|c| c.sockets).sum()
    }

    fn spawn() -> Result<Client, BoxError> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .env(CLIENT_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Client {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            sockets: 0,
        })
    }

    /// Opens `n` more sockets on `url`: the last client process fills up first, then new ones start.
    async fn add(&mut self, url: &str, mut n: usize) -> Result<(), BoxError> {
        let mut shares = Vec::new();
        for (i, c) in self.procs.iter().enumerate() {
            let room = self.per_process.saturating_sub(c.sockets).min(n);
            if room > 0 {
                shares.push((i, room));
                n -= room;
            }
        }
        while n > 0 {
            self.procs.push(Self::spawn()?);
            let share = self.per_process.min(n);
            shares.push((self.procs.len() - 1, share));
            n -= share;
        }
        let mut asks = Vec::new();
        let mut by_index: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for (i, share) in shares {
            by_index.insert(i, (share, self.addresses));
            self.addresses += share;
        }
        for (i, c) in self.procs.iter_mut().enumerate() {
            if let Some(&(share, address)) = by_index.get(&i) {
                asks.push(async move {
                    let answer = c.ask(&format!("open {share} {address} {url}")).await?;
                    let opened: usize = answer.strip_prefix("opened ").ok_or("bad answer")?.parse()?;
                    c.sockets += opened;
                    Ok::<(), BoxError>(())
                });
            }
        }
        futures::future::join_all(asks).await.into_iter().collect()
    }

    async fn ask_all(&mut self, command: &str) -> Result<Vec<String>, BoxError> {
        futures::future::join_all(self.procs.iter_mut().map(|c| c.ask(command)))
            .await
            .into_iter()
            .collect()
    }

    async fn stop(mut self) {
        for c in &mut self.procs {
            let _ = c.stdin.write_all(b"stop\n").await;
            let _ = c.stdin.flush().await;
        }
        for c in &mut self.procs {
            if tokio::time::timeout(Duration::from_secs(5), c.child.wait())
                .await
                .is_err()
            {
                let _ = c.child.kill().await;
            }
        }
    }
}

struct StepResult {
    sockets: usize,
    rate: f64,
    sent: usize,
    delivered: usize,
    expected: usize,
    duplicates: usize,
    disorder: usize,
    /// Receiver sockets that closed by the end of the step.
    closed: usize,
    median_ms: f64,
    p99_ms: f64,
    /// Median over messages of the delay to the first socket that got it.
    first_median_ms: f64,
    /// workerd's CPU seconds over the step's wall seconds (cores busy), where the target runs in a workerd.
    workerd_cores: Option<f64>,
    /// workerd's CPU seconds during the step (less sensitive to other load on the machine than the delays).
    workerd_cpu_seconds: Option<f64>,
}

impl StepResult {
    fn sustained(&self, budget_ms: f64) -> bool {
        self.delivered == self.expected && self.duplicates == 0 && self.p99_ms < budget_ms
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn histogram_percentile(histogram: &BTreeMap<u32, u64>, p: f64) -> f64 {
    let total: u64 = histogram.values().sum();
    if total == 0 {
        return f64::NAN;
    }
    let want = ((total as f64 - 1.0) * p).round() as u64;
    let mut seen = 0;
    for (b, n) in histogram {
        seen += n;
        if seen > want {
            return bucket_ms(*b);
        }
    }
    f64::NAN
}

type HostSink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

struct Bench {
    host: HostSink,
    next_seq: usize,
    clients: Clients,
    /// The `wrangler dev` whose Worker workerd runs the target, for its CPU time and memory.
    workerd_root: Option<u32>,
}

impl Bench {
    /// Sends `rate` messages per second for `seconds` and measures every delivery of them.
    async fn step(&mut self, rate: f64, seconds: f64) -> Result<StepResult, BoxError> {
        let sockets = self.clients.sockets();
        let count = ((rate * seconds).round() as usize).max(1);
        let first = self.next_seq;
        self.next_seq += count;
        self.clients.ask_all(&format!("step {first} {count}")).await?;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let padding = "x".repeat(60);
        let cpu_before = self.workerd_root.map(sunnylive_e2e::cpu::worker_workerd_seconds);
        let start = tokio::time::Instant::now();
        for seq in first..first + count {
            tokio::time::sleep_until(start + interval.mul_f64((seq - first) as f64)).await;
            let text = json!({"type": "chat", "text": format!("b{seq} t{} {padding}", wall_micros())}).to_string();
            self.host.send(Message::text(text)).await?;
        }
        let answers = self.clients.ask_all(&format!("end {}", DRAIN.as_millis())).await?;
        let wall = start.elapsed().as_secs_f64();
        let workerd_cpu_seconds = match (self.workerd_root, cpu_before) {
            (Some(root), Some(before)) => Some(sunnylive_e2e::cpu::worker_workerd_seconds(root) - before),
            _ => None,
        };
        let workerd_cores = workerd_cpu_seconds.map(|s| s / wall.max(0.001));
        let (mut delivered, mut duplicates, mut disorder, mut closed) = (0, 0, 0, 0);
        let mut firsts: Vec<Option<u64>> = vec![None; count];
        let mut histogram: BTreeMap<u32, u64> = BTreeMap::new();
        for answer in answers {
            let words: Vec<&str> = answer.split(' ').collect();
            let ["result", d, dup, dis, cl, fs, hist] = words.as_slice() else {
                return Err(format!("a client answered {answer}").into());
            };
            delivered += d.parse::<usize>()?;
            duplicates += dup.parse::<usize>()?;
            disorder += dis.parse::<usize>()?;
            closed += cl.parse::<usize>()?;
            if *fs != "-" {
                for (slot, f) in firsts.iter_mut().zip(fs.split(',')) {
                    if let Ok(f) = f.parse::<u64>() {
                        *slot = Some(slot.map_or(f, |s| s.min(f)));
                    }
                }
            }
            if *hist != "-" {
                for pair in hist.split(',') {
                    let (b, n) = pair.split_once(':').ok_or("bad histogram")?;
                    *histogram.entry(b.parse()?).or_default() += n.parse::<u64>()?;
                }
            }
        }
        let mut firsts: Vec<f64> = firsts.into_iter().flatten().map(|f| f as f64 / 1000.0).collect();
        firsts.sort_by(f64::total_cmp);
        Ok(StepResult {
            sockets,
            rate,
            sent: count,
            delivered,
            expected: count * sockets,
            duplicates,
            disorder,
            closed,
            median_ms: histogram_percentile(&histogram, 0.5),
            p99_ms: histogram_percentile(&histogram, 0.99),
            first_median_ms: percentile(&firsts, 0.5),
            workerd_cores,
            workerd_cpu_seconds,
        })
    }

    /// Lets the room and the clients settle: until every client has gone a second without a delivery (late ones of a
    /// finished step are dropped), at most a minute.
    async fn settle(&mut self) {
        if let Err(e) = self.clients.ask_all("quiet 60000").await {
            eprintln!("bench: settling: {e}");
        }
    }

    /// Doubles the rate from 1 msg/s until a step misses the budget, then bisects twice between the last pass and
    /// it. Returns the highest sustained rate and every step.
    async fn ladder(&mut self, label: &str, step_seconds: f64, max_rate: f64) -> Result<Ladder, BoxError> {
        let n = self.clients.sockets();
        let budget_ms = if n > 1000 { BIG_P99_BUDGET_MS } else { P99_BUDGET_MS };
        let mut steps = Vec::new();
        let mut best: Option<f64> = None;
        let mut rate = 1.0;
        let mut failed_at: Option<f64> = None;
        while rate <= max_rate {
            let r = self.step(rate, step_seconds).await?;
            eprintln!(
                "bench: {label}: {n} sockets at {rate} msg/s: median {:.1} ms, p99 {:.1} ms, {}/{} delivered, {} repeated",
                r.median_ms, r.p99_ms, r.delivered, r.expected, r.duplicates
            );
            self.settle().await;
            let ok = r.sustained(budget_ms);
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
                    "bench: {label}: {n} sockets at {mid} msg/s: p99 {:.1} ms, {}/{}, {} repeated",
                    r.p99_ms, r.delivered, r.expected, r.duplicates
                );
                self.settle().await;
                if r.sustained(budget_ms) {
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
            budget_ms,
            best,
            steps,
        })
    }
}

struct Ladder {
    sockets: usize,
    budget_ms: f64,
    best: Option<f64>,
    steps: Vec<StepResult>,
}

/// What it took to fill a target to one size.
struct Fill {
    sockets: usize,
    open_seconds: f64,
    /// workerd's resident memory growth since before the first socket, per socket (KiB).
    rss_kib_per_socket: Option<f64>,
    /// workerd's open descriptors gained since before the first socket, per socket, and its open-file limit.
    fds_per_socket: Option<f64>,
    fd_limit: Option<u64>,
}

/// What one target (the room, or a floor) measured.
struct Measured {
    label: String,
    path: String,
    fixed: Vec<StepResult>,
    fills: Vec<Fill>,
    ladders: Vec<Ladder>,
}

/// Where the benchmark connects: the sockets' URL and the host's bearer token (the floors need none).
struct Target {
    label: String,
    /// How the clients reach it (the direct workerd port, in this process, or a given URL).
    path: String,
    ws_url: String,
    host_token: Option<String>,
    workerd_root: Option<u32>,
}

struct Plan {
    sizes: Vec<usize>,
    fixed_rates: Vec<f64>,
    big_rates: Vec<f64>,
    fixed_seconds: f64,
    ladder_sizes: Vec<usize>,
    step_seconds: f64,
    max_rate: f64,
}

impl Plan {
    fn from_env() -> Plan {
        Plan {
            sizes: env_list("BENCH_SOCKETS", &[100, 1000, 10_000]),
            fixed_rates: env_rates("BENCH_FIXED_RATES", &[10.0]),
            big_rates: env_rates("BENCH_BIG_RATES", &[1.0, 10.0]),
            fixed_seconds: env_num("BENCH_FIXED_SECONDS", 10.0),
            ladder_sizes: env_list("BENCH_LADDER_SOCKETS", &[1000]),
            step_seconds: env_num("BENCH_STEP_SECONDS", 5.0),
            max_rate: env_num("BENCH_MAX_RATE", 800.0),
        }
    }

    /// The fixed rates for a room of `n` sockets.
    fn rates_for(&self, n: usize) -> &[f64] {
        if n > 1000 {
            &self.big_rates
        } else {
            &self.fixed_rates
        }
    }
}

async fn measure(target: Target, plan: &Plan) -> Result<Measured, BoxError> {
    let label = target.label.clone();
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

    let rss_base = target.workerd_root.and_then(sunnylive_e2e::cpu::worker_workerd_rss_kib);
    let fds_base = target.workerd_root.and_then(sunnylive_e2e::cpu::worker_workerd_fds);
    if let Some((open, Some(limit))) = fds_base {
        eprintln!(
            "bench: {}: workerd has {open} descriptors open before the sockets, limit {limit}",
            target.label
        );
    }
    let mut bench = Bench {
        host: host_sink,
        next_seq: 0,
        clients: Clients::new(),
        workerd_root: target.workerd_root,
    };
    let mut fixed = Vec::new();
    let mut fills = Vec::new();
    let mut ladders = Vec::new();
    for &n in &plan.sizes {
        let have = bench.clients.sockets();
        if n > have {
            let t = Instant::now();
            if let Err(e) = bench.clients.add(&target.ws_url, n - have).await {
                // Report what was measured so far rather than nothing, with what binds: workerd's descriptors.
                let fds = target.workerd_root.and_then(sunnylive_e2e::cpu::worker_workerd_fds);
                eprintln!(
                    "bench: {label}: could not open {n} sockets ({e}); workerd's descriptors {}; skipping {n} and above",
                    fds.map_or("?".into(), |(open, limit)| format!(
                        "{open} open of {}",
                        limit.map_or("?".into(), |l| l.to_string())
                    ))
                );
                break;
            }
            let open_seconds = t.elapsed().as_secs_f64();
            bench.settle().await;
            let rss = target.workerd_root.and_then(sunnylive_e2e::cpu::worker_workerd_rss_kib);
            let rss_kib_per_socket = rss
                .zip(rss_base)
                .map(|(now, base)| now.saturating_sub(base) as f64 / n as f64);
            let fds = target.workerd_root.and_then(sunnylive_e2e::cpu::worker_workerd_fds);
            let fds_per_socket = fds
                .zip(fds_base)
                .map(|((now, _), (base, _))| now.saturating_sub(base) as f64 / n as f64);
            let fd_limit = fds.and_then(|(_, limit)| limit);
            eprintln!(
                "bench: {label}: {n} sockets in {} client processes ({open_seconds:.1} s to add {}; workerd {})",
                bench.clients.procs.len(),
                n - have,
                rss.map_or("?".into(), |r| format!("{} MiB", r / 1024)),
            );
            fills.push(Fill {
                sockets: n,
                open_seconds,
                rss_kib_per_socket,
                fds_per_socket,
                fd_limit,
            });
        }
        // Warm-up: a few messages so the first measured ones do not pay for compilation or a wake-up.
        bench.step(5.0, 3.0).await?;
        bench.settle().await;
        for &rate in plan.rates_for(n) {
            let r = bench.step(rate, plan.fixed_seconds).await?;
            eprintln!(
                "bench: {label}: {n} sockets at {rate} msg/s: median {:.1} ms, p99 {:.1} ms, first socket {:.1} ms, {}/{}, {} repeated, {} out of order",
                r.median_ms, r.p99_ms, r.first_median_ms, r.delivered, r.expected, r.duplicates, r.disorder
            );
            fixed.push(r);
            bench.settle().await;
        }
        if plan.ladder_sizes.contains(&n) {
            ladders.push(bench.ladder(&label, plan.step_seconds, plan.max_rate).await?);
        }
    }
    bench.clients.stop().await;
    Ok(Measured {
        label,
        path: target.path,
        fixed,
        fills,
        ladders,
    })
}

/// The room under test: a fresh user's fresh stream on `base`.
async fn room_target(base: &str, label: String, path: String, workerd_root: Option<u32>) -> Result<Target, BoxError> {
    let api = Api::new(base, sunnylive_e2e::next_ip());
    let host = api.register("fanout").await?;
    let (stream_id, _key) = api.create_stream(&host, "fan-out benchmark").await?;
    Ok(Target {
        label,
        path,
        ws_url: format!("{}/api/streams/{stream_id}/chat", base.replacen("http", "ws", 1)),
        host_token: Some(host.access),
        workerd_root,
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
        label: "floor".into(),
        path: "in this process".into(),
        ws_url: format!("ws://127.0.0.1:{port}/"),
        host_token: None,
        workerd_root: None,
    })
}

/// Whether a plain GET on `port` gets the platform floor's own 426 (a WebSocket endpoint).
fn floor_answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut tcp| {
        use std::io::{Read, Write};
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 12];
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: floor\r\nConnection: close\r\n\r\n")
            .is_ok()
            && tcp.read_exact(&mut buf).is_ok()
            && buf.starts_with(b"HTTP/1.1 426")
    })
}

/// The platform floor: a do-nothing Durable Object broadcaster (e2e/bench-floor/worker.js) in its own `wrangler
/// dev`, reached at the port of the workerd that runs it (not wrangler's proxy), as the room is.
fn start_platform_floor() -> Result<(Target, sunnylive_e2e::DevWorker), BoxError> {
    let dir = sunnylive_e2e::repo_root().join("e2e/bench-floor");
    let floor = sunnylive_e2e::DevWorker::start(&dir, "bench-floor", floor_answers)?;
    let direct = sunnylive_e2e::cpu::worker_workerd_ports(floor.pid())
        .into_iter()
        .find(|p| *p != floor.port && floor_answers(*p))
        .ok_or("no port of the platform floor's workerd answers")?;
    Ok((
        Target {
            label: "platform floor".into(),
            path: format!("direct to workerd (:{direct})"),
            ws_url: format!("ws://127.0.0.1:{direct}/"),
            host_token: None,
            workerd_root: Some(floor.pid()),
        },
        floor,
    ))
}

fn main() -> Result<(), BoxError> {
    if std::env::var_os(CLIENT_ENV).is_some() {
        return run_client();
    }
    let plan = Plan::from_env();
    let with_floor = std::env::var("BENCH_FLOOR").map_or(true, |v| v != "0");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let load_before = load_average();
    let started = sunnylive_e2e::charts::run_stamp();
    let mut results = Vec::new();
    // The floor first, on a quiet machine (no stack yet), then the platform floor, then the room.
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
        let path = format!("as given ({base})");
        results
            .push(rt.block_on(async { measure(room_target(&base, "room".into(), path, None).await?, &plan).await })?);
    } else {
        // Each mode on a fresh stack of its own, one after the other.
        for per_object in shard_modes() {
            let label = if per_object == SHARDS_OFF {
                "room, shards off".to_string()
            } else {
                format!("room, {per_object} per object")
            };
            eprintln!("bench: {label}: CHAT_SHARD_SOCKETS={per_object}");
            sunnylive_e2e::quiet_worker_logs();
            let app = TestApp::start_with_chat_shard_sockets(per_object)?;
            let room = (|| {
                let port = app.direct_worker_port()?;
                let base = format!("http://127.0.0.1:{port}");
                let path = format!("direct to workerd (:{port})");
                rt.block_on(async { measure(room_target(&base, label, path, app.worker_pid()).await?, &plan).await })
            })();
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
        steps.extend(m.fixed.iter().map(|r| as_step(&m.label, "fixed", r)));
        for l in &m.ladders {
            steps.extend(l.steps.iter().map(|r| as_step(&m.label, "ladder", r)));
        }
    }
    let path = results_dir().join("fanout.csv");
    write_file(&path, &fanout_csv(&steps)?)?;
    eprintln!("bench: results in {}", path.display());
    Ok(())
}

/// `CHAT_SHARD_SOCKETS` for the shards-off run: more sockets than any run opens, so the room never shards.
const SHARDS_OFF: u32 = 1_000_000_000;

/// `BENCH_SHARDS`: `off`, `on` (`BENCH_SHARD_SOCKETS` per object) or a number of sockets per object, comma
/// separated (default `off,on`). Returns each run's `CHAT_SHARD_SOCKETS`.
fn shard_modes() -> Vec<u32> {
    let v = std::env::var("BENCH_SHARDS").unwrap_or_else(|_| "off,on".into());
    let modes: Vec<u32> = v
        .split(',')
        .filter_map(|m| match m.trim() {
            "off" => Some(SHARDS_OFF),
            "on" => Some(shard_sockets()),
            n => n.parse().ok().filter(|n| *n > 0),
        })
        .collect();
    if modes.is_empty() {
        vec![SHARDS_OFF, shard_sockets()]
    } else {
        modes
    }
}

/// Sockets per object in the shards-on run (`BENCH_SHARD_SOCKETS`, default 500 as the Worker's own default:
/// 1,000 sockets are the room and one shard, 10,000 the room and 19).
fn shard_sockets() -> u32 {
    std::env::var("BENCH_SHARD_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(500)
}

fn or_dash(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn print_tables(results: &[Measured], load_before: &str, load_after: &str) {
    println!(
        "\nChat fan-out straight to workerd (no dev proxy): one room (shards off: one object; N per object: the room"
    );
    println!("and its ChatShard relays, N sockets each), one sender (the host), every other socket (each from its own");
    println!(
        "address, spread over client processes) measuring send-to-receipt delay over every delivery; `floor` is the"
    );
    println!("same client against a do-nothing broadcaster in the bench's process (the client's and the machine's own");
    println!(
        "limit); `platform floor` the same client against a do-nothing Durable Object broadcaster (e2e/bench-floor/)"
    );
    println!("at its own workerd: workerd's cost, without our room's code.");
    println!(
        "{} cores; 1-minute load average {load_before} at the start, {load_after} at the end (other work skews these numbers).\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| target | path | sockets | rate msg/s | messages | delivered | repeated | out of order | median ms | p99 ms | first socket median ms | workerd cores busy | workerd CPU us per delivered frame |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in results {
        for r in &m.fixed {
            println!(
                "| {} | {} | {} | {} | {} | {}/{} ({:.2} %) | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
                m.label,
                m.path,
                r.sockets,
                r.rate,
                r.sent,
                r.delivered,
                r.expected,
                100.0 * r.delivered as f64 / r.expected.max(1) as f64,
                r.duplicates,
                r.disorder,
                r.median_ms,
                r.p99_ms,
                r.first_median_ms,
                or_dash(r.workerd_cores, 2),
                or_dash(r.workerd_cpu_seconds.map(|s| s * 1e6 / r.delivered.max(1) as f64), 1),
            );
            if r.closed > 0 {
                println!(
                    "|  | ({} receiver sockets closed by the end of this step) |||||||||||",
                    r.closed
                );
            }
        }
    }
    println!(
        "\nOpening the sockets: time to open each size's new sockets, workerd's resident memory growth per socket, and \
         its open descriptors per socket against its per-process open-file limit (what bounds the sockets one workerd \
         holds here; production spreads a room's objects over machines)\n"
    );
    println!("| target | sockets | seconds to open | workerd KiB per socket | workerd descriptors per socket | open-file limit |");
    println!("|---|---:|---:|---:|---:|---:|");
    for m in results {
        for f in &m.fills {
            println!(
                "| {} | {} | {:.1} | {} | {} | {} |",
                m.label,
                f.sockets,
                f.open_seconds,
                or_dash(f.rss_kib_per_socket, 1),
                or_dash(f.fds_per_socket, 2),
                f.fd_limit.map_or("-".into(), |l| l.to_string())
            );
        }
    }
    if let Some(floor) = results.iter().find(|m| m.label == "platform floor") {
        println!("\nRoom against the platform floor, same run, same sockets and rate (goal: both within 1.10x)\n");
        println!("| target | sockets | rate msg/s | median ratio | p99 ratio |");
        println!("|---|---:|---:|---:|---:|");
        for m in results.iter().filter(|m| m.label.starts_with("room")) {
            for r in &m.fixed {
                if let Some(f) = floor.fixed.iter().find(|f| f.sockets == r.sockets && f.rate == r.rate) {
                    println!(
                        "| {} | {} | {} | {:.2}x | {:.2}x |",
                        m.label,
                        r.sockets,
                        r.rate,
                        r.median_ms / f.median_ms,
                        r.p99_ms / f.p99_ms
                    );
                }
            }
        }
    }
    println!("\nHighest rate sustained with p99 under budget, everything delivered once (doubling from 1 msg/s, then two bisection steps)\n");
    println!("| target | sockets | p99 budget ms | highest rate msg/s | messages/s delivered | p99 ms there | first failing rate (p99 ms, delivered, repeated) |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for m in results {
        for l in &m.ladders {
            let at_best = l.best.and_then(|b| l.steps.iter().find(|s| s.rate == b));
            let failing = l
                .steps
                .iter()
                .filter(|s| !s.sustained(l.budget_ms))
                .min_by(|a, b| a.rate.total_cmp(&b.rate))
                .map(|s| {
                    format!(
                        "{} ({:.0} ms, {}/{}, {})",
                        s.rate, s.p99_ms, s.delivered, s.expected, s.duplicates
                    )
                })
                .unwrap_or_else(|| "none up to BENCH_MAX_RATE".into());
            println!(
                "| {} | {} | {} | {} | {} | {} | {failing} |",
                m.label,
                l.sockets,
                l.budget_ms,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_frame_yields_every_stamp_in_order() {
        let frame =
            r#"{"type":"batch","frames":[{"type":"chat","text":"b7 t1000 xx"},{"type":"chat","text":"b8 t2000 xx"}]}"#;
        assert_eq!(stamps_in(frame).collect::<Vec<_>>(), vec![(7, 1000), (8, 2000)]);
    }

    #[test]
    fn a_step_counts_repeats_and_disorder_apart_from_deliveries() {
        let mut s = StepState::new(10, 3, 2);
        for d in [(0, 10, 5), (0, 12, 5), (0, 11, 5), (0, 11, 5), (1, 10, 7), (1, 9, 1)] {
            s.record(d);
        }
        assert_eq!((s.delivered, s.duplicates, s.disorder), (4, 1, 1));
        assert!(!s.complete());
    }

    #[test]
    fn histogram_percentiles_land_within_half_a_percent() {
        let mut h = BTreeMap::new();
        for ms in 1..=100u64 {
            *h.entry(bucket_of(ms * 1000)).or_default() += 1;
        }
        let exact: Vec<f64> = (1..=100).map(|ms| ms as f64).collect();
        for p in [0.5, 0.99] {
            let (approx, exact) = (histogram_percentile(&h, p), percentile(&exact, p));
            assert!((approx / exact - 1.0).abs() < 0.005, "p{p}: {approx} against {exact}");
        }
    }
}
