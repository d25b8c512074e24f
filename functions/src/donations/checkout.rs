//! Checkout, `POST /api/streams/{id}/donations`: the checked request becomes a pending donation row and a Snap
//! checkout for the donor to pay.

use serde::Deserialize;
use serde_json::json;
use sunnylive_core::donation::{DonationRequest, DonorName, OrderId};
use sunnylive_core::error::ApiError;
use sunnylive_core::midtrans::SnapCheckout;
use sunnylive_core::rate_limit::DONATE_PER_IP;
use worker::{Request, Response};

use super::midtrans_client;
use crate::app::App;
use crate::auth::{authenticate, count_attempt};
use crate::crypto::random;
use crate::db;
use crate::http::{self, JSON_LIMIT};
use crate::stream_row;

/// Where our own pages and webhook live, as Midtrans must see them.
fn public_base(app: &App, req: &Request) -> String {
    match &app.config.public_base_url {
        Some(base) => base.clone(),
        None => http::own_origin(req, None),
    }
}

/// `POST /api/streams/{id}/donations`: validate, insert the pending donation, create the Snap checkout. If Snap
/// fails the donation is marked failed before answering 502, so no row is left pending for a checkout that never
/// existed.
pub async fn create(app: &App, mut req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let donor = authenticate(app, &req)?;
    let body = http::read_json(&mut req, JSON_LIMIT).await?.into_value();
    let stream = stream_row::load(app, stream_id).await?;
    let checked = DonationRequest::parse(&body, donor.is_some())?;
    // Counted after validation: each counted attempt costs a Snap call, a typo should not.
    count_attempt(app, &format!("donate-ip:{}", http::client_ip(&req)), DONATE_PER_IP).await?;

    let donor_name = match (&donor, checked.donor_name) {
        (Some(user), _) => DonorName::from_username(&user.username),
        (None, Some(name)) => {
            refuse_registered_name(app, &name).await?;
            name
        }
        (None, None) => DonorName::anonymous(),
    };
    let order_id = OrderId::generate(random());
    let now = app.now_rfc3339();
    db::run(
        &app.db,
        "insert pending donation",
        "INSERT INTO donations (order_id, stream_id, donor_user_id, donor_name, message, amount, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        &[
            order_id.as_str().into(),
            (&stream.id).into(),
            donor.as_ref().map(|u| u.id.as_str()).into(),
            donor_name.as_str().into(),
            checked.message.as_ref().map(|m| m.as_str()).into(),
            (checked.amount.get() as i64).into(),
            (&now).into(),
        ],
    )
    .await?;

    let base = public_base(app, &req);
    let finish_url = format!("{base}/donations/{order_id}");
    let checkout = SnapCheckout {
        order_id: &order_id,
        amount: checked.amount,
        item_name: &stream.title,
        donor_name: donor_name.as_str(),
        finish_url: &finish_url,
        stream_id: &stream.id,
    };
    let webhook_url = format!("{base}/api/webhooks/midtrans");
    match midtrans_client::create_snap_checkout(app, &checkout, &webhook_url).await {
        Ok(session) => {
            db::run(
                &app.db,
                "store snap session",
                "UPDATE donations SET snap_token = ?1, redirect_url = ?2 WHERE order_id = ?3",
                &[
                    (&session.token).into(),
                    (&session.redirect_url).into(),
                    order_id.as_str().into(),
                ],
            )
            .await?;
            http::json(
                201,
                &json!({
                    "order_id": order_id,
                    "snap_token": session.token,
                    "redirect_url": session.redirect_url,
                    "amount": checked.amount,
                }),
            )
        }
        Err(e) => {
            worker::console_error!("donations: checkout {order_id} failed: {e}");
            let marked = db::run(
                &app.db,
                "mark donation failed at checkout",
                "UPDATE donations SET status = 'failed', failure_reason = 'snap_unavailable', updated_at = ?1
                 WHERE order_id = ?2 AND status = 'pending'",
                &[(&app.now_rfc3339()).into(), order_id.as_str().into()],
            )
            .await;
            if let Err(db_error) = marked {
                // The status sweep will find it pending, learn from Midtrans that no transaction exists, and fail it
                // once Snap's expiry has passed.
                worker::console_error!("donations: could not mark {order_id} failed: {db_error}");
            }
            Err(e.to_api_error())
        }
    }
}

/// 422 when a guest's chosen name is a registered username (case-insensitively, as usernames compare): a guest
/// must not pose as the streamer or any other user in the alert. Signed-in donors are shown under their own name.
async fn refuse_registered_name(app: &App, name: &DonorName) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    struct Taken {
        #[allow(dead_code)]
        id: String,
    }
    let taken: Option<Taken> = db::one(
        &app.db,
        "is a guest name a username",
        "SELECT id FROM users WHERE username = ?1",
        &[name.as_str().into()],
    )
    .await?;
    match taken {
        Some(_) => Err(ApiError::invalid(
            "donor_name",
            "is the name of a registered user; sign in to donate under your own name, or pick another",
        )),
        None => Ok(()),
    }
}
