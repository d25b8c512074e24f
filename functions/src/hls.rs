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
use sunnylive_core::hls::{self, PlaylistKind, Segment, UploadFile};
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

fn no_such_file() -> ApiError {
    ApiError::NotFound {
        code: "not_found",
        message: "No such video file.".into(),
    }
}

// --- upload (origin -> Worker -> R2) -------------------------------------------------------------------------------

/// `PUT /api/origin/hls/{broadcast_id}/{file}?duration=<seconds>[&discontinuity=1]`, from the origin's local proxy
/// (which adds the origin token). `file` is `<seq>.ts` or `thumb.jpg`. A segment already stored is answered 200
/// without being written again (the origin retries after timeouts); a new one 201.
pub async fn upload(app: &App, req: Request, broadcast_id: &str, file: &str) -> Result<Response, ApiError> {
    check_origin_token(app, &req)?;
    let broadcast = BroadcastId::parse(broadcast_id).ok_or_else(|| ApiError::NotFound {
        code: "broadcast_not_found",
        message: "No such broadcast.".into(),
    })?;
    let file = UploadFile::parse(file)
        .ok_or_else(|| ApiError::invalid("file", "must be <sequence number>.ts or thumb.jpg"))?;
    let query = http::query(&req);
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
    let stream_id = match broadcasts::upload_target(app, broadcast.as_str(), seq).await? {
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
    let key = hls::object_key(stream_id.as_str(), broadcast.as_str(), &file.file_name());
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
    let now = app.now();
    match seq {
        Some(seq) => {
            record_segment(app, &broadcast, seq, duration_ms, length, discontinuity, now).await?;
            forget_playlists(app, &req, stream_id.as_str(), broadcast.as_str()).await;
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

/// Drops this colo's cached copies of the stream's live playlist and of the broadcast's playlist, so the next
/// player that asks here sees the new segment at once instead of after the playlist's max-age (1-2 s). Other colos
/// keep theirs until it expires: the delay the edge cache costs a viewer is at most that max-age. A cache delete is
/// free and local; a failure only costs that delay.
async fn forget_playlists(app: &App, req: &Request, stream_id: &str, broadcast_id: &str) {
    let origin = http::own_origin(req, app.config.public_base_url.as_deref());
    for url in [
        format!("{origin}/hls/{stream_id}/live.m3u8"),
        format!("{origin}/hls/{stream_id}/{broadcast_id}/index.m3u8"),
    ] {
        if let Err(e) = Cache::default().delete(url.as_str(), false).await {
            worker::console_warn!("hls: cache delete failed: {e}");
        }
    }
}

/// Lists an uploaded segment. A segment whose predecessor never arrived (the origin gave up on it) starts a
/// discontinuity, so players re-sync instead of stalling; the first segment of a broadcast never does.
async fn record_segment(
    app: &App,
    broadcast: &BroadcastId,
    seq: u32,
    duration_ms: u32,
    bytes: u64,
    discontinuity: bool,
    now: i64,
) -> Result<(), ApiError> {
    db::run(
        &app.db,
        "record segment",
        "INSERT INTO hls_segments (broadcast_id, seq, duration_ms, bytes, discontinuity, disc_seq, uploaded_at)
         SELECT ?1, ?2, ?3, ?4, d.d,
                COALESCE((SELECT disc_seq FROM hls_segments WHERE broadcast_id = ?1 AND seq < ?2
                          ORDER BY seq DESC LIMIT 1), 0) + d.d, ?6
         FROM (SELECT CASE
                 WHEN ?5 = 1 AND EXISTS (SELECT 1 FROM hls_segments WHERE broadcast_id = ?1 AND seq < ?2) THEN 1
                 WHEN NOT EXISTS (SELECT 1 FROM hls_segments WHERE broadcast_id = ?1 AND seq < ?2) THEN 0
                 WHEN EXISTS (SELECT 1 FROM hls_segments WHERE broadcast_id = ?1 AND seq = ?2 - 1) THEN 0
                 ELSE 1 END AS d) AS d
         WHERE true
         ON CONFLICT (broadcast_id, seq) DO NOTHING",
        &[
            broadcast.as_str().into(),
            i64::from(seq).into(),
            i64::from(duration_ms).into(),
            (bytes as i64).into(),
            i64::from(discontinuity).into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

// --- playback (viewers -> Cache API -> D1 / R2) --------------------------------------------------------------------

#[derive(Deserialize)]
struct SegmentRow {
    seq: i64,
    duration_ms: i64,
    discontinuity: i64,
    disc_seq: i64,
}

impl SegmentRow {
    fn segment(&self) -> Segment {
        Segment {
            seq: self.seq as u32,
            duration_ms: self.duration_ms as u32,
            discontinuity: self.discontinuity != 0,
            disc_seq: self.disc_seq as u32,
        }
    }
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
async fn cached(req: &Request) -> Option<Response> {
    if req.method() != Method::Get {
        return None;
    }
    Cache::default()
        .get(req, false)
        .await
        .ok()
        .flatten()
        .map(|r| mark(r, "HIT"))
}

/// Stores a copy of `resp` in the colo's cache and returns the other copy.
async fn remember(req: &Request, resp: Response) -> Response {
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

fn text_response(body: String, content_type: &str, cache_control: &str) -> Result<Response, ApiError> {
    let headers = Headers::new();
    headers.set("content-type", content_type).or_internal("headers")?;
    headers.set("cache-control", cache_control).or_internal("headers")?;
    Ok(Response::ok(body).or_internal("response")?.with_headers(headers))
}

/// Where playlists point for segment `seq`: relative to the playlist, or on the media domain when configured.
fn segment_uri(app: &App, stream_id: &str, broadcast_id: &str, relative_prefix: &str, seq: u32) -> String {
    match &app.config.media_base_url {
        Some(base) => format!(
            "{base}/{}",
            hls::object_key(stream_id, broadcast_id, &format!("{seq}.ts"))
        ),
        None => format!("{relative_prefix}{seq}.ts"),
    }
}

/// `GET /hls/{stream_id}/live.m3u8`: the newest segments of the stream's live broadcast (what `hls_url` names).
pub async fn live_playlist(app: &App, req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let stream = StreamId::parse(stream_id).ok_or_else(not_live)?;
    if let Some(hit) = cached(&req).await {
        return Ok(hit);
    }
    #[derive(Deserialize)]
    struct Live {
        broadcast_id: String,
        max_segment_ms: i64,
    }
    let live: Live = db::one(
        &app.db,
        "load live broadcast",
        "SELECT b.id AS broadcast_id, b.max_segment_ms FROM streams s JOIN broadcasts b ON b.id = s.broadcast_id
         WHERE s.id = ?1 AND s.deleted_at IS NULL AND s.status = 'live' AND b.ended_unix IS NULL",
        &[stream.as_str().into()],
    )
    .await?
    .ok_or_else(not_live)?;
    let mut rows: Vec<SegmentRow> = db::all(
        &app.db,
        "load live segments",
        &format!(
            "SELECT seq, duration_ms, discontinuity, disc_seq FROM hls_segments WHERE broadcast_id = ?1
             ORDER BY seq DESC LIMIT {}",
            hls::LIVE_WINDOW
        ),
        &[live.broadcast_id.as_str().into()],
    )
    .await?;
    if rows.is_empty() {
        // Live, but the first segment is not up yet: players retry.
        return Err(not_live());
    }
    rows.reverse();
    let segments: Vec<Segment> = rows.iter().map(SegmentRow::segment).collect();
    let prefix = format!("{}/", live.broadcast_id);
    let body = hls::render_playlist(PlaylistKind::Live, &segments, live.max_segment_ms as u32, |seq| {
        segment_uri(app, stream.as_str(), &live.broadcast_id, &prefix, seq)
    });
    let resp = text_response(body, hls::PLAYLIST_CONTENT_TYPE, hls::CACHE_LIVE_PLAYLIST)?;
    Ok(remember(&req, resp).await)
}

/// `GET /hls/{stream_id}/{broadcast_id}/index.m3u8`: a broadcast from its start; growing (EVENT) while live, closed
/// (VOD, `#EXT-X-ENDLIST`) once it ended.
pub async fn broadcast_playlist(
    app: &App,
    req: Request,
    stream_id: &str,
    broadcast_id: &str,
) -> Result<Response, ApiError> {
    let (Some(stream), Some(broadcast)) = (StreamId::parse(stream_id), BroadcastId::parse(broadcast_id)) else {
        return Err(no_such_file());
    };
    if let Some(hit) = cached(&req).await {
        return Ok(hit);
    }
    #[derive(Deserialize)]
    struct Row {
        ended_unix: Option<i64>,
        max_segment_ms: i64,
    }
    let row: Row = db::one(
        &app.db,
        "load broadcast",
        "SELECT b.ended_unix, b.max_segment_ms FROM broadcasts b JOIN streams s ON s.id = b.stream_id
         WHERE b.id = ?1 AND b.stream_id = ?2 AND b.deleted_at IS NULL AND s.deleted_at IS NULL",
        &[broadcast.as_str().into(), stream.as_str().into()],
    )
    .await?
    .ok_or_else(no_such_file)?;
    let rows: Vec<SegmentRow> = db::all(
        &app.db,
        "load broadcast segments",
        "SELECT seq, duration_ms, discontinuity, disc_seq FROM hls_segments WHERE broadcast_id = ?1 ORDER BY seq",
        &[broadcast.as_str().into()],
    )
    .await?;
    let segments: Vec<Segment> = rows.iter().map(SegmentRow::segment).collect();
    // Still accepting its last segments: keep the playlist short-lived so the tail shows up.
    let settled = row
        .ended_unix
        .is_some_and(|at| at < app.now() - hls::UPLOAD_GRACE_SECONDS);
    let (kind, cache) = match (row.ended_unix, settled) {
        (None, _) => (PlaylistKind::Event, hls::CACHE_GROWING_PLAYLIST),
        (Some(_), false) => (PlaylistKind::Vod, hls::CACHE_GROWING_PLAYLIST),
        (Some(_), true) => (PlaylistKind::Vod, hls::CACHE_ENDED_PLAYLIST),
    };
    let body = hls::render_playlist(kind, &segments, row.max_segment_ms as u32, |seq| {
        segment_uri(app, stream.as_str(), broadcast.as_str(), "", seq)
    });
    let resp = text_response(body, hls::PLAYLIST_CONTENT_TYPE, cache)?;
    Ok(remember(&req, resp).await)
}

/// `GET /hls/{stream_id}/{broadcast_id}/{file}`: a segment or thumbnail from R2, through the colo's cache.
/// Range and If-None-Match are answered by the cache on a hit and from R2's metadata on a miss.
pub async fn file(
    app: &App,
    req: Request,
    stream_id: &str,
    broadcast_id: &str,
    file: &str,
) -> Result<Response, ApiError> {
    let (Some(stream), Some(broadcast), Some(file)) = (
        StreamId::parse(stream_id),
        BroadcastId::parse(broadcast_id),
        UploadFile::parse(file),
    ) else {
        return Err(no_such_file());
    };
    if let Some(hit) = cached(&req).await {
        return Ok(hit);
    }
    let key = hls::object_key(stream.as_str(), broadcast.as_str(), &file.file_name());
    let range = req.headers().get("range").ok().flatten();
    let bucket = app.media()?;
    let mut get = bucket.get(&key);
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
    Ok(remember(&req, resp).await)
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
