//! The origin's uploader: nginx-rtmp writes each broadcast's HLS into `<hls root>/<broadcast id>/`; this watches
//! those directories, and every segment that nginx lists in its playlist is uploaded once, in order, to the Worker
//! (`PUT <upload url>/<broadcast id>/<seq>.ts?duration=..`), plus a JPEG thumbnail of the newest segment about every
//! 20 s. The upload URL is the origin's own local proxy location, which adds the origin token, so no secret is in
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
use std::time::{Duration, Instant};

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
        seq: u32,
        duration: String,
        discontinuity: bool,
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
    pub poll: Duration,
    pub thumbnail_every: Duration,
    pub max_backlog: usize,
}

/// What the scanner remembers per broadcast directory.
#[derive(Default)]
struct Seen {
    /// Every listed sequence number up to this one is spooled (or was gone before it could be).
    next_seq: Option<u32>,
    last_thumbnail: Option<Instant>,
    newest: Option<(u32, PathBuf)>,
}

/// Scans the HLS root once: spools and queues every newly listed segment, and a thumbnail when one is due.
/// Returns the jobs in upload order.
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
        let Ok(text) = std::fs::read_to_string(dir.join("index.m3u8")) else {
            continue;
        };
        let state = seen.entry(name.clone()).or_default();
        for seg in parse_playlist(&text) {
            if state.next_seq.is_some_and(|n| seg.seq < n) {
                continue;
            }
            state.next_seq = Some(seg.seq.wrapping_add(1));
            if seg.file.contains('/') || seg.file.starts_with('.') {
                continue;
            }
            let spooled = cfg.spool.join(format!("{name}-{}.ts", seg.seq));
            // A hard link: free, and the data outlives nginx's cleanup until it is uploaded.
            if std::fs::hard_link(dir.join(&seg.file), &spooled).is_err()
                && std::fs::copy(dir.join(&seg.file), &spooled).is_err()
            {
                eprintln!("uploader: {name}/{} vanished before it could be spooled", seg.file);
                continue;
            }
            state.newest = Some((seg.seq, spooled.clone()));
            jobs.push(Job::Segment {
                broadcast: name.clone(),
                seq: seg.seq,
                duration: seg.duration,
                discontinuity: seg.discontinuity,
                path: spooled,
            });
        }
        let due = state
            .last_thumbnail
            .is_none_or(|t| now.duration_since(t) >= cfg.thumbnail_every);
        if let (true, Some((seq, _))) = (due, &state.newest) {
            let source = cfg.spool.join(format!("{name}-thumb-{seq}.ts"));
            if std::fs::hard_link(cfg.spool.join(format!("{name}-{seq}.ts")), &source).is_ok() {
                state.last_thumbnail = Some(now);
                jobs.push(Job::Thumbnail {
                    broadcast: name.clone(),
                    source,
                });
            }
        }
    }
    seen.retain(|k, _| present.contains(k));
    jobs
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

/// Uploads one job; `Retry` leaves it at the head of the queue.
fn upload(cfg: &Config, hostport: &str, base: &str, job: &Job) -> Outcome {
    let (path, content_type, body, made) = match job {
        Job::Segment {
            broadcast,
            seq,
            duration,
            discontinuity,
            path,
        } => (
            format!(
                "{base}/{broadcast}/{seq}.ts?duration={duration}{}",
                if *discontinuity { "&discontinuity=1" } else { "" }
            ),
            "video/mp2t",
            path.clone(),
            None,
        ),
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
            eprintln!("uploader: {path}: {e}");
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
    let mut backlog = Backlog::new(cfg.max_backlog);
    // Thumbnails run ffmpeg (a second or more on a busy host): on their own thread, so they never hold up a
    // segment. At most a few wait; a thumbnail that finds the line full is skipped (the next one is 20 s away).
    let (thumbs, thumb_jobs) = std::sync::mpsc::sync_channel::<Job>(4);
    {
        let cfg = cfg.clone();
        let (hostport, base) = (hostport.clone(), base.clone());
        std::thread::spawn(move || {
            for job in thumb_jobs {
                for attempt in 0..3 {
                    match upload(&cfg, &hostport, &base, &job) {
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
            match upload(&cfg, &hostport, &base, job) {
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
            seq,
            duration: "2".into(),
            discontinuity: false,
            path: PathBuf::from(format!("{seq}")),
        };
        let mut b = Backlog::new(2);
        assert!(b.push(job(1)).is_none());
        assert!(b.push(job(2)).is_none());
        assert_eq!(b.push(job(3)), Some(job(1)));
        assert_eq!(b.pop(), Some(job(2)));
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
