//! Video at the edge. The origin uploads each HLS segment (and a thumbnail now and then) once, through
//! `PUT /api/origin/hls/{broadcast_id}/{file}`; the Worker stores it in R2 and records it in D1. Viewers fetch
//! everything from the site's own origin under `/hls/`: playlists rendered from D1, segments and thumbnails from
//! R2, all through the Workers Cache API, so a colo reads each segment from R2 once however many watch there, and
//! the origin sends each segment once whatever the audience. With `MEDIA_BASE_URL` set (an R2 custom domain on the
//! bucket), playlists name segments on that domain and segment requests never run the Worker at all.
//!
//! Cache API note: it is a no-op on `*.workers.dev`; production needs the Worker on a custom domain (README).

use serde::Deserialize;
use sunnylive_core::error::ApiError;
use sunnylive_core::hls::{self, MediaInfo, PlaylistKind, Rendition, Segment, UploadFile, Variant};
use sunnylive_core::ids::{BroadcastId, StreamId};
use worker::{Cache, Headers, HttpMetadata, Method, Request, Response};

use crate::app::App;
use crate::broadcasts::{self, UploadTarget};
use crate::db;
use crate::http::{self, OrInternal};
use crate::rtmp::check_origin_token;

fn not_live() -> ApiError {
    ApiError::NotFound {
        code: "not_live",
        message: "This stream is not live.".into(),
    }
}

fn no_such_rendition() -> ApiError {
    ApiError::NotFound {
        code: "rendition_not_found",
        message: "This broadcast has no such rendition.".into(),
    }
}

fn no_such_file() -> ApiError {
    ApiError::NotFound {
        code: "not_found",
        message: "No such video file.".into(),
    }
}

// --- upload (origin -> Worker -> R2) -------------------------------------------------------------------------------

