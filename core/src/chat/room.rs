//! `Room`: one stream's chat as a state machine. The Durable Object shell turns each socket join, leave and message,
//! each internal post and each alarm into an `Event`, calls `Room::handle(event, now_ms)`, and carries out the
//! returned `Effect`s in order. The room keeps in memory only what it can rebuild from storage and the sockets'
//! attachments (`Snapshot`), because the platform evicts a hibernating object and constructs it again on the next
//! event; every state change it must not forget comes out as a storage effect.

use std::collections::{HashMap, HashSet, VecDeque};

use super::donation::RoomDonation;
use super::frame::{ChatMessage, ChatUser, ClientFrame, DonationMessage, ErrorCode, HistoryItem, ServerFrame};
use super::frame::{StreamStatus, You};
use super::history::MessageId;
use super::identity::{ClientAddress, ConnId, Identity};
use super::text::{ChatText, ChatTextError};
use super::{rfc3339_millis, CLOSE_POLICY, CLOSE_TOO_BIG, HISTORY_KEEP, MAX_CLIENT_FRAME_BYTES};
use super::{COALESCE_MIN_SOCKETS, COALESCE_WINDOW_MS, MAX_SOCKETS_PER_ADDRESS, WELCOME_HISTORY};
use super::{MAX_SLOW_MODE_SECONDS, MAX_TIMEOUT_SECONDS, PRESENCE_INTERVAL_MS, RATE_BURST, RATE_INTERVAL_MS};
use crate::ids::UserId;

/// History entries kept in memory: twice the welcome's 50, so deleting a few recent messages still leaves a full
/// welcome without reading storage.
const RECENT_KEEP: usize = 2 * WELCOME_HISTORY;
/// Above this many remembered senders, idle ones are forgotten (their limits have fully recovered anyway).
const SENDERS_SOFT_CAP: usize = 1024;

/// One socket: its id, the client address it came from, and who the worker said it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub conn: ConnId,
    pub client: ClientAddress,
    pub identity: Identity,
}

impl Connection {
    /// The socket attachment: `<conn> <client address> <role>`, then ` <user id> <username>` unless anonymous.
    /// Plain text because it is read on every socket event after a wake-up; spaces cannot occur in any part (ids
    /// are base32, addresses printable without spaces, usernames `[A-Za-z0-9_.-]`).
    pub fn to_attachment(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str(self.conn.as_str());
        out.push(' ');
        out.push_str(self.client.as_str());
        out.push(' ');
        out.push_str(self.identity.role().as_str());
        if let Some((id, username)) = self.identity.user() {
            out.push(' ');
            out.push_str(id.as_str());
            out.push(' ');
            out.push_str(username);
        }
        out
    }

    /// Reads an attachment written by `to_attachment`, with the same checks as the upgrade's headers.
    pub fn from_attachment(text: &str) -> Option<Self> {
        let mut parts = text.split(' ');
        let conn = ConnId::parse(parts.next()?)?;
        let client = ClientAddress::parse(parts.next()?)?;
        let role = parts.next();
        let (user_id, username) = (parts.next(), parts.next());
        if parts.next().is_some() {
            return None;
        }
        let identity = Identity::from_headers(user_id, username, role).ok()?;
        Some(Self { conn, client, identity })
    }
}

/// Who a socket counts as in the viewer count: a signed-in user once however many tabs they open, an anonymous
/// socket by its address (sockets are cheap to open, people are not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ViewerKey {
    User(UserId),
    Address(ClientAddress),
}

impl ViewerKey {
    fn of(client: &ClientAddress, identity: &Identity) -> Self {
        match identity.user_id() {
            Some(id) => ViewerKey::User(id.clone()),
            None => ViewerKey::Address(client.clone()),
        }
    }
}

/// The open sockets, and two tallies kept as they come and go (a room of 10,000 must not recount on every join):
/// sockets per client address, for the cap, and sockets per viewer, whose number is the viewer count.
#[derive(Debug, Default)]
struct Sockets {
    by_conn: HashMap<ConnId, (ClientAddress, Identity)>,
    per_address: HashMap<ClientAddress, u32>,
    per_viewer: HashMap<ViewerKey, u32>,
}

