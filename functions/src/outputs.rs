//! Simulcast outputs: the owner's routes (list, add, edit, remove a stream's outputs) and the origin's two (the
//! enabled outputs of a live broadcast, keys included, and status reports from its supervisor,
//! nginx-origin/uploader/src/simulcast.rs). The target's stream key is write-only: sealed with AES-256-GCM under
//! `OUTPUT_KEY_SECRET` (crypto.rs), the output's id bound in, and opened only for the origin token. Rules for every
//! field are in `sunnylive_core::output`.

use serde::Deserialize;
use sunnylive_core::error::ApiError;
use sunnylive_core::ids::{BroadcastId, OutputId};
use sunnylive_core::output::{
    status_message, OutputChanges, OutputFields, OutputStatus, TargetPolicy, MAX_OUTPUTS_PER_STREAM,
};
use worker::{Request, Response};

use crate::app::App;
use crate::db;
use crate::http::{self, JSON_LIMIT};
use crate::rtmp::check_origin_token;
use crate::stream_row::load_owned;

/// One output as the contract's JSON object, built by SQLite (`json_object`): never the key, only its last four
/// characters. Made in SQL rather than by a serde struct pair, and pasted into each statement at compile time, to
/// keep the Worker's upload small (`make size`).
macro_rules! output_json {
    () => {
        "json_object('id', id, 'name', name, 'url', url, 'key_hint', key_hint,
         'enabled', json(CASE WHEN enabled = 1 THEN 'true' ELSE 'false' END), 'status', status,
         'message', NULLIF(message, ''), 'since', since, 'created_at', created_at)"
    };
}

/// A one-column answer: an output's JSON (or, for writes that answer nothing else, its id).
#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

fn one_output(status: u16, row: JsonRow) -> Result<Response, ApiError> {
    sunnylive_edge::json_text(status, format!("{{\"output\":{}}}", row.json))
}

fn output_not_found() -> ApiError {
    ApiError::NotFound {
        code: "output_not_found",
        message: "No such output on this stream.".into(),
    }
}

fn policy(app: &App) -> TargetPolicy {
    if app.config.development {
        TargetPolicy::AllowPrivate
    } else {
        TargetPolicy::PublicOnly
    }
}

async fn read_changes(app: &App, req: &mut Request, required: bool) -> Result<OutputChanges, ApiError> {
    let body = http::read_json(req, JSON_LIMIT).await?;
    let fields = OutputFields {
        name: body.opt_str("name")?,
        url: body.opt_str("url")?,
        key: body.opt_str("key")?,
        enabled: body.opt_bool("enabled")?,
    };
    OutputChanges::parse(fields, required, policy(app))
}

/// `GET /api/streams/{id}/outputs` (owner): oldest first.
pub async fn list(app: &App, req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let (_, stream) = load_owned(app, &req, stream_id).await?;
    let row: Option<JsonRow> = db::one(
        &app.db,
        "list outputs",
        concat!(
            "SELECT json_group_array(json(o)) AS json FROM (SELECT ",
            output_json!(),
            " AS o FROM stream_outputs WHERE stream_id = ?1 ORDER BY created_at, id)"
        ),
        &[(&stream.id).into()],
    )
    .await?;
    let list = row.map_or_else(|| "[]".to_string(), |r| r.json);
    sunnylive_edge::json_text(200, format!("{{\"outputs\":{list}}}"))
}

/// `POST /api/streams/{id}/outputs` (owner): 409 `output_limit_reached` past five. Taken while live too: the
/// origin picks an enabled output up within a few seconds.
pub async fn create(app: &App, mut req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let (_, stream) = load_owned(app, &req, stream_id).await?;
    let changes = read_changes(app, &mut req, true).await?;
    let (Some(name), Some(url), Some(key)) = (changes.name, changes.url, changes.key) else {
        unreachable!("BUG: OutputChanges::parse requires name, url and key when asked to");
    };
    let id = OutputId::generate(crate::crypto::random());
    let sealed = crate::crypto::seal(
        &app.config.output_sealing_key,
        id.as_str().as_bytes(),
        key.as_str().as_bytes(),
    )
    .await?;
    let now = app.now_rfc3339();
    // One statement: the count and the insert cannot interleave with another request's.
    let inserted: Option<JsonRow> = db::one(
        &app.db,
        "insert output",
        concat!(
            "INSERT INTO stream_outputs (id, stream_id, name, url, key_sealed, key_hint, enabled, since, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8
             WHERE (SELECT COUNT(*) FROM stream_outputs WHERE stream_id = ?2) < ?9 RETURNING ",
            output_json!(),
            " AS json"
        ),
        &[
            id.as_str().into(),
            (&stream.id).into(),
            name.as_str().into(),
            url.as_str().into(),
            sealed.as_str().into(),
            key.hint().into(),
            i64::from(changes.enabled.unwrap_or(true)).into(),
            now.as_str().into(),
            (MAX_OUTPUTS_PER_STREAM as i64).into(),
        ],
    )
    .await?;
    let row = inserted.ok_or_else(|| ApiError::Conflict {
        code: "output_limit_reached",
        message: format!("A stream has at most {MAX_OUTPUTS_PER_STREAM} outputs; remove one first."),
    })?;
    one_output(201, row)
}

