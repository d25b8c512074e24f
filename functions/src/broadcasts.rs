//! Broadcasts: each accepted publish starts one (`start`, from on_publish), the end of the publish or the stale sweep
//! ends it, and afterwards it stays watchable as video on demand: `GET /api/streams/{id}/broadcasts` lists them,
//! the owner deletes one, and the cron deletes those older than the retention (`BROADCAST_RETENTION_DAYS`). Deleting
//! is two steps so that it never needs more subrequests than a request may make: the row is marked deleted (gone
//! for everyone at once), then `purge` removes its R2 objects in batches and finally the row.

use serde::{Deserialize, Serialize};
use sunnylive_core::cache;
use sunnylive_core::error::ApiError;
use sunnylive_core::hls::{self, Rendition};
use sunnylive_core::ids::{BroadcastId, StreamId};
use sunnylive_core::page::{decode_broadcast_cursor, encode_broadcast_cursor, parse_limit};
use worker::{Bucket, Request, Response};

use crate::app::App;
use crate::crypto::random;
use crate::db::{self, Arg};
use crate::http::{self, OrInternal};
use crate::stream_row;

/// R2 objects deleted per list+delete round (R2's delete takes at most 1,000 keys).
const PURGE_BATCH: u32 = 1000;
/// Rounds one request or cron run may spend on purging: two subrequests each, well inside the free plan's 50.
const PURGE_ROUNDS: usize = 8;

/// Starts a broadcast for a stream that just went live: any broadcast of it still open (a publisher that died
/// without on_publish_done) is ended first, so a stream has at most one live broadcast.
pub async fn start(app: &App, stream_id: &str) -> Result<BroadcastId, ApiError> {
    let id = BroadcastId::generate(random());
    let now = app.now();
    let stamp = app.now_rfc3339();
    let statements = vec![
        db::stmt(
            &app.db,
            "UPDATE broadcasts SET ended_at = ?2, ended_unix = ?3 WHERE stream_id = ?1 AND ended_unix IS NULL",
            &[stream_id.into(), stamp.as_str().into(), now.into()],
        )?,
        db::stmt(
            &app.db,
            "INSERT INTO broadcasts (id, stream_id, started_at) VALUES (?1, ?2, ?3)",
            &[id.as_str().into(), stream_id.into(), stamp.as_str().into()],
        )?,
        db::stmt(
            &app.db,
            "UPDATE streams SET broadcast_id = ?2 WHERE id = ?1",
            &[stream_id.into(), id.as_str().into()],
        )?,
    ];
    app.db.batch(statements).await.or_internal("start broadcast")?;
    // Its chat is kept for its replay from now on (as long as it exists).
    crate::replay::keep_for_broadcasts(app, stream_id).await;
    Ok(id)
}

/// Ends the stream's live broadcast, if any (on_publish_done, stream deletion), and idles its simulcast outputs.
pub async fn end_current(app: &App, stream_id: &str) -> Result<(), ApiError> {
    db::run(
        &app.db,
        "end broadcast",
        "UPDATE broadcasts SET ended_at = ?2, ended_unix = ?3 WHERE stream_id = ?1 AND ended_unix IS NULL",
        &[stream_id.into(), app.now_rfc3339().as_str().into(), app.now().into()],
    )
    .await?;
    // Its simulcast outputs are idle now, whatever the origin last reported.
    crate::outputs::idle_outputs_of_offline_streams(app).await
}

#[derive(Deserialize)]
struct BroadcastRow {
    id: String,
    stream_id: String,
    started_at: String,
    ended_at: Option<String>,
    segment_count: i64,
    duration_ms: i64,
    thumbnail_at: Option<i64>,
}

#[derive(Serialize)]
struct BroadcastView<'a> {
    id: &'a str,
    stream_id: &'a str,
    started_at: &'a str,
    ended_at: Option<&'a str>,
    live: bool,
    duration_seconds: f64,
    segment_count: i64,
    playlist_url: String,
    thumbnail_url: Option<String>,
}

