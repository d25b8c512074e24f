//! The worker's side of chat: `GET /api/streams/{id}/chat` (the WebSocket upgrade) and `GET /api/streams/{id}/messages`
//! (older history). Requests to the room itself are built by `room_client`.

use sunnylive_core::chat::{
    HistoryQuery, Identity, HEADER_CLIENT_ADDRESS, HEADER_LOGIN_ID, HEADER_STREAM_STATUS, ROOM_MESSAGES, ROOM_WEBSOCKET,
};
use sunnylive_core::error::ApiError;
use worker::{Headers, Method, Request, Response};

use crate::app::App;
use crate::auth::{self, ACCESS_COOKIE};
use crate::http::{self, OrInternal};
use crate::room_client::{room, room_request};
use crate::stream_row;

/// `GET /api/streams/{id}/chat` with `Upgrade: websocket`. Anyone may connect and read; an access token (cookie or
/// Bearer) lets the user chat, and the stream's owner joins as host.
pub async fn connect(app: &App, req: Request, id: &str) -> Result<Response, ApiError> {
    let upgrade = req.headers().get("upgrade").ok().flatten().unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return upgrade_required();
    }
    let stream = stream_row::load(app, id).await?;
    refuse_cross_site_cookie(app, &req)?;
    let caller = auth::authenticate(app, &req)?;
    // A revoked login's access token opens no socket; the room tags the socket with its login for a later logout.
    let login = match &caller {
        Some(user) => auth::chat_login(app, user, &stream.id).await?,
        None => None,
    };
    let identity = match caller {
        None => Identity::Anonymous,
        Some(user) if user.id.as_str() == stream.owner_id => Identity::Host {
            id: user.id,
            username: user.username,
        },
        Some(user) => Identity::Viewer {
            id: user.id,
            username: user.username,
        },
    };
    let headers = Headers::new();
    headers.set("upgrade", "websocket").or_internal("headers")?;
    for (name, value) in identity.headers() {
        headers.set(name, &value).or_internal("headers")?;
    }
    if let Some(login) = &login {
        headers.set(HEADER_LOGIN_ID, login).or_internal("headers")?;
    }
    headers
        .set(HEADER_STREAM_STATUS, stream.status.as_str())
        .or_internal("headers")?;
    // The room caps sockets per address and counts anonymous viewers by it: the same key as every per-IP limit.
    headers
        .set(HEADER_CLIENT_ADDRESS, &http::client_ip(&req))
        .or_internal("headers")?;
    let forwarded = room_request(&stream.id, Method::Get, ROOM_WEBSOCKET, headers, None).or_internal("room request")?;
    let answer = room(app, &stream.id)
        .or_internal("CHAT_ROOMS stub")?
        .fetch_with_request(forwarded)
        .await
        .or_internal("chat room upgrade")?;
    if answer.status_code() != 101 {
        return Err(ApiError::internal(format!(
            "chat room answered {} to an upgrade",
            answer.status_code()
        )));
    }
    Ok(answer)
}

/// 426 for a plain GET on the chat route: it only speaks WebSocket.
fn upgrade_required() -> Result<Response, ApiError> {
    let body = r#"{"error":{"code":"upgrade_required","message":"This route only accepts WebSocket upgrades."}}"#;
    let headers = Headers::new();
    headers
        .set("content-type", "application/json; charset=utf-8")
        .or_internal("headers")?;
    headers.set("upgrade", "websocket").or_internal("headers")?;
    Ok(Response::ok(body)
        .or_internal("response")?
        .with_status(426)
        .with_headers(headers))
}

/// A socket signed in by its access cookie must come from our own pages (see `auth::require_own_origin`).
fn refuse_cross_site_cookie(app: &App, req: &Request) -> Result<(), ApiError> {
    if http::bearer(req).is_some() || http::cookie(req, ACCESS_COOKIE).is_none() {
        return Ok(());
    }
    crate::auth::require_own_origin(app, req)
}

/// `GET /api/streams/{id}/messages?before=<message id>&limit=`: older history, oldest first.
pub async fn messages(app: &App, req: Request, id: &str) -> Result<Response, ApiError> {
    let q = http::query(&req);
    let query = HistoryQuery::parse(q.get("before").map(String::as_str), q.get("limit").map(String::as_str))?;
    let stream = stream_row::load(app, id).await?;
    let path = format!("{ROOM_MESSAGES}?{}", query.to_query_string());
    let (status, body) = crate::room_client::ask_room(app, &stream.id, Method::Get, &path, None).await?;
    if status != 200 {
        return Err(ApiError::internal(format!(
            "chat room answered {status} to a history query: {body}"
        )));
    }
    let headers = Headers::new();
    headers
        .set("content-type", "application/json; charset=utf-8")
        .or_internal("headers")?;
    headers.set("cache-control", "no-store").or_internal("headers")?;
    Ok(Response::ok(body).or_internal("response")?.with_headers(headers))
}
