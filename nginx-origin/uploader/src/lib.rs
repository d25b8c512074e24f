//! The origin's uploader: the transcoder (src/transcoder.rs, one ffmpeg per publish) writes each broadcast's HLS
//! into `<hls root>/<broadcast id>/<rendition>/` (`source`, `480p`, ...); this watches those directories, and every
//! segment listed in a rendition's playlist is uploaded once, in order, to the Worker
//! (`PUT <upload url>/<broadcast id>/<rendition>/<seq>.ts?duration=..&pdt=..`, with the rendition's resolution,
//! frame rate and codecs read once by ffprobe), plus a JPEG thumbnail of the newest source segment about every
//! 20 s. `pdt` is the wall-clock time the segment's first frame reached the origin (the same for segment k of every
//! rendition), for the playlists' `#EXT-X-PROGRAM-DATE-TIME`. The upload URL is the origin's own local proxy location, which adds the origin token, so no secret is in
//! this process's arguments or environment.
//!
//! Robustness: a segment is hard-linked into a spool directory the moment it is listed, so nginx's `hls_cleanup`
//! cannot delete it while the Worker is unreachable; uploads are retried with exponential backoff (head of line, so
//! order is kept); the backlog is bounded (the oldest segments are dropped first, and the Worker marks the gap as a
//! discontinuity); a 4xx answer (the broadcast ended long ago, the file was refused) drops the job for good.

pub mod simulcast;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

pub mod ladder;

/// One entry of nginx-rtmp's playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedSegment {
    pub seq: u32,
    pub duration: String,
    pub discontinuity: bool,
    pub file: String,
}

/// Parses an HLS media playlist as nginx-rtmp writes it: the media sequence, then `#EXTINF:<seconds>,` lines each
/// followed by a file name, with `#EXT-X-DISCONTINUITY` before a segment that starts a new timeline.
pub fn parse_playlist(text: &str) -> Vec<ListedSegment> {
    let mut seq: u32 = 0;
    let mut pending: Option<String> = None;
    let mut discontinuity = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = n.trim().parse().unwrap_or(0);
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            pending = Some(d.split(',').next().unwrap_or("").trim().to_string());
        } else if !line.is_empty() && !line.starts_with('#') {
            if let Some(duration) = pending.take() {
                out.push(ListedSegment {
                    seq,
                    duration: normalise_duration(&duration),
                    discontinuity,
                    file: line.to_string(),
                });
                seq = seq.wrapping_add(1);
                discontinuity = false;
            }
        }
    }
    out
}

/// nginx-rtmp prints durations like `2.000`; the Worker takes at most three decimals.
fn normalise_duration(d: &str) -> String {
    match d.split_once('.') {
        Some((whole, frac)) if frac.len() > 3 => format!("{whole}.{}", &frac[..3]),
        _ => d.to_string(),
    }
}

/// True for names the Worker mints as broadcast ids (16 characters of its base32 alphabet): anything else in the
/// HLS root is not ours to upload.
pub fn looks_like_broadcast_id(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b"abcdefghijkmnpqrstuvwxyz23456789".contains(&b))
}

/// What to upload.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    Segment {
        broadcast: String,
        /// `source` or a ladder rung (`480p`): the directory nginx's transcoder wrote it into.
        rendition: String,
        seq: u32,
        duration: String,
        discontinuity: bool,
        /// Wall-clock time (unix ms) the segment's first frame reached the origin, when known.
        pdt_ms: Option<u64>,
        path: PathBuf,
    },
    Thumbnail {
        broadcast: String,
        /// A spooled segment to take the still from.
        source: PathBuf,
    },
}

impl Job {
    pub fn spool_path(&self) -> &Path {
        match self {
            Job::Segment { path, .. } => path,
            Job::Thumbnail { source, .. } => source,
        }
    }
}

/// The upload queue with its bound: past `max` jobs the oldest is dropped (and returned, so its spool file can be
/// removed).
pub struct Backlog {
    jobs: VecDeque<Job>,
    max: usize,
}

