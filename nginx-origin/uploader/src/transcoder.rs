//! `sunnylive-transcoder`: started by nginx-rtmp (`exec_push` in the internal `hls` application) for every publish,
//! with the broadcast id as `$name`. nginx-rtmp itself writes the ingest as HLS under `<ingest root>/<broadcast>/`
//! from the publish's first frame; this follows that playlist and makes the broadcast's renditions under
//! `<hls root>/<broadcast>/<rendition>/`, which sunnylive-uploader uploads:
//!
//! - `source`: each finished ingest segment, hard-linked as `<seq>.ts` the moment nginx-rtmp lists it (never
//!   re-encoded, nothing added to its latency but one poll);
//! - every rung of the ladder (src/ladder.rs, chosen from nginx-rtmp's stat page: codecs and size): one ffmpeg per
//!   source segment writes segment k of every rendition with the source's timestamps, so all renditions share the
//!   source's segment boundaries exactly.
//!
//! Why not one ffmpeg playing the stream: nginx-rtmp keeps no GOP for a late player, and an ffmpeg started by
//! `exec` joins a few hundred milliseconds after the publish began, so every broadcast lost its first keyframe
//! interval (issue 22). nginx-rtmp's own HLS writer is in the publish path and misses nothing.
//!
//! nginx-rtmp does not signal this process at the end of the publish (`exec_kill_signal 0`): it sees the end on the
//! stat page, takes nginx-rtmp's last segment, finishes its renditions, closes every playlist (`#EXT-X-ENDLIST`, for
//! the uploader) and exits. Falling behind (a slow host) costs renditions segments, never the source: when more than
//! `MAX_BEHIND` segments wait, the oldest are skipped (logged) and the rendition playlists mark the gap.
//!
//! Usage: sunnylive-transcoder --name ID --hls-root DIR --ingest-root DIR --stat-url http://127.0.0.1:PORT/PATH
//!        --log FILE [--renditions 480p,360p] [--preset veryfast] [--ffmpeg ffmpeg]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sunnylive_origin_uploader::ladder::{self, Plan, StreamInfo};
use sunnylive_origin_uploader::{looks_like_broadcast_id, parse_playlist, split_url};

/// How often nginx-rtmp's playlist is read: a new source segment is listed within this of nginx-rtmp closing it.
const POLL: Duration = Duration::from_millis(40);
/// How often the stat page is asked whether the publish is still on.
const STAT_EVERY: Duration = Duration::from_millis(500);
/// Segments listed in each playlist this writes (the uploader reads every one well within this window).
const LIST_SIZE: usize = 6;
/// Segments of renditions waiting at most; past it the oldest are skipped.
const MAX_BEHIND: usize = 4;
/// With nginx unreachable this long, the publish is taken as over (nginx stopped).
const STAT_GIVE_UP: Duration = Duration::from_secs(15);