impl Sockets {
    /// Adds a socket; false when it was already there.
    fn insert(&mut self, c: Connection) -> bool {
        if self.by_conn.contains_key(&c.conn) {
            return false;
        }
        *self.per_address.entry(c.client.clone()).or_insert(0) += 1;
        *self
            .per_viewer
            .entry(ViewerKey::of(&c.client, &c.identity))
            .or_insert(0) += 1;
        self.by_conn.insert(c.conn, (c.client, c.identity));
        true
    }

    /// Removes a socket; false when it was not there.
    fn remove(&mut self, conn: &ConnId) -> bool {
        let Some((client, identity)) = self.by_conn.remove(conn) else {
            return false;
        };
        let viewer = ViewerKey::of(&client, &identity);
        decrement(&mut self.per_address, client);
        decrement(&mut self.per_viewer, viewer);
        true
    }

    fn contains(&self, conn: &ConnId) -> bool {
        self.by_conn.contains_key(conn)
    }

    fn len(&self) -> u32 {
        u32::try_from(self.by_conn.len()).unwrap_or(u32::MAX)
    }

    fn at_address(&self, client: &ClientAddress) -> u32 {
        self.per_address.get(client).copied().unwrap_or(0)
    }

    fn viewers(&self) -> u32 {
        u32::try_from(self.per_viewer.len()).unwrap_or(u32::MAX)
    }

    /// The sockets of one user, in id order.
    fn of_user(&self, user: &UserId) -> Vec<ConnId> {
        let mut theirs: Vec<ConnId> = self
            .by_conn
            .iter()
            .filter(|(_, (_, identity))| identity.user_id() == Some(user))
            .map(|(conn, _)| conn.clone())
            .collect();
        theirs.sort();
        theirs
    }
}

fn decrement<K: std::hash::Hash + Eq>(tally: &mut HashMap<K, u32>, key: K) {
    if let std::collections::hash_map::Entry::Occupied(mut e) = tally.entry(key) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

/// Something that happened to the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A socket was accepted. `stream_status` is D1's view at upgrade time, used until the room is told a status.
    Join {
        connection: Connection,
        stream_status: Option<StreamStatus>,
    },
    /// A socket closed or failed.
    Leave { conn: ConnId },
    /// A text frame arrived.
    Text { from: Connection, text: String },
    /// A binary frame of `len` bytes arrived (the contract has none).
    Binary { from: Connection, len: usize },
    /// The worker posted a paid donation whose order id the shell found in no stored row: exactly-once delivery is
    /// a primary-key lookup in storage (the orders outlive the history window), so the room keeps no set of orders
    /// and waking up does not cost more as a stream collects donations.
    Donation(RoomDonation),
    /// The worker posted the stream's status.
    Status(StreamStatus),
    /// The alarm the room asked for went off.
    Alarm,
    /// The time asked for by `Effect::ScheduleFlush` came: store and send the held chat messages. (A flush that
    /// finds nothing held, because another event sent them first, does nothing.)
    Flush,
}

/// Kinds of stored history rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Chat,
    Donation,
}

impl MessageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageKind::Chat => "chat",
            MessageKind::Donation => "donation",
        }
    }
}

/// A history row to insert. `body` is the item's JSON, the very text that was broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq: i64,
    pub kind: MessageKind,
    pub user_id: Option<UserId>,
    pub order_id: Option<String>,
    pub ts_ms: i64,
    pub body: String,
}

/// A room setting to persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    SlowModeSeconds(u32),
    Status(StreamStatus),
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send a frame to one socket.
    Send {
        to: ConnId,
        frame: String,
    },
    /// Send the same, already serialized frame to every socket.
    Broadcast {
        frame: String,
    },
    /// Close one socket with a code and reason.
    Close {
        conn: ConnId,
        code: u16,
        reason: &'static str,
    },
    /// Insert a history row (and, for a donation, remember its order id for good).
    StoreMessage(StoredMessage),
    /// Delete history rows with `seq < below_seq` (the oldest beyond the newest `HISTORY_KEEP`).
    PruneHistory {
        below_seq: i64,
    },
    /// Remove one message's content for everyone (its row stays as a tombstone so its id is never reused).
    DeleteMessage {
        seq: i64,
    },
    SaveBan {
        user_id: UserId,
    },
    LiftBan {
        user_id: UserId,
    },
    SaveTimeout {
        user_id: UserId,
        until_ms: i64,
    },
    LiftTimeout {
        user_id: UserId,
    },
    SaveSetting(Setting),
    /// Publish the room's socket count outside the room (the shell writes it to D1's `streams.viewers`). Comes with
    /// every presence frame, so it is throttled the same way: at most once per `PRESENCE_INTERVAL_MS`.
    PublishViewers {
        viewers: u32,
    },
    /// Make the platform call back with `Event::Alarm` at this time (unix ms).
    ScheduleAlarm {
        at_ms: i64,
    },
    /// Call back with `Event::Flush` at this time (unix ms). Short (at most `COALESCE_WINDOW_MS` away) and only
    /// needed while the object is awake with messages held in memory, so the shell uses a timer, not the alarm.
    ScheduleFlush {
        at_ms: i64,
    },
}

