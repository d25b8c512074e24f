//! Rooms past one Durable Object: the pure parts of sharding.
//!
//! A room keeps up to `threshold` sockets itself (`CHAT_SHARD_SOCKETS`, default `DEFAULT_SHARD_SOCKETS`); past that,
//! each new socket is accepted by a relay object, a `ChatShard` named `<stream id>#<n>`, which holds up to
//! `threshold` sockets too. The room stays the single point of order, moderation and history: it still runs every
//! event through `Room` (which knows every socket, wherever it lives, so caps, viewer counts and bans work as
//! before), and the shell routes each socket effect (`Send`, `Broadcast`, `Close`) to where the socket lives. The
//! ops of one event for one shard go out as one `ShardDelivery`, numbered per shard by the room; the shard's
//! `ShardInbox` applies deliveries exactly once and in that order even when two forwards race or one is retried.
//! The other way, a shard's socket events go to the room as numbered batches (`ShardEvents`), retried on failure
//! and applied by the room once each (`ShardBatches`).
//!
//! Everything here is plain data and arithmetic, unit-tested on the host; the objects in `durable-objects` carry it
//! out.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::frame::{ErrorCode, ServerFrame};
use super::identity::ConnId;
use super::room::{Connection, Effect};

/// Sockets per object (the room and each shard) when `CHAT_SHARD_SOCKETS` is not set.
pub const DEFAULT_SHARD_SOCKETS: u32 = 500;
/// Deliveries a shard buffers while waiting for a missing one. A forward that failed for good (the room logs it)
/// leaves a gap that would stall the shard for ever; past this many later deliveries the shard skips the gap, and
/// its clients can read what they missed from the history route.
pub const INBOX_MAX_PENDING: usize = 64;

/// Room to shard, on an upgrade: the shard's number.
pub const HEADER_SHARD: &str = "X-Sunnylive-Shard";
/// Room to shard, on an upgrade: the socket's `Connection` as its attachment text.
pub const HEADER_CONNECTION: &str = "X-Sunnylive-Connection";

/// WebSockets one hibernating Durable Object accepts at most (Cloudflare's limit): no object is asked to hold more.
pub const MAX_SOCKETS_PER_OBJECT: u32 = 32_768;

/// The threshold from the `CHAT_SHARD_SOCKETS` variable: a positive integer (at most `MAX_SOCKETS_PER_OBJECT`, which
/// a larger one is taken as), else the default.
pub fn shard_threshold(var: Option<&str>) -> u32 {
    var.and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_SHARD_SOCKETS, |n| n.min(MAX_SOCKETS_PER_OBJECT))
}

/// The name of shard `n` of a room (`idFromName` in the `CHAT_SHARDS` namespace).
pub fn shard_name(stream_id: &str, n: u32) -> String {
    format!("{stream_id}#{n}")
}

/// One socket operation for a shard to carry out. Externally tagged (`{"close": {...}}`), not `#[serde(tag)]`: an
/// internally tagged enum is deserialized through serde's buffering `Content`, which cost the Worker's upload ~20 KB
/// of wasm for these two internal types (twiggy); the internal contract may take the cheaper shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardOp {
    /// Send a frame to one of the shard's sockets. The first one a socket gets is its welcome; until then it is
    /// left out of broadcasts (what they carried is in the welcome).
    Send { to: String, frame: String },
    /// Send a frame to every socket of the shard that has had its welcome.
    Broadcast { frame: String },
    /// Close one socket.
    Close { conn: String, code: u16, reason: String },
}

/// `POST /internal/shard/deliver`: the ops of one room event for one shard. `epoch` names the room's incarnation
/// (it grows: unix ms at construction, times 1000, plus a random part), `seq` counts deliveries to this shard in
/// that incarnation from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDelivery {
    pub epoch: u64,
    pub seq: u64,
    pub ops: Vec<ShardOp>,
}

/// The answer to a delivery: how many sockets the shard holds (the room reconciles its list when it knows more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDelivered {
    pub sockets: u32,
}