/// `PUT /api/origin/hls/{broadcast_id}/{file}?duration=<seconds>[&discontinuity=1][&pdt=..]` (the source) and
/// `PUT /api/origin/hls/{broadcast_id}/{rendition}/{file}?...` (any rendition, `source` included), from the origin's
/// local proxy (which adds the origin token). `file` is `<seq>.ts` or, on the first form only, `thumb.jpg`. A
/// segment may carry `pdt` (unix ms its first frame reached the origin) and the rendition's `width`, `height`,
/// `fps` and `codecs`. A segment already stored is answered 200 without being written again (the origin retries
/// after timeouts); a new one 201. A rendition outside the allowlist is a 422 and writes nothing.
pub async fn upload(
    app: &App,
    req: Request,
    broadcast_id: &str,
    rendition: Option<&str>,
    file: &str,
) -> Result<Response, ApiError> {
    check_origin_token(app, &req)?;
    let broadcast = BroadcastId::parse(broadcast_id).ok_or_else(|| ApiError::NotFound {
        code: "broadcast_not_found",
        message: "No such broadcast.".into(),
    })?;
    let legacy = rendition.is_none();
    let rendition = match rendition {
        None => Rendition::SOURCE,
        Some(name) => Rendition::parse(name).ok_or_else(|| {
            ApiError::invalid(
                "rendition",
                format!("must be one of {}", hls::RENDITION_NAMES.join(", ")),
            )
        })?,
    };
    let file = match UploadFile::parse(file) {
        Some(UploadFile::Thumbnail) if legacy => UploadFile::Thumbnail,
        Some(UploadFile::Segment(seq)) => UploadFile::Segment(seq),
        _ => return Err(ApiError::invalid("file", "must be <sequence number>.ts or thumb.jpg")),
    };
    let query = http::query(&req);
    let now_ms = app.now() * 1000;
    let pdt_ms = match query.get("pdt") {
        None => None,
        Some(t) => Some(
            hls::parse_pdt_ms(t, now_ms)
                .ok_or_else(|| ApiError::invalid("pdt", "must be unix milliseconds within the last day"))?,
        ),
    };
    let media = media_info(&query)?;
    let (seq, duration_ms, discontinuity) = match file {
        UploadFile::Segment(seq) => {
            let duration = query
                .get("duration")
                .and_then(|d| hls::parse_duration_ms(d))
                .ok_or_else(|| ApiError::invalid("duration", "must be the segment's length in seconds, 0 < d <= 60"))?;
            let disc = match query.get("discontinuity").map(String::as_str) {
                None | Some("0") => false,
                Some("1") => true,
                Some(_) => return Err(ApiError::invalid("discontinuity", "must be 0 or 1")),
            };
            (Some(seq), duration, disc)
        }
        UploadFile::Thumbnail => (None, 0, false),
    };
    // R2 needs the length up front to take the body as a stream (no copy through the Worker's memory, no CPU); the
    // origin's proxy always sends it.
    let length = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| ApiError::Malformed("a Content-Length header is required".into()))?;
    if length > file.max_bytes() {
        return Err(ApiError::TooLarge {
            limit: file.max_bytes() as usize,
        });
    }
    if length == 0 {
        return Err(ApiError::invalid("body", "must not be empty"));
    }
    let stream_id = match broadcasts::upload_target(app, broadcast.as_str(), rendition, seq).await? {
        UploadTarget::NotFound => {
            return Err(ApiError::NotFound {
                code: "broadcast_not_found",
                message: "No such broadcast.".into(),
            })
        }
        UploadTarget::Ended => {
            return Err(ApiError::Conflict {
                code: "broadcast_ended",
                message: "This broadcast has ended; uploads are closed.".into(),
            })
        }
        UploadTarget::Open { have_segment: true, .. } => {
            return http::json(200, &serde_json::json!({ "stored": false }));
        }
        UploadTarget::Open { stream_id, .. } => stream_id,
    };
    let key = hls::object_key(
        stream_id.as_str(),
        broadcast.as_str(),
        &rendition.file_path(&file.file_name()),
    );
    let body = req
        .inner()
        .body()
        .ok_or_else(|| ApiError::invalid("body", "must not be empty"))?;
    app.media()?
        .put(&key, body)
        .http_metadata(HttpMetadata {
            content_type: Some(file.content_type().into()),
            cache_control: Some(file.cache_control().into()),
            ..HttpMetadata::default()
        })
        .execute()
        .await
        .map_err(|e| ApiError::Malformed(format!("the upload did not arrive whole ({e})")))?;
    // Listed only now that R2 holds it whole: a playlist or a clip made while it arrives never names it.
    let now = app.now();
    match seq {
        Some(seq) => {
            let segment = Segment {
                seq,
                duration_ms,
                discontinuity,
                disc_seq: 0,
                pdt_ms,
            };
            record_segment(app, &broadcast, rendition, &segment, length, &media, now).await?;
            let origin = http::own_origin(&req, app.config.public_base_url.as_deref());
            forget_playlists(&origin, stream_id.as_str(), broadcast.as_str(), rendition).await;
            write_through_live(app, origin, stream_id, rendition);
        }
        None => {
            let statements = vec![
                db::stmt(
                    &app.db,
                    "UPDATE broadcasts SET thumbnail_at = ?2 WHERE id = ?1",
                    &[broadcast.as_str().into(), now.into()],
                )?,
                db::stmt(
                    &app.db,
                    "UPDATE streams SET thumbnail_broadcast_id = ?2, thumbnail_at = ?3 WHERE id = ?1",
                    &[stream_id.as_str().into(), broadcast.as_str().into(), now.into()],
                )?,
            ];
            app.db.batch(statements).await.or_internal("record thumbnail")?;
        }
    }
    http::json(201, &serde_json::json!({ "stored": true }))
}

/// Drops this colo's cached copies of the playlists a new segment of `rendition` changes but that are not written
/// through (the broadcast's playlist of it, and both master playlists, whose bandwidth it may change), so the next
/// player that asks here sees the new segment at once instead of after the playlist's max-age (1-2 s). Other colos
/// keep theirs until it expires: the delay the edge cache costs a viewer is at most that max-age. A cache delete is
/// free and local; a failure only costs that delay.
async fn forget_playlists(origin: &str, stream_id: &str, broadcast_id: &str, rendition: Rendition) {
    let r = rendition.as_str();
    let mut urls = vec![
        format!("{origin}/hls/{stream_id}/{broadcast_id}/{r}/index.m3u8"),
        format!("{origin}/hls/{stream_id}/master.m3u8"),
        format!("{origin}/hls/{stream_id}/{broadcast_id}/master.m3u8"),
    ];
    if rendition.is_source() {
        urls.push(format!("{origin}/hls/{stream_id}/{broadcast_id}/index.m3u8"));
    }
    for url in urls {
        if let Err(e) = Cache::default().delete(url.as_str(), false).await {
            worker::console_warn!("hls: cache delete failed: {e}");
        }
    }
}

