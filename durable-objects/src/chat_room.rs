//! The `ChatRoom` Durable Object: accepts sockets through the Hibernation API, turns every socket message, close,
//! internal request and alarm into a `Room` event, and carries out the effects (storage first in the order given,
//! then frames; the runtime's output gate holds the frames until the writes are durable).

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use sunnylive_core::chat::{
    shard_name, shard_threshold, ClientAddress, ConnId, Connection, DeleteMessagePost, DonationDelivered, DonationPost,
    Effect, Event, ForgetUserPost, HistoryQuery, Identity, KeepPost, LogoutDone, LogoutPost, MessageId, Placement,
    Room, RoomDonation, ShardBatches, ShardDelivered, ShardDelivery, ShardEvent, ShardEvents, ShardEventsApplied,
    ShardMap, ShardOp, ShardSockets, StatusPost, StreamStatus, CLOSE_NORMAL, CLOSE_POLICY, COALESCE_WINDOW_MS,
    HEADER_CLIENT_ADDRESS, HEADER_CONNECTION, HEADER_LOGIN_ID, HEADER_ROLE, HEADER_SHARD, HEADER_STREAM_ID,
    HEADER_STREAM_STATUS, HEADER_USERNAME, HEADER_USER_ID, ROOM_DELETE_MESSAGE, ROOM_DONATION, ROOM_FORGET_USER,
    ROOM_KEEP, ROOM_LOGOUT, ROOM_MESSAGES, ROOM_REPLAY, ROOM_STATUS, ROOM_USER_MESSAGES, ROOM_WEBSOCKET,
};
use sunnylive_core::error::ApiError;
use sunnylive_core::replay;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::js_sys::Array;
use worker::worker_sys::ext::WebSocketExt;
use worker::worker_sys::web_sys;
use worker::worker_sys::WebSocketRequestResponsePair;
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, Response, State, Stub, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use crate::storage::RoomStorage;

/// Internal request bodies are tiny; anything bigger is a bug on the worker's side.
/// (A shard's `ShardEvents` carries up to `SHARD_EVENTS_MAX_TEXT` bytes of client text, JSON-escaped: up to six
/// bytes per byte, plus each socket's attachment.)
pub(crate) const INTERNAL_BODY_LIMIT: usize = 256 * 1024;
/// Keep-alive pair answered by the runtime without waking the object (`setWebSocketAutoResponse`).
pub(crate) const PING: &str = r#"{"type":"ping"}"#;
pub(crate) const PONG: &str = r#"{"type":"pong"}"#;

#[wasm_bindgen(inline_js = "export function broadcast(frame, sockets) {
  for (const ws of sockets) {
    try { ws.send(frame); } catch {}
  }
}")]
extern "C" {
    /// Sends `frame` to every socket in `sockets` (a JS array of the platform's WebSockets) in one call into JS,
    /// instead of one wasm-to-JS call per socket: the frame crosses into JS once as one string, and the loop runs
    /// where the sockets are. A socket that is closing refuses the frame and is skipped, as before.
    pub(crate) fn broadcast(frame: &str, sockets: &Array);
}

#[wasm_bindgen]
extern "C" {
    /// The platform's DurableObjectState, seen through a binding whose `getWebSockets` hands back the JS array
    /// itself (workers-rs's `State::get_websockets` wraps every socket in a Rust value first).
    pub(crate) type RawState;

    #[wasm_bindgen(method, js_name = getWebSockets)]
    pub(crate) fn web_sockets(this: &RawState) -> Array;
}

/// `state` split into the workers-rs wrapper and the raw binding above (both the same JS object).
pub(crate) fn split_state(state: State) -> (State, RawState) {
    let inner = state._inner();
    let raw: RawState = inner.clone().unchecked_into();
    (State::from(inner), raw)
}

#[durable_object]
pub struct ChatRoom {
    state: State,
    raw_state: RawState,
    /// Holds the D1 binding `DB` the viewer count is written to.
    env: Env,
    /// The stream id, once learnt from a request header or storage (the object is not told the name it has).
    stream_id: RefCell<Option<String>>,
    storage: OnceCell<RoomStorage>,
    /// `None` until the first event after construction (the object may have been evicted and rebuilt), then the room
    /// restored from storage and the open sockets.
    room: RefCell<Option<Room>>,
    /// The open sockets as of the last accept or close (the runtime's own JS array): a broadcast hands this list to
    /// `broadcast` instead of asking the runtime for a fresh one for each message. `None` until needed and after a
    /// change.
    open_sockets: RefCell<Option<Array>>,
    /// Sockets this object holds at most; past it, new ones go to shards (`CHAT_SHARD_SOCKETS`).
    threshold: u32,
    /// Which shard holds each remote socket: restored with the room, from storage.
    shards: RefCell<ShardMap>,
    /// The last batch of socket events applied from each shard: restored with the room, from storage.
    batches: RefCell<ShardBatches>,
    /// Batches applied in memory whose `shard_batches` row is not written yet: it is written by the first
    /// `run_effects` after which the room holds no chat messages, in the same synchronous block (one commit) as
    /// the batch's last writes, so storage never says a batch was applied before its messages are stored.
    unsaved_batches: RefCell<Vec<(u32, String, u64)>>,
    /// This incarnation's number for its deliveries to shards (grows with each construction), and the last
    /// delivery number used per shard.
    epoch: u64,
    shard_seq: RefCell<BTreeMap<u32, u64>>,
    /// Set when the remote sockets the room remembers may include some a shard no longer holds (after a rebuild,
    /// or a shard reporting fewer than the room thinks): checked with each shard at the end of the next event.
    reconcile: Cell<bool>,
}

