//! Host tests of the chat room state machine: every frame type, every error path, the limits, presence throttling,
//! history bounds and what survives a rebuild from storage. `FakeStore` applies storage effects the way the Durable
//! Object's SQLite does, so the restore tests check that the effects carry everything the room needs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::*;
use crate::chat::{
    ClientAddress, COALESCE_MIN_SOCKETS, COALESCE_WINDOW_MS, MAX_SOCKETS_PER_ADDRESS, PRESENCE_INTERVAL_MS,
};
use crate::chat::{DonationPost, HistoryItem, CLOSE_POLICY, CLOSE_TOO_BIG, HISTORY_KEEP, MAX_CLIENT_FRAME_BYTES};

const T0: i64 = 1_767_225_600_000;

fn uid(n: u8) -> UserId {
    UserId::generate([n; 10])
}

fn conn_id(n: u8) -> ConnId {
    ConnId::generate([100 + n; 10])
}

/// The client address of socket `n` in these tests: every named socket has its own, unless a test says otherwise.
fn addr(n: u8) -> ClientAddress {
    ClientAddress::parse(&format!("192.0.2.{n}")).unwrap()
}

fn host() -> Connection {
    Connection {
        conn: conn_id(1),
        client: addr(1),
        identity: Identity::Host {
            id: uid(1),
            username: "host".into(),
        },
    }
}

fn viewer(n: u8) -> Connection {
    Connection {
        conn: conn_id(n),
        client: addr(n),
        identity: Identity::Viewer {
            id: uid(n),
            username: format!("viewer{n}"),
        },
    }
}

/// A second socket of viewer `n` (same user, other tab, same address).
fn second_socket_of(n: u8) -> Connection {
    Connection {
        conn: conn_id(n + 50),
        ..viewer(n)
    }
}

fn anonymous(n: u8) -> Connection {
    Connection {
        conn: conn_id(n),
        client: addr(n),
        identity: Identity::Anonymous,
    }
}

fn donation(order: &str, amount: i64) -> RoomDonation {
    RoomDonation::parse(DonationPost {
        order_id: order.into(),
        donor: "Sari".into(),
        amount,
        message: Some("semangat".into()),
        guest: false,
    })
    .unwrap()
}

/// A room, a clock and a fake storage that every effect is applied to.
struct Harness {
    room: Room,
    now: i64,
    store: FakeStore,
}

impl Harness {
    fn new() -> Self {
        Self {
            room: Room::default(),
            now: T0,
            store: FakeStore::default(),
        }
    }

    fn handle(&mut self, event: Event) -> Vec<Effect> {
        // As the shell does: a donation whose order is already stored never reaches the room.
        if let Event::Donation(d) = &event {
            if self.store.orders.contains(&d.order_id) {
                return vec![];
            }
        }
        let effects = self.room.handle(event, self.now);
        self.store.apply(&effects);
        effects
    }

    fn join(&mut self, c: &Connection) -> Vec<Effect> {
        self.handle(Event::Join {
            connection: c.clone(),
            stream_status: None,
        })
    }

    fn leave(&mut self, c: &Connection) -> Vec<Effect> {
        self.handle(Event::Leave { conn: c.conn.clone() })
    }

    fn send(&mut self, c: &Connection, frame: Value) -> Vec<Effect> {
        self.handle(Event::Text {
            from: c.clone(),
            text: frame.to_string(),
        })
    }

    fn say(&mut self, c: &Connection, text: &str) -> Vec<Effect> {
        self.send(c, json!({"type": "chat", "text": text}))
    }

    fn tick(&mut self, ms: i64) {
        self.now += ms;
    }

    /// The room rebuilt from storage and the given open sockets, as after an eviction.
    fn restart(&mut self, open: &[Connection]) {
        self.room = Room::restore(self.store.snapshot(self.now, open));
    }
}

#[derive(Default)]
struct FakeStore {
    rows: BTreeMap<i64, (StoredMessage, bool)>,
    bans: BTreeSet<UserId>,
    timeouts: BTreeMap<UserId, i64>,
    slow_mode_seconds: u32,
    status: Option<StreamStatus>,
    orders: BTreeSet<String>,
    published_viewers: Option<u32>,
    alarm_at: Option<i64>,
    flush_at: Option<i64>,
}

impl FakeStore {
    fn apply(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::StoreMessage(m) => {
                    assert!(
                        self.rows.insert(m.seq, (m.clone(), false)).is_none(),
                        "seq {} reused",
                        m.seq
                    );
                    if let Some(order) = &m.order_id {
                        self.orders.insert(order.clone());
                    }
                }
                Effect::PruneHistory { below_seq } => self.rows.retain(|seq, _| seq >= below_seq),
                Effect::DeleteMessage { seq } => {
                    if let Some(row) = self.rows.get_mut(seq) {
                        row.1 = true;
                    }
                }
                Effect::SaveBan { user_id } => {
                    self.bans.insert(user_id.clone());
                }
                Effect::LiftBan { user_id } => {
                    self.bans.remove(user_id);
                }
                Effect::SaveTimeout { user_id, until_ms } => {
                    self.timeouts.insert(user_id.clone(), *until_ms);
                }
                Effect::LiftTimeout { user_id } => {
                    self.timeouts.remove(user_id);
                }
                Effect::SaveSetting(Setting::SlowModeSeconds(s)) => self.slow_mode_seconds = *s,
                Effect::SaveSetting(Setting::Status(s)) => self.status = Some(*s),
                Effect::ScheduleAlarm { at_ms } => self.alarm_at = Some(*at_ms),
                Effect::ScheduleFlush { at_ms } => self.flush_at = Some(*at_ms),
                Effect::Send { .. } | Effect::Broadcast { .. } | Effect::Close { .. } => {}
                Effect::PublishViewers { viewers } => self.published_viewers = Some(*viewers),
            }
        }
    }

    fn snapshot(&self, now: i64, open: &[Connection]) -> Snapshot {
        let live: Vec<&StoredMessage> = self.rows.values().filter(|(_, d)| !d).map(|(m, _)| m).collect();
        let window = Snapshot::sends_window_ms(self.slow_mode_seconds);
        Snapshot {
            status: self.status,
            slow_mode_seconds: self.slow_mode_seconds,
            bans: self.bans.iter().cloned().collect(),
            timeouts: self.timeouts.iter().map(|(u, t)| (u.clone(), *t)).collect(),
            recent: live[live.len().saturating_sub(Snapshot::RECENT)..]
                .iter()
                .map(|m| serde_json::from_str::<HistoryItem>(&m.body).unwrap())
                .collect(),
            last_seq: self.rows.keys().last().copied().unwrap_or(0),
            recent_sends: self
                .rows
                .values()
                .filter(|(m, _)| m.kind == MessageKind::Chat && m.ts_ms > now - window)
                .map(|(m, _)| (m.user_id.clone().unwrap(), m.ts_ms))
                .collect(),
            connections: open.to_vec(),
        }
    }

    fn live_rows(&self) -> usize {
        self.rows.values().filter(|(_, d)| !d).count()
    }
}