/// Puts the rendition's new live window into this colo's cache after the upload has been answered
/// (`ctx.waitUntil`): every viewer here polls that playlist each target duration, so rendering it once per segment
/// here saves one D1 read per viewer poll that would otherwise miss after a delete (measured at 500 viewers: 629
/// against 2,275 playlist misses a minute). The origin's upload is not held up by it. A failure only leaves the
/// previous window cached until its max-age (1-2 s) and is logged; the next segment writes again.
fn write_through_live(app: &App, origin: String, stream: StreamId, rendition: Rendition) {
    app.after_answer(move |app| async move {
        let mut urls = vec![(
            format!("{origin}/hls/{}/{}/live.m3u8", stream.as_str(), rendition.as_str()),
            false,
        )];
        if rendition.is_source() {
            urls.push((format!("{origin}/hls/{}/live.m3u8", stream.as_str()), true));
        }
        // One read of D1 for both forms of the source's window. Not live any more (the broadcast ended meanwhile):
        // drop the window and let the next request find that out.
        let forms: Vec<bool> = urls.iter().map(|(_, legacy)| *legacy).collect();
        match render_live(&app, &stream, rendition, &forms).await {
            Ok(bodies) => {
                for ((url, _), body) in urls.iter().zip(bodies) {
                    let Ok(resp) = text_response(body, hls::PLAYLIST_CONTENT_TYPE, hls::CACHE_LIVE_PLAYLIST) else {
                        continue;
                    };
                    if let Err(e) = Cache::default().put(url.as_str(), mark(resp, "MISS")).await {
                        worker::console_warn!("hls: live playlist write-through failed: {e}");
                    }
                }
            }
            Err(_) => {
                for (url, _) in &urls {
                    if let Err(e) = Cache::default().delete(url.as_str(), false).await {
                        worker::console_warn!("hls: cache delete failed: {e}");
                    }
                }
            }
        }
    });
}

/// The rendition's details an upload may carry; each one present must be well-formed (422 otherwise), and width and
/// height come together.
fn media_info(query: &std::collections::HashMap<String, String>) -> Result<MediaInfo, ApiError> {
    let field = |name: &str, parse: fn(&str) -> Option<u32>, why: &str| -> Result<Option<u32>, ApiError> {
        query
            .get(name)
            .map(|v| parse(v).ok_or_else(|| ApiError::invalid(name, why)))
            .transpose()
    };
    let width = field("width", hls::parse_dimension, "must be 1-8192 pixels")?;
    let height = field("height", hls::parse_dimension, "must be 1-8192 pixels")?;
    if width.is_some() != height.is_some() {
        return Err(ApiError::invalid("height", "width and height come together"));
    }
    let frame_rate_milli = field(
        "fps",
        hls::parse_frame_rate_milli,
        "must be frames per second, 0 < fps <= 1000",
    )?;
    let codecs = query
        .get("codecs")
        .map(|c| {
            hls::parse_codecs(c)
                .ok_or_else(|| ApiError::invalid("codecs", "must be RFC 6381 codecs like avc1.64001f,mp4a.40.2"))
        })
        .transpose()?;
    Ok(MediaInfo {
        width,
        height,
        frame_rate_milli,
        codecs,
    })
}

