//! Who a socket is: the `Identity` the worker vouches for in headers it alone sets on the upgrade it forwards to the
//! room, and the `ConnId` the room gives each socket. The room never reads identity from anything a client sent.

use serde::{Deserialize, Serialize};

use crate::account::Username;
use crate::ids::UserId;

/// Header carrying the authenticated user's id (absent for anonymous sockets). Set only by the worker.
pub const HEADER_USER_ID: &str = "X-Sunnylive-User-Id";
/// Header carrying the authenticated user's username (absent for anonymous sockets). Set only by the worker.
pub const HEADER_USERNAME: &str = "X-Sunnylive-Username";
/// Header carrying `host`, `viewer` or `anonymous`. Set only by the worker (`host` = the stream's owner).
pub const HEADER_ROLE: &str = "X-Sunnylive-Role";
/// Header carrying the stream's status as D1 knew it at upgrade time (`live` or `offline`); used only until the
/// room has been told a status through its internal route.
pub const HEADER_STREAM_STATUS: &str = "X-Sunnylive-Stream-Status";
/// Header carrying the stream id on every request the worker makes to a room, so the room can write its viewer
/// count to that stream's D1 row. Set only by the worker.
pub const HEADER_STREAM_ID: &str = "X-Sunnylive-Stream-Id";
/// Header carrying the login (refresh-token family) a signed-in socket was opened with, so a logout can close that
/// login's sockets (`POST /internal/logout`). Set only by the worker; absent for anonymous sockets.
pub const HEADER_LOGIN_ID: &str = "X-Sunnylive-Login-Id";

/// Header carrying the client's address as the worker keys its per-address limits (`http::client_ip`), on the
/// upgrade only. The room caps sockets per address and counts anonymous viewers by address. Set only by the worker.
pub const HEADER_CLIENT_ADDRESS: &str = "X-Sunnylive-Client-Address";

/// Where a socket comes from: the client address the worker saw (an IP, or the worker's key for it). Opaque to the
/// room, which only compares addresses. Printable ASCII without spaces (it is a field of the attachment text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientAddress(String);

impl ClientAddress {
    /// An IPv6 address is at most 45 characters; anything longer is not an address.
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Option<Self> {
        (!s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a socket may do in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The stream's owner: may moderate, is exempt from rate limits and slow mode.
    Host,
    /// A signed-in user: may chat.
    Viewer,
    /// No access token: may read only.
    Anonymous,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Viewer => "viewer",
            Role::Anonymous => "anonymous",
        }
    }
}

/// A socket's identity. Anonymous sockets have no user; the others always have one. Not a serde type: it travels
/// as headers (`headers`/`from_headers`) and in the socket attachment (`Connection::to_attachment`), both plain text
/// (an internally tagged serde enum would buffer through serde's `Content`, ~9 KB of wasm for this one type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    Viewer { id: UserId, username: String },
    Host { id: UserId, username: String },
}

impl Identity {
    /// Reads the identity headers the worker set. Missing or inconsistent headers are refused: the worker always
    /// sets a role, and a user id and username exactly when the role is not anonymous.
    pub fn from_headers(user_id: Option<&str>, username: Option<&str>, role: Option<&str>) -> Result<Self, String> {
        match (role, user_id, username) {
            (Some("anonymous"), None, None) => Ok(Identity::Anonymous),
            (Some(r @ ("host" | "viewer")), Some(id), Some(name)) => {
                let id = UserId::parse(id).ok_or_else(|| format!("{HEADER_USER_ID} is not a user id"))?;
                let name = Username::parse(name).map_err(|why| format!("{HEADER_USERNAME} {why}"))?;
                let username = name.as_str().to_string();
                Ok(if r == "host" {
                    Identity::Host { id, username }
                } else {
                    Identity::Viewer { id, username }
                })
            }
            (Some("anonymous"), _, _) => Err("an anonymous socket cannot carry a user".into()),
            (Some("host" | "viewer"), _, _) => Err(format!("{HEADER_USER_ID} and {HEADER_USERNAME} are required")),
            _ => Err(format!("{HEADER_ROLE} must be host, viewer or anonymous")),
        }
    }

    /// The headers the worker sets for this identity (the inverse of `from_headers`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(HEADER_ROLE, self.role().as_str().to_string())];
        if let Some((id, username)) = self.user() {
            out.push((HEADER_USER_ID, id.as_str().to_string()));
            out.push((HEADER_USERNAME, username.to_string()));
        }
        out
    }

    pub fn role(&self) -> Role {
        match self {
            Identity::Anonymous => Role::Anonymous,
            Identity::Viewer { .. } => Role::Viewer,
            Identity::Host { .. } => Role::Host,
        }
    }

    /// The user behind the socket, if signed in.
    pub fn user(&self) -> Option<(&UserId, &str)> {
        match self {
            Identity::Anonymous => None,
            Identity::Viewer { id, username } | Identity::Host { id, username } => Some((id, username)),
        }
    }

    pub fn user_id(&self) -> Option<&UserId> {
        self.user().map(|(id, _)| id)
    }

    pub fn is_host(&self) -> bool {
        matches!(self, Identity::Host { .. })
    }
}