fn parse(frame: &str) -> Value {
    serde_json::from_str(frame).unwrap()
}

/// Frames sent to one socket only.
fn sent_to(effects: &[Effect], c: &Connection) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, frame } if *to == c.conn => Some(parse(frame)),
            _ => None,
        })
        .collect()
}

fn broadcasts(effects: &[Effect]) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast { frame } => Some(parse(frame)),
            _ => None,
        })
        .collect()
}

fn broadcasts_of(effects: &[Effect], kind: &str) -> Vec<Value> {
    broadcasts(effects).into_iter().filter(|f| f["type"] == kind).collect()
}

/// The code of the one error frame sent to `c`, asserting the socket is not closed.
fn error_code(effects: &[Effect], c: &Connection) -> String {
    let errors: Vec<Value> = sent_to(effects, c)
        .into_iter()
        .filter(|f| f["type"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "expected one error frame, got {effects:?}");
    assert!(
        closes(effects).is_empty(),
        "a recoverable error must keep the socket open"
    );
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    errors[0]["code"].as_str().unwrap().to_string()
}

fn closes(effects: &[Effect]) -> Vec<(ConnId, u16)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Close { conn, code, .. } => Some((conn.clone(), *code)),
            _ => None,
        })
        .collect()
}

fn stored(effects: &[Effect]) -> Vec<&StoredMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StoreMessage(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn welcome_of(effects: &[Effect], c: &Connection) -> Value {
    let frames = sent_to(effects, c);
    assert_eq!(frames[0]["type"], "welcome", "the welcome comes first: {frames:?}");
    frames[0].clone()
}

// ---------------------------------------------------------------------------------------------------------------
// welcome

#[test]
fn a_joining_socket_gets_one_welcome_first_with_its_identity_and_the_room_state() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let effects = h.join(&viewer(3));
    let frames = sent_to(&effects, &viewer(3));
    assert_eq!(frames.len(), 1);
    let w = welcome_of(&effects, &viewer(3));
    assert_eq!(
        w["you"],
        json!({"id": uid(3).as_str(), "username": "viewer3", "role": "viewer"})
    );
    assert_eq!(w["viewers"], 2, "the joiner counts itself");
    assert_eq!(w["status"], "offline");
    assert_eq!(w["slow_mode_seconds"], 0);
    assert_eq!(w["history"], json!([]));
}

#[test]
fn an_anonymous_welcome_has_a_null_id_and_username_and_the_host_is_called_host() {
    let mut h = Harness::new();
    let w = welcome_of(&h.join(&anonymous(9)), &anonymous(9));
    assert_eq!(w["you"], json!({"id": null, "username": null, "role": "anonymous"}));
    let w = welcome_of(&h.join(&host()), &host());
    assert_eq!(w["you"]["role"], "host");
}

#[test]
fn the_welcome_carries_the_last_50_chat_and_donation_entries_oldest_first() {
    let mut h = Harness::new();
    h.join(&host());
    for i in 0..60 {
        h.say(&host(), &format!("message {i}"));
    }
    h.handle(Event::Donation(donation("order-1", 10_000)));
    let w = welcome_of(&h.join(&viewer(2)), &viewer(2));
    let history = w["history"].as_array().unwrap();
    assert_eq!(history.len(), 50);
    assert_eq!(history[0]["text"], "message 11");
    assert_eq!(history[48]["text"], "message 59");
    assert_eq!(history[49]["type"], "donation");
    assert_eq!(history[49]["amount"], 10_000);
}

#[test]
fn the_welcome_shows_the_upgrade_status_until_the_room_is_told_one() {
    let mut h = Harness::new();
    let effects = h.handle(Event::Join {
        connection: viewer(2),
        stream_status: Some(StreamStatus::Live),
    });
    assert_eq!(welcome_of(&effects, &viewer(2))["status"], "live");
    h.handle(Event::Status(StreamStatus::Offline));
    let effects = h.handle(Event::Join {
        connection: viewer(3),
        stream_status: Some(StreamStatus::Live),
    });
    assert_eq!(
        welcome_of(&effects, &viewer(3))["status"],
        "offline",
        "a status the worker posted wins over a possibly stale upgrade header"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// chat

#[test]
fn a_message_is_stored_and_broadcast_once_with_an_id_author_and_timestamp() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let effects = h.say(&viewer(2), "  halo semua  ");
    let frames = broadcasts(&effects);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        frames[0],
        json!({"type": "chat", "id": "1", "user": {"id": uid(2).as_str(), "username": "viewer2"},
               "text": "halo semua", "ts": "2026-01-01T00:00:00.000Z"})
    );
    assert_eq!(stored(&effects).len(), 1);
    assert_eq!(stored(&effects)[0].user_id, Some(uid(2)));
    assert!(
        sent_to(&effects, &viewer(2)).is_empty(),
        "the sender learns of success from the broadcast"
    );
}

#[test]
fn the_stored_body_is_the_broadcast_text_serialized_once() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let effects = h.say(&viewer(2), "sekali saja");
    let body = &stored(&effects)[0].body;
    let broadcast = effects.iter().find_map(|e| match e {
        Effect::Broadcast { frame } => Some(frame),
        _ => None,
    });
    assert_eq!(Some(body), broadcast);
}

#[test]
fn message_ids_increase_in_sending_order() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.join(&viewer(3));
    let a = broadcasts(&h.say(&viewer(2), "a"));
    let b = broadcasts(&h.say(&viewer(3), "b"));
    let c = broadcasts(&h.say(&viewer(2), "c"));
    let ids: Vec<&str> = [&a, &b, &c].iter().map(|f| f[0]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
}

