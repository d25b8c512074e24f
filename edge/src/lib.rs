//! What the two Workers, the main one (`functions/`) and the chat Worker with the Durable Objects (`durable-objects/`),
//! both need from the platform, written once: responses in the contract's error shape, bounded body reading, outgoing
//! requests (to Midtrans, to a room, to a shard, to the static assets), the clock and random bytes. Pure rules live in
//! `sunnylive-core`; this crate is the thin layer of `worker` calls around them, so it is tested through the end-to-end
//! suites.

use futures::StreamExt;
use serde::Serialize;
use sunnylive_core::error::ApiError;
use worker::{Headers, Method, Request, Response};

/// `Result<T, worker::Error>` into `ApiError::Internal` with context (the orphan rule forbids a `From` impl).
pub trait OrInternal<T> {
    fn or_internal(self, context: &str) -> Result<T, ApiError>;
}

impl<T> OrInternal<T> for worker::Result<T> {
    fn or_internal(self, context: &str) -> Result<T, ApiError> {
        self.map_err(|e| ApiError::internal(format!("{context}: {e}")))
    }
}

/// Milliseconds since the Unix epoch (inside a request, workerd's clock moves only across I/O).
pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    now_ms() / 1000
}

/// `N` random bytes from `crypto.getRandomValues`.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("BUG: crypto.getRandomValues is always available in workerd");
    out
}

/// Reads the body as bytes, refusing (413) anything over `limit`. A declared Content-Length over the limit is
/// refused before reading; otherwise the body is read chunk by chunk and reading stops at the limit, because a
/// chunked body declares no length and reading it whole first would buffer whatever the client chose to send.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    if let Some(len) = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::TooLarge { limit });
        }
    }
    // A request without a body (GET, or a POST that sent none) has no stream to read.
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req
        .stream()
        .map_err(|e| ApiError::Malformed(format!("unreadable body ({e})")))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::Malformed(format!("unreadable body ({e})")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A JSON response with `status` whose body is already JSON text.
pub fn json_text(status: u16, text: String) -> Result<Response, ApiError> {
    let headers = Headers::new();
    headers
        .set("content-type", "application/json; charset=utf-8")
        .or_internal("headers")?;
    headers.set("cache-control", "no-store").or_internal("headers")?;
    Ok(Response::ok(text)
        .or_internal("response")?
        .with_status(status)
        .with_headers(headers))
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response, ApiError> {
    let text = serde_json::to_string(body).map_err(|e| ApiError::internal(format!("serializing a response: {e}")))?;
    json_text(status, text)
}

/// 204 No Content.
pub fn no_content() -> Result<Response, ApiError> {
    Ok(Response::empty().or_internal("response")?.with_status(204))
}

/// The error in the contract's shape (`{"error": {"code", "message", ...}}`) with its status, `Retry-After` and
/// `WWW-Authenticate` where they apply. Logging an internal error's context is the caller's (it knows the request).
pub fn error_response(e: &ApiError) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    if let Some(secs) = e.retry_after() {
        let _ = headers.set("retry-after", &secs.to_string());
    }
    if matches!(e, ApiError::Unauthenticated { .. }) {
        let _ = headers.set("www-authenticate", "Bearer");
    }
    match Response::ok(e.body()) {
        Ok(r) => r.with_status(e.status()).with_headers(headers),
        Err(_) => Response::empty().map(|r| r.with_status(500)).unwrap_or_else(|_| {
            Response::error("internal_error", 500).expect("BUG: a fixed error response can always be built")
        }),
    }
}

/// An outgoing request, built on `web_sys` directly. `worker::Request::new_with_init` converts the whole `cf`
/// options object (image resizing, polish, ...) into a JS object on every call: about 12 KB of wasm we never use,
/// as the upload size budget (`make size`) showed.
pub fn outbound(
    method: &Method,
    url: &str,
    headers: &Headers,
    body: Option<&str>,
    manual_redirect: bool,
) -> worker::Result<Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    init.set_headers(headers.as_ref());
    if let Some(body) = body {
        init.set_body(&wasm_bindgen::JsValue::from_str(body));
    }
    if manual_redirect {
        init.set_redirect(web_sys::RequestRedirect::Manual);
    }
    web_sys::Request::new_with_str_and_init(url, &init)
        .map(Request::from)
        .map_err(|e| worker::Error::JsError(e.as_string().unwrap_or_else(|| "invalid outgoing request".into())))
}
