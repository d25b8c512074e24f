//! The origin's uploader: the transcoder (src/transcoder.rs, one ffmpeg per publish) writes each broadcast's HLS
//! into `<hls root>/<broadcast id>/<rendition>/` (`source`, `480p`, ...); this watches those directories, and every
//! segment listed in a rendition's playlist is uploaded once, in order within its rendition, to the Worker
//! (`PUT <upload url>/<broadcast id>/<rendition>/<seq>.ts?duration=..&pdt=..`, with the rendition's resolution,
//! frame rate and codecs read once by ffprobe), plus a JPEG thumbnail of the newest source segment about every
//! 20 s. `pdt` is the wall-clock time the segment's first frame reached the origin (the same for segment k of every
//! rendition), for the playlists' `#EXT-X-PROGRAM-DATE-TIME`. The upload URL is the origin's own local proxy
//! location, which adds the origin token, so no secret is in this process's arguments or environment.
//!
//! Concurrency: each (broadcast, rendition) is a lane, a FIFO of its segments in sequence order. A small pool of
//! upload threads (`--upload-threads`) uploads the lanes at once, one thread per lane at a time, so a slow or
//! failing upload holds back only the later segments of its own rendition, never another rendition or another
//! broadcast; the scan loop only queues (it polls every `--poll-ms` whatever the uploads do). Order matters only
//! within a lane: the Worker marks a discontinuity when a segment's predecessor in its rendition never arrived.
//!
//! Robustness: a segment is hard-linked into a spool directory the moment it is listed, so nginx's `hls_cleanup`
//! cannot delete it while the Worker is unreachable; a failed upload (5xx, no connection) is retried with
//! exponential backoff at the head of its lane (so the lane's order is kept, and other lanes go on); the backlog
//! is bounded over all lanes together (`--max-backlog`: the oldest queued segment not in flight is dropped first,
//! and the Worker marks the gap as a discontinuity); a 4xx answer (the broadcast ended long ago, the file was
//! refused) drops the job for good.

pub mod simulcast;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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

/// A lane: one broadcast's rendition (`(broadcast id, rendition)`). Its segments are uploaded in sequence order, by
/// one thread at a time; different lanes go up at once.
pub type LaneKey = (String, String);

impl Job {
    pub fn spool_path(&self) -> &Path {
        match self {
            Job::Segment { path, .. } => path,
            Job::Thumbnail { source, .. } => source,
        }
    }

    /// The lane this job is uploaded in (a thumbnail has a lane of its own per broadcast).
    pub fn lane(&self) -> LaneKey {
        match self {
            Job::Segment {
                broadcast, rendition, ..
            } => (broadcast.clone(), rendition.clone()),
            Job::Thumbnail { broadcast, .. } => (broadcast.clone(), "thumb".to_string()),
        }
    }

    /// `<broadcast>/<rendition>/<seq>.ts` or `<broadcast>/thumb.jpg`, for log lines (broadcast ids are public; the
    /// uploader never sees a stream key).
    pub fn describe(&self) -> String {
        match self {
            Job::Segment {
                broadcast,
                rendition,
                seq,
                ..
            } => format!("{broadcast}/{rendition}/{seq}.ts"),
            Job::Thumbnail { broadcast, .. } => format!("{broadcast}/thumb.jpg"),
        }
    }
}

#[derive(Default)]
struct Lane {
    /// Oldest first, each with its ticket (the order it was queued in among all lanes).
    jobs: VecDeque<(u64, Job)>,
    /// A thread is uploading the head: no other thread takes this lane, and the head is never dropped.
    busy: bool,
    /// Failed attempts at the head so far (0 once it went through or was refused).
    attempt: u32,
    /// While the head waits out its backoff: when it may be tried again.
    retry_at: Option<Instant>,
    /// The rendition's media details, probed once from its first segment (None until then).
    media: Option<MediaInfo>,
}

/// An upload handed to a thread by [`Lanes::take`]: its lane is busy until [`Lanes::finish`].
#[derive(Debug)]
pub struct Taken {
    pub lane: LaneKey,
    pub job: Job,
    /// The lane's cached media details (None: not probed yet); given back to `finish`.
    pub media: Option<MediaInfo>,
}

/// What [`Lanes::finish`] did with a lane's head.
#[derive(Debug, PartialEq)]
pub enum Finished {
    /// Uploaded; `after` failed attempts came first (0 normally).
    Done { job: Job, after: u32 },
    /// Refused for good (4xx; 0: nothing could be sent, already logged) and dropped.
    Refused { job: Job, status: u16 },
    /// Kept at the head of its lane, to be tried again after `wait` (this was failed attempt `attempt`).
    Retry {
        job: Job,
        attempt: u32,
        wait: Duration,
        queued_in_lane: usize,
    },
}

