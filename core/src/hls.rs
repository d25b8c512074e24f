//! HLS at the edge: the rules for what the origin may upload (file names, sizes, durations), where each object lives
//! in R2, how long each kind of file may be cached, and the playlists the Worker writes from the segment list it
//! keeps in D1. Pure, so every rule is tested on the host.
//!
//! The origin uploads each finished MPEG-TS segment of a broadcast once, numbered by its HLS media sequence, with its
//! duration; the Worker stores it in R2 under `hls/<stream id>/<broadcast id>/<seq>.ts` and records it in D1. The
//! playlists are not uploaded: the Worker renders them from D1, so a segment that never arrived is never listed, a
//! gap in the numbering becomes an `#EXT-X-DISCONTINUITY`, and a broadcast that ended gets `#EXT-X-ENDLIST` and plays
//! as video on demand.
//!
//! Renditions: the origin uploads each rendition (`source`, the ingest remuxed, and transcoded ones like `480p`) as
//! its own numbered sequence, segment k of every rendition covering the same presentation time. Each rendition gets
//! a media playlist as above, and a master (multivariant) playlist lists them with their measured bandwidth,
//! resolution, frame rate and codecs. Every segment carries `#EXT-X-PROGRAM-DATE-TIME` when the origin said when its
//! first frame arrived.

use std::fmt::Write;

/// Largest segment the origin may upload: 2-s segments of an 8 Mbit/s stream are ~2 MB; a 10-s keyframe interval
/// at 12 Mbit/s is ~15 MB.
pub const SEGMENT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Largest thumbnail: a 480-px JPEG is ~20-60 KB.
pub const THUMBNAIL_MAX_BYTES: u64 = 1024 * 1024;
/// Longest segment accepted, in milliseconds (nginx-rtmp cuts at the first keyframe after the fragment length).
pub const SEGMENT_MAX_MS: u32 = 60_000;
/// Segments in a live playlist: 12 s at 2-s segments. hls.js starts three target durations behind the newest.
pub const LIVE_WINDOW: usize = 6;
/// How long after a broadcast ended its last segments are still accepted (the origin uploads the final segment
/// after nginx-rtmp has already reported the end of the publish).
pub const UPLOAD_GRACE_SECONDS: i64 = 60;
/// Past broadcasts are kept this many days unless `BROADCAST_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_DAYS: i64 = 7;

/// Cache-Control of the live playlist: it changes with every segment, so edge caches may keep it one second.
pub const CACHE_LIVE_PLAYLIST: &str = "public, max-age=1";
/// Cache-Control of a broadcast's full playlist while it grows (EVENT) .
pub const CACHE_GROWING_PLAYLIST: &str = "public, max-age=2";
/// Cache-Control of a finished broadcast's playlist (it changes only when the broadcast is deleted).
pub const CACHE_ENDED_PLAYLIST: &str = "public, max-age=300";
/// Cache-Control of a segment: its name is never reused within a broadcast, so it never changes. A day, not a year:
/// a deleted broadcast's segments leave other colos' caches by then (only the local colo's can be purged from here).
pub const CACHE_SEGMENT: &str = "public, max-age=86400, immutable";
/// Cache-Control of a thumbnail: replaced about every 20 s while live.
pub const CACHE_THUMBNAIL: &str = "public, max-age=10";

pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
pub const SEGMENT_CONTENT_TYPE: &str = "video/mp2t";
pub const THUMBNAIL_CONTENT_TYPE: &str = "image/jpeg";

/// A file the origin may upload into a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFile {
    /// `<seq>.ts`: a segment with its media sequence number.
    Segment(u32),
    /// `thumb.jpg`: the broadcast's latest still.
    Thumbnail,
}

