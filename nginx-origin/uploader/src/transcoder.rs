//! `sunnylive-transcoder`: started by nginx-rtmp (`exec` in the internal `hls` application) for every publish, with
//! the broadcast id as `$name`. Reads the stream's codecs and size from nginx-rtmp's stat page, chooses the
//! rendition ladder (src/ladder.rs) and replaces itself with the one ffmpeg that writes `source` and every rendition
//! as HLS under `<hls root>/<broadcast>/<rendition>/`. When the publish ends nginx-rtmp stops this process, and
//! ffmpeg (in a process group of its own) reads the stream to its end, closes the last segments and playlists, and
//! exits.
//!
//! Usage: sunnylive-transcoder --name ID --hls-root DIR --rtmp-port N --stat-url http://127.0.0.1:PORT/PATH
//!        --log FILE [--renditions 480p,360p] [--fragment 2s] [--preset veryfast] [--ffmpeg ffmpeg]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use sunnylive_origin_uploader::ladder::{self, Output, StreamInfo};
use sunnylive_origin_uploader::{looks_like_broadcast_id, split_url};

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
    let hls_root = need("--hls-root");
    let port = need("--rtmp-port");
    let stat_url = need("--stat-url");
    let log_path = need("--log");
    let renditions = get
        .get("--renditions")
        .cloned()
        .unwrap_or(ladder::DEFAULT_RENDITIONS.into());
    let fragment = get.get("--fragment").cloned().unwrap_or("2s".into());
    let preset = get.get("--preset").cloned().unwrap_or("veryfast".into());
    let ffmpeg = get.get("--ffmpeg").cloned().unwrap_or("ffmpeg".into());

    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| usage(&format!("cannot open {log_path}: {e}")));
    let wanted = ladder::parse_renditions(&renditions).unwrap_or_else(|e| usage(&e));
    let hls_time = ladder::hls_time(&fragment).unwrap_or_else(|| usage("--fragment must be like 2s or 1500ms"));

    let started = Instant::now();
    let info = wait_for_codecs(&stat_url, &name);
    let info = info.unwrap_or_else(|| {
        let _ = writeln!(
            log,
            "transcoder: {name}: nginx-rtmp listed no codecs within 3 s; assuming audio and video"
        );
        StreamInfo {
            video_codec: Some("unknown".into()),
            audio_codec: Some("unknown".into()),
            ..StreamInfo::default()
        }
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
    let input = format!("rtmp://127.0.0.1:{port}/hls/{name}");
    let dir = format!("{}/{name}", hls_root.trim_end_matches('/'));
    let args = ladder::ffmpeg_args(
        &plan,
        &Output {
            input: &input,
            dir: &dir,
            hls_time: &hls_time,
            preset: &preset,
        },
    );
    let stderr = log
        .try_clone()
        .map(std::process::Stdio::from)
        .unwrap_or(std::process::Stdio::null());
    // exec: nginx-rtmp's stop signal then reaches ffmpeg itself.
    let err = std::process::Command::new(&ffmpeg)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .exec();
    let _ = writeln!(log, "transcoder: {name}: cannot run {ffmpeg}: {err}");
    std::process::exit(1);
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
        "sunnylive-transcoder: {why}\nusage: sunnylive-transcoder --name ID --hls-root DIR --rtmp-port N \
         --stat-url URL --log FILE [--renditions LIST] [--fragment 2s] [--preset veryfast] [--ffmpeg PATH]"
    );
    std::process::exit(2);
}
