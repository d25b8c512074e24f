//! The relay of a paid donation to its stream's chat room (`POST /internal/donation` through `room_client`), and
//! the cron's redelivery of alerts the room has not acknowledged yet.

use sunnylive_core::chat::{DonationPost, ROOM_DONATION};
use sunnylive_core::error::ApiError;

use super::{DonationRow, CRON_BATCH, DONATION_COLUMNS};
use crate::app::App;
use crate::db;

/// An alert the room keeps refusing (a bug, not an outage) stops being retried after this many attempts.
const MAX_ALERT_ATTEMPTS: i64 = 100;

/// Posts a paid donation to its stream's chat room and records the acknowledgement. Failures are logged and left
/// for `deliver_pending_alerts`: the payment is already recorded, and the room dedupes by order id, so a retry can
/// never show it twice.
pub(super) async fn deliver_alert(app: &App, row: &DonationRow) -> bool {
    let post = DonationPost {
        order_id: row.order_id.clone(),
        donor: row.donor_name.clone(),
        amount: row.amount,
        message: row.message.clone(),
        guest: row.guest != 0,
    };
    let acknowledged = match crate::room_client::post_to_room(app, &row.stream_id, ROOM_DONATION, &post).await {
        Ok(code) if (200..300).contains(&code) => true,
        Ok(code) => {
            worker::console_error!("alert: room {} answered {code} for {}", row.stream_id, row.order_id);
            false
        }
        Err(e) => {
            worker::console_error!("alert: room {} unreachable for {}: {e}", row.stream_id, row.order_id);
            false
        }
    };
    let now = app.now_rfc3339();
    let written = if acknowledged {
        db::run(
            &app.db,
            "mark alert sent",
            "UPDATE donations SET alert_state = 'sent', alert_sent_at = ?1, alert_attempts = alert_attempts + 1
              WHERE order_id = ?2 AND alert_state = 'due'",
            &[(&now).into(), (&row.order_id).into()],
        )
        .await
    } else {
        db::run(
            &app.db,
            "count alert attempt",
            "UPDATE donations SET alert_attempts = alert_attempts + 1 WHERE order_id = ?1 AND alert_state = 'due'",
            &[(&row.order_id).into()],
        )
        .await
    };
    if let Err(e) = written {
        worker::console_error!("alert: recording delivery of {}: {e}", row.order_id);
    }
    acknowledged
}

/// Cron: delivers chat alerts that are still owed (the room was unreachable when the payment arrived). Returns how
/// many were delivered.
pub async fn deliver_pending_alerts(app: &App) -> Result<usize, ApiError> {
    let rows: Vec<DonationRow> = db::all(
        &app.db,
        "list owed alerts",
        &format!(
            "SELECT {DONATION_COLUMNS} FROM donations
              WHERE alert_state = 'due' AND status = 'paid' AND alert_attempts < ?1
              ORDER BY paid_at LIMIT ?2"
        ),
        &[MAX_ALERT_ATTEMPTS.into(), CRON_BATCH.into()],
    )
    .await?;
    let mut delivered = 0;
    for row in &rows {
        if deliver_alert(app, row).await {
            delivered += 1;
        }
    }
    Ok(delivered)
}