#[test]
fn html_and_script_text_is_stored_and_broadcast_exactly_as_sent() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let payload = r#"<script>alert("x")</script><img src=x onerror=alert(1)> &amp; 'quotes'"#;
    let effects = h.say(&viewer(2), payload);
    assert_eq!(broadcasts(&effects)[0]["text"], payload);
    let back: HistoryItem = serde_json::from_str(&stored(&effects)[0].body).unwrap();
    match back {
        HistoryItem::Chat(m) => assert_eq!(m.text.as_str(), payload),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_anonymous_socket_reads_but_gets_not_authenticated_when_it_sends() {
    let mut h = Harness::new();
    h.join(&anonymous(9));
    h.join(&viewer(2));
    let effects = h.say(&anonymous(9), "hi");
    assert_eq!(error_code(&effects, &anonymous(9)), "not_authenticated");
    assert!(stored(&effects).is_empty() && broadcasts(&effects).is_empty());
    let effects = h.say(&viewer(2), "hello anon");
    assert_eq!(
        broadcasts_of(&effects, "chat").len(),
        1,
        "broadcasts reach every socket, anonymous ones too"
    );
}

#[test]
fn invalid_texts_answer_their_own_error_code_and_store_nothing() {
    let cases = [
        ("", "empty"),
        ("   \u{3000} ", "empty"),
        (&*"x".repeat(501), "too_long"),
        ("line one\nline two", "bad_frame"),
        ("bell \u{7}", "bad_frame"),
    ];
    for (text, code) in cases {
        let mut h = Harness::new();
        h.join(&viewer(2));
        let effects = h.say(&viewer(2), text);
        assert_eq!(error_code(&effects, &viewer(2)), code, "{text:?}");
        assert!(stored(&effects).is_empty(), "{text:?} was stored");
    }
}

#[test]
fn malformed_frames_answer_bad_frame_and_keep_the_socket_open() {
    let frames = [
        "not json",
        "{",
        "[1,2]",
        "{}",
        r#"{"type":"shout","text":"x"}"#,
        r#"{"type":"chat"}"#,
        r#"{"type":"chat","text":["x"]}"#,
        r#"{"type":"slow_mode","seconds":-5}"#,
    ];
    for raw in frames {
        let mut h = Harness::new();
        h.join(&viewer(2));
        let effects = h.handle(Event::Text {
            from: viewer(2),
            text: raw.into(),
        });
        assert_eq!(error_code(&effects, &viewer(2)), "bad_frame", "{raw}");
    }
}

#[test]
fn a_binary_frame_answers_bad_frame() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let effects = h.handle(Event::Binary {
        from: viewer(2),
        len: 10,
    });
    assert_eq!(error_code(&effects, &viewer(2)), "bad_frame");
}

#[test]
fn an_oversized_frame_closes_the_socket_with_1009_and_updates_presence() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.join(&viewer(3));
    h.tick(2_000);
    h.handle(Event::Alarm);
    h.tick(5_000);
    let big = format!(r#"{{"type":"chat","text":"{}"}}"#, "a".repeat(MAX_CLIENT_FRAME_BYTES));
    let effects = h.handle(Event::Text {
        from: viewer(2),
        text: big,
    });
    assert_eq!(closes(&effects), vec![(viewer(2).conn, CLOSE_TOO_BIG)]);
    assert!(stored(&effects).is_empty());
    assert_eq!(
        broadcasts_of(&effects, "presence"),
        vec![json!({"type": "presence", "viewers": 1})]
    );
    let effects = h.handle(Event::Binary {
        from: viewer(3),
        len: 1_000_000,
    });
    assert_eq!(closes(&effects), vec![(viewer(3).conn, CLOSE_TOO_BIG)]);
}

#[test]
fn a_frame_just_under_the_size_limit_is_read_normally() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let padding = " ".repeat(MAX_CLIENT_FRAME_BYTES - 40);
    let raw = format!(r#"{{"type":"chat","text":"ok"}}{padding}"#);
    assert!(raw.len() <= MAX_CLIENT_FRAME_BYTES);
    let effects = h.handle(Event::Text {
        from: viewer(2),
        text: raw,
    });
    assert_eq!(broadcasts_of(&effects, "chat").len(), 1);
}

#[test]
fn frames_still_in_flight_from_a_socket_the_room_closed_are_dropped() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    h.send(&host(), json!({"type": "ban", "user_id": uid(2).as_str()}));
    let effects = h.say(&viewer(2), "one more");
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(h.room.viewers(), 1);
}

// ---------------------------------------------------------------------------------------------------------------
// rate limit and slow mode

#[test]
fn a_user_may_send_a_burst_of_five_then_one_per_second() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    for i in 0..5 {
        assert_eq!(
            broadcasts(&h.say(&viewer(2), &format!("{i}"))).len(),
            1,
            "message {i} of the burst"
        );
    }
    let effects = h.say(&viewer(2), "sixth");
    assert_eq!(error_code(&effects, &viewer(2)), "rate_limited");
    assert_eq!(sent_to(&effects, &viewer(2))[0]["retry_after_ms"], 1000);
    h.tick(999);
    assert_eq!(error_code(&h.say(&viewer(2), "too soon"), &viewer(2)), "rate_limited");
    h.tick(1);
    assert_eq!(broadcasts(&h.say(&viewer(2), "one a second")).len(), 1);
    assert_eq!(error_code(&h.say(&viewer(2), "again"), &viewer(2)), "rate_limited");
    h.tick(5_000);
    for i in 0..5 {
        assert_eq!(
            broadcasts(&h.say(&viewer(2), &format!("b{i}"))).len(),
            1,
            "the burst refills after idling"
        );
    }
}

#[test]
fn refused_messages_do_not_use_up_the_allowance() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    for _ in 0..20 {
        h.say(&viewer(2), "");
    }
    for i in 0..5 {
        assert_eq!(broadcasts(&h.say(&viewer(2), &format!("{i}"))).len(), 1);
    }
}

#[test]
fn the_limit_is_per_user_across_their_sockets_and_independent_between_users() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.join(&second_socket_of(2));
    h.join(&viewer(3));
    for i in 0..5 {
        let c = if i % 2 == 0 { viewer(2) } else { second_socket_of(2) };
        assert_eq!(broadcasts(&h.say(&c, "x")).len(), 1);
    }
    assert_eq!(
        error_code(&h.say(&second_socket_of(2), "x"), &second_socket_of(2)),
        "rate_limited"
    );
    assert_eq!(broadcasts(&h.say(&viewer(3), "my own allowance")).len(), 1);
}

#[test]
fn the_host_is_exempt_from_the_rate_limit_and_slow_mode() {
    let mut h = Harness::new();
    h.join(&host());
    h.send(&host(), json!({"type": "slow_mode", "seconds": 30}));
    for i in 0..20 {
        assert_eq!(
            broadcasts(&h.say(&host(), &format!("{i}"))).len(),
            1,
            "host message {i}"
        );
    }
}

