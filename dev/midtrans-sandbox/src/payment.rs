//! The payer's side: the payment page at Snap's `redirect_url` (plain HTML forms, no JavaScript), the four
//! choices behind it, the signed notifications each choice sends to the order's override URL, and the 303 back to
//! the merchant's finish URL.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::signing::{gross_amount, signature_key, status_code_for};
use crate::store::{Order, SentNotification};
use crate::{now_wib, AppState};

/// Midtrans's sandbox merchant ids look like this.
const MERCHANT_ID: &str = "G000000000";

/// A payer's choice on the payment page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Card: `capture` with `fraud_status` `accept`, then `settlement`.
    Card,
    /// Bank transfer (virtual account): `pending`, then `settlement`.
    BankTransfer,
    /// The bank refuses: `deny`.
    Fail,
    /// The payer never pays: `expire`.
    Expire,
}

impl Method {
    /// The transaction statuses this choice walks through, in order.
    pub fn steps(self) -> &'static [&'static str] {
        match self {
            Method::Card => &["capture", "settlement"],
            Method::BankTransfer => &["pending", "settlement"],
            Method::Fail => &["deny"],
            Method::Expire => &["expire"],
        }
    }

    fn payment_type(self) -> &'static str {
        match self {
            Method::Card | Method::Fail => "credit_card",
            Method::BankTransfer | Method::Expire => "bank_transfer",
        }
    }
}

#[derive(Deserialize)]
pub struct PayForm {
    method: Method,
}

/// The notification Midtrans would send for `order` reaching `status`: every value a string except the arrays
/// Midtrans also sends (`va_numbers`), which receivers must tolerate.
pub fn notification_body(
    order: &Order,
    transaction_id: &str,
    method: Method,
    status: &str,
    server_key: &str,
    now: &str,
) -> Value {
    let code = status_code_for(status);
    let amount = gross_amount(order.gross_amount);
    let mut body = json!({
        "transaction_time": order.transaction.as_ref()
            .and_then(|t| t["transaction_time"].as_str()).unwrap_or(now),
        "transaction_status": status,
        "transaction_id": transaction_id,
        "status_message": "midtrans payment notification",
        "status_code": code,
        "signature_key": signature_key(&order.order_id, code, &amount, server_key),
        "payment_type": method.payment_type(),
        "order_id": order.order_id,
        "merchant_id": MERCHANT_ID,
        "gross_amount": amount,
        "currency": "IDR",
    });
    match method {
        Method::Card | Method::Fail => {
            body["masked_card"] = json!("48111111-1114");
            body["card_type"] = json!("credit");
            body["bank"] = json!("bni");
            body["fraud_status"] = json!(if status == "deny" { "deny" } else { "accept" });
            body["channel_response_code"] = json!(if status == "deny" { "05" } else { "00" });
        }
        Method::BankTransfer | Method::Expire => {
            body["va_numbers"] = json!([{ "bank": "bca", "va_number": "12345678901" }]);
            body["fraud_status"] = json!("accept");
        }
    }
    if status == "settlement" {
        body["settlement_time"] = json!(now);
    }
    body
}

