//! The worker's side of chat: talking to a stream's ChatRoom Durable Object through the `CHAT_ROOMS` binding.
//! (The WebSocket upgrade and history routes join this module with the chat issue.)

use worker::{Method, Request, RequestInit};

use crate::app::App;

/// Sends a JSON body to one of the room's internal routes. The host part of the URL is ignored by the stub;
/// it must still be a full URL because `Request::new` rejects relative ones.
pub async fn post_to_room(app: &App, stream_id: &str, path: &str, body: &serde_json::Value) -> worker::Result<u16> {
    let stub = app
        .env
        .durable_object("CHAT_ROOMS")?
        .id_from_name(stream_id)?
        .get_stub()?;
    let headers = worker::Headers::new();
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.to_string().into()));
    let req = Request::new_with_init(&format!("https://chat-room{path}"), &init)?;
    Ok(stub.fetch_with_request(req).await?.status_code())
}

/// Tells the stream's chat room that the stream went live or offline. A failure is logged, not raised: the RTMP
/// callback must still answer nginx, and new viewers learn the status from D1 when they join.
pub async fn announce_status(app: &App, stream_id: &str, live: bool) {
    let status = if live { "live" } else { "offline" };
    let body = serde_json::json!({ "status": status });
    match post_to_room(app, stream_id, "/internal/status", &body).await {
        Ok(code) if (200..300).contains(&code) => {}
        Ok(code) => worker::console_error!("chat: room {stream_id} answered {code} to status {status}"),
        Err(e) => worker::console_error!("chat: could not tell room {stream_id} it is {status}: {e}"),
    }
}
