//! Chat replay (issue 25): a past (or live) broadcast's chat and donations, in order, each with `offset_ms`, its
//! time from the broadcast's first segment, so a player shows each beside the moment it was sent. The room keeps
//! every message of a broadcast while the broadcast exists (`chat::KeepPost`); this module holds the rules: the
//! query, where a broadcast's time starts, and the replay item made of a stored history item.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::page;

/// `?from_ms=&limit=`: messages from `from_ms` (ms from the broadcast's first segment, default 0), at most `limit`
/// (default 20, max 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayQuery {
    pub from_ms: i64,
    pub limit: u32,
}

/// The longest broadcast offset accepted (a year): past it nothing is sent anyway.
const MAX_FROM_MS: i64 = 366 * 86_400_000;

impl ReplayQuery {
    pub fn parse(from_ms: Option<&str>, limit: Option<&str>) -> Result<ReplayQuery, ApiError> {
        let limit = page::parse_limit(limit)?;
        let from_ms = match from_ms {
            // Absent is the start; present but empty is not a number (422, like every other bad parameter).
            None => 0,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=MAX_FROM_MS).contains(n))
                .ok_or_else(|| ApiError::invalid("from_ms", "must be a whole number of milliseconds, 0 or more"))?,
        };
        Ok(ReplayQuery { from_ms, limit })
    }
}

/// Where a broadcast's time starts (unix ms): the wall-clock time of its first segment's first frame
/// (`#EXT-X-PROGRAM-DATE-TIME`) where the origin said it, else when the broadcast started.
pub fn base_ms(first_segment_pdt_ms: Option<i64>, started_unix: i64) -> i64 {
    first_segment_pdt_ms.unwrap_or(started_unix * 1000)
}

/// The replay item of a stored history item (the room's JSON of a `chat` or `donation` frame) sent at `ts_ms`:
/// `{id, kind, user, text, offset_ms, ts}`, donations with `amount` and `currency` too. None for anything else.
pub fn item(stored: &Value, ts_ms: i64, base_ms: i64) -> Option<Value> {
    let offset_ms = (ts_ms - base_ms).max(0);
    let ts = stored.get("ts")?;
    let id = stored.get("id")?;
    match stored.get("type")?.as_str()? {
        "chat" => Some(json!({
            "id": id, "kind": "chat", "user": stored.get("user")?, "text": stored.get("text")?,
            "offset_ms": offset_ms, "ts": ts,
        })),
        "donation" => Some(json!({
            "id": id, "kind": "donation",
            "user": { "id": null, "username": stored.get("donor")? },
            "text": stored.get("message").and_then(Value::as_str).unwrap_or(""),
            "amount": stored.get("amount")?, "currency": stored.get("currency")?,
            "offset_ms": offset_ms, "ts": ts,
        })),
        _ => None,
    }
}

/// The page of `GET .../chat` made of the room's stored items `(ts_ms, stored JSON)` (oldest first, at most
/// `limit`): `{"messages": [...], "next_from_ms"}`, the next page starting just after the last item shown when the
/// page is full.
pub fn page(rows: &[(i64, String)], base_ms: i64, limit: usize) -> Value {
    let messages: Vec<Value> = rows
        .iter()
        .filter_map(|(ts, body)| item(&serde_json::from_str(body).ok()?, *ts, base_ms))
        .collect();
    let next_from_ms = (rows.len() >= limit)
        .then(|| rows.last().map(|(ts, _)| (ts - base_ms).max(0) + 1))
        .flatten();
    json!({ "messages": messages, "next_from_ms": next_from_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_query_starts_at_the_beginning_and_refuses_what_is_not_a_time() {
        assert_eq!(
            ReplayQuery::parse(None, None).unwrap(),
            ReplayQuery { from_ms: 0, limit: 20 }
        );
        assert_eq!(ReplayQuery::parse(Some("1500"), Some("100")).unwrap().from_ms, 1500);
        for bad in ["", "-1", "1.5", "x", "99999999999999"] {
            assert!(
                ReplayQuery::parse(Some(bad), None)
                    .unwrap_err()
                    .body()
                    .contains("from_ms"),
                "{bad}"
            );
        }
        assert!(ReplayQuery::parse(None, Some("101"))
            .unwrap_err()
            .body()
            .contains("limit"));
    }

    #[test]
    fn time_starts_at_the_first_segments_program_date_time_where_there_is_one() {
        assert_eq!(base_ms(Some(1_700_000_000_123), 1_700_000_000), 1_700_000_000_123);
        assert_eq!(base_ms(None, 1_700_000_000), 1_700_000_000_000);
    }

    #[test]
    fn chat_and_donations_become_replay_items_with_their_offset() {
        let chat = json!({"type": "chat", "id": "7", "user": {"id": "u", "username": "budi"}, "text": "hi",
                          "ts": "2026-12-06T10:00:05.000Z"});
        let item = item(&chat, 5_000, 1_000).unwrap();
        assert_eq!(item["kind"], "chat");
        assert_eq!(item["offset_ms"], 4_000);
        assert_eq!(item["user"]["username"], "budi");
        assert_eq!(item["text"], "hi");
        let donation = json!({"type": "donation", "id": "8", "donor": "Sari", "amount": 5000, "currency": "IDR",
                              "message": null, "ts": "2026-12-06T10:00:06.000Z"});
        let item = super::item(&donation, 500, 1_000).unwrap();
        assert_eq!(
            (item["kind"].as_str(), item["offset_ms"].as_i64()),
            (Some("donation"), Some(0))
        );
        assert_eq!(
            (item["user"]["username"].as_str(), item["text"].as_str()),
            (Some("Sari"), Some(""))
        );
        assert!(super::item(&json!({"type": "status"}), 0, 0).is_none());
    }

    #[test]
    fn a_full_page_says_where_the_next_one_starts() {
        let rows = vec![
            (
                2_000,
                r#"{"type":"chat","id":"1","user":{"id":"u","username":"a"},"text":"x","ts":"t"}"#.to_string(),
            ),
            (
                3_500,
                r#"{"type":"chat","id":"2","user":{"id":"u","username":"a"},"text":"y","ts":"t"}"#.to_string(),
            ),
        ];
        let full = page(&rows, 1_000, 2);
        assert_eq!(full["messages"].as_array().unwrap().len(), 2);
        assert_eq!(full["next_from_ms"], 2_501);
        assert!(page(&rows, 1_000, 3)["next_from_ms"].is_null());
    }
}