/// Lists an uploaded segment of a rendition (and what the upload says of the rendition). A segment whose predecessor
/// in its rendition never arrived (the origin gave up on it) starts a discontinuity, so players re-sync instead of
/// stalling; the first segment of a rendition never does. The trigger of migration 0006 keeps the rendition's
/// bandwidth figures.
async fn record_segment(
    app: &App,
    broadcast: &BroadcastId,
    rendition: Rendition,
    segment: &Segment,
    bytes: u64,
    media: &MediaInfo,
    now: i64,
) -> Result<(), ApiError> {
    let mut statements = Vec::new();
    if *media != MediaInfo::default() {
        let opt = |v: Option<u32>| v.map_or(db::Arg::Null, |n| i64::from(n).into());
        statements.push(db::stmt(
            &app.db,
            "INSERT INTO hls_renditions (broadcast_id, name, width, height, frame_rate_milli, codecs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (broadcast_id, name) DO UPDATE SET width = COALESCE(excluded.width, width),
                 height = COALESCE(excluded.height, height),
                 frame_rate_milli = COALESCE(excluded.frame_rate_milli, frame_rate_milli),
                 codecs = COALESCE(excluded.codecs, codecs)",
            &[
                broadcast.as_str().into(),
                rendition.as_str().into(),
                opt(media.width),
                opt(media.height),
                opt(media.frame_rate_milli),
                media.codecs.as_deref().into(),
            ],
        )?);
    }
    statements.push(db::stmt(
        &app.db,
        "INSERT INTO hls_segments (broadcast_id, rendition, seq, duration_ms, bytes, discontinuity, disc_seq,
                                   uploaded_at, pdt_ms)
         SELECT ?1, ?7, ?2, ?3, ?4, d.d,
                COALESCE((SELECT disc_seq FROM hls_segments WHERE broadcast_id = ?1 AND rendition = ?7 AND seq < ?2
                          ORDER BY seq DESC LIMIT 1), 0) + d.d, ?6, ?8
         FROM (SELECT CASE
                 WHEN ?5 = 1 AND EXISTS (SELECT 1 FROM hls_segments WHERE broadcast_id = ?1 AND rendition = ?7
                                         AND seq < ?2) THEN 1
                 WHEN NOT EXISTS (SELECT 1 FROM hls_segments WHERE broadcast_id = ?1 AND rendition = ?7
                                  AND seq < ?2) THEN 0
                 WHEN EXISTS (SELECT 1 FROM hls_segments WHERE broadcast_id = ?1 AND rendition = ?7
                              AND seq = ?2 - 1) THEN 0
                 ELSE 1 END AS d) AS d
         WHERE true
         ON CONFLICT (broadcast_id, rendition, seq) DO NOTHING",
        &[
            broadcast.as_str().into(),
            i64::from(segment.seq).into(),
            i64::from(segment.duration_ms).into(),
            (bytes as i64).into(),
            i64::from(segment.discontinuity).into(),
            now.into(),
            rendition.as_str().into(),
            segment.pdt_ms.map_or(db::Arg::Null, db::Arg::Int),
        ],
    )?);
    app.db.batch(statements).await.or_internal("record segment")?;
    Ok(())
}

// --- playback (viewers -> Cache API -> D1 / R2) --------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct SegmentRow {
    seq: i64,
    duration_ms: i64,
    discontinuity: i64,
    disc_seq: i64,
    pdt_ms: Option<i64>,
}

impl SegmentRow {
    pub(crate) fn segment(&self) -> Segment {
        Segment {
            seq: self.seq as u32,
            duration_ms: self.duration_ms as u32,
            discontinuity: self.discontinuity != 0,
            disc_seq: self.disc_seq as u32,
            pdt_ms: self.pdt_ms,
        }
    }
}

pub(crate) const SEGMENT_COLUMNS: &str = "seq, duration_ms, discontinuity, disc_seq, pdt_ms";

/// A rendition row of `hls_renditions`, for the master playlists.
#[derive(Deserialize)]
struct RenditionRow {
    name: String,
    width: Option<i64>,
    height: Option<i64>,
    frame_rate_milli: Option<i64>,
    codecs: Option<String>,
    bytes: i64,
    duration_ms: i64,
    peak_bps: i64,
}

impl RenditionRow {
    fn variant(&self) -> Option<Variant> {
        let small = |v: Option<i64>| v.and_then(|n| u32::try_from(n).ok());
        Some(Variant {
            rendition: Rendition::parse(&self.name)?,
            media: MediaInfo {
                width: small(self.width),
                height: small(self.height),
                frame_rate_milli: small(self.frame_rate_milli),
                codecs: self.codecs.clone(),
            },
            peak_bps: self.peak_bps.max(0) as u64,
            average_bps: (self.bytes.max(0) as u64 * 8000)
                .checked_div(self.duration_ms.max(0) as u64)
                .unwrap_or(0),
        })
    }
}

pub(crate) async fn variants(app: &App, broadcast_id: &str) -> Result<Vec<Variant>, ApiError> {
    let rows: Vec<RenditionRow> = db::all(
        &app.db,
        "load renditions",
        "SELECT name, width, height, frame_rate_milli, codecs, bytes, duration_ms, peak_bps FROM hls_renditions
         WHERE broadcast_id = ?1 AND segment_count > 0",
        &[broadcast_id.into()],
    )
    .await?;
    Ok(rows.iter().filter_map(RenditionRow::variant).collect())
}

