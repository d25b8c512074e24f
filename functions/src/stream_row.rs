//! A stream as the worker reads it from D1: the row (`StreamRow`), its public view (the contract's stream object),
//! and loading one by id (`load`), or only for its owner (`load_owned`). Every module that works under a stream
//! (broadcasts, chat, donations, the stream routes) loads it here; this module uses none of them.

use serde::{Deserialize, Serialize};
use sunnylive_core::error::ApiError;
use sunnylive_core::ids::StreamId;
use sunnylive_core::stream::StreamStatus;
use worker::Request;

use crate::app::App;
use crate::auth::{require_user, AuthUser};
use crate::db;

/// Columns every stream query selects, joined with the owner (`s` = streams, `u` = users).
pub const STREAM_COLUMNS: &str = "s.id, s.title, s.description, s.owner_id, u.username AS owner_username, s.status,
     s.live_since, s.viewers, s.created_at, s.key_generation, s.thumbnail_broadcast_id, s.thumbnail_at";

#[derive(Deserialize)]
pub struct StreamRow {
    pub id: String,
    pub title: String,
    description: String,
    pub owner_id: String,
    owner_username: String,
    pub status: StreamStatus,
    live_since: Option<String>,
    viewers: i64,
    pub created_at: String,
    pub key_generation: i64,
    thumbnail_broadcast_id: Option<String>,
    thumbnail_at: Option<i64>,
}

#[derive(Serialize)]
struct Owner<'a> {
    id: &'a str,
    username: &'a str,
}

#[derive(Serialize)]
pub struct StreamView<'a> {
    id: &'a str,
    title: &'a str,
    description: &'a str,
    owner: Owner<'a>,
    status: StreamStatus,
    live_since: Option<&'a str>,
    viewers: i64,
    hls_url: String,
    thumbnail_url: Option<String>,
    chat_url: String,
    created_at: &'a str,
}

impl StreamRow {
    pub fn view(&self, app: &App) -> StreamView<'_> {
        StreamView {
            id: &self.id,
            title: &self.title,
            description: &self.description,
            owner: Owner {
                id: &self.owner_id,
                username: &self.owner_username,
            },
            status: self.status,
            live_since: self.live_since.as_deref(),
            viewers: self.viewers,
            // On the site's own origin (like chat_url): the Worker serves every playlist, so video needs no other
            // host, certificate or CORS policy.
            hls_url: format!("/hls/{}/master.m3u8", self.id),
            thumbnail_url: match (&self.thumbnail_broadcast_id, self.thumbnail_at) {
                (Some(b), Some(at)) => Some(app.thumbnail_url(&self.id, b, at)),
                _ => None,
            },
            chat_url: format!("/api/streams/{}/chat", self.id),
            created_at: &self.created_at,
        }
    }
}

/// A stream that exists and is not deleted, or 404.
pub async fn load(app: &App, id: &str) -> Result<StreamRow, ApiError> {
    let not_found = || ApiError::NotFound {
        code: "stream_not_found",
        message: "No such stream.".into(),
    };
    let id = StreamId::parse(id).ok_or_else(not_found)?;
    db::one(
        &app.db,
        "load stream",
        &format!(
            "SELECT {STREAM_COLUMNS} FROM streams s JOIN users u ON u.id = s.owner_id
             WHERE s.id = ?1 AND s.deleted_at IS NULL"
        ),
        &[id.as_str().into()],
    )
    .await?
    .ok_or_else(not_found)
}

/// The stream, if the caller owns it: 401 for anonymous callers, 404 for no such stream, 403 for someone else's.
pub async fn load_owned(app: &App, req: &Request, id: &str) -> Result<(AuthUser, StreamRow), ApiError> {
    let caller = require_user(app, req).await?;
    let stream = load(app, id).await?;
    if stream.owner_id != caller.id.as_str() {
        return Err(ApiError::Forbidden {
            code: "not_owner",
            message: "Only the stream's owner can do this.".into(),
        });
    }
    Ok((caller, stream))
}