fn main() {
    let mut args = std::env::args().skip(1);
    let mut get = std::collections::HashMap::new();
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        get.insert(flag, value);
    }
    let need = |k: &str| {
        get.get(k)
            .cloned()
            .unwrap_or_else(|| usage(&format!("{k} is required")))
    };
    let name = need("--name");
    if !looks_like_broadcast_id(&name) {
        usage("--name must be a broadcast id");
    }
    let hls_root = PathBuf::from(need("--hls-root"));
    let ingest_root = PathBuf::from(need("--ingest-root"));
    let stat_url = need("--stat-url");
    let log_path = need("--log");
    let renditions = get
        .get("--renditions")
        .cloned()
        .unwrap_or(ladder::DEFAULT_RENDITIONS.into());
    let preset = get.get("--preset").cloned().unwrap_or("veryfast".into());
    let ffmpeg = get.get("--ffmpeg").cloned().unwrap_or("ffmpeg".into());

    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| usage(&format!("cannot open {log_path}: {e}")));
    let wanted = ladder::parse_renditions(&renditions).unwrap_or_else(|e| usage(&e));

    let started = Instant::now();
    let info = wait_for_codecs(&stat_url, &name).unwrap_or_else(|| {
        let _ = writeln!(
            log,
            "transcoder: {name}: nginx-rtmp listed no codecs within 3 s; source only"
        );
        StreamInfo::default()
    });
    let plan = ladder::plan(&info, &wanted);
    let mut names = vec![ladder::SOURCE];
    names.extend(plan.renditions.iter().map(|r| r.name));
    let _ = writeln!(
        log,
        "transcoder: {name}: {}x{} {} {} fps, audio {} -> {}{} (codecs known after {} ms)",
        info.width,
        info.height,
        info.video_codec.as_deref().unwrap_or("no video"),
        info.frame_rate,
        info.audio_codec.as_deref().unwrap_or("none"),
        names.join(", "),
        plan.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default(),
        started.elapsed().as_millis()
    );

    let mut t = Transcoder {
        ingest: ingest_root.join(&name),
        source: Variant::new(hls_root.join(&name).join(ladder::SOURCE)),
        renditions: plan
            .renditions
            .iter()
            .map(|r| Variant::new(hls_root.join(&name).join(r.name)))
            .collect(),
        plan,
        preset,
        ffmpeg,
        name: name.clone(),
        log,
        next_seq: None,
        waiting: VecDeque::new(),
        running: None,
    };
    t.run(&stat_url);
}

/// One segment of the source: its sequence number, duration (as listed) and whether a new timeline starts there.
#[derive(Debug, Clone)]
struct Entry {
    seq: u32,
    duration: String,
    discontinuity: bool,
}

/// One output playlist and its directory.
struct Variant {
    dir: PathBuf,
    listed: VecDeque<Entry>,
    /// Files written, oldest first, for deleting what has left the window.
    files: VecDeque<u32>,
    /// The next listed segment starts a new timeline (a gap before it).
    gap: bool,
    ok: bool,
}

impl Variant {
    fn new(dir: PathBuf) -> Variant {
        let ok = std::fs::create_dir_all(&dir).is_ok();
        Variant {
            dir,
            listed: VecDeque::new(),
            files: VecDeque::new(),
            gap: false,
            ok,
        }
    }

    fn file(&self, seq: u32) -> PathBuf {
        self.dir.join(format!("{seq}.ts"))
    }

    /// Lists segment `entry` (its file is in place). A gap before it empties the window first: the playlist's media
    /// sequence numbers count its entries, so one missing in the middle would misnumber those after it.
    fn add(&mut self, mut entry: Entry) {
        if self
            .listed
            .back()
            .is_some_and(|last| last.seq.wrapping_add(1) != entry.seq)
        {
            self.gap = true;
        }
        if self.gap {
            self.listed.clear();
            entry.discontinuity = true;
            self.gap = false;
        }
        self.listed.push_back(entry.clone());
        self.files.push_back(entry.seq);
        while self.listed.len() > LIST_SIZE {
            self.listed.pop_front();
        }
        // Files stay one window past the list (the uploader hard-links each one as soon as it is listed).
        while self.files.len() > 2 * LIST_SIZE {
            if let Some(old) = self.files.pop_front() {
                let _ = std::fs::remove_file(self.file(old));
            }
        }
    }

    /// Writes index.m3u8 (through a temporary file: the uploader never reads half of one).
    fn write(&self, ended: bool) -> std::io::Result<()> {
        if !self.ok {
            return Ok(());
        }
        let target = self
            .listed
            .iter()
            .filter_map(|e| e.duration.parse::<f64>().ok())
            .fold(1.0f64, f64::max)
            .ceil();
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            self.listed.front().map(|e| e.seq).unwrap_or(0)
        );
        for e in &self.listed {
            if e.discontinuity {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            text.push_str(&format!("#EXTINF:{},\n{}.ts\n", e.duration, e.seq));
        }
        if ended {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        let tmp = self.dir.join(".index.m3u8.tmp");
        File::create(&tmp)?.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, self.dir.join("index.m3u8"))
    }
}

