//! The worker side of the nginx RTMP origin: nginx-rtmp's `on_publish`, `on_update` and `on_publish_done`
//! callbacks, relayed by nginx-origin's local proxy location which adds `Authorization: Bearer <ORIGIN_TOKEN>`.
//!
//! Live status comes only from here (and from the cron sweep that ends streams whose heartbeats stopped).
//! nginx identifies a publisher by `addr` and `clientid`; we record that pair as the stream's `publisher` so a
//! second publisher is refused (409) and only the holder's `on_publish_done` ends the stream.

use std::collections::HashMap;

use serde::Deserialize;
use sunnylive_core::error::ApiError;
use sunnylive_core::secret::secrets_equal;
use sunnylive_core::stream_key::PresentedKey;
use worker::{Headers, Request, Response};

use crate::app::App;
use crate::db;
use crate::http::{self, OrInternal};

/// nginx-rtmp's callback forms are a few hundred bytes.
const FORM_LIMIT: usize = 8 * 1024;

/// 401 unless the call carries the origin's token; nothing else is looked at before this passes. Also guards the
/// origin's HLS uploads (hls.rs).
pub fn check_origin_token(app: &App, req: &Request) -> Result<(), ApiError> {
    let presented = http::bearer(req).unwrap_or_default();
    if secrets_equal(presented.as_bytes(), app.config.origin_token.as_bytes()) {
        Ok(())
    } else {
        worker::console_log!("rtmp: callback refused: missing or wrong origin token");
        Err(ApiError::Unauthenticated {
            code: "bad_origin_token",
            message: "RTMP callbacks must carry the origin's token.".into(),
        })
    }
}

fn refused(why: &str) -> ApiError {
    // The key itself is never logged; the reason and the stream id (if any) are enough to debug.
    worker::console_log!("rtmp: publish refused: {why}");
    ApiError::Forbidden {
        code: "stream_key_refused",
        message: "This stream key is not valid.".into(),
    }
}

struct Callback {
    key: Option<PresentedKey>,
    /// The stream name as nginx reports it (a key for publishers; a broadcast id for the origin's own relay).
    name: String,
    addr: String,
    publisher: String,
    call: String,
}

async fn read_callback(app: &App, req: &mut Request) -> Result<Callback, ApiError> {
    check_origin_token(app, req)?;
    // nginx-rtmp writes its own fields first and then appends, raw, whatever the publisher put after `?` in its
    // stream name (`sk_..?call=update_play&addr=..`). read_form keeps the first value of every field, so only
    // nginx's own fields count and a publisher cannot pose as the relay or as another client.
    let form: HashMap<String, String> = http::read_form(req, FORM_LIMIT).await?;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let name = field("name");
    Ok(Callback {
        key: PresentedKey::parse(name),
        name: name.to_string(),
        addr: field("addr").to_string(),
        publisher: format!(
            "{}/{}",
            form.get("addr").map_or("?", |v| v),
            form.get("clientid").map_or("?", |v| v)
        ),
        call: field("call").to_string(),
    })
}

/// The id a conditional `UPDATE ... RETURNING id` answers when it changed the row.
#[derive(Deserialize)]
struct IdRow {
    id: String,
}

#[derive(Deserialize)]
struct KeyRow {
    key_generation: i64,
}

/// The stream id of a presented key that is valid right now, or 403: also while an operator has the key blocked
/// (until the owner rotates it) or the owner suspended.
async fn check_key(app: &App, key: Option<&PresentedKey>) -> Result<String, ApiError> {
    let key = key.ok_or_else(|| refused("not a stream key"))?;
    let id = key.stream_id.as_str();
    let row: Option<KeyRow> = db::one(
        &app.db,
        "load stream key generation",
        "SELECT s.key_generation FROM streams s JOIN users u ON u.id = s.owner_id
         WHERE s.id = ?1 AND s.deleted_at IS NULL AND u.suspended_at IS NULL
           AND (s.blocked_key_generation IS NULL OR s.blocked_key_generation <> s.key_generation)",
        &[id.into()],
    )
    .await?;
    let row = row.ok_or_else(|| {
        refused(&format!(
            "stream {id} does not exist, was deleted, its key is blocked by an operator or its owner is suspended"
        ))
    })?;
    if !key.is_valid(app.config.stream_key_secret.as_bytes(), row.key_generation) {
        return Err(refused(&format!("stream {id}: wrong or rotated key")));
    }
    Ok(id.to_string())
}

/// `POST /api/rtmp/on-publish`: 302 to a new broadcast id (nginx renames the stream, so HLS is written under that
/// public id and never under the key). The Location is a bare name: `Response::redirect` only takes absolute URLs, and
/// nginx-rtmp would treat an absolute URL as a literal stream name.
pub async fn on_publish(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let cb = read_callback(app, &mut req).await?;
    let id = check_key(app, cb.key.as_ref()).await?;
    let now = app.now();
    let taken: Option<IdRow> = db::one(
        &app.db,
        "mark stream live",
        "UPDATE streams SET status = 'live', publisher = ?2, last_heartbeat_at = ?3,
             live_since = CASE WHEN status = 'live' AND publisher = ?2 THEN live_since ELSE ?4 END
         WHERE id = ?1 AND deleted_at IS NULL
           AND (status = 'offline' OR publisher = ?2 OR last_heartbeat_at < ?5) RETURNING id",
        &[
            id.as_str().into(),
            cb.publisher.as_str().into(),
            now.into(),
            app.now_rfc3339().as_str().into(),
            (now - app.config.stale_stream_seconds).into(),
        ],
    )
    .await?;
    if taken.is_none() {
        worker::console_log!("rtmp: stream {id} is already live from another publisher");
        return Err(ApiError::Conflict {
            code: "already_live",
            message: "This stream is already live from another publisher.".into(),
        });
    }
    // Each accepted publish is a broadcast of its own. nginx renames the stream to the broadcast id, so the origin's
    // HLS directory (and every object uploaded from it) belongs to this publish and never mixes with another.
    let broadcast = crate::broadcasts::start(app, &id).await?;
    worker::console_log!("rtmp: stream {id} is live (broadcast {broadcast})");
    crate::room_client::announce_status(app, &id, true).await;
    let headers = Headers::new();
    headers
        .set("location", broadcast.as_str())
        .or_internal("location header")?;
    Ok(Response::empty()
        .or_internal("response")?
        .with_status(302)
        .with_headers(headers))
}

