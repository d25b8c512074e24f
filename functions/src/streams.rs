//! Streams: create, read, update, delete, the public listing (live first, keyset-paginated, full-text search over
//! title and owner username), the owner's own list, and the stream key (view and rotate). Keys are derived, never
//! stored (core/src/stream_key.rs); they appear only in the create answer and the two key routes.

use serde::{Deserialize, Serialize};
use sunnylive_core::error::ApiError;
use sunnylive_core::ids::StreamId;
use sunnylive_core::page::{decode_stream_cursor, encode_stream_cursor, parse_limit};
use sunnylive_core::stream::{fts_query, StreamChanges, StreamStatus};
use sunnylive_core::stream_key;
use worker::Request;
use worker::Response;

use crate::app::App;
use crate::auth::require_user;
use crate::crypto::random;
use crate::db::{self, Arg};
use crate::http::{self, JSON_LIMIT};
use crate::stream_row::{load, load_owned, StreamRow, StreamView, STREAM_COLUMNS};

#[derive(Serialize)]
struct KeyBody<'a> {
    stream_key: String,
    rtmp_url: &'a str,
    /// Only when the origin has RTMPS (`RTMPS_INGEST_URL`): the key then need not cross the internet in clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtmps_url: Option<&'a str>,
}

fn key_body<'a>(app: &'a App, stream: &StreamRow) -> KeyBody<'a> {
    let id = StreamId::from_trusted(stream.id.clone());
    KeyBody {
        stream_key: stream_key::derive(app.config.stream_key_secret.as_bytes(), &id, stream.key_generation),
        rtmp_url: &app.config.rtmp_ingest_url,
        rtmps_url: app.config.rtmps_ingest_url.as_deref(),
    }
}

/// `POST /api/streams`
pub async fn create(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let caller = require_user(app, &req).await?;
    let body = http::read_json(&mut req, JSON_LIMIT).await?;
    let changes = StreamChanges::parse(body.opt_str("title")?, body.opt_str("description")?, true)?;
    let title = changes
        .title
        .expect("BUG: StreamChanges::parse requires a title when asked to");
    let id = StreamId::generate(random());
    db::run(
        &app.db,
        "insert stream",
        "INSERT INTO streams (id, owner_id, title, description, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            id.as_str().into(),
            caller.id.as_str().into(),
            title.as_str().into(),
            changes.description.as_ref().map_or("", |d| d.as_str()).into(),
            app.now_rfc3339().as_str().into(),
        ],
    )
    .await?;
    let stream = load(app, id.as_str()).await?;
    #[derive(Serialize)]
    struct Body<'a> {
        stream: StreamView<'a>,
        #[serde(flatten)]
        key: KeyBody<'a>,
    }
    http::json(
        201,
        &Body {
            stream: stream.view(app),
            key: key_body(app, &stream),
        },
    )
}

#[derive(Serialize)]
struct One<'a> {
    stream: StreamView<'a>,
}

/// `GET /api/streams/{id}`
pub async fn get(app: &App, id: &str) -> Result<Response, ApiError> {
    let stream = load(app, id).await?;
    http::json(
        200,
        &One {
            stream: stream.view(app),
        },
    )
}

/// `PATCH /api/streams/{id}`
pub async fn update(app: &App, mut req: Request, id: &str) -> Result<Response, ApiError> {
    let (_, stream) = load_owned(app, &req, id).await?;
    let body = http::read_json(&mut req, JSON_LIMIT).await?;
    let changes = StreamChanges::parse(body.opt_str("title")?, body.opt_str("description")?, false)?;
    db::run(
        &app.db,
        "update stream",
        "UPDATE streams SET title = COALESCE(?1, title), description = COALESCE(?2, description) WHERE id = ?3",
        &[
            changes.title.as_ref().map(|t| t.as_str()).into(),
            changes.description.as_ref().map(|d| d.as_str()).into(),
            (&stream.id).into(),
        ],
    )
    .await?;
    let stream = load(app, &stream.id).await?;
    http::json(
        200,
        &One {
            stream: stream.view(app),
        },
    )
}

/// `DELETE /api/streams/{id}`: the stream disappears and its key stops working at once (key checks only find
/// streams that are not deleted). A live publisher is cut off at its next heartbeat.
pub async fn delete(app: &App, req: Request, id: &str) -> Result<Response, ApiError> {
    let (_, stream) = load_owned(app, &req, id).await?;
    db::run(
        &app.db,
        "delete stream",
        "UPDATE streams SET deleted_at = ?1, status = 'offline', live_since = NULL, publisher = NULL WHERE id = ?2",
        &[app.now_rfc3339().as_str().into(), (&stream.id).into()],
    )
    .await?;
    crate::broadcasts::end_current(app, &stream.id).await?;
    if stream.status == StreamStatus::Live {
        crate::room_client::announce_status(app, &stream.id, false).await;
    }
    // Its playlists, segments and thumbnails leave the cache in front of the Worker everywhere at once.
    app.purge_cache(vec![sunnylive_core::cache::stream_tag(&stream.id)])
        .await;
    http::no_content()
}