/// `PATCH /api/streams/{id}/outputs/{output_id}` (owner): any of name, url, key, enabled. A disabled output is
/// `idle` at once (the origin stops it within a few seconds); a new url or key restarts a running one.
pub async fn update(app: &App, mut req: Request, stream_id: &str, output_id: &str) -> Result<Response, ApiError> {
    let (_, stream) = load_owned(app, &req, stream_id).await?;
    let id = OutputId::parse(output_id).ok_or_else(output_not_found)?;
    let changes = read_changes(app, &mut req, false).await?;
    let sealed = match &changes.key {
        Some(key) => Some(
            crate::crypto::seal(
                &app.config.output_sealing_key,
                id.as_str().as_bytes(),
                key.as_str().as_bytes(),
            )
            .await?,
        ),
        None => None,
    };
    let now = app.now_rfc3339();
    let updated: Option<JsonRow> = db::one(
        &app.db,
        "update output",
        concat!(
            "UPDATE stream_outputs SET name = COALESCE(?3, name), url = COALESCE(?4, url),
                 key_sealed = COALESCE(?5, key_sealed), key_hint = COALESCE(?6, key_hint),
                 enabled = COALESCE(?7, enabled),
                 message = CASE WHEN ?7 = 0 THEN '' ELSE message END,
                 since = CASE WHEN ?7 = 0 AND status != 'idle' THEN ?8 ELSE since END,
                 status = CASE WHEN ?7 = 0 THEN 'idle' ELSE status END
             WHERE id = ?1 AND stream_id = ?2 RETURNING ",
            output_json!(),
            " AS json"
        ),
        &[
            id.as_str().into(),
            (&stream.id).into(),
            changes.name.as_ref().map(|n| n.as_str()).into(),
            changes.url.as_ref().map(|u| u.as_str()).into(),
            sealed.as_deref().into(),
            changes.key.as_ref().map(|k| k.hint()).into(),
            changes.enabled.map_or(db::Arg::Null, |e| i64::from(e).into()),
            now.as_str().into(),
        ],
    )
    .await?;
    one_output(200, updated.ok_or_else(output_not_found)?)
}

/// `DELETE /api/streams/{id}/outputs/{output_id}` (owner): gone at once; the origin stops it within a few seconds.
pub async fn delete(app: &App, req: Request, stream_id: &str, output_id: &str) -> Result<Response, ApiError> {
    let (_, stream) = load_owned(app, &req, stream_id).await?;
    let id = OutputId::parse(output_id).ok_or_else(output_not_found)?;
    let deleted: Option<JsonRow> = db::one(
        &app.db,
        "delete output",
        "DELETE FROM stream_outputs WHERE id = ?1 AND stream_id = ?2 RETURNING id AS json",
        &[id.as_str().into(), (&stream.id).into()],
    )
    .await?;
    deleted.ok_or_else(output_not_found)?;
    http::no_content()
}

/// Every output of a stream that is no longer live goes back to `idle` (on_publish_done, the stale sweep, stream
/// deletion): a supervisor that died cannot leave one showing `live`.
pub async fn idle_outputs_of_offline_streams(app: &App) -> Result<(), ApiError> {
    db::run(
        &app.db,
        "idle outputs of offline streams",
        "UPDATE stream_outputs SET status = 'idle', message = '', since = ?1
         WHERE status != 'idle' AND stream_id IN (SELECT id FROM streams WHERE status != 'live' OR deleted_at IS NOT NULL)",
        &[app.now_rfc3339().as_str().into()],
    )
    .await?;
    Ok(())
}

