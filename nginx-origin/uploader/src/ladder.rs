//! The rendition ladder: which renditions a publish gets and the ffmpeg command that makes them.
//!
//! Per publish into the origin's internal `hls` application, nginx-rtmp writes the ingest as HLS itself (in
//! process, so from the publish's first frame: a player that joins the stream later, like an ffmpeg, would miss
//! everything before the next keyframe, since nginx-rtmp keeps no GOP for late players) and starts
//! `sunnylive-transcoder` (its `exec` directive). The transcoder reads what nginx-rtmp knows of the stream (codec,
//! resolution, frame rate: the `rtmp_stat` page, no probing delay), chooses the ladder, and follows nginx-rtmp's
//! playlist: each finished segment becomes `source` segment k at once (a hard link, never re-encoded), and one
//! ffmpeg per segment makes segment k of every configured H.264 rendition below the source's height, into
//! `<hls root>/<broadcast>/<rendition>/`.
//!
//! Alignment: rendition segment k is source segment k transcoded with its own timestamps, so it starts at the same
//! presentation time, holds the same frames and ends where the next begins, whatever the publisher's keyframe
//! interval; a player switches between renditions without a glitch. A publish the ladder cannot take (no video:
//! audio only; video other than H.264) goes out as `source` only, with a note the transcoder logs; it is never
//! refused.

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

/// Whether nginx-rtmp's stat XML lists the stream `name` of the application `app` with its publisher still on.
pub fn is_publishing(xml: &str, app: &str, name: &str) -> bool {
    let Some(app_block) = xml
        .split("<application>")
        .skip(1)
        .find(|block| tag(block, "name") == Some(app))
    else {
        return false;
    };
    app_block
        .split("<stream>")
        .skip(1)
        .find(|block| tag(block, "name") == Some(name))
        .is_some_and(|stream| stream.contains("<publishing/>"))
}

/// The ffmpeg arguments (without the program name) that make every rendition of `plan` from one segment of the
/// source: `input` is decoded once and each rendition is written to its path in `outputs` (same order as
/// `plan.renditions`) as MPEG-TS with the source's own timestamps (`-copyts`, `-mpegts_copyts`), so segment k of
/// every rendition starts at the presentation time of source segment k; it starts with a keyframe (a new encoder
/// per segment) and keeps any further keyframe where the source has one. Audio is copied: each rendition carries
/// the source's audio unchanged, which a segment-by-segment AAC encoder could not do without a gap or a click at
/// every boundary (encoder priming).
///
/// `source_kbps` (the source segment's own bitrate, when known) caps each rendition's video at nine tenths of it: a
/// rendition is never heavier than the source it is made from (a quiet or low-bitrate publish would otherwise get
/// renditions that cost a viewer more than the source).
pub fn segment_args(
    plan: &Plan,
    input: &str,
    outputs: &[String],
    preset: &str,
    source_kbps: Option<u32>,
) -> Vec<String> {
    let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-copyts", "-i", input]
        .map(String::from)
        .to_vec();
    let cap = source_kbps.filter(|k| *k > 0).map(|k| (k * 9 / 10).max(100));
    for (r, path) in plan.renditions.iter().zip(outputs) {
        let video_kbps = cap.map_or(r.video_kbps, |c| c.min(r.video_kbps));
        let kbps = format!("{video_kbps}k");
        a.extend(["-map".into(), "0:v:0".into()]);
        if plan.has_audio {
            a.extend(["-map".into(), "0:a:0".into()]);
        }
        a.extend([
            "-vf".into(),
            format!("scale=-2:{}", r.height),
            "-c:v".into(),
            "libx264".into(),
            "-b:v".into(),
            kbps.clone(),
            "-maxrate".into(),
            kbps,
            "-bufsize".into(),
            format!("{}k", video_kbps * 2),
            "-force_key_frames".into(),
            "source".into(),
            "-preset".into(),
            preset.into(),
            "-tune".into(),
            "zerolatency".into(),
            "-profile:v".into(),
            "high".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            "-sc_threshold".into(),
            "0".into(),
            "-g".into(),
            "600".into(),
        ]);
        if plan.has_audio {
            a.extend(["-c:a".into(), "copy".into()]);
        }
        a.extend(["-fps_mode", "passthrough", "-mpegts_copyts", "1", "-f", "mpegts", "-y"].map(String::from));
        a.push(path.clone());
    }
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
    fn a_stream_is_publishing_while_the_stat_page_lists_its_publisher() {
        let xml = "<rtmp><server><application><name>hls</name><live><stream><name>abcdefghijkmnpqr</name>\
            <client><id>3</id><publishing/><active/></client><publishing/>\r\n<active/>\r\n</stream>\
            <stream><name>zzzzzzzzzzzzzzzz</name><nclients>1</nclients></stream></live></application></server></rtmp>";
        assert!(is_publishing(xml, "hls", "abcdefghijkmnpqr"));
        assert!(
            !is_publishing(xml, "hls", "zzzzzzzzzzzzzzzz"),
            "listed, but its publisher left"
        );
        assert!(!is_publishing(xml, "hls", "nope"));
        assert!(!is_publishing(xml, "live", "abcdefghijkmnpqr"));
    }

    #[test]
    fn one_ffmpeg_per_segment_writes_every_rendition_with_the_source_timestamps() {
        let p = plan(&h264(1280, 720), &parse_renditions("480p,360p").unwrap());
        let outs = ["/h/b/480p/.7.ts".to_string(), "/h/b/360p/.7.ts".to_string()];
        let args = segment_args(&p, "/h/b/source/7.ts", &outs, "veryfast", None).join(" ");
        assert!(args.starts_with("-hide_banner -nostdin -loglevel error -copyts -i /h/b/source/7.ts -map 0:v:0 -map 0:a:0 -vf scale=-2:480 -c:v libx264"), "{args}");
        assert!(args.contains("-force_key_frames source"), "{args}");
        assert_eq!(args.matches("-c:a copy").count(), 2, "{args}");
        assert_eq!(args.matches("-mpegts_copyts 1 -f mpegts -y").count(), 2, "{args}");
        assert!(args.ends_with("-f mpegts -y /h/b/360p/.7.ts"), "{args}");
        let silent = Plan {
            has_audio: false,
            ..p.clone()
        };
        let args = segment_args(&silent, "/in.ts", &outs, "veryfast", None).join(" ");
        assert!(!args.contains("0:a:0") && !args.contains("-c:a"), "{args}");
    }

    #[test]
    fn a_rendition_is_never_heavier_than_its_source_segment() {
        let p = plan(&h264(1280, 720), &parse_renditions("480p,360p").unwrap());
        let outs = ["/a.ts".to_string(), "/b.ts".to_string()];
        // A 900 kbit/s source: 480p (1200k) is held to 810k, 360p (700k) keeps its own rate.
        let args = segment_args(&p, "/in.ts", &outs, "veryfast", Some(900)).join(" ");
        assert!(args.contains("-b:v 810k -maxrate 810k -bufsize 1620k"), "{args}");
        assert!(args.contains("-b:v 700k -maxrate 700k -bufsize 1400k"), "{args}");
        // A heavy source changes nothing.
        let args = segment_args(&p, "/in.ts", &outs, "veryfast", Some(6000)).join(" ");
        assert!(args.contains("-b:v 1200k") && args.contains("-b:v 700k"), "{args}");
    }
}