impl UploadFile {
    /// The allowlist: `thumb.jpg`, or a decimal sequence number without leading zeros followed by `.ts`. Anything
    /// else (other extensions, `..`, encoded slashes, a stream key) is refused before it can become an object name.
    pub fn parse(name: &str) -> Option<UploadFile> {
        if name == "thumb.jpg" {
            return Some(UploadFile::Thumbnail);
        }
        let digits = name.strip_suffix(".ts")?;
        if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return None;
        }
        digits.parse().ok().map(UploadFile::Segment)
    }

    /// The object's file name (the inverse of `parse`).
    pub fn file_name(self) -> String {
        match self {
            UploadFile::Segment(seq) => format!("{seq}.ts"),
            UploadFile::Thumbnail => "thumb.jpg".into(),
        }
    }

    pub fn max_bytes(self) -> u64 {
        match self {
            UploadFile::Segment(_) => SEGMENT_MAX_BYTES,
            UploadFile::Thumbnail => THUMBNAIL_MAX_BYTES,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            UploadFile::Segment(_) => SEGMENT_CONTENT_TYPE,
            UploadFile::Thumbnail => THUMBNAIL_CONTENT_TYPE,
        }
    }

    pub fn cache_control(self) -> &'static str {
        match self {
            UploadFile::Segment(_) => CACHE_SEGMENT,
            UploadFile::Thumbnail => CACHE_THUMBNAIL,
        }
    }
}

/// The names a rendition may have: `source` and the origin's ladder (nginx-origin/uploader/src/ladder.rs). The
/// upload route refuses anything else, so a rendition name can never be a path trick or carry a key.
pub const RENDITION_NAMES: [&str; 6] = ["source", "1080p", "720p", "480p", "360p", "240p"];

/// A rendition of a broadcast, by its allowlisted name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rendition(&'static str);

impl Rendition {
    /// The ingest as the streamer sent it; its objects keep the names broadcasts had before renditions.
    pub const SOURCE: Rendition = Rendition("source");

    pub fn parse(name: &str) -> Option<Rendition> {
        RENDITION_NAMES.iter().find(|n| **n == name).map(|n| Rendition(n))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    pub fn is_source(self) -> bool {
        self == Rendition::SOURCE
    }

    /// A file of this rendition relative to the broadcast (`7.ts` for the source, `480p/7.ts` for others).
    pub fn file_path(self, file: &str) -> String {
        if self.is_source() {
            file.to_string()
        } else {
            format!("{}/{file}", self.0)
        }
    }
}

/// What the origin says of a rendition with each upload (`width`, `height`, `fps`, `codecs`), for the master playlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate_milli: Option<u32>,
    pub codecs: Option<String>,
}

/// A width or height in pixels: 1 to 8192, decimal digits without a leading zero.
pub fn parse_dimension(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| (1..=8192).contains(n))
}

/// Frames per second with at most three decimals (`30`, `29.970`), in thousandths; 0 < fps <= 1000.
pub fn parse_frame_rate_milli(s: &str) -> Option<u32> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || whole.len() > 4 || frac.len() > 3 || s.ends_with('.') {
        return None;
    }
    if !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let milli = whole.parse::<u32>().ok()? * 1000 + format!("{frac:0<3}").parse::<u32>().ok()?;
    (1..=1_000_000).contains(&milli).then_some(milli)
}

/// RFC 6381 codecs as the master playlist's CODECS attribute takes them (`avc1.64001f,mp4a.40.2`): 1-64 characters
/// of letters, digits and dots, in comma-separated non-empty parts.
pub fn parse_codecs(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.split(',')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
    ok.then(|| s.to_string())
}

/// The wall-clock time (unix ms) a segment's first frame reached the origin, as it sends it: decimal digits, no
/// later than a minute from now (clocks differ a little) and no earlier than a day ago (an upload retried that long
/// is over the backlog anyway).
pub fn parse_pdt_ms(s: &str, now_ms: i64) -> Option<i64> {
    if s.is_empty() || s.len() > 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t: i64 = s.parse().ok()?;
    (t >= now_ms - 86_400_000 && t <= now_ms + 60_000).then_some(t)
}