#[test]
fn the_host_turns_slow_mode_on_and_off_and_everyone_is_told() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    let effects = h.send(&host(), json!({"type": "slow_mode", "seconds": 10}));
    assert_eq!(broadcasts(&effects), vec![json!({"type": "slow_mode", "seconds": 10})]);
    assert!(effects.contains(&Effect::SaveSetting(Setting::SlowModeSeconds(10))));
    assert_eq!(welcome_of(&h.join(&viewer(3)), &viewer(3))["slow_mode_seconds"], 10);
    let effects = h.send(&host(), json!({"type": "slow_mode", "seconds": 0}));
    assert_eq!(broadcasts(&effects), vec![json!({"type": "slow_mode", "seconds": 0})]);
}

#[test]
fn slow_mode_allows_one_message_per_interval_per_user() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    h.join(&viewer(3));
    h.send(&host(), json!({"type": "slow_mode", "seconds": 10}));
    assert_eq!(broadcasts(&h.say(&viewer(2), "first")).len(), 1);
    let effects = h.say(&viewer(2), "second");
    assert_eq!(error_code(&effects, &viewer(2)), "rate_limited");
    assert_eq!(sent_to(&effects, &viewer(2))[0]["retry_after_ms"], 10_000);
    assert_eq!(broadcasts(&h.say(&viewer(3), "someone else")).len(), 1);
    h.tick(9_999);
    assert_eq!(error_code(&h.say(&viewer(2), "almost"), &viewer(2)), "rate_limited");
    h.tick(1);
    assert_eq!(broadcasts(&h.say(&viewer(2), "now")).len(), 1);
}

#[test]
fn a_slow_mode_out_of_range_answers_bad_frame() {
    let mut h = Harness::new();
    h.join(&host());
    let effects = h.send(&host(), json!({"type": "slow_mode", "seconds": 3601}));
    assert_eq!(error_code(&effects, &host()), "bad_frame");
    assert_eq!(h.room.slow_mode_seconds(), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// moderation

#[test]
fn only_the_host_may_moderate() {
    let frames = [
        json!({"type": "delete", "id": "1"}),
        json!({"type": "timeout", "user_id": uid(3).as_str(), "seconds": 60}),
        json!({"type": "ban", "user_id": uid(3).as_str()}),
        json!({"type": "unban", "user_id": uid(3).as_str()}),
        json!({"type": "slow_mode", "seconds": 5}),
    ];
    for frame in frames {
        let mut h = Harness::new();
        h.join(&viewer(2));
        h.join(&viewer(3));
        h.join(&anonymous(9));
        h.say(&viewer(3), "target");
        let effects = h.send(&viewer(2), frame.clone());
        assert_eq!(error_code(&effects, &viewer(2)), "forbidden", "{frame}");
        let effects = h.send(&anonymous(9), frame.clone());
        assert_eq!(error_code(&effects, &anonymous(9)), "not_authenticated", "{frame}");
        assert!(h.store.bans.is_empty() && h.store.timeouts.is_empty() && h.store.live_rows() == 1);
    }
}

#[test]
fn the_host_deletes_a_message_for_everyone_and_it_leaves_the_history() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    h.say(&viewer(2), "keep");
    h.say(&viewer(2), "spam");
    let effects = h.send(&host(), json!({"type": "delete", "id": "2"}));
    assert_eq!(broadcasts(&effects), vec![json!({"type": "deleted", "id": "2"})]);
    assert!(effects.contains(&Effect::DeleteMessage { seq: 2 }));
    let w = welcome_of(&h.join(&viewer(3)), &viewer(3));
    let texts: Vec<&Value> = w["history"].as_array().unwrap().iter().map(|m| &m["text"]).collect();
    assert_eq!(texts, [&json!("keep")]);
}

#[test]
fn the_host_can_delete_a_donation_entry_too() {
    let mut h = Harness::new();
    h.join(&host());
    h.handle(Event::Donation(donation("order-9", 5_000)));
    let effects = h.send(&host(), json!({"type": "delete", "id": "1"}));
    assert_eq!(broadcasts(&effects), vec![json!({"type": "deleted", "id": "1"})]);
    assert_eq!(h.store.live_rows(), 0);
}

#[test]
fn an_operator_deletes_a_message_for_everyone_and_an_unknown_id_deletes_nothing() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    h.say(&viewer(2), "keep");
    h.say(&viewer(2), "unlawful");
    let (effects, deleted) = h.room.operator_delete("2", h.now);
    assert!(deleted);
    assert!(effects.contains(&Effect::DeleteMessage { seq: 2 }));
    assert_eq!(broadcasts(&effects), vec![json!({"type": "deleted", "id": "2"})]);
    for id in ["9", "abc", ""] {
        let (effects, deleted) = h.room.operator_delete(id, h.now);
        assert!(!deleted && effects.is_empty(), "{id:?}: {effects:?}");
    }
}

#[test]
fn deleting_an_unknown_or_malformed_id_answers_bad_frame() {
    let mut h = Harness::new();
    h.join(&host());
    h.say(&host(), "only one");
    for id in ["2", "0", "abc", "-1", ""] {
        let effects = h.send(&host(), json!({"type": "delete", "id": id}));
        assert_eq!(error_code(&effects, &host()), "bad_frame", "{id:?}");
    }
}

#[test]
fn a_timed_out_user_is_rate_limited_until_the_timeout_ends() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    let effects = h.send(
        &host(),
        json!({"type": "timeout", "user_id": uid(2).as_str(), "seconds": 60}),
    );
    assert!(effects.contains(&Effect::SaveTimeout {
        user_id: uid(2),
        until_ms: T0 + 60_000
    }));
    h.tick(30_000);
    let effects = h.say(&viewer(2), "let me talk");
    assert_eq!(error_code(&effects, &viewer(2)), "rate_limited");
    assert_eq!(sent_to(&effects, &viewer(2))[0]["retry_after_ms"], 30_000);
    h.tick(30_000);
    let effects = h.say(&viewer(2), "back");
    assert_eq!(broadcasts(&effects).len(), 1);
    assert!(
        effects.contains(&Effect::LiftTimeout { user_id: uid(2) }),
        "an expired timeout is cleaned up"
    );
}

#[test]
fn a_timeout_of_zero_seconds_lifts_a_timeout() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    h.send(
        &host(),
        json!({"type": "timeout", "user_id": uid(2).as_str(), "seconds": 600}),
    );
    let effects = h.send(
        &host(),
        json!({"type": "timeout", "user_id": uid(2).as_str(), "seconds": 0}),
    );
    assert!(effects.contains(&Effect::LiftTimeout { user_id: uid(2) }));
    assert_eq!(broadcasts(&h.say(&viewer(2), "free")).len(), 1);
}

#[test]
fn a_timeout_longer_than_seven_days_answers_bad_frame() {
    let mut h = Harness::new();
    h.join(&host());
    let effects = h.send(
        &host(),
        json!({"type": "timeout", "user_id": uid(2).as_str(), "seconds": 7 * 24 * 3600 + 1}),
    );
    assert_eq!(error_code(&effects, &host()), "bad_frame");
}

