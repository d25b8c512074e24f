//! The worker's client of the ChatRoom Durable Objects: how a request to a stream's room is built, and the posts
//! other modules make into it (status changes from the RTMP callbacks and stream deletion, logouts from auth, paid
//! donations from the Midtrans code). It imports no route module, so every one of them can use it.
//!
//! The room trusts the identity headers of the requests it receives because only this worker can reach it (a Durable
//! Object has no public URL, only the `CHAT_ROOMS` binding: this worker's, which names the chat Worker `sunnylive-chat`
//! by `script_name`, and the chat Worker's own, whose `fetch` routes nothing to a room). So every request to the room
//! is built here from scratch and carries no header the client sent. The room's internal contract is documented in
//! durable-objects/src/lib.rs. In a big room the upgrade's 101 comes from one of the room's ChatShard relays, which the
//! room asked to accept it (the worker cannot tell, and never talks to a shard itself).

use sunnylive_core::chat::{StatusPost, HEADER_STREAM_ID, ROOM_STATUS};
use sunnylive_core::stream::StreamStatus;
use worker::{Headers, Method, Request, Stub};

use crate::app::App;
use sunnylive_core::error::ApiError;

/// The stub of a stream's room: one object per stream, named by the stream id.
pub fn room(app: &App, stream_id: &str) -> worker::Result<Stub> {
    app.env
        .durable_object("CHAT_ROOMS")?
        .id_from_name(stream_id)?
        .get_stub()
}

/// A request to the room. The host part of the URL is ignored by the stub; it must still be a full URL because
/// `Request::new` rejects relative ones. Every request names the stream, so the room learns which D1 row its viewer
/// count belongs to (a Durable Object is not told the name it was created from).
pub fn room_request(
    stream_id: &str,
    method: Method,
    path_and_query: &str,
    headers: Headers,
    body: Option<String>,
) -> worker::Result<Request> {
    headers.set(HEADER_STREAM_ID, stream_id)?;
    crate::http::outbound(
        &method,
        &format!("https://chat-room{path_and_query}"),
        &headers,
        body.as_deref(),
        false,
    )
}

/// Sends a JSON body to one of the room's internal routes and returns the room's status code (an error when the
/// room could not be reached or failed, 5xx). `path` and `body` are one of the typed pairs of
/// `sunnylive_core::chat`'s internal contract. Only the serialization is generic: the request is `ask_room`'s.
pub async fn post_to_room<T: serde::Serialize>(
    app: &App,
    stream_id: &str,
    path: &str,
    body: &T,
) -> Result<u16, ApiError> {
    let text = serde_json::to_string(body).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(ask_room(app, stream_id, Method::Post, path, Some(text)).await?.0)
}

/// Asks the stream's room one of its internal routes and returns the answer's text: an `Upstream` error
/// (`chat_unavailable`, 502) when the room cannot be reached or answers anything but 200, so that the caller's
/// route changes nothing it cannot finish.
pub async fn ask_room(
    app: &App,
    stream_id: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), ApiError> {
    let unavailable = |why: String| {
        worker::console_error!("chat: room {stream_id} failed {path}: {why}");
        ApiError::Upstream {
            code: "chat_unavailable",
            message: "A chat room could not be reached; nothing was changed there. Try again.".into(),
        }
    };
    let headers = Headers::new();
    let answer = async {
        headers.set("content-type", "application/json")?;
        let req = room_request(stream_id, method, path, headers, body)?;
        let mut res = room(app, stream_id)?.fetch_with_request(req).await?;
        Ok::<_, worker::Error>((res.status_code(), res.text().await?))
    }
    .await
    .map_err(|e| unavailable(e.to_string()))?;
    if answer.0 >= 500 {
        return Err(unavailable(format!("answered {}", answer.0)));
    }
    Ok(answer)
}

/// Tells the stream's chat room that the stream went live or offline. A failure is logged, not raised: the RTMP
/// callback must still answer nginx, and new viewers learn the status from D1 when they join.
pub async fn announce_status(app: &App, stream_id: &str, live: bool) {
    let status = if live {
        StreamStatus::Live
    } else {
        StreamStatus::Offline
    };
    match post_to_room(app, stream_id, ROOM_STATUS, &StatusPost { status }).await {
        Ok(code) if (200..300).contains(&code) => {}
        Ok(code) => worker::console_error!("chat: room {stream_id} answered {code} to status {}", status.as_str()),
        Err(e) => worker::console_error!("chat: could not tell room {stream_id} it is {}: {e}", status.as_str()),
    }
}
