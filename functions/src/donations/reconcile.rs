//! The status sweep (cron): donations still pending after a while are asked about through Midtrans's status API,
//! and the answers go through the same state machine as the webhook.

use sunnylive_core::donation::{Applied, Rupiah};
use sunnylive_core::error::ApiError;
use sunnylive_core::midtrans::{parse_status_answer, StatusAnswer, SNAP_EXPIRY_MINUTES};

use super::alert::deliver_alert;
use super::apply::apply_outcome;
use super::audit::log_notification;
use super::{midtrans_client, DonationRow, CRON_BATCH, DONATION_COLUMNS};
use crate::app::{rfc3339, App};
use crate::db;

/// Grace after Snap's expiry before a donation whose payer never picked a method is marked failed.
const EXPIRY_GRACE_SECONDS: i64 = 10 * 60;

/// Cron: asks Midtrans's status API about donations still pending after `DONATION_RECONCILE_AFTER_SECONDS` (their
/// notifications may have been lost) and applies the answers through the same state machine as the webhook.
/// A donation Midtrans still knows nothing about once Snap's checkout has expired is marked failed. Returns how
/// many donations changed.
pub async fn reconcile_pending(app: &App) -> Result<usize, ApiError> {
    let now = app.now();
    let cutoff = rfc3339(now - app.config.donation_reconcile_after_seconds.max(0));
    let rows: Vec<DonationRow> = db::all(
        &app.db,
        "list donations pending too long",
        &format!(
            "SELECT {DONATION_COLUMNS} FROM donations
              WHERE status = 'pending' AND created_at <= ?1
              ORDER BY COALESCE(last_checked_at, ''), created_at LIMIT ?2"
        ),
        &[(&cutoff).into(), CRON_BATCH.into()],
    )
    .await?;
    let expired_before = rfc3339(now - SNAP_EXPIRY_MINUTES * 60 - EXPIRY_GRACE_SECONDS);
    let mut changed = 0;
    for row in rows {
        match reconcile_one(app, row, &expired_before).await {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) => worker::console_error!("reconcile: {e}"),
        }
    }
    Ok(changed)
}

async fn reconcile_one(app: &App, row: DonationRow, expired_before: &str) -> Result<bool, ApiError> {
    db::run(
        &app.db,
        "note status check",
        "UPDATE donations SET last_checked_at = ?1 WHERE order_id = ?2",
        &[(&app.now_rfc3339()).into(), (&row.order_id).into()],
    )
    .await?;
    let (status, body) = midtrans_client::transaction_status(app, &row.order_id)
        .await
        .map_err(|why| ApiError::internal(format!("status API for {}: {why}", row.order_id)))?;
    let answer = parse_status_answer(status, &body)
        .map_err(|why| ApiError::internal(format!("status API for {}: {why}", row.order_id)))?;
    let n = match answer {
        StatusAnswer::Found(n) => *n,
        StatusAnswer::NotFound if row.created_at.as_str() < expired_before => {
            let changed = db::run(
                &app.db,
                "fail donation never paid",
                "UPDATE donations SET status = 'failed', failure_reason = 'not_paid_in_time', updated_at = ?1
                  WHERE order_id = ?2 AND status = 'pending'",
                &[(&app.now_rfc3339()).into(), (&row.order_id).into()],
            )
            .await?;
            return Ok(changed > 0);
        }
        StatusAnswer::NotFound => return Ok(false),
    };
    // The answer came over our authenticated call, but it must still be about this order, for this amount, and,
    // when Midtrans signs it (it does), signed with our key.
    let signature_ok = (!n.signature_key.is_empty()).then(|| n.signature_is_valid(&app.config.midtrans_server_key));
    let refusal = if n.order_id != row.order_id {
        Some("order_mismatch")
    } else if signature_ok == Some(false) {
        Some("invalid_signature")
    } else if n.check_amount(Rupiah::from_trusted(row.amount)).is_err() {
        Some("amount_mismatch")
    } else {
        None
    };
    if let Some(code) = refusal {
        log_notification(app, "status_api", &body, Some(&n), signature_ok, status, code).await?;
        return Err(ApiError::internal(format!(
            "status answer for {} refused: {code}",
            row.order_id
        )));
    }
    let (applied, row) = apply_outcome(app, row, &n).await?;
    log_notification(app, "status_api", &body, Some(&n), signature_ok, status, applied.code()).await?;
    let Applied::Moved(decision) = applied else {
        return Ok(false);
    };
    worker::console_log!("reconcile: donation {} is now {}", row.order_id, row.status.as_str());
    if decision.credits() {
        deliver_alert(app, &row).await;
    }
    Ok(true)
}
