//! Message ids and history paging. A message id is the room's sequence number as decimal text: ids only grow, so
//! `before=<id>` pages backwards with one index lookup, and a deleted message keeps its number (never reused).

use crate::error::ApiError;
use crate::page;

/// The id of a stored chat or donation message in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(i64);

/// Largest id we hand out: 15 digits, below 2^53 (JavaScript clients hold it exactly) and a rule `openapi.json`
/// can state as a pattern (`before`: 1-15 digits without a leading zero).
const MAX_SEQ: i64 = 999_999_999_999_999;

impl MessageId {
    /// The id following `seq` (the room's last sequence number).
    pub fn after(seq: i64) -> Self {
        Self(seq + 1)
    }
    /// Trusts a sequence number read back from storage.
    pub fn from_seq(seq: i64) -> Self {
        Self(seq)
    }
    /// Accepts ids exactly as this module writes them: 1-15 digits, no sign, no leading zero.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 15 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<i64>().ok().filter(|n| *n <= MAX_SEQ).map(Self)
    }
    pub fn seq(&self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `GET /api/streams/{id}/messages?before=<message id>&limit=`: the messages older than `before` (or the newest
/// when absent), at most `limit` (default 20, max 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub before: Option<MessageId>,
    pub limit: u32,
}

impl HistoryQuery {
    pub fn parse(before: Option<&str>, limit: Option<&str>) -> Result<Self, ApiError> {
        let limit = page::parse_limit(limit)?;
        let before = match before {
            None | Some("") => None,
            Some(raw) => {
                Some(MessageId::parse(raw).ok_or_else(|| ApiError::invalid("before", "must be a message id"))?)
            }
        };
        Ok(Self { before, limit })
    }

    /// The query string that reproduces this query (the worker forwards it to the room).
    pub fn to_query_string(&self) -> String {
        match self.before {
            Some(id) => format!("before={id}&limit={}", self.limit),
            None => format!("limit={}", self.limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_as_decimal_text() {
        let id = MessageId::after(41);
        assert_eq!(id.to_string(), "42");
        assert_eq!(MessageId::parse("42"), Some(id));
    }

    #[test]
    fn anything_but_a_plain_positive_number_is_not_a_message_id() {
        for bad in [
            "",
            "0",
            "007",
            "-1",
            "+1",
            "1.5",
            "1e3",
            "abc",
            "99999999999999999",
            "9007199254740991",
            "1000000000000000",
        ] {
            assert_eq!(MessageId::parse(bad), None, "{bad:?}");
        }
        assert!(MessageId::parse("999999999999999").is_some());
    }

    #[test]
    fn a_history_query_defaults_to_the_newest_twenty() {
        let q = HistoryQuery::parse(None, None).unwrap();
        assert_eq!(
            q,
            HistoryQuery {
                before: None,
                limit: 20
            }
        );
        assert_eq!(q.to_query_string(), "limit=20");
    }

    #[test]
    fn a_history_query_with_before_round_trips() {
        let q = HistoryQuery::parse(Some("120"), Some("50")).unwrap();
        assert_eq!(q.before, MessageId::parse("120"));
        assert_eq!(HistoryQuery::parse(Some("120"), Some("50")).unwrap(), q);
        assert_eq!(q.to_query_string(), "before=120&limit=50");
    }

    #[test]
    fn a_bad_before_or_limit_is_a_422_naming_the_field() {
        let e = HistoryQuery::parse(Some("x"), None).unwrap_err();
        assert_eq!(e.status(), 422);
        assert!(e.body().contains("before"));
        let e = HistoryQuery::parse(None, Some("1000")).unwrap_err();
        assert!(e.body().contains("limit"));
    }
}
