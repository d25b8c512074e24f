//! The audit log of Midtrans notifications and status answers (`midtrans_notifications`), with the answer given to
//! each, and its retention.

use sunnylive_core::error::ApiError;
use sunnylive_core::midtrans::{
    audit_field, AuditBody, Notification, ACCEPTED_BODY_MAX_BYTES, REFUSED_BODY_PREFIX_BYTES,
};

use crate::app::{rfc3339, App};
use crate::db::{self, Arg};

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
pub(super) async fn log_notification(
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