/// Everything the room needs to start again after eviction: read back from storage and the sockets' attachments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The last status the worker posted, if any.
    pub status: Option<StreamStatus>,
    pub slow_mode_seconds: u32,
    pub bans: Vec<UserId>,
    pub timeouts: Vec<(UserId, i64)>,
    /// The newest history items that are not deleted, oldest first (at most `Snapshot::RECENT` are used).
    pub recent: Vec<HistoryItem>,
    /// The highest sequence number ever stored (0 for a new room).
    pub last_seq: i64,
    /// Chat messages sent within `Snapshot::sends_window_ms` before now, oldest first: replayed into the rate
    /// limiter and slow mode, so a wake-up does not hand out a fresh burst.
    pub recent_sends: Vec<(UserId, i64)>,
    /// The sockets still open.
    pub connections: Vec<Connection>,
}

impl Snapshot {
    /// How many recent history items the room keeps in memory.
    pub const RECENT: usize = RECENT_KEEP;

    /// How far back the shell must read `recent_sends` for the given slow mode.
    pub fn sends_window_ms(slow_mode_seconds: u32) -> i64 {
        (i64::from(slow_mode_seconds) * 1000).max(RATE_BURST * RATE_INTERVAL_MS)
    }
}

/// Per-user send state. `tat_ms` is the theoretical arrival time of the generic cell rate algorithm: a message at
/// `now` passes when `tat - now <= (burst - 1) * interval`, which is a token bucket of `burst` refilled once per
/// `interval`, kept in one integer.
#[derive(Debug, Clone, Copy)]
struct Sender {
    tat_ms: i64,
    last_sent_ms: i64,
}

/// A history item appended but not yet stored or sent: held while chat is coalesced (see `COALESCE_WINDOW_MS`).
#[derive(Debug)]
struct Held {
    row: StoredMessage,
    item: HistoryItem,
}

/// Chat coalescing: what is held and when the last history broadcast went out.
#[derive(Debug, Default)]
struct Outbox {
    held: Vec<Held>,
    last_flush_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Presence {
    last_sent_ms: Option<i64>,
    last_count: Option<u32>,
    alarm_at_ms: Option<i64>,
}

/// One stream's chat room.
#[derive(Debug)]
pub struct Room {
    status: Option<StreamStatus>,
    hinted_status: Option<StreamStatus>,
    slow_mode_seconds: u32,
    bans: HashSet<UserId>,
    timeouts: HashMap<UserId, i64>,
    recent: VecDeque<HistoryItem>,
    last_seq: i64,
    senders: HashMap<UserId, Sender>,
    sockets: Sockets,
    /// Sockets the room closed whose close has not been reported yet: frames still in flight from them are dropped.
    closing: HashSet<ConnId>,
    presence: Presence,
    outbox: Outbox,
}

impl Default for Room {
    fn default() -> Self {
        Self::restore(Snapshot::default())
    }
}

impl Room {
    /// Rebuilds a room from what storage and the open sockets remember.
    pub fn restore(snapshot: Snapshot) -> Self {
        let skip = snapshot.recent.len().saturating_sub(RECENT_KEEP);
        let mut room = Room {
            status: snapshot.status,
            hinted_status: None,
            slow_mode_seconds: snapshot.slow_mode_seconds.min(MAX_SLOW_MODE_SECONDS),
            bans: snapshot.bans.into_iter().collect(),
            timeouts: snapshot.timeouts.into_iter().collect(),
            recent: snapshot.recent.into_iter().skip(skip).collect(),
            last_seq: snapshot.last_seq.max(0),
            senders: HashMap::new(),
            sockets: Sockets::default(),
            closing: HashSet::new(),
            presence: Presence::default(),
            outbox: Outbox::default(),
        };
        for c in snapshot.connections {
            room.sockets.insert(c);
        }
        for (user, ts) in snapshot.recent_sends {
            room.record_send(&user, ts);
        }
        room
    }