#[test]
fn a_banned_user_is_disconnected_with_1008_and_cannot_send_after_reconnecting() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    h.join(&second_socket_of(2));
    h.join(&viewer(3));
    let effects = h.send(&host(), json!({"type": "ban", "user_id": uid(2).as_str()}));
    assert!(effects.contains(&Effect::SaveBan { user_id: uid(2) }));
    let mut closed = closes(&effects);
    closed.sort();
    let mut want = vec![(viewer(2).conn, CLOSE_POLICY), (second_socket_of(2).conn, CLOSE_POLICY)];
    want.sort();
    assert_eq!(closed, want, "every socket of the banned user, and only theirs");
    h.leave(&viewer(2));
    h.leave(&second_socket_of(2));
    let reconnect = Connection {
        conn: conn_id(77),
        ..viewer(2)
    };
    let effects = h.join(&reconnect);
    assert_eq!(
        welcome_of(&effects, &reconnect)["type"],
        "welcome",
        "a banned user may still read"
    );
    let effects = h.say(&reconnect, "I'm back");
    assert_eq!(error_code(&effects, &reconnect), "banned");
    assert!(stored(&effects).is_empty());
}

#[test]
fn an_unban_lets_the_user_chat_again() {
    let mut h = Harness::new();
    h.join(&host());
    h.send(&host(), json!({"type": "ban", "user_id": uid(2).as_str()}));
    let effects = h.send(&host(), json!({"type": "unban", "user_id": uid(2).as_str()}));
    assert!(effects.contains(&Effect::LiftBan { user_id: uid(2) }));
    h.join(&viewer(2));
    assert_eq!(broadcasts(&h.say(&viewer(2), "thanks")).len(), 1);
}

#[test]
fn the_host_cannot_ban_or_time_out_themselves() {
    let mut h = Harness::new();
    h.join(&host());
    for frame in [
        json!({"type": "ban", "user_id": uid(1).as_str()}),
        json!({"type": "timeout", "user_id": uid(1).as_str(), "seconds": 10}),
    ] {
        let effects = h.send(&host(), frame.clone());
        assert_eq!(error_code(&effects, &host()), "bad_frame", "{frame}");
    }
    assert!(h.store.bans.is_empty() && h.store.timeouts.is_empty());
}

#[test]
fn moderation_naming_a_malformed_user_id_answers_bad_frame() {
    let mut h = Harness::new();
    h.join(&host());
    for frame in [
        json!({"type": "ban", "user_id": "../admin"}),
        json!({"type": "unban", "user_id": ""}),
        json!({"type": "timeout", "user_id": "ABC", "seconds": 10}),
    ] {
        let effects = h.send(&host(), frame.clone());
        assert_eq!(error_code(&effects, &host()), "bad_frame", "{frame}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// presence

#[test]
fn the_first_join_sends_presence_at_once() {
    let mut h = Harness::new();
    let effects = h.join(&viewer(2));
    assert_eq!(broadcasts(&effects), vec![json!({"type": "presence", "viewers": 1})]);
}

#[test]
fn joins_within_two_seconds_fold_into_one_trailing_update_at_the_alarm() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let mut alarms = Vec::new();
    for n in 3..40 {
        h.tick(10);
        let effects = h.join(&viewer(n));
        assert!(
            broadcasts_of(&effects, "presence").is_empty(),
            "join {n} sent presence inside the window"
        );
        alarms.extend(
            effects
                .iter()
                .filter(|e| matches!(e, Effect::ScheduleAlarm { .. }))
                .cloned(),
        );
    }
    assert_eq!(
        alarms,
        vec![Effect::ScheduleAlarm { at_ms: T0 + 2000 }],
        "one alarm for the whole window"
    );
    h.now = T0 + 2000;
    let effects = h.handle(Event::Alarm);
    assert_eq!(broadcasts(&effects), vec![json!({"type": "presence", "viewers": 38})]);
}

#[test]
fn presence_frames_never_come_closer_than_two_seconds_apart() {
    let mut h = Harness::new();
    let mut sent_at = Vec::new();
    let mut pending_alarm: Option<i64> = None;
    for step in 0..400 {
        h.tick(37);
        if pending_alarm.is_some_and(|at| h.now >= at) {
            pending_alarm = None;
            let effects = h.handle(Event::Alarm);
            if !broadcasts_of(&effects, "presence").is_empty() {
                sent_at.push(h.now);
            }
            for e in &effects {
                if let Effect::ScheduleAlarm { at_ms } = e {
                    pending_alarm = Some(*at_ms);
                }
            }
        }
        let c = viewer((step % 50) as u8 + 2);
        let effects = if step % 3 == 2 { h.leave(&c) } else { h.join(&c) };
        if !broadcasts_of(&effects, "presence").is_empty() {
            sent_at.push(h.now);
        }
        for e in &effects {
            if let Effect::ScheduleAlarm { at_ms } = e {
                pending_alarm = Some(*at_ms);
            }
        }
    }
    assert!(sent_at.len() > 3);
    for pair in sent_at.windows(2) {
        assert!(pair[1] - pair[0] >= 2000, "presence at {} and {}", pair[0], pair[1]);
    }
}

#[test]
fn a_join_and_a_leave_that_cancel_out_send_nothing_at_the_alarm() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.tick(100);
    h.join(&viewer(3));
    h.leave(&viewer(3));
    h.now = T0 + 2000;
    assert!(broadcasts(&h.handle(Event::Alarm)).is_empty());
}

#[test]
fn every_presence_frame_publishes_the_same_count_for_d1() {
    let mut h = Harness::new();
    let effects = h.join(&viewer(2));
    assert!(effects.contains(&Effect::PublishViewers { viewers: 1 }));
    h.join(&viewer(3));
    assert_eq!(
        h.store.published_viewers,
        Some(1),
        "inside the window nothing is published"
    );
    h.tick(2000);
    h.handle(Event::Alarm);
    assert_eq!(h.store.published_viewers, Some(2));
    h.tick(2000);
    let effects = h.leave(&viewer(2));
    assert_eq!(
        effects
            .iter()
            .filter(|e| matches!(e, Effect::PublishViewers { .. }))
            .count(),
        broadcasts_of(&effects, "presence").len()
    );
    assert_eq!(h.store.published_viewers, Some(1));
}

#[test]
fn leaving_updates_presence() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.join(&viewer(3));
    h.tick(2000);
    assert_eq!(
        broadcasts(&h.handle(Event::Alarm)),
        vec![json!({"type": "presence", "viewers": 2})]
    );
    h.tick(3000);
    let effects = h.leave(&viewer(3));
    assert_eq!(broadcasts(&effects), vec![json!({"type": "presence", "viewers": 1})]);
    assert!(
        h.leave(&viewer(3)).is_empty(),
        "a second close report for the same socket changes nothing"
    );
}

