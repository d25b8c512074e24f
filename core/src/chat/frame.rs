//! The WebSocket frames of the chat contract (docs/API.md, "Chat"): JSON objects with a `type`. Server frames are built
//! here and serialized once; client frames are parsed here, and anything that does not parse is a `bad_frame`.
//!
//! One addition to the contract: `{"type":"batch","frames":[<frame>, ...]}`, two or more server frames sent as one
//! WebSocket message, oldest first, each exactly as it would have been sent alone (today `chat` frames: a busy big
//! room coalesces the messages of one `COALESCE_WINDOW_MS` window). A client handles it by handling each entry in
//! order. A batch never nests and never holds a `welcome`.

use serde::{Deserialize, Serialize};

use super::identity::Identity;
use super::text::ChatText;
use crate::ids::UserId;
/// The room shows the stream's status as the stream record has it: one type, owned by `crate::stream`.
pub use crate::stream::StreamStatus;

/// The author of a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUser {
    pub id: UserId,
    pub username: String,
}

/// One chat message, as broadcast, stored and replayed in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: String,
    pub user: ChatUser,
    pub text: ChatText,
    pub ts: String,
}

/// One paid donation, as broadcast, stored and replayed in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonationMessage {
    pub id: String,
    pub donor: String,
    pub amount: i64,
    /// Always `IDR`: money is an integer number of rupiah.
    pub currency: String,
    pub message: Option<String>,
    pub ts: String,
    /// True when the donor was not signed in (`donor` is a name they chose): clients mark it as a guest.
    /// Absent from items stored before guests were marked.
    #[serde(default)]
    pub guest: bool,
}

/// An entry of the room's history: what the welcome frame and `GET .../messages` return. Deserialize is written
/// by hand (see below): the derived one for an internally tagged enum buffers through serde's `Content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HistoryItem {
    Chat(ChatMessage),
    Donation(DonationMessage),
}

/// Reads the stored bodies back on a wake-up: through a `serde_json::Value` (whose code the worker has anyway),
/// dispatching on `type`; the variant structs ignore the extra `type` field.
impl<'de> Deserialize<'de> for HistoryItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        match value.get("type").and_then(serde_json::Value::as_str) {
            Some("chat") => serde_json::from_value(value).map(HistoryItem::Chat),
            Some("donation") => serde_json::from_value(value).map(HistoryItem::Donation),
            _ => return Err(D::Error::custom("a history item's type must be chat or donation")),
        }
        .map_err(D::Error::custom)
    }
}

impl HistoryItem {
    pub fn id(&self) -> &str {
        match self {
            HistoryItem::Chat(m) => &m.id,
            HistoryItem::Donation(d) => &d.id,
        }
    }
}

/// `you` in the welcome frame. `id` and `username` are null for anonymous sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct You {
    pub id: Option<UserId>,
    pub username: Option<String>,
    pub role: super::identity::Role,
}

impl From<&Identity> for You {
    fn from(identity: &Identity) -> Self {
        let user = identity.user();
        You {
            id: user.map(|(id, _)| id.clone()),
            username: user.map(|(_, name)| name.to_string()),
            role: identity.role(),
        }
    }
}

/// Codes of `error` frames. All but `too_many_connections` are recoverable: the socket stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Too fast (burst, slow mode) or timed out by the host; `retry_after_ms` says for how long.
    RateLimited,
    /// Sending needs an access token; this socket is anonymous.
    NotAuthenticated,
    /// The text is longer than 500 characters.
    TooLong,
    /// The text is empty after trimming.
    Empty,
    /// The host has banned this user from chatting in this room.
    Banned,
    /// Not JSON, an unknown `type`, a missing or ill-typed field, or a value out of range.
    BadFrame,
    /// A moderation frame from someone who is not the host. (Added to the contract's list.)
    Forbidden,
    /// The socket's client address already holds `MAX_SOCKETS_PER_ADDRESS` sockets in this room: this error is the
    /// socket's only frame (instead of the welcome), then it is closed with 1008. (Added to the contract's list.)
    TooManyConnections,
    /// The socket's relay (a `ChatShard`) could not pass its frame on to the room, after retrying for about ten
    /// seconds: the frame was most likely not applied; send it again. (Added to the contract's list.)
    NotDelivered,
}

/// Everything the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every socket, once.
    Welcome {
        you: You,
        history: Vec<HistoryItem>,
        viewers: u32,
        status: StreamStatus,
        slow_mode_seconds: u32,
    },
    Chat(ChatMessage),
    Donation(DonationMessage),
    Presence {
        viewers: u32,
    },
    Status {
        status: StreamStatus,
    },
    Deleted {
        id: String,
    },
    SlowMode {
        seconds: u32,
    },
    Error {
        code: ErrorCode,
        message: String,
        /// For `rate_limited`: milliseconds until a message would be accepted. (Added to the contract.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<i64>,
    },
}