/// Unix milliseconds as `#EXT-X-PROGRAM-DATE-TIME` writes them: `2026-12-06T08:30:00.123Z` (UTC). Hand-written
/// (days to a civil date, H. Hinnant's algorithm) rather than a formatting library: the Worker's size is budgeted.
pub fn iso8601_ms(unix_ms: i64) -> String {
    let ms = unix_ms.rem_euclid(1000);
    let secs = unix_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The R2 key of a broadcast's file; the playback path is `/<key>`, so an R2 custom domain serves the same names.
pub fn object_key(stream_id: &str, broadcast_id: &str, file: &str) -> String {
    format!("hls/{stream_id}/{broadcast_id}/{file}")
}

/// The R2 prefix holding every object of a broadcast (for deleting it).
pub fn broadcast_prefix(stream_id: &str, broadcast_id: &str) -> String {
    format!("hls/{stream_id}/{broadcast_id}/")
}

/// A segment duration in decimal seconds as the origin sends it (`2.000`, `2`, `1.9`), in milliseconds.
/// Refused: empty, signs, exponents, more than three decimals, zero, or longer than `SEGMENT_MAX_MS`.
pub fn parse_duration_ms(s: &str) -> Option<u32> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || s.ends_with('.') || whole.len() > 5 || frac.len() > 3 {
        return None;
    }
    if !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let frac_ms: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().ok()?
    };
    let ms = whole.checked_mul(1000)?.checked_add(frac_ms)?;
    (ms > 0 && ms <= SEGMENT_MAX_MS).then_some(ms)
}

/// One segment of a broadcast as D1 keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub seq: u32,
    pub duration_ms: u32,
    /// `#EXT-X-DISCONTINUITY` goes before this segment (the origin said so, or segments before it are missing).
    pub discontinuity: bool,
    /// Discontinuities up to and including this segment (for `#EXT-X-DISCONTINUITY-SEQUENCE` of a sliding window).
    pub disc_seq: u32,
    /// When its first frame reached the origin (unix ms), for `#EXT-X-PROGRAM-DATE-TIME`.
    pub pdt_ms: Option<i64>,
}

/// Which playlist to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// The newest `LIVE_WINDOW` segments of a live broadcast.
    Live,
    /// Every segment of a broadcast that is still live (`EXT-X-PLAYLIST-TYPE:EVENT`).
    Event,
    /// Every segment of a finished broadcast, closed with `#EXT-X-ENDLIST`.
    Vod,
}

/// Writes an HLS playlist (version 3) for `segments`, which must be sorted by `seq`. `uri` names each segment.
/// `target_ms` is the longest segment of the broadcast so far: the target duration must not shrink between reloads.
pub fn render_playlist(
    kind: PlaylistKind,
    segments: &[Segment],
    target_ms: u32,
    uri: impl Fn(u32) -> String,
) -> String {
    let window = match kind {
        PlaylistKind::Live => &segments[segments.len().saturating_sub(LIVE_WINDOW)..],
        PlaylistKind::Event | PlaylistKind::Vod => segments,
    };
    let longest = window.iter().map(|s| s.duration_ms).max().unwrap_or(0).max(target_ms);
    let target = longest.div_ceil(1000).max(1);
    let mut out = String::with_capacity(64 + window.len() * 40);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    match kind {
        PlaylistKind::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
        PlaylistKind::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        PlaylistKind::Live => {}
    }
    if let Some(first) = window.first() {
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.seq);
        // The discontinuity sequence number of the first segment shown: every discontinuity up to it, including
        // its own (which is therefore not marked again below).
        if first.disc_seq > 0 {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", first.disc_seq);
        }
    } else {
        out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
    }
    for (i, s) in window.iter().enumerate() {
        // The first segment's own discontinuity is already counted in the sequence number above.
        if s.discontinuity && i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(t) = s.pdt_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_ms(t));
        }
        let _ = writeln!(out, "#EXTINF:{}.{:03},", s.duration_ms / 1000, s.duration_ms % 1000);
        out.push_str(&uri(s.seq));
        out.push('\n');
    }
    if kind == PlaylistKind::Vod {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// One rendition as the master playlist lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub rendition: Rendition,
    pub media: MediaInfo,
    /// The highest bitrate of any one segment so far (bits per second): the master's BANDWIDTH.
    pub peak_bps: u64,
    /// All bytes over all durations so far: the master's AVERAGE-BANDWIDTH.
    pub average_bps: u64,
}

