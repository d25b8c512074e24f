//! Donations through Midtrans Snap. This module holds the donation row as D1 stores it and hands the routes and cron
//! tasks on; each job has its own file: `checkout` (`POST /api/streams/{id}/donations`), `webhook` (Midtrans's
//! notifications), `reconcile` (the status sweep for donations still pending), `apply` (a notification or status
//! answer through the state machine into D1), `audit` (the notification log), `alert` (the relay of a paid
//! donation to the stream's chat room, and its redelivery), `midtrans_client` (the HTTP calls to Snap and the
//! status API) and `reads` (the public donation, the leaderboard, the owner's list).
//!
//! Every rule lives in core (`sunnylive_core::donation`, `sunnylive_core::midtrans`); these modules do the I/O.
//! The move into `paid` is one D1 statement (`UPDATE ... WHERE status = <what we read>`); triggers in
//! d1-migrations/0003 credit the stream's total and mark the chat alert owed inside that same statement, so a
//! payment is counted once however many notifications race. The alert then goes to the stream's ChatRoom, which
//! dedupes by order id; until the room acknowledges it the cron keeps retrying, so it is delivered exactly once.

use serde::{Deserialize, Serialize};
use sunnylive_core::donation::DonationStatus;
use sunnylive_core::error::ApiError;

use crate::app::App;
use crate::db;

mod alert;
mod apply;
mod audit;
mod checkout;
mod midtrans_client;
mod reads;
mod reconcile;
mod webhook;

pub use alert::deliver_pending_alerts;
pub use audit::prune_audit_log;
pub use checkout::create;
pub use reads::{get, leaderboard, list_for_owner};
pub use reconcile::reconcile_pending;
pub use webhook::webhook;

/// Donations checked per cron run, and alerts redelivered per cron run: bounded so one run stays short.
const CRON_BATCH: i64 = 25;

/// Columns every donation query selects.
const DONATION_COLUMNS: &str = "order_id, stream_id, donor_name, message, amount, currency, status,
     payment_type, midtrans_transaction_id, created_at, paid_at, (donor_user_id IS NULL) AS guest";

#[derive(Debug, Clone, Deserialize)]
struct DonationRow {
    order_id: String,
    stream_id: String,
    donor_name: String,
    message: Option<String>,
    amount: i64,
    currency: String,
    status: DonationStatus,
    payment_type: Option<String>,
    midtrans_transaction_id: Option<String>,
    created_at: String,
    paid_at: Option<String>,
    /// 1 when the donor was not signed in (SQLite has no booleans).
    guest: i64,
}

/// The contract's donation object.
#[derive(Serialize)]
struct DonationView<'a> {
    order_id: &'a str,
    stream_id: &'a str,
    donor: &'a str,
    message: Option<&'a str>,
    amount: i64,
    currency: &'a str,
    status: DonationStatus,
    created_at: &'a str,
    paid_at: Option<&'a str>,
}

impl DonationRow {
    fn view(&self) -> DonationView<'_> {
        DonationView {
            order_id: &self.order_id,
            stream_id: &self.stream_id,
            donor: &self.donor_name,
            message: self.message.as_deref(),
            amount: self.amount,
            currency: &self.currency,
            status: self.status,
            created_at: &self.created_at,
            paid_at: self.paid_at.as_deref(),
        }
    }
}

async fn load_donation(app: &App, order_id: &str) -> Result<Option<DonationRow>, ApiError> {
    db::one(
        &app.db,
        "load donation",
        &format!("SELECT {DONATION_COLUMNS} FROM donations WHERE order_id = ?1"),
        &[order_id.into()],
    )
    .await
}

fn donation_not_found() -> ApiError {
    ApiError::NotFound {
        code: "donation_not_found",
        message: "No such donation.".into(),
    }
}
