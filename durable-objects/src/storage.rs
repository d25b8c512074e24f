//! The ChatRoom's SQLite storage (`state.storage().sql()`): the schema, carrying out the room's storage effects,
//! and reading back the `Snapshot` the room is rebuilt from after the platform evicted it. The SQL API is
//! synchronous and every statement of one event runs without an `await` in between, so the runtime commits them
//! together (implicit transaction) and holds outgoing frames until they are durable (output gate).

use serde::Deserialize;
use sunnylive_core::chat::{
    Connection, Effect, HistoryItem, HistoryQuery, MessageId, Setting, Snapshot, StoredMessage, StreamStatus,
};
use sunnylive_core::ids::UserId;
use worker::{SqlStorage, SqlStorageValue};

/// Idempotent: runs on every construction of the object (cheap: `IF NOT EXISTS`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    -- The message id. Only grows: a deleted message keeps its row (body NULL) so its id is never handed out again.
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,          -- 'chat' | 'donation'
    user_id TEXT,                -- chat author; NULL for donations
    order_id TEXT,               -- donation's Midtrans order id; NULL for chat
    ts_ms INTEGER NOT NULL,
    body TEXT                    -- the frame's JSON exactly as broadcast; NULL once the host deleted it
);
-- Every donation order ever shown here, kept beyond the 1,000-message window: a late re-post is still a duplicate.
CREATE TABLE IF NOT EXISTS delivered_orders (order_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bans (user_id TEXT PRIMARY KEY, banned_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS timeouts (user_id TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);
-- 'slow_mode_seconds', 'status' and 'stream_id' (the D1 row the viewer count is written to).
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// The room's storage.
pub struct RoomStorage {
    sql: SqlStorage,
}

fn int(n: i64) -> SqlStorageValue {
    SqlStorageValue::Integer(n)
}

fn text(s: &str) -> SqlStorageValue {
    SqlStorageValue::String(s.to_string())
}

fn opt_text(s: Option<&str>) -> SqlStorageValue {
    s.map_or(SqlStorageValue::Null, text)
}

impl RoomStorage {
    pub fn open(sql: SqlStorage) -> worker::Result<Self> {
        sql.exec(SCHEMA, None)?;
        Ok(Self { sql })
    }

    fn exec(&self, query: &str, args: Vec<SqlStorageValue>) -> worker::Result<()> {
        self.sql.exec(query, args).map(|_| ())
    }

    fn rows<T: for<'de> Deserialize<'de>>(&self, query: &str, args: Vec<SqlStorageValue>) -> worker::Result<Vec<T>> {
        self.sql.exec(query, args)?.to_array()
    }

    /// Carries out one storage effect; the other effects are the shell's (sockets, alarm) and are ignored here.
    pub fn apply(&self, effect: &Effect, now_ms: i64) -> worker::Result<()> {
        match effect {
            Effect::StoreMessage(StoredMessage {
                seq,
                kind,
                user_id,
                order_id,
                ts_ms,
                body,
            }) => {
                self.exec(
                    "INSERT INTO messages (seq, kind, user_id, order_id, ts_ms, body) VALUES (?, ?, ?, ?, ?, ?)",
                    vec![
                        int(*seq),
                        text(kind.as_str()),
                        opt_text(user_id.as_ref().map(UserId::as_str)),
                        opt_text(order_id.as_deref()),
                        int(*ts_ms),
                        text(body),
                    ],
                )?;
                if let Some(order) = order_id {
                    self.exec(
                        "INSERT OR IGNORE INTO delivered_orders (order_id, seq) VALUES (?, ?)",
                        vec![text(order), int(*seq)],
                    )?;
                }
                Ok(())
            }
            Effect::PruneHistory { below_seq } => {
                self.exec("DELETE FROM messages WHERE seq < ?", vec![int(*below_seq)])
            }
            Effect::DeleteMessage { seq } => {
                self.exec("UPDATE messages SET body = NULL WHERE seq = ?", vec![int(*seq)])
            }
            Effect::SaveBan { user_id } => self.exec(
                "INSERT OR IGNORE INTO bans (user_id, banned_at_ms) VALUES (?, ?)",
                vec![text(user_id.as_str()), int(now_ms)],
            ),
            Effect::LiftBan { user_id } => {
                self.exec("DELETE FROM bans WHERE user_id = ?", vec![text(user_id.as_str())])
            }
            Effect::SaveTimeout { user_id, until_ms } => self.exec(
                "INSERT OR REPLACE INTO timeouts (user_id, until_ms) VALUES (?, ?)",
                vec![text(user_id.as_str()), int(*until_ms)],
            ),
            Effect::LiftTimeout { user_id } => {
                self.exec("DELETE FROM timeouts WHERE user_id = ?", vec![text(user_id.as_str())])
            }
            Effect::SaveSetting(setting) => {
                let (key, value) = match setting {
                    Setting::SlowModeSeconds(s) => ("slow_mode_seconds", s.to_string()),
                    Setting::Status(s) => ("status", s.as_str().to_string()),
                };
                self.exec(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                    vec![text(key), text(&value)],
                )
            }
            Effect::Send { .. }
            | Effect::Broadcast { .. }
            | Effect::Close { .. }
            | Effect::ScheduleAlarm { .. }
            | Effect::PublishViewers { .. } => Ok(()),
        }
    }

    /// Whether a donation with this order id was ever shown here: one primary-key lookup, so the cost of a post does
    /// not grow with the stream's donation count (the row is written with the donation's history row).
    pub fn order_delivered(&self, order_id: &str) -> worker::Result<bool> {
        let cursor = self.sql.exec(
            "SELECT 1 FROM delivered_orders WHERE order_id = ? LIMIT 1",
            vec![text(order_id)],
        )?;
        Ok(cursor.raw().next().is_some())
    }

    /// The stream this room belongs to, as the worker last named it.
    pub fn stream_id(&self) -> worker::Result<Option<String>> {
        let cursor = self
            .sql
            .exec("SELECT value FROM settings WHERE key = 'stream_id'", vec![])?;
        let row = cursor.raw().next().transpose()?;
        Ok(row.and_then(|r| match r.into_iter().next() {
            Some(SqlStorageValue::String(s)) => Some(s),
            _ => None,
        }))
    }

    pub fn save_stream_id(&self, stream_id: &str) -> worker::Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO settings (key, value) VALUES ('stream_id', ?)",
            vec![text(stream_id)],
        )
    }

    /// Reads back everything the room remembers, for `now_ms`, with the sockets that are still open.
    pub fn snapshot(&self, now_ms: i64, connections: Vec<Connection>) -> worker::Result<Snapshot> {
        #[derive(Deserialize)]
        struct KeyValue {
            key: String,
            value: String,
        }
        #[derive(Deserialize)]
        struct Body {
            body: String,
        }
        #[derive(Deserialize)]
        struct Last {
            last_seq: i64,
        }
        #[derive(Deserialize)]
        struct Ban {
            user_id: String,
        }
        #[derive(Deserialize)]
        struct Timeout {
            user_id: String,
            until_ms: i64,
        }
        #[derive(Deserialize)]
        struct Send {
            user_id: String,
            ts_ms: i64,
        }

        let mut status = None;
        let mut slow_mode_seconds = 0;
        for kv in self.rows::<KeyValue>("SELECT key, value FROM settings", vec![])? {
            match kv.key.as_str() {
                "status" => status = StreamStatus::parse(&kv.value),
                "slow_mode_seconds" => slow_mode_seconds = kv.value.parse().unwrap_or(0),
                _ => {}
            }
        }
        let mut recent: Vec<HistoryItem> = self
            .rows::<Body>(
                "SELECT body FROM messages WHERE body IS NOT NULL ORDER BY seq DESC LIMIT ?",
                vec![int(Snapshot::RECENT as i64)],
            )?
            .into_iter()
            .filter_map(|row| serde_json::from_str(&row.body).ok())
            .collect();
        recent.reverse();
        let last_seq = self
            .rows::<Last>("SELECT COALESCE(MAX(seq), 0) AS last_seq FROM messages", vec![])?
            .first()
            .map_or(0, |l| l.last_seq);
        let bans = self
            .rows::<Ban>("SELECT user_id FROM bans", vec![])?
            .into_iter()
            .filter_map(|b| UserId::parse(&b.user_id))
            .collect();
        let timeouts = self
            .rows::<Timeout>(
                "SELECT user_id, until_ms FROM timeouts WHERE until_ms > ?",
                vec![int(now_ms)],
            )?
            .into_iter()
            .filter_map(|t| UserId::parse(&t.user_id).map(|u| (u, t.until_ms)))
            .collect();
        let recent_sends = self
            .rows::<Send>(
                "SELECT user_id, ts_ms FROM messages WHERE kind = 'chat' AND ts_ms > ? ORDER BY seq",
                vec![int(now_ms - Snapshot::sends_window_ms(slow_mode_seconds))],
            )?
            .into_iter()
            .filter_map(|s| UserId::parse(&s.user_id).map(|u| (u, s.ts_ms)))
            .collect();
        Ok(Snapshot {
            status,
            slow_mode_seconds,
            bans,
            timeouts,
            recent,
            last_seq,
            recent_sends,
            connections,
        })
    }

    /// One page of history for `GET /internal/messages`: the bodies (JSON, oldest first) and the id to pass as
    /// `before` for the next older page (None when this page reached the beginning).
    pub fn history_page(&self, query: &HistoryQuery) -> worker::Result<(Vec<String>, Option<MessageId>)> {
        #[derive(Deserialize)]
        struct Row {
            seq: i64,
            body: String,
        }
        // Ids stay below 2^53 (JavaScript numbers carry the bindings), so this bound is above every id.
        let before = query.before.map_or(1_i64 << 53, |id| id.seq());
        let mut rows = self.rows::<Row>(
            "SELECT seq, body FROM messages WHERE body IS NOT NULL AND seq < ? ORDER BY seq DESC LIMIT ?",
            vec![int(before), int(i64::from(query.limit))],
        )?;
        rows.reverse();
        let next = (rows.len() == query.limit as usize)
            .then(|| rows.first().map(|r| MessageId::from_seq(r.seq)))
            .flatten();
        Ok((rows.into_iter().map(|r| r.body).collect(), next))
    }
}
