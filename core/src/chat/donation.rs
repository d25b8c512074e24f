//! A paid donation as the worker posts it into the room (`POST /internal/donation`): the wire shape
//! (`DonationPost`) and the checked value the room works with (`RoomDonation`), checked by the donation rules of
//! `crate::donation`, not rules of its own.

use serde::{Deserialize, Serialize};

use crate::donation::{DonationMessage, DonorName, OrderId, Rupiah};
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

impl RoomDonation {
    /// Checks the post by the same rules as the checkout (`crate::donation`): the order id as Midtrans allows it, the
    /// donor as a donor name (a username meets that rule too), the amount in the donation range, and the message as a
    /// donation message. Whatever the checkout stored passes; anything else is refused, field by field.
    pub fn parse(post: DonationPost) -> Result<Self, ApiError> {
        let mut fields = FieldErrors::new();
        let order_id = OrderId::parse(&post.order_id)
            .map_err(|why| fields.insert("order_id".into(), why))
            .ok();
        let donor = DonorName::parse(&post.donor)
            .map_err(|why| fields.insert("donor".into(), why))
            .ok();
        // A negative amount reads as 0, which the range refuses with the same words.
        let amount = Rupiah::parse(u64::try_from(post.amount).unwrap_or(0))
            .map_err(|why| fields.insert("amount".into(), why))
            .ok();
        let message = post
            .message
            .as_deref()
            .map(DonationMessage::parse)
            .transpose()
            .map_err(|why| fields.insert("message".into(), why))
            .ok()
            .flatten()
            .flatten();
        match (order_id, donor, amount) {
            (Some(order_id), Some(donor), Some(amount)) if fields.is_empty() => Ok(Self {
                order_id: order_id.as_str().to_string(),
                donor: donor.as_str().to_string(),
                amount: amount.get() as i64,
                message: message.map(|m| m.as_str().to_string()),
                guest: post.guest,
            }),
            _ => Err(ApiError::Invalid(fields)),
        }
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
        let cases: [(Change, &str); 11] = [
            (|p| p.order_id = String::new(), "order_id"),
            (|p| p.order_id = "a/b".into(), "order_id"),
            (|p| p.order_id = "a".repeat(51), "order_id"),
            (|p| p.donor = "  ".into(), "donor"),
            (|p| p.donor = "n".repeat(33), "donor"),
            (|p| p.donor = "Sari\u{200B}".into(), "donor"),
            (|p| p.amount = 0, "amount"),
            (|p| p.amount = -1, "amount"),
            (|p| p.message = Some("x".repeat(201)), "message"),
            (|p| p.message = Some("a\u{0}b".into()), "message"),
            (|p| p.message = Some("line\nbreak".into()), "message"),
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

    #[test]
    fn the_room_accepts_exactly_what_the_checkout_stores() {
        let mut p = post();
        p.order_id = "a".repeat(50);
        p.donor = "n".repeat(32);
        p.message = Some("é".repeat(200));
        let d = RoomDonation::parse(p).unwrap();
        assert_eq!(d.order_id.len(), 50);
        assert_eq!(d.donor.chars().count(), 32);
        assert_eq!(d.message.unwrap().chars().count(), 200);
    }
}
