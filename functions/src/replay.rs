//! Chat replay (issue 25): `GET /api/streams/{id}/broadcasts/{broadcast_id}/chat?from_ms=&limit=`, a broadcast's
//! chat and donations in order, each with its `offset_ms` from the broadcast's first segment, asked of the stream's
//! room by time span (`/internal/replay`). The room keeps every message since the start of the stream's oldest
//! broadcast that still exists (`keep_since`, told whenever a broadcast starts or is purged), so a broadcast's chat
//! lives exactly as long as the broadcast. The rules are `sunnylive_core::replay`.

use sunnylive_core::chat::{KeepPost, ROOM_KEEP, ROOM_REPLAY};
use sunnylive_core::error::ApiError;
use sunnylive_core::ids::BroadcastId;
use sunnylive_core::replay::{self, ReplayQuery};
use worker::{Headers, Method, Request, Response};

use crate::app::App;
use crate::auth::Text;
use crate::db;
use crate::http::{self, OrInternal};
use crate::room_client::{post_to_room, room, room_request};
use crate::stream_row;

/// `GET /api/streams/{id}/broadcasts/{broadcast_id}/chat?from_ms=&limit=`. Public, like the broadcast.
pub async fn chat(app: &App, req: Request, stream_id: &str, broadcast_id: &str) -> Result<Response, ApiError> {
    let q = http::query(&req);
    let query = ReplayQuery::parse(q.get("from_ms").map(String::as_str), q.get("limit").map(String::as_str))?;
    let stream = stream_row::load(app, stream_id).await?;
    let not_found = || ApiError::NotFound {
        code: "broadcast_not_found",
        message: "No such broadcast.".into(),
    };
    let broadcast = BroadcastId::parse(broadcast_id).ok_or_else(not_found)?;
    // Its start (unix s), end (unix s, '' while live) and first segment's program date-time (unix ms, '' when the
    // origin did not say), in one text column: the row type every one-value query shares (each costs ~4 KB).
    let row: Text = db::one(
        &app.db,
        "load broadcast for replay",
        "SELECT CAST(strftime('%s', b.started_at) AS TEXT) || '/' || COALESCE(b.ended_unix, '') || '/' ||
                COALESCE((SELECT pdt_ms FROM hls_segments g WHERE g.broadcast_id = b.id AND g.rendition = 'source'
                          ORDER BY g.seq LIMIT 1), '') AS value
         FROM broadcasts b WHERE b.id = ?1 AND b.stream_id = ?2 AND b.deleted_at IS NULL",
        &[broadcast.as_str().into(), stream.id.as_str().into()],
    )
    .await?
    .ok_or_else(not_found)?;
    let mut parts = row.value.split('/').map(|p| p.parse::<i64>().ok());
    let started = parts.next().flatten().unwrap_or(0);
    let ended = parts.next().flatten();
    let pdt = parts.next().flatten();
    let base = replay::base_ms(pdt, started);
    let to_ms = ended.map_or(app.now() * 1000 + 1000, |e| e * 1000 + 999);
    // The first page also has what was said between the publish and its first segment, at offset 0.
    let from = match query.from_ms {
        0 => base.min(started * 1000),
        ms => base + ms,
    };
    let path = format!(
        "{ROOM_REPLAY}?from_ms={from}&to_ms={to_ms}&limit={}&base_ms={base}",
        query.limit
    );
    let forwarded = room_request(&stream.id, Method::Get, &path, Headers::new(), None).or_internal("room request")?;
    let mut answer = room(app, &stream.id)
        .or_internal("CHAT_ROOMS stub")?
        .fetch_with_request(forwarded)
        .await
        .or_internal("chat room replay")?;
    let status = answer.status_code();
    let body = answer.text().await.or_internal("chat room replay body")?;
    if status != 200 {
        return Err(ApiError::internal(format!(
            "chat room answered {status} to a replay: {body}"
        )));
    }
    // The room's answer is the page as the contract has it (`sunnylive_core::replay::page`).
    sunnylive_edge::json_text(200, body)
}

/// Tells the stream's room which messages the broadcasts still need (everything since the oldest one's start):
/// after a broadcast starts and after one is purged. A failure is logged: the room then keeps what it kept.
pub async fn keep_for_broadcasts(app: &App, stream_id: &str) {
    let since = db::one::<Text>(
        &app.db,
        "oldest broadcast",
        "SELECT COALESCE(CAST(MIN(CAST(strftime('%s', started_at) AS INTEGER)) * 1000 AS TEXT), '') AS value
         FROM broadcasts WHERE stream_id = ?1 AND deleted_at IS NULL",
        &[stream_id.into()],
    )
    .await;
    let since_ms = match since {
        Ok(row) => row.and_then(|t| t.value.parse::<i64>().ok()),
        Err(e) => {
            worker::console_error!("replay: oldest broadcast of {stream_id}: {e}");
            return;
        }
    };
    match post_to_room(app, stream_id, ROOM_KEEP, &KeepPost { since_ms }).await {
        Ok(200) => {}
        Ok(code) => worker::console_error!("replay: room {stream_id} answered {code} to keep"),
        Err(e) => worker::console_error!("replay: could not tell room {stream_id} what to keep: {e}"),
    }
}