/// `GET /api/origin/broadcasts/{broadcast_id}/outputs` (origin token): the enabled outputs of the stream whose live
/// broadcast this is, each with its target URL and its key in clear; an empty list once the broadcast is not live.
/// The origin asks on publish and every 1.5 s while live. An output whose key does not open (the secret was
/// replaced) is left out and shows `error` until its owner enters the key again.
pub async fn for_origin(app: &App, req: Request, broadcast_id: &str) -> Result<Response, ApiError> {
    check_origin_token(app, &req)?;
    let broadcast = BroadcastId::parse(broadcast_id).ok_or_else(|| ApiError::not_found("Broadcast"))?;
    // Each row as a JSON object too: read back with serde_json's Value, which the Worker has anyway.
    let rows: Vec<JsonRow> = db::all(
        &app.db,
        "outputs of a live broadcast",
        "SELECT json_object('id', o.id, 'url', o.url, 'sealed', o.key_sealed) AS json
         FROM stream_outputs o JOIN streams s ON s.id = o.stream_id
         WHERE s.broadcast_id = ?1 AND s.status = 'live' AND s.deleted_at IS NULL AND o.enabled = 1
         ORDER BY o.created_at, o.id",
        &[broadcast.as_str().into()],
    )
    .await?;
    let mut outputs = Vec::with_capacity(rows.len());
    for row in rows {
        let row: serde_json::Value =
            serde_json::from_str(&row.json).map_err(|e| ApiError::internal(format!("an output row's JSON: {e}")))?;
        let field = |k: &str| row[k].as_str().unwrap_or_default();
        let id = field("id");
        let opened = crate::crypto::open(&app.config.output_sealing_key, id.as_bytes(), field("sealed")).await;
        match opened.ok().and_then(|k| String::from_utf8(k).ok()) {
            Some(key) => outputs.push(serde_json::json!({ "id": id, "url": field("url"), "key": key })),
            None => {
                worker::console_error!("outputs: the key of output {id} does not open (OUTPUT_KEY_SECRET changed?)");
                set_status(
                    app,
                    id,
                    broadcast.as_str(),
                    OutputStatus::Error,
                    "The stream key can no longer be read: enter it again.",
                )
                .await?;
            }
        }
    }
    // http::json answers `cache-control: no-store`: the keys are never kept by a cache.
    http::json(200, &serde_json::json!({ "outputs": outputs }))
}

/// A status change, applied only while the output's stream is live with this broadcast, and (but for `idle`) only
/// while the output is enabled: a late report from a stopped run never overwrites what is true now.
async fn set_status(
    app: &App,
    output_id: &str,
    broadcast_id: &str,
    status: OutputStatus,
    message: &str,
) -> Result<bool, ApiError> {
    let row: Option<JsonRow> = db::one(
        &app.db,
        "report output status",
        "UPDATE stream_outputs SET status = ?3, message = ?4, since = CASE WHEN status = ?3 THEN since ELSE ?5 END
         WHERE id = ?1 AND (enabled = 1 OR ?3 = 'idle')
           AND stream_id = (SELECT id FROM streams WHERE broadcast_id = ?2 AND status = 'live' AND deleted_at IS NULL)
         RETURNING id AS json",
        &[
            output_id.into(),
            broadcast_id.into(),
            status.as_str().into(),
            message.into(),
            app.now_rfc3339().as_str().into(),
        ],
    )
    .await?;
    Ok(row.is_some())
}

/// `PUT /api/origin/broadcasts/{broadcast_id}/outputs/{output_id}/status` (origin token), body `{"status",
/// "message"?}`: 204, or 404 `output_not_found` when the output is gone, disabled, or its broadcast no longer live
/// (the supervisor then forgets the report).
pub async fn report_status(
    app: &App,
    mut req: Request,
    broadcast_id: &str,
    output_id: &str,
) -> Result<Response, ApiError> {
    check_origin_token(app, &req)?;
    let body = http::read_json(&mut req, JSON_LIMIT).await?;
    let status = body
        .opt_str("status")?
        .ok_or_else(|| ApiError::invalid("status", "is required"))?;
    let status = OutputStatus::parse(status)
        .ok_or_else(|| ApiError::invalid("status", "must be idle, connecting, live or error"))?;
    let message = status_message(body.opt_str("message")?.unwrap_or_default());
    let (Some(broadcast), Some(output)) = (BroadcastId::parse(broadcast_id), OutputId::parse(output_id)) else {
        return Err(output_not_found());
    };
    if !set_status(app, output.as_str(), broadcast.as_str(), status, &message).await? {
        return Err(output_not_found());
    }
    http::no_content()
}