struct Transcoder {
    ingest: PathBuf,
    source: Variant,
    renditions: Vec<Variant>,
    plan: Plan,
    preset: String,
    ffmpeg: String,
    name: String,
    log: File,
    /// The next ingest sequence number to take (None until nginx-rtmp lists its first segment).
    next_seq: Option<u32>,
    /// Source segments whose renditions are still to be made, oldest first.
    waiting: VecDeque<Entry>,
    /// The ffmpeg making the renditions of one segment.
    running: Option<(Entry, Child)>,
}

impl Transcoder {
    fn run(&mut self, stat_url: &str) {
        let mut last_stat = Instant::now();
        let mut reachable = Instant::now();
        let mut seen_publishing = false;
        let mut gone_polls = 0;
        loop {
            self.take_new_segments();
            self.step_renditions(false);
            if last_stat.elapsed() >= STAT_EVERY {
                last_stat = Instant::now();
                match fetch(stat_url) {
                    Some(xml) => {
                        reachable = Instant::now();
                        if ladder::is_publishing(&xml, "hls", &self.name) {
                            seen_publishing = true;
                            gone_polls = 0;
                        } else {
                            gone_polls += 1;
                        }
                    }
                    None if reachable.elapsed() > STAT_GIVE_UP => break,
                    None => {}
                }
                // Twice not publishing (once only after it was seen on: a start that raced the stat page).
                if gone_polls >= 2 && (seen_publishing || gone_polls >= 6) {
                    break;
                }
            }
            std::thread::sleep(POLL);
        }
        // nginx-rtmp closed the last segment and wrote its playlist when the publish ended.
        std::thread::sleep(Duration::from_millis(200));
        self.take_new_segments();
        self.step_renditions(true);
        for v in std::iter::once(&self.source).chain(&self.renditions) {
            if let Err(e) = v.write(true) {
                let _ = writeln!(
                    self.log,
                    "transcoder: {}: cannot close {}: {e}",
                    self.name,
                    v.dir.display()
                );
            }
        }
        let _ = writeln!(self.log, "transcoder: {}: publish over, playlists closed", self.name);
    }