/// `POST /internal/shard/events` (shard to room): what the shard's sockets did, in the order it happened. A shard
/// sends one request at a time and queues what happens meanwhile for the next, so one socket's frames (and its
/// close, after them) reach the room in the order it sent them. A failed request is sent again, the same batch
/// (same `epoch`, `batch` and events), on the schedule of `events_retry_delay_ms`; the room applies each batch once
/// (`ShardBatches`), so a retry of one that did arrive (only its answer was lost) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEvents {
    pub shard: u32,
    /// The shard instance's name, random, chosen when the object is constructed (`shard_epoch`): a shard evicted
    /// or restarted counts its batches again from 1 under a new epoch.
    pub epoch: String,
    /// This instance's requests, numbered from 1; a retry carries the number of the batch it repeats.
    pub batch: u64,
    pub events: Vec<ShardEvent>,
}

/// The answer to `ShardEvents`: false when the room had applied that batch already (a retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEventsApplied {
    pub applied: bool,
}

/// Random bytes in a shard's epoch (written as hex: 16 characters).
pub const SHARD_EPOCH_BYTES: usize = 8;

/// A shard instance's epoch from fresh random bytes.
pub fn shard_epoch(random: [u8; SHARD_EPOCH_BYTES]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits before each retry of a batch of shard events, in order: 100 ms, 400 ms, 1.6 s, 5 s. With the requests
/// themselves, a batch is given up about ten seconds after its first attempt failed. Later events wait behind it
/// (order is kept), so the bound is also how long a shard's sockets can be held up by one stuck batch.
pub const SHARD_EVENTS_RETRY_MS: [u64; 4] = [100, 400, 1_600, 5_000];

/// After attempt `attempt` (0 for the first) of a batch failed, with the room's HTTP status (`None` when the
/// request itself failed): how long to wait before sending it again, or `None` to give it up. A 4xx other than
/// 429 is the request's own fault and would fail the same way again; anything else may pass on a later attempt.
pub fn events_retry_delay_ms(attempt: usize, status: Option<u16>) -> Option<u64> {
    if let Some(status) = status {
        if (400..500).contains(&status) && status != 429 {
            return None;
        }
    }
    SHARD_EVENTS_RETRY_MS.get(attempt).copied()
}

/// Why one attempt at sending a batch failed: the room's HTTP status when it answered, and what to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsFailure {
    pub status: Option<u16>,
    pub why: String,
}

/// How sending one batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// The room took it (applied it, or had applied it before).
    Delivered { attempts: usize },
    /// Every attempt failed, or one failed in a way a retry cannot mend: the last failure.
    GivenUp { attempts: usize, last: EventsFailure },
}

/// Sends one batch until the room takes it: `post` sends it (the same batch each time: it takes nothing, so it
/// cannot change what it sends), and after a failure `sleep` waits `events_retry_delay_ms` before the next
/// attempt (it is told the failure, to log it). The shard passes its request and a timer; the host tests pass
/// scripted answers.
pub async fn send_with_retry<P, S>(
    mut post: impl FnMut() -> P,
    mut sleep: impl FnMut(u64, &EventsFailure) -> S,
) -> BatchOutcome
where
    P: std::future::Future<Output = Result<(), EventsFailure>>,
    S: std::future::Future<Output = ()>,
{
    let mut attempt = 0;
    loop {
        let failure = match post().await {
            Ok(()) => return BatchOutcome::Delivered { attempts: attempt + 1 },
            Err(failure) => failure,
        };
        match events_retry_delay_ms(attempt, failure.status) {
            Some(wait_ms) => {
                sleep(wait_ms, &failure).await;
                attempt += 1;
            }
            None => {
                return BatchOutcome::GivenUp {
                    attempts: attempt + 1,
                    last: failure,
                }
            }
        }
    }
}

/// What a shard tells its sockets when it gives up on a batch: for each socket that had a frame in it (once per
/// socket, in the order of the batch), its connection id and a `not_delivered` error frame. Binary or oversized
/// frames are left out: the room would only have closed those sockets.
pub fn undelivered_notices(events: &[ShardEvent]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for event in events {
        let ShardEvent::Frame {
            connection,
            binary_len: None,
            ..
        } = event
        else {
            continue;
        };
        let Some(c) = Connection::from_attachment(connection) else {
            continue;
        };
        let conn = c.conn.as_str();
        if out.iter().any(|(seen, _)| seen == conn) {
            continue;
        }
        let frame = ServerFrame::error(
            ErrorCode::NotDelivered,
            "The chat server could not be reached; your last message was not sent. Send it again.",
        );
        out.push((conn.to_string(), frame.to_json()));
    }
    out
}

