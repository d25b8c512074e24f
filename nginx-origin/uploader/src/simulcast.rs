//! The origin's simulcast supervisor (`sunnylive-simulcast`, started by nginx-origin/run beside nginx and the
//! uploader): re-sends each live broadcast of this origin to the stream's enabled outputs (other platforms' RTMP or
//! RTMPS ingests), one `ffmpeg -c copy` per output.
//!
//! - Which broadcasts are live here: nginx-rtmp's statistics page (`rtmp_stat`, a loopback-only location), polled
//!   every 500 ms: the streams published into the `hls` application are named by broadcast id.
//! - Which outputs: the Worker, through the origin's local proxy (`GET <outputs url>/<broadcast id>`, the proxy adds
//!   the origin token), at once for a new broadcast and every 1.5 s while it is live. An output that appears starts,
//!   one that disappears (disabled, deleted, the publish ended) is stopped (SIGTERM, SIGKILL 2 s later), one whose
//!   URL or key changed restarts. While the Worker cannot be reached nothing changes: running outputs keep going.
//! - Each ffmpeg plays `rtmp://127.0.0.1:<port>/hls/<broadcast id>` (the hls application lets loopback play) and
//!   publishes to the target. A run that ends unasked is started again after a backoff (1 s doubling to 30 s; back
//!   to 1 s once a run stayed up 30 s).
//! - Status changes (`connecting`, `live` at the first progress report, `error` with a short reason, `idle`) go back
//!   to the Worker (`PUT <outputs url>/<broadcast id>/<output id>/status`) from a thread of their own, retried while
//!   the Worker is unreachable, the newest per output winning.
//!
//! The target's key is never in a process's arguments or environment, a file or a log line: ffmpeg gets the URL
//! without its application path and the key, and reads those two as protocol options from a preset on its standard
//! input (`-fpre /dev/stdin`: a pipe this process writes and closes), and every line ffmpeg prints is redacted before
//! it is logged or reported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

/// One output as the Worker lists it for a live broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub url: String,
    pub key: String,
}

/// The statuses the Worker knows (`sunnylive_core::output::OutputStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Idle,
    Connecting,
    Live,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Connecting => "connecting",
            Status::Live => "live",
            Status::Error => "error",
        }
    }
}

// --- pure parts ----------------------------------------------------------------------------------------------------

/// The broadcasts being published into nginx-rtmp's `hls` application, from its `rtmp_stat all` XML. Only that
/// application: its stream names are public broadcast ids (the ingest's may be anything a publisher sent).
pub fn live_broadcasts(stat_xml: &str) -> HashSet<String> {
    let mut live = HashSet::new();
    for app in stat_xml.split("<application>").skip(1) {
        let app = app.split("</application>").next().unwrap_or_default();
        if tag(app, "name") != Some("hls") {
            continue;
        }
        for stream in app.split("<stream>").skip(1) {
            let stream = stream.split("</stream>").next().unwrap_or_default();
            if let Some(name) = tag(stream, "name") {
                if stream.contains("<publishing/>") && crate::looks_like_broadcast_id(name) {
                    live.insert(name.to_string());
                }
            }
        }
    }
    live
}

fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + end])
}

/// What ffmpeg is told about a target: the URL it gets on its command line (scheme, host and port only) and the
/// RTMP application and stream name it reads from its preset on standard input.
#[derive(Debug, PartialEq, Eq)]
pub struct FfmpegTarget {
    pub url: String,
    pub preset: String,
}

/// Splits `rtmp[s]://host[:port][/app...]` + key for ffmpeg; None for anything else (the Worker only stores such
/// URLs, and keys of printable ASCII without spaces; a line break in either would break the preset).
pub fn ffmpeg_target(url: &str, key: &str) -> Option<FfmpegTarget> {
    let lower = url.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("rtmp://") {
        7
    } else if lower.starts_with("rtmps://") {
        8
    } else {
        return None;
    };
    let rest = &url[scheme_len..];
    let (authority, app) = rest.split_once('/').unwrap_or((rest, ""));
    let app = app.trim_end_matches('/');
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if authority.is_empty() || authority.contains('@') || !printable(rest) || key.is_empty() || !printable(key) {
        return None;
    }
    let mut preset = String::new();
    if !app.is_empty() {
        preset.push_str(&format!("rtmp_app={app}\n"));
    }
    preset.push_str(&format!("rtmp_playpath={key}\n"));
    Some(FfmpegTarget {
        url: format!("{}{authority}", &lower[..scheme_len]),
        preset,
    })
}

