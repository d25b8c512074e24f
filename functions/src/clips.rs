//! Clips (issue 25): any signed-in viewer cuts up to a minute of a broadcast (the live stream's last seconds, or a
//! stretch of a past broadcast) into a clip with its own page, thumbnail and title. A clip copies no video: its
//! playlists (a master and one per rendition, written once when it is made; a clip never changes) name the
//! broadcast's own segments, and `clip_objects` lists them, which keeps them in R2 whatever happens to the broadcast
//! (`broadcasts::purge_one` leaves every object a clip holds). Deleting a clip (`forget`) deletes its thumbnail and
//! whatever only it held once the broadcast is gone. The rules (lengths, which segments) are `sunnylive_core::clip`.

use serde_json::Value;
use sunnylive_core::cache;
use sunnylive_core::clip::{self, ClipRequest};
use sunnylive_core::error::ApiError;
use sunnylive_core::hls::{self, PlaylistKind, Rendition, Segment, UploadFile};
use sunnylive_core::ids::{BroadcastId, ClipId, StreamId};
use sunnylive_core::page::{decode_broadcast_cursor, parse_limit};
use sunnylive_core::rate_limit::CLIPS_PER_USER;
use worker::{HttpMetadata, Request, Response};

use crate::app::App;
use crate::auth::{count_attempt, require_user, Text};
use crate::crypto::random;
use crate::db::{self, Arg};
use crate::hls::{cached, remember, segment_uri, text_response, variants, SegmentRow, SEGMENT_COLUMNS};
use crate::http::{self, OrInternal, JSON_LIMIT};
use crate::stream_row;

fn not_found() -> ApiError {
    ApiError::NotFound {
        code: "clip_not_found",
        message: "No such clip.".into(),
    }
}

/// The R2 key of a clip's own thumbnail (the only object a clip adds): `hls/<stream>/clips/<clip>/thumb.jpg`, so
/// its playback path (and an R2 custom domain's) is `/<key>`.
pub fn thumbnail_key(stream_id: &str, clip_id: &str) -> String {
    hls::object_key(stream_id, "clips", &format!("{clip_id}/thumb.jpg"))
}

/// A clip as the contract shows it, as JSON built by SQLite (`c` = clips, `u` = its creator, `s` = its stream; `?1`
/// is the media base URL, '' for the site itself): no row type and no JSON building in the Worker, each of which
/// costs it kilobytes.
const CLIP_JSON: &str = "json_object('id', c.id, 'title', c.title,
       'creator', json_object('id', c.creator_id, 'username', u.username), 'stream_id', c.stream_id,
       'broadcast_id', c.broadcast_id, 'start_seconds', c.start_ms / 1000.0, 'duration_seconds', c.duration_ms / 1000.0,
       'playlist_url', '/hls/' || c.stream_id || '/clips/' || c.id || '/master.m3u8', 'page_url', '/clip/' || c.id,
       'thumbnail_url', CASE WHEN c.has_thumbnail = 1 THEN ?1 || '/hls/' || c.stream_id || '/clips/' || c.id || '/thumb.jpg' END,
       'created_at', c.created_at)";
const CLIP_FROM: &str = "FROM clips c JOIN users u ON u.id = c.creator_id JOIN streams s ON s.id = c.stream_id";

fn media_base(app: &App) -> &str {
    app.config.media_base_url.as_deref().unwrap_or("")
}

/// The JSON of a clip whose stream still exists, or None.
async fn load_json(app: &App, clip_id: &str) -> Result<Option<String>, ApiError> {
    if !sunnylive_core::ids::looks_like_id(clip_id) {
        return Ok(None);
    }
    let row: Option<Text> = db::one(
        &app.db,
        "load clip",
        &format!("SELECT {CLIP_JSON} AS value {CLIP_FROM} WHERE c.id = ?2 AND s.deleted_at IS NULL"),
        &[media_base(app).into(), clip_id.into()],
    )
    .await?;
    Ok(row.map(|t| t.value))
}