/// Writes the master (multivariant) playlist: every variant that has a segment, lowest first (by height, then
/// bandwidth; an audio-only variant has no height), each pointing at `uri(rendition)`.
pub fn render_master(variants: &[Variant], uri: impl Fn(Rendition) -> String) -> String {
    let mut listed: Vec<&Variant> = variants.iter().filter(|v| v.peak_bps > 0).collect();
    listed.sort_by_key(|v| (v.media.height.unwrap_or(0), v.peak_bps));
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in listed {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={}",
            v.peak_bps,
            v.average_bps.max(1)
        );
        if let (Some(w), Some(h)) = (v.media.width, v.media.height) {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(f) = v.media.frame_rate_milli {
            let _ = write!(out, ",FRAME-RATE={}.{:03}", f / 1000, f % 1000);
        }
        if let Some(c) = &v.media.codecs {
            let _ = write!(out, ",CODECS=\"{c}\"");
        }
        out.push('\n');
        out.push_str(&uri(v.rendition));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, discontinuity: bool, disc_seq: u32) -> Segment {
        Segment {
            seq,
            duration_ms: 2000,
            discontinuity,
            disc_seq,
            pdt_ms: None,
        }
    }

    #[test]
    fn only_the_ladder_names_are_renditions() {
        for name in RENDITION_NAMES {
            assert_eq!(Rendition::parse(name).map(Rendition::as_str), Some(name));
        }
        for bad in [
            "",
            "Source",
            "4k",
            "480P",
            "../x",
            "480p/",
            "sk_abcdefghijkmnpqr_x",
            " 480p",
        ] {
            assert_eq!(Rendition::parse(bad), None, "{bad:?} must be refused");
        }
        assert_eq!(Rendition::SOURCE.file_path("3.ts"), "3.ts");
        assert_eq!(Rendition::parse("480p").unwrap().file_path("3.ts"), "480p/3.ts");
    }

    #[test]
    fn media_details_are_checked_before_they_reach_a_playlist() {
        assert_eq!(parse_dimension("1280"), Some(1280));
        for bad in ["", "0", "01", "8193", "12a", "-1", "99999"] {
            assert_eq!(parse_dimension(bad), None, "{bad:?}");
        }
        assert_eq!(parse_frame_rate_milli("30.000"), Some(30_000));
        assert_eq!(parse_frame_rate_milli("29.97"), Some(29_970));
        assert_eq!(parse_frame_rate_milli("60"), Some(60_000));
        for bad in ["", "0", "30.", ".5", "30.0001", "1001", "x"] {
            assert_eq!(parse_frame_rate_milli(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_codecs("avc1.64001f,mp4a.40.2").as_deref(),
            Some("avc1.64001f,mp4a.40.2")
        );
        for bad in ["", ",", "avc1,", "a\"b", "avc1 x", &"a".repeat(65)] {
            assert_eq!(parse_codecs(bad), None, "{bad:?}");
        }
        let now = 1_796_546_000_000;
        assert_eq!(parse_pdt_ms("1796545999000", now), Some(1_796_545_999_000));
        for bad in ["", "-1", "1e3", "0", "1796546070000", "1796446000000"] {
            assert_eq!(parse_pdt_ms(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn program_date_times_are_utc_with_milliseconds() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601_ms(1_796_546_085_795), "2026-12-06T08:34:45.795Z");
        let segs = [Segment {
            pdt_ms: Some(1_796_546_085_795),
            ..seg(0, false, 0)
        }];
        let p = render_playlist(PlaylistKind::Live, &segs, 2000, |s| format!("{s}.ts"));
        assert!(
            p.contains("#EXT-X-PROGRAM-DATE-TIME:2026-12-06T08:34:45.795Z\n#EXTINF:2.000,\n0.ts\n"),
            "{p}"
        );
    }

    #[test]
    fn the_master_playlist_lists_renditions_lowest_first_with_measured_bandwidth() {
        let v = |name: &str, w, h, peak| Variant {
            rendition: Rendition::parse(name).unwrap(),
            media: MediaInfo {
                width: Some(w),
                height: Some(h),
                frame_rate_milli: Some(30_000),
                codecs: Some("avc1.64001f,mp4a.40.2".into()),
            },
            peak_bps: peak,
            average_bps: peak / 2,
        };
        let empty = Variant {
            peak_bps: 0,
            ..v("240p", 426, 240, 0)
        };
        let m = render_master(
            &[
                v("source", 1280, 720, 2_600_000),
                v("360p", 640, 360, 700_000),
                empty,
                v("480p", 854, 480, 1_200_000),
            ],
            |r| format!("{}/live.m3u8", r.as_str()),
        );
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=700000,AVERAGE-BANDWIDTH=350000,RESOLUTION=640x360,FRAME-RATE=30.000,\
             CODECS=\"avc1.64001f,mp4a.40.2\"\n360p/live.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1200000,AVERAGE-BANDWIDTH=600000,RESOLUTION=854x480,FRAME-RATE=30.000,\
             CODECS=\"avc1.64001f,mp4a.40.2\"\n480p/live.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2600000,AVERAGE-BANDWIDTH=1300000,RESOLUTION=1280x720,FRAME-RATE=30.000,\
             CODECS=\"avc1.64001f,mp4a.40.2\"\nsource/live.m3u8\n"
        );
        let audio = Variant {
            rendition: Rendition::SOURCE,
            media: MediaInfo {
                codecs: Some("mp4a.40.2".into()),
                ..MediaInfo::default()
            },
            peak_bps: 128_000,
            average_bps: 128_000,
        };
        let m = render_master(&[audio], |r| r.as_str().to_string());
        assert!(
            m.ends_with("#EXT-X-STREAM-INF:BANDWIDTH=128000,AVERAGE-BANDWIDTH=128000,CODECS=\"mp4a.40.2\"\nsource\n")
        );
    }

    #[test]
    fn only_numbered_segments_and_the_thumbnail_may_be_uploaded() {
        assert_eq!(UploadFile::parse("0.ts"), Some(UploadFile::Segment(0)));
        assert_eq!(UploadFile::parse("123.ts"), Some(UploadFile::Segment(123)));
        assert_eq!(UploadFile::parse("thumb.jpg"), Some(UploadFile::Thumbnail));
        for bad in [
            "",
            ".ts",
            "01.ts",
            "1.TS",
            "1.ts.ts",
            "-1.ts",
            "+1.ts",
            "1234567890.ts",
            "index.m3u8",
            "../1.ts",
            "..%2F1.ts",
            "a/1.ts",
            "1.ts/",
            "thumb.jpeg",
            "Thumb.jpg",
            "sk_abcdefghijkmnpqr_AAAA",
            "1.ts\0",
            " 1.ts",
        ] {
            assert_eq!(UploadFile::parse(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_file_name_round_trips() {
        for f in [
            UploadFile::Segment(0),
            UploadFile::Segment(987654321),
            UploadFile::Thumbnail,
        ] {
            assert_eq!(UploadFile::parse(&f.file_name()), Some(f));
        }
    }

    #[test]
    fn durations_are_decimal_seconds_within_bounds() {
        assert_eq!(parse_duration_ms("2.000"), Some(2000));
        assert_eq!(parse_duration_ms("2"), Some(2000));
        assert_eq!(parse_duration_ms("1.9"), Some(1900));
        assert_eq!(parse_duration_ms("0.04"), Some(40));
        assert_eq!(parse_duration_ms("60"), Some(60_000));
        for bad in [
            "",
            "0",
            "0.000",
            "60.001",
            "-1",
            "+2",
            "2.0001",
            "1e3",
            ".5",
            "2.",
            "nan",
            "99999999999",
        ] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn objects_are_grouped_per_stream_and_broadcast() {
        assert_eq!(object_key("s", "b", "7.ts"), "hls/s/b/7.ts");
        assert!(object_key("s", "b", "7.ts").starts_with(&broadcast_prefix("s", "b")));
    }

    #[test]
    fn a_live_playlist_shows_the_newest_window() {
        let segs: Vec<Segment> = (0..10).map(|i| seg(i, false, 0)).collect();
        let p = render_playlist(PlaylistKind::Live, &segs, 2000, |s| format!("b/{s}.ts"));
        assert!(p.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n"));
        assert_eq!(p.matches("#EXTINF:2.000,").count(), LIVE_WINDOW);
        assert!(p.contains("b/9.ts\n") && !p.contains("b/3.ts"));
        assert!(!p.contains("ENDLIST") && !p.contains("PLAYLIST-TYPE"));
    }

    #[test]
    fn a_finished_broadcast_is_a_closed_vod_playlist_from_its_start() {
        let segs: Vec<Segment> = (0..10).map(|i| seg(i, false, 0)).collect();
        let p = render_playlist(PlaylistKind::Vod, &segs, 2000, |s| format!("{s}.ts"));
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n"));
        assert_eq!(p.matches("#EXTINF").count(), 10);
        assert!(p.ends_with("9.ts\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn a_growing_broadcast_is_an_event_playlist_without_an_end() {
        let segs: Vec<Segment> = (0..3).map(|i| seg(i, false, 0)).collect();
        let p = render_playlist(PlaylistKind::Event, &segs, 2000, |s| format!("{s}.ts"));
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(!p.contains("ENDLIST"));
    }

    #[test]
    fn a_missing_segment_is_marked_as_a_discontinuity() {
        let segs = [seg(0, false, 0), seg(1, false, 0), seg(3, true, 1), seg(4, false, 1)];
        let p = render_playlist(PlaylistKind::Vod, &segs, 2000, |s| format!("{s}.ts"));
        assert!(p.contains("1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n3.ts\n"));
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    }

    #[test]
    fn a_window_that_starts_after_discontinuities_carries_their_count() {
        let segs = [seg(0, false, 0), seg(2, true, 1), seg(4, true, 2), seg(5, false, 2)];
        let mut live: Vec<Segment> = segs.to_vec();
        live.extend((6..11).map(|i| seg(i, false, 2)));
        let p = render_playlist(PlaylistKind::Live, &live, 2000, |s| format!("{s}.ts"));
        // The newest six are 5..=10: both discontinuities lie before the window.
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n"));
        assert!(!p.contains("#EXT-X-DISCONTINUITY\n"));
        // A window whose first segment is itself a discontinuity counts it in the sequence instead of marking it.
        let w = [seg(4, true, 2), seg(5, false, 2)];
        let p = render_playlist(PlaylistKind::Live, &w, 2000, |s| format!("{s}.ts"));
        assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n") && !p.contains("#EXT-X-DISCONTINUITY\n"));
    }

    #[test]
    fn the_target_duration_covers_the_longest_segment_seen() {
        let segs = [Segment {
            seq: 0,
            duration_ms: 2100,
            discontinuity: false,
            disc_seq: 0,
            pdt_ms: None,
        }];
        let p = render_playlist(PlaylistKind::Live, &segs, 4001, |s| format!("{s}.ts"));
        assert!(p.contains("#EXT-X-TARGETDURATION:5\n"));
        assert!(p.contains("#EXTINF:2.100,\n"));
    }

    #[test]
    fn an_empty_broadcast_still_renders_a_valid_header() {
        let p = render_playlist(PlaylistKind::Live, &[], 0, |s| format!("{s}.ts"));
        assert_eq!(
            p,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        );
    }
}