/// `text` with every occurrence of each secret replaced by `[redacted]`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[redacted]");
    }
    out
}

/// Restart delays: 1 s doubling up to 30 s.
pub fn restart_backoff(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.min(5)).min(30))
}

/// A minimal JSON value: enough for the Worker's answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl Json {
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.get(key),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses one JSON document (RFC 8259; nesting bounded).
pub fn parse_json(text: &str) -> Option<Json> {
    let mut p = JsonParser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.i += 1;
        }
    }
    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }
    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > 32 {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.eat("}") {
                    return Some(Json::Object(m));
                }
                loop {
                    self.ws();
                    let Json::String(k) = self.string()? else { return None };
                    self.ws();
                    if !self.eat(":") {
                        return None;
                    }
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    return self.eat("}").then_some(Json::Object(m));
                }
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Some(Json::Array(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    return self.eat("]").then_some(Json::Array(a));
                }
            }
            b'"' => self.string(),
            b't' => self.eat("true").then_some(Json::Bool(true)),
            b'f' => self.eat("false").then_some(Json::Bool(false)),
            b'n' => self.eat("null").then_some(Json::Null),
            _ => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Json::Number)
            }
        }
    }
    fn string(&mut self) -> Option<Json> {
        if !self.eat("\"") {
            return None;
        }
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.s.get(self.i).is_some_and(|b| *b != b'"' && *b != b'\\') {
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).ok()?);
            match self.s.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(Json::String(out));
                }
                _ => {
                    self.i += 1;
                    let c = *self.s.get(self.i)?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xd800..0xdc00).contains(&code) && self.eat("\\u") {
                                let low = self.hex4()?;
                                code = 0x10000 + ((code - 0xd800) << 10) + (low.checked_sub(0xdc00)? & 0x3ff);
                            }
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => return None,
                    }
                }
            }
        }
    }
    fn hex4(&mut self) -> Option<u32> {
        let h = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }
}

/// A JSON string literal of `s`.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The targets in the Worker's answer `{"outputs": [{"id", "url", "key"}, ...]}`; None when it is not that.
pub fn parse_targets(body: &str) -> Option<Vec<Target>> {
    let Json::Array(items) = parse_json(body)?.get("outputs")?.clone() else {
        return None;
    };
    items
        .iter()
        .map(|o| {
            Some(Target {
                id: o.get("id")?.as_str()?.to_string(),
                url: o.get("url")?.as_str()?.to_string(),
                key: o.get("key")?.as_str()?.to_string(),
            })
        })
        .collect()
}

// --- HTTP to the local proxy ---------------------------------------------------------------------------------------

/// One HTTP/1.1 exchange with the origin's local proxy: (status, body).
pub fn http(
    hostport: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut conn = TcpStream::connect_timeout(&addr, timeout)?;
    conn.set_write_timeout(Some(timeout))?;
    conn.set_read_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\
         User-Agent: sunnylive-simulcast\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    conn.take(1 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked")
    });
    Ok((status, if chunked { dechunk(rest) } else { rest.to_string() }))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

// --- the supervisor ------------------------------------------------------------------------------------------------

/// Settings, from the command line (see simulcast_main.rs).
#[derive(Debug, Clone)]
pub struct Config {
    /// The origin's HTTP side, `127.0.0.1:<port>`.
    pub proxy: String,
    /// The stat page's path there (`/_rtmp_stat`).
    pub stat_path: String,
    /// The outputs proxy location's path there (`/_worker/outputs`).
    pub outputs_path: String,
    /// Where ffmpeg plays a broadcast from: `rtmp://127.0.0.1:<port>/hls`.
    pub source: String,
    pub ffmpeg: String,
    pub stat_every: Duration,
    pub outputs_every: Duration,
}

enum Event {
    /// ffmpeg printed its first progress report: the target takes the stream.
    Live,
    /// A line ffmpeg printed on stderr, redacted.
    Said(String),
}

struct Run {
    child: Child,
    events: Receiver<Event>,
    started: Instant,
    live: bool,
    last_words: String,
}

/// One output of one live broadcast.
struct Output {
    broadcast: String,
    target: Target,
    run: Option<Run>,
    /// Consecutive runs that ended unasked.
    failures: u32,
    restart_at: Option<Instant>,
    reported: Option<Status>,
}

