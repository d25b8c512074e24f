//! Donations through Midtrans Snap, in request order: checkout (`POST /api/streams/{id}/donations`), the Midtrans
//! webhook, the public donation and leaderboard reads, the owner's list, and the two cron tasks (status checks for
//! donations still pending, redelivery of chat alerts not yet acknowledged).
//!
//! Every rule lives in core (`sunnylive_core::midtrans`, `sunnylive_core::donation`); this module does the I/O.
//! The move into `paid` is one D1 statement (`UPDATE ... WHERE status = <what we read>`); triggers in
//! d1-migrations/0003 credit the stream's total and mark the chat alert owed inside that same statement, so a
//! payment is counted once however many notifications race. The alert then goes to the stream's ChatRoom, which
//! dedupes by order id; until the room acknowledges it the cron keeps retrying, so it is delivered exactly once.

use std::time::Duration;

use futures::future::{select, Either};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sunnylive_core::chat::DonationPost;
use sunnylive_core::donation::{
    classify, Applied, Decision, DonationRequest, DonationStatus, DonorName, OrderId, Rupiah,
};
use sunnylive_core::error::ApiError;
use sunnylive_core::midtrans::{
    audit_field, basic_auth, parse_snap_create_answer, parse_status_answer, snap_create_body, AuditBody, Notification,
    SnapCheckout, SnapError, SnapSession, StatusAnswer, ACCEPTED_BODY_MAX_BYTES, REFUSED_BODY_PREFIX_BYTES,
    SNAP_EXPIRY_MINUTES,
};
use sunnylive_core::page::{decode_donation_cursor, encode_donation_cursor, parse_limit};
use sunnylive_core::rate_limit::DONATE_PER_IP;
use worker::{Fetch, Headers, Method, Request, RequestInit, Response};

use crate::app::{rfc3339, App};
use crate::auth::{authenticate, count_attempt};
use crate::crypto::random;
use crate::db::{self, Arg};
use crate::http::{self, OrInternal, JSON_LIMIT};
use crate::stream_row;

