//! A paid donation as the worker posts it into the room (`POST /internal/donation`): the wire shape
//! (`DonationPost`) and the checked value the room works with (`RoomDonation`).

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, FieldErrors};

/// Body of `POST /internal/donation`, sent by the worker when a donation moves to `paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonationPost {
    /// The Midtrans order id: the room delivers each order id once, however often it is posted.
    pub order_id: String,
    /// The name shown in chat (the donor's username, or the guest's chosen name).
    pub donor: String,
    /// Rupiah.
    pub amount: i64,
    #[serde(default)]
    pub message: Option<String>,
    /// True when the donor was not signed in: `donor` is then a name they chose, not an account.
    #[serde(default)]
    pub guest: bool,
}

/// A donation the room may show: every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomDonation {
    pub order_id: String,
    pub donor: String,
    pub amount: i64,
    pub message: Option<String>,
    pub guest: bool,
}

/// Longest donation message, in characters (the donations route allows 200).
pub const MAX_DONATION_MESSAGE_CHARS: usize = 200;
/// Longest donor name, in characters (usernames are up to 32, guest names too; leave room).
pub const MAX_DONOR_CHARS: usize = 64;

impl RoomDonation {
    pub fn parse(post: DonationPost) -> Result<Self, ApiError> {
        let mut fields = FieldErrors::new();
        let order_ok = (1..=64).contains(&post.order_id.len())
            && post
                .order_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
        if !order_ok {
            fields.insert("order_id".into(), "must be 1-64 URL-safe characters".into());
        }
        let donor = post.donor.trim().to_string();
        let donor_len = donor.chars().count();
        if donor_len == 0 || donor_len > MAX_DONOR_CHARS || donor.chars().any(char::is_control) {
            fields.insert(
                "donor".into(),
                format!("must be 1-{MAX_DONOR_CHARS} characters without control characters"),
            );
        }
        if post.amount <= 0 {
            fields.insert("amount".into(), "must be a positive number of rupiah".into());
        }
        let message = post.message.map(|m| m.trim().to_string()).filter(|m| !m.is_empty());
        if let Some(m) = &message {
            // Newlines are allowed in a donation message; other control characters are not.
            if m.chars().count() > MAX_DONATION_MESSAGE_CHARS || m.chars().any(|c| c.is_control() && c != '\n') {
                fields.insert(
                    "message".into(),
                    format!("must be at most {MAX_DONATION_MESSAGE_CHARS} characters without control characters"),
                );
            }
        }
        if !fields.is_empty() {
            return Err(ApiError::Invalid(fields));
        }
        Ok(Self {
            order_id: post.order_id,
            donor,
            amount: post.amount,
            message,
            guest: post.guest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post() -> DonationPost {
        DonationPost {
            order_id: "don-abc123".into(),
            donor: " Sari ".into(),
            amount: 25_000,
            message: Some("  ".into()),
            guest: true,
        }
    }

    #[test]
    fn a_valid_donation_is_trimmed_and_a_blank_message_becomes_none() {
        let d = RoomDonation::parse(post()).unwrap();
        assert_eq!(d.donor, "Sari");
        assert_eq!(d.message, None);
    }

    #[test]
    fn invalid_donation_posts_are_refused_naming_each_field() {
        type Change = fn(&mut DonationPost);
        let cases: [(Change, &str); 6] = [
            (|p| p.order_id = String::new(), "order_id"),
            (|p| p.order_id = "a/b".into(), "order_id"),
            (|p| p.donor = "  ".into(), "donor"),
            (|p| p.amount = 0, "amount"),
            (|p| p.message = Some("x".repeat(201)), "message"),
            (|p| p.message = Some("a\u{0}b".into()), "message"),
        ];
        for (change, field) in cases {
            let mut p = post();
            change(&mut p);
            match RoomDonation::parse(p) {
                Err(ApiError::Invalid(fields)) => assert!(fields.contains_key(field), "{field}: {fields:?}"),
                other => panic!("{field}: expected a 422, got {other:?}"),
            }
        }
    }
}