impl Backlog {
    pub fn new(max: usize) -> Backlog {
        Backlog {
            jobs: VecDeque::new(),
            max: max.max(1),
        }
    }
    pub fn push(&mut self, job: Job) -> Option<Job> {
        self.jobs.push_back(job);
        if self.jobs.len() > self.max {
            self.jobs.pop_front()
        } else {
            None
        }
    }
    pub fn front(&self) -> Option<&Job> {
        self.jobs.front()
    }
    pub fn pop(&mut self) -> Option<Job> {
        self.jobs.pop_front()
    }
    pub fn len(&self) -> usize {
        self.jobs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

fn backlog_has(backlog: &Backlog, broadcast: &str) -> bool {
    backlog
        .jobs
        .iter()
        .any(|j| matches!(j, Job::Segment { broadcast: b, .. } if b == broadcast))
}

/// Retry delays: 250 ms doubling up to 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((250u64 << attempt.min(5)).min(5_000))
}

/// How an upload ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Try again later: the Worker or the proxy is unreachable, overloaded or failing.
    Retry,
    /// Never try again: the Worker refused this file (bad name, broadcast ended or deleted).
    Refused(u16),
}

pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Done,
        408 | 425 | 429 => Outcome::Retry,
        400..=499 => Outcome::Refused(status),
        _ => Outcome::Retry,
    }
}

/// `http://host:port/path` split into (host:port, path); only plain http (the origin's local proxy).
pub fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    Some((hostport, format!("/{}", path.trim_end_matches('/'))))
}

/// PUTs `body_path` to `http://<hostport><path>` and returns the status code. One connection per upload: it is
/// loopback, and a fresh connection never trips over a keep-alive socket the proxy just closed.
pub fn put_file(hostport: &str, path: &str, content_type: &str, body_path: &Path) -> std::io::Result<u16> {
    let mut file = std::fs::File::open(body_path)?;
    let len = file.metadata()?.len();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         Connection: close\r\nUser-Agent: sunnylive-uploader\r\n\r\n"
    );
    conn.write_all(head.as_bytes())?;
    std::io::copy(&mut file, &mut conn)?;
    conn.flush()?;
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    // Drain the (small) answer so the proxy sees a clean close.
    let mut sink = Vec::new();
    let _ = reader.take(64 * 1024).read_to_end(&mut sink);
    Ok(status)
}

/// Settings, from the command line (see main.rs).
#[derive(Debug, Clone)]
pub struct Config {
    pub hls_root: PathBuf,
    pub spool: PathBuf,
    pub upload_url: String,
    pub ffmpeg: String,
    pub ffprobe: String,
    pub poll: Duration,
    pub thumbnail_every: Duration,
    pub max_backlog: usize,
}

/// What the scanner remembers per broadcast directory.
#[derive(Default)]
struct Seen {
    /// Per rendition: every listed sequence number up to this one is spooled (or was gone before it could be).
    next_seq: HashMap<String, u32>,
    /// Per sequence number: when its first frame reached the origin (unix ms), taken from the first rendition that
    /// listed it (`source`, a copy, is first) so every rendition's segment k carries the same time.
    pdt_ms: HashMap<u32, u64>,
    last_thumbnail: Option<Instant>,
    newest: Option<(u32, PathBuf)>,
    /// Newest change seen in the directory, for removing it once the broadcast is over.
    last_change: Option<Instant>,
}

/// Wall-clock time (unix ms) at which a segment's first frame arrived: the muxer closes (last writes) a segment
/// when the first frame of the next one arrives, so its modification time less its duration is when it began.
fn first_frame_ms(path: &Path, duration: &str) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let end_ms = modified.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    let secs: f64 = duration.parse().ok()?;
    Some(end_ms.saturating_sub((secs * 1000.0).round() as u64))
}

#[cfg(test)]
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The rendition directories of a broadcast, `source` first (its times are the ones every rendition takes).
fn renditions_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| ladder::is_rendition_name(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|n| (n != ladder::SOURCE, n.clone()));
    names
}

/// How long a broadcast directory may sit unchanged before it is removed (its publish is long over; nginx's own
/// cleanup no longer runs, since the transcoder writes these files).
const STALE_DIRECTORY: Duration = Duration::from_secs(600);