/// What a clip's page is sent with: `{title, stream_title, duration_seconds, playlist_url, thumbnail_url}`
/// (None: no such clip).
pub async fn preview(app: &App, clip_id: &str) -> Result<Option<Value>, ApiError> {
    if !sunnylive_core::ids::looks_like_id(clip_id) {
        return Ok(None);
    }
    let row: Option<Text> = db::one(
        &app.db,
        "load clip preview",
        &format!(
            "SELECT json_object('title', c.title, 'stream_title', s.title, 'duration_seconds', c.duration_ms / 1000,
                    'playlist_url', '/hls/' || c.stream_id || '/clips/' || c.id || '/master.m3u8',
                    'thumbnail_url', CASE WHEN c.has_thumbnail = 1
                        THEN ?1 || '/hls/' || c.stream_id || '/clips/' || c.id || '/thumb.jpg' END) AS value
             {CLIP_FROM} WHERE c.id = ?2 AND s.deleted_at IS NULL"
        ),
        &[media_base(app).into(), clip_id.into()],
    )
    .await?;
    Ok(row.and_then(|t| serde_json::from_slice(t.value.as_bytes()).ok()))
}

fn clip_response(status: u16, clip_json: &str) -> Result<Response, ApiError> {
    sunnylive_edge::json_text(status, format!(r#"{{"clip":{clip_json}}}"#))
}

/// `POST /api/streams/{id}/clips`: any signed-in user clips the live stream's last `duration_seconds`, or
/// `duration_seconds` of a broadcast from `start_seconds`. 201 with the clip, playable at once.
pub async fn create(app: &App, mut req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let user = require_user(app, &req).await?;
    let stream = stream_row::load(app, stream_id).await?;
    let body = http::read_json(&mut req, JSON_LIMIT).await?.into_value();
    let asked = ClipRequest::parse(
        body.as_object()
            .ok_or_else(|| ApiError::Malformed("a JSON object".into()))?,
    )?;
    count_attempt(app, &format!("clip-user:{}", user.id), CLIPS_PER_USER).await?;

    // The broadcast: the one named (of this stream, not deleted), or the live one.
    let broadcast: Option<Text> = match &asked.broadcast_id {
        Some(b) => {
            db::one(
                &app.db,
                "load broadcast to clip",
                "SELECT id AS value FROM broadcasts WHERE id = ?1 AND stream_id = ?2 AND deleted_at IS NULL",
                &[b.into(), stream.id.as_str().into()],
            )
            .await?
        }
        None => {
            db::one(
                &app.db,
                "load live broadcast to clip",
                "SELECT b.id AS value FROM streams s JOIN broadcasts b ON b.id = s.broadcast_id
             WHERE s.id = ?1 AND s.status = 'live' AND b.ended_unix IS NULL",
                &[stream.id.as_str().into()],
            )
            .await?
        }
    };
    let broadcast = match (broadcast, &asked.broadcast_id) {
        (Some(b), _) => BroadcastId::from_trusted(b.value),
        (None, Some(_)) => {
            return Err(ApiError::NotFound {
                code: "broadcast_not_found",
                message: "This stream has no such broadcast.".into(),
            })
        }
        (None, None) => {
            return Err(ApiError::Conflict {
                code: "not_live",
                message: "This stream is not live: clip one of its past broadcasts (broadcast_id).".into(),
            })
        }
    };
    let source: Vec<SegmentRow> = db::all(
        &app.db,
        "load segments to clip",
        &format!(
            "SELECT {SEGMENT_COLUMNS} FROM hls_segments WHERE broadcast_id = ?1 AND rendition = 'source' ORDER BY seq"
        ),
        &[broadcast.as_str().into()],
    )
    .await?;
    let source: Vec<Segment> = source.iter().map(SegmentRow::segment).collect();
    let span = clip::pick(&source, asked.start_ms, asked.duration_ms)?;

    let id = ClipId::generate(random());
    let id = id.as_str();
    let (s, b) = (stream.id.as_str(), broadcast.as_str());
    // One playlist per rendition that has the clip's segments, and the master over them.
    let mut playlists: Vec<(String, String)> = Vec::new();
    let mut listed = Vec::new();
    for variant in variants(app, b).await? {
        let r = variant.rendition;
        let rows: Vec<SegmentRow> = db::all(
            &app.db,
            "load rendition segments to clip",
            &format!(
                "SELECT {SEGMENT_COLUMNS} FROM hls_segments WHERE broadcast_id = ?1 AND rendition = ?2
                 AND seq BETWEEN ?3 AND ?4 ORDER BY seq"
            ),
            &[
                b.into(),
                r.as_str().into(),
                i64::from(span.first_seq).into(),
                i64::from(span.last_seq).into(),
            ],
        )
        .await?;
        if rows.is_empty() {
            continue;
        }
        let mut segments: Vec<Segment> = rows.iter().map(SegmentRow::segment).collect();
        // The clip starts afresh: its first segment's discontinuities belong to the broadcast before it.
        let base = segments[0].disc_seq;
        for seg in &mut segments {
            seg.disc_seq -= base;
        }
        segments[0].discontinuity = false;
        let prefix = format!("/hls/{s}/{b}/{}", r.file_path(""));
        let body = hls::render_playlist(PlaylistKind::Vod, &segments, 0, |seq| {
            segment_uri(app, s, b, r, &prefix, seq)
        });
        playlists.push((r.as_str().to_string(), body));
        listed.push(variant);
    }
    playlists.push((
        "master".into(),
        hls::render_master(&listed, |r| format!("{}/index.m3u8", r.as_str())),
    ));

    // Its own thumbnail: the broadcast's newest still, copied (the broadcast's is replaced while live and goes
    // with the broadcast).
    let bucket = app.media()?;
    let mut has_thumbnail = 0;
    if let Some(object) = bucket
        .get(hls::object_key(s, b, "thumb.jpg"))
        .execute()
        .await
        .or_internal("read thumbnail")?
    {
        if let Some(body) = object.body() {
            let bytes = body.bytes().await.or_internal("read thumbnail")?;
            bucket
                .put(thumbnail_key(s, id), bytes)
                .http_metadata(HttpMetadata {
                    content_type: Some(hls::THUMBNAIL_CONTENT_TYPE.into()),
                    ..HttpMetadata::default()
                })
                .execute()
                .await
                .or_internal("write clip thumbnail")?;
            has_thumbnail = 1;
        }
    }

    let title = asked.title.unwrap_or_else(|| stream.title.clone());
    let mut statements = vec![
        db::stmt(
            &app.db,
            "INSERT INTO clips (id, stream_id, broadcast_id, creator_id, title, start_ms, duration_ms, first_seq,
                                last_seq, has_thumbnail, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            &[
                id.into(),
                s.into(),
                b.into(),
                user.id.as_str().into(),
                title.as_str().into(),
                (span.start_ms as i64).into(),
                (span.duration_ms as i64).into(),
                i64::from(span.first_seq).into(),
                i64::from(span.last_seq).into(),
                has_thumbnail.into(),
                app.now_rfc3339().as_str().into(),
            ],
        )?,
        // Every segment of every rendition in the clip's range: held while the clip exists.
        db::stmt(
            &app.db,
            "INSERT INTO clip_objects (clip_id, key)
             SELECT ?1, 'hls/' || ?2 || '/' || ?3 || '/' || CASE WHEN rendition = 'source' THEN '' ELSE rendition || '/' END
                    || seq || '.ts'
             FROM hls_segments WHERE broadcast_id = ?3 AND seq BETWEEN ?4 AND ?5",
            &[
                id.into(),
                s.into(),
                b.into(),
                i64::from(span.first_seq).into(),
                i64::from(span.last_seq).into(),
            ],
        )?,
    ];
    for (name, body) in &playlists {
        statements.push(db::stmt(
            &app.db,
            "INSERT INTO clip_playlists (clip_id, name, body) VALUES (?1, ?2, ?3)",
            &[id.into(), name.into(), body.into()],
        )?);
    }
    app.db.batch(statements).await.or_internal("record clip")?;
    let clip = load_json(app, id)
        .await?
        .ok_or_else(|| ApiError::internal("a clip just made"))?;
    clip_response(201, &clip)
}

/// `GET /api/clips/{clip_id}`. Public.
pub async fn get(app: &App, clip_id: &str) -> Result<Response, ApiError> {
    let clip = load_json(app, clip_id).await?.ok_or_else(not_found)?;
    clip_response(200, &clip)
}

/// `GET /api/streams/{id}/clips?limit=&cursor=`: the stream's clips, newest first. Public.
pub async fn list(app: &App, req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let stream = stream_row::load(app, stream_id).await?;
    let query = http::query(&req);
    let limit = parse_limit(query.get("limit").map(String::as_str))?;
    let after = match query.get("cursor").filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_broadcast_cursor(c)?),
        None => None,
    };
    let mut args: Vec<Arg> = vec![media_base(app).into(), stream.id.as_str().into()];
    let mut rows = format!(
        "SELECT {CLIP_JSON} AS value, c.created_at || '.' || c.id AS cursor, c.created_at AS at, c.id AS cid
         {CLIP_FROM} WHERE c.stream_id = ?2"
    );
    if let Some((at, id)) = &after {
        args.push(at.into());
        args.push(id.into());
        rows.push_str(" AND (c.created_at < ?3 OR (c.created_at = ?3 AND c.id < ?4))");
    }
    // The page is one JSON text from SQLite: up to `limit` clips (one more is read to know whether there are more),
    // and the cursor of the last one shown when there are. `created_at` is in whole seconds, so clips of the same
    // second are ordered by id, in the listing, in the row numbers and in the cursor alike: a page resumes exactly
    // after the last clip it showed. The rows are numbered by that order and concatenated from a subquery sorted by
    // their number (an ordered subquery under an aggregate is never flattened away).
    let sql = format!(
        "SELECT '{{\"clips\":[' || COALESCE(group_concat(CASE WHEN n <= {limit} THEN value END, ','), '') ||
                '],\"next_cursor\":' || CASE WHEN COUNT(*) > {limit}
                    THEN json_quote(MAX(CASE WHEN n = {limit} THEN cursor END)) ELSE 'null' END || '}}' AS value
         FROM (SELECT value, cursor, n
               FROM (SELECT value, cursor, ROW_NUMBER() OVER (ORDER BY at DESC, cid DESC) AS n
                     FROM ({rows} ORDER BY c.created_at DESC, c.id DESC LIMIT {}))
               ORDER BY n)",
        limit + 1
    );
    let page: Text = db::one(&app.db, "list clips", &sql, &args)
        .await?
        .ok_or_else(|| ApiError::internal("a page of clips"))?;
    sunnylive_edge::json_text(200, page.value)
}

