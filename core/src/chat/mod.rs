//! The chat room of one stream, as plain Rust: the frames of the WebSocket contract (docs/API.md, "Chat"), the checked
//! inputs (`ChatText`, `Identity`, `RoomDonation`), and `Room`, a state machine that turns events into effects.
//!
//! The `ChatRoom` Durable Object (crate `durable-objects`) is a thin shell around `Room`: it owns the sockets, the
//! SQLite storage and the alarm, feeds every socket message, join, leave, internal post and alarm to
//! `Room::handle(event, now_ms)` and carries out the returned `Effect`s in order. Nothing here reads a clock or
//! touches I/O, so every rule (rate limits, slow mode, moderation, presence throttling, history bounds) is
//! unit-tested on the host. Donation de-duplication is the one rule the shell applies: a primary-key lookup of the
//! order id in storage before the donation reaches the room (see `Event::Donation`).

mod donation;
mod frame;
mod history;
mod identity;
mod internal;
mod room;
mod shard;
mod text;

pub use donation::{DonationPost, RoomDonation};
pub use frame::{
    ChatMessage, ChatUser, ClientFrame, DonationMessage, ErrorCode, HistoryItem, ServerFrame, StreamStatus, You,
};
pub use history::{HistoryQuery, MessageId};
pub use identity::{
    ClientAddress, ConnId, Identity, Role, HEADER_CLIENT_ADDRESS, HEADER_LOGIN_ID, HEADER_ROLE, HEADER_STREAM_ID,
    HEADER_STREAM_STATUS, HEADER_USERNAME, HEADER_USER_ID,
};
pub use internal::{
    DeleteMessagePost, DonationDelivered, ForgetUserPost, KeepPost, LogoutDone, LogoutPost, StatusPost,
    ROOM_DELETE_MESSAGE, ROOM_DONATION, ROOM_FORGET_USER, ROOM_KEEP, ROOM_LOGOUT, ROOM_MESSAGES, ROOM_REPLAY,
    ROOM_STATUS, ROOM_USER_MESSAGES, ROOM_WEBSOCKET,
};
pub use room::{Connection, Effect, Event, MessageKind, Room, Setting, Snapshot, StoredMessage};
pub use shard::{
    events_retry_delay_ms, next_events, send_with_retry, shard_epoch, shard_name, shard_threshold, undelivered_notices,
    BatchOutcome, EventsFailure, Placement, Routed, ShardBatches, ShardDelivered, ShardDelivery, ShardEvent,
    ShardEvents, ShardEventsApplied, ShardInbox, ShardMap, ShardOp, ShardSockets, DEFAULT_SHARD_SOCKETS,
    HEADER_CONNECTION, HEADER_SHARD, INBOX_MAX_PENDING, SHARD_EPOCH_BYTES, SHARD_EVENTS_MAX, SHARD_EVENTS_MAX_TEXT,
    SHARD_EVENTS_RETRY_MS,
};
pub use text::{ChatText, ChatTextError};

/// A client frame larger than this closes the socket with 1009. The largest valid chat frame is about 6 KB (500
/// characters each written as a 12-byte `\ud83d\ude00` escape pair), so 16 KiB never cuts off an honest client.
pub const MAX_CLIENT_FRAME_BYTES: usize = 16 * 1024;
/// The room keeps this many newest history rows in storage; older ones are deleted as new ones arrive.
pub const HISTORY_KEEP: i64 = 1000;
/// History entries (chat and donations) a joining socket gets in its welcome frame.
pub const WELCOME_HISTORY: usize = 50;
/// Rate limit: a user may send this many messages at once...
pub const RATE_BURST: i64 = 5;
/// ...and then one per this many milliseconds. The host is exempt.
pub const RATE_INTERVAL_MS: i64 = 1000;
/// Presence frames go out at most once per this many milliseconds per room, however fast sockets come and go.
pub const PRESENCE_INTERVAL_MS: i64 = 2000;
/// Coalescing: in a room of `COALESCE_MIN_SOCKETS` or more, chat messages are held and flushed together, stored in
/// one commit and sent to each socket as one `batch` frame: at the next turn of the event loop (so what queued up
/// while the room was busy goes together, and a quiet room waits for nothing), but never sooner than this many
/// milliseconds after the previous flush. Each socket then gets at most ~20 history frames a second however fast
/// people type. 50 ms is well under what a reader notices.
pub const COALESCE_WINDOW_MS: i64 = 50;
/// Rooms with fewer sockets than this never hold a message: a broadcast there is cheap, so batching would only add
/// delay.
pub const COALESCE_MIN_SOCKETS: u32 = 32;
/// Sockets one client address may hold in one room; the next is refused (`too_many_connections`, then 1008). Enough
/// for a household or a small office behind one address with several tabs each; far too few to inflate a count.
pub const MAX_SOCKETS_PER_ADDRESS: u32 = 20;
/// Longest slow mode the host may set (one hour).
pub const MAX_SLOW_MODE_SECONDS: u32 = 3600;
/// Longest timeout the host may give (seven days); longer is what bans are for.
pub const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

/// WebSocket close code for a frame larger than `MAX_CLIENT_FRAME_BYTES` (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code for a policy violation: a banned user is removed from the room.
pub const CLOSE_POLICY: u16 = 1008;
/// WebSocket close code the room answers a client's own close with.
pub const CLOSE_NORMAL: u16 = 1000;

/// Formats unix milliseconds as the contract's RFC 3339 UTC timestamp (millisecond precision, `Z`).
pub fn rfc3339_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
    }
}