/// The room's side of exactly-once: the last batch applied from each shard, in that shard's epoch. Kept in the
/// room's storage with the batch's effects (so a room rebuilt after applying a batch, but before answering, still
/// knows the retry for one) and restored from there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardBatches {
    last: BTreeMap<u32, (String, u64)>,
}

impl ShardBatches {
    /// From the stored `(shard, epoch, batch)` rows.
    pub fn restore(rows: impl IntoIterator<Item = (u32, String, u64)>) -> Self {
        Self {
            last: rows
                .into_iter()
                .map(|(shard, epoch, batch)| (shard, (epoch, batch)))
                .collect(),
        }
    }

    /// Whether to apply a batch, recording it as the shard's last when so. It is new when its number is above the
    /// last applied from that shard in the same epoch, or when the epoch is another one (the shard was rebuilt:
    /// epochs are random, not ordered, so any other one counts as new). A duplicate or an older batch is not.
    pub fn accept(&mut self, shard: u32, epoch: &str, batch: u64) -> bool {
        match self.last.get(&shard) {
            Some((last_epoch, last_batch)) if last_epoch == epoch && batch <= *last_batch => false,
            _ => {
                self.last.insert(shard, (epoch.to_string(), batch));
                true
            }
        }
    }

    /// The last batch applied from a shard: `(epoch, batch)`.
    pub fn last(&self, shard: u32) -> Option<(&str, u64)> {
        self.last.get(&shard).map(|(epoch, batch)| (epoch.as_str(), *batch))
    }
}

/// One socket event on a shard (externally tagged, as `ShardOp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardEvent {
    /// A frame. `connection` is the socket's attachment (`Connection::to_attachment`). A binary frame, or a text
    /// frame over `MAX_CLIENT_FRAME_BYTES` (which the room closes with 1009 either way), comes as `binary_len` with
    /// an empty `text`: the room needs its size, not its bytes.
    Frame {
        connection: String,
        #[serde(default)]
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary_len: Option<usize>,
    },
    /// The socket closed.
    Leave { conn: String },
}

impl ShardEvent {
    /// Bytes of client text it carries (what a shard bounds one request by).
    pub fn text_len(&self) -> usize {
        match self {
            ShardEvent::Frame { text, .. } => text.len(),
            ShardEvent::Leave { .. } => 0,
        }
    }
}

/// A shard sends at most this many events, or (past the first) this many bytes of client text, in one request.
pub const SHARD_EVENTS_MAX: usize = 64;
pub const SHARD_EVENTS_MAX_TEXT: usize = 32 * 1024;

/// Takes the next request's worth of events off the front of a shard's queue (at least one, when any).
pub fn next_events(queue: &mut std::collections::VecDeque<ShardEvent>) -> Vec<ShardEvent> {
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some(next) = queue.front() {
        if !out.is_empty() && (out.len() >= SHARD_EVENTS_MAX || bytes + next.text_len() > SHARD_EVENTS_MAX_TEXT) {
            break;
        }
        bytes += next.text_len();
        out.extend(queue.pop_front());
    }
    out
}

/// `GET /internal/shard/sockets` (room to shard): the connection ids the shard holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSockets {
    pub conns: Vec<String>,
}

/// The shard's side of ordering: the last delivery applied (persisted by the shell, so an evicted shard keeps it)
/// and the deliveries that came early.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardInbox {
    pub epoch: u64,
    pub last_seq: u64,
    pending: BTreeMap<u64, Vec<ShardOp>>,
}

impl ShardInbox {
    /// An inbox that has applied everything up to `(epoch, last_seq)`.
    pub fn restore(epoch: u64, last_seq: u64) -> Self {
        Self {
            epoch,
            last_seq,
            pending: BTreeMap::new(),
        }
    }