    /// Viewers in the room: distinct signed-in users, plus distinct addresses of anonymous sockets.
    pub fn viewers(&self) -> u32 {
        self.sockets.viewers()
    }

    /// Open sockets (what a broadcast costs).
    pub fn sockets(&self) -> u32 {
        self.sockets.len()
    }

    /// The status the welcome frame would show.
    pub fn status(&self) -> StreamStatus {
        self.status.or(self.hinted_status).unwrap_or(StreamStatus::Offline)
    }

    pub fn slow_mode_seconds(&self) -> u32 {
        self.slow_mode_seconds
    }

    /// Whether chat messages are held for the next flush (accepted, not stored yet).
    pub fn holds_messages(&self) -> bool {
        !self.outbox.held.is_empty()
    }

    pub fn is_banned(&self, user: &UserId) -> bool {
        self.bans.contains(user)
    }

    /// An operator deletes message `raw_id` (not through a socket): what the host's `delete` frame does. The
    /// effects (held chat flushed first, as for any event) and whether the room had that message to delete.
    pub fn operator_delete(&mut self, raw_id: &str, now_ms: i64) -> (Vec<Effect>, bool) {
        let mut out = Vec::new();
        self.flush(now_ms, &mut out);
        let nobody = ConnId::generate([0; crate::ids::ID_RANDOM_BYTES]);
        self.on_delete(&nobody, raw_id, &mut out);
        let before = out.len();
        out.retain(|e| !matches!(e, Effect::Send { to, .. } if *to == nobody));
        let deleted = out.len() == before;
        (out, deleted)
    }

    /// Applies one event at `now_ms` (unix milliseconds) and says what must happen.
    pub fn handle(&mut self, event: Event, now_ms: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        // Held chat goes out before anything else happens, so every socket sees frames in the order of events.
        // Two exceptions: a join flushes after its welcome (the joiner is already among the sockets a broadcast
        // reaches, and its welcome must come first), and a chat message may itself be held (`on_text`).
        if !matches!(event, Event::Join { .. } | Event::Text { .. }) {
            self.flush(now_ms, &mut out);
        }
        match event {
            Event::Join {
                connection,
                stream_status,
            } => self.on_join(connection, stream_status, now_ms, &mut out),
            Event::Leave { conn } => {
                self.closing.remove(&conn);
                if self.sockets.remove(&conn) {
                    self.presence_changed(now_ms, &mut out);
                }
            }
            Event::Text { from, text } => self.on_text(from, &text, now_ms, &mut out),
            Event::Binary { from, len } => {
                if !self.ensure_connected(&from, now_ms, &mut out) {
                    return out;
                }
                if len > MAX_CLIENT_FRAME_BYTES {
                    self.close(&from.conn, CLOSE_TOO_BIG, "frame too large", now_ms, &mut out);
                } else {
                    send_error(
                        &mut out,
                        &from.conn,
                        ErrorCode::BadFrame,
                        "Frames must be JSON text, not binary.",
                    );
                }
            }
            Event::Donation(donation) => self.on_donation(donation, now_ms, &mut out),
            Event::Status(status) => {
                if self.status != Some(status) {
                    self.status = Some(status);
                    out.push(Effect::SaveSetting(Setting::Status(status)));
                    out.push(Effect::Broadcast {
                        frame: ServerFrame::Status { status }.to_json(),
                    });
                }
            }
            Event::Flush => {}
            Event::Alarm => {
                self.presence.alarm_at_ms = None;
                match self.presence.last_sent_ms {
                    // An early alarm (or one set by an earlier incarnation): wait for the end of the window.
                    Some(last) if now_ms < last + PRESENCE_INTERVAL_MS => self.schedule_presence(last, &mut out),
                    _ => self.send_presence_if_changed(now_ms, &mut out),
                }
            }
        }
        out
    }