/// `x-cache: HIT` or `MISS` on every video answer, so operators (and `scripts/bench hls`) see what the edge
/// cache saved: a MISS on a segment is an R2 read, on a playlist a D1 read.
/// A cached answer's headers are immutable, so the mark goes on a copy: made by the runtime in one call (`new
/// Headers(init)`), not header by header across the wasm boundary (a cached segment is most of what viewers ask).
fn mark(resp: Response, status: &str) -> Response {
    let headers = web_sys::Headers::new_with_headers(&resp.headers().0)
        .map(Headers)
        .unwrap_or_else(|_| Headers::new());
    let _ = headers.set("x-cache", status);
    resp.with_headers(headers)
}

/// A cached answer for this exact URL, if the colo has one (the Cache API also answers Range and If-None-Match).
/// Only GET is cached (the Cache API refuses other methods); HEAD goes to the source.
/// Not asked again when `video_cache::lookup` already asked for this request and found nothing.
pub(crate) async fn cached(app: &App, req: &Request) -> Option<Response> {
    if app.video_cache_missed || req.method() != Method::Get {
        return None;
    }
    let hit = crate::video_cache::matching(req.inner()).await.flatten()?;
    crate::video_cache::marked(&hit, "HIT", None, None).map(Response::from)
}

/// Stores a copy of `resp` in the colo's cache and returns the other copy.
pub(crate) async fn remember(req: &Request, resp: Response) -> Response {
    let mut resp = mark(resp, "MISS");
    if req.method() == Method::Get {
        if let Ok(copy) = resp.cloned() {
            if let Err(e) = Cache::default().put(req, copy).await {
                worker::console_warn!("hls: cache put failed: {e}");
            }
        }
    }
    resp
}

pub(crate) fn text_response(body: String, content_type: &str, cache_control: &str) -> Result<Response, ApiError> {
    let headers = Headers::new();
    headers.set("content-type", content_type).or_internal("headers")?;
    headers.set("cache-control", cache_control).or_internal("headers")?;
    Ok(Response::ok(body).or_internal("response")?.with_headers(headers))
}

/// Where playlists point for segment `seq` of `rendition`: relative to the playlist (`relative_prefix` leads from
/// the playlist's folder to the rendition's), or on the media domain when configured.
pub(crate) fn segment_uri(
    app: &App,
    stream_id: &str,
    broadcast_id: &str,
    rendition: Rendition,
    relative_prefix: &str,
    seq: u32,
) -> String {
    match &app.config.media_base_url {
        Some(base) => format!(
            "{base}/{}",
            hls::object_key(stream_id, broadcast_id, &rendition.file_path(&format!("{seq}.ts")))
        ),
        None => format!("{relative_prefix}{seq}.ts"),
    }
}

/// The stream's live broadcast: its id and the longest segment of `rendition` so far (None: the rendition has no
/// segment yet).
#[derive(Deserialize)]
struct Live {
    broadcast_id: String,
    max_segment_ms: Option<i64>,
}

async fn live_broadcast(app: &App, stream: &StreamId, rendition: Rendition) -> Result<Live, ApiError> {
    db::one(
        &app.db,
        "load live broadcast",
        "SELECT b.id AS broadcast_id, r.max_segment_ms FROM streams s JOIN broadcasts b ON b.id = s.broadcast_id
         LEFT JOIN hls_renditions r ON r.broadcast_id = b.id AND r.name = ?2
         WHERE s.id = ?1 AND s.deleted_at IS NULL AND s.status = 'live' AND b.ended_unix IS NULL",
        &[stream.as_str().into(), rendition.as_str().into()],
    )
    .await?
    .ok_or_else(not_live)
}

/// `GET /hls/{stream_id}/master.m3u8`: the live broadcast's master playlist (what `hls_url` names): every rendition
/// with a segment, lowest first, with its measured bandwidth, resolution, frame rate and codecs.
pub async fn live_master(app: &App, req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let stream = StreamId::parse(stream_id).ok_or_else(not_live)?;
    if let Some(hit) = cached(app, &req).await {
        return Ok(hit);
    }
    let live = live_broadcast(app, &stream, Rendition::SOURCE).await?;
    let variants = variants(app, &live.broadcast_id).await?;
    if variants.is_empty() {
        // Live, but the first segment is not up yet: players retry.
        return Err(not_live());
    }
    let body = hls::render_master(&variants, |r| format!("{}/live.m3u8", r.as_str()));
    let resp = text_response(body, hls::PLAYLIST_CONTENT_TYPE, hls::CACHE_LIVE_PLAYLIST)?;
    Ok(remember(&req, resp).await)
}