    /// Takes one delivery and returns the ops to carry out now, in order (none for a duplicate, an old epoch, or
    /// one that came early; several deliveries' worth when it filled a gap). A newer epoch (the room was rebuilt)
    /// starts counting again from 1.
    pub fn accept(&mut self, delivery: ShardDelivery) -> Vec<ShardOp> {
        if delivery.epoch < self.epoch {
            return Vec::new();
        }
        if delivery.epoch > self.epoch {
            self.epoch = delivery.epoch;
            self.last_seq = 0;
            self.pending.clear();
        }
        if delivery.seq <= self.last_seq {
            return Vec::new();
        }
        self.pending.entry(delivery.seq).or_insert(delivery.ops);
        let mut ready = Vec::new();
        loop {
            let next = self.last_seq + 1;
            if let Some(ops) = self.pending.remove(&next) {
                ready.extend(ops);
                self.last_seq = next;
            } else if self.pending.len() > INBOX_MAX_PENDING {
                // Give up on the gap: apply from the oldest delivery that did come.
                let (&first, _) = self.pending.first_key_value().expect("BUG: pending is not empty");
                self.last_seq = first - 1;
            } else {
                break;
            }
        }
        ready
    }

    /// Deliveries waiting for an earlier one.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Where a new socket goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Room,
    Shard(u32),
}

/// The room's side: which shard holds each remote socket, and how many each holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardMap {
    remote: HashMap<ConnId, u32>,
    per_shard: BTreeMap<u32, u32>,
}

/// The socket effects of one event, split by where they must happen.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routed {
    /// Effects for the room's own sockets and storage, in order (a `Broadcast` stays here too: it is for the
    /// room's own sockets as well).
    pub local: Vec<Effect>,
    /// Ops per shard, each list in order.
    pub shards: BTreeMap<u32, Vec<ShardOp>>,
    /// Remote sockets the room closed: forgotten by the map, their stored rows to delete.
    pub forgotten: Vec<ConnId>,
}

impl ShardMap {
    pub fn restore(rows: impl IntoIterator<Item = (ConnId, u32)>) -> Self {
        let mut map = Self::default();
        for (conn, shard) in rows {
            map.insert(conn, shard);
        }
        map
    }

    /// Sockets on shards.
    pub fn len(&self) -> u32 {
        u32::try_from(self.remote.len()).unwrap_or(u32::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.remote.is_empty()
    }

    pub fn shard_of(&self, conn: &ConnId) -> Option<u32> {
        self.remote.get(conn).copied()
    }

    /// Sockets on one shard, as the room knows them.
    pub fn on_shard(&self, shard: u32) -> u32 {
        self.per_shard.get(&shard).copied().unwrap_or(0)
    }

    /// The shards holding at least one socket.
    pub fn shards(&self) -> Vec<u32> {
        self.per_shard.keys().copied().collect()
    }

    /// The remote sockets of one shard.
    pub fn conns_on(&self, shard: u32) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .remote
            .iter()
            .filter(|(_, s)| **s == shard)
            .map(|(c, _)| c.clone())
            .collect();
        conns.sort();
        conns
    }

    /// Where the next socket goes: the room while it holds fewer than `threshold`, else the lowest-numbered shard
    /// with room, else a new one.
    pub fn place(&self, room_sockets: u32, threshold: u32) -> Placement {
        if room_sockets < threshold {
            return Placement::Room;
        }
        let mut n = 0;
        while self.on_shard(n) >= threshold {
            n += 1;
        }
        Placement::Shard(n)
    }

    /// Records a socket on a shard; false when it was known already.
    pub fn insert(&mut self, conn: ConnId, shard: u32) -> bool {
        if self.remote.contains_key(&conn) {
            return false;
        }
        self.remote.insert(conn, shard);
        *self.per_shard.entry(shard).or_insert(0) += 1;
        true
    }

    /// Forgets a socket; its shard, when it was remote.
    pub fn remove(&mut self, conn: &ConnId) -> Option<u32> {
        let shard = self.remote.remove(conn)?;
        if let std::collections::btree_map::Entry::Occupied(mut e) = self.per_shard.entry(shard) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
        Some(shard)
    }

