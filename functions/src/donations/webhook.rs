//! `POST /api/webhooks/midtrans`: a notification is parsed, verified, matched to its donation and applied; every one
//! is audited with the answer given.

use serde_json::{json, Value};
use sunnylive_core::donation::{Applied, OrderId, Rupiah};
use sunnylive_core::error::ApiError;
use sunnylive_core::midtrans::{audit_field, Notification};
use worker::{Request, Response};

use super::alert::deliver_alert;
use super::apply::apply_outcome;
use super::audit::log_notification;
use super::{donation_not_found, load_donation, DonationRow};
use crate::app::App;
use crate::http;

/// Midtrans notifications are a few KB; anything far larger is not one.
const WEBHOOK_LIMIT: usize = 64 * 1024;

/// An error's contract code, for the audit log.
fn error_code(e: &ApiError) -> String {
    serde_json::from_str::<Value>(&e.body())
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .unwrap_or_else(|| "error".into())
}

/// `POST /api/webhooks/midtrans`. In order: parse (400), signature (401, checked before anything is looked up so
/// a forger learns nothing about which orders exist), order (404), amount (422), state machine (200 whatever it
/// decides). Every notification is logged with the answer given (a refused one only as an excerpt, and within a
/// per-minute cap: see `log_notification`). Only a failure of ours is a 5xx, which makes
/// Midtrans retry; applying a notification twice is harmless, so a retry after a half-done attempt is safe.
pub async fn webhook(app: &App, mut req: Request) -> Result<Response, ApiError> {
    let bytes = http::read_body(&mut req, WEBHOOK_LIMIT).await?;
    let checked = check_notification(app, &bytes).await;
    let (n, row) = match checked {
        Ok(pair) => pair,
        Err((e, n, signature_ok)) => {
            if let ApiError::Internal { .. } = e {
                return Err(e);
            }
            worker::console_log!(
                "webhook: refused {} for order {:?}: {}",
                e.status(),
                n.as_ref().map(|n| audit_field(&n.order_id)),
                error_code(&e)
            );
            log_notification(
                app,
                "webhook",
                &bytes,
                n.as_ref(),
                signature_ok,
                e.status(),
                &error_code(&e),
            )
            .await?;
            return Err(e);
        }
    };
    let (applied, row) = apply_outcome(app, row, &n).await?;
    log_notification(app, "webhook", &bytes, Some(&n), Some(true), 200, applied.code()).await?;
    if let Applied::Moved(decision) = applied {
        worker::console_log!("webhook: donation {} is now {}", row.order_id, row.status.as_str());
        if decision.credits() {
            deliver_alert(app, &row).await;
        }
    }
    http::json(200, &json!({ "ok": true, "result": applied.code() }))
}

type Refusal = (ApiError, Option<Notification>, Option<bool>);

async fn check_notification(app: &App, bytes: &[u8]) -> Result<(Notification, DonationRow), Refusal> {
    let n = Notification::parse(bytes).map_err(|e| (e, None, None))?;
    if let Err(e) = n.verify(&app.config.midtrans_server_key) {
        return Err((e, Some(n), Some(false)));
    }
    let row = match OrderId::parse(&n.order_id) {
        Ok(id) => load_donation(app, id.as_str()).await.map_err(|e| (e, None, None))?,
        Err(_) => None,
    };
    let Some(row) = row else {
        return Err((donation_not_found(), Some(n), Some(true)));
    };
    if let Err(e) = n.check_amount(Rupiah::from_trusted(row.amount)) {
        return Err((e, Some(n), Some(true)));
    }
    Ok((n, row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_error_codes_are_read_back_for_the_audit_log() {
        assert_eq!(error_code(&donation_not_found()), "donation_not_found");
        assert_eq!(error_code(&ApiError::Malformed("x".into())), "malformed_body");
    }
}
