//! The chat Worker, `sunnylive-chat` (`durable-objects/wrangler.toml`): Sunnylive's Durable Objects. `ChatRoom`, one
//! per stream (named by the stream id), a thin shell around `sunnylive_core::chat::Room` built on the WebSocket
//! Hibernation API and the object's own SQLite storage; and `ChatShard`, the relay a big room places viewers on (named
//! `<stream id>#<n>`, binding `CHAT_SHARDS`).
//!
//! They are a Worker of their own so that the main Worker (`functions/`), which every request runs, stays small: the
//! main Worker binds `CHAT_ROOMS` to this script (`script_name = "sunnylive-chat"`) and never links this crate, and
//! this code is loaded only where chat is used. The Worker's own `fetch` serves nothing (it has no route and no
//! `workers.dev` URL): it answers 404 in the contract's error shape. What the objects use: `CHAT_ROOMS` and
//! `CHAT_SHARDS` (their own classes), `DB` (the viewer count, below) and the var `CHAT_SHARD_SOCKETS`. The two Workers
//! are deployed one after the other, this one first, so for a while new rooms serve the previous main Worker: a change
//! to the internal contract below must keep accepting what the previous main Worker sends.
//!
//! # Internal contract (reachable only through the main Worker's `CHAT_ROOMS` binding)
//! A Durable Object has no public URL: only code holding the namespace binding can build a stub and call it, so the
//! headers below can be trusted. The worker builds a fresh request for every call and copies no client header.
//! The host part of the URL is ignored (`https://chat-room/...` by convention).
//!
//! | route | request | answer |
//! |---|---|---|
//! | `GET /internal/websocket` | `Upgrade: websocket`; `X-Sunnylive-Role: host\|viewer\|anonymous`; `X-Sunnylive-User-Id` and `X-Sunnylive-Username` (not for anonymous); `X-Sunnylive-Client-Address` (the client's address as the worker keys per-IP limits); optional `X-Sunnylive-Stream-Status: live\|offline` (D1's view, used until the room has been told a status); optional `X-Sunnylive-Login-Id` (the signed-in socket's login, kept as a tag `login:<id>`) | 101 with the client socket; first frame `welcome` (or, past 20 sockets from that address, an `error` `too_many_connections` and close 1008) |
//! | `POST /internal/donation` | JSON `{order_id, donor, amount, message?}` (a donation that just became paid) | 200 `{"delivered": true}` the first time an order id is posted, `{"delivered": false}` after; 422 invalid fields |
//! | `POST /internal/status` | JSON `{"status": "live"\|"offline"}` | 200 `{"status"}`; a `status` frame goes out when it changed |
//! | `GET /internal/messages?before=<id>&limit=` | as `GET /api/streams/{id}/messages` | 200 `{"messages": [...oldest first], "next_before": id\|null}`; 422 bad query |
//! | `GET /internal/replay?from_ms=&to_ms=&limit=&base_ms=` | unix ms, both included; limit 1-100; `base_ms` the broadcast's time 0 | 200 the page of `GET /api/streams/{id}/broadcasts/{b}/chat` (`{"messages", "next_from_ms"}`): the history items sent in that span, oldest first, not deleted and not by a user banned here; 422 a missing or non-integer parameter |
//! | `POST /internal/keep` | JSON `{"since_ms": n\|null}` | 200 the same: messages sent at or after `since_ms` (the stream's oldest existing broadcast's start) are kept beyond the newest 1,000, for chat replay; null keeps only the newest 1,000 |
//! | `POST /internal/logout` | JSON `{"login_id"}` (a login was revoked) | 200 `{"closed": n}`: every socket opened with that login (`X-Sunnylive-Login-Id` on its upgrade) is closed with 1008 "logged out", on the room and on its shards |
//! | `GET /internal/user-messages?user_id=` | - | 200 `{"messages": [...]}`: every kept chat message of that user, oldest first (the account export) |
//! | `POST /internal/forget-user` | JSON `ForgetUserPost {user_id, orders}` (the account was deleted) | 200 `{"chat": n, "donations": n}`: held chat stored first; that user's chat rows become the deleted user (`user` = `{"id": DELETED_USER_ID, "username": "deleted user"}`, no `user_id` column), the donation alerts of `orders` lose donor name and message, their bans and timeouts go; the room is rebuilt from storage at its next event |
//! | `POST /internal/delete-message` | JSON `DeleteMessagePost {id}` (an operator's delete) | 200 `{"deleted": true}` and a `deleted` frame to everyone, as the host's `delete`; 404 `message_not_found` |
//! | `POST /internal/shard/events` | from a shard: `ShardEvents` `{shard, epoch, batch, events: [{"frame": {connection, text, binary_len?}} \| {"leave": {conn}}]}` (what its sockets did, in order; one request at a time per shard; `epoch` names the shard instance, `batch` counts its requests from 1, a retry repeats both) | 200 `{"applied": true}`, each event handled as that socket's frame or close; 200 `{"applied": false}` for a batch applied before (`ShardBatches`: not newer than the last from that shard in that epoch), nothing done |
//!
//! Every request carries `X-Sunnylive-Stream-Id` (the stream the room belongs to); the room keeps it in its
//! settings table and writes its viewer count to D1 (`streams.viewers` of that row) with each presence update, at
//! most once per 2 s. A D1 failure is logged and changes nothing else. The viewer count (there, in `presence` and
//! `welcome` frames) counts people, not sockets: distinct signed-in users plus
//! distinct addresses of anonymous sockets.
//!
//! Errors use the API's error body (`{"error": {"code", "message"}}`).
//!
//! # Shards (`sunnylive_core::chat::shard`)
//! The room holds at most `CHAT_SHARD_SOCKETS` sockets (a var, default 500). Past that, `/internal/websocket` hands
//! the upgrade to the lowest-numbered shard holding fewer, and answers with that shard's 101. The room records the
//! socket (`shard_sockets` table: connection id, shard, attachment) and runs its join as for its own sockets, so
//! `Room` sees every socket of the stream. Each event's `Send`/`Close` for a shard's socket, and every `Broadcast`,
//! go to that shard as one `ShardDelivery` `{epoch, seq, ops}` (`ShardMap::route`); deliveries to all shards of one
//! event go out together. A shard's routes (reachable only by its room through `CHAT_SHARDS`):
//!
//! | route | request | answer |
//! |---|---|---|
//! | `GET /internal/shard/websocket` | `Upgrade: websocket`; `X-Sunnylive-Connection` (the attachment), `X-Sunnylive-Stream-Id`, `X-Sunnylive-Shard`, optional `X-Sunnylive-Login-Id` | 101; the socket gets nothing until its first `send` op (the welcome) |
//! | `POST /internal/shard/deliver` | `ShardDelivery` | 200 `ShardDelivered {sockets}`; ops applied once, in `seq` order (`ShardInbox`; `(epoch, last_seq)` in the shard's storage) |
//! | `GET /internal/shard/sockets` | - | 200 `ShardSockets {conns}` |
//! | `POST /internal/shard/logout` | `LogoutPost {login_id}` | 200 `LogoutDone {"closed": n}` |
//!
//! The room re-checks its record of a shard's sockets (`/internal/shard/sockets`; the missing ones leave) after it
//! was rebuilt from storage and whenever a delivery answers with fewer sockets than it has recorded there.
//!
//! The other way, a shard sends its sockets' frames and closes to the room as numbered batches (`ShardEvents`), one
//! request at a time, later events queued behind. A failed request (no answer, 5xx or 429) is retried, the same
//! batch, after 100 ms, 400 ms, 1.6 s and 5 s (`SHARD_EVENTS_RETRY_MS`; the timer keeps the shard in memory); then
//! the batch is given up with a logged error, and each socket that sent a frame in it gets an `error` frame, code
//! `not_delivered`. The room applies a batch once: it keeps the last `(epoch, batch)` applied per shard in its
//! `shard_batches` table, written in the same synchronous block (one commit) as the batch's last writes (the
//! coalescing flush's when its messages were held; the room answers only after that), so a room rebuilt after
//! applying a batch but before answering still answers the retry `{"applied": false}`, and a room that died before
//! storing it applies the retry.
//!
//! # Sockets
//! Frames are those of docs/API.md, "Chat" (types in `sunnylive_core::chat`). Additions: error code `forbidden`
//! (moderation by a non-host), error code `not_delivered` (a shard's socket: its frame could not be passed on to the
//! room after ~10 s of retries, so it was most likely not applied; send it again), `retry_after_ms` on `rate_limited`, host frame `{"type":"unban","user_id"}`, and
//! `{"type":"ping"}` answered `{"type":"pong"}` by the runtime itself without waking the object (keep-alive), and
//! `{"type":"batch","frames":[<frame>, ...]}`: in a room of at least `COALESCE_MIN_SOCKETS` (32) sockets, chat
//! messages are held and flushed by a timer at the next turn of the event loop, or `COALESCE_WINDOW_MS` (50 ms)
//! after the previous flush if that is later; everything held then is stored in one commit and sent as one frame,
//! a `batch` listing the `chat` frames oldest first, each exactly as it would have come alone (a lone message goes
//! out as a plain frame). Every other event (a join after its welcome, moderation, a donation, a status) sends what is held
//! first, so frames keep the order of events; a message is stored before any socket sees it.
//! One client address may hold `MAX_SOCKETS_PER_ADDRESS` (20) sockets in a room; the next gets one `error` frame,
//! code `too_many_connections`, instead of the welcome, and is closed with 1008.
//! Close codes: 1009 a client frame over 16 KiB; 1008 policy (the user was banned, too many sockets from one
//! address, or a socket without identity);
//! 1000 answering a client's own close. Every other problem is an `error` frame and the socket stays open.
//!
//! # Hibernation
//! Sockets are accepted through the state (`accept_websocket_with_tags`), so the runtime may evict the object while
//! they stay open and construct it again on the next message, close, alarm or request. Each socket's attachment holds
//! its `Connection` (connection id, client address and identity, well under the 2 KiB attachment limit) and its tags
//! are the connection id (and `login:<login id>` for a signed-in socket), so a rebuilt room finds every socket, knows
//! who it is, and recounts its tallies. Everything else the room needs (history,
//! bans, timeouts, slow mode, status, delivered donation orders, recent sends for the rate limiter) is in SQLite.
//! The alarm is for the trailing presence update, which survives eviction too. The coalescing flush uses a plain
//! timer: it is at most 50 ms away, and an object with a timer pending is not evicted, so nothing held is lost to
//! hibernation (held messages have not been stored or shown to anyone yet).

mod chat_room;
mod chat_shard;
mod storage;

pub use chat_room::ChatRoom;
pub use chat_shard::ChatShard;

use sunnylive_core::error::ApiError;
use worker::{event, Context, Env, Request, Response};

/// Nothing is routed to this Worker (no route, no `workers.dev` URL): the objects are reached through Durable Object
/// bindings, which do not run this handler. Whatever arrives here anyway gets the contract's 404.
#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> worker::Result<Response> {
    Ok(sunnylive_edge::error_response(&ApiError::NotFound {
        code: "route_not_found",
        message: "No such route.".into(),
    }))
}
