//! Clips (issue 25): up to a minute of a broadcast, played as a VOD playlist over segments that already exist. This
//! module holds the rules: what a clip request may ask for (`ClipRequest`) and which segments a clip takes
//! (`pick`): whole segments, from the boundary nearest the asked start, until the clip is as long as asked to
//! within half a segment. A clip of the live stream (no start) ends at the newest segment.

use crate::error::ApiError;
use crate::hls::Segment;

/// Shortest clip, in seconds.
pub const MIN_SECONDS: u32 = 5;
/// Longest clip, in seconds.
pub const MAX_SECONDS: u32 = 60;
/// Latest start accepted (a year of video): past it, no broadcast holds the clip anyway.
const MAX_START_SECONDS: f64 = 366.0 * 86_400.0;
/// Longest clip title, in characters.
pub const TITLE_MAX_CHARS: usize = 100;

/// What `POST /api/streams/{id}/clips` asks for, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipRequest {
    /// A past (or the live) broadcast; None: the stream's live broadcast.
    pub broadcast_id: Option<String>,
    /// Where the clip starts in the broadcast (ms from its first segment); None: the last `duration_ms` of it
    /// (for the live broadcast, the newest seconds).
    pub start_ms: Option<u64>,
    pub duration_ms: u64,
    /// None: the stream's title.
    pub title: Option<String>,
}

fn number(body: &serde_json::Map<String, serde_json::Value>, name: &str) -> Result<Option<f64>, ApiError> {
    match body.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| ApiError::invalid(name, "must be a number of seconds")),
    }
}

impl ClipRequest {
    /// Reads the request body; every field wrong is a 422 naming it.
    pub fn parse(body: &serde_json::Map<String, serde_json::Value>) -> Result<ClipRequest, ApiError> {
        let duration =
            number(body, "duration_seconds")?.ok_or_else(|| ApiError::invalid("duration_seconds", "is required"))?;
        if !(f64::from(MIN_SECONDS)..=f64::from(MAX_SECONDS)).contains(&duration) {
            return Err(ApiError::invalid(
                "duration_seconds",
                format!("must be from {MIN_SECONDS} to {MAX_SECONDS} seconds"),
            ));
        }
        let start = number(body, "start_seconds")?;
        if start.is_some_and(|s| !(0.0..=MAX_START_SECONDS).contains(&s)) {
            return Err(ApiError::invalid("start_seconds", "must be 0 or more"));
        }
        let broadcast_id = match body.get("broadcast_id") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if crate::ids::looks_like_id(s) => Some(s.clone()),
            Some(_) => return Err(ApiError::invalid("broadcast_id", "is not a broadcast id")),
        };
        let title = match body.get("title") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() || t.chars().count() > TITLE_MAX_CHARS || t.chars().any(char::is_control) {
                    return Err(ApiError::invalid(
                        "title",
                        format!("must be 1 to {TITLE_MAX_CHARS} characters, no control characters"),
                    ));
                }
                Some(t.to_string())
            }
            Some(_) => return Err(ApiError::invalid("title", "must be a string")),
        };
        Ok(ClipRequest {
            broadcast_id,
            start_ms: start.map(|s| (s * 1000.0).round() as u64),
            duration_ms: (duration * 1000.0).round() as u64,
            title,
        })
    }
}

/// The segments a clip takes: `first_seq..=last_seq`, starting `start_ms` into the broadcast and playing
/// `duration_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub first_seq: u32,
    pub last_seq: u32,
    pub start_ms: u64,
    pub duration_ms: u64,
}