/// Scans the HLS root once: spools and queues every newly listed segment of every rendition, and a thumbnail (of
/// the source) when one is due; removes the directories of finished broadcasts. Returns the jobs in upload order.
fn scan(cfg: &Config, seen: &mut HashMap<String, Seen>, now: Instant) -> Vec<Job> {
    let mut jobs = Vec::new();
    let Ok(entries) = std::fs::read_dir(&cfg.hls_root) else {
        return jobs;
    };
    let mut present = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !looks_like_broadcast_id(&name) || !entry.path().is_dir() {
            continue;
        }
        present.push(name.clone());
        let dir = entry.path();
        let state = seen.entry(name.clone()).or_default();
        let mut all_ended = true;
        let renditions = renditions_of(&dir);
        for rendition in &renditions {
            let rdir = dir.join(rendition);
            let Ok(text) = std::fs::read_to_string(rdir.join("index.m3u8")) else {
                all_ended = false;
                continue;
            };
            all_ended &= text.contains("#EXT-X-ENDLIST");
            for seg in parse_playlist(&text) {
                if state.next_seq.get(rendition).is_some_and(|n| seg.seq < *n) {
                    continue;
                }
                state.next_seq.insert(rendition.clone(), seg.seq.wrapping_add(1));
                state.last_change = Some(now);
                if seg.file.contains('/') || seg.file.starts_with('.') {
                    continue;
                }
                let spooled = cfg.spool.join(format!("{name}-{rendition}-{}.ts", seg.seq));
                // A hard link: free, and the data outlives the muxer's cleanup until it is uploaded.
                if std::fs::hard_link(rdir.join(&seg.file), &spooled).is_err()
                    && std::fs::copy(rdir.join(&seg.file), &spooled).is_err()
                {
                    eprintln!(
                        "uploader: {name}/{rendition}/{} vanished before it could be spooled",
                        seg.file
                    );
                    continue;
                }
                let pdt_ms = match state.pdt_ms.get(&seg.seq) {
                    Some(t) => Some(*t),
                    None => first_frame_ms(&spooled, &seg.duration).inspect(|t| {
                        state.pdt_ms.insert(seg.seq, *t);
                    }),
                };
                if rendition == ladder::SOURCE {
                    state.newest = Some((seg.seq, spooled.clone()));
                }
                jobs.push(Job::Segment {
                    broadcast: name.clone(),
                    rendition: rendition.clone(),
                    seq: seg.seq,
                    duration: seg.duration,
                    discontinuity: seg.discontinuity,
                    pdt_ms,
                    path: spooled,
                });
            }
        }
        // Keep the times of the last few hundred sequence numbers only.
        if state.pdt_ms.len() > 512 {
            let newest = state.pdt_ms.keys().max().copied().unwrap_or(0);
            state.pdt_ms.retain(|seq, _| seq + 256 > newest);
        }
        let due = state
            .last_thumbnail
            .is_none_or(|t| now.duration_since(t) >= cfg.thumbnail_every);
        if let (true, Some((seq, spooled))) = (due, &state.newest) {
            let source = cfg.spool.join(format!("{name}-thumb-{seq}.ts"));
            if std::fs::hard_link(spooled, &source).is_ok() {
                state.last_thumbnail = Some(now);
                jobs.push(Job::Thumbnail {
                    broadcast: name.clone(),
                    source,
                });
            }
        }
        let last_change = *state.last_change.get_or_insert(now);
        let finished = !renditions.is_empty() && all_ended;
        if finished || now.duration_since(last_change) >= STALE_DIRECTORY {
            // Everything listed is spooled: the directory is no longer needed (a later publish is a new broadcast).
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                eprintln!("uploader: cannot remove {}: {e}", dir.display());
            }
        }
    }
    seen.retain(|k, _| present.contains(k));
    jobs
}

/// What the master playlist says of a rendition, read once per broadcast and rendition from its first segment
/// with ffprobe and sent with every upload of that rendition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frames per second with three decimals (`29.970`).
    pub fps: Option<String>,
    /// RFC 6381 codecs (`avc1.64001f,mp4a.40.2`).
    pub codecs: Option<String>,
}

