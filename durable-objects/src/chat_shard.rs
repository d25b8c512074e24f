//! The `ChatShard` Durable Object: a relay holding some of a big room's sockets (see `sunnylive_core::chat::shard`).
//! It decides nothing: the room accepts a viewer here when it holds `CHAT_SHARD_SOCKETS` itself, sends it each
//! event's frames for these sockets as one numbered delivery (applied once and in order through `ShardInbox`), and
//! gets every frame these sockets send, and every close, as a request back. Sockets are accepted through the
//! Hibernation API with the same attachment and tags as the room's own, so an evicted shard is rebuilt from them,
//! and the last delivery applied is kept in storage, so a rebuilt shard still drops a retried or late duplicate.
//! Its sockets' events go to the room as numbered batches, one request at a time; a failed request is retried with
//! backoff (the room applies each batch once), and a batch given up is reported to the sockets that sent in it.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use sunnylive_core::chat::{
    next_events, send_with_retry, shard_epoch, undelivered_notices, BatchOutcome, Connection, EventsFailure,
    LogoutDone, LogoutPost, ShardDelivered, ShardDelivery, ShardEvent, ShardEvents, ShardInbox, ShardOp, ShardSockets,
    CLOSE_NORMAL, CLOSE_POLICY, HEADER_CONNECTION, HEADER_LOGIN_ID, HEADER_SHARD, HEADER_STREAM_ID,
    MAX_CLIENT_FRAME_BYTES,
};
use sunnylive_core::error::ApiError;
use wasm_bindgen::prelude::*;
use worker::js_sys::Array;
use worker::worker_sys::ext::WebSocketExt;
use worker::worker_sys::WebSocketRequestResponsePair;
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, Response, SqlStorageValue, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use crate::chat_room::{
    broadcast, connection_of, error_response, internal, json_response, login_tag, raw_socket, read_json, split_state,
    RawState, PING, PONG,
};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS shard (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

#[durable_object]
pub struct ChatShard {
    state: State,
    raw_state: RawState,
    env: Env,
    /// `None` until first needed after construction, then read back from storage.
    inbox: RefCell<Option<ShardInbox>>,
    /// Sockets accepted whose welcome has not come yet: left out of broadcasts, whose content the welcome holds.
    awaiting: RefCell<HashSet<String>>,
    /// The sockets broadcasts go to (a JS array for `broadcast`), as of the last change. `None` until needed and
    /// after a change.
    welcomed: RefCell<Option<Array>>,
    /// (stream id, shard number), once read from an upgrade or storage.
    name: RefCell<Option<(String, u32)>>,
    schema_ready: Cell<bool>,
    /// Socket events not yet sent to the room, and whether a handler is sending them: one request at a time, so the
    /// room gets them in the order they happened.
    outbox: RefCell<VecDeque<ShardEvent>>,
    sending: Cell<bool>,
    /// This instance's name towards the room (`ShardEvents::epoch`), and the number of its last batch.
    epoch: String,
    batch: Cell<u64>,
}

impl ChatShard {
    fn sql(&self) -> worker::Result<worker::SqlStorage> {
        let sql = self.state.storage().sql();
        if !self.schema_ready.get() {
            sql.exec(SCHEMA, None)?;
            self.schema_ready.set(true);
        }
        Ok(sql)
    }

    fn setting(&self, key: &str) -> worker::Result<Option<String>> {
        let rows: Vec<Vec<SqlStorageValue>> = self
            .sql()?
            .exec(
                "SELECT value FROM shard WHERE key = ?",
                vec![SqlStorageValue::String(key.into())],
            )?
            .raw()
            .collect::<worker::Result<_>>()?;
        Ok(rows.first().and_then(|row| match row.first() {
            Some(SqlStorageValue::String(s)) => Some(s.clone()),
            _ => None,
        }))
    }

    fn save(&self, pairs: &[(&str, String)]) -> worker::Result<()> {
        let sql = self.sql()?;
        for (key, value) in pairs {
            sql.exec(
                "INSERT OR REPLACE INTO shard (key, value) VALUES (?, ?)",
                vec![
                    SqlStorageValue::String((*key).into()),
                    SqlStorageValue::String(value.clone()),
                ],
            )?;
        }
        Ok(())
    }

    /// Which room this shard relays for, and its number there.
    fn name(&self) -> Option<(String, u32)> {
        if self.name.borrow().is_none() {
            let stream = self.setting("stream_id").ok().flatten();
            let shard = self.setting("shard").ok().flatten().and_then(|n| n.parse().ok());
            if let (Some(stream), Some(shard)) = (stream, shard) {
                *self.name.borrow_mut() = Some((stream, shard));
            }
        }
        self.name.borrow().clone()
    }

    fn with_inbox<R>(&self, f: impl FnOnce(&mut ShardInbox) -> R) -> worker::Result<R> {
        let mut slot = self.inbox.borrow_mut();
        if slot.is_none() {
            let epoch = self.setting("epoch")?.and_then(|v| v.parse().ok()).unwrap_or(0);
            let last = self.setting("last_seq")?.and_then(|v| v.parse().ok()).unwrap_or(0);
            *slot = Some(ShardInbox::restore(epoch, last));
            if let Ok(pair) = WebSocketRequestResponsePair::new(PING, PONG) {
                self.state.set_websocket_auto_response(&pair);
            }
        }
        Ok(f(slot.as_mut().expect("BUG: the inbox was just restored")))
    }

    async fn route(&self, mut req: Request) -> Result<Response, ApiError> {
        match (req.method(), req.path().as_str()) {
            (Method::Get, "/internal/shard/websocket") => self.upgrade(&req),
            (Method::Post, "/internal/shard/deliver") => {
                let delivery: ShardDelivery = read_json(&mut req).await?;
                let (ops, epoch, last) = self
                    .with_inbox(|inbox| {
                        let ops = inbox.accept(delivery);
                        (ops, inbox.epoch, inbox.last_seq)
                    })
                    .map_err(internal("inbox"))?;
                if !ops.is_empty() {
                    // Written before the frames leave (the output gate holds them until it is durable).
                    self.save(&[("epoch", epoch.to_string()), ("last_seq", last.to_string())])
                        .map_err(internal("inbox state"))?;
                    self.apply(ops);
                }
                let sockets = u32::try_from(self.state.get_websockets().len()).unwrap_or(u32::MAX);
                json_response(200, &ShardDelivered { sockets })
            }
            (Method::Get, "/internal/shard/sockets") => {
                let conns = self
                    .state
                    .get_websockets()
                    .iter()
                    .filter_map(connection_of)
                    .map(|c| c.conn.as_str().to_string())
                    .collect();
                json_response(200, &ShardSockets { conns })
            }
            (Method::Post, "/internal/shard/logout") => {
                let body: LogoutPost = read_json(&mut req).await?;
                let sockets = self.state.get_websockets_with_tag(&login_tag(&body.login_id));
                for ws in &sockets {
                    let _ = ws.close(Some(CLOSE_POLICY), Some("logged out"));
                }
                json_response(
                    200,
                    &LogoutDone {
                        closed: sockets.len() as u64,
                    },
                )
            }
            _ => Err(ApiError::not_found("Chat shard route")),
        }
    }

    /// Accepts a socket the room placed here. The room has checked everything; its welcome comes as a delivery.
    fn upgrade(&self, req: &Request) -> Result<Response, ApiError> {
        let header = |name: &str| req.headers().get(name).ok().flatten();
        let connection = header(HEADER_CONNECTION)
            .as_deref()
            .and_then(Connection::from_attachment)
            .ok_or_else(|| ApiError::internal("chat shard: upgrade without a valid connection"))?;
        let stream = header(HEADER_STREAM_ID).ok_or_else(|| ApiError::internal("chat shard: no stream id"))?;
        let shard: u32 = header(HEADER_SHARD)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ApiError::internal("chat shard: no shard number"))?;
        if self.name().as_ref() != Some(&(stream.clone(), shard)) {
            self.save(&[("stream_id", stream.clone()), ("shard", shard.to_string())])
                .map_err(internal("shard name"))?;
            *self.name.borrow_mut() = Some((stream, shard));
        }
        self.with_inbox(|_| ()).map_err(internal("restore"))?;
        let pair = WebSocketPair::new().map_err(internal("WebSocketPair"))?;
        raw_socket(&pair.server)
            .serialize_attachment(JsValue::from_str(&connection.to_attachment()))
            .map_err(|e| internal("attachment")(e.into()))?;
        let login = header(HEADER_LOGIN_ID)
            .filter(|id| sunnylive_core::ids::looks_like_id(id))
            .map(|id| login_tag(&id));
        let mut tags = vec![connection.conn.as_str()];
        tags.extend(login.as_deref());
        self.state.accept_websocket_with_tags(&pair.server, &tags);
        self.awaiting.borrow_mut().insert(connection.conn.as_str().to_string());
        Response::from_websocket(pair.client).map_err(internal("101"))
    }

    /// Carries out a delivery's ops in order.
    fn apply(&self, ops: Vec<ShardOp>) {
        for op in ops {
            match op {
                ShardOp::Send { to, frame } => {
                    for ws in self.state.get_websockets_with_tag(&to) {
                        let _ = ws.send_with_str(&frame);
                        if self.awaiting.borrow_mut().remove(&to) {
                            if let Some(list) = self.welcomed.borrow().as_ref() {
                                list.push(raw_socket(&ws));
                            }
                        }
                    }
                }
                ShardOp::Broadcast { frame } => {
                    let mut welcomed = self.welcomed.borrow_mut();
                    broadcast(&frame, welcomed.get_or_insert_with(|| self.welcomed_sockets()));
                }
                ShardOp::Close { conn, code, reason } => {
                    *self.welcomed.borrow_mut() = None;
                    self.awaiting.borrow_mut().remove(&conn);
                    for ws in self.state.get_websockets_with_tag(&conn) {
                        let _ = ws.close(Some(code), Some(reason.as_str()));
                    }
                }
            }
        }
    }

    fn welcomed_sockets(&self) -> Array {
        let awaiting = self.awaiting.borrow();
        if awaiting.is_empty() {
            return self.raw_state.web_sockets();
        }
        self.state
            .get_websockets()
            .iter()
            .filter(|ws| connection_of(ws).is_none_or(|c| !awaiting.contains(c.conn.as_str())))
            .map(raw_socket)
            .collect()
    }

    /// Queues a socket event for the room and, unless another handler is already at it, sends the queue in order,
    /// one batch at a time, until it is empty. Events that come while a batch is out (or being retried) wait behind
    /// it, so the room gets every socket's events in the order they happened.
    async fn to_room(&self, event: ShardEvent) {
        self.outbox.borrow_mut().push_back(event);
        if self.sending.replace(true) {
            return;
        }
        loop {
            let events = next_events(&mut self.outbox.borrow_mut());
            if events.is_empty() {
                break;
            }
            let batch = self.batch.get() + 1;
            self.batch.set(batch);
            self.send_batch(batch, events).await;
        }
        self.sending.set(false);
    }

    /// Sends one batch until the room takes it (`send_with_retry`): a failure is retried, the same batch again (the
    /// room applies it once, so a retry of one whose answer was lost is harmless), after the waits of
    /// `events_retry_delay_ms`. The timer pending between attempts keeps the object from being evicted meanwhile.
    /// A batch given up is logged and each socket that sent a frame in it gets a `not_delivered` error (a lost
    /// close is found by the room's reconciliation).
    async fn send_batch(&self, batch: u64, events: Vec<ShardEvent>) {
        let Some((stream, shard)) = self.name() else {
            worker::console_error!("chat shard: a socket event before the shard knows its room; dropped");
            self.not_delivered(&events);
            return;
        };
        let body = ShardEvents {
            shard,
            epoch: self.epoch.clone(),
            batch,
            events,
        };
        let text = serde_json::to_string(&body).expect("BUG: shard events are plain data");
        let (stream, text) = (stream.as_str(), text.as_str());
        let outcome = send_with_retry(
            || self.post_events(stream, text),
            |wait_ms, failure| {
                worker::console_log!(
                    "chat shard {stream}#{shard}: batch {batch} failed ({}); retrying in {wait_ms} ms",
                    failure.why
                );
                worker::Delay::from(Duration::from_millis(wait_ms))
            },
        )
        .await;
        if let BatchOutcome::GivenUp { attempts, last } = outcome {
            worker::console_error!(
                "chat shard {stream}#{shard}: batch {batch} of epoch {} given up after {attempts} attempts: {}",
                self.epoch,
                last.why
            );
            self.not_delivered(&body.events);
        }
    }

    /// Tells each socket that sent a frame in a batch given up that it did not reach the room (not one still
    /// waiting for its welcome, which must be its first frame).
    fn not_delivered(&self, events: &[ShardEvent]) {
        for (conn, frame) in undelivered_notices(events) {
            if self.awaiting.borrow().contains(&conn) {
                continue;
            }
            for ws in self.state.get_websockets_with_tag(&conn) {
                let _ = ws.send_with_str(&frame);
            }
        }
    }

    async fn post_events(&self, stream: &str, text: &str) -> Result<(), EventsFailure> {
        let answer = async {
            let headers = Headers::new();
            headers.set("content-type", "application/json")?;
            headers.set(HEADER_STREAM_ID, stream)?;
            let req = sunnylive_edge::outbound(
                &Method::Post,
                "https://chat-room/internal/shard/events",
                &headers,
                Some(text),
                false,
            )?;
            let stub = self
                .env
                .durable_object("CHAT_ROOMS")?
                .id_from_name(stream)?
                .get_stub()?;
            stub.fetch_with_request(req).await
        }
        .await
        .map_err(|e| EventsFailure {
            status: None,
            why: e.to_string(),
        })?;
        match answer.status_code() {
            200..=299 => Ok(()),
            status => Err(EventsFailure {
                status: Some(status),
                why: format!("room {stream} answered {status}"),
            }),
        }
    }

    async fn socket_closed(&self, ws: &WebSocket) {
        *self.welcomed.borrow_mut() = None;
        let Some(c) = connection_of(ws) else { return };
        self.awaiting.borrow_mut().remove(c.conn.as_str());
        self.to_room(ShardEvent::Leave {
            conn: c.conn.as_str().to_string(),
        })
        .await;
    }
}

