//! A notification (or a status answer) applied to its donation: the core's state machine decides, D1 moves the row
//! with a compare-and-swap on the status that was read.

use sunnylive_core::donation::{classify, Applied, Decision, DonationStatus};
use sunnylive_core::error::ApiError;
use sunnylive_core::midtrans::Notification;

use super::{load_donation, DonationRow, DONATION_COLUMNS};
use crate::app::App;
use crate::db;

/// Applies what Midtrans said to a donation through the state machine. The write is a compare-and-swap on the
/// status we read; if another notification moved the donation in between, we re-read and decide again.
///
/// Whether the swap happened is read from `RETURNING`, not from D1's `meta.changes`: D1 counted the rows the status
/// triggers touch as well (seen under wrangler dev: a successful move never reported 1), so a row count cannot tell
/// "moved" from "lost the race".
pub(super) async fn apply_outcome(
    app: &App,
    mut row: DonationRow,
    n: &Notification,
) -> Result<(Applied, DonationRow), ApiError> {
    let outcome = n.outcome();
    for _ in 0..3 {
        let applied = classify(row.status, outcome);
        let Applied::Moved(decision @ Decision::Move { from, to }) = applied else {
            learn_payment_details(app, &row, n).await?;
            return Ok((applied, row));
        };
        let now = app.now_rfc3339();
        let failure_reason = (to == DonationStatus::Failed).then_some(n.transaction_status.as_str());
        let moved: Option<DonationRow> = db::one(
            &app.db,
            "move donation status",
            &format!(
                "UPDATE donations SET status = ?1, updated_at = ?2,
                        paid_at = CASE WHEN ?1 = 'paid' THEN ?2 ELSE paid_at END,
                        failure_reason = COALESCE(?3, failure_reason),
                        midtrans_transaction_id = COALESCE(?4, midtrans_transaction_id),
                        payment_type = COALESCE(?5, payment_type)
                  WHERE order_id = ?6 AND status = ?7
                RETURNING {DONATION_COLUMNS}"
            ),
            &[
                to.as_str().into(),
                (&now).into(),
                failure_reason.into(),
                n.transaction_id.as_deref().into(),
                n.payment_type.as_deref().into(),
                (&row.order_id).into(),
                from.as_str().into(),
            ],
        )
        .await?;
        if let Some(moved) = moved {
            return Ok((Applied::Moved(decision), moved));
        }
        row = load_donation(app, &row.order_id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("donation {} vanished", row.order_id)))?;
    }
    Err(ApiError::internal(format!(
        "donation {} kept changing under us",
        row.order_id
    )))
}

/// A duplicate can still tell us the payment method or Midtrans's transaction id (a bank transfer's `pending`).
async fn learn_payment_details(app: &App, row: &DonationRow, n: &Notification) -> Result<(), ApiError> {
    let new_type = row.payment_type.is_none() && n.payment_type.is_some();
    let new_tx = row.midtrans_transaction_id.is_none() && n.transaction_id.is_some();
    if new_type || new_tx {
        db::run(
            &app.db,
            "remember payment details",
            "UPDATE donations SET payment_type = COALESCE(payment_type, ?1),
                    midtrans_transaction_id = COALESCE(midtrans_transaction_id, ?2)
              WHERE order_id = ?3",
            &[
                n.payment_type.as_deref().into(),
                n.transaction_id.as_deref().into(),
                (&row.order_id).into(),
            ],
        )
        .await?;
    }
    Ok(())
}
