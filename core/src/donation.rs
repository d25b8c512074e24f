//! Donations: the checked inputs (`Rupiah`, `DonationMessage`, `DonorName`) and the status state machine that
//! decides, for a donation's current status and what Midtrans says, whether anything changes. Only the move into
//! `paid` credits the stream's total and sends the chat alert; D1 applies the move with a compare-and-swap on the
//! status column so two notifications racing each other cannot both win.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, FieldErrors};
use crate::midtrans::Outcome;

/// Smallest donation Midtrans lets us charge comfortably (and that is worth an alert).
pub const MIN_RUPIAH: u64 = 1_000;
/// Largest single donation we accept.
pub const MAX_RUPIAH: u64 = 100_000_000;
/// Longest donation message, in characters.
pub const MESSAGE_MAX_CHARS: usize = 200;
/// Longest guest donor name, in characters.
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

/// A donation's status, as stored in D1 and shown in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DonationStatus {
    Pending,
    Paid,
    Challenge,
    Failed,
    Refunded,
}

impl DonationStatus {
    pub const ALL: [DonationStatus; 5] = [
        DonationStatus::Pending,
        DonationStatus::Paid,
        DonationStatus::Challenge,
        DonationStatus::Failed,
        DonationStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DonationStatus::Pending => "pending",
            DonationStatus::Paid => "paid",
            DonationStatus::Challenge => "challenge",
            DonationStatus::Failed => "failed",
            DonationStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Nothing Midtrans says can change a donation in this status.
    pub fn is_terminal(self) -> bool {
        matches!(self, DonationStatus::Failed | DonationStatus::Refunded)
    }
}

/// What to do about a notification (or a status answer) for a donation in some status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing changes: a duplicate, a stale or out-of-order message, or one for a finished donation.
    Unchanged,
    /// Move `from` to `to` (D1: `UPDATE ... SET status = to WHERE status = from`).
    Move { from: DonationStatus, to: DonationStatus },
}

impl Decision {
    /// The move into `paid`: the one change that credits the stream's total and sends the chat alert.
    pub fn credits(self) -> bool {
        matches!(
            self,
            Decision::Move {
                to: DonationStatus::Paid,
                ..
            }
        )
    }

    /// The move out of `paid` (a refund or chargeback): takes the amount off the stream's total again.
    pub fn debits(self) -> bool {
        matches!(
            self,
            Decision::Move {
                from: DonationStatus::Paid,
                to: DonationStatus::Refunded
            }
        )
    }

    pub fn target(self) -> Option<DonationStatus> {
        match self {
            Decision::Unchanged => None,
            Decision::Move { to, .. } => Some(to),
        }
    }
}

