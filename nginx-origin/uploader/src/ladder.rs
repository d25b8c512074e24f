//! The rendition ladder: which renditions a publish gets and the one ffmpeg command that makes them all.
//!
//! Per publish into the origin's internal `hls` application, nginx-rtmp starts `sunnylive-transcoder` (its `exec`
//! directive), which reads what nginx-rtmp knows of the stream (codec, resolution, frame rate: the `rtmp_stat`
//! page, so no second connection and no probing delay), chooses the ladder and becomes (exec) one ffmpeg that plays
//! the stream once and writes every rendition as HLS: `source` (the ingest remuxed, never re-encoded) and the
//! configured H.264/AAC renditions below the source's height, into `<hls root>/<broadcast>/<rendition>/`.
//!
//! Alignment: one process, one input, one HLS muxer: every variant is cut by the same rule at the same keyframes.
//! The encoders force a keyframe exactly where the source has one (`-force_key_frames source`, scene cuts off), so
//! segment k of every rendition starts at the same presentation time and a player switches between them without a
//! glitch. A publish the ladder cannot take (no video: audio only; video other than H.264) goes out as `source`
//! only, with a note the transcoder logs; it is never refused.

/// A rung the origin can be configured to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    pub name: &'static str,
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: u32,
}

/// Every rendition name the origin may make, highest first; `source` is the ingest as it is. The Worker's upload
/// route accepts exactly these names (core/src/hls.rs `Rendition`).
pub const LADDER: [Rung; 5] = [
    Rung {
        name: "1080p",
        height: 1080,
        video_kbps: 4500,
        audio_kbps: 128,
    },
    Rung {
        name: "720p",
        height: 720,
        video_kbps: 2500,
        audio_kbps: 128,
    },
    Rung {
        name: "480p",
        height: 480,
        video_kbps: 1200,
        audio_kbps: 96,
    },
    Rung {
        name: "360p",
        height: 360,
        video_kbps: 700,
        audio_kbps: 96,
    },
    Rung {
        name: "240p",
        height: 240,
        video_kbps: 400,
        audio_kbps: 64,
    },
];

pub const SOURCE: &str = "source";

/// The default of `SUNNYLIVE_RENDITIONS`: what a 2-vCPU origin transcodes in real time for one 720p30 or 1080p30
/// publish with `veryfast` (measured by `scripts/bench renditions`).
pub const DEFAULT_RENDITIONS: &str = "480p,360p";

/// True for a directory name the uploader treats as a rendition of a broadcast.
pub fn is_rendition_name(name: &str) -> bool {
    name == SOURCE || LADDER.iter().any(|r| r.name == name)
}

/// `SUNNYLIVE_RENDITIONS`: a comma-separated list of rung names (`720p,480p,360p`), or `none` (or empty) for the
/// source only. Returned highest first, each once.
pub fn parse_renditions(list: &str) -> Result<Vec<Rung>, String> {
    let list = list.trim();
    if list.is_empty() || list == "none" {
        return Ok(Vec::new());
    }
    let mut out: Vec<Rung> = Vec::new();
    for name in list.split(',').map(str::trim) {
        let rung = LADDER.iter().find(|r| r.name == name).ok_or_else(|| {
            let names: Vec<&str> = LADDER.iter().map(|r| r.name).collect();
            format!("unknown rendition '{name}' (known: {}, or none)", names.join(", "))
        })?;
        if !out.contains(rung) {
            out.push(*rung);
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.height));
    Ok(out)
}

/// What nginx-rtmp knows of a live stream (from its `rtmp_stat` page).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamInfo {
    /// nginx-rtmp's codec name: `H264`, `HEVC`, `On2-VP6`, ... (None: no video).
    pub video_codec: Option<String>,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// `AAC`, `MP3`, ... (None: no audio).
    pub audio_codec: Option<String>,
}

fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(&xml[start..start + len])
}

