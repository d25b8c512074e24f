//! The ChatRoom's SQLite storage (`state.storage().sql()`): the schema, carrying out the room's storage effects,
//! and reading back the `Snapshot` the room is rebuilt from after the platform evicted it. The SQL API is
//! synchronous and every statement of one event runs without an `await` in between, so the runtime commits them
//! together (implicit transaction) and holds outgoing frames until they are durable (output gate).

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
-- Chat replay (issue 25) reads a broadcast's messages by time.
CREATE INDEX IF NOT EXISTS messages_by_ts ON messages(ts_ms);
-- Every donation order ever shown here, kept beyond the 1,000-message window: a late re-post is still a duplicate.
CREATE TABLE IF NOT EXISTS delivered_orders (order_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bans (user_id TEXT PRIMARY KEY, banned_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS timeouts (user_id TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);
-- 'slow_mode_seconds', 'status' and 'stream_id' (the D1 row the viewer count is written to).
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Sockets held by this room's shards (ChatShard objects): the room counts, caps and moderates them like its own,
-- so after an eviction it must know them without asking every shard. `attachment` is `Connection::to_attachment`.
CREATE TABLE IF NOT EXISTS shard_sockets (conn TEXT PRIMARY KEY, shard INTEGER NOT NULL, attachment TEXT NOT NULL);
-- The last batch of socket events applied from each shard (`ShardBatches`): written with the batch's effects, so a
-- retry of a batch that was applied, by a room rebuilt since, is still recognised and not applied twice.
CREATE TABLE IF NOT EXISTS shard_batches (shard INTEGER PRIMARY KEY, epoch TEXT NOT NULL, batch INTEGER NOT NULL);
";

/// The room's storage.
pub struct RoomStorage {
    sql: SqlStorage,
}

type Row = Vec<SqlStorageValue>;

/// Column `i` as text; "" for NULL or another type (every caller then skips the row as unparsable).
fn str_at(row: &Row, i: usize) -> &str {
    match row.get(i) {
        Some(SqlStorageValue::String(s)) => s,
        _ => "",
    }
}

/// Column `i` as an integer; 0 for NULL or another type.
fn int_at(row: &Row, i: usize) -> i64 {
    match row.get(i) {
        Some(SqlStorageValue::Integer(n)) => *n,
        Some(SqlStorageValue::Float(f)) => *f as i64,
        _ => 0,
    }
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

    /// The rows as positional values (`raw()`): no serde_wasm_bindgen `Deserialize` instance per row shape.
    fn rows(&self, query: &str, args: Vec<SqlStorageValue>) -> worker::Result<Vec<Row>> {
        self.sql.exec(query, args)?.raw().collect()
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
            // Beyond the newest `HISTORY_KEEP`, what a broadcast that still exists needs for its replay stays
            // (`keep_since_ms`, set through `/internal/keep`).
            Effect::PruneHistory { below_seq } => self.exec(
                "DELETE FROM messages WHERE seq < ? AND ts_ms < COALESCE((SELECT CAST(value AS INTEGER) FROM settings
                   WHERE key = 'keep_since_ms'), 9007199254740991)",
                vec![int(*below_seq)],
            ),
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
            | Effect::ScheduleFlush { .. }
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

    /// The sockets on shards, with their shard numbers.
    pub fn remote_sockets(&self) -> worker::Result<Vec<(Connection, u32)>> {
        Ok(self
            .rows("SELECT attachment, shard FROM shard_sockets", vec![])?
            .iter()
            .filter_map(|row| {
                let c = Connection::from_attachment(str_at(row, 0))?;
                Some((c, u32::try_from(int_at(row, 1)).ok()?))
            })
            .collect())
    }

    pub fn save_remote(&self, connection: &Connection, shard: u32) -> worker::Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO shard_sockets (conn, shard, attachment) VALUES (?, ?, ?)",
            vec![
                text(connection.conn.as_str()),
                int(i64::from(shard)),
                text(&connection.to_attachment()),
            ],
        )
    }

    pub fn forget_remote(&self, conn: &str) -> worker::Result<()> {
        self.exec("DELETE FROM shard_sockets WHERE conn = ?", vec![text(conn)])
    }

    /// The last batch applied from each shard: `(shard, epoch, batch)`.
    pub fn shard_batches(&self) -> worker::Result<Vec<(u32, String, u64)>> {
        Ok(self
            .rows("SELECT shard, epoch, batch FROM shard_batches", vec![])?
            .iter()
            .filter_map(|row| {
                let shard = u32::try_from(int_at(row, 0)).ok()?;
                let batch = u64::try_from(int_at(row, 2)).ok()?;
                Some((shard, str_at(row, 1).to_string(), batch))
            })
            .collect())
    }

    pub fn save_shard_batch(&self, shard: u32, epoch: &str, batch: u64) -> worker::Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO shard_batches (shard, epoch, batch) VALUES (?, ?, ?)",
            vec![
                int(i64::from(shard)),
                text(epoch),
                int(i64::try_from(batch).unwrap_or(i64::MAX)),
            ],
        )
    }

    /// The stream this room belongs to, as the worker last named it.
    pub fn stream_id(&self) -> worker::Result<Option<String>> {
        let rows = self.rows("SELECT value FROM settings WHERE key = 'stream_id'", vec![])?;
        Ok(rows
            .first()
            .map(|row| str_at(row, 0))
            .filter(|id| !id.is_empty())
            .map(str::to_string))
    }

    pub fn save_stream_id(&self, stream_id: &str) -> worker::Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO settings (key, value) VALUES ('stream_id', ?)",
            vec![text(stream_id)],
        )
    }

    /// Reads back everything the room remembers, for `now_ms`, with the sockets that are still open.
    pub fn snapshot(&self, now_ms: i64, connections: Vec<Connection>) -> worker::Result<Snapshot> {
        let mut status = None;
        let mut slow_mode_seconds = 0;
        for row in self.rows("SELECT key, value FROM settings", vec![])? {
            match (str_at(&row, 0), str_at(&row, 1)) {
                ("status", value) => status = StreamStatus::parse(value),
                ("slow_mode_seconds", value) => slow_mode_seconds = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        let mut recent: Vec<HistoryItem> = self
            .rows(
                "SELECT body FROM messages WHERE body IS NOT NULL ORDER BY seq DESC LIMIT ?",
                vec![int(Snapshot::RECENT as i64)],
            )?
            .iter()
            .filter_map(|row| serde_json::from_str(str_at(row, 0)).ok())
            .collect();
        recent.reverse();
        let last_seq = self
            .rows("SELECT COALESCE(MAX(seq), 0) FROM messages", vec![])?
            .first()
            .map_or(0, |row| int_at(row, 0));
        let bans = self
            .rows("SELECT user_id FROM bans", vec![])?
            .iter()
            .filter_map(|row| UserId::parse(str_at(row, 0)))
            .collect();
        let timeouts = self
            .rows(
                "SELECT user_id, until_ms FROM timeouts WHERE until_ms > ?",
                vec![int(now_ms)],
            )?
            .iter()
            .filter_map(|row| UserId::parse(str_at(row, 0)).map(|u| (u, int_at(row, 1))))
            .collect();
        let recent_sends = self
            .rows(
                "SELECT user_id, ts_ms FROM messages WHERE kind = 'chat' AND ts_ms > ? ORDER BY seq",
                vec![int(now_ms - Snapshot::sends_window_ms(slow_mode_seconds))],
            )?
            .iter()
            .filter_map(|row| UserId::parse(str_at(row, 0)).map(|u| (u, int_at(row, 1))))
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

    /// Whether message `seq` is stored and not deleted.
    pub fn has_message(&self, seq: i64) -> worker::Result<bool> {
        Ok(!self
            .rows(
                "SELECT 1 FROM messages WHERE seq = ? AND body IS NOT NULL",
                vec![int(seq)],
            )?
            .is_empty())
    }

    /// Every kept chat message of `user_id` (bodies, oldest first), for the account export.
    pub fn messages_of(&self, user_id: &str) -> worker::Result<Vec<String>> {
        Ok(self
            .rows(
                "SELECT body FROM messages WHERE user_id = ? AND body IS NOT NULL ORDER BY seq",
                vec![text(user_id)],
            )?
            .iter()
            .map(|row| str_at(row, 0).to_string())
            .collect())
    }

    /// A deleted account leaves this room: its chat messages stay under the deleted user (no name, no id of
    /// theirs), its donation alerts (`orders`) lose the donor's name and message, its bans and timeouts go. One
    /// synchronous block: one commit. Returns how many chat and donation rows were rewritten.
    pub fn forget_user(&self, user_id: &str, orders: &[String]) -> worker::Result<(usize, usize)> {
        use sunnylive_core::account::{DELETED_USER_ID, DELETED_USER_NAME};
        let chat = self
            .rows(
                "UPDATE messages SET user_id = NULL,
                     body = CASE WHEN body IS NULL THEN NULL
                                 ELSE json_set(body, '$.user', json_object('id', ?, 'username', ?)) END
                 WHERE user_id = ? RETURNING seq",
                vec![text(DELETED_USER_ID), text(DELETED_USER_NAME), text(user_id)],
            )?
            .len();
        let mut donations = 0;
        for order in orders {
            donations += self
                .rows(
                    "UPDATE messages SET body = json_set(body, '$.donor', ?, '$.message', NULL)
                     WHERE order_id = ? AND body IS NOT NULL RETURNING seq",
                    vec![text(DELETED_USER_NAME), text(order)],
                )?
                .len();
        }
        self.exec("DELETE FROM bans WHERE user_id = ?", vec![text(user_id)])?;
        self.exec("DELETE FROM timeouts WHERE user_id = ?", vec![text(user_id)])?;
        Ok((chat, donations))
    }

    /// Keeps every message sent at or after `since_ms` (None: only the newest `HISTORY_KEEP`).
    pub fn save_keep_since(&self, since_ms: Option<i64>) -> worker::Result<()> {
        match since_ms {
            Some(ms) => self.exec(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('keep_since_ms', ?)",
                vec![text(&ms.to_string())],
            ),
            None => self.exec("DELETE FROM settings WHERE key = 'keep_since_ms'", vec![]),
        }
    }

    /// A page of chat replay for `GET /internal/replay`: `(ts_ms, body)` of the messages sent from `from_ms` to
    /// `to_ms` (both included), oldest first: not deleted (body NULL), not by a user banned here.
    pub fn replay_page(&self, from_ms: i64, to_ms: i64, limit: i64) -> worker::Result<Vec<(i64, String)>> {
        Ok(self
            .rows(
                "SELECT ts_ms, body FROM messages WHERE body IS NOT NULL AND ts_ms >= ? AND ts_ms <= ?
                   AND (user_id IS NULL OR user_id NOT IN (SELECT user_id FROM bans)) ORDER BY ts_ms, seq LIMIT ?",
                vec![int(from_ms), int(to_ms), int(limit)],
            )?
            .iter()
            .map(|row| (int_at(row, 0), str_at(row, 1).to_string()))
            .collect())
    }

    /// One page of history for `GET /internal/messages`: the bodies (JSON, oldest first) and the id to pass as
    /// `before` for the next older page (None when this page reached the beginning).
    pub fn history_page(&self, query: &HistoryQuery) -> worker::Result<(Vec<String>, Option<MessageId>)> {
        // No `before`: every id. Ids stay below 2^53 - 1, the largest integer a JavaScript number (what carries the
        // SQL bindings) holds exactly and safely (2^53 itself drew workerd's "outside the safe-integer range" warning).
        let before = query.before.map_or((1_i64 << 53) - 1, |id| id.seq());
        let mut rows = self.rows(
            "SELECT seq, body FROM messages WHERE body IS NOT NULL AND seq < ? ORDER BY seq DESC LIMIT ?",
            vec![int(before), int(i64::from(query.limit))],
        )?;
        rows.reverse();
        let next = (rows.len() == query.limit as usize)
            .then(|| rows.first().map(|row| MessageId::from_seq(int_at(row, 0))))
            .flatten();
        Ok((rows.iter().map(|row| str_at(row, 1).to_string()).collect(), next))
    }
}