/// The upload queues: one FIFO lane per (broadcast, rendition), with one bound on all their jobs together
/// (`--max-backlog`): past it the oldest queued job that is not being uploaded, in whichever lane, is dropped (the
/// Worker marks the gap as a discontinuity). A lane in trouble is the one whose jobs age, so its jobs go first and
/// healthy lanes keep theirs.
pub struct Lanes {
    lanes: HashMap<LaneKey, Lane>,
    queued: usize,
    max: usize,
    next_ticket: u64,
}

impl Lanes {
    pub fn new(max: usize) -> Lanes {
        Lanes {
            lanes: HashMap::new(),
            queued: 0,
            max: max.max(1),
            next_ticket: 0,
        }
    }

    /// Queues a job at the end of its lane. Returns the job dropped to keep within the bound, if one was (its
    /// spool file is the caller's to remove).
    pub fn push(&mut self, job: Job) -> Option<Job> {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.lanes.entry(job.lane()).or_default().jobs.push_back((ticket, job));
        self.queued += 1;
        if self.queued <= self.max {
            return None;
        }
        // The oldest job no thread is uploading: a busy lane's head is in flight, its second is the candidate.
        let oldest = self
            .lanes
            .iter()
            .filter_map(|(key, lane)| lane.jobs.get(usize::from(lane.busy)).map(|(t, _)| (*t, key)))
            .min()
            .map(|(_, key)| key.clone())?;
        let lane = self.lanes.get_mut(&oldest)?;
        let dropped = lane.jobs.remove(usize::from(lane.busy)).map(|(_, job)| job);
        if dropped.is_some() {
            self.queued -= 1;
            if !lane.busy {
                // A new head starts its own retries.
                lane.attempt = 0;
                lane.retry_at = None;
            }
        }
        dropped
    }

    /// The next upload: the head of a lane that no thread is uploading and that is not waiting out a backoff, the
    /// one queued first among them (so lanes take turns in arrival order). Its lane is busy until `finish`.
    /// `Err(Some(t))`: nothing ready before `t` (a backoff ends); `Err(None)`: nothing queued that is not in flight.
    pub fn take(&mut self, now: Instant) -> Result<Taken, Option<Instant>> {
        let mut best: Option<(u64, &LaneKey)> = None;
        let mut next_retry: Option<Instant> = None;
        for (key, lane) in &self.lanes {
            let Some((ticket, _)) = lane.jobs.front() else {
                continue;
            };
            if lane.busy {
                continue;
            }
            match lane.retry_at {
                Some(t) if t > now => next_retry = Some(next_retry.map_or(t, |n| n.min(t))),
                _ => {
                    if best.is_none_or(|(b, _)| *ticket < b) {
                        best = Some((*ticket, key));
                    }
                }
            }
        }
        let Some((_, key)) = best else {
            return Err(next_retry);
        };
        let key = key.clone();
        let lane = self.lanes.get_mut(&key).ok_or(None)?;
        lane.busy = true;
        let job = lane.jobs.front().map(|(_, j)| j.clone()).ok_or(None)?;
        Ok(Taken {
            lane: key,
            job,
            media: lane.media.clone(),
        })
    }