impl ServerFrame {
    /// The JSON text of the frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("BUG: server frames are plain data and always serialize")
    }

    /// `{"type":"batch","frames":[...]}` around frames that are already JSON text: each is copied in as is, so a
    /// batch costs one concatenation, not a parse and a second serialization.
    pub fn batch_json<'a>(frames: impl Iterator<Item = &'a str>) -> String {
        let mut out = String::from(r#"{"type":"batch","frames":["#);
        for (i, frame) in frames.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(frame);
        }
        out.push_str("]}");
        out
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// Everything a client may send. Unknown fields are ignored (forward compatibility); unknown types are refused.
///
/// Parsed by hand from a `serde_json::Value` rather than derived: an internally tagged derive buffers the frame
/// through serde's `Content` and costs several KB of wasm in the Durable Object, for six small shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Anyone signed in: post a message. The text is checked by `ChatText::parse`, not by serde, so an invalid text
    /// answers `empty`/`too_long` rather than `bad_frame`.
    Chat { text: String },
    /// Host only: remove a message (chat or donation) for everyone.
    Delete { id: String },
    /// Host only: keep a user from chatting for `seconds` (0 lifts a timeout).
    Timeout { user_id: String, seconds: u64 },
    /// Host only: keep a user from chatting in this room for good; their open sockets are closed with 1008.
    Ban { user_id: String },
    /// Host only: lift a ban. (Added to the contract.)
    Unban { user_id: String },
    /// Host only: at most one message per user per `seconds` (0 turns slow mode off).
    SlowMode { seconds: u64 },
}