    fn on_join(&mut self, connection: Connection, hint: Option<StreamStatus>, now_ms: i64, out: &mut Vec<Effect>) {
        let conn = connection.conn.clone();
        if !self.sockets.contains(&conn) && self.sockets.at_address(&connection.client) >= MAX_SOCKETS_PER_ADDRESS {
            let why = format!(
                "Too many chat connections from your network to this stream (at most {MAX_SOCKETS_PER_ADDRESS}). \
                 Close a tab and reconnect."
            );
            send_error(out, &conn, ErrorCode::TooManyConnections, why);
            return self.close(
                &conn,
                CLOSE_POLICY,
                "too many connections from one address",
                now_ms,
                out,
            );
        }
        if self.status.is_none() {
            if let Some(hint) = hint {
                self.hinted_status = Some(hint);
            }
        }
        // The joiner counts: the welcome is the first thing it sees.
        let added = self.sockets.insert(connection.clone());
        let welcome = ServerFrame::Welcome {
            you: You::from(&connection.identity),
            history: self
                .recent
                .iter()
                .skip(self.recent.len().saturating_sub(WELCOME_HISTORY))
                .cloned()
                .collect(),
            viewers: self.viewers(),
            status: self.status(),
            slow_mode_seconds: self.slow_mode_seconds,
        };
        out.push(Effect::Send {
            to: conn,
            frame: welcome.to_json(),
        });
        // Held messages are not in the welcome's history: the joiner gets them with everyone else, after it.
        self.flush(now_ms, out);
        if added {
            self.presence_changed(now_ms, out);
        }
    }

    /// A frame from a socket the room did not know (its join was lost in an eviction race) adds it; a frame from a
    /// socket the room has closed is dropped (false).
    fn ensure_connected(&mut self, from: &Connection, now_ms: i64, out: &mut Vec<Effect>) -> bool {
        if self.closing.contains(&from.conn) {
            return false;
        }
        if self.sockets.insert(from.clone()) {
            self.presence_changed(now_ms, out);
        }
        true
    }

    fn on_text(&mut self, from: Connection, raw: &str, now_ms: i64, out: &mut Vec<Effect>) {
        if !self.ensure_connected(&from, now_ms, out) {
            return;
        }
        if raw.len() > MAX_CLIENT_FRAME_BYTES {
            self.close(&from.conn, CLOSE_TOO_BIG, "frame too large", now_ms, out);
            return;
        }
        let frame = match ClientFrame::parse(raw) {
            Ok(frame) => frame,
            Err(why) => return send_error(out, &from.conn, ErrorCode::BadFrame, why),
        };
        if let ClientFrame::Chat { text } = frame {
            return self.on_chat(&from, &text, now_ms, out);
        }
        self.flush(now_ms, out);
        // Everything else is moderation: the host only.
        match &from.identity {
            Identity::Anonymous => {
                return send_error(out, &from.conn, ErrorCode::NotAuthenticated, "Sign in to moderate.");
            }
            Identity::Viewer { .. } => {
                return send_error(out, &from.conn, ErrorCode::Forbidden, "Only the host can do that.");
            }
            Identity::Host { .. } => {}
        }
        match frame {
            ClientFrame::Chat { .. } => unreachable!("BUG: chat frames are handled above"),
            ClientFrame::Delete { id } => self.on_delete(&from.conn, &id, out),
            ClientFrame::Timeout { user_id, seconds } => {
                self.on_timeout(&from, &user_id, seconds, now_ms, out);
            }
            ClientFrame::Ban { user_id } => self.on_ban(&from, &user_id, now_ms, out),
            ClientFrame::Unban { user_id } => {
                if let Some(user) = moderation_target(&from, &user_id, "unban", out) {
                    if self.bans.remove(&user) {
                        out.push(Effect::LiftBan { user_id: user });
                    }
                }
            }
            ClientFrame::SlowMode { seconds } => {
                let Some(seconds) = u32::try_from(seconds).ok().filter(|s| *s <= MAX_SLOW_MODE_SECONDS) else {
                    let why = format!("Slow mode must be 0 to {MAX_SLOW_MODE_SECONDS} seconds.");
                    return send_error(out, &from.conn, ErrorCode::BadFrame, why);
                };
                self.slow_mode_seconds = seconds;
                out.push(Effect::SaveSetting(Setting::SlowModeSeconds(seconds)));
                out.push(Effect::Broadcast {
                    frame: ServerFrame::SlowMode { seconds }.to_json(),
                });
            }
        }
    }

