//! Benchmark: what each rendition costs the origin. For a 1080p30 and a 720p30 input (a moving test pattern with a
//! tone, H.264 CBR as OBS sends it, cut into 2-s MPEG-TS segments as nginx-rtmp writes them), runs the origin's own
//! transcoder command (nginx-origin/uploader/src/ladder.rs `segment_args`: one ffmpeg per source segment, as
//! sunnylive-transcoder runs it, renditions written to a temporary folder) over every segment in turn, as fast as the
//! machine allows, once per single rendition and once per whole ladder, and prints per row the CPU it used per second of video (cores needed to keep
//! up in real time) and its speed (media seconds per wall second with every core free). A ladder is sustainable on an
//! origin when its cores stay well under the origin's vCPUs (leave headroom for nginx, the uploader and bursts).
//! Run with `scripts/bench renditions` (BENCH_RENDITION_SECONDS=20 by default, BENCH_RENDITION_PRESET=veryfast).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use sunnylive_origin_uploader::ladder::{self, Plan, Rung, StreamInfo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// CPU seconds (user + system) of this process's waited-for children so far (/proc/self/stat cutime + cstime, in
/// clock ticks of 1/100 s on Linux).
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces: fields count from the closing parenthesis.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3 of the full line, so cutime (16) and cstime (17) are at 13 and 14 here.
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(13) + tick(14)) / 100.0
}

fn run(args: &[String]) -> Result<(f64, f64), BoxError> {
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let out = Command::new("ffmpeg").args(args).stdin(Stdio::null()).output()?;
    let wall = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok((children_cpu_seconds() - cpu_before, wall))
}

fn make_input(dir: &Path, width: u32, height: u32, seconds: u32) -> Result<String, BoxError> {
    let path = dir.join(format!("input-{height}p30.flv"));
    let kbps = if height >= 1080 { 6000 } else { 3000 };
    let args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={width}x{height}:rate=30"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &seconds.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "60",
        "-b:v",
        &format!("{kbps}k"),
        "-maxrate",
        &format!("{kbps}k"),
        "-bufsize",
        &format!("{kbps}k"),
        "-c:a",
        "aac",
        "-b:a",
        "160k",
        "-f",
        "flv",
        path.to_str().ok_or("path")?,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run(&args)?;
    Ok(path.to_string_lossy().into_owned())
}

/// The input cut into 2-s MPEG-TS segments at its keyframes, with its own timestamps (as nginx-rtmp's HLS writer
/// gives them to the transcoder). `source` itself costs nothing more: the transcoder hard-links these files.
fn cut_segments(dir: &Path, input: &str, height: u32) -> Result<Vec<String>, BoxError> {
    let pattern = dir.join(format!("seg-{height}p-%03d.ts"));
    let args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-copyts",
        "-i",
        input,
        "-c",
        "copy",
        "-f",
        "segment",
        "-segment_time",
        "2",
        "-segment_format",
        "mpegts",
        pattern.to_str().ok_or("path")?,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run(&args)?;
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("seg-{height}p-")))
        })
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    out.sort();
    Ok(out)
}

fn main() -> Result<(), BoxError> {
    let seconds: u32 = std::env::var("BENCH_RENDITION_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let preset = std::env::var("BENCH_RENDITION_PRESET").unwrap_or_else(|_| "veryfast".into());
    let dir = std::env::temp_dir().join(format!("bench-renditions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("renditions: {seconds} s inputs, libx264 {preset}, {cores} cores (cores = CPU s per video s; speed = x real time)");
    println!();
    println!("| input | made | cores | speed |");
    println!("|---|---|---:|---:|");
    for (width, height) in [(1920u32, 1080u32), (1280, 720)] {
        let input = make_input(&dir, width, height, seconds)?;
        let info = StreamInfo {
            video_codec: Some("H264".into()),
            width,
            height,
            frame_rate: 30.0,
            audio_codec: Some("AAC".into()),
        };
        let all = ladder::parse_renditions("1080p,720p,480p,360p,240p")?;
        let below = ladder::plan(&info, &all).renditions;
        let segments = cut_segments(&dir, &input, height)?;
        let mut rows: Vec<(String, Vec<Rung>)> = Vec::new();
        rows.extend(below.iter().map(|r| (format!("source + {}", r.name), vec![*r])));
        for ladder_names in ["720p,480p,360p", "480p,360p"] {
            let wanted = ladder::parse_renditions(ladder_names)?;
            let chosen = ladder::plan(&info, &wanted).renditions;
            if chosen.len() == wanted.len() {
                rows.push((format!("source + {ladder_names} (a ladder)"), chosen));
            }
        }
        for (what, renditions) in rows {
            let out_dir = dir.join("out");
            let _ = std::fs::remove_dir_all(&out_dir);
            std::fs::create_dir_all(&out_dir)?;
            let plan = Plan {
                renditions,
                has_video: true,
                has_audio: true,
                note: None,
            };
            let (mut cpu, mut wall) = (0.0, 0.0);
            for (k, segment) in segments.iter().enumerate() {
                let outputs: Vec<String> = plan
                    .renditions
                    .iter()
                    .map(|r| {
                        out_dir
                            .join(format!("{}-{k}.ts", r.name))
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect();
                let (c, w) = run(&ladder::segment_args(&plan, segment, &outputs, &preset, None))?;
                cpu += c;
                wall += w;
            }
            let media = f64::from(seconds);
            println!(
                "| {height}p30 | {what} | {:.2} | {:.1}x |",
                cpu / media,
                media / wall.max(0.001)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