use sunnylive_edge::now_ms;

fn random_conn_id() -> ConnId {
    ConnId::generate(sunnylive_edge::random::<{ sunnylive_core::ids::ID_RANDOM_BYTES }>())
}

pub(crate) fn internal(context: &str) -> impl Fn(worker::Error) -> ApiError + '_ {
    move |e| ApiError::internal(format!("chat room: {context}: {e}"))
}

/// The platform socket under workers-rs's wrapper.
pub(crate) fn raw_socket(ws: &WebSocket) -> &web_sys::WebSocket {
    ws.as_ref()
}

/// The `Connection` a socket was accepted with, from its attachment (a plain JS string: read without
/// serde_wasm_bindgen, which the typed `WebSocket::deserialize_attachment` goes through).
pub(crate) fn connection_of(ws: &WebSocket) -> Option<Connection> {
    let text = raw_socket(ws).deserialize_attachment().ok()?.as_string()?;
    Connection::from_attachment(&text)
}

pub(crate) use sunnylive_edge::{json as json_response, json_text as json_text_response};

/// The error in the contract's shape (edge/), with an internal error's context logged first.
pub(crate) fn error_response(e: &ApiError) -> Response {
    if let ApiError::Internal { context } = e {
        worker::console_error!("{context}");
    }
    sunnylive_edge::error_response(e)
}

impl ChatRoom {
    /// The stream id: learnt from the worker's header, else read back from storage (after an eviction). Names the
    /// room in log lines and picks the D1 row the viewer count goes to.
    fn stream_id(&self) -> Option<String> {
        if self.stream_id.borrow().is_none() {
            match self.storage().and_then(RoomStorage::stream_id) {
                Ok(id) => *self.stream_id.borrow_mut() = id,
                Err(e) => worker::console_error!("chat room: could not read the stream id: {e}"),
            }
        }
        self.stream_id.borrow().clone()
    }

    fn storage(&self) -> worker::Result<&RoomStorage> {
        if let Some(storage) = self.storage.get() {
            return Ok(storage);
        }
        let storage = RoomStorage::open(self.state.storage().sql())?;
        Ok(self.storage.get_or_init(|| storage))
    }

    /// Runs `f` on the room, rebuilding it first when this instance has not done so yet.
    fn with_room<R>(&self, f: impl FnOnce(&mut Room) -> R) -> worker::Result<R> {
        let mut slot = self.room.borrow_mut();
        if slot.is_none() {
            let mut connections: Vec<Connection> =
                self.state.get_websockets().iter().filter_map(connection_of).collect();
            let remote = self.storage()?.remote_sockets()?;
            *self.shards.borrow_mut() = ShardMap::restore(remote.iter().map(|(c, n)| (c.conn.clone(), *n)));
            *self.batches.borrow_mut() = ShardBatches::restore(self.storage()?.shard_batches()?);
            self.unsaved_batches.borrow_mut().clear();
            if !remote.is_empty() {
                self.reconcile.set(true);
            }
            connections.extend(remote.into_iter().map(|(c, _)| c));
            let snapshot = self.storage()?.snapshot(now_ms(), connections)?;
            worker::console_log!(
                "chat room {}: rebuilt from storage ({} open sockets, last message {})",
                self.stream_id().as_deref().unwrap_or("?"),
                snapshot.connections.len(),
                snapshot.last_seq
            );
            *slot = Some(Room::restore(snapshot));
            // Keep-alive pings are answered by the runtime while the object hibernates.
            if let Ok(pair) = WebSocketRequestResponsePair::new(PING, PONG) {
                self.state.set_websocket_auto_response(&pair);
            }
        }
        Ok(f(slot.as_mut().expect("BUG: the room was just restored")))
    }

    fn handle(&self, event: Event) -> worker::Result<Vec<Effect>> {
        let now = now_ms();
        self.with_room(|room| room.handle(event, now))
    }