    fn on_chat(&mut self, from: &Connection, raw_text: &str, now_ms: i64, out: &mut Vec<Effect>) {
        let Some((user_id, username)) = from.identity.user() else {
            return send_error(out, &from.conn, ErrorCode::NotAuthenticated, "Sign in to chat.");
        };
        let (user_id, username) = (user_id.clone(), username.to_string());
        let is_host = from.identity.is_host();
        if !is_host {
            if self.bans.contains(&user_id) {
                return send_error(
                    out,
                    &from.conn,
                    ErrorCode::Banned,
                    "The host has banned you from this chat.",
                );
            }
            if let Some(until) = self.timeouts.get(&user_id).copied() {
                if until > now_ms {
                    let message = format!(
                        "The host has timed you out for {} more s.",
                        (until - now_ms + 999) / 1000
                    );
                    return send_rate_limited(out, &from.conn, message, until - now_ms);
                }
                self.timeouts.remove(&user_id);
                out.push(Effect::LiftTimeout {
                    user_id: user_id.clone(),
                });
            }
        }
        let text = match ChatText::parse(raw_text) {
            Ok(text) => text,
            Err(ChatTextError::Empty) => {
                return send_error(
                    out,
                    &from.conn,
                    ErrorCode::Empty,
                    "Say something: the message is empty.",
                );
            }
            Err(ChatTextError::TooLong) => {
                return send_error(
                    out,
                    &from.conn,
                    ErrorCode::TooLong,
                    "Messages are at most 500 characters.",
                );
            }
            Err(ChatTextError::ControlCharacter) => {
                let why = "Messages cannot contain control characters (newlines, tabs, ...).";
                return send_error(out, &from.conn, ErrorCode::BadFrame, why);
            }
        };
        if !is_host {
            if let Some(wait_ms) = self.send_wait_ms(&user_id, now_ms) {
                let message = if self.slow_wait_ms(&user_id, now_ms).is_some() {
                    format!("Slow mode is on: one message every {} s.", self.slow_mode_seconds)
                } else {
                    "You are sending messages too fast.".to_string()
                };
                return send_rate_limited(out, &from.conn, message, wait_ms);
            }
        }
        self.record_send(&user_id, now_ms);
        let id = MessageId::after(self.last_seq);
        let item = HistoryItem::Chat(ChatMessage {
            id: id.to_string(),
            user: ChatUser {
                id: user_id.clone(),
                username,
            },
            text,
            ts: rfc3339_millis(now_ms),
        });
        self.append(item, id, Some(user_id), None, now_ms, out);
        self.forget_idle_senders(now_ms);
    }

    fn on_donation(&mut self, donation: RoomDonation, now_ms: i64, out: &mut Vec<Effect>) {
        let id = MessageId::after(self.last_seq);
        let item = HistoryItem::Donation(DonationMessage {
            id: id.to_string(),
            donor: donation.donor,
            amount: donation.amount,
            currency: "IDR".into(),
            message: donation.message,
            ts: rfc3339_millis(now_ms),
            guest: donation.guest,
        });
        self.append(item, id, None, Some(donation.order_id), now_ms, out);
    }

    /// Appends a new history item: it gets the next id now, and is stored, broadcast and remembered at once, or,
    /// while chat is coalesced, held for the flush at the end of the window. The JSON is made once for all three.
    fn append(
        &mut self,
        item: HistoryItem,
        id: MessageId,
        user_id: Option<UserId>,
        order_id: Option<String>,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        let body = serde_json::to_string(&item).expect("BUG: history items are plain data and always serialize");
        let kind = match item {
            HistoryItem::Chat(_) => MessageKind::Chat,
            HistoryItem::Donation(_) => MessageKind::Donation,
        };
        self.last_seq = id.seq();
        let row = StoredMessage {
            seq: id.seq(),
            kind,
            user_id,
            order_id,
            ts_ms: now_ms,
            body,
        };
        // A donation is never held: the worker's post is answered "delivered" only once its row is stored.
        let hold = kind == MessageKind::Chat && self.coalescing();
        self.outbox.held.push(Held { row, item });
        if !hold {
            self.flush(now_ms, out);
        } else if self.outbox.held.len() == 1 {
            let next_window = self
                .outbox
                .last_flush_ms
                .map_or(now_ms, |last| last + COALESCE_WINDOW_MS);
            out.push(Effect::ScheduleFlush {
                at_ms: next_window.max(now_ms),
            });
        }
    }