impl MediaInfo {
    /// The upload's query parameters for this information (`&width=..&height=..&fps=..&codecs=..`).
    pub fn query(&self) -> String {
        let mut q = String::new();
        if let (Some(w), Some(h)) = (self.width, self.height) {
            q.push_str(&format!("&width={w}&height={h}"));
        }
        if let Some(fps) = &self.fps {
            q.push_str(&format!("&fps={fps}"));
        }
        if let Some(codecs) = &self.codecs {
            // The codecs' characters (letters, digits, dots) need no escaping; the comma becomes %2C.
            q.push_str(&format!("&codecs={}", codecs.replace(',', "%2C")));
        }
        q
    }
}

/// Reads `ffprobe -show_entries stream=codec_type,codec_name,profile,level,width,height,avg_frame_rate -of
/// compact=p=0` output into what the master playlist needs.
pub fn parse_probe(text: &str) -> MediaInfo {
    let mut info = MediaInfo::default();
    let mut codecs = Vec::new();
    for line in text.lines() {
        let fields: HashMap<&str, &str> = line.split('|').filter_map(|kv| kv.split_once('=')).collect();
        let field = |k: &str| fields.get(k).copied().unwrap_or("");
        // ffprobe lists an MPEG-TS program's streams again after the streams themselves: the first of each counts.
        match field("codec_type") {
            "video" if info.height.is_some() => {}
            // nginx-rtmp's MPEG-TS declares an H.264 stream in every segment, an audio-only publish's too: a video
            // stream without a picture size is that empty declaration, not video.
            "video" if field("width").parse::<u32>().unwrap_or(0) == 0 => {}
            "audio" if codecs.iter().any(|c: &String| c.starts_with("mp4a")) => {}
            "video" => {
                info.width = field("width").parse().ok();
                info.height = field("height").parse().ok();
                info.fps = frame_rate(field("avg_frame_rate")).or_else(|| frame_rate(field("r_frame_rate")));
                let level: u32 = field("level").parse().unwrap_or(0);
                match field("codec_name") {
                    "h264" => {
                        let (profile, constraints) = match field("profile") {
                            "Constrained Baseline" => (0x42, 0xe0),
                            "Baseline" => (0x42, 0x00),
                            "Main" => (0x4d, 0x40),
                            "High 10" => (0x6e, 0x00),
                            "High 4:2:2" => (0x7a, 0x00),
                            "High 4:4:4 Predictive" => (0xf4, 0x00),
                            _ => (0x64, 0x00),
                        };
                        codecs.insert(0, format!("avc1.{profile:02x}{constraints:02x}{:02x}", level.min(255)));
                    }
                    "hevc" => {
                        let profile = if field("profile") == "Main 10" { 2 } else { 1 };
                        codecs.insert(0, format!("hvc1.{profile}.6.L{level}.B0"));
                    }
                    _ => {}
                }
            }
            "audio" => match (field("codec_name"), field("profile")) {
                ("aac", "HE-AAC") => codecs.push("mp4a.40.5".to_string()),
                ("aac", "HE-AACv2") => codecs.push("mp4a.40.29".to_string()),
                ("aac", _) => codecs.push("mp4a.40.2".to_string()),
                ("mp3", _) => codecs.push("mp4a.40.34".to_string()),
                _ => {}
            },
            _ => {}
        }
    }
    if !codecs.is_empty() {
        info.codecs = Some(codecs.join(","));
    }
    info
}

/// `30/1`, `30000/1001` as frames per second with three decimals; None for `0/0` and nonsense.
fn frame_rate(r: &str) -> Option<String> {
    let (n, d) = r.split_once('/')?;
    let (n, d): (u64, u64) = (n.parse().ok()?, d.parse().ok()?);
    if n == 0 || d == 0 || n / d > 1000 {
        return None;
    }
    let milli = (n * 1000 + d / 2) / d;
    Some(format!("{}.{:03}", milli / 1000, milli % 1000))
}