/// `POST /api/rtmp/on-update`: the heartbeat. 403 once the key is no longer valid (rotated, stream deleted) or
/// another publisher holds the stream: nginx then drops this publisher.
pub async fn on_update(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let cb = read_callback(app, &mut req).await?;
    // The origin's own `push` into its hls application is a play session inside `live` (the only one: `live`
    // denies play to everyone else), so nginx sends it heartbeats too, from 127.0.0.1 and named by the broadcast
    // id (the renamed stream), not the key. It is accepted while that broadcast is the stream's live one: refusing
    // it would cut the relay every heartbeat and leave a gap in the HLS output.
    if cb.call == "update_play" {
        return relay_heartbeat(app, &cb).await;
    }
    let id = check_key(app, cb.key.as_ref()).await?;
    let now = app.now();
    // Only the publisher holding a live stream refreshes it. A heartbeat still in flight when the publisher stopped
    // arrives after on_publish_done and must not bring the stream back; likewise a publisher the sweep already
    // ended is refused and dropped by nginx (OBS then reconnects and publishes afresh).
    // RETURNING, not D1's `changes`: that count includes rows written by triggers.
    let beat: Option<IdRow> = db::one(
        &app.db,
        "record heartbeat",
        "UPDATE streams SET last_heartbeat_at = ?3
         WHERE id = ?1 AND deleted_at IS NULL AND status = 'live' AND publisher = ?2 RETURNING id",
        &[id.as_str().into(), cb.publisher.as_str().into(), now.into()],
    )
    .await?;
    if beat.is_none() {
        return Err(refused(&format!(
            "stream {id}: heartbeat from a publisher that does not hold the stream"
        )));
    }
    http::json(200, &serde_json::json!({ "ok": true }))
}

/// The relay's heartbeat: 200 while its broadcast is live, else 403 (nginx then stops the relay).
async fn relay_heartbeat(app: &App, cb: &Callback) -> Result<Response, ApiError> {
    // nginx reports the relay's own outgoing connection, which may carry the port ("127.0.0.1:1935"); refusing it
    // cut the relay at every heartbeat and lost about half of every broadcast (push reconnects after 3 s).
    if !(cb.addr == "127.0.0.1" || cb.addr.starts_with("127.0.0.1:")) {
        return Err(refused(&format!(
            "a play heartbeat from outside the origin ({:?})",
            cb.addr
        )));
    }
    let live: Option<IdRow> = db::one(
        &app.db,
        "check relay broadcast",
        "SELECT id FROM streams WHERE broadcast_id = ?1 AND status = 'live' AND deleted_at IS NULL",
        &[cb.name.as_str().into()],
    )
    .await?;
    if live.is_none() {
        return Err(refused("a relay heartbeat for a broadcast that is not live"));
    }
    http::json(200, &serde_json::json!({ "ok": true }))
}

/// `POST /api/rtmp/on-publish-done`: the stream goes offline if this publisher held it. nginx sends the original
/// name (the key, possibly rotated away by now), so only the stream id is taken from it.
pub async fn on_publish_done(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let cb = read_callback(app, &mut req).await?;
    if let Some(key) = &cb.key {
        let id = key.stream_id.as_str();
        let ended: Option<IdRow> = db::one(
            &app.db,
            "mark stream offline",
            "UPDATE streams SET status = 'offline', live_since = NULL, publisher = NULL
             WHERE id = ?1 AND status = 'live' AND publisher = ?2 RETURNING id",
            &[id.into(), cb.publisher.as_str().into()],
        )
        .await?;
        if ended.is_some() {
            worker::console_log!("rtmp: stream {id} went offline");
            crate::broadcasts::end_current(app, id).await?;
            crate::room_client::announce_status(app, id, false).await;
        }
    }
    http::json(200, &serde_json::json!({ "ok": true }))
}

/// Ends streams whose publisher stopped sending heartbeats (died without `on_publish_done`). Run by the cron.
pub async fn sweep_stale_streams(app: &App) -> Result<usize, ApiError> {
    let ended: Vec<IdRow> = db::all(
        &app.db,
        "sweep stale live streams",
        "UPDATE streams SET status = 'offline', live_since = NULL, publisher = NULL
         WHERE status = 'live' AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ?1) RETURNING id",
        &[(app.now() - app.config.stale_stream_seconds).into()],
    )
    .await?;
    for row in &ended {
        worker::console_log!(
            "cron: stream {} had no heartbeat for {} s; now offline",
            row.id,
            app.config.stale_stream_seconds
        );
        crate::room_client::announce_status(app, &row.id, false).await;
    }
    if !ended.is_empty() {
        crate::outputs::idle_outputs_of_offline_streams(app).await?;
    }
    Ok(ended.len())
}