/// `GET /api/streams/{id}/key`
pub async fn get_key(app: &App, req: Request, id: &str) -> Result<Response, ApiError> {
    let (_, stream) = load_owned(app, &req, id).await?;
    http::json(200, &key_body(app, &stream))
}

/// `POST /api/streams/{id}/key`: a new key; the old one is refused from now on (the next heartbeat of a publisher
/// still using it answers 403 and nginx drops it).
pub async fn rotate_key(app: &App, req: Request, id: &str) -> Result<Response, ApiError> {
    let (_, mut stream) = load_owned(app, &req, id).await?;
    #[derive(Deserialize)]
    struct Row {
        key_generation: i64,
    }
    let row: Option<Row> = db::one(
        &app.db,
        "rotate stream key",
        "UPDATE streams SET key_generation = key_generation + 1 WHERE id = ?1 AND deleted_at IS NULL
         RETURNING key_generation",
        &[(&stream.id).into()],
    )
    .await?;
    stream.key_generation = row.ok_or_else(|| ApiError::not_found("Stream"))?.key_generation;
    http::json(200, &key_body(app, &stream))
}

/// Sort key of the public listing: (is live, created_at, id), newest first within live and offline.
type ListingKey = (i64, String, String);

/// `GET /api/streams?live=&q=&limit=&cursor=`
pub async fn list(app: &App, req: Request) -> Result<Response, ApiError> {
    let query = http::query(&req);
    let limit = parse_limit(query.get("limit").map(String::as_str))?;
    let live_only = match query.get("live").map(String::as_str) {
        // Exactly the contract's boolean: an empty `live=` is not one (schemathesis --mode all sends it).
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("live", "must be true or false")),
    };
    let q = query.get("q").map(|q| q.trim()).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::invalid("q", "must be at most 100 characters long"));
    }
    let fts = q.and_then(fts_query);
    if q.is_some() && fts.is_none() {
        // Only punctuation: nothing can match.
        return http::json(200, &serde_json::json!({ "streams": [], "next_cursor": null }));
    }
    let after: Option<ListingKey> = match query.get("cursor").filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_stream_cursor(c)?),
        None => None,
    };

    let mut sql =
        format!("SELECT {STREAM_COLUMNS} FROM streams s JOIN users u ON u.id = s.owner_id WHERE s.deleted_at IS NULL");
    let mut args: Vec<Arg> = Vec::new();
    if live_only {
        sql.push_str(" AND s.status = 'live'");
    }
    if let Some(fts) = &fts {
        args.push(fts.as_str().into());
        sql.push_str(&format!(
            " AND s.rowid IN (SELECT rowid FROM streams_search WHERE streams_search MATCH ?{})",
            args.len()
        ));
    }
    if let Some((live, created_at, id)) = &after {
        args.push((*live).into());
        let l = args.len();
        args.push(created_at.into());
        let c = args.len();
        args.push(id.into());
        let i = args.len();
        sql.push_str(&format!(
            " AND ((s.status = 'live') < ?{l} OR ((s.status = 'live') = ?{l}
               AND (s.created_at < ?{c} OR (s.created_at = ?{c} AND s.id < ?{i}))))"
        ));
    }
    sql.push_str(&format!(
        " ORDER BY (s.status = 'live') DESC, s.created_at DESC, s.id DESC LIMIT {}",
        limit + 1
    ));
    let mut rows: Vec<StreamRow> = db::all(&app.db, "list streams", &sql, &args).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| encode_stream_cursor(r.status == StreamStatus::Live, &r.created_at, &r.id))
    } else {
        None
    };
    #[derive(Serialize)]
    struct Body<'a> {
        streams: Vec<StreamView<'a>>,
        next_cursor: Option<String>,
    }
    http::json(
        200,
        &Body {
            streams: rows.iter().map(|r| r.view(app)).collect(),
            next_cursor,
        },
    )
}

/// `GET /api/me/streams`: the caller's own streams, newest first (an extension for the studio page).
pub async fn list_mine(app: &App, req: Request) -> Result<Response, ApiError> {
    let caller = require_user(app, &req).await?;
    let rows: Vec<StreamRow> = db::all(
        &app.db,
        "list my streams",
        &format!(
            "SELECT {STREAM_COLUMNS} FROM streams s JOIN users u ON u.id = s.owner_id
             WHERE s.owner_id = ?1 AND s.deleted_at IS NULL ORDER BY s.created_at DESC, s.id DESC LIMIT 100"
        ),
        &[caller.id.as_str().into()],
    )
    .await?;
    #[derive(Serialize)]
    struct Body<'a> {
        streams: Vec<StreamView<'a>>,
    }
    http::json(
        200,
        &Body {
            streams: rows.iter().map(|r| r.view(app)).collect(),
        },
    )
}