/// Reads the stream named `name` of the application `app` from nginx-rtmp's stat XML. None while the stream is not
/// listed there or nginx-rtmp has not seen its codecs yet.
pub fn parse_stat(xml: &str, app: &str, name: &str) -> Option<StreamInfo> {
    let app_block = xml
        .split("<application>")
        .skip(1)
        .find(|block| tag(block, "name") == Some(app))?;
    let stream = app_block
        .split("<stream>")
        .skip(1)
        .find(|block| tag(block, "name") == Some(name))?;
    let meta = tag(stream, "meta")?;
    let mut info = StreamInfo::default();
    if let Some(video) = tag(meta, "video") {
        info.video_codec = tag(video, "codec").map(str::to_string).filter(|c| !c.is_empty());
        info.width = tag(video, "width").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        info.height = tag(video, "height").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        info.frame_rate = tag(video, "frame_rate")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
    }
    if let Some(audio) = tag(meta, "audio") {
        info.audio_codec = tag(audio, "codec").map(str::to_string).filter(|c| !c.is_empty());
    }
    (info.video_codec.is_some() || info.audio_codec.is_some()).then_some(info)
}

/// The renditions a publish gets besides `source`, and why fewer than configured (the log line).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub renditions: Vec<Rung>,
    pub has_video: bool,
    pub has_audio: bool,
    pub note: Option<String>,
}

/// Chooses the ladder for a stream: the configured rungs strictly below the source's height (never upscaled, never
/// a copy of the source at the same size); none for a stream without H.264 video.
pub fn plan(info: &StreamInfo, wanted: &[Rung]) -> Plan {
    let has_video = info.video_codec.is_some();
    let has_audio = info.audio_codec.is_some();
    let (renditions, note) = match info.video_codec.as_deref() {
        None => (Vec::new(), Some("audio-only publish: source only".to_string())),
        Some("H264") if info.height > 0 => {
            // nginx-rtmp may report the coded height (1088 for 1080p): a rung within 16 lines of the source is the
            // source's own size.
            let below: Vec<Rung> = wanted.iter().copied().filter(|r| r.height + 16 < info.height).collect();
            let note = (below.len() < wanted.len()).then(|| {
                format!(
                    "{}x{} source: no rendition at or above its height",
                    info.width, info.height
                )
            });
            (below, note)
        }
        Some("H264") => (Vec::new(), Some("unknown source resolution: source only".into())),
        Some(other) => (
            Vec::new(),
            Some(format!("video codec {other} cannot be transcoded here: source only")),
        ),
    };
    Plan {
        renditions,
        has_video,
        has_audio,
        note,
    }
}

/// `SUNNYLIVE_HLS_FRAGMENT` (an nginx duration: `2s`, `1s`, `500ms`) as ffmpeg's `-hls_time` seconds.
pub fn hls_time(fragment: &str) -> Option<String> {
    let (number, scale) = if let Some(ms) = fragment.strip_suffix("ms") {
        (ms, 1_000)
    } else if let Some(m) = fragment.strip_suffix('m') {
        (m, 0)
    } else {
        (fragment.strip_suffix('s').unwrap_or(fragment), 1)
    };
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    match scale {
        0 => Some((n * 60).to_string()),
        1 => Some(n.to_string()),
        _ => Some(format!("{}.{:03}", n / 1000, n % 1000)),
    }
}

/// Everything the ffmpeg command needs besides the plan.
#[derive(Debug, Clone)]
pub struct Output<'a> {
    /// The stream to play: `rtmp://127.0.0.1:<port>/hls/<broadcast>`.
    pub input: &'a str,
    /// `<hls root>/<broadcast>`: each rendition writes `<dir>/<name>/index.m3u8` and `<dir>/<name>/<seq>.ts`.
    pub dir: &'a str,
    pub hls_time: &'a str,
    /// libx264 preset of the renditions (`veryfast`, `ultrafast`, ...).
    pub preset: &'a str,
}