/// `DELETE /api/clips/{clip_id}`: by its creator or the stream's owner (403 for anyone else). 204.
pub async fn delete(app: &App, req: Request, clip_id: &str) -> Result<Response, ApiError> {
    let user = require_user(app, &req).await?;
    if !sunnylive_core::ids::looks_like_id(clip_id) {
        return Err(not_found());
    }
    // Who may: its creator and its stream's owner (one text column: see `CLIP_JSON`).
    let row: Text = db::one(
        &app.db,
        "load clip to delete",
        &format!(
            "SELECT c.creator_id || '/' || s.owner_id || '/' || c.stream_id AS value {CLIP_FROM}
             WHERE c.id = ?1 AND s.deleted_at IS NULL"
        ),
        &[clip_id.into()],
    )
    .await?
    .ok_or_else(not_found)?;
    let mut who = row.value.split('/');
    let (creator, owner, stream_id) = (
        who.next().unwrap_or(""),
        who.next().unwrap_or(""),
        who.next().unwrap_or(""),
    );
    let me = user.id.as_str();
    if creator != me && owner != me {
        return Err(ApiError::Forbidden {
            code: "not_allowed",
            message: "Only the clip's creator or the stream's owner can delete it.".into(),
        });
    }
    let names: Vec<Text> = db::all(
        &app.db,
        "clip playlists",
        "SELECT name AS value FROM clip_playlists WHERE clip_id = ?1",
        &[clip_id.into()],
    )
    .await?;
    forget(app, clip_id).await?;
    // This colo's cached copies go at once (`forget` purged the tagged ones everywhere the platform can).
    let origin = http::own_origin(&req, app.config.public_base_url.as_deref());
    let base = format!("{origin}/hls/{stream_id}/clips/{clip_id}");
    for name in names {
        let url = match name.value.as_str() {
            "master" => format!("{base}/master.m3u8"),
            r => format!("{base}/{r}/index.m3u8"),
        };
        let _ = worker::Cache::default().delete(url.as_str(), false).await;
    }
    let _ = worker::Cache::default()
        .delete(format!("{base}/thumb.jpg").as_str(), false)
        .await;
    http::no_content()
}

