//! Pagination: `?limit=` (default 20, max 100) and a `cursor` that names the last row's sort key (opaque to clients,
//! but of a fixed shape that `openapi.json` states as a pattern).

use crate::donation::OrderId;
use crate::error::ApiError;
use crate::ids::looks_like_id;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// Reads `?limit=`; absent means the default, anything but 1..=100 is a 422.
pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        // `limit=` is not a number: the schema says integer, so it is a 422 like any other non-number.
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// A cursor's timestamp part: RFC 3339 in whole seconds and UTC, as the rows store it (compared as text, so only
/// the shape matters).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn bad_cursor() -> ApiError {
    ApiError::invalid("cursor", "is not a cursor this API handed out")
}

/// The public listing's cursor, `<1 if live else 0>.<created_at>.<stream id>`: plain text of a fixed shape, so the
/// OpenAPI pattern can say exactly which cursors are accepted (every string of that shape is a valid position).
pub fn encode_stream_cursor(live: bool, created_at: &str, id: &str) -> String {
    format!("{}.{created_at}.{id}", u8::from(live))
}

/// Reads `encode_stream_cursor`'s text back as (is live, created_at, id); anything else is a 422 on `cursor`.
pub fn decode_stream_cursor(raw: &str) -> Result<(i64, String, String), ApiError> {
    let mut parts = raw.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(live @ ("0" | "1")), Some(at), Some(id)) if is_timestamp(at) && looks_like_id(id) => {
            Ok((i64::from(live == "1"), at.to_string(), id.to_string()))
        }
        _ => Err(bad_cursor()),
    }
}

/// The owner's donation list cursor, `<created_at>.<order id>`.
pub fn encode_donation_cursor(created_at: &str, order_id: &str) -> String {
    format!("{created_at}.{order_id}")
}

/// Reads `encode_donation_cursor`'s text back as (created_at, order id); anything else is a 422 on `cursor`.
pub fn decode_donation_cursor(raw: &str) -> Result<(String, String), ApiError> {
    match raw.split_once('.') {
        Some((at, order_id)) if is_timestamp(at) && OrderId::parse(order_id).is_ok() => {
            Ok((at.to_string(), order_id.to_string()))
        }
        _ => Err(bad_cursor()),
    }
}

/// A stream's broadcasts cursor, `<started_at>.<broadcast id>`.
pub fn encode_broadcast_cursor(started_at: &str, id: &str) -> String {
    format!("{started_at}.{id}")
}

/// Reads `encode_broadcast_cursor`'s text back as (started_at, broadcast id); anything else is a 422 on `cursor`.
pub fn decode_broadcast_cursor(raw: &str) -> Result<(String, String), ApiError> {
    match raw.split_once('.') {
        Some((at, id)) if is_timestamp(at) && looks_like_id(id) => Ok((at.to_string(), id.to_string())),
        _ => Err(bad_cursor()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_cursor_round_trips_and_nothing_else_is_one() {
        let c = encode_broadcast_cursor("2026-12-02T06:00:00Z", "abcdefghijkmnpqr");
        assert_eq!(
            decode_broadcast_cursor(&c).unwrap(),
            ("2026-12-02T06:00:00Z".to_string(), "abcdefghijkmnpqr".to_string())
        );
        for bad in [
            "",
            "x",
            "2026-12-02T06:00:00Z.",
            "2026-12-02T06:00:00Z.short",
            "2026-12-02.abcdefghijkmnpqr",
        ] {
            assert!(decode_broadcast_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limit_defaults_to_20_and_caps_at_100() {
        assert_eq!(parse_limit(None).unwrap(), 20);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", "1.5"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_stream_cursor_round_trips_and_anything_else_is_refused() {
        let c = encode_stream_cursor(true, "2026-01-01T00:00:00Z", "abcdefghijkmnpqr");
        assert_eq!(c, "1.2026-01-01T00:00:00Z.abcdefghijkmnpqr");
        let back = decode_stream_cursor(&c).unwrap();
        assert_eq!(back, (1, "2026-01-01T00:00:00Z".into(), "abcdefghijkmnpqr".into()));
        for bad in [
            "%%%",
            "e30",
            "2.2026-01-01T00:00:00Z.abcdefghijkmnpqr",
            "1.2026-01-01 00:00:00Z.abcdefghijkmnpqr",
            "1.2026-01-01T00:00:00Z.abcdefghijkmnpq0",
            "1.2026-01-01T00:00:00Z.abcdefghijkmnpqr.x",
        ] {
            assert!(decode_stream_cursor(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_donation_cursor_round_trips_and_anything_else_is_refused() {
        let c = encode_donation_cursor("2026-01-01T00:00:00Z", "sl-abc.d");
        assert_eq!(decode_donation_cursor(&c).unwrap().1, "sl-abc.d");
        for bad in [
            "nonsense",
            "2026-01-01T00:00:00Z.",
            "2026-01-01T00:00:00Z.a b",
            "x.sl-abc",
        ] {
            assert!(decode_donation_cursor(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