    /// Splits a room's effects: sends and closes for remote sockets become ops of their shard (and a closed remote
    /// socket is forgotten here at once), broadcasts stay local and are also copied to every shard with sockets.
    pub fn route(&mut self, effects: Vec<Effect>) -> Routed {
        let mut routed = Routed::default();
        for effect in effects {
            match effect {
                Effect::Send { to, frame } => match self.shard_of(&to) {
                    Some(shard) => routed.shards.entry(shard).or_default().push(ShardOp::Send {
                        to: to.as_str().to_string(),
                        frame,
                    }),
                    None => routed.local.push(Effect::Send { to, frame }),
                },
                Effect::Close { conn, code, reason } => match self.remove(&conn) {
                    Some(shard) => {
                        routed.shards.entry(shard).or_default().push(ShardOp::Close {
                            conn: conn.as_str().to_string(),
                            code,
                            reason: reason.to_string(),
                        });
                        routed.forgotten.push(conn);
                    }
                    None => routed.local.push(Effect::Close { conn, code, reason }),
                },
                Effect::Broadcast { frame } => {
                    for shard in self.per_shard.keys() {
                        routed
                            .shards
                            .entry(*shard)
                            .or_default()
                            .push(ShardOp::Broadcast { frame: frame.clone() });
                    }
                    routed.local.push(Effect::Broadcast { frame });
                }
                other => routed.local.push(other),
            }
        }
        routed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: u8) -> ConnId {
        ConnId::generate([n; crate::ids::ID_RANDOM_BYTES])
    }

    fn b(frame: &str) -> ShardOp {
        ShardOp::Broadcast { frame: frame.into() }
    }

    fn d(epoch: u64, seq: u64, frame: &str) -> ShardDelivery {
        ShardDelivery {
            epoch,
            seq,
            ops: vec![b(frame)],
        }
    }

    #[test]
    fn the_threshold_is_a_positive_integer_or_the_default() {
        assert_eq!(shard_threshold(Some("40")), 40);
        assert_eq!(shard_threshold(Some(" 7 ")), 7);
        assert_eq!(shard_threshold(Some("0")), DEFAULT_SHARD_SOCKETS);
        assert_eq!(shard_threshold(Some("lots")), DEFAULT_SHARD_SOCKETS);
        assert_eq!(shard_threshold(None), DEFAULT_SHARD_SOCKETS);
        assert_eq!(shard_name("abc", 2), "abc#2");
    }

    #[test]
    fn no_object_is_asked_to_hold_more_sockets_than_a_hibernating_object_accepts() {
        assert_eq!(shard_threshold(Some("32768")), 32_768);
        assert_eq!(shard_threshold(Some("1000000000")), MAX_SOCKETS_PER_OBJECT);
    }

    #[test]
    fn deliveries_in_order_are_applied_at_once() {
        let mut inbox = ShardInbox::default();
        assert_eq!(inbox.accept(d(5, 1, "a")), vec![b("a")]);
        assert_eq!(inbox.accept(d(5, 2, "b")), vec![b("b")]);
        assert_eq!((inbox.epoch, inbox.last_seq), (5, 2));
    }

    #[test]
    fn an_early_delivery_waits_for_the_one_before_it() {
        let mut inbox = ShardInbox::default();
        assert_eq!(inbox.accept(d(5, 2, "b")), vec![]);
        assert_eq!(inbox.accept(d(5, 3, "c")), vec![]);
        assert_eq!(inbox.pending(), 2);
        assert_eq!(inbox.accept(d(5, 1, "a")), vec![b("a"), b("b"), b("c")]);
        assert_eq!(inbox.pending(), 0);
        assert_eq!(inbox.last_seq, 3);
    }

    #[test]
    fn duplicates_and_retries_are_dropped() {
        let mut inbox = ShardInbox::default();
        inbox.accept(d(5, 1, "a"));
        assert_eq!(inbox.accept(d(5, 1, "a")), vec![]);
        // A retry of one still waiting is kept once.
        assert_eq!(inbox.accept(d(5, 3, "c")), vec![]);
        assert_eq!(inbox.accept(d(5, 3, "c")), vec![]);
        assert_eq!(inbox.accept(d(5, 2, "b")), vec![b("b"), b("c")]);
        assert_eq!(inbox.accept(d(5, 3, "c")), vec![]);
    }

    #[test]
    fn a_restored_inbox_keeps_dropping_what_it_applied_before() {
        let mut inbox = ShardInbox::restore(5, 7);
        assert_eq!(inbox.accept(d(5, 7, "g")), vec![]);
        assert_eq!(inbox.accept(d(5, 8, "h")), vec![b("h")]);
    }

    #[test]
    fn a_new_room_epoch_counts_from_one_and_old_epochs_are_ignored() {
        let mut inbox = ShardInbox::restore(5, 90);
        assert_eq!(inbox.accept(d(6, 1, "new")), vec![b("new")]);
        assert_eq!(inbox.accept(d(5, 91, "late")), vec![]);
        assert_eq!((inbox.epoch, inbox.last_seq), (6, 1));
        // A new epoch whose first delivery is overtaken still waits for it.
        assert_eq!(inbox.accept(d(7, 2, "second")), vec![]);
        assert_eq!(inbox.accept(d(7, 1, "first")), vec![b("first"), b("second")]);
    }