/// Deletes a clip and what only it held: its thumbnail, and those of its segments that no other clip holds once
/// its broadcast is gone (while the broadcast exists they are the broadcast's). R2 first, then the rows, so a
/// failure leaves the clip to delete again and never an object nobody lists. This is what every way a clip goes
/// calls: its creator's or the stream owner's delete, a deleted stream (the cron), and a deleted account (its
/// clips, `clip_ids_of_user`) or an operator's removal.
pub async fn forget(app: &App, clip_id: &str) -> Result<(), ApiError> {
    let Some(row) = db::one::<Text>(
        &app.db,
        "load clip to delete",
        "SELECT stream_id || '/' || broadcast_id AS value FROM clips WHERE id = ?1",
        &[clip_id.into()],
    )
    .await?
    else {
        return Ok(());
    };
    let (stream_id, broadcast_id) = row.value.split_once('/').unwrap_or_default();
    let only_mine: Vec<Text> = db::all(
        &app.db,
        "objects only this clip holds",
        "SELECT o.key AS value FROM clip_objects o WHERE o.clip_id = ?1
           AND NOT EXISTS (SELECT 1 FROM clip_objects x WHERE x.key = o.key AND x.clip_id <> ?1)
           AND NOT EXISTS (SELECT 1 FROM broadcasts b WHERE b.id = ?2 AND b.deleted_at IS NULL)",
        &[clip_id.into(), broadcast_id.into()],
    )
    .await?;
    let mut keys: Vec<String> = only_mine.into_iter().map(|t| t.value).collect();
    keys.push(thumbnail_key(stream_id, clip_id));
    app.media()?
        .delete_multiple(keys)
        .await
        .or_internal("delete clip objects")?;
    db::run(
        &app.db,
        "delete clip",
        "DELETE FROM clips WHERE id = ?1",
        &[clip_id.into()],
    )
    .await?;
    app.purge_cache(vec![cache::broadcast_tag(clip_id)]).await;
    Ok(())
}

