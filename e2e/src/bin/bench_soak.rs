//! Benchmark: a chat soak. One room holds 1,000 sockets for 10 minutes while the host sends 10 messages a second,
//! with churn: every 10 s, 10% of the sockets leave and rejoin at once, half with a close frame and half by just
//! dropping the connection (no close frame, as a phone losing signal does). Prints, per minute, what was delivered
//! to the sockets connected at the time, duplicates and the latency percentiles; then the room's presence count
//! against the true count, and the count once every socket has left.
//!
//! "Delivered" counts, for every connection, the messages sent between its welcome frame and 2 s before it left
//! (a message still in flight when a socket leaves is not owed to it). Latency is send to receipt on the same
//! machine (same clock).
//!
//! Run with `make bench` (`scripts/bench soak`), or `cargo run --release -p sunnylive-e2e --bin bench_soak` after
//! `make build`; against a running `make dev` with `SUNNYLIVE_BENCH_URL=http://127.0.0.1:8787`. Knobs:
//! `BENCH_SOAK_SOCKETS=1000`, `BENCH_SOAK_MINUTES=10`, `BENCH_SOAK_RATE=10`, `BENCH_SOAK_CHURN=0.1`,
//! `BENCH_SOAK_CHURN_EVERY=10` (seconds).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sunnylive_e2e::{Api, BoxError, TestApp};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A message still in flight when its socket leaves is not owed to it.
const LEAVE_GRACE: Duration = Duration::from_secs(2);
/// Sockets opened at once while filling the room.
const CONNECT_PARALLELISM: usize = 50;

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `"text":"s<seq> ` in a chat frame, found without a full parse (1,000 sockets read 10,000 frames a second on the
/// same cores as workerd; a parse would measure the client). Every occurrence, so a batch of frames counts each.
fn seqs_in(frame: &str, out: &mut Vec<usize>) {
    let needle = r#""text":"s"#;
    let mut rest = frame;
    while let Some(at) = rest.find(needle) {
        rest = &rest[at + needle.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            out.push(n);
        }
    }
}

/// What the sender recorded: when message `seq` left, as nanoseconds after `base` (0 = not sent yet).
struct Clock {
    base: Instant,
    sent: Vec<AtomicU64>,
}

impl Clock {
    fn sent_at(&self, seq: usize) -> Option<Instant> {
        let n = self.sent.get(seq)?.load(Ordering::Acquire);
        (n > 0).then(|| self.base + Duration::from_nanos(n))
    }
}

/// How a socket is told to leave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Leave {
    Stay,
    CloseFrame,
    Drop,
    Final,
}

/// One connection's life, reported when it ends.
struct Session {
    joined: Instant,
    left: Instant,
    got: Vec<u64>,
    duplicates: usize,
    /// (minute of the send, latency in ms) of every receipt.
    latencies: Vec<(usize, f32)>,
}

struct Shared {
    ws_url: String,
    clock: Arc<Clock>,
    connected: AtomicUsize,
    errors: AtomicUsize,
    done: mpsc::UnboundedSender<Session>,
}