    /// Whether a chat message is held rather than sent in this event: always in a room big enough for a broadcast
    /// to cost something. The flush comes at the next turn of the event loop when the last broadcast is a window
    /// old (a quiet room waits for nothing), else at the end of that window; either way every message that queued
    /// up meanwhile, while the object was busy sending, goes out with it. Holding by time alone would not do: the
    /// clock stands still while the object works, so a room too slow for its traffic would never see two messages
    /// inside one window, and would fall further behind with a full broadcast per message.
    fn coalescing(&self) -> bool {
        !self.outbox.held.is_empty() || self.sockets.len() >= COALESCE_MIN_SOCKETS
    }

    /// Stores and broadcasts everything held, in id order: the rows in one event (so one storage commit, which the
    /// output gate waits for before the frame leaves), one prune, and one frame: the item itself when there is
    /// one, else a `batch` frame listing them.
    fn flush(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        let held = std::mem::take(&mut self.outbox.held);
        let Some(last) = held.last() else {
            return;
        };
        let last_seq = last.row.seq;
        self.outbox.last_flush_ms = Some(now_ms);
        let frame = match held.as_slice() {
            [one] => one.row.body.clone(),
            many => ServerFrame::batch_json(many.iter().map(|h| h.row.body.as_str())),
        };
        for h in held {
            out.push(Effect::StoreMessage(h.row));
            self.recent.push_back(h.item);
        }
        if last_seq > HISTORY_KEEP {
            out.push(Effect::PruneHistory {
                below_seq: last_seq - HISTORY_KEEP + 1,
            });
        }
        out.push(Effect::Broadcast { frame });
        while self.recent.len() > RECENT_KEEP {
            self.recent.pop_front();
        }
    }

    fn on_delete(&mut self, host: &ConnId, raw_id: &str, out: &mut Vec<Effect>) {
        let Some(id) = MessageId::parse(raw_id).filter(|id| id.seq() <= self.last_seq) else {
            return send_error(out, host, ErrorCode::BadFrame, "There is no message with that id.");
        };
        if id.seq() <= self.last_seq - HISTORY_KEEP {
            return send_error(out, host, ErrorCode::BadFrame, "That message is no longer kept.");
        }
        let text_id = id.to_string();
        self.recent.retain(|item| item.id() != text_id);
        out.push(Effect::DeleteMessage { seq: id.seq() });
        out.push(Effect::Broadcast {
            frame: ServerFrame::Deleted { id: text_id }.to_json(),
        });
    }

    fn on_timeout(&mut self, host: &Connection, raw_user: &str, seconds: u64, now_ms: i64, out: &mut Vec<Effect>) {
        let Some(user) = moderation_target(host, raw_user, "time out", out) else {
            return;
        };
        if seconds > MAX_TIMEOUT_SECONDS {
            let why = format!("A timeout is at most {MAX_TIMEOUT_SECONDS} seconds; ban for longer.");
            return send_error(out, &host.conn, ErrorCode::BadFrame, why);
        }
        if seconds == 0 {
            if self.timeouts.remove(&user).is_some() {
                out.push(Effect::LiftTimeout { user_id: user });
            }
            return;
        }
        let until_ms = now_ms + i64::try_from(seconds).unwrap_or(i64::MAX / 2) * 1000;
        self.timeouts.insert(user.clone(), until_ms);
        out.push(Effect::SaveTimeout {
            user_id: user,
            until_ms,
        });
    }

    fn on_ban(&mut self, host: &Connection, raw_user: &str, now_ms: i64, out: &mut Vec<Effect>) {
        let Some(user) = moderation_target(host, raw_user, "ban", out) else {
            return;
        };
        self.bans.insert(user.clone());
        self.timeouts.remove(&user);
        out.push(Effect::SaveBan { user_id: user.clone() });
        // Remove the user's open sockets: they may reconnect and read, but never chat again here.
        for conn in self.sockets.of_user(&user) {
            self.close(&conn, CLOSE_POLICY, "banned", now_ms, out);
        }
    }

