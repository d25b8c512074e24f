//! `sunnylive-uploader`: started by nginx-origin/run beside nginx (see lib.rs for what it does).
//!
//! Usage: sunnylive-uploader --hls-root DIR --spool DIR --upload-url http://127.0.0.1:PORT/_worker/hls
//!        [--ffmpeg ffmpeg] [--ffprobe ffprobe] [--poll-ms 200] [--thumbnail-seconds 20] [--max-backlog 150]
//!        [--upload-threads 8]
//!
//! `--max-backlog`: segments queued over all broadcasts and renditions together (in flight included) before the
//! oldest are dropped. `--upload-threads`: how many (broadcast, rendition) lanes upload at once; each lane's
//! segments go one at a time, in sequence order.

use std::path::PathBuf;
use std::time::Duration;

use sunnylive_origin_uploader::{run, Config};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut hls_root = None;
    let mut spool = None;
    let mut upload_url = None;
    let mut ffmpeg = "ffmpeg".to_string();
    let mut ffprobe = "ffprobe".to_string();
    let mut poll_ms: u64 = 200;
    let mut thumb_s: u64 = 20;
    let mut max_backlog: usize = 150;
    let mut upload_threads: usize = 8;
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |v: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{flag} takes a number")))
        };
        match flag.as_str() {
            "--hls-root" => hls_root = Some(PathBuf::from(value)),
            "--spool" => spool = Some(PathBuf::from(value)),
            "--upload-url" => upload_url = Some(value),
            "--ffmpeg" => ffmpeg = value,
            "--ffprobe" => ffprobe = value,
            "--poll-ms" => poll_ms = number(&value).max(20),
            "--thumbnail-seconds" => thumb_s = number(&value).max(1),
            "--max-backlog" => max_backlog = number(&value).max(1) as usize,
            "--upload-threads" => {
                upload_threads = match number(&value) {
                    n @ 1..=64 => n as usize,
                    _ => usage("--upload-threads takes 1 to 64"),
                }
            }
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    let cfg = Config {
        hls_root: hls_root.unwrap_or_else(|| usage("--hls-root is required")),
        spool: spool.unwrap_or_else(|| usage("--spool is required")),
        upload_url: upload_url.unwrap_or_else(|| usage("--upload-url is required")),
        ffmpeg,
        ffprobe,
        poll: Duration::from_millis(poll_ms),
        thumbnail_every: Duration::from_secs(thumb_s),
        max_backlog,
        upload_threads,
    };
    if let Err(e) = run(cfg) {
        eprintln!("uploader: {e}");
        std::process::exit(1);
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "sunnylive-uploader: {why}\nusage: sunnylive-uploader --hls-root DIR --spool DIR --upload-url URL \
         [--ffmpeg PATH] [--ffprobe PATH] [--poll-ms N] [--thumbnail-seconds N] [--max-backlog N] \
         [--upload-threads N]"
    );
    std::process::exit(2);
}