#[test]
fn an_early_alarm_waits_for_the_end_of_the_window() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.tick(500);
    h.join(&viewer(3));
    let effects = h.handle(Event::Alarm);
    assert!(broadcasts(&effects).is_empty());
    assert_eq!(effects, vec![Effect::ScheduleAlarm { at_ms: T0 + 2000 }]);
}

#[test]
fn a_frame_from_a_socket_whose_join_was_lost_counts_it_in() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.tick(3000);
    let effects = h.say(&viewer(3), "I was here all along");
    assert_eq!(
        broadcasts_of(&effects, "presence"),
        vec![json!({"type": "presence", "viewers": 2})]
    );
    assert_eq!(broadcasts_of(&effects, "chat").len(), 1);
}

// ---------------------------------------------------------------------------------------------------------------
// donations and status

#[test]
fn a_donation_is_broadcast_stored_with_its_order_and_kept_in_history() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let effects = h.handle(Event::Donation(donation("order-1", 50_000)));
    assert_eq!(
        broadcasts(&effects),
        vec![
            json!({"type": "donation", "id": "1", "donor": "Sari", "amount": 50_000, "currency": "IDR",
                    "message": "semangat", "ts": "2026-01-01T00:00:00.000Z", "guest": false})
        ]
    );
    let rows = stored(&effects);
    assert_eq!(rows[0].kind, MessageKind::Donation);
    assert_eq!(rows[0].order_id.as_deref(), Some("order-1"));
}

#[test]
fn a_donation_posted_twice_is_delivered_once() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    assert_eq!(
        broadcasts(&h.handle(Event::Donation(donation("order-1", 50_000)))).len(),
        1
    );
    assert!(h.handle(Event::Donation(donation("order-1", 50_000))).is_empty());
    assert_eq!(
        broadcasts(&h.handle(Event::Donation(donation("order-2", 50_000)))).len(),
        1
    );
}

#[test]
fn a_donation_is_still_delivered_once_after_a_restore() {
    let mut h = Harness::new();
    h.handle(Event::Donation(donation("order-1", 50_000)));
    h.restart(&[]);
    assert!(h.handle(Event::Donation(donation("order-1", 50_000))).is_empty());
}

#[test]
fn a_status_change_is_saved_and_broadcast_once() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    let effects = h.handle(Event::Status(StreamStatus::Live));
    assert_eq!(broadcasts(&effects), vec![json!({"type": "status", "status": "live"})]);
    assert!(effects.contains(&Effect::SaveSetting(Setting::Status(StreamStatus::Live))));
    assert!(
        h.handle(Event::Status(StreamStatus::Live)).is_empty(),
        "a repeated status is not news"
    );
    let effects = h.handle(Event::Status(StreamStatus::Offline));
    assert_eq!(
        broadcasts(&effects),
        vec![json!({"type": "status", "status": "offline"})]
    );
}

// ---------------------------------------------------------------------------------------------------------------
// history bounds and restore

#[test]
fn storage_keeps_only_the_newest_1000_messages() {
    let mut h = Harness::new();
    h.join(&host());
    for i in 0..1005 {
        let effects = h.say(&host(), &format!("m{i}"));
        let prunes: Vec<&Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::PruneHistory { .. }))
            .collect();
        assert_eq!(prunes.len(), usize::from(i >= HISTORY_KEEP as usize), "message {i}");
    }
    assert_eq!(h.store.rows.len(), 1000);
    assert_eq!(h.store.rows.keys().next(), Some(&6));
    let effects = h.send(&host(), json!({"type": "delete", "id": "5"}));
    assert_eq!(
        error_code(&effects, &host()),
        "bad_frame",
        "a pruned message cannot be deleted"
    );
}

#[test]
fn bans_timeouts_slow_mode_status_and_history_survive_a_rebuild_from_storage() {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    h.join(&viewer(3));
    h.join(&viewer(4));
    h.say(&viewer(2), "before the nap");
    h.handle(Event::Status(StreamStatus::Live));
    h.send(&host(), json!({"type": "ban", "user_id": uid(3).as_str()}));
    h.send(
        &host(),
        json!({"type": "timeout", "user_id": uid(4).as_str(), "seconds": 600}),
    );
    h.send(&host(), json!({"type": "slow_mode", "seconds": 5}));
    h.leave(&viewer(3));
    h.tick(60_000);
    h.restart(&[host(), viewer(2), viewer(4)]);
    assert_eq!(h.room.viewers(), 3, "the open sockets are counted again");
    let effects = h.join(&viewer(3));
    let w = welcome_of(&effects, &viewer(3));
    assert_eq!(w["history"][0]["text"], "before the nap");
    assert_eq!(w["status"], "live");
    assert_eq!(w["slow_mode_seconds"], 5);
    assert_eq!(error_code(&h.say(&viewer(3), "hello?"), &viewer(3)), "banned");
    assert_eq!(error_code(&h.say(&viewer(4), "hello?"), &viewer(4)), "rate_limited");
    assert_eq!(broadcasts_of(&h.say(&viewer(2), "after the nap"), "chat")[0]["id"], "2");
}

#[test]
fn a_rebuild_does_not_hand_out_a_fresh_burst_or_forget_slow_mode() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    for _ in 0..5 {
        h.say(&viewer(2), "x");
    }
    h.restart(&[viewer(2)]);
    assert_eq!(error_code(&h.say(&viewer(2), "x"), &viewer(2)), "rate_limited");

    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    h.send(&host(), json!({"type": "slow_mode", "seconds": 60}));
    h.say(&viewer(2), "once");
    h.tick(30_000);
    h.restart(&[host(), viewer(2)]);
    let effects = h.say(&viewer(2), "twice");
    assert_eq!(error_code(&effects, &viewer(2)), "rate_limited");
    assert_eq!(sent_to(&effects, &viewer(2))[0]["retry_after_ms"], 30_000);
}

#[test]
fn message_ids_are_never_reused_even_when_the_newest_is_deleted_before_a_rebuild() {
    let mut h = Harness::new();
    h.join(&host());
    h.say(&host(), "one");
    h.say(&host(), "two");
    h.send(&host(), json!({"type": "delete", "id": "2"}));
    h.restart(&[host()]);
    assert_eq!(broadcasts_of(&h.say(&host(), "three"), "chat")[0]["id"], "3");
}

