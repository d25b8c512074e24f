//! The donation rules, each written once: what an amount, a donor name, a message and an order id may be. The
//! checkout (`DonationRequest`), the chat alert (`chat::RoomDonation`) and the Midtrans code all check through these
//! types, and a host test (core/tests/migration_checks.rs) holds the D1 CHECKs on `donations` against these constants.
//!
//! Why these numbers: a donor name is 1-32 characters, the same as a username, because a signed-in donor is shown
//! under their username and both land in the same `donor_name` column and chat line. An order id is 1-50 characters
//! of `[A-Za-z0-9-_~.]` because that is what Midtrans accepts (`transaction_details.order_id`); a longer one could
//! never have been paid, so nothing anywhere accepts one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, FieldErrors};
use crate::ids::{new_id, ID_RANDOM_BYTES};

/// Smallest donation Midtrans lets us charge comfortably (and that is worth an alert).
pub const MIN_RUPIAH: u64 = 1_000;
/// Largest single donation we accept.
pub const MAX_RUPIAH: u64 = 100_000_000;
/// Longest donation message, in characters.
pub const MESSAGE_MAX_CHARS: usize = 200;
/// Longest donor name, in characters: a guest's chosen name, and a username (which has the same limit).
pub const DONOR_NAME_MAX_CHARS: usize = 32;
/// What a guest who gives no name is shown as.
pub const ANONYMOUS_DONOR: &str = "Anonymous";

/// A donation amount: whole rupiah, 1,000 to 100,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Rupiah(u64);

impl Rupiah {
    pub fn parse(amount: u64) -> Result<Self, String> {
        if (MIN_RUPIAH..=MAX_RUPIAH).contains(&amount) {
            Ok(Self(amount))
        } else {
            Err(format!(
                "must be a whole number of rupiah from {MIN_RUPIAH} to {MAX_RUPIAH}"
            ))
        }
    }

