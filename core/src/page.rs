//! Pagination: `?limit=` (default 20, max 100) and an opaque `cursor` that encodes the last row's sort key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// Reads `?limit=`; absent means the default, anything but 1..=100 is a 422.
pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// Encodes a sort key as an opaque cursor.
pub fn encode_cursor<T: Serialize>(key: &T) -> String {
    B64URL.encode(serde_json::to_vec(key).expect("BUG: cursor keys are plain data"))
}

/// Decodes a cursor made by `encode_cursor`; anything else is a 422 on `cursor`.
pub fn decode_cursor<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    B64URL
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API handed out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_20_and_caps_at_100() {
        assert_eq!(parse_limit(None).unwrap(), 20);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", "1.5"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let c = encode_cursor(&(1, "2026-01-01T00:00:00Z", "abc"));
        let back: (i32, String, String) = decode_cursor(&c).unwrap();
        assert_eq!(back.2, "abc");
        assert!(decode_cursor::<(i32, String, String)>("%%%").is_err());
        assert!(decode_cursor::<(i32, String, String)>("e30").is_err());
    }
}