impl DurableObject for ChatShard {
    fn new(state: State, env: Env) -> Self {
        let (state, raw_state) = split_state(state);
        Self {
            state,
            raw_state,
            env,
            inbox: RefCell::new(None),
            awaiting: RefCell::new(HashSet::new()),
            welcomed: RefCell::new(None),
            name: RefCell::new(None),
            schema_ready: Cell::new(false),
            outbox: RefCell::new(VecDeque::new()),
            sending: Cell::new(false),
            epoch: shard_epoch(sunnylive_edge::random()),
            batch: Cell::new(0),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        Ok(self.route(req).await.unwrap_or_else(|e| error_response(&e)))
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> worker::Result<()> {
        let Some(c) = connection_of(&ws) else {
            let _ = ws.close(Some(CLOSE_POLICY), Some("unknown socket"));
            return Ok(());
        };
        let (text, binary_len) = match message {
            WebSocketIncomingMessage::String(text) if text.len() <= MAX_CLIENT_FRAME_BYTES => (text, None),
            WebSocketIncomingMessage::String(text) => (String::new(), Some(text.len())),
            WebSocketIncomingMessage::Binary(bytes) => (String::new(), Some(bytes.len())),
        };
        self.to_room(ShardEvent::Frame {
            connection: c.to_attachment(),
            text,
            binary_len,
        })
        .await;
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, _code: usize, _reason: String, _clean: bool) -> worker::Result<()> {
        let _ = ws.close(Some(CLOSE_NORMAL), Some("bye"));
        self.socket_closed(&ws).await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> worker::Result<()> {
        worker::console_log!("chat shard: socket error: {error}");
        self.socket_closed(&ws).await;
        Ok(())
    }
}