/// `GET /hls/{stream_id}/{rendition}/live.m3u8`: the newest segments of one rendition of the live broadcast;
/// `GET /hls/{stream_id}/live.m3u8` (`legacy`) is the source's, as before renditions.
pub async fn live_playlist(
    app: &App,
    req: Request,
    stream_id: &str,
    rendition: Option<&str>,
) -> Result<Response, ApiError> {
    let stream = StreamId::parse(stream_id).ok_or_else(not_live)?;
    let (rendition, legacy) = match rendition {
        None => (Rendition::SOURCE, true),
        Some(name) => (Rendition::parse(name).ok_or_else(no_such_rendition)?, false),
    };
    if let Some(hit) = cached(app, &req).await {
        return Ok(hit);
    }
    let body = render_live(app, &stream, rendition, &[legacy]).await?.remove(0);
    let resp = text_response(body, hls::PLAYLIST_CONTENT_TYPE, hls::CACHE_LIVE_PLAYLIST)?;
    Ok(remember(&req, resp).await)
}

/// The live window of one rendition, rendered from D1 once for each form asked: as served at
/// `/hls/{stream}/{rendition}/live.m3u8` (`false`) or, for the source, at `/hls/{stream}/live.m3u8` (`true`, legacy):
/// what a cache miss answers and what an upload writes through.
async fn render_live(
    app: &App,
    stream: &StreamId,
    rendition: Rendition,
    forms: &[bool],
) -> Result<Vec<String>, ApiError> {
    let live = live_broadcast(app, stream, rendition).await?;
    let Some(max_segment_ms) = live.max_segment_ms else {
        // The source's first segment not up yet is the usual start of a broadcast (players retry); any other
        // rendition this broadcast does not have.
        return Err(if rendition.is_source() {
            not_live()
        } else {
            no_such_rendition()
        });
    };
    let mut rows: Vec<SegmentRow> = db::all(
        &app.db,
        "load live segments",
        &format!(
            "SELECT {SEGMENT_COLUMNS} FROM hls_segments WHERE broadcast_id = ?1 AND rendition = ?2
             ORDER BY seq DESC LIMIT {}",
            hls::LIVE_WINDOW
        ),
        &[live.broadcast_id.as_str().into(), rendition.as_str().into()],
    )
    .await?;
    if rows.is_empty() {
        return Err(not_live());
    }
    rows.reverse();
    let segments: Vec<Segment> = rows.iter().map(SegmentRow::segment).collect();
    let body = |legacy: bool| {
        let prefix = match legacy {
            true => format!("{}/", live.broadcast_id),
            false => format!("../{}/{}/", live.broadcast_id, rendition.as_str()),
        };
        hls::render_playlist(PlaylistKind::Live, &segments, max_segment_ms as u32, |seq| {
            segment_uri(app, stream.as_str(), &live.broadcast_id, rendition, &prefix, seq)
        })
    };
    Ok(forms.iter().map(|&legacy| body(legacy)).collect())
}

/// A broadcast of the stream (not deleted), how long its playlists may be cached, and the longest segment of one
/// of its renditions (None: the broadcast has no such rendition yet).
#[derive(Deserialize)]
struct BroadcastRow {
    ended_unix: Option<i64>,
    max_segment_ms: i64,
    rendition_max_ms: Option<i64>,
}

async fn load_broadcast(
    app: &App,
    stream: &StreamId,
    broadcast: &BroadcastId,
    rendition: Rendition,
) -> Result<BroadcastRow, ApiError> {
    db::one(
        &app.db,
        "load broadcast",
        "SELECT b.ended_unix, b.max_segment_ms, r.max_segment_ms AS rendition_max_ms
         FROM broadcasts b JOIN streams s ON s.id = b.stream_id
         LEFT JOIN hls_renditions r ON r.broadcast_id = b.id AND r.name = ?3
         WHERE b.id = ?1 AND b.stream_id = ?2 AND b.deleted_at IS NULL AND s.deleted_at IS NULL",
        &[
            broadcast.as_str().into(),
            stream.as_str().into(),
            rendition.as_str().into(),
        ],
    )
    .await?
    .ok_or_else(no_such_file)
}

impl BroadcastRow {
    /// Growing (EVENT) while live; closed (VOD) once ended, cached briefly while its last uploads may still come.
    fn kind(&self, app: &App) -> (PlaylistKind, &'static str) {
        let settled = self
            .ended_unix
            .is_some_and(|at| at < app.now() - hls::UPLOAD_GRACE_SECONDS);
        match (self.ended_unix, settled) {
            (None, _) => (PlaylistKind::Event, hls::CACHE_GROWING_PLAYLIST),
            (Some(_), false) => (PlaylistKind::Vod, hls::CACHE_GROWING_PLAYLIST),
            (Some(_), true) => (PlaylistKind::Vod, hls::CACHE_ENDED_PLAYLIST),
        }
    }
}