    /// Ends the upload `take` handed out: `Done` and `Refused` remove the head, `Retry` keeps it and starts its
    /// backoff. `media` is the lane's media details as the upload left them (probed on its first segment). None
    /// only for a lane that was not taken.
    pub fn finish(
        &mut self,
        lane_key: &LaneKey,
        media: Option<MediaInfo>,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Finished> {
        let lane = self.lanes.get_mut(lane_key)?;
        lane.busy = false;
        if media.is_some() {
            lane.media = media;
        }
        if let Outcome::Retry = outcome {
            let wait = backoff(lane.attempt);
            lane.attempt += 1;
            lane.retry_at = Some(now + wait);
            return Some(Finished::Retry {
                job: lane.jobs.front()?.1.clone(),
                attempt: lane.attempt,
                wait,
                queued_in_lane: lane.jobs.len(),
            });
        }
        let after = std::mem::take(&mut lane.attempt);
        lane.retry_at = None;
        let (_, job) = lane.jobs.pop_front()?;
        self.queued -= 1;
        Some(match outcome {
            Outcome::Refused(status) => Finished::Refused { job, status },
            _ => Finished::Done { job, after },
        })
    }

    /// Jobs queued in every lane, those in flight included.
    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Forgets the idle, empty lanes (and their media details) of broadcasts `keep` says are gone.
    pub fn forget_finished(&mut self, keep: impl Fn(&str) -> bool) {
        self.lanes
            .retain(|(broadcast, _), lane| lane.busy || !lane.jobs.is_empty() || keep(broadcast));
    }
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
    /// Segments queued in all lanes together (in flight included) before the oldest are dropped.
    pub max_backlog: usize,
    /// Upload threads: at most this many lanes upload at once.
    pub upload_threads: usize,
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

/// Uploads one job; `Retry` leaves it at the head of its lane. `media` is the lane's cache of its rendition's
/// probe (filled on its first segment).
fn upload(cfg: &Config, hostport: &str, base: &str, job: &Job, media: &mut Option<MediaInfo>) -> Outcome {
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
            let info = media.get_or_insert_with(|| probe(cfg, path));
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
    if !body.is_file() {
        // Nothing to send, now or later (a spool emptied by hand): retrying would only hold up the lane.
        eprintln!("uploader: {}: the file to send is gone; dropped", job.describe());
        return Outcome::Refused(0);
    }
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

/// Makes one upload: the job, and its lane's media details (probed on first use and kept by the lane). `upload`
/// in the uploader; the host tests give it the same with their own server.
pub type SendFn = dyn Fn(&Job, &mut Option<MediaInfo>) -> Outcome + Send + Sync;

struct PoolState {
    lanes: Lanes,
    closed: bool,
    uploaded: u64,
}

struct Shared {
    state: Mutex<PoolState>,
    /// Signalled when a job is queued, a lane is released, or the pool closes.
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The upload threads (`--upload-threads`): each takes the head of a ready lane (see [`Lanes::take`]), uploads it
/// with no lock held, and hands back the outcome; a lane is never uploaded by two threads at once, so its segments
/// reach the Worker in sequence order, while other lanes go up at once. Queuing (`push`) only takes the lock for a
/// moment, so the scan loop never waits for an upload.
pub struct UploadPool {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    max: usize,
}

impl UploadPool {
    pub fn start(threads: usize, max_backlog: usize, send: Arc<SendFn>) -> std::io::Result<UploadPool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(PoolState {
                lanes: Lanes::new(max_backlog),
                closed: false,
                uploaded: 0,
            }),
            wake: Condvar::new(),
        });
        let mut pool = UploadPool {
            shared: shared.clone(),
            threads: Vec::new(),
            max: max_backlog.max(1),
        };
        for i in 0..threads.max(1) {
            let (shared, send) = (shared.clone(), send.clone());
            let thread = std::thread::Builder::new()
                .name(format!("upload-{i}"))
                .spawn(move || upload_thread(&shared, &*send));
            match thread {
                Ok(t) => pool.threads.push(t),
                Err(e) => {
                    pool.stop();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Queues jobs, each at the end of its lane, dropping the oldest past the bound (logged, spool file removed).
    pub fn push(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut dropped = Vec::new();
        {
            let mut st = lock(&self.shared.state);
            for job in jobs {
                dropped.extend(st.lanes.push(job));
            }
        }
        self.shared.wake.notify_all();
        for job in dropped {
            eprintln!(
                "uploader: backlog full ({} queued): dropped {}",
                self.max,
                job.describe()
            );
            let _ = std::fs::remove_file(job.spool_path());
        }
    }

    /// Jobs queued, those in flight included.
    pub fn queued(&self) -> usize {
        lock(&self.shared.state).lanes.len()
    }

    /// Uploads that went through since the start.
    pub fn uploaded(&self) -> u64 {
        lock(&self.shared.state).uploaded
    }

    /// Forgets the idle lanes (and their media details) of broadcasts that are gone.
    pub fn forget_finished(&self, keep: impl Fn(&str) -> bool) {
        lock(&self.shared.state).lanes.forget_finished(keep);
    }

    /// Ends the threads once the uploads in flight are over; what is still queued stays in the spool.
    pub fn stop(mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The next upload for a thread, waiting for one (None once the pool is closed).
fn next_upload(shared: &Shared) -> Option<Taken> {
    let mut st = lock(&shared.state);
    loop {
        if st.closed {
            return None;
        }
        let now = Instant::now();
        st = match st.lanes.take(now) {
            Ok(taken) => return Some(taken),
            Err(Some(at)) => shared
                .wake
                .wait_timeout(st, at.saturating_duration_since(now))
                .map_or_else(|e| e.into_inner().0, |(g, _)| g),
            Err(None) => shared.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

fn upload_thread(shared: &Shared, send: &SendFn) {
    while let Some(taken) = next_upload(shared) {
        let mut media = taken.media;
        let outcome = send(&taken.job, &mut media);
        let (finished, uploaded) = {
            let mut st = lock(&shared.state);
            let finished = st.lanes.finish(&taken.lane, media, outcome, Instant::now());
            if let Some(Finished::Done { .. }) = finished {
                st.uploaded += 1;
            }
            (finished, st.uploaded)
        };
        // The lane is free again: another thread may take its next segment while this one picks the oldest head.
        shared.wake.notify_one();
        match finished {
            Some(Finished::Done { job, after }) => {
                if after > 0 {
                    eprintln!(
                        "uploader: worker reachable again: {} went through after {after} failed attempts; \
                         {uploaded} uploaded so far",
                        job.describe()
                    );
                }
                let _ = std::fs::remove_file(job.spool_path());
            }
            Some(Finished::Refused { job, status }) => {
                if status != 0 {
                    eprintln!("uploader: refused with {status}, dropping {}", job.describe());
                }
                let _ = std::fs::remove_file(job.spool_path());
            }
            Some(Finished::Retry {
                job,
                attempt,
                wait,
                queued_in_lane,
            }) if attempt == 1 || attempt.is_multiple_of(10) => {
                eprintln!(
                    "uploader: worker unreachable or failing for {}; retrying in {wait:?} (attempt {attempt}, \
                     {queued_in_lane} queued in its rendition)",
                    job.describe()
                );
            }
            Some(Finished::Retry { .. }) | None => {}
        }
    }
}

/// Runs forever: scans every `--poll-ms` and queues what it finds; the upload threads send it (see
/// [`UploadPool`]), so scanning never waits for an upload.
pub fn run(cfg: Config) -> std::io::Result<()> {
    run_until(cfg, &AtomicBool::new(false))
}

/// [`run`] until `stop` is set (the host tests end it so): the upload threads finish the uploads in flight and
/// end; anything still queued stays in the spool.
pub fn run_until(cfg: Config, stop: &AtomicBool) -> std::io::Result<()> {
    let (hostport, base) = split_url(&cfg.upload_url)
        .ok_or_else(|| std::io::Error::other("the upload URL must be http://host:port/path"))?;
    std::fs::create_dir_all(&cfg.spool)?;
    // Leftovers of an earlier run belong to broadcasts that are over: the Worker would refuse them anyway.
    for e in std::fs::read_dir(&cfg.spool)?.flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    let mut seen: HashMap<String, Seen> = HashMap::new();
    // Thumbnails run ffmpeg (a second or more on a busy host): on their own thread, so they never hold up a
    // segment. At most a few wait; a thumbnail that finds the line full is skipped (the next one is 20 s away).
    let (thumbs, thumb_jobs) = std::sync::mpsc::sync_channel::<Job>(4);
    {
        let cfg = cfg.clone();
        let (hostport, base) = (hostport.clone(), base.clone());
        std::thread::spawn(move || {
            for job in thumb_jobs {
                for attempt in 0..3 {
                    match upload(&cfg, &hostport, &base, &job, &mut None) {
                        Outcome::Retry => std::thread::sleep(backoff(attempt + 2)),
                        _ => break,
                    }
                }
                let _ = std::fs::remove_file(job.spool_path());
            }
        });
    }
    let send: Arc<SendFn> = {
        let cfg = cfg.clone();
        Arc::new(move |job: &Job, media: &mut Option<MediaInfo>| upload(&cfg, &hostport, &base, job, media))
    };
    let pool = UploadPool::start(cfg.upload_threads, cfg.max_backlog, send)?;
    eprintln!(
        "uploader: watching {} -> {}, {} upload threads, at most {} queued, thumbnails every {:?}",
        cfg.hls_root.display(),
        cfg.upload_url,
        cfg.upload_threads.max(1),
        cfg.max_backlog.max(1),
        cfg.thumbnail_every
    );
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut segments = Vec::new();
        for job in scan(&cfg, &mut seen, now) {
            match job {
                Job::Thumbnail { .. } => {
                    if let Err(std::sync::mpsc::TrySendError::Full(job)) = thumbs.try_send(job) {
                        let _ = std::fs::remove_file(job.spool_path());
                    }
                }
                Job::Segment { .. } => segments.push(job),
            }
        }
        pool.push(segments);
        pool.forget_finished(|broadcast| seen.contains_key(broadcast));
        std::thread::sleep(cfg.poll);
    }
    pool.stop();
    Ok(())
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

    fn seg(broadcast: &str, rendition: &str, seq: u32) -> Job {
        Job::Segment {
            broadcast: broadcast.into(),
            rendition: rendition.into(),
            seq,
            duration: "2".into(),
            discontinuity: false,
            pdt_ms: None,
            path: PathBuf::from(format!("{broadcast}-{rendition}-{seq}.ts")),
        }
    }

    fn seq_of(job: &Job) -> u32 {
        match job {
            Job::Segment { seq, .. } => *seq,
            Job::Thumbnail { .. } => u32::MAX,
        }
    }

    #[test]
    fn lanes_go_in_sequence_order_each_to_one_thread_at_a_time_the_first_queued_first() {
        let mut lanes = Lanes::new(100);
        let now = Instant::now();
        lanes.push(seg("a", "source", 0));
        lanes.push(seg("a", "source", 1));
        lanes.push(seg("b", "source", 0));
        lanes.push(seg("a", "480p", 0));
        // The oldest head first; a busy lane is not handed out again.
        let a0 = lanes.take(now).unwrap();
        assert_eq!(a0.job, seg("a", "source", 0));
        let b0 = lanes.take(now).unwrap();
        assert_eq!(b0.job, seg("b", "source", 0));
        let a480 = lanes.take(now).unwrap();
        assert_eq!(a480.job, seg("a", "480p", 0));
        assert_eq!(
            lanes.take(now).unwrap_err(),
            None,
            "a/source is busy: its second segment waits"
        );
        // The media details a thread probed stay with the lane.
        let info = MediaInfo {
            width: Some(640),
            ..MediaInfo::default()
        };
        let done = lanes.finish(&a0.lane, Some(info.clone()), Outcome::Done, now).unwrap();
        assert_eq!(
            done,
            Finished::Done {
                job: seg("a", "source", 0),
                after: 0
            }
        );
        let a1 = lanes.take(now).unwrap();
        assert_eq!(a1.job, seg("a", "source", 1));
        assert_eq!(a1.media, Some(info));
        assert_eq!(lanes.len(), 3);
        // A retry keeps the head and holds its lane back for the backoff, and only its lane.
        let retry = lanes.finish(&b0.lane, None, Outcome::Retry, now).unwrap();
        assert!(
            matches!(retry, Finished::Retry { attempt: 1, wait, queued_in_lane: 1, .. } if wait == backoff(0)),
            "{retry:?}"
        );
        lanes.push(seg("c", "source", 0));
        let c0 = lanes.take(now).unwrap();
        assert_eq!(c0.job, seg("c", "source", 0));
        assert_eq!(lanes.take(now).unwrap_err(), Some(now + backoff(0)));
        let again = lanes.take(now + backoff(0)).unwrap();
        assert_eq!(again.job, seg("b", "source", 0));
        let retry = lanes.finish(&again.lane, None, Outcome::Retry, now).unwrap();
        assert!(matches!(retry, Finished::Retry { attempt: 2, wait, .. } if wait == backoff(1)));
        let again = lanes.take(now + backoff(1)).unwrap();
        let done = lanes.finish(&again.lane, None, Outcome::Done, now).unwrap();
        assert_eq!(
            done,
            Finished::Done {
                job: seg("b", "source", 0),
                after: 2
            }
        );
        // A refusal is final: the head goes.
        let refused = lanes.finish(&a1.lane, None, Outcome::Refused(410), now).unwrap();
        assert_eq!(
            refused,
            Finished::Refused {
                job: seg("a", "source", 1),
                status: 410
            }
        );
        assert_eq!(lanes.len(), 2);
        // Idle, empty lanes of broadcasts that are gone are forgotten with their media details; busy ones stay.
        lanes.forget_finished(|b| b == "c");
        assert!(lanes.lanes.contains_key(&("a".to_string(), "480p".to_string())));
        assert!(!lanes.lanes.contains_key(&("a".to_string(), "source".to_string())));
        assert!(!lanes.lanes.contains_key(&("b".to_string(), "source".to_string())));
    }

    #[test]
    fn the_bound_covers_every_lane_and_drops_the_oldest_job_not_in_flight() {
        let mut b = Lanes::new(2);
        let now = Instant::now();
        assert!(b.push(seg("a", "source", 1)).is_none());
        let in_flight = b.take(now).unwrap();
        assert!(b.push(seg("a", "source", 2)).is_none());
        // Three queued: a/source/1 is being uploaded, so its successor is the oldest that can go.
        assert_eq!(b.push(seg("b", "source", 1)), Some(seg("a", "source", 2)));
        assert_eq!(b.push(seg("b", "source", 2)), Some(seg("b", "source", 1)));
        assert_eq!(b.len(), 2);
        // The upload in flight ends normally; then an idle lane's head is fair game too.
        b.finish(&in_flight.lane, None, Outcome::Done, now).unwrap();
        assert!(b.push(seg("a", "source", 3)).is_none());
        assert_eq!(b.push(seg("a", "source", 4)), Some(seg("b", "source", 2)));
        assert_eq!(seq_of(&b.take(now).unwrap().job), 3);
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

    /// What a test server saw: each request's path (no query) when it arrived, and when and how it was answered
    /// (None: the connection was closed without an answer).
    #[derive(Default)]
    struct Record {
        arrived: Vec<(String, Instant)>,
        answered: Vec<(String, Option<u16>, Instant)>,
        /// Per lane (`.../<broadcast>/<rendition>`): requests in flight now, and the most there ever were.
        in_flight: HashMap<String, (usize, usize)>,
    }

    type Answer = dyn Fn(&str, usize) -> (Option<u16>, Duration) + Send + Sync;

    /// A local HTTP server taking PUTs, a thread per connection (so slow answers overlap, as the Worker's do).
    /// `answer(path, attempts before this one)` says what to answer and after how long.
    struct TestServer {
        hostport: String,
        seen: Arc<Mutex<Record>>,
    }

    impl TestServer {
        fn start(answer: impl Fn(&str, usize) -> (Option<u16>, Duration) + Send + Sync + 'static) -> TestServer {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let hostport = listener.local_addr().unwrap().to_string();
            let seen = Arc::new(Mutex::new(Record::default()));
            let answer: Arc<Answer> = Arc::new(answer);
            let shared = seen.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let (seen, answer) = (shared.clone(), answer.clone());
                    std::thread::spawn(move || TestServer::handle(conn, &seen, &*answer));
                }
            });
            TestServer { hostport, seen }
        }

        fn handle(conn: TcpStream, seen: &Mutex<Record>, answer: &Answer) {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap()
                .to_string();
            let mut len = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let lane = path.rsplit_once('/').unwrap().0.to_string();
            let before = {
                let mut s = seen.lock().unwrap();
                let before = s.arrived.iter().filter(|(p, _)| *p == path).count();
                s.arrived.push((path.clone(), Instant::now()));
                let (now, most) = s.in_flight.entry(lane.clone()).or_default();
                *now += 1;
                *most = (*most).max(*now);
                before
            };
            let (status, delay) = answer(&path, before);
            std::thread::sleep(delay);
            {
                // Recorded before the client can read the answer, so its next request comes after.
                let mut s = seen.lock().unwrap();
                s.in_flight.get_mut(&lane).unwrap().0 -= 1;
                s.answered.push((path.clone(), status, Instant::now()));
            }
            if let Some(status) = status {
                let mut conn = conn;
                let _ = conn.write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes());
            }
        }

        /// Paths of the requests that arrived, in order, whose path starts with `prefix`.
        fn arrivals(&self, prefix: &str) -> Vec<String> {
            let s = self.seen.lock().unwrap();
            s.arrived
                .iter()
                .filter(|(p, _)| p.starts_with(prefix))
                .map(|(p, _)| p.clone())
                .collect()
        }

        /// When each request under `prefix` was answered with a 2xx, in order.
        fn successes(&self, prefix: &str) -> Vec<(String, Instant)> {
            let s = self.seen.lock().unwrap();
            s.answered
                .iter()
                .filter(|(p, st, _)| p.starts_with(prefix) && st.is_some_and(|c| (200..300).contains(&c)))
                .map(|(p, _, t)| (p.clone(), *t))
                .collect()
        }

        fn most_in_flight_in_one_lane(&self) -> usize {
            let s = self.seen.lock().unwrap();
            s.in_flight.values().map(|(_, most)| *most).max().unwrap_or(0)
        }

        /// Waits until `done` holds (up to `limit`), panicking with `what` otherwise.
        fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&TestServer) -> bool) {
            let until = Instant::now() + limit;
            while !done(self) {
                assert!(Instant::now() < until, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    const A: &str = "aaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbb";

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("uploader-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn test_config(root: &Path, hostport: &str, threads: usize, max_backlog: usize) -> Config {
        Config {
            hls_root: root.join("hls"),
            spool: root.join("spool"),
            upload_url: format!("http://{hostport}/up"),
            // No thumbnail can be made here (it is skipped), and the probe finds nothing (uploads go on without).
            ffmpeg: "false".into(),
            ffprobe: "true".into(),
            poll: Duration::from_millis(20),
            thumbnail_every: Duration::from_secs(3600),
            max_backlog,
            upload_threads: threads,
        }
    }

    /// Writes `<hls>/<broadcast>/<rendition>/` as the transcoder does: segments 0..count, then the playlist listing
    /// them.
    fn write_rendition(hls: &Path, broadcast: &str, rendition: &str, count: u32) {
        let dir = hls.join(broadcast).join(rendition);
        std::fs::create_dir_all(&dir).unwrap();
        let mut playlist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-TARGETDURATION:2\n".to_string();
        for seq in 0..count {
            std::fs::write(dir.join(format!("{seq}.ts")), format!("segment {seq}")).unwrap();
            playlist.push_str(&format!("#EXTINF:2.000,\n{seq}.ts\n"));
        }
        let tmp = dir.join("index.m3u8.tmp");
        std::fs::write(&tmp, playlist).unwrap();
        std::fs::rename(tmp, dir.join("index.m3u8")).unwrap();
    }

    /// A pool with the uploader's own `upload` (real PUTs to the test server).
    fn pool_with(cfg: &Config) -> UploadPool {
        let (hostport, base) = split_url(&cfg.upload_url).unwrap();
        let cfg2 = cfg.clone();
        let send: Arc<SendFn> =
            Arc::new(move |job: &Job, media: &mut Option<MediaInfo>| upload(&cfg2, &hostport, &base, job, media));
        UploadPool::start(cfg.upload_threads, cfg.max_backlog, send).unwrap()
    }

    fn spooled(cfg: &Config, broadcast: &str, rendition: &str, seq: u32) -> Job {
        std::fs::create_dir_all(&cfg.spool).unwrap();
        let path = cfg.spool.join(format!("{broadcast}-{rendition}-{seq}.ts"));
        std::fs::write(&path, format!("segment {seq}")).unwrap();
        Job::Segment {
            broadcast: broadcast.into(),
            rendition: rendition.into(),
            seq,
            duration: "2.000".into(),
            discontinuity: false,
            pdt_ms: None,
            path,
        }
    }

    fn path_of(broadcast: &str, rendition: &str, seq: u32) -> String {
        format!("/up/{broadcast}/{rendition}/{seq}.ts")
    }

    #[test]
    fn a_stalled_broadcast_holds_up_neither_another_broadcast_nor_the_scan() {
        // Every request for A takes 2 s; B's are answered at once.
        let server = TestServer::start(|path, _| {
            let stall = if path.contains(A) { 2000 } else { 0 };
            (Some(201), Duration::from_millis(stall))
        });
        let root = temp_dir("stall");
        let cfg = test_config(&root, &server.hostport, 4, 150);
        write_rendition(&cfg.hls_root, A, "source", 3);
        write_rendition(&cfg.hls_root, B, "source", 5);
        write_rendition(&cfg.hls_root, B, "480p", 5);
        let stop = Arc::new(AtomicBool::new(false));
        let uploader = {
            let (cfg, stop) = (cfg.clone(), stop.clone());
            std::thread::spawn(move || run_until(cfg, &stop))
        };
        server.wait_for("B's ten segments", Duration::from_secs(10), |s| {
            s.successes(&format!("/up/{B}/")).len() == 10
        });
        // While A's first upload is still stalled, the scan finds a new segment of B and it goes up too.
        write_rendition(&cfg.hls_root, B, "source", 6);
        server.wait_for("B's sixth source segment", Duration::from_secs(10), |s| {
            s.successes(&path_of(B, "source", 5)).len() == 1
        });
        let b_done = server
            .successes(&format!("/up/{B}/"))
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap();
        server.wait_for("A's three segments", Duration::from_secs(15), |s| {
            s.successes(&format!("/up/{A}/")).len() == 3
        });
        let a_first = server.successes(&format!("/up/{A}/"))[0].1;
        assert!(
            b_done < a_first,
            "B's last upload ended {:?} after A's first: B waited behind A",
            b_done.duration_since(a_first)
        );
        // Each rendition's segments went up in order, one at a time; B's renditions went at once beside A's.
        for (broadcast, rendition, n) in [(A, "source", 3), (B, "source", 6), (B, "480p", 5)] {
            let expected: Vec<String> = (0..n).map(|seq| path_of(broadcast, rendition, seq)).collect();
            assert_eq!(server.arrivals(&format!("/up/{broadcast}/{rendition}/")), expected);
        }
        assert_eq!(server.most_in_flight_in_one_lane(), 1);
        stop.store(true, Ordering::Relaxed);
        uploader.join().unwrap().unwrap();
        // Every uploaded segment's spool file is gone (the thumbnail's too: ffmpeg "false" made none).
        let left: Vec<_> = std::fs::read_dir(&cfg.spool)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_lane_puts_its_segments_in_sequence_order_through_retries_and_refusals() {
        // 1: a 503 first; 3: the connection closed without an answer first; 4: refused for good (410).
        let server = TestServer::start(|path, before| {
            let status = match (path.rsplit('/').next().unwrap(), before) {
                ("1.ts", 0) => Some(503),
                ("3.ts", 0) => None,
                ("4.ts", _) => Some(410),
                _ => Some(201),
            };
            (status, Duration::ZERO)
        });
        let root = temp_dir("order");
        let cfg = test_config(&root, &server.hostport, 4, 150);
        let pool = pool_with(&cfg);
        pool.push((0..6).map(|seq| spooled(&cfg, A, "source", seq)));
        server.wait_for("the last segment", Duration::from_secs(10), |s| {
            s.successes(&path_of(A, "source", 5)).len() == 1
        });
        let arrived: Vec<String> = server.arrivals("/up/");
        let expected: Vec<String> = [0, 1, 1, 2, 3, 3, 4, 5]
            .iter()
            .map(|seq| path_of(A, "source", *seq))
            .collect();
        assert_eq!(
            arrived, expected,
            "each segment after the one before it went through or was refused"
        );
        assert_eq!(server.most_in_flight_in_one_lane(), 1);
        // Uploaded and refused alike, no spool file is left.
        let until = Instant::now() + Duration::from_secs(5);
        while pool.queued() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(pool.queued(), 0);
        assert_eq!(pool.uploaded(), 5);
        assert_eq!(std::fs::read_dir(&cfg.spool).unwrap().count(), 0);
        pool.stop();
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_lane_retrying_holds_up_no_other_lane_and_resumes_in_order() {
        // A's uploads fail (502, as the proxy answers while the Worker is down) until `a_back` is set.
        let a_back = Arc::new(AtomicBool::new(false));
        let server = {
            let a_back = a_back.clone();
            TestServer::start(move |path, _| {
                let down = path.contains(A) && !a_back.load(Ordering::SeqCst);
                (Some(if down { 502 } else { 201 }), Duration::ZERO)
            })
        };
        let root = temp_dir("retry");
        let cfg = test_config(&root, &server.hostport, 2, 150);
        let pool = pool_with(&cfg);
        pool.push((0..3).map(|seq| spooled(&cfg, A, "source", seq)));
        server.wait_for("A's first attempt", Duration::from_secs(5), |s| {
            !s.arrivals(&format!("/up/{A}/")).is_empty()
        });
        // B's segments come after A's and go through while A's head waits out its backoff.
        pool.push((0..6).map(|seq| spooled(&cfg, B, "source", seq)));
        server.wait_for("B's segments", Duration::from_secs(5), |s| {
            s.successes(&format!("/up/{B}/")).len() == 6
        });
        assert!(server.successes(&format!("/up/{A}/")).is_empty());
        let a_tries = server.arrivals(&format!("/up/{A}/"));
        assert!(a_tries.iter().all(|p| *p == path_of(A, "source", 0)), "{a_tries:?}");
        // The Worker is back: A resumes with its head, in order, nothing lost.
        a_back.store(true, Ordering::SeqCst);
        server.wait_for("A's segments", Duration::from_secs(10), |s| {
            s.successes(&format!("/up/{A}/")).len() == 3
        });
        let a_done: Vec<String> = server
            .successes(&format!("/up/{A}/"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(a_done, (0..3).map(|seq| path_of(A, "source", seq)).collect::<Vec<_>>());
        let b_done: Vec<String> = server
            .successes(&format!("/up/{B}/"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(b_done, (0..6).map(|seq| path_of(B, "source", seq)).collect::<Vec<_>>());
        assert_eq!(server.most_in_flight_in_one_lane(), 1);
        pool.stop();
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn past_the_backlog_the_oldest_segments_are_dropped_with_their_spool_files() {
        let server = TestServer::start(|_, _| (Some(201), Duration::ZERO));
        let root = temp_dir("bound");
        let cfg = test_config(&root, &server.hostport, 2, 3);
        let pool = pool_with(&cfg);
        let jobs: Vec<Job> = (0..6).map(|seq| spooled(&cfg, A, "source", seq)).collect();
        let paths: Vec<PathBuf> = jobs.iter().map(|j| j.spool_path().to_path_buf()).collect();
        // Queued at once: none is in flight yet, so 0, 1 and 2 go.
        pool.push(jobs);
        for dropped in &paths[..3] {
            assert!(!dropped.exists(), "{} was removed with its job", dropped.display());
        }
        server.wait_for("the kept segments", Duration::from_secs(5), |s| {
            s.successes("/up/").len() == 3
        });
        assert_eq!(
            server.arrivals("/up/"),
            (3..6).map(|seq| path_of(A, "source", seq)).collect::<Vec<_>>()
        );
        pool.stop();
        let _ = std::fs::remove_dir_all(root);
    }
}