/// Picks the segments (sorted by `seq`, one rendition's) of a clip `duration_ms` long starting at `start_ms`, or,
/// with no start, ending at the newest segment. 422 when the broadcast does not hold that much video there.
pub fn pick(segments: &[Segment], start_ms: Option<u64>, duration_ms: u64) -> Result<Span, ApiError> {
    let total: u64 = segments.iter().map(|s| u64::from(s.duration_ms)).sum();
    let seconds = |ms: u64| format!("{:.1}", ms as f64 / 1000.0);
    // Where each segment starts in the broadcast.
    let offsets: Vec<u64> = segments
        .iter()
        .scan(0u64, |at, s| {
            let here = *at;
            *at += u64::from(s.duration_ms);
            Some(here)
        })
        .collect();
    let taken = |from: usize, backwards: bool| -> (usize, usize, u64) {
        // Takes segments while the clip stays within half a segment of the asked length; at least one.
        let mut acc = 0u64;
        let (mut lo, mut hi) = (from, from);
        let order: Box<dyn Iterator<Item = usize>> = if backwards {
            Box::new((0..=from).rev())
        } else {
            Box::new(from..segments.len())
        };
        for (n, i) in order.enumerate() {
            let d = u64::from(segments[i].duration_ms);
            if n > 0 && acc + d / 2 > duration_ms {
                break;
            }
            acc += d;
            lo = lo.min(i);
            hi = hi.max(i);
        }
        (lo, hi, acc)
    };
    let (lo, hi, acc) = match start_ms {
        None => {
            if segments.is_empty() || total < duration_ms {
                return Err(ApiError::invalid(
                    "duration_seconds",
                    format!("the live stream has only {} s of video so far", seconds(total)),
                ));
            }
            taken(segments.len() - 1, true)
        }
        Some(start) => {
            if segments.is_empty() || start + duration_ms > total {
                return Err(ApiError::invalid(
                    "start_seconds",
                    format!("the clip must lie within the broadcast ({} s long)", seconds(total)),
                ));
            }
            // The segment holding `start`, or the next when `start` is past its middle.
            let mut i = offsets.partition_point(|&o| o <= start).saturating_sub(1);
            if start - offsets[i] > u64::from(segments[i].duration_ms) / 2 && i + 1 < segments.len() {
                i += 1;
            }
            taken(i, false)
        }
    };
    Ok(Span {
        first_seq: segments[lo].seq,
        last_seq: segments[hi].seq,
        start_ms: offsets[lo],
        duration_ms: acc,
    })
}

