//! The donation reads: one donation by order id (public), the stream's leaderboard (public) and the owner's list
//! with the paid total.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sunnylive_core::donation::OrderId;
use sunnylive_core::error::ApiError;
use sunnylive_core::page::{decode_donation_cursor, encode_donation_cursor, parse_limit};
use worker::{Request, Response};

use super::{donation_not_found, load_donation, DonationRow, DonationView, DONATION_COLUMNS};
use crate::app::App;
use crate::db::{self, Arg};
use crate::http;
use crate::stream_row;

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
