//! `sunnylive-simulcast`: started by nginx-origin/run beside nginx and the uploader (see simulcast.rs for what it does).
//!
//! Usage: sunnylive-simulcast --proxy 127.0.0.1:PORT --source rtmp://127.0.0.1:PORT/hls
//!        [--stat-path /_rtmp_stat] [--outputs-path /_worker/outputs] [--ffmpeg ffmpeg] [--stat-ms 250] [--outputs-ms 1500]

use std::time::Duration;

use sunnylive_origin_uploader::simulcast::{run, Config};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut proxy = None;
    let mut source = None;
    let mut stat_path = "/_rtmp_stat".to_string();
    let mut outputs_path = "/_worker/outputs".to_string();
    let mut ffmpeg = "ffmpeg".to_string();
    let mut stat_ms: u64 = 250;
    let mut outputs_ms: u64 = 1500;
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |v: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{flag} takes a number")))
        };
        match flag.as_str() {
            "--proxy" => proxy = Some(value),
            "--source" => source = Some(value.trim_end_matches('/').to_string()),
            "--stat-path" => stat_path = value,
            "--outputs-path" => outputs_path = value.trim_end_matches('/').to_string(),
            "--ffmpeg" => ffmpeg = value,
            "--stat-ms" => stat_ms = number(&value).max(100),
            "--outputs-ms" => outputs_ms = number(&value).max(500),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    let cfg = Config {
        proxy: proxy.unwrap_or_else(|| usage("--proxy is required")),
        stat_path,
        outputs_path,
        source: source.unwrap_or_else(|| usage("--source is required")),
        ffmpeg,
        stat_every: Duration::from_millis(stat_ms),
        outputs_every: Duration::from_millis(outputs_ms),
    };
    if let Err(e) = run(cfg) {
        eprintln!("simulcast: {e}");
        std::process::exit(1);
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "sunnylive-simulcast: {why}\nusage: sunnylive-simulcast --proxy 127.0.0.1:PORT --source rtmp://127.0.0.1:PORT/hls \
         [--stat-path P] [--outputs-path P] [--ffmpeg PATH] [--stat-ms N] [--outputs-ms N]"
    );
    std::process::exit(2);
}