impl BroadcastRow {
    fn view(&self, app: &App) -> BroadcastView<'_> {
        BroadcastView {
            id: &self.id,
            stream_id: &self.stream_id,
            started_at: &self.started_at,
            ended_at: self.ended_at.as_deref(),
            live: self.ended_at.is_none(),
            duration_seconds: self.duration_ms as f64 / 1000.0,
            segment_count: self.segment_count,
            playlist_url: format!("/hls/{}/{}/master.m3u8", self.stream_id, self.id),
            thumbnail_url: self
                .thumbnail_at
                .map(|at| app.thumbnail_url(&self.stream_id, &self.id, at)),
        }
    }
}

/// `GET /api/streams/{id}/broadcasts?limit=&cursor=`: the stream's broadcasts, newest first (the live one, if any,
/// first of all). Public, like the stream itself.
pub async fn list(app: &App, req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let stream = stream_row::load(app, stream_id).await?;
    let query = http::query(&req);
    let limit = parse_limit(query.get("limit").map(String::as_str))?;
    let after: Option<(String, String)> = match query.get("cursor").filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_broadcast_cursor(c)?),
        None => None,
    };
    let mut args: Vec<Arg> = vec![stream.id.as_str().into()];
    let mut sql = String::from(
        "SELECT id, stream_id, started_at, ended_at, segment_count, duration_ms, thumbnail_at FROM broadcasts
         WHERE stream_id = ?1 AND deleted_at IS NULL",
    );
    if let Some((started_at, id)) = &after {
        args.push(started_at.into());
        args.push(id.into());
        sql.push_str(" AND (started_at < ?2 OR (started_at = ?2 AND id < ?3))");
    }
    sql.push_str(&format!(" ORDER BY started_at DESC, id DESC LIMIT {}", limit + 1));
    let mut rows: Vec<BroadcastRow> = db::all(&app.db, "list broadcasts", &sql, &args).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_broadcast_cursor(&r.started_at, &r.id))
    } else {
        None
    };
    #[derive(Serialize)]
    struct Body<'a> {
        broadcasts: Vec<BroadcastView<'a>>,
        next_cursor: Option<String>,
    }
    http::json(
        200,
        &Body {
            broadcasts: rows.iter().map(|r| r.view(app)).collect(),
            next_cursor,
        },
    )
}

/// `DELETE /api/streams/{id}/broadcasts/{broadcast_id}`: the owner removes a past broadcast and its video. A live
/// broadcast cannot be deleted (409): stop streaming first.
pub async fn delete(app: &App, req: Request, stream_id: &str, broadcast_id: &str) -> Result<Response, ApiError> {
    let (_, stream) = stream_row::load_owned(app, &req, stream_id).await?;
    remove(app, &req, &stream.id, broadcast_id).await?;
    http::no_content()
}

fn broadcast_not_found() -> ApiError {
    ApiError::NotFound {
        code: "broadcast_not_found",
        message: "No such broadcast.".into(),
    }
}