#[test]
fn a_rebuilt_room_sends_presence_at_its_first_chance() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.join(&viewer(3));
    h.restart(&[viewer(2), viewer(3)]);
    let effects = h.handle(Event::Alarm);
    assert_eq!(broadcasts(&effects), vec![json!({"type": "presence", "viewers": 2})]);
}

// ---------------------------------------------------------------------------------------------------------------
// coalescing under load

/// `n` anonymous readers, enough to make the room big (their ids do not collide with the named sockets above).
fn crowd(n: u8) -> Vec<Connection> {
    (0..n)
        .map(|i| Connection {
            conn: ConnId::generate([i, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
            client: ClientAddress::parse(&format!("198.51.100.{i}")).unwrap(),
            identity: Identity::Anonymous,
        })
        .collect()
}

/// A room of the host, viewer 2 and enough readers to coalesce, with the first message already sent (so a
/// window is open from `T0`).
fn big_room() -> Harness {
    let mut h = Harness::new();
    h.join(&host());
    h.join(&viewer(2));
    for c in crowd(COALESCE_MIN_SOCKETS as u8) {
        h.join(&c);
    }
    h.tick(PRESENCE_INTERVAL_MS);
    h.handle(Event::Alarm);
    assert_eq!(flushes(&h.say(&host(), "first")), vec![h.now]);
    assert_eq!(broadcasts_of(&h.handle(Event::Flush), "chat").len(), 1);
    h
}

fn flushes(effects: &[Effect]) -> Vec<i64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ScheduleFlush { at_ms } => Some(*at_ms),
            _ => None,
        })
        .collect()
}

#[test]
fn a_message_into_a_quiet_big_room_is_flushed_without_waiting_as_a_plain_frame() {
    let mut h = big_room();
    h.tick(COALESCE_WINDOW_MS);
    let effects = h.say(&host(), "second");
    assert_eq!(
        flushes(&effects),
        vec![h.now],
        "the flush is due at once: the next turn of the event loop"
    );
    let effects = h.handle(Event::Flush);
    assert_eq!(broadcasts_of(&effects, "chat")[0]["text"], "second");
    assert_eq!(stored(&effects).len(), 1);
}

#[test]
fn messages_that_queue_up_while_a_big_room_is_busy_go_out_together() {
    // The clock stands still while the object works: the queued messages arrive "long" after the last flush, but
    // before the timer of the first one has fired.
    let mut h = big_room();
    h.tick(500);
    let first = h.say(&host(), "one");
    assert_eq!(flushes(&first), vec![h.now]);
    // Only the first held message asks for a flush; the shell can still tell that the later ones are held.
    assert!(flushes(&h.say(&viewer(2), "two")).is_empty());
    assert!(h.room.holds_messages());
    h.say(&host(), "three");
    let frames = broadcasts(&h.handle(Event::Flush));
    assert!(!h.room.holds_messages());
    assert_eq!(frames.len(), 1);
    let texts: Vec<&Value> = frames[0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["text"])
        .collect();
    assert_eq!(texts, vec!["one", "two", "three"]);
}

#[test]
fn a_small_room_never_holds_a_message() {
    let mut h = Harness::new();
    h.join(&host());
    for text in ["a", "b", "c"] {
        let effects = h.say(&host(), text);
        assert_eq!(broadcasts_of(&effects, "chat")[0]["text"], text);
        assert!(flushes(&effects).is_empty());
    }
}

#[test]
fn messages_within_the_window_are_held_then_stored_together_and_sent_as_one_batch_in_order() {
    let mut h = big_room();
    let start = h.now;
    h.tick(10);
    let first = h.say(&host(), "two");
    assert!(broadcasts(&first).is_empty() && stored(&first).is_empty(), "{first:?}");
    assert_eq!(flushes(&first), vec![start + COALESCE_WINDOW_MS]);
    h.tick(10);
    let second = h.say(&viewer(2), "three");
    assert!(
        broadcasts(&second).is_empty() && flushes(&second).is_empty(),
        "one flush is asked for per window: {second:?}"
    );

    h.tick(COALESCE_WINDOW_MS - 20);
    let effects = h.handle(Event::Flush);
    let rows: Vec<i64> = stored(&effects).iter().map(|m| m.seq).collect();
    assert_eq!(rows, vec![2, 3]);
    let frames = broadcasts(&effects);
    assert_eq!(frames.len(), 1, "one frame per socket for the whole batch");
    assert_eq!(frames[0]["type"], "batch");
    let texts: Vec<&Value> = frames[0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["text"])
        .collect();
    assert_eq!(texts, vec!["two", "three"]);
    assert_eq!(frames[0]["frames"][0]["type"], "chat");
    assert_eq!(frames[0]["frames"][1]["user"]["username"], "viewer2");
    // Each entry is the stored body, as a lone chat frame would have been.
    assert_eq!(
        serde_json::to_string(&frames[0]["frames"][0]).unwrap(),
        serde_json::to_string(&parse(&stored(&effects)[0].body)).unwrap()
    );
    assert!(
        broadcasts(&h.handle(Event::Flush)).is_empty(),
        "a second flush has nothing to send"
    );
}

#[test]
fn under_steady_load_a_batch_goes_out_once_per_window() {
    let mut h = big_room();
    let mut batches = 0;
    let mut delivered = 0;
    let mut flush_at = None;
    for i in 0..100 {
        h.tick(5);
        if flush_at.is_some_and(|at| h.now >= at) {
            let effects = h.handle(Event::Flush);
            flush_at = None;
            batches += broadcasts(&effects).len();
            delivered += broadcasts(&effects)[0]["frames"].as_array().map_or(1, Vec::len);
        }
        let effects = h.say(&host(), &format!("m{i}"));
        delivered += broadcasts_of(&effects, "chat").len();
        if let Some(at) = flushes(&effects).first() {
            flush_at = Some(*at);
        }
    }
    h.tick(COALESCE_WINDOW_MS);
    let effects = h.handle(Event::Flush);
    batches += broadcasts(&effects).len();
    delivered += broadcasts(&effects)[0]["frames"].as_array().map_or(1, Vec::len);
    assert_eq!(delivered, 100, "every message exactly once");
    assert!(
        batches <= 11,
        "500 ms of messages in at most one frame per 50 ms window: {batches}"
    );
}

#[test]
fn held_messages_go_out_before_a_moderation_frame_that_follows_them() {
    let mut h = big_room();
    h.tick(10);
    h.say(&viewer(2), "oops");
    let effects = h.send(&host(), json!({"type": "delete", "id": "2"}));
    let kinds: Vec<Value> = broadcasts(&effects).into_iter().map(|f| f["type"].clone()).collect();
    assert_eq!(kinds, vec!["chat", "deleted"], "{effects:?}");
    assert_eq!(stored(&effects)[0].seq, 2);
    assert!(h.store.rows[&2].1, "the stored row is the deleted one");
}