    fn close(&mut self, conn: &ConnId, code: u16, reason: &'static str, now_ms: i64, out: &mut Vec<Effect>) {
        out.push(Effect::Close {
            conn: conn.clone(),
            code,
            reason,
        });
        // A close the client never acknowledges must not grow this set for ever.
        if self.closing.len() >= SENDERS_SOFT_CAP {
            self.closing.clear();
        }
        self.closing.insert(conn.clone());
        if self.sockets.remove(conn) {
            self.presence_changed(now_ms, out);
        }
    }

    /// Milliseconds until `user` may send, if they may not now (burst and slow mode together).
    fn send_wait_ms(&self, user: &UserId, now_ms: i64) -> Option<i64> {
        let burst_wait = self.senders.get(user).and_then(|s| {
            let over = s.tat_ms.max(now_ms) - now_ms - (RATE_BURST - 1) * RATE_INTERVAL_MS;
            (over > 0).then_some(over)
        });
        match (burst_wait, self.slow_wait_ms(user, now_ms)) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
        }
    }

    fn slow_wait_ms(&self, user: &UserId, now_ms: i64) -> Option<i64> {
        if self.slow_mode_seconds == 0 {
            return None;
        }
        let s = self.senders.get(user)?;
        let wait = s.last_sent_ms + i64::from(self.slow_mode_seconds) * 1000 - now_ms;
        (wait > 0).then_some(wait)
    }

    fn record_send(&mut self, user: &UserId, at_ms: i64) {
        let s = self.senders.entry(user.clone()).or_insert(Sender {
            tat_ms: at_ms,
            last_sent_ms: at_ms,
        });
        s.tat_ms = s.tat_ms.max(at_ms) + RATE_INTERVAL_MS;
        s.last_sent_ms = at_ms;
    }

    fn forget_idle_senders(&mut self, now_ms: i64) {
        if self.senders.len() <= SENDERS_SOFT_CAP {
            return;
        }
        let slow_ms = i64::from(self.slow_mode_seconds) * 1000;
        self.senders
            .retain(|_, s| s.tat_ms > now_ms || s.last_sent_ms + slow_ms > now_ms);
    }

    fn presence_changed(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        match self.presence.last_sent_ms {
            Some(last) if now_ms < last + PRESENCE_INTERVAL_MS => self.schedule_presence(last, out),
            _ => self.send_presence_if_changed(now_ms, out),
        }
    }

    /// Asks for the trailing presence update at the end of the current window, once.
    fn schedule_presence(&mut self, last_sent_ms: i64, out: &mut Vec<Effect>) {
        if self.presence.alarm_at_ms.is_none() {
            let at_ms = last_sent_ms + PRESENCE_INTERVAL_MS;
            self.presence.alarm_at_ms = Some(at_ms);
            out.push(Effect::ScheduleAlarm { at_ms });
        }
    }

    fn send_presence_if_changed(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        let viewers = self.viewers();
        if self.presence.last_count == Some(viewers) {
            return;
        }
        self.presence = Presence {
            last_sent_ms: Some(now_ms),
            last_count: Some(viewers),
            alarm_at_ms: self.presence.alarm_at_ms,
        };
        out.push(Effect::Broadcast {
            frame: ServerFrame::Presence { viewers }.to_json(),
        });
        out.push(Effect::PublishViewers { viewers });
    }
}

/// The user a moderation frame names, unless it is malformed or the host themselves (answered with `bad_frame`).
fn moderation_target(host: &Connection, raw_user: &str, verb: &str, out: &mut Vec<Effect>) -> Option<UserId> {
    let Some(user) = UserId::parse(raw_user) else {
        send_error(out, &host.conn, ErrorCode::BadFrame, "user_id is not a user id.");
        return None;
    };
    if host.identity.user_id() == Some(&user) {
        send_error(
            out,
            &host.conn,
            ErrorCode::BadFrame,
            format!("The host cannot {verb} themselves."),
        );
        return None;
    }
    Some(user)
}

fn send_error(out: &mut Vec<Effect>, to: &ConnId, code: ErrorCode, message: impl Into<String>) {
    out.push(Effect::Send {
        to: to.clone(),
        frame: ServerFrame::error(code, message).to_json(),
    });
}

fn send_rate_limited(out: &mut Vec<Effect>, to: &ConnId, message: String, wait_ms: i64) {
    out.push(Effect::Send {
        to: to.clone(),
        frame: ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message,
            retry_after_ms: Some(wait_ms),
        }
        .to_json(),
    });
}

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