/// Deletes a past broadcast of `stream_id` (of any stream when it is "": an operator's delete names only the
/// broadcast) and its video, whoever is allowed to (the owner, an operator): 404 when there is no such broadcast,
/// 409 while it is live.
pub(crate) async fn remove(app: &App, req: &Request, stream_id: &str, broadcast_id: &str) -> Result<(), ApiError> {
    let not_found = broadcast_not_found;
    let id = BroadcastId::parse(broadcast_id).ok_or_else(not_found)?;
    #[derive(Deserialize)]
    struct Row {
        ended_unix: Option<i64>,
        stream_id: String,
    }
    let row: Row = db::one(
        &app.db,
        "load broadcast",
        "SELECT ended_unix, stream_id FROM broadcasts
         WHERE id = ?1 AND (?2 = '' OR stream_id = ?2) AND deleted_at IS NULL",
        &[id.as_str().into(), stream_id.into()],
    )
    .await?
    .ok_or_else(not_found)?;
    let stream_id = row.stream_id.as_str();
    if row.ended_unix.is_none() {
        return Err(ApiError::Conflict {
            code: "broadcast_live",
            message: "This broadcast is still live; stop streaming before deleting it.".into(),
        });
    }
    mark_deleted(app, stream_id, id.as_str()).await?;
    // Every copy in the cache in front of the Worker goes at once, everywhere (its answers carry this tag).
    app.purge_cache(vec![cache::broadcast_tag(id.as_str())]).await;
    // This colo's cached playlist goes at once (other colos' copies expire within CACHE_ENDED_PLAYLIST; segments,
    // unreachable without a playlist, within a day).
    if let Ok(mut url) = req.url() {
        url.set_path(&format!("/hls/{}/{}/index.m3u8", stream_id, id.as_str()));
        url.set_query(None);
        let _ = worker::Cache::default().delete(url.as_str(), false).await;
    }
    // Most broadcasts fit in the rounds one request may spend; the cron finishes the rest (or retries a failure).
    let bucket = app.media()?;
    if let Err(e) = purge_one(app, &bucket, stream_id, id.as_str()).await {
        worker::console_warn!("broadcast {}: purge left to the cron: {e}", id.as_str());
    }
    Ok(())
}

async fn mark_deleted(app: &App, stream_id: &str, broadcast_id: &str) -> Result<(), ApiError> {
    let statements = vec![
        db::stmt(
            &app.db,
            "UPDATE broadcasts SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
            &[broadcast_id.into(), app.now_rfc3339().as_str().into()],
        )?,
        // The stream's cards stop showing this broadcast's thumbnail.
        db::stmt(
            &app.db,
            "UPDATE streams SET thumbnail_broadcast_id = NULL, thumbnail_at = NULL
             WHERE id = ?1 AND thumbnail_broadcast_id = ?2",
            &[stream_id.into(), broadcast_id.into()],
        )?,
    ];
    app.db.batch(statements).await.or_internal("mark broadcast deleted")?;
    Ok(())
}

/// Deletes up to `PURGE_ROUNDS` batches of a deleted broadcast's objects, but those a clip holds (`clip_objects`,
/// see `crate::clips`); once none are left to delete, its rows too. Returns whether it finished.
async fn purge_one(app: &App, bucket: &Bucket, stream_id: &str, broadcast_id: &str) -> Result<bool, ApiError> {
    let prefix = hls::broadcast_prefix(stream_id, broadcast_id);
    // Every key under the prefix sorts before the prefix with its final '/' turned into '0'.
    let prefix_end = format!("{}0", prefix.trim_end_matches('/'));
    let held: Vec<String> = db::all::<crate::auth::Text>(
        &app.db,
        "objects clips hold",
        "SELECT DISTINCT key AS value FROM clip_objects WHERE key >= ?1 AND key < ?2 ORDER BY key",
        &[prefix.as_str().into(), prefix_end.as_str().into()],
    )
    .await?
    .into_iter()
    .map(|t| t.value)
    .collect();
    let mut cursor: Option<String> = None;
    for _ in 0..PURGE_ROUNDS {
        let mut list = bucket.list().prefix(prefix.clone()).limit(PURGE_BATCH);
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let listed = list.execute().await.or_internal("list broadcast objects")?;
        cursor = listed.cursor();
        let keys: Vec<String> = listed
            .objects()
            .iter()
            .map(|o| o.key())
            .filter(|k| held.binary_search(k).is_err())
            .collect();
        if !keys.is_empty() {
            bucket
                .delete_multiple(keys)
                .await
                .or_internal("delete broadcast objects")?;
        }
        if !listed.truncated() {
            db::run(
                &app.db,
                "forget purged broadcast",
                "DELETE FROM broadcasts WHERE id = ?1 AND deleted_at IS NOT NULL",
                &[broadcast_id.into()],
            )
            .await?;
            // Its chat is no longer kept for it.
            crate::replay::keep_for_broadcasts(app, stream_id).await;
            return Ok(true);
        }
    }
    Ok(false)
}