    /// Reads a JSON value: only a whole number in range counts (not `"10000"`, not `10000.5`). `10000.0` is the
    /// same number as `10000` in JSON (and an integer to JSON Schema), so it counts too.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let whole = v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=MAX_RUPIAH as f64).contains(f))
                .map(|f| f as u64)
        });
        match whole {
            Some(n) => Self::parse(n),
            None => Err(format!(
                "must be a whole number of rupiah from {MIN_RUPIAH} to {MAX_RUPIAH}"
            )),
        }
    }

    /// Trusts an amount read back from our own storage (the column has the same CHECK).
    pub fn from_trusted(amount: i64) -> Self {
        Self(amount.max(0) as u64)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Invisible characters that change how text around them looks or reads: Unicode's format characters (bidi
/// embeddings, overrides and isolates, zero-width spaces and joiners, word joiners, the BOM, interlinear annotation
/// and tag characters) and the blank "filler" letters that render as nothing. In a donor name or a donation message
/// they let a guest pose as someone else ("Sari" + U+200B) or flip the text shown on stream (U+202E).
pub fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// The zero-width joiner binds emoji sequences (a family, a flag), so a message may keep it; a name may not.
const ZERO_WIDTH_JOINER: char = '\u{200D}';

/// A donation message: trimmed, at most 200 characters, no control characters (it is shown on stream overlays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DonationMessage(String);

impl DonationMessage {
    /// `None` for an empty or all-blank message.
    pub fn parse(s: &str) -> Result<Option<Self>, String> {
        let t = s.trim();
        if t.chars().count() > MESSAGE_MAX_CHARS {
            return Err(format!("must be at most {MESSAGE_MAX_CHARS} characters long"));
        }
        if has_control_chars(t) {
            return Err("must not contain control characters".into());
        }
        if t.chars().any(|c| is_format_char(c) && c != ZERO_WIDTH_JOINER) {
            return Err("must not contain invisible formatting characters (bidi overrides, zero-width spaces)".into());
        }
        Ok((!t.is_empty()).then(|| Self(t.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A guest's display name: trimmed, 1-32 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DonorName(String);

impl DonorName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let n = t.chars().count();
        if n == 0 || n > DONOR_NAME_MAX_CHARS {
            return Err(format!("must be 1 to {DONOR_NAME_MAX_CHARS} characters long"));
        }
        if has_control_chars(t) {
            return Err("must not contain control characters".into());
        }
        if t.chars().any(is_format_char) {
            return Err("must not contain invisible formatting characters (bidi overrides, zero-width spaces)".into());
        }
        Ok(Self(t.to_string()))
    }

    /// A signed-in donor is shown under their username (already checked by the account rules).
    pub fn from_username(username: &str) -> Self {
        Self(username.to_string())
    }

    pub fn anonymous() -> Self {
        Self(ANONYMOUS_DONOR.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checked `POST /api/streams/{id}/donations` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DonationRequest {
    pub amount: Rupiah,
    pub message: Option<DonationMessage>,
    /// The name a guest asked to be shown under; `None` for a guest who gave none, and always `None` for a
    /// signed-in donor (who is shown under their username).
    pub donor_name: Option<DonorName>,
}

impl DonationRequest {
    /// Checks every field and reports all problems at once. `donor_name` is checked for everyone (one rule in the
    /// contract) and then dropped for `signed_in` donors, who are shown under their username.
    pub fn parse(body: &Value, signed_in: bool) -> Result<Self, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::Malformed("expected a JSON object".into()));
        };
        let mut fields = FieldErrors::new();
        let amount = match obj.get("amount").map(Rupiah::from_json) {
            Some(Ok(a)) => Some(a),
            Some(Err(why)) => {
                fields.insert("amount".into(), why);
                None
            }
            None => {
                fields.insert("amount".into(), "is required".into());
                None
            }
        };
        let message = match obj.get("message") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match DonationMessage::parse(s) {
                Ok(m) => m,
                Err(why) => {
                    fields.insert("message".into(), why);
                    None
                }
            },
            Some(_) => {
                fields.insert("message".into(), "must be a string".into());
                None
            }
        };
        // Checked for everyone, so the contract is one rule whoever calls; a signed-in donor's is then dropped.
        let donor_name = match obj.get("donor_name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match DonorName::parse(s) {
                Ok(n) => Some(n),
                Err(why) => {
                    fields.insert("donor_name".into(), why);
                    None
                }
            },
            Some(_) => {
                fields.insert("donor_name".into(), "must be a string".into());
                None
            }
        }
        .filter(|_| !signed_in);
        match amount {
            Some(amount) if fields.is_empty() => Ok(Self {
                amount,
                message,
                donor_name,
            }),
            _ => Err(ApiError::Invalid(fields)),
        }
    }
}

/// Midtrans refuses order ids longer than this.
pub const ORDER_ID_MAX_LEN: usize = 50;

/// Prefix of every order id we mint, so a Midtrans dashboard search finds Sunnylive's orders at a glance.
pub const ORDER_ID_PREFIX: &str = "sl-";

/// Midtrans's order id: 1-50 characters of `[A-Za-z0-9-_~.]`, unique per merchant account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(String);

impl OrderId {
    /// Mints a fresh order id (`sl-` + 16 base32 symbols = 80 random bits) from random bytes.
    pub fn generate(random: [u8; ID_RANDOM_BYTES]) -> Self {
        Self(format!("{ORDER_ID_PREFIX}{}", new_id(random)))
    }

    /// Accepts any id Midtrans would accept (a path segment, a notification field).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > ORDER_ID_MAX_LEN {
            return Err(format!("must be 1 to {ORDER_ID_MAX_LEN} characters long"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'.'))
        {
            return Err("may contain only letters, digits, '-', '_', '~' and '.'".into());
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_messages_with_invisible_formatting_characters_are_refused() {
        for name in [
            "Sari\u{200B}",
            "\u{202E}iraS",
            "Sa\u{2066}ri",
            "Sari\u{FEFF}",
            "\u{3164}",
            "Sa\u{200D}ri",
        ] {
            assert!(DonorName::parse(name).is_err(), "{name:?}");
        }
        for message in ["halo \u{202E}dlrow", "a\u{200B}b", "x\u{E0041}"] {
            assert!(DonationMessage::parse(message).is_err(), "{message:?}");
        }
        assert!(DonorName::parse("Sari Rahayu").is_ok());
        assert!(DonationMessage::parse("semangat! \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}").is_ok());
        assert!(
            DonationMessage::parse("مرحبا שלום").is_ok(),
            "right-to-left scripts themselves are fine"
        );
    }

    #[test]
    fn amounts_from_1000_to_100_million_rupiah_are_accepted() {
        assert_eq!(Rupiah::parse(1_000).unwrap().get(), 1_000);
        assert_eq!(Rupiah::parse(100_000_000).unwrap().get(), 100_000_000);
    }

    #[test]
    fn a_donation_below_the_minimum_or_above_the_maximum_is_rejected() {
        for bad in [0, 1, 999, 100_000_001, u64::MAX] {
            assert!(Rupiah::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn only_a_whole_json_number_is_an_amount() {
        assert!(Rupiah::from_json(&json!(5000)).is_ok());
        assert_eq!(Rupiah::from_json(&json!(5000.0)).unwrap().get(), 5000);
        for bad in [
            json!("5000"),
            json!(5000.5),
            json!(1e300),
            json!(-5000),
            json!(null),
            json!([5000]),
            json!(true),
        ] {
            assert!(Rupiah::from_json(&bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_message_is_trimmed_and_a_blank_one_is_no_message() {
        assert_eq!(
            DonationMessage::parse("  semangat!  ").unwrap().unwrap().as_str(),
            "semangat!"
        );
        assert_eq!(DonationMessage::parse("   ").unwrap(), None);
    }

    #[test]
    fn a_message_of_200_characters_is_fine_but_201_is_not() {
        assert!(DonationMessage::parse(&"é".repeat(200)).is_ok());
        assert!(DonationMessage::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn a_message_with_control_characters_is_rejected() {
        for bad in ["line\nbreak", "bell\u{7}", "esc\u{1b}[31m", "nul\0"] {
            assert!(DonationMessage::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn donor_names_are_1_to_32_characters_without_controls() {
        assert_eq!(DonorName::parse(" Budi ").unwrap().as_str(), "Budi");
        assert!(DonorName::parse(&"n".repeat(32)).is_ok());
        for bad in ["", "   ", &"n".repeat(33), "tab\there"] {
            assert!(DonorName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn every_username_is_a_valid_donor_name() {
        // A signed-in donor is shown under their username, in the same column and chat line as a guest's name.
        for username in ["abc", "a.b-c_d", &"u".repeat(32)] {
            let checked = crate::account::Username::parse(username).unwrap();
            assert!(DonorName::parse(checked.as_str()).is_ok(), "{username}");
        }
        assert!(crate::account::Username::parse(&"u".repeat(DONOR_NAME_MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn a_guest_donation_request_reads_every_field() {
        let r =
            DonationRequest::parse(&json!({"amount": 25000, "message": "gg", "donor_name": "Sari"}), false).unwrap();
        assert_eq!(r.amount.get(), 25000);
        assert_eq!(r.message.unwrap().as_str(), "gg");
        assert_eq!(r.donor_name.unwrap().as_str(), "Sari");
    }

    #[test]
    fn a_signed_in_donors_valid_name_is_dropped_and_an_invalid_one_refused_like_anyone_elses() {
        let r = DonationRequest::parse(&json!({"amount": 25000, "donor_name": "Sari"}), true).unwrap();
        assert_eq!(r.donor_name, None);
        assert!(DonationRequest::parse(&json!({"amount": 25000, "donor_name": ""}), true).is_err());
    }

    #[test]
    fn a_bad_donation_request_reports_every_field_at_once() {
        let Err(ApiError::Invalid(fields)) = DonationRequest::parse(
            &json!({"amount": 10, "message": "x".repeat(201), "donor_name": 7}),
            false,
        ) else {
            panic!("expected a validation error");
        };
        assert_eq!(fields.len(), 3, "{fields:?}");
    }

    #[test]
    fn a_donation_request_without_an_amount_is_invalid_and_a_non_object_is_malformed() {
        let Err(ApiError::Invalid(fields)) = DonationRequest::parse(&json!({}), false) else {
            panic!("expected a validation error");
        };
        assert_eq!(fields["amount"], "is required");
        assert_eq!(DonationRequest::parse(&json!([1]), false).unwrap_err().status(), 400);
    }

    #[test]
    fn order_ids_follow_midtrans_rules() {
        assert!(OrderId::parse("sl-abc_DEF~1.2").is_ok());
        assert!(OrderId::parse(&"a".repeat(50)).is_ok());
        for bad in ["", &"a".repeat(51), "a b", "a/b", "a%20", "ünï", "a+b", "a\nb"] {
            assert!(OrderId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn minted_order_ids_are_valid_and_distinct() {
        let a = OrderId::generate([1; 10]);
        let b = OrderId::generate([2; 10]);
        assert_ne!(a, b);
        assert!(a.as_str().starts_with(ORDER_ID_PREFIX));
        assert_eq!(OrderId::parse(a.as_str()).unwrap(), a);
    }
}