/// Probes a spooled segment; an empty MediaInfo when ffprobe fails (the upload goes on without it).
fn probe(cfg: &Config, segment: &Path) -> MediaInfo {
    let out = std::process::Command::new(&cfg.ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,profile,level,width,height,avg_frame_rate,r_frame_rate",
            "-of",
            "compact=p=0",
        ])
        .arg(segment)
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => parse_probe(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => {
            eprintln!("uploader: ffprobe could not read a segment ({})", o.status);
            MediaInfo::default()
        }
        Err(e) => {
            eprintln!("uploader: cannot run {}: {e}", cfg.ffprobe);
            MediaInfo::default()
        }
    }
}

/// Makes the thumbnail JPEG for a job; None when ffmpeg failed (the job is then skipped).
fn make_thumbnail(cfg: &Config, source: &Path) -> Option<PathBuf> {
    let out = source.with_extension("jpg");
    let status = std::process::Command::new(&cfg.ffmpeg)
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(source)
        .args(["-frames:v", "1", "-vf", "scale=480:-2", "-q:v", "6"])
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        Ok(s) => {
            eprintln!("uploader: ffmpeg could not make a thumbnail ({s})");
            None
        }
        Err(e) => {
            eprintln!("uploader: cannot run {}: {e}", cfg.ffmpeg);
            None
        }
    }
}

/// Uploads one job; `Retry` leaves it at the head of the queue. `media` caches each rendition's probe.
fn upload(
    cfg: &Config,
    hostport: &str,
    base: &str,
    job: &Job,
    media: &mut HashMap<(String, String), MediaInfo>,
) -> Outcome {
    let (path, content_type, body, made) = match job {
        Job::Segment {
            broadcast,
            rendition,
            seq,
            duration,
            discontinuity,
            pdt_ms,
            path,
        } => {
            let info = media
                .entry((broadcast.clone(), rendition.clone()))
                .or_insert_with(|| probe(cfg, path));
            (
                format!(
                    "{base}/{broadcast}/{rendition}/{seq}.ts?duration={duration}{}{}{}",
                    if *discontinuity { "&discontinuity=1" } else { "" },
                    pdt_ms.map(|t| format!("&pdt={t}")).unwrap_or_default(),
                    info.query()
                ),
                "video/mp2t",
                path.clone(),
                None,
            )
        }
        Job::Thumbnail { broadcast, source } => match make_thumbnail(cfg, source) {
            Some(jpg) => (
                format!("{base}/{broadcast}/thumb.jpg"),
                "image/jpeg",
                jpg.clone(),
                Some(jpg),
            ),
            None => return Outcome::Refused(0),
        },
    };
    let result = put_file(hostport, &path, content_type, &body);
    if let Some(jpg) = made {
        let _ = std::fs::remove_file(jpg);
    }
    match result {
        Ok(status) => classify(status),
        Err(e) => {
            eprintln!("uploader: {}: {e}", path.split('?').next().unwrap_or_default());
            Outcome::Retry
        }
    }
}