impl ClientFrame {
    /// Parses a text frame; the error is a sentence for the `bad_frame` error frame.
    pub fn parse(raw: &str) -> Result<Self, String> {
        const NOT_OBJECT: &str = "Frames must be JSON objects.";
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(raw) else {
            return Err(NOT_OBJECT.into());
        };
        let refuse = |what: &str| ["This frame is not one the room understands: ", what, "."].concat();
        let string = |name: &str| match map.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(refuse(&["`", name, "` must be a string"].concat())),
            None => Err(refuse(&["missing field `", name, "`"].concat())),
        };
        let seconds = || match map.get("seconds") {
            Some(v) => v
                .as_u64()
                .ok_or_else(|| refuse("`seconds` must be a whole number of seconds, 0 or more")),
            None => Err(refuse("missing field `seconds`")),
        };
        let Some(kind) = map.get("type").and_then(serde_json::Value::as_str) else {
            return Err(refuse("missing field `type`"));
        };
        Ok(match kind {
            "chat" => ClientFrame::Chat { text: string("text")? },
            "delete" => ClientFrame::Delete { id: string("id")? },
            "timeout" => ClientFrame::Timeout {
                user_id: string("user_id")?,
                seconds: seconds()?,
            },
            "ban" => ClientFrame::Ban {
                user_id: string("user_id")?,
            },
            "unban" => ClientFrame::Unban {
                user_id: string("user_id")?,
            },
            "slow_mode" => ClientFrame::SlowMode { seconds: seconds()? },
            _ => return Err(refuse("unknown frame `type`")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> ChatUser {
        ChatUser {
            id: UserId::parse("abcdefghijkmnpqr").unwrap(),
            username: "budi".into(),
        }
    }

    fn chat() -> ChatMessage {
        ChatMessage {
            id: "7".into(),
            user: user(),
            text: ChatText::parse("halo").unwrap(),
            ts: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    fn donation() -> DonationMessage {
        DonationMessage {
            id: "8".into(),
            donor: "Sari".into(),
            amount: 50_000,
            currency: "IDR".into(),
            message: Some("semangat!".into()),
            ts: "2026-01-01T00:00:01.000Z".into(),
            guest: true,
        }
    }

    fn json_of(f: &ServerFrame) -> serde_json::Value {
        serde_json::from_str(&f.to_json()).unwrap()
    }

    #[test]
    fn the_welcome_frame_has_the_contract_shape() {
        let f = ServerFrame::Welcome {
            you: You {
                id: None,
                username: None,
                role: super::super::Role::Anonymous,
            },
            history: vec![HistoryItem::Chat(chat()), HistoryItem::Donation(donation())],
            viewers: 3,
            status: StreamStatus::Live,
            slow_mode_seconds: 0,
        };
        let v = json_of(&f);
        assert_eq!(v["type"], "welcome");
        assert_eq!(v["you"], json!({"id": null, "username": null, "role": "anonymous"}));
        assert_eq!(v["history"][0]["type"], "chat");
        assert_eq!(v["history"][1]["type"], "donation");
        assert_eq!(v["viewers"], 3);
        assert_eq!(v["status"], "live");
        assert_eq!(v["slow_mode_seconds"], 0);
    }

    #[test]
    fn a_chat_frame_has_the_contract_shape() {
        assert_eq!(
            json_of(&ServerFrame::Chat(chat())),
            json!({"type": "chat", "id": "7", "user": {"id": "abcdefghijkmnpqr", "username": "budi"},
                   "text": "halo", "ts": "2026-01-01T00:00:00.000Z"})
        );
    }

    #[test]
    fn a_donation_frame_has_the_contract_shape() {
        assert_eq!(
            json_of(&ServerFrame::Donation(donation())),
            json!({"type": "donation", "id": "8", "donor": "Sari", "amount": 50000, "currency": "IDR",
                   "message": "semangat!", "ts": "2026-01-01T00:00:01.000Z", "guest": true})
        );
    }

    #[test]
    fn a_history_item_serializes_exactly_like_its_live_frame() {
        assert_eq!(
            serde_json::to_string(&HistoryItem::Chat(chat())).unwrap(),
            ServerFrame::Chat(chat()).to_json()
        );
        assert_eq!(
            serde_json::to_string(&HistoryItem::Donation(donation())).unwrap(),
            ServerFrame::Donation(donation()).to_json()
        );
    }

    #[test]
    fn the_small_server_frames_have_the_contract_shape() {
        assert_eq!(
            json_of(&ServerFrame::Presence { viewers: 2 }),
            json!({"type": "presence", "viewers": 2})
        );
        assert_eq!(
            json_of(&ServerFrame::Status {
                status: StreamStatus::Offline
            }),
            json!({"type": "status", "status": "offline"})
        );
        assert_eq!(
            json_of(&ServerFrame::Deleted { id: "7".into() }),
            json!({"type": "deleted", "id": "7"})
        );
        assert_eq!(
            json_of(&ServerFrame::SlowMode { seconds: 10 }),
            json!({"type": "slow_mode", "seconds": 10})
        );
        assert_eq!(
            json_of(&ServerFrame::error(ErrorCode::BadFrame, "no")),
            json!({"type": "error", "code": "bad_frame", "message": "no"})
        );
    }

    #[test]
    fn a_batch_frame_lists_its_frames_unchanged_oldest_first() {
        let one = ServerFrame::Chat(chat()).to_json();
        let two = ServerFrame::Donation(donation()).to_json();
        let batch = ServerFrame::batch_json([one.as_str(), two.as_str()].into_iter());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&batch).unwrap(),
            json!({"type": "batch", "frames": [json_of(&ServerFrame::Chat(chat())),
                                               json_of(&ServerFrame::Donation(donation()))]})
        );
    }

    #[test]
    fn every_error_code_is_snake_case() {
        let codes = [
            (ErrorCode::RateLimited, "rate_limited"),
            (ErrorCode::NotAuthenticated, "not_authenticated"),
            (ErrorCode::TooLong, "too_long"),
            (ErrorCode::Empty, "empty"),
            (ErrorCode::Banned, "banned"),
            (ErrorCode::BadFrame, "bad_frame"),
            (ErrorCode::Forbidden, "forbidden"),
            (ErrorCode::TooManyConnections, "too_many_connections"),
            (ErrorCode::NotDelivered, "not_delivered"),
        ];
        for (code, text) in codes {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(text));
        }
    }

    #[test]
    fn history_items_read_back_from_their_stored_json_and_unknown_types_are_refused() {
        for item in [HistoryItem::Chat(chat()), HistoryItem::Donation(donation())] {
            let text = serde_json::to_string(&item).unwrap();
            assert_eq!(serde_json::from_str::<HistoryItem>(&text).unwrap(), item);
        }
        for bad in [
            r#"{"type":"shout","id":"1"}"#,
            r#"{"id":"1"}"#,
            r#"{"type":"chat","id":"1"}"#,
            "[]",
        ] {
            assert!(serde_json::from_str::<HistoryItem>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_client_frame_of_the_contract_parses() {
        let cases = [
            (
                r#"{"type":"chat","text":"hi"}"#,
                ClientFrame::Chat { text: "hi".into() },
            ),
            (r#"{"type":"delete","id":"7"}"#, ClientFrame::Delete { id: "7".into() }),
            (
                r#"{"type":"timeout","user_id":"u","seconds":60}"#,
                ClientFrame::Timeout {
                    user_id: "u".into(),
                    seconds: 60,
                },
            ),
            (
                r#"{"type":"ban","user_id":"u"}"#,
                ClientFrame::Ban { user_id: "u".into() },
            ),
            (
                r#"{"type":"unban","user_id":"u"}"#,
                ClientFrame::Unban { user_id: "u".into() },
            ),
            (
                r#"{"type":"slow_mode","seconds":5}"#,
                ClientFrame::SlowMode { seconds: 5 },
            ),
            (
                r#"{"type":"chat","text":"hi","client_ref":"x"}"#,
                ClientFrame::Chat { text: "hi".into() },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(ClientFrame::parse(raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn malformed_client_frames_are_refused_with_a_sentence() {
        for raw in [
            "",
            "hello",
            "[]",
            "{}",
            r#"{"type":"shout","text":"x"}"#,
            r#"{"type":"chat"}"#,
            r#"{"type":"chat","text":5}"#,
            r#"{"type":"timeout","user_id":"u","seconds":-1}"#,
            r#"{"type":"slow_mode","seconds":"10"}"#,
        ] {
            let err = ClientFrame::parse(raw).unwrap_err();
            assert!(err.ends_with('.'), "{raw}: {err}");
        }
    }
}
