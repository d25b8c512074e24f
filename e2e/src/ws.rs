//! A chat WebSocket client for the tests: connect (anonymous, Bearer, or cookie), send JSON frames, and wait for
//! frames of a given type with a timeout, skipping the ones a test does not care about.

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
}

/// How a chat client presents itself.
pub enum Credentials<'a> {
    Anonymous,
    Bearer(&'a str),
    Cookie(&'a str),
}

impl ChatClient {
    /// Opens `/api/streams/{id}/chat` on `base` (http://...) and reads the welcome frame.
    pub async fn connect(base: &str, stream_id: &str, creds: Credentials<'_>) -> Result<ChatClient, BoxError> {
        let url = format!("{}/api/streams/{stream_id}/chat", base.replacen("http", "ws", 1));
        let mut req = url.into_client_request()?;
        match creds {
            Credentials::Anonymous => {}
            Credentials::Bearer(t) => {
                req.headers_mut()
                    .insert("authorization", format!("Bearer {t}").parse()?);
            }
            Credentials::Cookie(t) => {
                req.headers_mut().insert("cookie", format!("sl_access={t}").parse()?);
                req.headers_mut().insert("origin", base.parse()?);
            }
        }
        let (socket, _) =
            tokio::time::timeout(Duration::from_secs(15), tokio_tungstenite::connect_async(req)).await??;
        let mut client = ChatClient {
            socket,
            welcome: Value::Null,
        };
        let welcome = client.next_frame(Duration::from_secs(10)).await?;
        if welcome["type"] != "welcome" {
            return Err(format!("first frame was not welcome: {welcome}").into());
        }
        client.welcome = welcome;
        Ok(client)
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
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| format!("no frame within {timeout:?}"))?;
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
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