    #[test]
    fn a_gap_that_never_fills_is_skipped_after_the_pending_limit() {
        let mut inbox = ShardInbox::default();
        inbox.accept(d(1, 1, "1"));
        let mut applied = Vec::new();
        for seq in 3..=(3 + INBOX_MAX_PENDING as u64) {
            applied.extend(inbox.accept(d(1, seq, &seq.to_string())));
        }
        let expected: Vec<ShardOp> = (3..=(3 + INBOX_MAX_PENDING as u64))
            .map(|s| b(&s.to_string()))
            .collect();
        assert_eq!(applied, expected);
        assert_eq!(inbox.pending(), 0);
        // The lost one, arriving at last, is too old now.
        assert_eq!(inbox.accept(d(1, 2, "2")), vec![]);
    }

    #[test]
    fn sockets_fill_the_room_then_each_shard_in_turn() {
        let mut map = ShardMap::default();
        assert_eq!(map.place(2, 3), Placement::Room);
        assert_eq!(map.place(3, 3), Placement::Shard(0));
        for i in 0..3 {
            assert!(map.insert(conn(i), 0));
        }
        assert!(!map.insert(conn(0), 0));
        assert_eq!(map.place(3, 3), Placement::Shard(1));
        map.insert(conn(10), 1);
        // A socket leaving shard 0 makes room there first.
        assert_eq!(map.remove(&conn(1)), Some(0));
        assert_eq!(map.place(3, 3), Placement::Shard(0));
        assert_eq!(map.remove(&conn(1)), None);
        assert_eq!((map.len(), map.on_shard(0), map.on_shard(1)), (3, 2, 1));
        assert_eq!(map.shards(), vec![0, 1]);
        assert_eq!(map.conns_on(1), vec![conn(10)]);
    }