/// The donation state machine.
///
/// - `pending` and `challenge` move to `paid` on success (the only credit), `challenge` on a fraud hold (from
///   pending), and `failed` on a denial, cancel or expiry.
/// - `paid` never goes back: a late `pending`, `challenge` or `expire` is stale; only a refund or chargeback moves
///   it, to `refunded`.
/// - `failed` and `refunded` are terminal: a success arriving for a failed donation never credits.
/// - A repeat of the current state, and anything `Ignored`, changes nothing.
pub fn decide(current: DonationStatus, outcome: Outcome) -> Decision {
    use DonationStatus as S;
    let to = match (current, outcome) {
        (S::Pending | S::Challenge, Outcome::Paid) => S::Paid,
        (S::Pending, Outcome::Challenge) => S::Challenge,
        (S::Pending | S::Challenge, Outcome::Failed) => S::Failed,
        (S::Paid, Outcome::Reversed) => S::Refunded,
        _ => return Decision::Unchanged,
    };
    Decision::Move { from: current, to }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    use serde_json::json;
    use DonationStatus as S;

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
    fn statuses_round_trip_through_their_names() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
        assert_eq!(S::parse("PAID"), None);
        assert_eq!(serde_json::to_value(S::Challenge).unwrap(), json!("challenge"));
    }

    const OUTCOMES: [Outcome; 6] = [
        Outcome::Paid,
        Outcome::Challenge,
        Outcome::Pending,
        Outcome::Failed,
        Outcome::Reversed,
        Outcome::Ignored,
    ];

    /// The whole machine as a table: (current status, outcome) -> new status, `None` meaning unchanged.
    fn expected(current: DonationStatus, outcome: Outcome) -> Option<DonationStatus> {
        use Outcome as O;
        match (current, outcome) {
            (S::Pending, O::Paid) => Some(S::Paid),
            (S::Pending, O::Challenge) => Some(S::Challenge),
            (S::Pending, O::Pending) => None,
            (S::Pending, O::Failed) => Some(S::Failed),
            (S::Pending, O::Reversed) => None,
            (S::Pending, O::Ignored) => None,
            (S::Challenge, O::Paid) => Some(S::Paid),
            (S::Challenge, O::Challenge) => None,
            (S::Challenge, O::Pending) => None,
            (S::Challenge, O::Failed) => Some(S::Failed),
            (S::Challenge, O::Reversed) => None,
            (S::Challenge, O::Ignored) => None,
            (S::Paid, O::Reversed) => Some(S::Refunded),
            (S::Paid, _) => None,
            (S::Failed, _) => None,
            (S::Refunded, _) => None,
        }
    }

    #[test]
    fn every_status_and_outcome_pair_follows_the_table() {
        for current in S::ALL {
            for outcome in OUTCOMES {
                let got = decide(current, outcome);
                assert_eq!(got.target(), expected(current, outcome), "{current:?} + {outcome:?}");
                if let Decision::Move { from, to } = got {
                    assert_eq!(from, current);
                    assert_ne!(from, to, "a move always changes the status");
                }
            }
        }
    }

    #[test]
    fn only_pending_or_challenge_moving_to_paid_credits() {
        for current in S::ALL {
            for outcome in OUTCOMES {
                let d = decide(current, outcome);
                let should = matches!(current, S::Pending | S::Challenge) && outcome == Outcome::Paid;
                assert_eq!(d.credits(), should, "{current:?} + {outcome:?}");
            }
        }
    }

    #[test]
    fn only_a_refund_of_a_paid_donation_debits() {
        for current in S::ALL {
            for outcome in OUTCOMES {
                let d = decide(current, outcome);
                let should = current == S::Paid && outcome == Outcome::Reversed;
                assert_eq!(d.debits(), should, "{current:?} + {outcome:?}");
            }
        }
    }

    #[test]
    fn a_paid_donation_never_goes_back_to_pending_challenge_or_failed() {
        for outcome in [Outcome::Pending, Outcome::Challenge, Outcome::Failed, Outcome::Paid] {
            assert_eq!(decide(S::Paid, outcome), Decision::Unchanged, "{outcome:?}");
        }
    }

    #[test]
    fn failed_and_refunded_donations_are_terminal() {
        for current in [S::Failed, S::Refunded] {
            assert!(current.is_terminal());
            for outcome in OUTCOMES {
                assert_eq!(
                    decide(current, outcome),
                    Decision::Unchanged,
                    "{current:?} + {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn capture_then_settlement_is_one_payment() {
        let first = decide(S::Pending, Outcome::Paid);
        assert!(first.credits());
        let second = decide(first.target().unwrap(), Outcome::Paid);
        assert_eq!(second, Decision::Unchanged);
    }

    #[test]
    fn a_replayed_notification_changes_nothing_the_second_time() {
        for outcome in OUTCOMES {
            let mut status = S::Pending;
            if let Some(to) = decide(status, outcome).target() {
                status = to;
            }
            for _ in 0..5 {
                assert_eq!(decide(status, outcome), Decision::Unchanged, "{outcome:?} replayed");
            }
        }
    }
}
