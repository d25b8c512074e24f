//! Snap create (`POST /snap/v1/transactions`) and the status API (`GET /v2/{order_id}/status`), each behind
//! Midtrans's Basic auth (server key as user name, empty password), answering in Midtrans's shapes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::store::Order;
use crate::{now_wib, AppState};

/// What Snap needs from a create body, once checked.
#[derive(Debug, PartialEq, Eq)]
pub struct CreateRequest {
    pub order_id: String,
    pub gross_amount: u64,
    pub items: Vec<(String, u64, u64)>,
    pub finish_url: Option<String>,
}

fn order_id_is_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 50
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'.'))
}

/// Checks a create body the way Snap does, collecting Snap-style `error_messages`.
pub fn validate_create(body: &Value) -> Result<CreateRequest, Vec<String>> {
    let mut errors = Vec::new();
    let Some(details) = body.get("transaction_details").filter(|d| d.is_object()) else {
        return Err(vec!["transaction_details is required".into()]);
    };
    let order_id = match details.get("order_id").and_then(Value::as_str) {
        None => {
            errors.push("transaction_details.order_id is required".into());
            String::new()
        }
        Some(id) if id.len() > 50 => {
            errors.push("transaction_details.order_id too long, maximum 50 characters".into());
            String::new()
        }
        Some(id) if !order_id_is_valid(id) => {
            errors.push(
                "transaction_details.order_id can only contain alphanumeric, dash (-), underscore (_), tilde (~), \
                 and dot (.)"
                    .into(),
            );
            String::new()
        }
        Some(id) => id.to_string(),
    };
    let gross_amount = match details.get("gross_amount") {
        None => {
            errors.push("transaction_details.gross_amount is required".into());
            0
        }
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => {
                errors.push("transaction_details.gross_amount must be an integer of at least 1 for IDR".into());
                0
            }
        },
    };
    let mut items = Vec::new();
    match body.get("item_details") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, item) in list.iter().enumerate() {
                let price = item.get("price").and_then(Value::as_u64);
                let quantity = item.get("quantity").and_then(Value::as_u64).filter(|q| *q >= 1);
                let name = item.get("name").and_then(Value::as_str);
                match (price, quantity, name) {
                    (Some(p), Some(q), Some(n)) if !n.is_empty() && n.chars().count() <= 50 => {
                        items.push((n.to_string(), p, q))
                    }
                    (None, _, _) => errors.push(format!("item_details[{i}].price must be an integer")),
                    (_, None, _) => errors.push(format!("item_details[{i}].quantity must be at least 1")),
                    _ => errors.push(format!("item_details[{i}].name is required, maximum 50 characters")),
                }
            }
            let sum: u64 = items.iter().map(|(_, p, q)| p.saturating_mul(*q)).sum();
            if errors.is_empty() && sum != gross_amount {
                errors.push("transaction_details.gross_amount is not equal to the sum of item_details".into());
            }
        }
        Some(_) => errors.push("item_details must be an array".into()),
    }
    let finish_url = match body.pointer("/callbacks/finish") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if u.starts_with("http://") || u.starts_with("https://") => Some(u.clone()),
        Some(_) => {
            errors.push("callbacks.finish must be a valid URL".into());
            None
        }
    };
    if errors.is_empty() {
        Ok(CreateRequest {
            order_id,
            gross_amount,
            items,
            finish_url,
        })
    } else {
        Err(errors)
    }
}

/// True when `Authorization` is `Basic base64(<server key>:<anything>)`.
pub fn authorized(headers: &HeaderMap, server_key: &str) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = B64.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    matches!(decoded.split_once(':'), Some((user, _)) if user == server_key)
}

fn snap_error(status: StatusCode, messages: Vec<String>) -> Response {
    (status, Json(json!({ "error_messages": messages }))).into_response()
}