#[test]
fn a_joining_socket_gets_its_welcome_before_the_held_messages_and_each_message_once() {
    let mut h = big_room();
    h.tick(10);
    h.say(&host(), "held");
    let effects = h.join(&viewer(3));
    let w = welcome_of(&effects, &viewer(3));
    let history: Vec<&Value> = w["history"].as_array().unwrap().iter().map(|i| &i["text"]).collect();
    assert_eq!(history, vec!["first"], "the welcome shows what was sent before it");
    let position = |pred: &dyn Fn(&Effect) -> bool| effects.iter().position(pred).unwrap();
    let welcome_at = position(&|e| matches!(e, Effect::Send { .. }));
    let broadcast_at = position(&|e| matches!(e, Effect::Broadcast { frame } if frame.contains("held")));
    assert!(welcome_at < broadcast_at, "{effects:?}");
}

#[test]
fn a_donation_is_never_held_and_goes_out_after_the_held_chat() {
    let mut h = big_room();
    h.tick(10);
    h.say(&host(), "before");
    let effects = h.handle(Event::Donation(donation("order-9", 10_000)));
    let kinds: Vec<Value> = broadcasts(&effects).into_iter().map(|f| f["type"].clone()).collect();
    assert_eq!(kinds, vec!["chat", "donation"]);
    assert!(
        h.store.orders.contains("order-9"),
        "the order is stored when the post is answered"
    );
}

#[test]
fn every_other_event_sends_held_chat_first() {
    for event in [
        Event::Status(StreamStatus::Live),
        Event::Alarm,
        Event::Leave {
            conn: crowd(1)[0].conn.clone(),
        },
    ] {
        let mut h = big_room();
        h.tick(10);
        h.say(&host(), "held");
        let effects = h.handle(event.clone());
        assert_eq!(
            broadcasts(&effects).first().map(|f| f["text"].clone()),
            Some(json!("held")),
            "{event:?}: {effects:?}"
        );
    }
}

#[test]
fn flushed_batches_are_history_after_a_rebuild() {
    let mut h = big_room();
    h.tick(10);
    h.say(&host(), "two");
    h.say(&host(), "three");
    h.tick(COALESCE_WINDOW_MS);
    h.handle(Event::Flush);
    h.restart(&[host()]);
    let w = welcome_of(&h.join(&viewer(3)), &viewer(3));
    let history: Vec<&Value> = w["history"].as_array().unwrap().iter().map(|i| &i["text"]).collect();
    assert_eq!(history, vec!["first", "two", "three"]);
}

// ---------------------------------------------------------------------------------------------------------------
// sockets per address and the viewer count

/// Anonymous socket `i` from one shared address.
fn from_one_address(i: u8) -> Connection {
    Connection {
        conn: ConnId::generate([i, 9, 9, 9, 9, 9, 9, 9, 9, 9]),
        client: addr(200),
        identity: Identity::Anonymous,
    }
}

#[test]
fn one_address_may_hold_twenty_sockets_and_the_next_gets_a_clear_error_then_1008() {
    let mut h = Harness::new();
    for i in 0..MAX_SOCKETS_PER_ADDRESS as u8 {
        let c = from_one_address(i);
        assert_eq!(welcome_of(&h.join(&c), &c)["type"], "welcome");
    }
    let extra = from_one_address(MAX_SOCKETS_PER_ADDRESS as u8);
    let effects = h.join(&extra);
    let frames = sent_to(&effects, &extra);
    assert_eq!(frames.len(), 1, "the error is its only frame: {frames:?}");
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[0]["code"], "too_many_connections");
    assert!(frames[0]["message"].as_str().unwrap().contains("20"));
    assert_eq!(closes(&effects), vec![(extra.conn.clone(), CLOSE_POLICY)]);
    assert_eq!(h.room.sockets(), MAX_SOCKETS_PER_ADDRESS);
    // Its close, when reported, changes nothing; another address is not affected.
    h.leave(&extra);
    assert_eq!(h.room.sockets(), MAX_SOCKETS_PER_ADDRESS);
    assert_eq!(welcome_of(&h.join(&viewer(3)), &viewer(3))["type"], "welcome");
}

#[test]
fn a_closed_socket_frees_its_place_under_the_cap() {
    let mut h = Harness::new();
    for i in 0..MAX_SOCKETS_PER_ADDRESS as u8 {
        h.join(&from_one_address(i));
    }
    h.leave(&from_one_address(0));
    let again = from_one_address(MAX_SOCKETS_PER_ADDRESS as u8);
    assert_eq!(welcome_of(&h.join(&again), &again)["type"], "welcome");
}

#[test]
fn viewers_are_distinct_users_and_anonymous_addresses_not_sockets() {
    let mut h = Harness::new();
    h.join(&viewer(2));
    h.join(&second_socket_of(2)); // the same user in another tab: still one viewer
    for i in 0..5 {
        h.join(&from_one_address(i)); // five anonymous sockets from one address: one viewer
    }
    h.join(&anonymous(7)); // another address
    let signed_in_there = Connection {
        conn: conn_id(8),
        client: addr(200),
        ..viewer(8)
    };
    let effects = h.join(&signed_in_there); // a signed-in user behind the shared address counts on their own
    assert_eq!(h.room.sockets(), 9);
    assert_eq!(h.room.viewers(), 4);
    assert_eq!(welcome_of(&effects, &signed_in_there)["viewers"], 4);
    h.tick(PRESENCE_INTERVAL_MS);
    let effects = h.handle(Event::Alarm);
    assert_eq!(broadcasts(&effects), vec![json!({"type": "presence", "viewers": 4})]);
    assert_eq!(
        h.store.published_viewers,
        Some(4),
        "D1's viewer count is the same distinct count"
    );
    for i in 0..4 {
        h.leave(&from_one_address(i));
    }
    h.leave(&second_socket_of(2));
    assert_eq!(
        h.room.viewers(),
        4,
        "a viewer counts while any of their sockets is open"
    );
    h.leave(&from_one_address(4));
    assert_eq!(h.room.viewers(), 3);
}

#[test]
fn the_tallies_survive_a_rebuild_from_the_open_sockets() {
    let mut h = Harness::new();
    let open: Vec<Connection> = (0..MAX_SOCKETS_PER_ADDRESS as u8).map(from_one_address).collect();
    for c in &open {
        h.join(c);
    }
    h.restart(&open);
    assert_eq!(h.room.viewers(), 1);
    let extra = from_one_address(99);
    assert_eq!(sent_to(&h.join(&extra), &extra)[0]["code"], "too_many_connections");
}