    /// Carries out effects in order, then, when the room held chat messages and asked for a flush, waits for it on
    /// a timer and carries out the flush. The wait is an `await` on a timer, not on storage, so the object's input
    /// gate stays open: the messages that arrive meanwhile are handled (and held) while this one waits. An object
    /// with a timer pending is not evicted, so what is held is not forgotten before it is flushed.
    async fn run(&self, effects: Vec<Effect>, current: Option<(&ConnId, &WebSocket)>) -> worker::Result<()> {
        if let Some(at_ms) = self.run_effects(effects, current).await? {
            let wait_ms = (at_ms - now_ms()).clamp(0, COALESCE_WINDOW_MS);
            worker::Delay::from(Duration::from_millis(wait_ms as u64)).await;
            let effects = self.handle(Event::Flush)?;
            // A flush holds nothing, so it never asks for another one.
            self.run_effects(effects, None).await?;
        }
        if self.reconcile.replace(false) {
            self.reconcile_shards().await?;
        }
        Ok(())
    }

    /// Asks each shard which sockets it holds and lets every socket the room remembers there, but the shard does
    /// not hold, leave the room (a shard restarted without its sockets, or a close whose report was lost). Only
    /// sockets known before the question are judged: one accepted meanwhile is not in the answer yet.
    async fn reconcile_shards(&self) -> worker::Result<()> {
        let mut effects = Vec::new();
        let shards = self.shards.borrow().shards();
        for shard in shards {
            let known = self.shards.borrow().conns_on(shard);
            let answer = async {
                let req = shard_request(Method::Get, "/internal/shard/sockets", Headers::new(), None)?;
                let mut res = self.shard_stub(shard)?.fetch_with_request(req).await?;
                res.json::<ShardSockets>().await
            }
            .await;
            let held: HashSet<String> = match answer {
                Ok(list) => list.conns.into_iter().collect(),
                Err(e) => {
                    worker::console_error!("chat room: could not list the sockets of shard {shard}: {e}");
                    continue;
                }
            };
            for conn in known.into_iter().filter(|c| !held.contains(c.as_str())) {
                let removed = self.shards.borrow_mut().remove(&conn).is_some();
                if removed {
                    self.storage()?.forget_remote(conn.as_str())?;
                    effects.extend(self.handle(Event::Leave { conn })?);
                }
            }
        }
        if !effects.is_empty() {
            worker::console_log!("chat room: reconciled shard sockets");
            self.run_effects(effects, None).await?;
        }
        Ok(())
    }

    fn shard_stub(&self, shard: u32) -> worker::Result<Stub> {
        let stream = self
            .stream_id()
            .ok_or_else(|| worker::Error::RustError("the stream id is not known yet".into()))?;
        self.env
            .durable_object("CHAT_SHARDS")?
            .id_from_name(&shard_name(&stream, shard))?
            .get_stub()
    }

    /// Sends each shard its ops of one event as one numbered delivery, all shards at once. The numbers are taken
    /// before the first await, so they follow the order of events even when deliveries race; the shard puts them
    /// back in order. A failed delivery is tried once more (the shard drops it if the first one did arrive).
    async fn deliver(&self, per_shard: BTreeMap<u32, Vec<ShardOp>>) {
        if per_shard.is_empty() {
            return;
        }
        let mut sends = Vec::with_capacity(per_shard.len());
        for (shard, ops) in per_shard {
            let seq = {
                let mut seqs = self.shard_seq.borrow_mut();
                let seq = seqs.entry(shard).or_insert(0);
                *seq += 1;
                *seq
            };
            let body = ShardDelivery {
                epoch: self.epoch,
                seq,
                ops,
            };
            let text = serde_json::to_string(&body).expect("BUG: a delivery is plain data");
            sends.push(async move {
                let mut last_error = None;
                for _ in 0..2 {
                    let attempt = async {
                        let headers = Headers::new();
                        headers.set("content-type", "application/json")?;
                        let req = shard_request(Method::Post, "/internal/shard/deliver", headers, Some(text.clone()))?;
                        let mut res = self.shard_stub(shard)?.fetch_with_request(req).await?;
                        if res.status_code() != 200 {
                            return Err(worker::Error::RustError(format!("answered {}", res.status_code())));
                        }
                        res.json::<ShardDelivered>().await
                    }
                    .await;
                    match attempt {
                        Ok(delivered) => {
                            let known = self.shards.borrow().on_shard(shard);
                            if delivered.sockets < known {
                                self.reconcile.set(true);
                            }
                            return;
                        }
                        Err(e) => last_error = Some(e),
                    }
                }
                if let Some(e) = last_error {
                    worker::console_error!("chat room: delivery {seq} to shard {shard} failed: {e}");
                }
            });
        }
        futures::future::join_all(sends).await;
    }