/// `POST /snap/v1/transactions`
pub async fn create(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(status) = app.store.switches().outage {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return snap_error(
            status,
            vec!["Sorry, the service is temporarily unavailable (stand-in outage)".into()],
        );
    }
    if !authorized(&headers, &app.config.server_key) {
        return snap_error(
            StatusCode::UNAUTHORIZED,
            vec![
                "Access denied due to unauthorized transaction, please check client or server key".into(),
                "Visit https://snap-docs.midtrans.com/#request-headers for more details".into(),
            ],
        );
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return snap_error(StatusCode::BAD_REQUEST, vec!["Request body is not valid JSON".into()]);
    };
    let req = match validate_create(&parsed) {
        Ok(r) => r,
        Err(messages) => return snap_error(StatusCode::BAD_REQUEST, messages),
    };
    let notification_urls: Vec<String> = headers
        .get("x-override-notification")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .take(3)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let token = app.store.new_uuid();
    let order = Order {
        order_id: req.order_id.clone(),
        token: token.clone(),
        gross_amount: req.gross_amount,
        items: req.items,
        notification_urls,
        finish_url: req.finish_url,
        created_at: now_wib(),
        request: parsed,
        transaction: None,
        notifications: Vec::new(),
    };
    if !app.store.insert(order) {
        return snap_error(
            StatusCode::BAD_REQUEST,
            vec!["transaction_details.order_id has already been taken".into()],
        );
    }
    let redirect_url = format!("{}/snap/v4/redirection/{token}", app.config.public_url);
    (
        StatusCode::CREATED,
        Json(json!({ "token": token, "redirect_url": redirect_url })),
    )
        .into_response()
}

/// `GET /v2/{order_id}/status`: the current transaction, with the same fields as its last notification.
pub async fn status(State(app): State<Arc<AppState>>, headers: HeaderMap, Path(order_id): Path<String>) -> Response {
    let switches = app.store.switches();
    if switches.outage.is_some() && switches.outage_status_api {
        return (StatusCode::SERVICE_UNAVAILABLE, "stand-in outage").into_response();
    }
    if !authorized(&headers, &app.config.server_key) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "status_code": "401",
                "status_message": "Transaction cannot be authorized with the current client/server key."
            })),
        )
            .into_response();
    }
    match app.store.get(&order_id).and_then(|o| o.transaction) {
        Some(mut tx) => {
            tx["status_message"] = json!("Success, transaction is found");
            (StatusCode::OK, Json(tx)).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "status_code": "404",
                "status_message": "Transaction doesn't exist.",
                "id": app.store.new_uuid(),
            })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn body(order_id: &str, amount: Value, items: Value) -> Value {
        json!({
            "transaction_details": {"order_id": order_id, "gross_amount": amount},
            "item_details": items,
            "callbacks": {"finish": "http://127.0.0.1:8787/donations/x"},
        })
    }

    #[test]
    fn a_well_formed_body_is_accepted() {
        let r = validate_create(&body(
            "sl-abc",
            json!(10000),
            json!([{"price": 10000, "quantity": 1, "name": "D"}]),
        ))
        .unwrap();
        assert_eq!(r.order_id, "sl-abc");
        assert_eq!(r.gross_amount, 10000);
        assert_eq!(r.finish_url.as_deref(), Some("http://127.0.0.1:8787/donations/x"));
    }

    #[test]
    fn bodies_snap_would_refuse_are_refused_with_a_message() {
        let cases = [
            (json!({}), "transaction_details is required"),
            (body("", json!(1000), json!(null)), "can only contain"),
            (body("a b", json!(1000), json!(null)), "can only contain"),
            (body(&"x".repeat(51), json!(1000), json!(null)), "too long"),
            (body("ok", json!(1000.5), json!(null)), "must be an integer"),
            (body("ok", json!("1000"), json!(null)), "must be an integer"),
            (body("ok", json!(0), json!(null)), "must be an integer"),
            (
                body("ok", json!(1000), json!([{"price": 999, "quantity": 1, "name": "D"}])),
                "not equal to the sum of item_details",
            ),
            (
                body(
                    "ok",
                    json!(1000),
                    json!([{"price": 1000, "quantity": 1, "name": "n".repeat(51)}]),
                ),
                "name is required",
            ),
        ];
        for (b, expected) in cases {
            let errors = validate_create(&b).expect_err(expected);
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{errors:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn basic_auth_is_the_server_key_as_user_name() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "k"));
        // base64("k:")
        h.insert("authorization", HeaderValue::from_static("Basic azo="));
        assert!(authorized(&h, "k"));
        assert!(!authorized(&h, "other"));
        h.insert("authorization", HeaderValue::from_static("Bearer azo="));
        assert!(!authorized(&h, "k"));
    }
}
