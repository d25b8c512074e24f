//! A chat WebSocket client for the tests: connect (anonymous, Bearer, or cookie; from the default or a given client
//! address), send JSON frames, and wait for frames of a given type with a timeout, skipping the ones a test does not
//! care about. A `batch` frame is unpacked as the web client does: its frames come out one by one, in order.

use std::collections::VecDeque;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::BoxError;

pub struct ChatClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `welcome` frame the room sent first.
    pub welcome: Value,
    /// Frames of a `batch` not handed out yet.
    unpacked: VecDeque<Value>,
    /// How many `batch` frames arrived.
    pub batches: usize,
}

/// How a chat client presents itself.
pub enum Credentials<'a> {
    Anonymous,
    Bearer(&'a str),
    /// The `sl_access` cookie, sent with the site's own Origin (a browser on the site): `(token, origin)`.
    Cookie(&'a str, &'a str),
}

impl ChatClient {
    /// Opens `/api/streams/{id}/chat` on `base` (http://...) and reads the welcome frame.
    pub async fn connect(base: &str, stream_id: &str, creds: Credentials<'_>) -> Result<ChatClient, BoxError> {
        Self::connect_from(base, stream_id, creds, None).await
    }

    /// `connect` with `CF-Connecting-IP: ip` (as Cloudflare's edge sets it), when given.
    pub async fn connect_from(
        base: &str,
        stream_id: &str,
        creds: Credentials<'_>,
        ip: Option<&str>,
    ) -> Result<ChatClient, BoxError> {
        let mut client = Self::open(base, stream_id, creds, ip).await?;
        let welcome = client.next_frame(Duration::from_secs(10)).await?;
        if welcome["type"] != "welcome" {
            return Err(format!("first frame was not welcome: {welcome}").into());
        }
        client.welcome = welcome;
        Ok(client)
    }

    /// Opens the socket without reading anything (for a test of what comes instead of the welcome).
    pub async fn open(
        base: &str,
        stream_id: &str,
        creds: Credentials<'_>,
        ip: Option<&str>,
    ) -> Result<ChatClient, BoxError> {
        let url = format!("{}/api/streams/{stream_id}/chat", base.replacen("http", "ws", 1));
        let mut req = url.into_client_request()?;
        if let Some(ip) = ip {
            req.headers_mut().insert("cf-connecting-ip", ip.parse()?);
        }
        match creds {
            Credentials::Anonymous => {}
            Credentials::Bearer(t) => {
                req.headers_mut()
                    .insert("authorization", format!("Bearer {t}").parse()?);
            }
            Credentials::Cookie(t, origin) => {
                req.headers_mut().insert("cookie", format!("sl_access={t}").parse()?);
                req.headers_mut().insert("origin", origin.parse()?);
            }
        }
        let (socket, _) =
            tokio::time::timeout(Duration::from_secs(15), tokio_tungstenite::connect_async(req)).await??;
        Ok(ChatClient {
            socket,
            welcome: Value::Null,
            unpacked: VecDeque::new(),
            batches: 0,
        })
    }

    pub async fn send_json(&mut self, v: &Value) -> Result<(), BoxError> {
        self.socket.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    pub async fn send_raw(&mut self, m: Message) -> Result<(), BoxError> {
        self.socket.send(m).await?;
        Ok(())
    }

    /// The next JSON frame (pings and pongs skipped). A close is an error carrying its code.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Value, BoxError> {
        if let Some(f) = self.unpacked.pop_front() {
            return Ok(f);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| format!("no frame within {timeout:?}"))?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let mut frame: Value = serde_json::from_str(t.as_str())?;
                    if frame["type"] != "batch" {
                        return Ok(frame);
                    }
                    self.batches += 1;
                    let Value::Array(frames) = frame["frames"].take() else {
                        return Err(format!("a batch without a frames list: {t}").into());
                    };
                    self.unpacked.extend(frames);
                    if let Some(f) = self.unpacked.pop_front() {
                        return Ok(f);
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(format!("closed: {}", c.map(|c| u16::from(c.code)).unwrap_or(1005)).into())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err("socket ended".into()),
            }
        }
    }

    /// The next frame whose `type` is `ty`, skipping others.
    pub async fn next_of_type(&mut self, ty: &str, timeout: Duration) -> Result<Value, BoxError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self
                .next_frame(left)
                .await
                .map_err(|e| format!("waiting for a {ty} frame: {e}"))?;
            if f["type"] == ty {
                return Ok(f);
            }
        }
    }

    /// Collects every frame of type `ty` that arrives within `window`.
    pub async fn collect_of_type(&mut self, ty: &str, window: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next_frame(left).await {
                Ok(f) if f["type"] == ty => out.push(f),
                Ok(_) => {}
                Err(_) => return out,
            }
        }
    }

    /// Waits for the server to close the socket and returns the close code.
    pub async fn close_code(&mut self, timeout: Duration) -> Result<u16, BoxError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| "no close within timeout")?;
            match msg {
                Some(Ok(Message::Close(c))) => return Ok(c.map(|c| u16::from(c.code)).unwrap_or(1005)),
                Some(Ok(_)) => continue,
                Some(Err(tokio_tungstenite::tungstenite::Error::Protocol(_))) | None => return Ok(1006),
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