/// The room's name for one socket. The shell draws it at random on upgrade and keeps it in the socket's attachment
/// and tag, so it survives hibernation and finds the socket again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnId(String);

impl ConnId {
    /// Mints a connection id from random bytes.
    pub fn generate(random: [u8; crate::ids::ID_RANDOM_BYTES]) -> Self {
        Self(crate::ids::new_id(random))
    }
    /// Accepts a value read back from an attachment or a tag.
    pub fn parse(s: &str) -> Option<Self> {
        crate::ids::looks_like_id(s).then(|| Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "abcdefghijkmnpqr";

    #[test]
    fn the_three_roles_round_trip_through_headers() {
        for identity in [
            Identity::Anonymous,
            Identity::Viewer {
                id: UserId::parse(ID).unwrap(),
                username: "budi".into(),
            },
            Identity::Host {
                id: UserId::parse(ID).unwrap(),
                username: "sari_live".into(),
            },
        ] {
            let headers = identity.headers();
            let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
            let back = Identity::from_headers(get(HEADER_USER_ID), get(HEADER_USERNAME), get(HEADER_ROLE)).unwrap();
            assert_eq!(back, identity);
        }
    }

    #[test]
    fn inconsistent_or_malformed_identity_headers_are_refused() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
        let cases: [Case; 7] = [
            (None, None, None, "no role at all"),
            (None, None, Some("admin"), "an unknown role"),
            (
                Some(ID),
                Some("budi"),
                Some("anonymous"),
                "an anonymous socket with a user",
            ),
            (None, Some("budi"), Some("viewer"), "a viewer without an id"),
            (Some(ID), None, Some("host"), "a host without a username"),
            (Some("not-an-id"), Some("budi"), Some("viewer"), "a malformed user id"),
            (Some(ID), Some("<b>x</b>"), Some("viewer"), "a username with markup"),
        ];
        for (id, name, role, why) in cases {
            assert!(Identity::from_headers(id, name, role).is_err(), "accepted {why}");
        }
    }

    #[test]
    fn a_connection_round_trips_through_its_attachment_text() {
        let conn = ConnId::generate([3; 10]);
        for identity in [
            Identity::Anonymous,
            Identity::Viewer {
                id: UserId::parse(ID).unwrap(),
                username: "budi".into(),
            },
            Identity::Host {
                id: UserId::parse(ID).unwrap(),
                username: "sari.live-1".into(),
            },
        ] {
            let c = crate::chat::Connection {
                conn: conn.clone(),
                client: ClientAddress::parse("2001:db8::1").unwrap(),
                identity,
            };
            let text = c.to_attachment();
            assert!(text.len() < 100, "well under the 2 KiB attachment limit: {text}");
            assert_eq!(crate::chat::Connection::from_attachment(&text), Some(c));
        }
        assert_eq!(
            crate::chat::Connection::from_attachment(&format!("{} 192.0.2.1 host {ID} sari", conn.as_str()))
                .map(|c| c.identity),
            Some(Identity::Host {
                id: UserId::parse(ID).unwrap(),
                username: "sari".into()
            })
        );
    }

    #[test]
    fn malformed_attachments_are_refused() {
        let conn = ConnId::generate([3; 10]);
        for bad in [
            String::new(),
            "nope 192.0.2.1 anonymous".to_string(),
            conn.as_str().to_string(),
            format!("{} anonymous", conn.as_str()),
            format!("{} 192.0.2.1 admin", conn.as_str()),
            format!("{} 192.0.2.1 anonymous {ID} budi", conn.as_str()),
            format!("{} 192.0.2.1 viewer {ID}", conn.as_str()),
            format!("{} 192.0.2.1 viewer not-an-id budi", conn.as_str()),
            format!("{} 192.0.2.1 viewer {ID} budi extra", conn.as_str()),
            format!(r#"{{"conn":"{}","identity":{{"role":"anonymous"}}}}"#, conn.as_str()),
        ] {
            assert_eq!(crate::chat::Connection::from_attachment(&bad), None, "accepted {bad:?}");
        }
    }

    #[test]
    fn client_addresses_are_short_printable_words() {
        for good in ["192.0.2.1", "2001:db8::1", "local"] {
            assert_eq!(
                ClientAddress::parse(good).map(|a| a.as_str().to_string()),
                Some(good.into())
            );
        }
        for bad in ["", "a b", "x\n", &"1".repeat(65), "é"] {
            assert_eq!(ClientAddress::parse(bad), None, "accepted {bad:?}");
        }
    }

    #[test]
    fn connection_ids_have_the_id_shape() {
        let c = ConnId::generate([7; 10]);
        assert_eq!(ConnId::parse(c.as_str()), Some(c));
        assert_eq!(ConnId::parse("nope"), None);
    }
}