    #[test]
    fn effects_are_routed_to_where_each_socket_lives() {
        let mut map = ShardMap::restore([(conn(1), 0), (conn(2), 1)]);
        let local = conn(9);
        let routed = map.route(vec![
            Effect::Send {
                to: conn(1),
                frame: "welcome".into(),
            },
            Effect::Send {
                to: local.clone(),
                frame: "hi".into(),
            },
            Effect::Broadcast { frame: "all".into() },
            Effect::PruneHistory { below_seq: 3 },
            Effect::Close {
                conn: conn(2),
                code: 1008,
                reason: "banned",
            },
        ]);
        assert_eq!(
            routed.local,
            vec![
                Effect::Send {
                    to: local,
                    frame: "hi".into()
                },
                Effect::Broadcast { frame: "all".into() },
                Effect::PruneHistory { below_seq: 3 },
            ]
        );
        assert_eq!(
            routed.shards[&0],
            vec![
                ShardOp::Send {
                    to: conn(1).as_str().into(),
                    frame: "welcome".into()
                },
                b("all")
            ]
        );
        assert_eq!(
            routed.shards[&1],
            vec![
                b("all"),
                ShardOp::Close {
                    conn: conn(2).as_str().into(),
                    code: 1008,
                    reason: "banned".into()
                }
            ]
        );
        assert_eq!(routed.forgotten, vec![conn(2)]);
        // The closed socket is forgotten: the next broadcast skips its shard, now empty.
        let routed = map.route(vec![Effect::Broadcast { frame: "x".into() }]);
        assert_eq!(routed.shards.keys().copied().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn a_shard_queue_is_sent_in_order_in_bounded_requests() {
        let frame = |text: &str| ShardEvent::Frame {
            connection: "c".into(),
            text: text.into(),
            binary_len: None,
        };
        let mut queue: std::collections::VecDeque<ShardEvent> = (0..100).map(|i| frame(&i.to_string())).collect();
        queue.push_back(ShardEvent::Leave { conn: "c".into() });
        let first = next_events(&mut queue);
        assert_eq!(first.len(), SHARD_EVENTS_MAX);
        assert_eq!(first[0], frame("0"));
        let second = next_events(&mut queue);
        assert_eq!(second.len(), 37);
        assert_eq!(second[0], frame("64"));
        assert_eq!(second[36], ShardEvent::Leave { conn: "c".into() });
        assert!(next_events(&mut queue).is_empty());
        // Text bounds a request too, but a single big frame still goes.
        let big = "x".repeat(SHARD_EVENTS_MAX_TEXT - 10);
        let mut queue: std::collections::VecDeque<ShardEvent> = [frame(&big), frame(&big)].into_iter().collect();
        assert_eq!(next_events(&mut queue).len(), 1);
        assert_eq!(next_events(&mut queue).len(), 1);
    }

    #[test]
    fn a_shard_applies_each_batch_once_however_often_it_is_sent() {
        let mut batches = ShardBatches::default();
        assert!(batches.accept(0, "aa", 1));
        // The retry of a batch that did arrive (its answer was lost).
        assert!(!batches.accept(0, "aa", 1));
        assert!(batches.accept(0, "aa", 2));
        // A gap (a batch the shard gave up on) is fine; an older one after a newer one is not applied.
        assert!(batches.accept(0, "aa", 5));
        assert!(!batches.accept(0, "aa", 3));
        assert!(!batches.accept(0, "aa", 5));
        assert_eq!(batches.last(0), Some(("aa", 5)));
    }

    #[test]
    fn a_new_shard_epoch_is_always_new() {
        let mut batches = ShardBatches::restore([(0, "aa".to_string(), 40)]);
        // The shard was rebuilt: its new instance counts from 1 again.
        assert!(batches.accept(0, "bb", 1));
        assert!(!batches.accept(0, "bb", 1));
        assert_eq!(batches.last(0), Some(("bb", 1)));
        // Epochs are random, not ordered: another one counts as new whatever its batch number.
        assert!(batches.accept(0, "aa", 41));
        assert_eq!(batches.last(0), Some(("aa", 41)));
    }

    #[test]
    fn shards_are_counted_apart_and_restored_from_storage() {
        let mut batches = ShardBatches::default();
        assert_eq!(batches.last(1), None);
        assert!(batches.accept(0, "aa", 1));
        assert!(batches.accept(1, "aa", 1));
        assert!(batches.accept(1, "aa", 2));
        assert!(batches.accept(0, "aa", 2));
        assert!(!batches.accept(1, "aa", 2));
        // A room rebuilt from its stored rows drops the same retries.
        let rows = [0, 1, 2].into_iter().filter_map(|shard| {
            let (epoch, batch) = batches.last(shard)?;
            Some((shard, epoch.to_string(), batch))
        });
        let mut restored = ShardBatches::restore(rows.collect::<Vec<_>>());
        assert_eq!(restored, batches);
        assert!(!restored.accept(0, "aa", 2));
        assert!(!restored.accept(1, "aa", 1));
        assert!(restored.accept(1, "aa", 3));
        assert!(restored.accept(2, "cc", 1));
    }

    #[test]
    fn a_failed_batch_is_retried_four_times_within_about_ten_seconds() {
        let waits: Vec<u64> = (0..)
            .map_while(|attempt| events_retry_delay_ms(attempt, None))
            .collect();
        assert_eq!(waits, SHARD_EVENTS_RETRY_MS);
        assert!(waits.iter().sum::<u64>() <= 10_000);
        assert_eq!(events_retry_delay_ms(0, Some(503)), Some(100));
        assert_eq!(events_retry_delay_ms(2, Some(500)), Some(1_600));
        assert_eq!(events_retry_delay_ms(1, Some(429)), Some(400));
        // The room refused the request itself: sending the same bytes again cannot help.
        assert_eq!(events_retry_delay_ms(0, Some(400)), None);
        assert_eq!(events_retry_delay_ms(0, Some(413)), None);
        assert_eq!(events_retry_delay_ms(SHARD_EVENTS_RETRY_MS.len(), None), None);
    }

    /// Runs a future whose every await is ready at once (the scripted ones below).
    fn run_ready<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("a scripted future was pending"),
        }
    }

