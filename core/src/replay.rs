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
    let offset_ms = offset_ms(ts_ms, base_ms);
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

/// Where a message sent at `ts_ms` is in a broadcast whose time starts at `base_ms`: ms after it, 0 for what was said
/// before (between the publish and the first segment).
pub fn offset_ms(ts_ms: i64, base_ms: i64) -> i64 {
    (ts_ms - base_ms).max(0)
}

/// Most rows one offset's page holds (`Page::WholeOffset`): far more than are ever sent in one millisecond or before
/// a first segment.
pub const WHOLE_OFFSET_MAX: i64 = 1000;

/// A page of `GET .../chat` as the room makes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Page {
    /// The page: `{"messages": [...], "next_from_ms"}`.
    Ready(Value),
    /// One offset has more messages than the page holds: read every stored item from the page's start up to
    /// `until_ms` (unix ms, included; at most `WHOLE_OFFSET_MAX`) and make the page of them with `whole_offset`.
    WholeOffset { until_ms: i64 },
}

fn page_json(rows: &[(i64, String)], base_ms: i64, next_from_ms: Option<i64>) -> Value {
    let messages: Vec<Value> = rows
        .iter()
        .filter_map(|(ts, body)| item(&serde_json::from_str(body).ok()?, *ts, base_ms))
        .collect();
    json!({ "messages": messages, "next_from_ms": next_from_ms })
}

/// The page of `GET .../chat` made of the room's stored items `(ts_ms, stored JSON)` from the page's start, oldest
/// first, read `limit + 1` at most (the one past the page says whether there are more; `next_from_ms` is null when
/// there are none so far). `next_from_ms` names an offset, and the next page starts with every message at it, so a
/// page never ends inside an offset (several messages in one millisecond, or everything said before the first
/// segment, all at 0): that would skip the rest of them. A page that would ends before that offset instead (it then
/// holds fewer than `limit`), and an offset that fills a page alone is one page, whole (`Page::WholeOffset`).
pub fn page(rows: &[(i64, String)], base_ms: i64, limit: usize) -> Page {
    let limit = limit.max(1);
    if rows.len() <= limit {
        return Page::Ready(page_json(rows, base_ms, None));
    }
    let at = |i: usize| offset_ms(rows[i].0, base_ms);
    let last = at(limit - 1);
    if at(limit) > last {
        return Page::Ready(page_json(&rows[..limit], base_ms, Some(last + 1)));
    }
    // The page's last offset goes on: stop before it, or take all of it when it is the whole page.
    let before = rows[..limit].partition_point(|(ts, _)| offset_ms(*ts, base_ms) < last);
    if before > 0 {
        Page::Ready(page_json(&rows[..before], base_ms, Some(last)))
    } else {
        Page::WholeOffset {
            until_ms: base_ms + last,
        }
    }
}

/// The page of every stored item of one offset (`Page::WholeOffset`); the next page starts just after it.
pub fn whole_offset(rows: &[(i64, String)], base_ms: i64) -> Value {
    let next = rows.last().map(|(ts, _)| offset_ms(*ts, base_ms) + 1);
    page_json(rows, base_ms, next)
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

    fn row(ts: i64, id: u32) -> (i64, String) {
        (
            ts,
            format!(r#"{{"type":"chat","id":"{id}","user":{{"id":"u","username":"a"}},"text":"x","ts":"t"}}"#),
        )
    }

    fn ready(p: Page) -> Value {
        match p {
            Page::Ready(v) => v,
            other => panic!("not a ready page: {other:?}"),
        }
    }

    fn ids(page: &Value) -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_page_says_where_the_next_one_starts_and_the_last_says_there_is_no_more() {
        let rows = vec![row(2_000, 1), row(3_500, 2), row(4_000, 3)];
        let full = ready(page(&rows, 1_000, 2));
        assert_eq!(ids(&full), ["1", "2"]);
        assert_eq!(full["next_from_ms"], 2_501);
        assert!(ready(page(&rows[..2], 1_000, 2))["next_from_ms"].is_null());
        assert!(ready(page(&rows, 1_000, 3))["next_from_ms"].is_null());
    }

    #[test]
    fn a_page_never_ends_inside_an_offset() {
        // Two messages in one millisecond where the page would end: the page stops before them.
        let rows = vec![row(2_000, 1), row(3_500, 2), row(3_500, 3)];
        let p = ready(page(&rows, 1_000, 2));
        assert_eq!(
            (ids(&p), p["next_from_ms"].as_i64()),
            (vec!["1".to_string()], Some(2_500))
        );
        // One offset fills the page: the page is all of it.
        let rows = vec![row(3_500, 1), row(3_500, 2), row(3_500, 3)];
        assert_eq!(page(&rows, 1_000, 2), Page::WholeOffset { until_ms: 3_500 });
        let whole = whole_offset(&rows, 1_000);
        assert_eq!((ids(&whole).len(), whole["next_from_ms"].as_i64()), (3, Some(2_501)));
    }

    /// Pages through `rows` (sorted by time) as the Worker and the room do, `limit` at a time: the Worker maps
    /// `from_ms` to the room's time (0: from the broadcast's start), the room reads `limit + 1` rows from there.
    fn read_all(rows: &[(i64, String)], started_ms: i64, base_ms: i64, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut from_ms = 0;
        for _ in 0..100 {
            let from = if from_ms == 0 {
                base_ms.min(started_ms)
            } else {
                base_ms + from_ms
            };
            let read = |until: i64, n: usize| -> Vec<(i64, String)> {
                rows.iter()
                    .filter(|(ts, _)| *ts >= from && *ts <= until)
                    .take(n)
                    .cloned()
                    .collect()
            };
            let p = match page(&read(i64::MAX, limit + 1), base_ms, limit) {
                Page::Ready(p) => p,
                Page::WholeOffset { until_ms } => whole_offset(&read(until_ms, WHOLE_OFFSET_MAX as usize), base_ms),
            };
            out.extend(ids(&p));
            match p["next_from_ms"].as_i64() {
                Some(next) => {
                    assert!(next > from_ms, "next_from_ms goes forward: {from_ms} then {next}");
                    from_ms = next;
                }
                None => return out,
            }
        }
        panic!("no end after 100 pages");
    }

    #[test]
    fn paging_by_any_size_shows_every_message_once_in_order() {
        // Four said before the first segment (all at offset 0, one exactly at it), three in one millisecond, two
        // in another, and single ones between.
        let started = 10_000;
        let base = 11_500;
        let times = [
            10_100, 10_200, 10_900, 11_500, 12_000, 12_000, 12_000, 12_001, 13_000, 13_000, 14_000,
        ];
        let rows: Vec<(i64, String)> = times.iter().zip(1..).map(|(ts, id)| row(*ts, id)).collect();
        let all: Vec<String> = (1..=times.len()).map(|i| i.to_string()).collect();
        for limit in 1..=12 {
            assert_eq!(read_all(&rows, started, base, limit), all, "pages of {limit}");
        }
    }
}