/// Midtrans notifications are a few KB; anything far larger is not one.
const WEBHOOK_LIMIT: usize = 64 * 1024;
/// How long we wait for Snap or the status API. Snap usually answers in well under a second; a checkout that hangs
/// longer is better refused (502) than left spinning in the donor's browser.
const MIDTRANS_TIMEOUT: Duration = Duration::from_secs(8);
/// Donations checked per cron run, and alerts redelivered per cron run: bounded so one run stays short.
const CRON_BATCH: i64 = 25;
/// An alert the room keeps refusing (a bug, not an outage) stops being retried after this many attempts.
const MAX_ALERT_ATTEMPTS: i64 = 100;
/// Grace after Snap's expiry before a donation whose payer never picked a method is marked failed.
const EXPIRY_GRACE_SECONDS: i64 = 10 * 60;

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
    status: String,
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
    status: &'a str,
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
            status: &self.status,
            created_at: &self.created_at,
            paid_at: self.paid_at.as_deref(),
        }
    }

    fn status(&self) -> Result<DonationStatus, ApiError> {
        DonationStatus::parse(&self.status)
            .ok_or_else(|| ApiError::internal(format!("donation {} has status {:?}", self.order_id, self.status)))
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

/// Where our own pages and webhook live, as Midtrans must see them.
fn public_base(app: &App, req: &Request) -> String {
    match &app.config.public_base_url {
        Some(base) => base.clone(),
        None => http::own_origin(req, None),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Checkout

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
    match create_snap_checkout(app, &checkout, &webhook_url).await {
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

/// Races a Midtrans call against `MIDTRANS_TIMEOUT`. `None` on timeout or network failure.
async fn midtrans_fetch(req: Request) -> Result<(u16, Vec<u8>), String> {
    let call = async {
        let mut resp = Fetch::Request(req).send().await.map_err(|e| e.to_string())?;
        let status = resp.status_code();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body))
    };
    let timeout = worker::Delay::from(MIDTRANS_TIMEOUT);
    futures::pin_mut!(call);
    match select(call, timeout).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(format!("no answer within {} s", MIDTRANS_TIMEOUT.as_secs())),
    }
}

fn midtrans_headers(app: &App) -> worker::Result<Headers> {
    let headers = Headers::new();
    headers.set("accept", "application/json")?;
    headers.set("content-type", "application/json")?;
    headers.set("authorization", &basic_auth(&app.config.midtrans_server_key))?;
    Ok(headers)
}

/// `POST {snap base}/snap/v1/transactions`, with our webhook as `X-Override-Notification` so this transaction's
/// notifications reach us without any dashboard setting.
async fn create_snap_checkout(
    app: &App,
    checkout: &SnapCheckout<'_>,
    webhook_url: &str,
) -> Result<SnapSession, SnapError> {
    let build = || -> worker::Result<Request> {
        let headers = midtrans_headers(app)?;
        headers.set("x-override-notification", webhook_url)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(snap_create_body(checkout).to_string().into()));
        Request::new_with_init(
            &format!("{}/snap/v1/transactions", app.config.midtrans_snap_base_url),
            &init,
        )
    };
    let req = build().map_err(|e| SnapError::BadAnswer(format!("building the request: {e}")))?;
    match midtrans_fetch(req).await {
        Ok((status, body)) => parse_snap_create_answer(status, &body),
        Err(why) => {
            worker::console_error!("donations: Snap unreachable: {why}");
            Err(SnapError::Unavailable { status: None })
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The webhook

/// Applies what Midtrans said to a donation through the state machine. The write is a compare-and-swap on the
/// status we read; if another notification moved the donation in between, we re-read and decide again.
///
/// Whether the swap happened is read from `RETURNING`, not from D1's `meta.changes`: D1 counted the rows the status
/// triggers touch as well (seen under wrangler dev: a successful move never reported 1), so a row count cannot tell
/// "moved" from "lost the race".
async fn apply_outcome(app: &App, mut row: DonationRow, n: &Notification) -> Result<(Applied, DonationRow), ApiError> {
    let outcome = n.outcome();
    for _ in 0..3 {
        let applied = classify(row.status()?, outcome);
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

/// Refused notifications the audit log takes per minute, whoever sends them. Past this a refusal is only logged to
/// the worker's log: a flood of junk costs no D1 write at all, and the cron's retention (`prune_audit_log`) bounds
/// what stays.
const REFUSED_AUDIT_PER_MINUTE: i64 = 60;
/// Refused notifications the audit log keeps at most, and for how long.
const REFUSED_AUDIT_KEEP_ROWS: i64 = 10_000;
const REFUSED_AUDIT_KEEP_SECONDS: i64 = 30 * 24 * 3600;

/// Appends one notification to the audit log with the answer we are about to give. An accepted notification (from
/// Midtrans, signature checked) is kept whole up to `ACCEPTED_BODY_MAX_BYTES`; a refused one only as hash, size and
/// a short prefix, and only while this minute's refusals are under `REFUSED_AUDIT_PER_MINUTE`.
async fn log_notification(
    app: &App,
    source: &str,
    body: &[u8],
    n: Option<&Notification>,
    signature_ok: Option<bool>,
    answer_status: u16,
    answer_code: &str,
) -> Result<(), ApiError> {
    let refused = answer_status >= 400;
    let audit = AuditBody::of(
        body,
        if refused {
            REFUSED_BODY_PREFIX_BYTES
        } else {
            ACCEPTED_BODY_MAX_BYTES
        },
    );
    let now = app.now();
    let received_at = rfc3339(now);
    let minute_start = rfc3339(now - now.rem_euclid(60));
    let args = [
        (&received_at).into(),
        source.into(),
        n.map(|n| audit_field(&n.order_id)).into(),
        n.map(|n| audit_field(&n.transaction_status)).into(),
        audit.kept.as_str().into(),
        audit.sha256.as_str().into(),
        (audit.bytes as i64).into(),
        signature_ok.map_or(Arg::Null, |ok| Arg::Int(i64::from(ok))),
        i64::from(answer_status).into(),
        answer_code.into(),
        (&minute_start).into(),
        REFUSED_AUDIT_PER_MINUTE.into(),
    ];
    let columns = "(received_at, source, order_id, transaction_status, body, body_sha256, body_bytes, signature_ok,
                    answer_status, answer_code)";
    let written = if refused {
        db::run(
            &app.db,
            "log refused midtrans notification",
            &format!(
                "INSERT INTO midtrans_notifications {columns}
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
                  WHERE (SELECT count(*) FROM midtrans_notifications
                          WHERE answer_status >= 400 AND received_at >= ?11) < ?12"
            ),
            &args,
        )
        .await?
    } else {
        db::run(
            &app.db,
            "log midtrans notification",
            &format!("INSERT INTO midtrans_notifications {columns} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            &args[..10],
        )
        .await?
    };
    if written == 0 {
        worker::console_log!(
            "{source}: refused notification not audited (over {REFUSED_AUDIT_PER_MINUTE}/min): {} bytes, sha256 {}",
            audit.bytes,
            audit.sha256
        );
    }
    Ok(())
}

/// Cron: keeps the refused part of the audit log within `REFUSED_AUDIT_KEEP_ROWS` rows and
/// `REFUSED_AUDIT_KEEP_SECONDS`. Accepted notifications are the payments' record and stay. Returns rows deleted.
pub async fn prune_audit_log(app: &App) -> Result<usize, ApiError> {
    db::run(
        &app.db,
        "prune refused notifications",
        "DELETE FROM midtrans_notifications
          WHERE answer_status >= 400
            AND (received_at < ?1
                 OR id <= (SELECT id FROM midtrans_notifications WHERE answer_status >= 400
                            ORDER BY id DESC LIMIT 1 OFFSET ?2))",
        &[
            (&rfc3339(app.now() - REFUSED_AUDIT_KEEP_SECONDS)).into(),
            REFUSED_AUDIT_KEEP_ROWS.into(),
        ],
    )
    .await
}

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
        worker::console_log!("webhook: donation {} is now {}", row.order_id, row.status);
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

// ---------------------------------------------------------------------------------------------------------------
// The chat alert

/// Posts a paid donation to its stream's chat room and records the acknowledgement. Failures are logged and left
/// for `deliver_pending_alerts`: the payment is already recorded, and the room dedupes by order id, so a retry can
/// never show it twice.
async fn deliver_alert(app: &App, row: &DonationRow) -> bool {
    let post = DonationPost {
        order_id: row.order_id.clone(),
        donor: row.donor_name.clone(),
        amount: row.amount,
        message: row.message.clone(),
        guest: row.guest != 0,
    };
    let body = match serde_json::to_value(&post) {
        Ok(v) => v,
        Err(e) => {
            worker::console_error!("alert: serializing {}: {e}", row.order_id);
            return false;
        }
    };
    let acknowledged = match crate::room_client::post_to_room(app, &row.stream_id, "/internal/donation", &body).await {
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

// ---------------------------------------------------------------------------------------------------------------
// The status sweep

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
    let req = {
        let mut init = RequestInit::new();
        init.with_method(Method::Get)
            .with_headers(midtrans_headers(app).or_internal("status headers")?);
        Request::new_with_init(
            &format!("{}/v2/{}/status", app.config.midtrans_api_base_url, row.order_id),
            &init,
        )
        .or_internal("status request")?
    };
    let (status, body) = midtrans_fetch(req)
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
    worker::console_log!("reconcile: donation {} is now {}", row.order_id, row.status);
    if decision.credits() {
        deliver_alert(app, &row).await;
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------------------------
// Reads

/// `GET /api/donations/{order_id}`: public; the order id is an unguessable 80-bit token the donor holds.
pub async fn get(app: &App, order_id: &str) -> Result<Response, ApiError> {
    let id = OrderId::parse(order_id).map_err(|_| donation_not_found())?;
    let row = load_donation(app, id.as_str()).await?.ok_or_else(donation_not_found)?;
    http::json(200, &json!({ "donation": row.view() }))
}

/// Sort key of the owner's list: (created_at, order_id), newest first.
type ListKey = (String, String);

/// `GET /api/streams/{id}/donations?limit&cursor`: the owner's list (every status) with the paid total.
pub async fn list_for_owner(app: &App, req: Request, stream_id: &str) -> Result<Response, ApiError> {
    let (_, stream) = stream_row::load_owned(app, &req, stream_id).await?;
    let query = http::query(&req);
    let limit = parse_limit(query.get("limit").map(String::as_str))?;
    let after: Option<ListKey> = match query.get("cursor").filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_donation_cursor(c)?),
        None => None,
    };
    let mut args: Vec<Arg> = vec![(&stream.id).into()];
    let mut sql = format!("SELECT {DONATION_COLUMNS} FROM donations WHERE stream_id = ?1");
    if let Some((created_at, order_id)) = &after {
        args.push(created_at.into());
        args.push(order_id.into());
        sql.push_str(" AND (created_at < ?2 OR (created_at = ?2 AND order_id < ?3))");
    }
    sql.push_str(&format!(" ORDER BY created_at DESC, order_id DESC LIMIT {}", limit + 1));
    let mut rows: Vec<DonationRow> = db::all(&app.db, "list donations", &sql, &args).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_donation_cursor(&r.created_at, &r.order_id))
    } else {
        None
    };
    #[derive(Deserialize)]
    struct Total {
        total_paid: i64,
    }
    let total: Option<Total> = db::one(
        &app.db,
        "stream paid total",
        "SELECT total_paid FROM stream_donation_totals WHERE stream_id = ?1",
        &[(&stream.id).into()],
    )
    .await?;
    let donations: Vec<DonationView> = rows.iter().map(DonationRow::view).collect();
    http::json(
        200,
        &json!({
            "donations": donations,
            "total_paid": total.map_or(0, |t| t.total_paid),
            "currency": "IDR",
            "next_cursor": next_cursor,
        }),
    )
}

/// `GET /api/streams/{id}/leaderboard`: the top 10 donors by paid total. Signed-in donors are grouped by account
/// (shown under their username), guests by name (case-insensitively).
pub async fn leaderboard(app: &App, stream_id: &str) -> Result<Response, ApiError> {
    let stream = stream_row::load(app, stream_id).await?;
    #[derive(Deserialize, Serialize)]
    struct Entry {
        donor: String,
        total: i64,
    }
    let top: Vec<Entry> = db::all(
        &app.db,
        "leaderboard",
        // `status = 'paid'` lets SQLite read only the partial index donations_leaderboard.
        "SELECT COALESCE(u.username, MAX(d.donor_name)) AS donor, SUM(d.amount) AS total
           FROM donations d LEFT JOIN users u ON u.id = d.donor_user_id
          WHERE d.stream_id = ?1 AND d.status = 'paid'
          GROUP BY d.donor_user_id, CASE WHEN d.donor_user_id IS NULL THEN lower(d.donor_name) END
          ORDER BY total DESC, donor ASC LIMIT 10",
        &[(&stream.id).into()],
    )
    .await?;
    http::json(200, &json!({ "top": top, "currency": "IDR" }))
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