    /// Takes every segment nginx-rtmp newly lists: into `source` at once, and into the renditions' queue.
    fn take_new_segments(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.ingest.join("index.m3u8")) else {
            return;
        };
        let mut changed = false;
        for seg in parse_playlist(&text) {
            if self.next_seq.is_some_and(|n| seg.seq < n) || seg.file.contains('/') || seg.file.starts_with('.') {
                continue;
            }
            self.next_seq = Some(seg.seq.wrapping_add(1));
            let entry = Entry {
                seq: seg.seq,
                duration: seg.duration,
                discontinuity: seg.discontinuity,
            };
            let from = self.ingest.join(&seg.file);
            let to = self.source.file(seg.seq);
            if std::fs::hard_link(&from, &to).is_err() && std::fs::copy(&from, &to).is_err() {
                let _ = writeln!(
                    self.log,
                    "transcoder: {}: segment {} vanished before it was taken",
                    self.name, seg.seq
                );
                continue;
            }
            self.source.add(entry.clone());
            changed = true;
            if !self.renditions.is_empty() {
                self.waiting.push_back(entry);
            }
        }
        if changed {
            if let Err(e) = self.source.write(false) {
                let _ = writeln!(
                    self.log,
                    "transcoder: {}: cannot write the source playlist: {e}",
                    self.name
                );
            }
        }
    }

    /// Collects a finished ffmpeg and starts the next; with `drain`, until nothing waits.
    fn step_renditions(&mut self, drain: bool) {
        loop {
            if let Some((entry, child)) = &mut self.running {
                let status = if drain {
                    child.wait().ok()
                } else {
                    child.try_wait().ok().flatten()
                };
                match status {
                    None if !drain => return,
                    status => {
                        let ok = status.is_some_and(|s| s.success());
                        let entry = entry.clone();
                        self.running = None;
                        self.finish(entry, ok);
                    }
                }
            }
            while self.waiting.len() > MAX_BEHIND {
                if let Some(old) = self.waiting.pop_front() {
                    let _ = writeln!(
                        self.log,
                        "transcoder: {}: renditions of segment {} skipped (transcoding behind real time)",
                        self.name, old.seq
                    );
                }
            }
            let Some(entry) = self.waiting.pop_front() else {
                return;
            };
            let outputs: Vec<String> = self
                .renditions
                .iter()
                .map(|v| v.dir.join(format!(".{}.ts", entry.seq)).to_string_lossy().into_owned())
                .collect();
            let input = self.source.file(entry.seq);
            let args = ladder::segment_args(
                &self.plan,
                &input.to_string_lossy(),
                &outputs,
                &self.preset,
                segment_kbps(&input, &entry.duration),
            );
            let stderr = self.log.try_clone().map(Stdio::from).unwrap_or(Stdio::null());
            match Command::new(&self.ffmpeg)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
            {
                Ok(child) => self.running = Some((entry, child)),
                Err(e) => {
                    let _ = writeln!(self.log, "transcoder: {}: cannot run {}: {e}", self.name, self.ffmpeg);
                    self.finish(entry, false);
                }
            }
            if !drain {
                return;
            }
        }
    }

    /// Lists segment `entry` in every rendition that made it; a rendition that did not gets a gap.
    fn finish(&mut self, entry: Entry, ok: bool) {
        if !ok {
            let _ = writeln!(
                self.log,
                "transcoder: {}: ffmpeg failed on segment {}; the renditions skip it",
                self.name, entry.seq
            );
        }
        for v in &mut self.renditions {
            let part = v.dir.join(format!(".{}.ts", entry.seq));
            let made = ok && non_empty(&part) && std::fs::rename(&part, v.file(entry.seq)).is_ok();
            if made {
                v.add(entry.clone());
            } else {
                let _ = std::fs::remove_file(&part);
                v.gap = true;
            }
            if let Err(e) = v.write(false) {
                let _ = writeln!(
                    self.log,
                    "transcoder: {}: cannot write {}: {e}",
                    self.name,
                    v.dir.display()
                );
            }
        }
    }
}

/// A segment's bitrate (kbit/s) from its size and listed duration.
fn segment_kbps(path: &Path, duration: &str) -> Option<u32> {
    let bytes = std::fs::metadata(path).ok()?.len();
    let secs: f64 = duration.parse().ok().filter(|s: &f64| *s > 0.1)?;
    Some((bytes as f64 * 8.0 / secs / 1000.0) as u32)
}

fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// Polls nginx-rtmp's stat page until it lists the stream's video codec (or, after 1.5 s, only audio: an audio-only
/// publish); None after 3 s. The codec headers arrive with the publish, so this usually takes one or two polls.
fn wait_for_codecs(stat_url: &str, name: &str) -> Option<StreamInfo> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(3) {
        if let Some(info) = fetch(stat_url).and_then(|xml| ladder::parse_stat(&xml, "hls", name)) {
            if info.video_codec.is_some() || start.elapsed() > Duration::from_millis(1500) {
                return Some(info);
            }
            last = Some(info);
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    last
}

/// A plain HTTP/1.0 GET of a loopback URL (no chunked encoding, closed by the server at the end).
fn fetch(url: &str) -> Option<String> {
    let (hostport, path) = split_url(url)?;
    let mut conn = TcpStream::connect(&hostport).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn usage(why: &str) -> ! {
    eprintln!(
        "sunnylive-transcoder: {why}\nusage: sunnylive-transcoder --name ID --hls-root DIR --ingest-root DIR \
         --stat-url URL --log FILE [--renditions LIST] [--preset veryfast] [--ffmpeg PATH]"
    );
    std::process::exit(2);
}