struct Broadcast {
    next_query: Instant,
}

/// Stops a child in the background: SIGTERM (ffmpeg closes the RTMP session), SIGKILL 2 s later if still running.
fn stop(mut child: Child) {
    std::thread::spawn(move || {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    });
}

fn spawn(cfg: &Config, broadcast: &str, target: &Target) -> std::io::Result<Run> {
    let ff = ffmpeg_target(&target.url, &target.key)
        .ok_or_else(|| std::io::Error::other("the Worker sent a target this supervisor cannot use"))?;
    let mut child = Command::new(&cfg.ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-rtmp_live", "live"])
        // ffmpeg connects to the target only once it knows the input's streams. Joining mid-stream, video comes
        // with the next keyframe (nginx-rtmp holds inter frames back till then), so probing must wait for it
        // (analyzeduration stays at its 5 s), but not also count 20 frames for a frame rate the metadata gives.
        .args(["-fpsprobesize", "0", "-i"])
        .arg(format!("{}/{broadcast}", cfg.source))
        .args([
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "flv",
            "-progress",
            "pipe:1",
            "-stats_period",
            "1",
        ])
        // The application and key, from standard input: never on the command line, never in a file.
        .args(["-fpre", "/dev/stdin"])
        .arg(&ff.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // Dropped at the end of this block: ffmpeg reads the preset to its end.
        let _ = stdin.write_all(ff.preset.as_bytes());
    }
    let (tx, events) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if !told && line.starts_with("progress=") {
                    told = true;
                    let _ = tx.send(Event::Live);
                }
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        let key = target.key.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(Event::Said(redact(&line, &[&key]))).is_err() {
                    break;
                }
            }
        });
    }
    Ok(Run {
        child,
        events,
        started: Instant::now(),
        live: false,
        last_words: String::new(),
    })
}