    /// Carries out effects in order. `current` is the socket the event came from (found without a tag lookup).
    /// Returns when the room wants `Event::Flush`.
    async fn run_effects(
        &self,
        effects: Vec<Effect>,
        current: Option<(&ConnId, &WebSocket)>,
    ) -> worker::Result<Option<i64>> {
        let now = now_ms();
        let mut alarm_at = None;
        let mut flush_at = None;
        let mut viewers = None;
        let routed = self.shards.borrow_mut().route(effects);
        for conn in &routed.forgotten {
            self.storage()?.forget_remote(conn.as_str())?;
        }
        for effect in routed.local {
            match effect {
                Effect::Send { to, frame } => {
                    for ws in self.sockets_of(&to, current) {
                        // A socket that is closing refuses frames; nothing to do about it.
                        let _ = ws.send_with_str(&frame);
                    }
                }
                Effect::Broadcast { frame } => {
                    let mut open = self.open_sockets.borrow_mut();
                    // A socket closed since the list was made refuses the frame; nothing to do about it.
                    broadcast(&frame, open.get_or_insert_with(|| self.raw_state.web_sockets()));
                }
                Effect::Close { conn, code, reason } => {
                    self.forget_open_sockets();
                    for ws in self.sockets_of(&conn, current) {
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Effect::ScheduleAlarm { at_ms } => alarm_at = Some(at_ms),
                Effect::ScheduleFlush { at_ms } => flush_at = Some(at_ms),
                Effect::PublishViewers { viewers: n } => viewers = Some(n),
                storage_effect => {
                    if let Err(e) = self.storage()?.apply(&storage_effect, now) {
                        // The room already changed in memory: forget it, so the next event rebuilds it from what
                        // storage really holds (the batches it applied included).
                        *self.room.borrow_mut() = None;
                        return Err(e);
                    }
                }
            }
        }
        self.save_batches()?;
        if let Some(at_ms) = alarm_at {
            let at = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
            self.state.storage().set_alarm(at).await?;
        }
        // Last: the D1 round trip must not delay the frames and writes above.
        self.deliver(routed.shards).await;
        if let Some(n) = viewers {
            self.publish_viewers(n).await;
        }
        Ok(flush_at)
    }

    /// Writes the batches applied since the last write, unless chat messages are still held (theirs, maybe): still
    /// in the synchronous block of the writes just made, so one commit holds both.
    fn save_batches(&self) -> worker::Result<()> {
        // Two statements: a rebuild inside `with_room` clears the list, which must not be borrowed meanwhile.
        let none = self.unsaved_batches.borrow().is_empty();
        if none || self.with_room(|room| room.holds_messages())? {
            return Ok(());
        }
        let unsaved = std::mem::take(&mut *self.unsaved_batches.borrow_mut());
        for (shard, epoch, batch) in &unsaved {
            if let Err(e) = self.storage()?.save_shard_batch(*shard, epoch, *batch) {
                *self.room.borrow_mut() = None;
                return Err(e);
            }
        }
        Ok(())
    }

    fn forget_open_sockets(&self) {
        *self.open_sockets.borrow_mut() = None;
    }

    fn sockets_of(&self, conn: &ConnId, current: Option<(&ConnId, &WebSocket)>) -> Vec<WebSocket> {
        match current {
            Some((id, ws)) if id == conn => vec![ws.clone()],
            _ => self.state.get_websockets_with_tag(conn.as_str()),
        }
    }

    /// Remembers the stream id the worker names on every request; written to storage only when it is new to this
    /// instance, so that an alarm or a socket event after eviction still knows its D1 row.
    fn learn_stream_id(&self, req: &Request) {
        let Some(id) = req.headers().get(HEADER_STREAM_ID).ok().flatten() else {
            return;
        };
        if self.stream_id.borrow().as_deref() == Some(id.as_str()) {
            return;
        }
        match self.storage().and_then(|s| s.save_stream_id(&id)) {
            Ok(()) => *self.stream_id.borrow_mut() = Some(id),
            Err(e) => worker::console_error!("chat room: could not save the stream id: {e}"),
        }
    }

    /// Writes the socket count to the stream's D1 row (`GET /api/streams` reads it there). A failure is logged:
    /// the count is advisory and chat must go on.
    async fn publish_viewers(&self, viewers: u32) {
        let Some(id) = self.stream_id() else {
            worker::console_error!("chat room: viewer count not published: the stream id is not known yet");
            return;
        };
        let result = async {
            self.env
                .d1("DB")?
                .prepare("UPDATE streams SET viewers = ?1 WHERE id = ?2")
                .bind(&[JsValue::from(viewers), JsValue::from(id.as_str())])?
                .run()
                .await
        }
        .await;
        if let Err(e) = result {
            worker::console_error!("chat room: could not write the viewer count of {id} to D1: {e}");
        }
    }

    async fn route(&self, mut req: Request) -> Result<Response, ApiError> {
        self.learn_stream_id(&req);
        match (req.method(), req.path().as_str()) {
            (Method::Get, ROOM_WEBSOCKET) => self.upgrade(&req).await,
            (Method::Post, ROOM_DONATION) => {
                let post: DonationPost = read_json(&mut req).await?;
                let donation = RoomDonation::parse(post)?;
                // No await between this lookup and the insert in `run`: no other event can slip in between.
                let storage = self.storage().map_err(internal("storage"))?;
                if storage
                    .order_delivered(&donation.order_id)
                    .map_err(internal("order lookup"))?
                {
                    return json_response(200, &DonationDelivered { delivered: false });
                }
                let effects = self.handle(Event::Donation(donation)).map_err(internal("donation"))?;
                let delivered = effects.iter().any(|e| matches!(e, Effect::StoreMessage(_)));
                self.run(effects, None).await.map_err(internal("donation effects"))?;
                json_response(200, &DonationDelivered { delivered })
            }
            (Method::Post, ROOM_STATUS) => {
                let StatusPost { status } = read_json(&mut req).await?;
                let effects = self.handle(Event::Status(status)).map_err(internal("status"))?;
                self.run(effects, None).await.map_err(internal("status effects"))?;
                json_response(200, &StatusPost { status })
            }
            (Method::Get, ROOM_MESSAGES) => {
                let url = req.url().map_err(internal("url"))?;
                let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                let get = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
                let query = HistoryQuery::parse(get("before"), get("limit"))?;
                let (bodies, next) = self
                    .storage()
                    .map_err(internal("storage"))?
                    .history_page(&query)
                    .map_err(internal("history"))?;
                // The bodies are JSON this room wrote itself: joined as they are, not parsed and re-serialized.
                let next = next.map_or_else(|| "null".to_string(), |id| format!("\"{id}\""));
                json_text_response(
                    200,
                    format!(r#"{{"messages":[{}],"next_before":{next}}}"#, bodies.join(",")),
                )
            }
            (Method::Get, ROOM_USER_MESSAGES) => {
                let url = req.url().map_err(internal("url"))?;
                let user = url
                    .query_pairs()
                    .find(|(k, _)| k == "user_id")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let bodies = self
                    .storage()
                    .and_then(|s| s.messages_of(&user))
                    .map_err(internal("user messages"))?;
                json_text_response(200, format!(r#"{{"messages":[{}]}}"#, bodies.join(",")))
            }
            (Method::Post, ROOM_FORGET_USER) => {
                let post: ForgetUserPost = read_json(&mut req).await?;
                // Held chat (it may be theirs) is stored first; the rows are then rewritten in one synchronous
                // block, and the room, whose recent history may still show them, is rebuilt from storage at its
                // next event (as after an eviction) unless messages were held meanwhile.
                let effects = self.handle(Event::Flush).map_err(internal("flush"))?;
                self.run_effects(effects, None).await.map_err(internal("flush"))?;
                let (chat, donations) = self
                    .storage()
                    .and_then(|s| s.forget_user(&post.user_id, &post.orders))
                    .map_err(internal("forget user"))?;
                if !self
                    .with_room(|room| room.holds_messages())
                    .map_err(internal("restore"))?
                {
                    *self.room.borrow_mut() = None;
                }
                json_text_response(200, format!(r#"{{"chat":{chat},"donations":{donations}}}"#))
            }
            (Method::Post, ROOM_DELETE_MESSAGE) => {
                let post: DeleteMessagePost = read_json(&mut req).await?;
                // Held chat is stored first, so a message just sent can be found; one deleted before is not found.
                let effects = self.handle(Event::Flush).map_err(internal("flush"))?;
                self.run_effects(effects, None).await.map_err(internal("flush"))?;
                let stored = MessageId::parse(&post.id)
                    .map(|id| self.storage().and_then(|s| s.has_message(id.seq())))
                    .transpose()
                    .map_err(internal("message lookup"))?
                    .unwrap_or(false);
                let (effects, deleted) = match stored {
                    true => self
                        .with_room(|room| room.operator_delete(&post.id, now_ms()))
                        .map_err(internal("restore"))?,
                    false => (Vec::new(), false),
                };
                self.run(effects, None).await.map_err(internal("delete effects"))?;
                if !deleted {
                    return Err(ApiError::NotFound {
                        code: "message_not_found",
                        message: "No such chat message.".into(),
                    });
                }
                json_text_response(200, r#"{"deleted":true}"#.into())
            }
            (Method::Get, ROOM_REPLAY) => {
                let url = req.url().map_err(internal("url"))?;
                let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                let get = |name: &str| {
                    pairs
                        .iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| v.parse::<i64>().ok())
                        .ok_or_else(|| ApiError::invalid(name, "must be a whole number"))
                };
                let (from_ms, to_ms, limit) = (get("from_ms")?, get("to_ms")?, get("limit")?.clamp(1, 100));
                let base_ms = get("base_ms")?;
                // One row past the page says whether there are more (and whether its last offset goes on).
                let storage = self.storage().map_err(internal("storage"))?;
                let rows = storage
                    .replay_page(from_ms, to_ms, limit + 1)
                    .map_err(internal("replay"))?;
                let page = match replay::page(&rows, base_ms, limit as usize) {
                    replay::Page::Ready(page) => page,
                    replay::Page::WholeOffset { until_ms } => {
                        let rows = storage
                            .replay_page(from_ms, until_ms.min(to_ms), replay::WHOLE_OFFSET_MAX)
                            .map_err(internal("replay"))?;
                        replay::whole_offset(&rows, base_ms)
                    }
                };
                json_response(200, &page)
            }
            (Method::Post, ROOM_KEEP) => {
                let keep: KeepPost = read_json(&mut req).await?;
                self.storage()
                    .map_err(internal("storage"))?
                    .save_keep_since(keep.since_ms)
                    .map_err(internal("keep"))?;
                json_response(200, &keep)
            }
            (Method::Post, ROOM_LOGOUT) => {
                let body: LogoutPost = read_json(&mut req).await?;
                // Each socket closes like a banned one; its `websocket_close` then leaves the room as usual.
                let sockets = self.state.get_websockets_with_tag(&login_tag(&body.login_id));
                for ws in &sockets {
                    let _ = ws.close(Some(CLOSE_POLICY), Some("logged out"));
                }
                let mut closed = sockets.len() as u64;
                self.with_room(|_| ()).map_err(internal("restore"))?;
                let shards = self.shards.borrow().shards();
                let logout =
                    serde_json::to_string(&body).map_err(|e| ApiError::internal(format!("logout body: {e}")))?;
                for shard in shards {
                    let answer = async {
                        let req = shard_request(
                            Method::Post,
                            "/internal/shard/logout",
                            Headers::new(),
                            Some(logout.clone()),
                        )?;
                        let mut res = self.shard_stub(shard)?.fetch_with_request(req).await?;
                        res.json::<LogoutDone>().await
                    }
                    .await;
                    match answer {
                        Ok(done) => closed += done.closed,
                        Err(e) => worker::console_error!("chat room: logout on shard {shard} failed: {e}"),
                    }
                }
                json_response(200, &LogoutDone { closed })
            }
            (Method::Post, "/internal/shard/events") => {
                let body: ShardEvents = read_json(&mut req).await?;
                self.with_room(|_| ()).map_err(internal("restore"))?;
                // A batch applied before (the shard retries when an answer is lost) is acknowledged, not applied.
                // Recorded here in memory, before any await, so a retry racing this request is not applied either;
                // a room that dies before saving it (`unsaved_batches`) forgets it with everything else and applies
                // the retry.
                let (shard, epoch, batch) = (body.shard, body.epoch, body.batch);
                if !self.batches.borrow_mut().accept(shard, &epoch, batch) {
                    worker::console_log!("chat room: batch {batch} of shard {shard} ({epoch}) applied before");
                    return json_response(200, &ShardEventsApplied { applied: false });
                }
                // Handled one after the other with no await in between, like events arriving back to back; their
                // effects are carried out together (one delivery per shard for all of them).
                let mut effects = Vec::new();
                // One bad event is logged and skipped: the effects of those before it must still be carried out.
                for event in body.events {
                    match self.shard_event(shard, event) {
                        Ok(more) => effects.extend(more),
                        Err(e) => worker::console_error!("chat room: an event from shard {shard}: {e}"),
                    }
                }
                let mark = (shard, epoch, batch);
                self.unsaved_batches.borrow_mut().push(mark.clone());
                self.run(effects, None).await.map_err(internal("shard events"))?;
                // The answer means "stored": when its messages are still held behind a flush another event asked
                // for, flush them here (a flush that finds nothing held does nothing), which writes the batch too.
                if self.unsaved_batches.borrow().contains(&mark) {
                    worker::Delay::from(Duration::from_millis(COALESCE_WINDOW_MS as u64)).await;
                    let effects = self.handle(Event::Flush).map_err(internal("flush"))?;
                    self.run_effects(effects, None)
                        .await
                        .map_err(internal("shard events flush"))?;
                }
                json_response(200, &ShardEventsApplied { applied: true })
            }
            _ => Err(ApiError::not_found("Chat room route")),
        }
    }

    async fn upgrade(&self, req: &Request) -> Result<Response, ApiError> {
        let header = |name: &str| req.headers().get(name).ok().flatten();
        if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
            return Err(ApiError::Malformed("expected a WebSocket upgrade".into()));
        }
        // Only the worker can reach this route, and it always sets these headers: a bad value is its bug.
        let identity = Identity::from_headers(
            header(HEADER_USER_ID).as_deref(),
            header(HEADER_USERNAME).as_deref(),
            header(HEADER_ROLE).as_deref(),
        )
        .map_err(|why| ApiError::internal(format!("chat room: upgrade without a valid identity: {why}")))?;
        let client = header(HEADER_CLIENT_ADDRESS)
            .as_deref()
            .and_then(ClientAddress::parse)
            .ok_or_else(|| ApiError::internal("chat room: upgrade without a valid client address"))?;
        let stream_status = header(HEADER_STREAM_STATUS).as_deref().and_then(StreamStatus::parse);

        // Restore the room before accepting, so the rebuilt room does not already count the new socket.
        self.with_room(|_| ()).map_err(internal("restore"))?;
        let connection = Connection {
            conn: random_conn_id(),
            client,
            identity,
        };
        let login_id = header(HEADER_LOGIN_ID).filter(|id| sunnylive_core::ids::looks_like_id(id));
        let room_sockets = self
            .with_room(|room| room.sockets())
            .map_err(internal("restore"))?
            .saturating_sub(self.shards.borrow().len());
        let placement = self.shards.borrow().place(room_sockets, self.threshold);
        if let Placement::Shard(n) = placement {
            return self.upgrade_on_shard(n, connection, login_id, stream_status).await;
        }
        let pair = WebSocketPair::new().map_err(internal("WebSocketPair"))?;
        raw_socket(&pair.server)
            .serialize_attachment(JsValue::from_str(&connection.to_attachment()))
            .map_err(|e| internal("attachment")(e.into()))?;
        // A signed-in socket is also tagged with its login, so `POST /internal/logout` finds it.
        let login = login_id.map(|id| login_tag(&id));
        let mut tags = vec![connection.conn.as_str()];
        tags.extend(login.as_deref());
        self.state.accept_websocket_with_tags(&pair.server, &tags);
        self.forget_open_sockets();
        let conn = connection.conn.clone();
        let effects = self
            .handle(Event::Join {
                connection,
                stream_status,
            })
            .map_err(internal("join"))?;
        self.run(effects, Some((&conn, &pair.server)))
            .await
            .map_err(internal("join effects"))?;
        Response::from_websocket(pair.client).map_err(internal("101"))
    }

    /// One event from a shard's socket, as the room's event.
    fn shard_event(&self, shard: u32, event: ShardEvent) -> Result<Vec<Effect>, ApiError> {
        let event = match event {
            ShardEvent::Frame {
                connection,
                text,
                binary_len,
            } => {
                let from = Connection::from_attachment(&connection)
                    .ok_or_else(|| ApiError::invalid("connection", "is not a socket attachment"))?;
                // A socket the room lost track of (its join raced an eviction) is the shard's that reports it.
                let added = self.shards.borrow_mut().insert(from.conn.clone(), shard);
                if added {
                    self.storage()
                        .and_then(|s| s.save_remote(&from, shard))
                        .map_err(internal("remote socket"))?;
                }
                match binary_len {
                    Some(len) => Event::Binary { from, len },
                    None => Event::Text { from, text },
                }
            }
            ShardEvent::Leave { conn } => {
                let conn = ConnId::parse(&conn).ok_or_else(|| ApiError::invalid("conn", "is not a connection id"))?;
                let removed = self.shards.borrow_mut().remove(&conn).is_some();
                if removed {
                    self.storage()
                        .and_then(|s| s.forget_remote(conn.as_str()))
                        .map_err(internal("remote socket"))?;
                }
                Event::Leave { conn }
            }
        };
        self.handle(event).map_err(internal("shard event"))
    }

    /// Hands an upgrade to shard `n`: the shard accepts the socket (with the attachment and tags the room would
    /// give it) and answers 101, then the room records it there and runs its join, whose welcome and every later
    /// frame go to the shard as deliveries. The shard's 101, with the client's end of the socket, is the answer.
    async fn upgrade_on_shard(
        &self,
        n: u32,
        connection: Connection,
        login_id: Option<String>,
        stream_status: Option<StreamStatus>,
    ) -> Result<Response, ApiError> {
        let stream = self
            .stream_id()
            .ok_or_else(|| ApiError::internal("chat room: an upgrade before the stream id is known"))?;
        let headers = Headers::new();
        let set = |name: &str, value: &str| headers.set(name, value).map_err(internal("headers"));
        set("upgrade", "websocket")?;
        set(HEADER_CONNECTION, &connection.to_attachment())?;
        set(HEADER_STREAM_ID, &stream)?;
        set(HEADER_SHARD, &n.to_string())?;
        if let Some(login) = &login_id {
            set(HEADER_LOGIN_ID, login)?;
        }
        let req =
            shard_request(Method::Get, "/internal/shard/websocket", headers, None).map_err(internal("request"))?;
        let answer = self
            .shard_stub(n)
            .map_err(internal("CHAT_SHARDS stub"))?
            .fetch_with_request(req)
            .await
            .map_err(internal("shard upgrade"))?;
        if answer.status_code() != 101 {
            return Err(ApiError::internal(format!(
                "chat room: shard {n} answered {} to an upgrade",
                answer.status_code()
            )));
        }
        self.with_room(|_| ()).map_err(internal("restore"))?;
        let opened = self.shards.borrow().on_shard(n) == 0;
        if opened {
            worker::console_log!("chat room {stream}: shard {n} holds sockets now");
        }
        self.shards.borrow_mut().insert(connection.conn.clone(), n);
        self.storage()
            .and_then(|s| s.save_remote(&connection, n))
            .map_err(internal("remote socket"))?;
        let effects = self
            .handle(Event::Join {
                connection,
                stream_status,
            })
            .map_err(internal("join"))?;
        self.run(effects, None).await.map_err(internal("join effects"))?;
        Ok(answer)
    }

    /// Feeds a socket event to the room; errors are logged, never thrown, because an exception escaping a socket
    /// handler would be reported for a problem the client cannot act on.
    async fn socket_event(&self, ws: &WebSocket, event: impl FnOnce(Connection) -> Event) {
        let Some(from) = connection_of(ws) else {
            worker::console_error!("chat room: a socket without a readable attachment; closing it");
            let _ = ws.close(Some(CLOSE_POLICY), Some("unknown socket"));
            return;
        };
        let conn = from.conn.clone();
        let result = match self.handle(event(from)) {
            Ok(effects) => self.run(effects, Some((&conn, ws))).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            worker::console_error!("chat room: socket event failed: {e}");
        }
    }
}

/// A request to a shard (the host part is ignored, as for the room).
fn shard_request(method: Method, path: &str, headers: Headers, body: Option<String>) -> worker::Result<Request> {
    sunnylive_edge::outbound(
        &method,
        &format!("https://chat-shard{path}"),
        &headers,
        body.as_deref(),
        false,
    )
}

/// The tag of the sockets opened with one login.
pub(crate) fn login_tag(login_id: &str) -> String {
    format!("login:{login_id}")
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T, ApiError> {
    let bytes = sunnylive_edge::read_body(req, INTERNAL_BODY_LIMIT).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Malformed(format!("not the expected JSON ({e})")))
}

impl DurableObject for ChatRoom {
    fn new(state: State, env: Env) -> Self {
        let (state, raw_state) = split_state(state);
        let threshold = shard_threshold(env.var("CHAT_SHARD_SOCKETS").ok().map(|v| v.to_string()).as_deref());
        let random = sunnylive_edge::random::<2>();
        Self {
            state,
            raw_state,
            env,
            stream_id: RefCell::new(None),
            storage: OnceCell::new(),
            room: RefCell::new(None),
            open_sockets: RefCell::new(None),
            threshold,
            shards: RefCell::new(ShardMap::default()),
            batches: RefCell::new(ShardBatches::default()),
            unsaved_batches: RefCell::new(Vec::new()),
            // Grows with each construction (milliseconds), with a random part against two in the same one.
            epoch: now_ms() as u64 * 1000 + u64::from(u16::from_le_bytes(random) % 1000),
            shard_seq: RefCell::new(BTreeMap::new()),
            reconcile: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        Ok(self.route(req).await.unwrap_or_else(|e| error_response(&e)))
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> worker::Result<()> {
        self.socket_event(&ws, |from| match message {
            WebSocketIncomingMessage::String(text) => Event::Text { from, text },
            WebSocketIncomingMessage::Binary(bytes) => Event::Binary { from, len: bytes.len() },
        })
        .await;
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, _code: usize, _reason: String, _clean: bool) -> worker::Result<()> {
        self.forget_open_sockets();
        // Complete the closing handshake (a no-op, ignored, when the runtime already answered it).
        let _ = ws.close(Some(CLOSE_NORMAL), Some("bye"));
        self.socket_event(&ws, |from| Event::Leave { conn: from.conn }).await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> worker::Result<()> {
        worker::console_log!("chat room: socket error: {error}");
        self.forget_open_sockets();
        self.socket_event(&ws, |from| Event::Leave { conn: from.conn }).await;
        Ok(())
    }

    async fn alarm(&self) -> worker::Result<Response> {
        match self.handle(Event::Alarm) {
            Ok(effects) => {
                if let Err(e) = self.run(effects, None).await {
                    worker::console_error!("chat room: alarm effects failed: {e}");
                }
            }
            Err(e) => worker::console_error!("chat room: alarm failed: {e}"),
        }
        Response::empty()
    }
}