/// One slot of the room: connects, reads until told to leave, reports the session, and rejoins unless it is the end.
async fn slot(shared: Arc<Shared>, index: usize, mut leave: watch::Receiver<Leave>, messages: usize) {
    // Each slot is its own viewer address: the room allows one address 20 sockets, as a real audience of 1,000
    // comes from many addresses.
    let ip = sunnylive_e2e::viewer_ipv4(index);
    loop {
        let mut req = match shared.ws_url.as_str().into_client_request() {
            Ok(r) => r,
            Err(_) => return,
        };
        if let Ok(v) = ip.parse() {
            req.headers_mut().insert("cf-connecting-ip", v);
        }
        let socket = tokio::time::timeout(Duration::from_secs(30), tokio_tungstenite::connect_async(req)).await;
        let Ok(Ok((mut socket, _))) = socket else {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(r#""type":"welcome""#) => {}
            _ => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        shared.connected.fetch_add(1, Ordering::SeqCst);
        let mut s = Session {
            joined: Instant::now(),
            left: Instant::now(),
            got: vec![0; messages / 64 + 1],
            duplicates: 0,
            latencies: Vec::new(),
        };
        let mut seqs = Vec::new();
        let how = loop {
            tokio::select! {
                changed = leave.changed() => {
                    let how = if changed.is_ok() { *leave.borrow_and_update() } else { Leave::Final };
                    if how != Leave::Stay {
                        break how;
                    }
                }
                msg = socket.next() => {
                    let now = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            seqs.clear();
                            seqs_in(t.as_str(), &mut seqs);
                            for &seq in &seqs {
                                let (word, bit) = (seq / 64, 1u64 << (seq % 64));
                                let Some(w) = s.got.get_mut(word) else { continue };
                                if *w & bit != 0 {
                                    s.duplicates += 1;
                                    continue;
                                }
                                *w |= bit;
                                if let Some(at) = shared.clock.sent_at(seq) {
                                    let minute = (at - shared.clock.base).as_secs() as usize / 60;
                                    s.latencies.push((minute, (now - at).as_secs_f32() * 1000.0));
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            break Leave::Stay;
                        }
                    }
                }
            }
        };
        s.left = Instant::now();
        shared.connected.fetch_sub(1, Ordering::SeqCst);
        match how {
            Leave::CloseFrame | Leave::Final => {
                let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
            }
            // No close frame: the TCP connection just goes away.
            Leave::Drop | Leave::Stay => drop(socket),
        }
        let _ = shared.done.send(s);
        if how == Leave::Final {
            return;
        }
    }
}

fn percentile(sorted: &[f32], p: f64) -> f32 {
    if sorted.is_empty() {
        return f32::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn presence(base: &str, stream_id: &str) -> Result<u64, BoxError> {
    let url = format!("{}/api/streams/{stream_id}/chat", base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url.into_client_request()?).await?;
    let welcome = match tokio::time::timeout(Duration::from_secs(30), socket.next()).await? {
        Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(t.as_str())?,
        other => return Err(format!("no welcome: {other:?}").into()),
    };
    let _ = socket.close(None).await;
    welcome["viewers"]
        .as_u64()
        .ok_or_else(|| format!("welcome without viewers: {welcome}").into())
}

async fn run(base: &str) -> Result<(), BoxError> {
    let sockets = env_num("BENCH_SOAK_SOCKETS", 1000.0) as usize;
    let minutes = env_num("BENCH_SOAK_MINUTES", 10.0);
    let rate = env_num("BENCH_SOAK_RATE", 10.0);
    let churn = env_num("BENCH_SOAK_CHURN", 0.1);
    let churn_every = Duration::from_secs_f64(env_num("BENCH_SOAK_CHURN_EVERY", 10.0));
    let messages = (minutes * 60.0 * rate).round() as usize;

    let api = Api::new(base, sunnylive_e2e::next_ip());
    let host = api.register("soak").await?;
    let (stream_id, _) = api.create_stream(&host, "soak").await?;
    let ws_url = format!("{}/api/streams/{stream_id}/chat", base.replacen("http", "ws", 1));
    let mut req = ws_url.as_str().into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", host.access).parse()?);
    let (host_socket, _) = tokio_tungstenite::connect_async(req).await?;
    let (mut host_tx, mut host_rx) = host_socket.split();
    // The host's own socket must be read, or its echoes would pile up in the server's send buffer.
    tokio::spawn(async move { while host_rx.next().await.is_some() {} });

    let clock = Arc::new(Clock {
        base: Instant::now(),
        sent: (0..messages).map(|_| AtomicU64::new(0)).collect(),
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        ws_url,
        clock: clock.clone(),
        connected: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
        done: done_tx,
    });
    let mut leaves = Vec::with_capacity(sockets);
    let mut tasks = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let (tx, rx) = watch::channel(Leave::Stay);
        leaves.push(tx);
        tasks.push(tokio::spawn(slot(shared.clone(), i, rx, messages)));
        if i % CONNECT_PARALLELISM == CONNECT_PARALLELISM - 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let filled = Instant::now();
    while shared.connected.load(Ordering::SeqCst) < sockets {
        if filled.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "only {} of {sockets} sockets joined",
                shared.connected.load(Ordering::SeqCst)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "soak: {sockets} sockets in {:.1} s; sending {messages} messages over {minutes} min",
        filled.elapsed().as_secs_f64()
    );

    // The churn: every `churn_every`, the next `churn` share of slots leaves and rejoins, alternating the way out.
    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let stop = stop.clone();
        let leaves = leaves.clone();
        tokio::spawn(async move {
            let per_round = ((sockets as f64 * churn).round() as usize).max(1);
            let mut next = 0usize;
            let mut tick = tokio::time::interval(churn_every);
            tick.tick().await;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                for k in 0..per_round {
                    let how = if k % 2 == 0 { Leave::CloseFrame } else { Leave::Drop };
                    let _ = leaves[(next + k) % sockets].send(how);
                }
                next = (next + per_round) % sockets;
            }
        })
    };

    // The sender, on schedule.
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    for seq in 0..messages {
        tokio::time::sleep_until(start + interval.mul_f64(seq as f64)).await;
        let text = json!({"type": "chat", "text": format!("s{seq} soak")}).to_string();
        clock.sent[seq].store(
            (Instant::now() - clock.base).as_nanos().max(1) as u64,
            Ordering::Release,
        );
        host_tx.send(Message::text(text)).await?;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = churner.await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Presence at the end: the room's count (a probe's welcome, which counts the probe) against the truth.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let true_count = shared.connected.load(Ordering::SeqCst) + 1 + 1;
    let room_count = presence(base, &stream_id).await?;

    for l in &leaves {
        let _ = l.send(Leave::Final);
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = host_tx.close().await;
    let errors = shared.errors.load(Ordering::SeqCst);
    drop(shared);
    let mut sessions = Vec::new();
    while let Some(s) = done_rx.recv().await {
        sessions.push(s);
    }
    // After everyone left: the room's count once its presence update has run (D1's `viewers`, as the API shows).
    let mut after = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        after = api.stream(&stream_id).await?["viewers"].as_u64().unwrap_or(u64::MAX);
        if after == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Per minute of sending: owed and delivered receipts, duplicates, latency.
    let minutes_n = (minutes.ceil() as usize).max(1);
    let mut owed = vec![0usize; minutes_n];
    let mut delivered = vec![0usize; minutes_n];
    let mut lat: Vec<Vec<f32>> = vec![Vec::new(); minutes_n];
    let mut duplicates = 0;
    for s in &sessions {
        duplicates += s.duplicates;
        for seq in 0..messages {
            let Some(at) = clock.sent_at(seq) else { continue };
            if at < s.joined || at + LEAVE_GRACE > s.left {
                continue;
            }
            let m = ((at - clock.base).as_secs() as usize / 60).min(minutes_n - 1);
            owed[m] += 1;
            if s.got[seq / 64] & (1 << (seq % 64)) != 0 {
                delivered[m] += 1;
            }
        }
        for &(m, ms) in &s.latencies {
            lat[m.min(minutes_n - 1)].push(ms);
        }
    }
    println!("| minute | owed receipts | delivered | delivered % | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut p99s = Vec::new();
    for m in 0..minutes_n {
        lat[m].sort_by(f32::total_cmp);
        let (p50, p99) = (percentile(&lat[m], 0.5), percentile(&lat[m], 0.99));
        p99s.push(p99);
        println!(
            "| {} | {} | {} | {:.3} | {p50:.1} | {p99:.1} |",
            m + 1,
            owed[m],
            delivered[m],
            100.0 * delivered[m] as f64 / owed[m].max(1) as f64
        );
    }
    let (all_owed, all_delivered): (usize, usize) = (owed.iter().sum(), delivered.iter().sum());
    println!();
    println!("| what | result |");
    println!("|---|---|");
    println!(
        "| delivered to connected sockets | {all_delivered} / {all_owed} ({:.3} %) |",
        100.0 * all_delivered as f64 / all_owed.max(1) as f64
    );
    println!("| duplicates | {duplicates} |");
    println!(
        "| p99 last minute / first minute | {:.2} |",
        p99s.last().copied().unwrap_or(f32::NAN) / p99s.first().copied().unwrap_or(f32::NAN)
    );
    println!("| connections (joins incl. churn) | {} |", sessions.len());
    println!("| presence at the end: room / true | {room_count} / {true_count} |");
    println!("| presence after all left | {after} |");
    println!("| errors (failed connects, unexpected closes) | {errors} |");
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Ok(base) = std::env::var("SUNNYLIVE_BENCH_URL") {
        return rt.block_on(run(&base));
    }
    sunnylive_e2e::quiet_worker_logs();
    let app = TestApp::start()?;
    let result = rt.block_on(run(&app.base));
    app.stop();
    result
}