/// The cron's part: ends broadcasts whose stream is no longer live (the sweep ended it, or it was deleted), marks
/// broadcasts past the retention deleted, and purges deleted broadcasts' objects. Returns how many it purged.
pub async fn sweep(app: &App) -> Result<usize, ApiError> {
    let now = app.now();
    db::run(
        &app.db,
        "end orphaned broadcasts",
        "UPDATE broadcasts SET ended_at = ?1, ended_unix = ?2 WHERE ended_unix IS NULL AND stream_id IN
           (SELECT id FROM streams WHERE status <> 'live' OR deleted_at IS NOT NULL)",
        &[app.now_rfc3339().as_str().into(), now.into()],
    )
    .await?;
    let stamp = app.now_rfc3339();
    db::run(
        &app.db,
        "expire old broadcasts",
        "UPDATE broadcasts SET deleted_at = ?1 WHERE deleted_at IS NULL AND ended_unix IS NOT NULL
           AND (ended_unix < ?2 OR stream_id IN (SELECT id FROM streams WHERE deleted_at IS NOT NULL))",
        &[
            stamp.as_str().into(),
            (now - app.config.broadcast_retention_days * 86_400).into(),
        ],
    )
    .await?;
    db::run(
        &app.db,
        "forget expired thumbnails",
        "UPDATE streams SET thumbnail_broadcast_id = NULL, thumbnail_at = NULL WHERE thumbnail_broadcast_id IN
           (SELECT id FROM broadcasts WHERE deleted_at IS NOT NULL)",
        &[],
    )
    .await?;
    #[derive(Deserialize)]
    struct Deleted {
        id: String,
        stream_id: String,
    }
    let deleted: Vec<Deleted> = db::all(
        &app.db,
        "deleted broadcasts",
        "SELECT id, stream_id FROM broadcasts WHERE deleted_at IS NOT NULL ORDER BY deleted_at LIMIT 4",
        &[],
    )
    .await?;
    if deleted.is_empty() {
        return Ok(0);
    }
    let bucket = app.media()?;
    let mut purged = 0;
    for d in &deleted {
        if purge_one(app, &bucket, &d.stream_id, &d.id).await? {
            purged += 1;
        }
    }
    Ok(purged)
}

/// The stream id of a live (or just ended) broadcast the origin may still upload into, or the reason it may not.
pub enum UploadTarget {
    Open { stream_id: StreamId, have_segment: bool },
    NotFound,
    Ended,
}

/// Looks up a broadcast for an upload of segment `seq` (or of a thumbnail when `seq` is None).
pub async fn upload_target(
    app: &App,
    broadcast_id: &str,
    rendition: Rendition,
    seq: Option<u32>,
) -> Result<UploadTarget, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        stream_id: String,
        ended_unix: Option<i64>,
        gone: i64,
        have: i64,
    }
    let row: Option<Row> = db::one(
        &app.db,
        "load broadcast for upload",
        "SELECT b.stream_id, b.ended_unix, (b.deleted_at IS NOT NULL OR s.deleted_at IS NOT NULL) AS gone,
                EXISTS (SELECT 1 FROM hls_segments g WHERE g.broadcast_id = b.id AND g.rendition = ?3
                        AND g.seq = ?2) AS have
         FROM broadcasts b JOIN streams s ON s.id = b.stream_id WHERE b.id = ?1",
        &[
            broadcast_id.into(),
            seq.map_or(-1, i64::from).into(),
            rendition.as_str().into(),
        ],
    )
    .await?;
    let Some(row) = row else {
        return Ok(UploadTarget::NotFound);
    };
    let over = row
        .ended_unix
        .is_some_and(|at| at < app.now() - hls::UPLOAD_GRACE_SECONDS);
    if row.gone != 0 || over {
        return Ok(UploadTarget::Ended);
    }
    Ok(UploadTarget::Open {
        stream_id: StreamId::from_trusted(row.stream_id),
        have_segment: row.have != 0,
    })
}