/// Whether a clip with this id exists (an operator's delete answers 404 for one that does not).
pub async fn exists(app: &App, clip_id: &str) -> Result<bool, ApiError> {
    Ok(db::one::<Text>(
        &app.db,
        "does the clip exist",
        "SELECT id AS value FROM clips WHERE id = ?1",
        &[clip_id.into()],
    )
    .await?
    .is_some())
}

/// Deletes every clip `user_id` made and every clip of their streams (`forget` each): what deleting an account
/// must call before the user's and their streams' rows go (`clips.creator_id` and `clips.stream_id` reference them).
pub async fn forget_clips_of_user(app: &App, user_id: &str) -> Result<(), ApiError> {
    for id in clip_ids_of_user(app, user_id).await? {
        forget(app, &id).await?;
    }
    Ok(())
}

/// The ids of every clip `user_id` made or that was made of their streams.
async fn clip_ids_of_user(app: &App, user_id: &str) -> Result<Vec<String>, ApiError> {
    let rows: Vec<Text> = db::all(
        &app.db,
        "clips of a user",
        "SELECT id AS value FROM clips WHERE creator_id = ?1 OR stream_id IN (SELECT id FROM streams WHERE owner_id = ?1)",
        &[user_id.into()],
    )
    .await?;
    Ok(rows.into_iter().map(|t| t.value).collect())
}

/// The cron's part: clips of deleted streams go (a few per run; `forget` each).
pub async fn sweep(app: &App) -> Result<(), ApiError> {
    let rows: Vec<Text> = db::all(
        &app.db,
        "clips of deleted streams",
        "SELECT id AS value FROM clips WHERE stream_id IN (SELECT id FROM streams WHERE deleted_at IS NOT NULL) LIMIT 8",
        &[],
    )
    .await?;
    for r in rows {
        forget(app, &r.value).await?;
    }
    Ok(())
}

/// `GET /hls/{id}/clips/{clip_id}/master.m3u8` (`rendition` None) and `.../{rendition}/index.m3u8`: the playlists
/// written when the clip was made. Cached like a finished broadcast's.
pub async fn playlist(
    app: &App,
    req: Request,
    stream_id: &str,
    clip_id: &str,
    rendition: Option<&str>,
) -> Result<Response, ApiError> {
    let name = match rendition {
        None => "master",
        Some(r) => Rendition::parse(r).ok_or_else(not_found)?.as_str(),
    };
    if let Some(hit) = cached(app, &req).await {
        return Ok(hit);
    }
    let body: Text = db::one(
        &app.db,
        "load clip playlist",
        "SELECT p.body AS value FROM clip_playlists p JOIN clips c ON c.id = p.clip_id JOIN streams s ON s.id = c.stream_id
         WHERE p.clip_id = ?1 AND c.stream_id = ?2 AND p.name = ?3 AND s.deleted_at IS NULL",
        &[clip_id.into(), stream_id.into(), name.into()],
    )
    .await?
    .ok_or_else(not_found)?;
    let resp = text_response(body.value, hls::PLAYLIST_CONTENT_TYPE, hls::CACHE_ENDED_PLAYLIST)?;
    Ok(remember(&req, resp).await)
}

/// `GET /hls/{id}/clips/{clip_id}/thumb.jpg`: the clip's own thumbnail, from R2.
pub async fn thumbnail(app: &App, req: Request, stream_id: &str, clip_id: &str) -> Result<Response, ApiError> {
    if StreamId::parse(stream_id).is_none() || !sunnylive_core::ids::looks_like_id(clip_id) {
        return Err(not_found());
    }
    if let Some(hit) = cached(app, &req).await {
        return Ok(hit);
    }
    crate::hls::object(app, &req, &thumbnail_key(stream_id, clip_id), UploadFile::Thumbnail).await
}