/// POSTs one notification to every override URL of the order (or records it as muted) and remembers the answers.
pub async fn deliver(app: &AppState, order_id: &str, body: Value, replay: bool) -> Vec<SentNotification> {
    let Some(order) = app.store.get(order_id) else {
        return Vec::new();
    };
    let status = body["transaction_status"].as_str().unwrap_or_default().to_string();
    let code = body["status_code"].as_str().unwrap_or_default().to_string();
    let muted = app.store.switches().mute_notifications;
    let mut sent = Vec::new();
    let targets: Vec<Option<String>> = if order.notification_urls.is_empty() || muted {
        vec![None]
    } else {
        order.notification_urls.iter().cloned().map(Some).collect()
    };
    for url in targets {
        let mut record = SentNotification {
            sent_at: now_wib(),
            url: url.clone(),
            transaction_status: status.clone(),
            status_code: code.clone(),
            body: body.clone(),
            muted,
            replay,
            answer_status: None,
            answer_body: None,
            error: None,
            duration_ms: 0,
        };
        match url {
            Some(url) => {
                let started = Instant::now();
                let result = app
                    .http
                    .post(crate::rerouted(&url, app.config.notify_origin.as_deref()))
                    .header("content-type", "application/json")
                    .header("accept", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                match result {
                    Ok(resp) => {
                        record.answer_status = Some(resp.status().as_u16());
                        let text = resp.text().await.unwrap_or_default();
                        record.answer_body = Some(text.chars().take(2000).collect());
                    }
                    Err(e) => record.error = Some(e.to_string()),
                }
                record.duration_ms = started.elapsed().as_millis() as u64;
                println!(
                    "notify {order_id} {status} ({code}) -> {} in {} ms",
                    record
                        .answer_status
                        .map_or_else(|| record.error.clone().unwrap_or_default(), |s| s.to_string()),
                    record.duration_ms
                );
            }
            None if muted => println!("notify {order_id} {status} ({code}) -> muted"),
            None => println!("notify {order_id} {status} ({code}) -> no X-Override-Notification URL"),
        }
        sent.push(record);
    }
    app.store
        .with_order(order_id, |o| o.notifications.extend(sent.iter().cloned()));
    sent
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// "Rp 1.234.567", the way Indonesian checkouts write amounts.
fn rupiah(amount: u64) -> String {
    let digits = amount.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    format!("Rp {out}")
}

fn page(title: &str, inner: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}}\
         form{{display:inline}}button{{margin:.3rem;padding:.6rem 1rem;font-size:1rem}}\
         .note{{color:#666;font-size:.9rem}}</style></head><body>{inner}\
         <p class=\"note\">Local Midtrans sandbox stand-in: no money moves.</p></body></html>",
        html_escape(title)
    )
}

/// `GET /snap/v4/redirection/{token}`
pub async fn show(State(app): State<Arc<AppState>>, Path(token): Path<String>) -> Response {
    let Some(order) = app.store.by_token(&token) else {
        return (
            StatusCode::NOT_FOUND,
            Html(page("Not found", "<h1>This payment link is not valid.</h1>")),
        )
            .into_response();
    };
    let items: String = order
        .items
        .iter()
        .map(|(name, price, qty)| format!("<li>{} &times; {qty}: {}</li>", html_escape(name), rupiah(*price)))
        .collect();
    let state = order
        .transaction
        .as_ref()
        .and_then(|t| t["transaction_status"].as_str())
        .unwrap_or("waiting for a payment method");
    let choices = if order.is_finished() {
        "<p><strong>This order is finished.</strong></p>".to_string()
    } else {
        [
            ("card", "Pay by card"),
            ("bank_transfer", "Pay by bank transfer"),
            ("fail", "Fail (card denied)"),
            ("expire", "Let it expire"),
        ]
        .iter()
        .map(|(m, label)| {
            format!(
                "<form method=\"post\" action=\"/snap/v4/redirection/{}/pay\">\
                 <input type=\"hidden\" name=\"method\" value=\"{m}\"><button type=\"submit\">{label}</button></form>",
                html_escape(&token)
            )
        })
        .collect()
    };
    let inner = format!(
        "<h1>Pay {amount}</h1><p>Order <code>{order_id}</code></p><ul>{items}</ul>\
         <p>Status: <span id=\"status\">{state}</span></p>{choices}",
        amount = rupiah(order.gross_amount),
        order_id = html_escape(&order.order_id),
        state = html_escape(state),
    );
    Html(page(&format!("Pay {}", rupiah(order.gross_amount)), &inner)).into_response()
}

/// `POST /snap/v4/redirection/{token}/pay` with `method=card|bank_transfer|fail|expire`: walks the order through
/// the choice's statuses, sending each notification (and waiting for its answer, so a test that submits this form
/// sees the webhook's effects when the 303 arrives), then sends the payer to the finish URL.
pub async fn pay(State(app): State<Arc<AppState>>, Path(token): Path<String>, Form(form): Form<PayForm>) -> Response {
    let Some(order) = app.store.by_token(&token) else {
        return (
            StatusCode::NOT_FOUND,
            Html(page("Not found", "<h1>This payment link is not valid.</h1>")),
        )
            .into_response();
    };
    if order.is_finished() {
        return (
            StatusCode::CONFLICT,
            Html(page("Finished", "<h1>This order is already finished.</h1>")),
        )
            .into_response();
    }
    let transaction_id = order
        .transaction
        .as_ref()
        .and_then(|t| t["transaction_id"].as_str().map(String::from))
        .unwrap_or_else(|| app.store.new_uuid());
    let mut last = Value::Null;
    for status in form.method.steps() {
        let now = now_wib();
        let Some(body) = app.store.with_order(&order.order_id, |o| {
            let body = notification_body(o, &transaction_id, form.method, status, &app.config.server_key, &now);
            o.transaction = Some(body.clone());
            body
        }) else {
            break;
        };
        deliver(&app, &order.order_id, body.clone(), false).await;
        last = body;
    }
    let code = last["status_code"].as_str().unwrap_or_default();
    let status = last["transaction_status"].as_str().unwrap_or_default();
    match order.finish_url.as_deref().and_then(|u| reqwest::Url::parse(u).ok()) {
        Some(mut url) => {
            url.query_pairs_mut()
                .append_pair("order_id", &order.order_id)
                .append_pair("status_code", code)
                .append_pair("transaction_status", status);
            Redirect::to(url.as_str()).into_response()
        }
        None => Html(page(
            "Done",
            &format!(
                "<h1>Payment {}</h1><p>Order <code>{}</code></p>",
                html_escape(status),
                html_escape(&order.order_id)
            ),
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            order_id: "sl-abc".into(),
            token: "t".into(),
            gross_amount: 25_000,
            items: vec![],
            notification_urls: vec![],
            finish_url: None,
            created_at: "2026-11-25 22:00:00".into(),
            request: Value::Null,
            transaction: None,
            notifications: vec![],
        }
    }

    #[test]
    fn every_notification_is_signed_like_midtrans_with_its_status_code() {
        let o = order();
        for (method, status, code) in [
            (Method::Card, "capture", "200"),
            (Method::Card, "settlement", "200"),
            (Method::BankTransfer, "pending", "201"),
            (Method::Fail, "deny", "202"),
            (Method::Expire, "expire", "202"),
        ] {
            let b = notification_body(&o, "tx", method, status, "dev-only-midtrans-server-key", "now");
            assert_eq!(b["status_code"], code, "{status}");
            assert_eq!(b["gross_amount"], "25000.00");
            assert_eq!(
                b["signature_key"],
                signature_key("sl-abc", code, "25000.00", "dev-only-midtrans-server-key"),
                "{status}"
            );
        }
    }

    #[test]
    fn a_card_capture_is_accepted_by_fraud_detection_and_settlement_carries_its_time() {
        let o = order();
        let capture = notification_body(&o, "tx", Method::Card, "capture", "k", "now");
        assert_eq!(capture["fraud_status"], "accept");
        assert!(capture.get("settlement_time").is_none());
        let settle = notification_body(&o, "tx", Method::Card, "settlement", "k", "later");
        assert_eq!(settle["settlement_time"], "later");
    }

    #[test]
    fn the_choices_walk_midtrans_statuses_in_order() {
        assert_eq!(Method::Card.steps(), ["capture", "settlement"]);
        assert_eq!(Method::BankTransfer.steps(), ["pending", "settlement"]);
        assert_eq!(Method::Fail.steps(), ["deny"]);
        assert_eq!(Method::Expire.steps(), ["expire"]);
    }

    #[test]
    fn amounts_are_written_the_indonesian_way_and_html_is_escaped() {
        assert_eq!(rupiah(1_234_567), "Rp 1.234.567");
        assert_eq!(rupiah(1_000), "Rp 1.000");
        assert_eq!(rupiah(999), "Rp 999");
        assert_eq!(html_escape("<b>\"x\"&'"), "&lt;b&gt;&quot;x&quot;&amp;&#39;");
    }
}