/// Text for an HTML attribute or element: `&`, `<`, `>`, `"` and `'` escaped.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The link-preview tags of a clip's page (Open Graph and Twitter's card), every value escaped: link-preview bots
/// read the HTML as sent and run no script. `image` is an absolute URL (None: the clip has no thumbnail).
pub fn preview_tags(title: &str, description: &str, page_url: &str, image: Option<&str>) -> String {
    let mut tags = vec![
        ("og:type", "video.other"),
        ("og:site_name", "Sunnylive"),
        ("og:title", title),
        ("og:description", description),
        ("og:url", page_url),
        (
            "twitter:card",
            if image.is_some() {
                "summary_large_image"
            } else {
                "summary"
            },
        ),
        ("twitter:title", title),
    ];
    if let Some(image) = image {
        tags.push(("og:image", image));
    }
    let mut out = format!("<meta name=\"description\" content=\"{}\">", html_escape(description));
    for (property, content) in tags {
        // Open Graph names its tags in `property`, Twitter's cards in `name`.
        let attribute = if property.starts_with("og:") {
            "property"
        } else {
            "name"
        };
        out.push_str(&format!(
            "\n<meta {attribute}=\"{property}\" content=\"{}\">",
            html_escape(content)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(durations: &[u32]) -> Vec<Segment> {
        durations
            .iter()
            .enumerate()
            .map(|(i, &d)| Segment {
                seq: i as u32,
                duration_ms: d,
                discontinuity: false,
                disc_seq: 0,
                pdt_ms: None,
            })
            .collect()
    }

    fn body(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().unwrap().clone()
    }

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::Invalid(fields) => format!("{fields:?}"),
            other => panic!("not a 422: {other:?}"),
        }
    }

    #[test]
    fn a_clip_is_five_to_sixty_seconds() {
        for bad in [4.9, 60.5, -1.0, 0.0] {
            let e = ClipRequest::parse(&body(serde_json::json!({ "duration_seconds": bad }))).unwrap_err();
            assert!(field_of(e).contains("duration_seconds"), "{bad}");
        }
        let ok = ClipRequest::parse(&body(serde_json::json!({ "duration_seconds": 60 }))).unwrap();
        assert_eq!((ok.duration_ms, ok.start_ms, ok.broadcast_id), (60_000, None, None));
        let e = ClipRequest::parse(&body(serde_json::json!({ "duration_seconds": "20" }))).unwrap_err();
        assert!(field_of(e).contains("duration_seconds"));
        let e = ClipRequest::parse(&body(serde_json::json!({}))).unwrap_err();
        assert!(field_of(e).contains("duration_seconds"));
    }

    #[test]
    fn a_start_without_a_broadcast_is_in_the_live_one_and_titles_and_ids_are_checked() {
        let live =
            ClipRequest::parse(&body(serde_json::json!({ "duration_seconds": 10, "start_seconds": 3 }))).unwrap();
        assert_eq!((live.broadcast_id, live.start_ms), (None, Some(3000)));
        let e = ClipRequest::parse(&body(
            serde_json::json!({ "duration_seconds": 10, "broadcast_id": "../x" }),
        ))
        .unwrap_err();
        assert!(field_of(e).contains("broadcast_id"));
        let e =
            ClipRequest::parse(&body(serde_json::json!({ "duration_seconds": 10, "title": "a\u{7}b" }))).unwrap_err();
        assert!(field_of(e).contains("title"));
        let ok = ClipRequest::parse(&body(serde_json::json!({
            "duration_seconds": 10, "start_seconds": 2.5, "broadcast_id": "abcdefghijkmnpqr", "title": "  Nice  "
        })))
        .unwrap();
        assert_eq!(ok.start_ms, Some(2500));
        assert_eq!(ok.title.as_deref(), Some("Nice"));
    }

    #[test]
    fn a_live_clip_ends_at_the_newest_segment_and_is_as_long_as_asked_within_half_a_segment() {
        let s = segments(&[2000; 20]);
        let span = pick(&s, None, 20_000).unwrap();
        assert_eq!((span.first_seq, span.last_seq, span.duration_ms), (10, 19, 20_000));
        assert_eq!(span.start_ms, 20_000);
        // 5 s of 2-s segments: 3 segments (6 s) is within half a segment of 5 s... 2 (4 s) is too.
        let span = pick(&s, None, 5_000).unwrap();
        assert!((4_000..=6_000).contains(&span.duration_ms), "{span:?}");
    }

    #[test]
    fn a_live_clip_longer_than_the_broadcast_so_far_is_refused() {
        let e = pick(&segments(&[2000; 5]), None, 20_000).unwrap_err();
        assert!(field_of(e).contains("only 10.0 s"));
        assert!(pick(&[], None, 5_000).is_err());
    }

    #[test]
    fn a_clip_of_a_broadcast_starts_at_the_nearest_boundary() {
        let s = segments(&[2000; 30]);
        let span = pick(&s, Some(10_900), 10_000).unwrap();
        assert_eq!((span.first_seq, span.last_seq, span.start_ms), (5, 9, 10_000));
        let span = pick(&s, Some(11_100), 10_000).unwrap();
        assert_eq!((span.first_seq, span.last_seq, span.start_ms), (6, 10, 12_000));
        // Uneven segments: never more than half a segment off the asked length.
        let s = segments(&[3000, 1000, 4000, 2000, 2000, 5000, 1000]);
        let span = pick(&s, Some(0), 9_000).unwrap();
        assert!(span.duration_ms.abs_diff(9_000) <= 2_000, "{span:?}");
    }

    #[test]
    fn a_clip_outside_the_broadcast_is_refused() {
        let s = segments(&[2000; 10]);
        let e = pick(&s, Some(15_000), 10_000).unwrap_err();
        assert!(field_of(e).contains("start_seconds"));
        assert!(pick(&s, Some(10_000), 10_000).is_ok());
    }

    #[test]
    fn preview_tags_name_the_clip_and_escape_what_its_creator_typed() {
        let tags = preview_tags(
            "Best \"goal\" <ever>",
            "A 20 s clip",
            "https://sunny.example/clip/abc",
            Some("https://sunny.example/t.jpg"),
        );
        assert!(
            tags.contains(r#"<meta property="og:title" content="Best &quot;goal&quot; &lt;ever&gt;">"#),
            "{tags}"
        );
        assert!(tags.contains(r#"<meta property="og:image" content="https://sunny.example/t.jpg">"#));
        assert!(tags.contains(r#"<meta property="og:url" content="https://sunny.example/clip/abc">"#));
        assert!(!tags.contains("<ever>"));
        assert!(!preview_tags("t", "d", "u", None).contains("og:image"));
    }
}