/// Runs forever: scan, then upload what is queued, retrying with backoff; scanning goes on while an upload waits.
pub fn run(cfg: Config) -> std::io::Result<()> {
    let (hostport, base) = split_url(&cfg.upload_url)
        .ok_or_else(|| std::io::Error::other("the upload URL must be http://host:port/path"))?;
    std::fs::create_dir_all(&cfg.spool)?;
    // Leftovers of an earlier run belong to broadcasts that are over: the Worker would refuse them anyway.
    for e in std::fs::read_dir(&cfg.spool)?.flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut media: HashMap<(String, String), MediaInfo> = HashMap::new();
    let mut backlog = Backlog::new(cfg.max_backlog);
    // Thumbnails run ffmpeg (a second or more on a busy host): on their own thread, so they never hold up a
    // segment. At most a few wait; a thumbnail that finds the line full is skipped (the next one is 20 s away).
    let (thumbs, thumb_jobs) = std::sync::mpsc::sync_channel::<Job>(4);
    {
        let cfg = cfg.clone();
        let (hostport, base) = (hostport.clone(), base.clone());
        std::thread::spawn(move || {
            for job in thumb_jobs {
                let mut media = HashMap::new();
                for attempt in 0..3 {
                    match upload(&cfg, &hostport, &base, &job, &mut media) {
                        Outcome::Retry => std::thread::sleep(backoff(attempt + 2)),
                        _ => break,
                    }
                }
                let _ = std::fs::remove_file(job.spool_path());
            }
        });
    }
    let mut attempt: u32 = 0;
    let mut retry_at: Option<Instant> = None;
    let mut uploaded: u64 = 0;
    eprintln!(
        "uploader: watching {} -> {}, thumbnails every {:?}",
        cfg.hls_root.display(),
        cfg.upload_url,
        cfg.thumbnail_every
    );
    loop {
        let now = Instant::now();
        for job in scan(&cfg, &mut seen, now) {
            if let Job::Thumbnail { .. } = job {
                if let Err(std::sync::mpsc::TrySendError::Full(job)) = thumbs.try_send(job) {
                    let _ = std::fs::remove_file(job.spool_path());
                }
                continue;
            }
            if let Some(dropped) = backlog.push(job) {
                eprintln!("uploader: backlog full ({}): dropped {dropped:?}", cfg.max_backlog);
                let _ = std::fs::remove_file(dropped.spool_path());
            }
        }
        while let Some(job) = backlog.front() {
            if retry_at.is_some_and(|t| Instant::now() < t) {
                break;
            }
            match upload(&cfg, &hostport, &base, job, &mut media) {
                Outcome::Retry => {
                    let wait = backoff(attempt);
                    attempt += 1;
                    retry_at = Some(Instant::now() + wait);
                    if attempt == 1 || attempt.is_multiple_of(10) {
                        eprintln!(
                            "uploader: worker unreachable or failing; retrying in {wait:?} ({} queued)",
                            backlog.len()
                        );
                    }
                    break;
                }
                outcome => {
                    if let Outcome::Refused(status) = outcome {
                        if status != 0 {
                            eprintln!("uploader: refused with {status}, dropping {job:?}");
                        }
                    } else {
                        uploaded += 1;
                        if attempt > 0 {
                            eprintln!("uploader: worker reachable again; {uploaded} uploaded so far");
                        }
                    }
                    attempt = 0;
                    retry_at = None;
                    if let Some(done) = backlog.pop() {
                        let _ = std::fs::remove_file(done.spool_path());
                    }
                }
            }
        }
        media.retain(|(broadcast, _), _| seen.contains_key(broadcast) || backlog_has(&backlog, broadcast));
        std::thread::sleep(cfg.poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX_PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-TARGETDURATION:2\n\
        #EXTINF:2.000,\n1733112345678.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1.9333,\n1733112347678.ts\n";

    #[test]
    fn nginx_playlists_give_sequence_numbers_durations_and_discontinuities() {
        let segs = parse_playlist(NGINX_PLAYLIST);
        assert_eq!(
            segs,
            vec![
                ListedSegment {
                    seq: 7,
                    duration: "2.000".into(),
                    discontinuity: false,
                    file: "1733112345678.ts".into()
                },
                ListedSegment {
                    seq: 8,
                    duration: "1.933".into(),
                    discontinuity: true,
                    file: "1733112347678.ts".into()
                },
            ]
        );
    }

    #[test]
    fn a_half_written_playlist_lists_only_whole_entries() {
        let segs = parse_playlist("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.000,\n0.ts\n#EXTINF:2.0");
        assert_eq!(segs.len(), 1);
    }

    #[test]
    fn only_broadcast_ids_are_watched() {
        assert!(looks_like_broadcast_id("abcdefghijkmnpqr"));
        assert!(!looks_like_broadcast_id("sk_abcdefghijkmnpqr_x"));
        assert!(!looks_like_broadcast_id("ABCDEFGHIJKMNPQR"));
        assert!(!looks_like_broadcast_id(".."));
    }

    #[test]
    fn the_backlog_drops_its_oldest_job_when_full() {
        let job = |seq| Job::Segment {
            broadcast: "b".into(),
            rendition: "source".into(),
            seq,
            duration: "2".into(),
            discontinuity: false,
            pdt_ms: None,
            path: PathBuf::from(format!("{seq}")),
        };
        let mut b = Backlog::new(2);
        assert!(b.push(job(1)).is_none());
        assert!(b.push(job(2)).is_none());
        assert_eq!(b.push(job(3)), Some(job(1)));
        assert_eq!(b.pop(), Some(job(2)));
    }

    #[test]
    fn ffprobe_output_becomes_resolution_frame_rate_and_rfc6381_codecs() {
        let out = "codec_name=h264|profile=High|codec_type=video|width=854|height=480|level=31|\
                   r_frame_rate=30/1|avg_frame_rate=30/1\n\
                   codec_name=aac|profile=LC|codec_type=audio|width=|height=|level=-99|r_frame_rate=0/0|avg_frame_rate=0/0\n\
                   codec_name=h264|profile=High|codec_type=video|width=854|height=480|level=31|r_frame_rate=30/1\n\
                   codec_name=aac|profile=LC|codec_type=audio\n";
        let info = parse_probe(out);
        assert_eq!(info.width, Some(854));
        assert_eq!(info.height, Some(480));
        assert_eq!(info.fps.as_deref(), Some("30.000"));
        assert_eq!(info.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
        assert_eq!(
            info.query(),
            "&width=854&height=480&fps=30.000&codecs=avc1.64001f%2Cmp4a.40.2"
        );
        let audio = parse_probe("codec_name=aac|profile=HE-AAC|codec_type=audio\n");
        assert_eq!(audio.query(), "&codecs=mp4a.40.5");
        // nginx-rtmp's segments of an audio-only publish still declare an (empty) H.264 stream.
        let nginx_audio_only = parse_probe(
            "codec_name=h264|profile=unknown|codec_type=video|width=0|height=0|level=-99|r_frame_rate=0/0\n\
             codec_name=aac|profile=LC|codec_type=audio|width=|height=\n",
        );
        assert_eq!(nginx_audio_only.query(), "&codecs=mp4a.40.2");
        assert_eq!(frame_rate("30000/1001").as_deref(), Some("29.970"));
        assert_eq!(frame_rate("0/0"), None);
    }

    #[test]
    fn a_segment_began_its_duration_before_it_was_last_written() {
        let dir = std::env::temp_dir().join(format!("uploader-pdt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("0.ts");
        std::fs::write(&f, "x").unwrap();
        let t = first_frame_ms(&f, "2.000").unwrap();
        let now = now_ms();
        assert!(t <= now - 2000 + 50 && t + 3000 > now - 2000, "{t} vs {now}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn retries_back_off_up_to_five_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(1000));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn client_errors_are_final_and_everything_else_is_retried() {
        assert_eq!(classify(201), Outcome::Done);
        assert_eq!(classify(200), Outcome::Done);
        assert_eq!(classify(409), Outcome::Refused(409));
        assert_eq!(classify(422), Outcome::Refused(422));
        assert_eq!(classify(429), Outcome::Retry);
        assert_eq!(classify(502), Outcome::Retry);
        assert_eq!(classify(503), Outcome::Retry);
    }

    #[test]
    fn upload_urls_are_plain_http_with_a_port() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/_worker/hls"),
            Some(("127.0.0.1:8080".into(), "/_worker/hls".into()))
        );
        assert_eq!(split_url("https://x/y"), None);
    }

    #[test]
    fn a_put_reaches_a_server_with_its_length_and_the_status_comes_back() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("hello") {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let dir = std::env::temp_dir().join(format!("uploader-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.ts");
        std::fs::write(&f, "hello").unwrap();
        let status = put_file(&format!("127.0.0.1:{port}"), "/up/b/1.ts?duration=2", "video/mp2t", &f).unwrap();
        assert_eq!(status, 201);
        let request = server.join().unwrap();
        assert!(
            request.starts_with("PUT /up/b/1.ts?duration=2 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("Content-Length: 5\r\n"), "{request}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
