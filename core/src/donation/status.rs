//! The donation state machine: a donation's status, what Midtrans says happened (`Outcome`), and what that does to
//! the donation. Only the move into `paid` credits the stream's total and sends the chat alert; D1 applies the move
//! with a compare-and-swap on the status column so two notifications racing each other cannot both win.

use serde::{Deserialize, Serialize};

/// What a notification says happened, in our terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Money is ours: `settlement` with "200", or `capture` with `fraud_status` `accept` and "200".
    Paid,
    /// A card capture held by Midtrans's fraud detection for manual review.
    Challenge,
    /// Waiting for the payer (a bank transfer's virtual account exists, a card needs 3-D Secure, ...).
    Pending,
    /// Will never be paid: `deny`, `cancel`, `expire`, `failure`.
    Failed,
    /// Money went back: `refund`, `partial_refund`, `chargeback`, `partial_chargeback`.
    Reversed,
    /// A combination we do not act on (an unknown status, a capture without a verdict). Answered 200, changes
    /// nothing; the status sweep settles the donation later if it stays pending.
    Ignored,
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

/// What one notification did to the donation it names: the answer's `code` in the audit log and the webhook reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The donation changed status (and, into paid, was credited).
    Moved(Decision),
    /// The notification repeats the donation's current state.
    Duplicate,
    /// Older news than what we know (a pending after paid, a success after failed, ...).
    Stale,
    /// A status we do not act on.
    Ignored,
}

impl Applied {
    pub fn code(self) -> &'static str {
        match self {
            Applied::Moved(_) => "processed",
            Applied::Duplicate => "duplicate",
            Applied::Stale => "stale",
            Applied::Ignored => "ignored",
        }
    }
}

/// Classifies a notification against the stored donation: the move `decide` makes, or why nothing moves.
pub fn classify(current: DonationStatus, outcome: Outcome) -> Applied {
    use DonationStatus as S;
    match (decide(current, outcome), outcome) {
        (moved @ Decision::Move { .. }, _) => Applied::Moved(moved),
        (Decision::Unchanged, Outcome::Ignored) => Applied::Ignored,
        (Decision::Unchanged, _) => match (current, outcome) {
            (S::Paid, Outcome::Paid)
            | (S::Pending, Outcome::Pending)
            | (S::Challenge, Outcome::Challenge)
            | (S::Failed, Outcome::Failed)
            | (S::Refunded, Outcome::Reversed) => Applied::Duplicate,
            _ => Applied::Stale,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use DonationStatus as S;

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

    #[test]
    fn a_repeat_of_the_current_state_is_a_duplicate_and_older_news_is_stale() {
        assert_eq!(classify(S::Paid, Outcome::Paid), Applied::Duplicate);
        assert_eq!(classify(S::Paid, Outcome::Pending), Applied::Stale);
        assert_eq!(classify(S::Failed, Outcome::Paid), Applied::Stale);
        assert_eq!(classify(S::Refunded, Outcome::Reversed), Applied::Duplicate);
        assert_eq!(classify(S::Pending, Outcome::Ignored), Applied::Ignored);
        assert_eq!(
            classify(S::Pending, Outcome::Paid),
            Applied::Moved(Decision::Move {
                from: S::Pending,
                to: S::Paid
            })
        );
        assert_eq!(classify(S::Pending, Outcome::Paid).code(), "processed");
    }
}