/// `GET /hls/{stream_id}/{broadcast_id}/master.m3u8`: a broadcast's master playlist, live or past: every rendition
/// it has, lowest first (what a past broadcast's `playlist_url` names).
pub async fn broadcast_master(
    app: &App,
    req: Request,
    stream_id: &str,
    broadcast_id: &str,
) -> Result<Response, ApiError> {
    let (Some(stream), Some(broadcast)) = (StreamId::parse(stream_id), BroadcastId::parse(broadcast_id)) else {
        return Err(no_such_file());
    };
    if let Some(hit) = cached(app, &req).await {
        return Ok(hit);
    }
    let row = load_broadcast(app, &stream, &broadcast, Rendition::SOURCE).await?;
    let variants = variants(app, broadcast.as_str()).await?;
    let body = hls::render_master(&variants, |r| format!("{}/index.m3u8", r.as_str()));
    let resp = text_response(body, hls::PLAYLIST_CONTENT_TYPE, row.kind(app).1)?;
    Ok(remember(&req, resp).await)
}

/// `GET /hls/{stream_id}/{broadcast_id}/{rendition}/index.m3u8`: one rendition of a broadcast from its start;
/// growing (EVENT) while live, closed (VOD, `#EXT-X-ENDLIST`) once it ended. `GET .../{broadcast_id}/index.m3u8`
/// (`rendition` None) is the source's, as before renditions.
pub async fn broadcast_playlist(
    app: &App,
    req: Request,
    stream_id: &str,
    broadcast_id: &str,
    rendition: Option<&str>,
) -> Result<Response, ApiError> {
    let (Some(stream), Some(broadcast)) = (StreamId::parse(stream_id), BroadcastId::parse(broadcast_id)) else {
        return Err(no_such_file());
    };
    let rendition = match rendition {
        None => Rendition::SOURCE,
        Some(name) => Rendition::parse(name).ok_or_else(no_such_rendition)?,
    };
    if let Some(hit) = cached(app, &req).await {
        return Ok(hit);
    }
    let row = load_broadcast(app, &stream, &broadcast, rendition).await?;
    if row.rendition_max_ms.is_none() && !rendition.is_source() {
        return Err(no_such_rendition());
    }
    let rows: Vec<SegmentRow> = db::all(
        &app.db,
        "load broadcast segments",
        &format!("SELECT {SEGMENT_COLUMNS} FROM hls_segments WHERE broadcast_id = ?1 AND rendition = ?2 ORDER BY seq"),
        &[broadcast.as_str().into(), rendition.as_str().into()],
    )
    .await?;
    let segments: Vec<Segment> = rows.iter().map(SegmentRow::segment).collect();
    let (mut kind, cache) = row.kind(app);
    // Just ended: a rendition is made from each source segment after it, so its last segments may still be on their
    // way. It stays open (EVENT, no `#EXT-X-ENDLIST`) until it has the source's last segment, or until the upload grace
    // is over (a rendition segment the transcoder skipped never comes), so a player that opens it now plays to its end.
    if matches!(kind, PlaylistKind::Vod) && cache == hls::CACHE_GROWING_PLAYLIST && !rendition.is_source() {
        #[derive(Deserialize)]
        struct Last {
            last: Option<i64>,
        }
        let source: Option<Last> = db::one(
            &app.db,
            "load the source's last segment",
            "SELECT MAX(seq) AS last FROM hls_segments WHERE broadcast_id = ?1 AND rendition = 'source'",
            &[broadcast.as_str().into()],
        )
        .await?;
        let source_last = source.and_then(|s| s.last);
        let mine = segments.last().map(|s| i64::from(s.seq));
        if source_last.is_some_and(|last| mine.is_none_or(|m| m < last)) {
            kind = PlaylistKind::Event;
        }
    }
    let target = row.rendition_max_ms.unwrap_or(row.max_segment_ms);
    let body = hls::render_playlist(kind, &segments, target as u32, |seq| {
        segment_uri(app, stream.as_str(), broadcast.as_str(), rendition, "", seq)
    });
    let resp = text_response(body, hls::PLAYLIST_CONTENT_TYPE, cache)?;
    Ok(remember(&req, resp).await)
}