    /// Sends a batch against scripted answers (`None`: the request failed, `Some(status)`); returns the outcome,
    /// the waits and the number of requests.
    fn scripted(answers: &[Option<u16>]) -> (BatchOutcome, Vec<u64>, usize) {
        let waits = std::cell::RefCell::new(Vec::new());
        let mut requests = 0;
        let outcome = run_ready(send_with_retry(
            || {
                let answer = answers.get(requests).copied().unwrap_or(Some(200));
                requests += 1;
                std::future::ready(match answer {
                    Some(200) => Ok(()),
                    status => Err(EventsFailure {
                        status,
                        why: format!("{status:?}"),
                    }),
                })
            },
            |ms, _| {
                waits.borrow_mut().push(ms);
                std::future::ready(())
            },
        ));
        (outcome, waits.into_inner(), requests)
    }

    #[test]
    fn a_batch_that_fails_once_is_sent_again_after_a_short_wait() {
        assert_eq!(
            scripted(&[Some(200)]),
            (BatchOutcome::Delivered { attempts: 1 }, vec![], 1)
        );
        assert_eq!(
            scripted(&[None, Some(200)]),
            (BatchOutcome::Delivered { attempts: 2 }, vec![100], 2)
        );
        assert_eq!(
            scripted(&[Some(503), Some(500), None, Some(200)]),
            (BatchOutcome::Delivered { attempts: 4 }, vec![100, 400, 1_600], 4)
        );
    }

    #[test]
    fn a_batch_is_given_up_after_the_last_wait_or_at_once_when_refused() {
        let (outcome, waits, requests) = scripted(&[None; 10]);
        assert_eq!(
            outcome,
            BatchOutcome::GivenUp {
                attempts: 5,
                last: EventsFailure {
                    status: None,
                    why: "None".into()
                }
            }
        );
        assert_eq!((waits, requests), (SHARD_EVENTS_RETRY_MS.to_vec(), 5));
        let (outcome, waits, requests) = scripted(&[Some(503), Some(422)]);
        assert!(matches!(outcome, BatchOutcome::GivenUp { attempts: 2, .. }));
        assert_eq!((waits, requests), (vec![100], 2));
    }

    #[test]
    fn shard_epochs_are_sixteen_hex_characters() {
        assert_eq!(shard_epoch([0, 1, 0xab, 0xff, 2, 3, 4, 5]), "0001abff02030405");
    }

    #[test]
    fn a_given_up_batch_tells_each_socket_that_sent_a_frame_once() {
        use crate::chat::{ClientAddress, Identity};
        let socket = |n: u8| Connection {
            conn: conn(n),
            client: ClientAddress::parse(&format!("192.0.2.{n}")).unwrap(),
            identity: Identity::Anonymous,
        };
        let frame = |n: u8, text: &str| ShardEvent::Frame {
            connection: socket(n).to_attachment(),
            text: text.into(),
            binary_len: None,
        };
        let events = vec![
            frame(1, "one"),
            ShardEvent::Leave {
                conn: conn(3).as_str().into(),
            },
            frame(2, "two"),
            frame(1, "three"),
            ShardEvent::Frame {
                connection: socket(4).to_attachment(),
                text: String::new(),
                binary_len: Some(10),
            },
        ];
        let notices = undelivered_notices(&events);
        let to: Vec<&str> = notices.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(to, vec![conn(1).as_str(), conn(2).as_str()]);
        let frame: serde_json::Value = serde_json::from_str(&notices[0].1).unwrap();
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["code"], "not_delivered");
        assert!(frame["message"].as_str().unwrap().contains("Send it again"));
    }

    #[test]
    fn internal_bodies_are_plain_json() {
        let delivery = ShardDelivery {
            epoch: 1,
            seq: 2,
            ops: vec![ShardOp::Close {
                conn: "c".into(),
                code: 1008,
                reason: "banned".into(),
            }],
        };
        let json = serde_json::to_string(&delivery).unwrap();
        assert_eq!(
            json,
            r#"{"epoch":1,"seq":2,"ops":[{"close":{"conn":"c","code":1008,"reason":"banned"}}]}"#
        );
        assert_eq!(serde_json::from_str::<ShardDelivery>(&json).unwrap(), delivery);
        let events = ShardEvents {
            shard: 2,
            epoch: "00ff".into(),
            batch: 7,
            events: vec![ShardEvent::Leave { conn: "c".into() }],
        };
        let json = serde_json::to_string(&events).unwrap();
        assert_eq!(
            json,
            r#"{"shard":2,"epoch":"00ff","batch":7,"events":[{"leave":{"conn":"c"}}]}"#
        );
        assert_eq!(serde_json::from_str::<ShardEvents>(&json).unwrap(), events);
    }
}