/// Delivers status reports: the newest per output, retried every second while the Worker cannot take it.
fn reporter(cfg: Config, reports: Receiver<(String, String, Status, String)>) {
    let mut pending: BTreeMap<String, (String, Status, String)> = BTreeMap::new();
    loop {
        let wait = if pending.is_empty() {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(1)
        };
        match reports.recv_timeout(wait) {
            Ok((broadcast, output, status, message)) => {
                pending.insert(output, (broadcast, status, message));
                while let Ok((broadcast, output, status, message)) = reports.try_recv() {
                    pending.insert(output, (broadcast, status, message));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let mut delivered = Vec::new();
        for (output, (broadcast, status, message)) in &pending {
            let body = format!(
                "{{\"status\":\"{}\",\"message\":{}}}",
                status.as_str(),
                json_string(message)
            );
            let path = format!("{}/{broadcast}/{output}/status", cfg.outputs_path);
            match http(&cfg.proxy, "PUT", &path, Some(&body), Duration::from_secs(5)) {
                // 404: the output is gone or disabled, or the broadcast ended: nothing left to tell.
                Ok((status, _)) if (200..300).contains(&status) || status == 404 => delivered.push(output.clone()),
                Ok((status, _)) if (400..500).contains(&status) && status != 408 && status != 429 => {
                    eprintln!("simulcast: status report for output {output} refused ({status}); dropped");
                    delivered.push(output.clone());
                }
                _ => {}
            }
        }
        for o in delivered {
            pending.remove(&o);
        }
    }
}

/// Runs forever.
pub fn run(cfg: Config) -> std::io::Result<()> {
    let (report_tx, report_rx) = mpsc::channel();
    {
        let cfg = cfg.clone();
        std::thread::spawn(move || reporter(cfg, report_rx));
    }
    let report = |tx: &Sender<_>, o: &mut Output, status: Status, message: &str| {
        if o.reported == Some(status) && status != Status::Error {
            return;
        }
        o.reported = Some(status);
        let _ = tx.send((o.broadcast.clone(), o.target.id.clone(), status, message.to_string()));
    };
    let mut broadcasts: HashMap<String, Broadcast> = HashMap::new();
    let mut outputs: HashMap<String, Output> = HashMap::new();
    let mut next_stat = Instant::now();
    eprintln!(
        "simulcast: watching http://{}{} for live broadcasts; outputs from http://{}{}",
        cfg.proxy, cfg.stat_path, cfg.proxy, cfg.outputs_path
    );
    loop {
        let now = Instant::now();
        // 1. Which broadcasts are live here. A failed read changes nothing.
        if now >= next_stat {
            next_stat = now + cfg.stat_every;
            if let Ok((200, xml)) = http(&cfg.proxy, "GET", &cfg.stat_path, None, Duration::from_secs(2)) {
                let live = live_broadcasts(&xml);
                for gone in broadcasts
                    .keys()
                    .filter(|b| !live.contains(*b))
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    broadcasts.remove(&gone);
                    eprintln!("simulcast: broadcast {gone} ended here");
                }
                for b in live {
                    broadcasts.entry(b.clone()).or_insert_with(|| {
                        eprintln!("simulcast: broadcast {b} is live here");
                        Broadcast { next_query: now }
                    });
                }
            }
        }
        // Outputs of broadcasts that ended stop (the Worker idles them itself).
        for id in outputs
            .iter()
            .filter(|(_, o)| !broadcasts.contains_key(&o.broadcast))
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>()
        {
            if let Some(run) = outputs.remove(&id).and_then(|o| o.run) {
                stop(run.child);
            }
        }
        // 2. Which outputs each live broadcast has. Unreachable Worker: keep what runs.
        for (b, state) in broadcasts.iter_mut() {
            if now < state.next_query {
                continue;
            }
            state.next_query = now + cfg.outputs_every;
            let path = format!("{}/{b}", cfg.outputs_path);
            let targets = match http(&cfg.proxy, "GET", &path, None, Duration::from_secs(3)) {
                Ok((200, body)) => match parse_targets(&body) {
                    Some(t) => t,
                    None => continue,
                },
                _ => continue,
            };
            let wanted: HashMap<&str, &Target> = targets.iter().map(|t| (t.id.as_str(), t)).collect();
            for id in outputs
                .iter()
                .filter(|(id, o)| &o.broadcast == b && wanted.get(id.as_str()).is_none_or(|t| **t != o.target))
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>()
            {
                let mut o = outputs.remove(&id).expect("BUG: listed above");
                if let Some(run) = o.run.take() {
                    stop(run.child);
                }
                if !wanted.contains_key(id.as_str()) {
                    eprintln!("simulcast: output {id} of {b} stopped (disabled or removed)");
                    report(&report_tx, &mut o, Status::Idle, "");
                }
            }
            for t in &targets {
                if outputs.contains_key(&t.id) {
                    continue;
                }
                outputs.insert(
                    t.id.clone(),
                    Output {
                        broadcast: b.clone(),
                        target: t.clone(),
                        run: None,
                        failures: 0,
                        restart_at: Some(now),
                        reported: None,
                    },
                );
            }
        }
        // 3. Each output's ffmpeg: start, watch, restart.
        for o in outputs.values_mut() {
            if let Some(run) = o.run.as_mut() {
                while let Ok(event) = run.events.try_recv() {
                    match event {
                        Event::Live => run.live = true,
                        Event::Said(line) => run.last_words = line,
                    }
                }
                if run.live && o.reported != Some(Status::Live) {
                    eprintln!("simulcast: output {} of {} is live", o.target.id, o.broadcast);
                    report(&report_tx, o, Status::Live, "");
                    continue;
                }
                let Some(run) = o.run.as_mut() else { continue };
                if let Ok(Some(exit)) = run.child.try_wait() {
                    // Collect what it said last (its stderr reader may still be draining).
                    std::thread::sleep(Duration::from_millis(50));
                    while let Ok(Event::Said(line)) = run.events.try_recv() {
                        run.last_words = line;
                    }
                    let run = o.run.take().expect("BUG: matched above");
                    if run.started.elapsed() >= Duration::from_secs(30) {
                        o.failures = 0;
                    }
                    let wait = restart_backoff(o.failures);
                    o.failures += 1;
                    o.restart_at = Some(Instant::now() + wait);
                    let said = if run.last_words.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", run.last_words)
                    };
                    eprintln!(
                        "simulcast: output {} of {} ended ({exit}){said}; again in {wait:?}",
                        o.target.id, o.broadcast
                    );
                    if run.live {
                        report(
                            &report_tx,
                            o,
                            Status::Connecting,
                            "The target dropped the stream; reconnecting.",
                        );
                    } else {
                        let message = format!("The target refused the stream or could not be reached{said}");
                        report(
                            &report_tx,
                            o,
                            Status::Error,
                            &message.chars().take(200).collect::<String>(),
                        );
                    }
                }
            } else if o.restart_at.is_some_and(|t| now >= t) {
                o.restart_at = None;
                match spawn(&cfg, &o.broadcast, &o.target) {
                    Ok(run) => {
                        eprintln!("simulcast: output {} of {} starting", o.target.id, o.broadcast);
                        o.run = Some(run);
                        // After an error the status stays `error` until a run goes live.
                        if o.reported != Some(Status::Error) {
                            report(&report_tx, o, Status::Connecting, "");
                        }
                    }
                    Err(e) => {
                        eprintln!("simulcast: cannot start ffmpeg for output {}: {e}", o.target.id);
                        o.failures += 1;
                        o.restart_at = Some(now + restart_backoff(o.failures));
                        report(&report_tx, o, Status::Error, "The origin could not start the relay.");
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "<?xml version=\"1.0\"?><rtmp><server>\
        <application><name>live</name><live><stream><name>abcdefghijkmnpqr</name><publishing/></stream></live></application>\
        <application><name>hls</name><live>\
        <stream><name>abcdefghijkmnpqr</name><client><id>3</id></client><publishing/><active/></stream>\
        <stream><name>bbbbbbbbbbbbbbbb</name><client><id>4</id></client></stream>\
        <nclients>2</nclients></live></application></server></rtmp>";

    #[test]
    fn only_broadcasts_published_into_the_hls_application_are_live() {
        let live = live_broadcasts(STAT);
        assert_eq!(live, HashSet::from(["abcdefghijkmnpqr".to_string()]));
        assert!(live_broadcasts("").is_empty());
    }

    #[test]
    fn the_key_and_application_go_to_the_preset_and_only_scheme_host_and_port_to_the_command_line() {
        let t = ffmpeg_target("rtmps://live-api-s.facebook.com:443/rtmp/", "FB-123?s_bl=1").unwrap();
        assert_eq!(t.url, "rtmps://live-api-s.facebook.com:443");
        assert_eq!(t.preset, "rtmp_app=rtmp\nrtmp_playpath=FB-123?s_bl=1\n");
        let t = ffmpeg_target("RTMP://a.rtmp.youtube.com", "abcd-efgh").unwrap();
        assert_eq!(
            (t.url.as_str(), t.preset.as_str()),
            ("rtmp://a.rtmp.youtube.com", "rtmp_playpath=abcd-efgh\n")
        );
        assert!(ffmpeg_target("http://x/app", "key12345").is_none());
        assert!(ffmpeg_target("rtmp://u:p@x/app", "key12345").is_none());
        assert!(ffmpeg_target("rtmp://x/app", "two\nlines").is_none());
    }

    #[test]
    fn redaction_hides_every_occurrence_of_the_key() {
        assert_eq!(
            redact("rtmp://x/app/SECRET123: refused SECRET123", &["SECRET123"]),
            "rtmp://x/app/[redacted]: refused [redacted]"
        );
    }

    #[test]
    fn restarts_back_off_from_one_to_thirty_seconds() {
        assert_eq!(restart_backoff(0), Duration::from_secs(1));
        assert_eq!(restart_backoff(3), Duration::from_secs(8));
        assert_eq!(restart_backoff(9), Duration::from_secs(30));
    }

    #[test]
    fn the_workers_answer_gives_the_targets() {
        let body = r#"{"outputs":[{"id":"o1","url":"rtmp://x/app","key":"k\"ey\u00e9\/1"},{"id":"o2","url":"rtmps://y","key":"z"}]}"#;
        let t = parse_targets(body).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].key, "k\"eyé/1");
        assert_eq!(t[1].url, "rtmps://y");
        assert_eq!(parse_targets(r#"{"outputs":[]}"#), Some(vec![]));
        for bad in ["", "{", r#"{"outputs":[{"id":"o1"}]}"#, r#"{"error":{}}"#, "[1,]"] {
            assert!(parse_targets(bad).is_none(), "{bad:?} was read");
        }
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a\"b\\c\nd"), r#""a\"b\\c\u000ad""#);
        assert_eq!(
            parse_json(&json_string("x\u{1}y")),
            Some(Json::String("x\u{1}y".into()))
        );
    }

    #[test]
    fn a_chunked_answer_is_put_back_together() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }
}
