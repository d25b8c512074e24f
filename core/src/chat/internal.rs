//! The internal contract between the main Worker and a stream's room (`ChatRoom`, in the chat Worker, crate
//! `durable-objects`): the paths and the typed bodies both sides serialize and parse, so neither builds or reads them
//! by hand. The table in durable-objects/src/lib.rs documents each route; `DonationPost` (in `donation`) and the shard
//! types (in `shard`) belong to the same contract.

use serde::{Deserialize, Serialize};

use crate::stream::StreamStatus;

/// `GET`, with `Upgrade: websocket` and the identity headers (`HEADER_*`): a chat socket.
pub const ROOM_WEBSOCKET: &str = "/internal/websocket";
/// `POST` `DonationPost` -> `DonationDelivered`.
pub const ROOM_DONATION: &str = "/internal/donation";
/// `POST` `StatusPost` -> `StatusPost` (the status the room now shows).
pub const ROOM_STATUS: &str = "/internal/status";
/// `GET ?before=&limit=` (`HistoryQuery`) -> the page of `GET /api/streams/{id}/messages`.
pub const ROOM_MESSAGES: &str = "/internal/messages";
/// `POST` `LogoutPost` -> `LogoutDone` (also room -> shard, `/internal/shard/logout`).
pub const ROOM_LOGOUT: &str = "/internal/logout";

/// `GET ?user_id=` -> `{"messages": [...]}`: every chat message of that user the room still keeps, oldest first
/// (the account export).
pub const ROOM_USER_MESSAGES: &str = "/internal/user-messages";
/// `POST` `ForgetUserPost` -> `{"chat": n, "donations": n}` (rows rewritten): the account was deleted.
pub const ROOM_FORGET_USER: &str = "/internal/forget-user";
/// `POST` `DeleteMessagePost` -> 200 `{"deleted": true}`, or 404 `message_not_found` (an operator's delete).
pub const ROOM_DELETE_MESSAGE: &str = "/internal/delete-message";

/// A deleted account: its chat messages stay, shown as `DELETED_USER_NAME` with `DELETED_USER_ID` and no name;
/// the donation alerts of its `orders` lose the donor's name and message; its bans and timeouts go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetUserPost {
    pub user_id: String,
    #[serde(default)]
    pub orders: Vec<String>,
}

/// An operator deletes one message of the room by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteMessagePost {
    pub id: String,
}

/// `GET ?from_ms=&to_ms=&limit=&base_ms=` -> the page of `GET .../broadcasts/{b}/chat` (`crate::replay::page`):
/// the history items (chat and donations, not deleted, not by a banned user) sent from `from_ms` to `to_ms` (unix
/// ms, both included), oldest first, with their offsets from `base_ms`.
pub const ROOM_REPLAY: &str = "/internal/replay";
/// `POST` `KeepPost` -> `KeepPost`: which history to keep beyond the newest `HISTORY_KEEP` messages.
pub const ROOM_KEEP: &str = "/internal/keep";

/// Messages sent at or after `since_ms` (unix ms: the start of the stream's oldest broadcast that still exists)
/// are kept however many there are, for the broadcasts' chat replay; None: only the newest `HISTORY_KEEP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepPost {
    pub since_ms: Option<i64>,
}

/// The stream went live or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPost {
    pub status: StreamStatus,
}

/// The answer to a `DonationPost`: false when that order id was shown before (the worker retries until it is
/// acknowledged, and the room shows each order once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonationDelivered {
    pub delivered: bool,
}

/// A login was revoked: close every socket opened with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutPost {
    pub login_id: String,
}

/// How many sockets a `LogoutPost` closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutDone {
    pub closed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_keep_the_documented_wire_shape() {
        let s = serde_json::to_string(&StatusPost {
            status: StreamStatus::Live,
        })
        .unwrap();
        assert_eq!(s, r#"{"status":"live"}"#);
        assert_eq!(
            serde_json::from_str::<StatusPost>(r#"{"status":"offline"}"#)
                .unwrap()
                .status,
            StreamStatus::Offline
        );
        assert!(serde_json::from_str::<StatusPost>(r#"{"status":"paused"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&LogoutPost { login_id: "f1".into() }).unwrap(),
            r#"{"login_id":"f1"}"#
        );
        assert_eq!(
            serde_json::to_string(&DonationDelivered { delivered: true }).unwrap(),
            r#"{"delivered":true}"#
        );
        assert_eq!(
            serde_json::to_string(&LogoutDone { closed: 2 }).unwrap(),
            r#"{"closed":2}"#
        );
    }
}