/// The ffmpeg arguments (without the program name) that write `source` and every rendition of `plan`.
pub fn ffmpeg_args(plan: &Plan, out: &Output) -> Vec<String> {
    fn push(a: &mut Vec<String>, items: &[&str]) {
        a.extend(items.iter().map(|s| s.to_string()));
    }
    let mut a: Vec<String> = Vec::new();
    // -copyts: segments carry the publisher's own timestamps (its stream time, as nginx-rtmp relays it), the same in
    // every rendition.
    push(
        &mut a,
        &[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "warning",
            "-copyts",
            "-i",
            out.input,
        ],
    );
    let mut var_map = Vec::new();
    let mut streams = |name: &str, index: usize| {
        let mut parts = Vec::new();
        if plan.has_video {
            parts.push(format!("v:{index}"));
        }
        if plan.has_audio {
            parts.push(format!("a:{index}"));
        }
        parts.push(format!("name:{name}"));
        var_map.push(parts.join(","));
    };
    streams(SOURCE, 0);
    for (i, r) in plan.renditions.iter().enumerate() {
        streams(r.name, i + 1);
    }
    for _ in 0..=plan.renditions.len() {
        if plan.has_video {
            push(&mut a, &["-map", "0:v:0"]);
        }
        if plan.has_audio {
            push(&mut a, &["-map", "0:a:0"]);
        }
    }
    if plan.has_video {
        push(&mut a, &["-c:v:0", "copy"]);
    }
    if plan.has_audio {
        push(&mut a, &["-c:a:0", "copy"]);
    }
    for (i, r) in plan.renditions.iter().enumerate() {
        let n = i + 1;
        let v = |k: &str| format!("-{k}:v:{n}");
        let kbps = format!("{}k", r.video_kbps);
        a.extend([
            v("filter"),
            format!("scale=-2:{}", r.height),
            v("c"),
            "libx264".into(),
            v("b"),
            kbps.clone(),
            v("maxrate"),
            kbps,
            v("bufsize"),
            format!("{}k", r.video_kbps * 2),
            v("force_key_frames"),
            "source".into(),
            // Keyframes only where the source has them: no scene cuts, no keyframe interval of x264's own shorter
            // than the source's. zerolatency: no lookahead and no B-frames, so encoding adds no delay to the live
            // edge. Per stream (`:v:n`): the source's copy takes no encoder options.
            v("preset"),
            out.preset.into(),
            v("tune"),
            "zerolatency".into(),
            v("profile"),
            "high".into(),
            v("pix_fmt"),
            "yuv420p".into(),
            v("sc_threshold"),
            "0".into(),
            v("g"),
            "600".into(),
        ]);
        if plan.has_audio {
            a.extend([
                format!("-c:a:{n}"),
                "aac".into(),
                format!("-b:a:{n}"),
                format!("{}k", r.audio_kbps),
                format!("-ac:a:{n}"),
                "2".into(),
            ]);
        }
    }
    // One output frame per input frame: frames keep the source's timestamps and keyframe marks.
    push(&mut a, &["-fps_mode", "passthrough"]);
    let segment = format!("{}/%v/%d.ts", out.dir);
    let playlist = format!("{}/%v/index.m3u8", out.dir);
    push(
        &mut a,
        &[
            "-f",
            "hls",
            "-hls_time",
            out.hls_time,
            "-hls_list_size",
            "6",
            "-hls_delete_threshold",
            "6",
            // temp_file: a segment and the playlist appear whole or not at all; append_list: a respawned ffmpeg (nginx
            // restarts it if it dies mid-publish) continues the numbering instead of overwriting segment 0.
            "-hls_flags",
            "delete_segments+temp_file+independent_segments+append_list",
            "-start_number",
            "0",
            "-var_stream_map",
        ],
    );
    a.push(var_map.join(" "));
    a.extend(["-hls_segment_filename".to_string(), segment, playlist]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264(width: u32, height: u32) -> StreamInfo {
        StreamInfo {
            video_codec: Some("H264".into()),
            width,
            height,
            frame_rate: 30.0,
            audio_codec: Some("AAC".into()),
        }
    }

    #[test]
    fn the_configured_list_is_known_names_highest_first_each_once() {
        let r = parse_renditions("360p, 720p,480p,360p").unwrap();
        assert_eq!(r.iter().map(|r| r.name).collect::<Vec<_>>(), ["720p", "480p", "360p"]);
        assert_eq!(parse_renditions("none").unwrap(), vec![]);
        assert_eq!(parse_renditions("").unwrap(), vec![]);
        assert!(parse_renditions("480p,4k").unwrap_err().contains("'4k'"));
        assert!(parse_renditions("../x").is_err());
        assert_eq!(parse_renditions(DEFAULT_RENDITIONS).unwrap().len(), 2);
    }

    #[test]
    fn a_rendition_is_never_at_or_above_the_source_height() {
        let wanted = parse_renditions("1080p,720p,480p,360p").unwrap();
        let p = plan(&h264(1280, 720), &wanted);
        assert_eq!(
            p.renditions.iter().map(|r| r.name).collect::<Vec<_>>(),
            ["480p", "360p"]
        );
        assert!(p.note.unwrap().contains("1280x720"));
        assert!(plan(&h264(320, 180), &wanted).renditions.is_empty());
        let coded_1080 = plan(&h264(1920, 1088), &wanted);
        assert_eq!(
            coded_1080.renditions.iter().map(|r| r.name).collect::<Vec<_>>(),
            ["720p", "480p", "360p"]
        );
        assert_eq!(plan(&h264(1920, 1080), &wanted).renditions.len(), 3);
    }

    #[test]
    fn audio_only_and_other_codecs_go_out_as_source_only() {
        let wanted = parse_renditions("480p,360p").unwrap();
        let audio = StreamInfo {
            audio_codec: Some("AAC".into()),
            ..StreamInfo::default()
        };
        let p = plan(&audio, &wanted);
        assert!(p.renditions.is_empty() && !p.has_video && p.has_audio);
        assert!(p.note.unwrap().contains("audio-only"));
        let hevc = StreamInfo {
            video_codec: Some("HEVC".into()),
            ..h264(1920, 1080)
        };
        let p = plan(&hevc, &wanted);
        assert!(p.renditions.is_empty() && p.note.unwrap().contains("HEVC"));
    }

    #[test]
    fn the_stat_page_gives_the_codecs_of_the_named_stream() {
        let xml = "<rtmp><server><application><name>live</name><live><stream><name>abcdefghijkmnpqr</name>\
            <meta><video><width>1</width></video></meta></stream></live></application>\
            <application><name>hls</name><live><stream><name>zzzzzzzzzzzzzzzz</name></stream>\
            <stream><name>abcdefghijkmnpqr</name><time>1</time><meta><video><width>1280</width><height>720</height>\
            <frame_rate>30</frame_rate><codec>H264</codec><profile>High</profile></video><audio><codec>AAC</codec>\
            </audio></meta><nclients>1</nclients></stream></live></application></server></rtmp>";
        let info = parse_stat(xml, "hls", "abcdefghijkmnpqr").unwrap();
        assert_eq!(info, h264(1280, 720));
        assert_eq!(parse_stat(xml, "hls", "zzzzzzzzzzzzzzzz"), None, "no codecs yet");
        assert_eq!(parse_stat(xml, "hls", "nope"), None);
    }

    #[test]
    fn fragment_lengths_become_hls_time_seconds() {
        assert_eq!(hls_time("2s").as_deref(), Some("2"));
        assert_eq!(hls_time("1").as_deref(), Some("1"));
        assert_eq!(hls_time("1500ms").as_deref(), Some("1.500"));
        assert_eq!(hls_time("1m").as_deref(), Some("60"));
        assert_eq!(hls_time("0s"), None);
        assert_eq!(hls_time("x"), None);
    }

    #[test]
    fn one_ffmpeg_writes_the_source_copy_and_every_rendition_keyframe_aligned() {
        let p = plan(&h264(1280, 720), &parse_renditions("480p,360p").unwrap());
        let out = Output {
            input: "rtmp://127.0.0.1:1935/hls/b",
            dir: "/h/b",
            hls_time: "2",
            preset: "veryfast",
        };
        let args = ffmpeg_args(&p, &out).join(" ");
        assert!(args.contains("-c:v:0 copy -c:a:0 copy"), "{args}");
        assert!(args.contains("-filter:v:1 scale=-2:480 -c:v:1 libx264"), "{args}");
        assert!(args.contains("-force_key_frames:v:2 source"), "{args}");
        assert!(args.contains("-var_stream_map v:0,a:0,name:source v:1,a:1,name:480p v:2,a:2,name:360p"));
        assert!(
            args.ends_with("-hls_segment_filename /h/b/%v/%d.ts /h/b/%v/index.m3u8"),
            "{args}"
        );
        assert_eq!(args.matches("-map 0:v:0").count(), 3);
        let audio = plan(
            &StreamInfo {
                audio_codec: Some("AAC".into()),
                ..StreamInfo::default()
            },
            &[],
        );
        let args = ffmpeg_args(&audio, &out).join(" ");
        assert!(
            args.contains("-var_stream_map a:0,name:source") && !args.contains("libx264"),
            "{args}"
        );
    }
}