/// `GET /hls/{stream_id}/{broadcast_id}/{file}` (the source's segments and the thumbnail) and
/// `GET /hls/{stream_id}/{broadcast_id}/{rendition}/{file}` (a rendition's segments): from R2, through the colo's
/// cache. Range and If-None-Match are answered by the cache on a hit and from R2's metadata on a miss.
pub async fn file(
    app: &App,
    req: Request,
    stream_id: &str,
    broadcast_id: &str,
    rendition: Option<&str>,
    file: &str,
) -> Result<Response, ApiError> {
    let rendition = match rendition {
        None => Some(Rendition::SOURCE),
        Some(name) => Rendition::parse(name),
    };
    let file = UploadFile::parse(file).filter(|f| rendition == Some(Rendition::SOURCE) || *f != UploadFile::Thumbnail);
    let (Some(stream), Some(broadcast), Some(rendition), Some(file)) = (
        StreamId::parse(stream_id),
        BroadcastId::parse(broadcast_id),
        rendition,
        file,
    ) else {
        return Err(no_such_file());
    };
    if let Some(hit) = cached(app, &req).await {
        return Ok(hit);
    }
    let key = hls::object_key(
        stream.as_str(),
        broadcast.as_str(),
        &rendition.file_path(&file.file_name()),
    );
    object(app, &req, &key, file).await
}

/// One R2 object as a video file of kind `file` (its type and caching follow from that), with Range and
/// If-None-Match; a whole answer goes into the colo's cache. The caller has looked in the cache already.
pub(crate) async fn object(app: &App, req: &Request, key: &str, file: UploadFile) -> Result<Response, ApiError> {
    let range = req.headers().get("range").ok().flatten();
    let bucket = app.media()?;
    let mut get = bucket.get(key);
    let wanted = range.as_deref().and_then(parse_range);
    if let Some(r) = &wanted {
        get = get.range(r.clone());
    }
    let object = get
        .execute()
        .await
        .or_internal("read video object")?
        .ok_or_else(no_such_file)?;
    // The type and caching follow from the file name (the allowlist), whatever metadata the object carries.
    let headers = Headers::new();
    headers
        .set("content-type", file.content_type())
        .or_internal("headers")?;
    headers
        .set("cache-control", file.cache_control())
        .or_internal("headers")?;
    headers.set("etag", &object.http_etag()).or_internal("headers")?;
    headers.set("accept-ranges", "bytes").or_internal("headers")?;
    let etag = object.http_etag();
    if req
        .headers()
        .get("if-none-match")
        .ok()
        .flatten()
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok(Response::empty()
            .or_internal("response")?
            .with_status(304)
            .with_headers(headers));
    }
    let size = object.size();
    let body = object
        .body()
        .ok_or_else(no_such_file)?
        .response_body()
        .or_internal("object body")?;
    if let Some(r) = wanted {
        let (start, len) = match r {
            worker::Range::OffsetWithLength { offset, length } => (offset, length.min(size.saturating_sub(offset))),
            worker::Range::OffsetToEnd { offset } => (offset, size.saturating_sub(offset)),
            worker::Range::Suffix { suffix } => (size.saturating_sub(suffix), suffix.min(size)),
            worker::Range::Prefix { length } => (0, length.min(size)),
        };
        if len == 0 || start >= size {
            headers
                .set("content-range", &format!("bytes */{size}"))
                .or_internal("headers")?;
            return Ok(Response::empty()
                .or_internal("response")?
                .with_status(416)
                .with_headers(headers));
        }
        headers
            .set("content-range", &format!("bytes {start}-{}/{size}", start + len - 1))
            .or_internal("headers")?;
        return Ok(Response::from_body(body)
            .or_internal("response")?
            .with_status(206)
            .with_headers(headers));
    }
    let resp = Response::from_body(body).or_internal("response")?.with_headers(headers);
    Ok(remember(req, resp).await)
}

/// A single `bytes=` range (`a-b`, `a-`, `-n`); anything else is served whole, as RFC 9110 allows.
fn parse_range(header: &str) -> Option<worker::Range> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    match (a.trim(), b.trim()) {
        ("", n) => n.parse().ok().map(|suffix| worker::Range::Suffix { suffix }),
        (a, "") => a.parse().ok().map(|offset| worker::Range::OffsetToEnd { offset }),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            (b >= a).then_some(worker::Range::OffsetWithLength {
                offset: a,
                length: b - a + 1,
            })
        }
    }
}
