//! Donations end to end through the real worker, D1, the chat room and the Midtrans stand-in: a card payment counted
//! once although two success notifications arrive, replays and forgeries that change nothing, amount and order
//! checks, terminal states that stay terminal, checkout during a Midtrans outage, and a lost notification recovered
//! by the cron's status check. Tests that flip the stand-in's global switches (outage, muted notifications) are
//! serial.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};
use sunnylive_e2e::ws::{ChatClient, Credentials};
use sunnylive_e2e::{ensure, eventually, Answer, Api, BoxError, Session, TestApp, TestResult, MIDTRANS_SERVER_KEY};

pub fn tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        a_card_donation_shows_up_once_in_chat_in_the_total_and_on_the_leaderboard,
        snap_is_asked_with_our_finish_page_and_our_webhook,
        a_bank_transfer_goes_pending_then_paid,
        the_same_notification_replayed_5_times_changes_nothing,
        a_forged_signature_gets_401_and_changes_nothing,
        an_amount_that_differs_from_the_charge_gets_422,
        an_unknown_order_gets_404_and_a_malformed_body_400,
        a_notification_for_a_failed_donation_never_credits,
        a_paid_donation_never_returns_to_pending,
        a_refund_takes_the_donation_off_the_total,
        donation_requests_are_validated,
        the_owner_list_is_for_the_owner_only,
        signed_in_donors_are_one_leaderboard_entry_under_their_username,
    )
}

/// Tests that flip the stand-in's global switches: run one at a time, after the parallel ones.
pub fn serial_tests(app: Arc<TestApp>) -> Vec<Trial> {
    sunnylive_e2e::trials!(
        app,
        midtrans_unreachable_at_checkout_gives_502_and_a_failed_donation_row,
        a_lost_notification_is_recovered_by_the_scheduled_status_check,
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// Midtrans's signature, computed here independently of the worker and the stand-in.
fn signature(order_id: &str, status_code: &str, gross_amount: &str) -> String {
    hex::encode(Sha512::digest(format!(
        "{order_id}{status_code}{gross_amount}{MIDTRANS_SERVER_KEY}"
    )))
}

/// A notification shaped like Midtrans's, signed with the development key.
fn notification(order_id: &str, status: &str, code: &str, gross_amount: &str) -> Value {
    json!({
        "transaction_time": "2026-11-25 22:00:00",
        "transaction_status": status,
        "transaction_id": "e2e-0000-0000",
        "status_message": "midtrans payment notification",
        "status_code": code,
        "signature_key": signature(order_id, code, gross_amount),
        "payment_type": "credit_card",
        "order_id": order_id,
        "merchant_id": "G000000000",
        "gross_amount": gross_amount,
        "fraud_status": "accept",
        "currency": "IDR",
    })
}

async fn post_notification(api: &Api, body: &Value) -> Result<Answer, BoxError> {
    api.send(
        api.request(Method::POST, "/api/webhooks/midtrans")
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

/// A stream with an owner, ready to take donations.
struct Setup {
    api: Api,
    owner: Session,
    stream_id: String,
}

async fn setup(app: &TestApp, prefix: &str) -> Result<Setup, BoxError> {
    let api = app.api();
    let owner = api.register(prefix).await?;
    let (stream_id, _) = api.create_stream(&owner, &format!("{prefix} live")).await?;
    Ok(Setup { api, owner, stream_id })
}

/// Starts a donation as a guest: (order id, redirect url).
async fn donate(app: &TestApp, stream_id: &str, amount: u64, body: Value) -> Result<(String, String), BoxError> {
    let mut body = body;
    body["amount"] = json!(amount);
    // Each donation from its own client address: the per-IP checkout limit is not what these tests are about.
    let a = app
        .api()
        .post(&format!("/api/streams/{stream_id}/donations"), None, &body)
        .await?;
    ensure!(a.status == 201, "donate: {} {}", a.status, a.text);
    ensure!(a.body["amount"] == amount, "amount echoed: {}", a.text);
    ensure!(
        !a.body["snap_token"].as_str().unwrap_or_default().is_empty(),
        "snap token: {}",
        a.text
    );
    let order_id = a.body["order_id"].as_str().ok_or("no order_id")?.to_string();
    let redirect = a.body["redirect_url"].as_str().ok_or("no redirect_url")?.to_string();
    Ok((order_id, redirect))
}

/// Presses a button on the stand-in's payment page; returns (status, Location).
async fn pay(app: &TestApp, redirect_url: &str, method: &str) -> Result<(u16, String), BoxError> {
    let r = app
        .http()
        .post(format!("{redirect_url}/pay"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("method={method}"))
        .send()
        .await?;
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((r.status().as_u16(), location))
}

async fn donation(api: &Api, order_id: &str) -> Result<Value, BoxError> {
    let a = api.get(&format!("/api/donations/{order_id}"), None).await?;
    ensure!(a.status == 200, "get donation {order_id}: {} {}", a.status, a.text);
    Ok(a.body["donation"].clone())
}

async fn total_paid(s: &Setup) -> Result<i64, BoxError> {
    let a = s
        .api
        .get(
            &format!("/api/streams/{}/donations", s.stream_id),
            Some(&s.owner.access),
        )
        .await?;
    ensure!(a.status == 200, "owner list: {} {}", a.status, a.text);
    a.body["total_paid"]
        .as_i64()
        .ok_or_else(|| format!("no total_paid: {}", a.text).into())
}

async fn leaderboard(api: &Api, stream_id: &str) -> Result<Vec<Value>, BoxError> {
    let a = api.get(&format!("/api/streams/{stream_id}/leaderboard"), None).await?;
    ensure!(a.status == 200, "leaderboard: {} {}", a.status, a.text);
    Ok(a.body["top"].as_array().cloned().unwrap_or_default())
}

/// What the stand-in sent for an order, and what our webhook answered each time.
async fn sent_notifications(app: &TestApp, order_id: &str) -> Result<Vec<Value>, BoxError> {
    let r = app
        .http()
        .get(format!("{}/_control/notifications/{order_id}", app.midtrans))
        .send()
        .await?;
    let v: Value = r.json().await?;
    Ok(v["notifications"].as_array().cloned().unwrap_or_default())
}

async fn control(app: &TestApp, path: &str, body: Value) -> Result<Value, BoxError> {
    let r = app
        .http()
        .post(format!("{}/_control/{path}", app.midtrans))
        .json(&body)
        .send()
        .await?;
    ensure!(r.status().is_success(), "control {path}: {}", r.status());
    Ok(r.json().await.unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

async fn a_card_donation_shows_up_once_in_chat_in_the_total_and_on_the_leaderboard(app: &TestApp) -> TestResult {
    let s = setup(app, "dcard").await?;
    let mut viewer = ChatClient::connect(&app.base, &s.stream_id, Credentials::Anonymous).await?;
    let (order_id, redirect) = donate(
        app,
        &s.stream_id,
        25_000,
        json!({"message": "semangat!", "donor_name": "Sari"}),
    )
    .await?;
    ensure!(
        donation(&s.api, &order_id).await?["status"] == "pending",
        "a new donation is pending"
    );

    let page = app.http().get(&redirect).send().await?.text().await?;
    ensure!(page.contains("Rp 25.000"), "the payment page shows the amount: {page}");

    let (status, location) = pay(app, &redirect, "card").await?;
    ensure!(status == 303, "the payer is redirected: {status}");
    ensure!(
        location.starts_with(&format!("{}/donations/{order_id}?", app.site))
            && location.contains("status_code=200")
            && location.contains("transaction_status=settlement"),
        "finish redirect: {location}"
    );
    let sent = sent_notifications(app, &order_id).await?;
    let kinds: Vec<(&str, Option<u64>)> = sent
        .iter()
        .map(|n| {
            (
                n["transaction_status"].as_str().unwrap_or(""),
                n["answer_status"].as_u64(),
            )
        })
        .collect();
    ensure!(
        kinds == [("capture", Some(200)), ("settlement", Some(200))],
        "two success notifications, both accepted: {kinds:?}"
    );

    let d = donation(&s.api, &order_id).await?;
    ensure!(d["status"] == "paid" && d["paid_at"].is_string(), "paid: {d}");
    ensure!(
        d["donor"] == "Sari" && d["amount"] == 25_000 && d["currency"] == "IDR",
        "donation object: {d}"
    );

    let frames = viewer.collect_of_type("donation", Duration::from_secs(3)).await;
    ensure!(frames.len() == 1, "exactly one donation frame in chat, got {frames:?}");
    let f = &frames[0];
    ensure!(
        f["donor"] == "Sari" && f["amount"] == 25_000 && f["currency"] == "IDR" && f["message"] == "semangat!",
        "frame: {f}"
    );

    ensure!(total_paid(&s).await? == 25_000, "credited once");
    let top = leaderboard(&s.api, &s.stream_id).await?;
    ensure!(
        top == [json!({"donor": "Sari", "total": 25_000})],
        "leaderboard: {top:?}"
    );

    // A viewer joining later sees the donation in history, still once.
    let late = ChatClient::connect(&app.base, &s.stream_id, Credentials::Anonymous).await?;
    let in_history = late.welcome["history"]
        .as_array()
        .map_or(0, |h| h.iter().filter(|m| m["type"] == "donation").count());
    ensure!(in_history == 1, "history holds the donation once: {}", late.welcome);
    Ok(())
}

async fn snap_is_asked_with_our_finish_page_and_our_webhook(app: &TestApp) -> TestResult {
    let s = setup(app, "dsnap").await?;
    let (order_id, _) = donate(app, &s.stream_id, 10_000, json!({})).await?;
    let order: Value = app
        .http()
        .get(format!("{}/_control/orders/{order_id}", app.midtrans))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        order["request"]["callbacks"]["finish"] == format!("{}/donations/{order_id}", app.site).as_str(),
        "finish callback: {}",
        order["request"]
    );
    ensure!(
        order["notification_urls"] == json!([format!("{}/api/webhooks/midtrans", app.site)]),
        "X-Override-Notification: {}",
        order["notification_urls"]
    );
    ensure!(
        order["request"]["transaction_details"]["gross_amount"] == 10_000,
        "gross_amount: {}",
        order["request"]
    );
    ensure!(
        order["request"]["customer_details"]["first_name"] == "Anonymous",
        "a guest without a name is Anonymous"
    );
    Ok(())
}

async fn a_bank_transfer_goes_pending_then_paid(app: &TestApp) -> TestResult {
    let s = setup(app, "dbank").await?;
    let (order_id, redirect) = donate(app, &s.stream_id, 50_000, json!({"donor_name": "Budi"})).await?;
    let (status, location) = pay(app, &redirect, "bank_transfer").await?;
    ensure!(
        status == 303 && location.contains("transaction_status=settlement"),
        "{status} {location}"
    );
    let sent = sent_notifications(app, &order_id).await?;
    let kinds: Vec<&str> = sent
        .iter()
        .map(|n| n["transaction_status"].as_str().unwrap_or(""))
        .collect();
    ensure!(kinds == ["pending", "settlement"], "{kinds:?}");
    ensure!(sent.iter().all(|n| n["answer_status"] == 200), "all accepted: {sent:?}");
    ensure!(donation(&s.api, &order_id).await?["status"] == "paid", "paid");
    ensure!(total_paid(&s).await? == 50_000, "credited");
    Ok(())
}

async fn the_same_notification_replayed_5_times_changes_nothing(app: &TestApp) -> TestResult {
    let s = setup(app, "dreplay").await?;
    let mut viewer = ChatClient::connect(&app.base, &s.stream_id, Credentials::Anonymous).await?;
    let (order_id, redirect) = donate(app, &s.stream_id, 15_000, json!({"donor_name": "Rina"})).await?;
    pay(app, &redirect, "card").await?;
    let before = donation(&s.api, &order_id).await?;
    ensure!(before["status"] == "paid", "paid: {before}");
    ensure!(
        viewer.next_of_type("donation", Duration::from_secs(5)).await.is_ok(),
        "the first alert arrives"
    );

    let replay = control(app, &format!("replay/{order_id}"), json!({"times": 5})).await?;
    let answers = replay["answers"].as_array().cloned().unwrap_or_default();
    ensure!(answers.len() == 5, "five replays sent: {replay}");
    ensure!(
        answers.iter().all(|a| a["answer_status"] == 200),
        "a duplicate is answered 200: {replay}"
    );

    let after = donation(&s.api, &order_id).await?;
    ensure!(after == before, "the donation did not change: {before} -> {after}");
    ensure!(total_paid(&s).await? == 15_000, "credited once");
    ensure!(
        leaderboard(&s.api, &s.stream_id).await? == [json!({"donor": "Rina", "total": 15_000})],
        "leaderboard"
    );
    let more = viewer.collect_of_type("donation", Duration::from_secs(2)).await;
    ensure!(more.is_empty(), "no second alert: {more:?}");
    Ok(())
}

async fn a_forged_signature_gets_401_and_changes_nothing(app: &TestApp) -> TestResult {
    let s = setup(app, "dforge").await?;
    let (order_id, _) = donate(app, &s.stream_id, 20_000, json!({})).await?;
    let mut forged = notification(&order_id, "settlement", "200", "20000.00");
    // Signed with a key that is not ours.
    forged["signature_key"] = json!(hex::encode(Sha512::digest(format!(
        "{order_id}20020000.00not-the-server-key"
    ))));
    let a = post_notification(&s.api, &forged).await?;
    ensure!(
        a.status == 401 && a.code() == "invalid_signature",
        "forged: {} {}",
        a.status,
        a.text
    );
    // A signature over another amount does not transfer either.
    let mut moved = notification(&order_id, "settlement", "200", "1000.00");
    moved["gross_amount"] = json!("20000.00");
    let a = post_notification(&s.api, &moved).await?;
    ensure!(a.status == 401, "re-used signature: {} {}", a.status, a.text);
    // No signature at all.
    let mut bare = notification(&order_id, "settlement", "200", "20000.00");
    bare.as_object_mut().ok_or("object")?.remove("signature_key");
    let a = post_notification(&s.api, &bare).await?;
    ensure!(a.status == 401, "unsigned: {} {}", a.status, a.text);

    ensure!(
        donation(&s.api, &order_id).await?["status"] == "pending",
        "still pending"
    );
    ensure!(total_paid(&s).await? == 0, "nothing credited");
    Ok(())
}

async fn an_amount_that_differs_from_the_charge_gets_422(app: &TestApp) -> TestResult {
    let s = setup(app, "damount").await?;
    let (order_id, _) = donate(app, &s.stream_id, 30_000, json!({})).await?;
    for wrong in ["3000.00", "30001.00", "30000.50"] {
        let a = post_notification(&s.api, &notification(&order_id, "settlement", "200", wrong)).await?;
        ensure!(
            a.status == 422 && a.code() == "amount_mismatch",
            "{wrong}: {} {}",
            a.status,
            a.text
        );
    }
    ensure!(
        donation(&s.api, &order_id).await?["status"] == "pending",
        "still pending"
    );
    ensure!(total_paid(&s).await? == 0, "nothing credited");
    // The right amount, in Midtrans's format, is accepted.
    let a = post_notification(&s.api, &notification(&order_id, "settlement", "200", "30000.00")).await?;
    ensure!(
        a.status == 200 && a.body["result"] == "processed",
        "{} {}",
        a.status,
        a.text
    );
    ensure!(total_paid(&s).await? == 30_000, "credited");
    Ok(())
}

async fn an_unknown_order_gets_404_and_a_malformed_body_400(app: &TestApp) -> TestResult {
    let api = app.api();
    let a = post_notification(
        &api,
        &notification("sl-aaaaaaaaaaaaaaaa", "settlement", "200", "10000.00"),
    )
    .await?;
    ensure!(a.status == 404, "unknown order: {} {}", a.status, a.text);
    let a = post_notification(&api, &notification("not/an/order", "settlement", "200", "10000.00")).await?;
    ensure!(a.status == 404, "impossible order id: {} {}", a.status, a.text);
    for (body, why) in [
        ("", "empty"),
        ("{", "truncated JSON"),
        ("[1,2]", "an array"),
        (
            r#"{"order_id":"x","status_code":200}"#,
            "missing fields and a number for a string",
        ),
    ] {
        let a = api
            .send(
                api.request(Method::POST, "/api/webhooks/midtrans")
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await?;
        ensure!(a.status == 400, "{why}: {} {}", a.status, a.text);
    }
    Ok(())
}

async fn a_notification_for_a_failed_donation_never_credits(app: &TestApp) -> TestResult {
    let s = setup(app, "dfail").await?;
    let mut viewer = ChatClient::connect(&app.base, &s.stream_id, Credentials::Anonymous).await?;
    let (order_id, redirect) = donate(app, &s.stream_id, 12_000, json!({})).await?;
    let (status, location) = pay(app, &redirect, "fail").await?;
    ensure!(
        status == 303 && location.contains("transaction_status=deny"),
        "{status} {location}"
    );
    ensure!(
        donation(&s.api, &order_id).await?["status"] == "failed",
        "denied -> failed"
    );

    for (st, code) in [("settlement", "200"), ("capture", "200"), ("pending", "201")] {
        let a = post_notification(&s.api, &notification(&order_id, st, code, "12000.00")).await?;
        ensure!(
            a.status == 200 && a.body["result"] == "stale",
            "{st} after failed: {} {}",
            a.status,
            a.text
        );
    }
    ensure!(donation(&s.api, &order_id).await?["status"] == "failed", "still failed");
    ensure!(total_paid(&s).await? == 0, "never credited");
    ensure!(
        leaderboard(&s.api, &s.stream_id).await?.is_empty(),
        "not on the leaderboard"
    );
    let frames = viewer.collect_of_type("donation", Duration::from_secs(2)).await;
    ensure!(frames.is_empty(), "no alert: {frames:?}");

    // An expired checkout is just as final.
    let (order_id, redirect) = donate(app, &s.stream_id, 12_000, json!({})).await?;
    pay(app, &redirect, "expire").await?;
    ensure!(
        donation(&s.api, &order_id).await?["status"] == "failed",
        "expired -> failed"
    );
    let a = post_notification(&s.api, &notification(&order_id, "settlement", "200", "12000.00")).await?;
    ensure!(
        a.status == 200 && a.body["result"] == "stale",
        "{} {}",
        a.status,
        a.text
    );
    ensure!(total_paid(&s).await? == 0, "never credited");
    Ok(())
}

async fn a_paid_donation_never_returns_to_pending(app: &TestApp) -> TestResult {
    let s = setup(app, "dpaid").await?;
    let (order_id, redirect) = donate(app, &s.stream_id, 40_000, json!({})).await?;
    pay(app, &redirect, "card").await?;
    let before = donation(&s.api, &order_id).await?;
    ensure!(before["status"] == "paid", "paid: {before}");
    for (st, code) in [
        ("pending", "201"),
        ("expire", "202"),
        ("deny", "202"),
        ("cancel", "202"),
    ] {
        let a = post_notification(&s.api, &notification(&order_id, st, code, "40000.00")).await?;
        ensure!(
            a.status == 200 && a.body["result"] == "stale",
            "{st} after paid: {} {}",
            a.status,
            a.text
        );
    }
    let mut challenge = notification(&order_id, "capture", "201", "40000.00");
    challenge["fraud_status"] = json!("challenge");
    let a = post_notification(&s.api, &challenge).await?;
    ensure!(a.status == 200, "challenge after paid: {} {}", a.status, a.text);
    let after = donation(&s.api, &order_id).await?;
    ensure!(after == before, "unchanged: {before} -> {after}");
    ensure!(total_paid(&s).await? == 40_000, "credited once");
    Ok(())
}

async fn a_refund_takes_the_donation_off_the_total(app: &TestApp) -> TestResult {
    let s = setup(app, "drefund").await?;
    let (kept, redirect) = donate(app, &s.stream_id, 10_000, json!({"donor_name": "Kept"})).await?;
    pay(app, &redirect, "card").await?;
    let (refunded, redirect) = donate(app, &s.stream_id, 70_000, json!({"donor_name": "Gone"})).await?;
    pay(app, &redirect, "card").await?;
    ensure!(total_paid(&s).await? == 80_000, "both credited");
    let a = post_notification(&s.api, &notification(&refunded, "refund", "200", "70000.00")).await?;
    ensure!(
        a.status == 200 && a.body["result"] == "processed",
        "{} {}",
        a.status,
        a.text
    );
    ensure!(donation(&s.api, &refunded).await?["status"] == "refunded", "refunded");
    ensure!(
        donation(&s.api, &kept).await?["status"] == "paid",
        "the other stays paid"
    );
    ensure!(total_paid(&s).await? == 10_000, "debited once");
    let a = post_notification(&s.api, &notification(&refunded, "settlement", "200", "70000.00")).await?;
    ensure!(
        a.status == 200 && a.body["result"] == "stale",
        "a late settlement: {} {}",
        a.status,
        a.text
    );
    ensure!(total_paid(&s).await? == 10_000, "refunded stays refunded");
    ensure!(
        leaderboard(&s.api, &s.stream_id).await? == [json!({"donor": "Kept", "total": 10_000})],
        "leaderboard"
    );
    Ok(())
}

async fn donation_requests_are_validated(app: &TestApp) -> TestResult {
    let s = setup(app, "dvalid").await?;
    let path = format!("/api/streams/{}/donations", s.stream_id);
    let cases = [
        (json!({}), "amount", "no amount"),
        (json!({"amount": 999}), "amount", "below 1,000"),
        (json!({"amount": 100_000_001}), "amount", "above 100,000,000"),
        (json!({"amount": "5000"}), "amount", "a string"),
        (json!({"amount": 5000.5}), "amount", "a fraction"),
        (
            json!({"amount": 5000, "message": "m".repeat(201)}),
            "message",
            "a 201-character message",
        ),
        (
            json!({"amount": 5000, "message": "bell\u{7}"}),
            "message",
            "a control character",
        ),
        (
            json!({"amount": 5000, "donor_name": "n".repeat(33)}),
            "donor_name",
            "a 33-character name",
        ),
        (
            json!({"amount": 5000, "donor_name": "   "}),
            "donor_name",
            "a blank name",
        ),
    ];
    for (body, field, why) in cases {
        let a = app.api().post(&path, None, &body).await?;
        ensure!(a.status == 422, "{why}: {} {}", a.status, a.text);
        ensure!(
            a.body["error"]["fields"][field].is_string(),
            "{why}: names {field}: {}",
            a.text
        );
    }
    let a = app
        .api()
        .post(
            "/api/streams/aaaaaaaaaaaaaaaa/donations",
            None,
            &json!({"amount": 5000}),
        )
        .await?;
    ensure!(a.status == 404, "unknown stream: {} {}", a.status, a.text);
    let a = s
        .api
        .send(
            s.api
                .request(Method::POST, &path)
                .header("content-type", "text/plain")
                .body("amount=5000"),
        )
        .await?;
    ensure!(a.status == 415, "wrong content type: {} {}", a.status, a.text);
    let a = s
        .api
        .send(
            s.api
                .request(Method::POST, &path)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await?;
    ensure!(a.status == 400, "broken JSON: {} {}", a.status, a.text);
    let a = s.api.get("/api/donations/sl-aaaaaaaaaaaaaaaa", None).await?;
    ensure!(a.status == 404, "unknown donation: {} {}", a.status, a.text);
    let a = s
        .api
        .get(&format!("/api/streams/{}/leaderboard", "aaaaaaaaaaaaaaaa"), None)
        .await?;
    ensure!(a.status == 404, "leaderboard of no stream: {} {}", a.status, a.text);
    Ok(())
}

async fn the_owner_list_is_for_the_owner_only(app: &TestApp) -> TestResult {
    let s = setup(app, "downer").await?;
    let (a1, _) = donate(app, &s.stream_id, 5_000, json!({})).await?;
    let (a2, _) = donate(app, &s.stream_id, 6_000, json!({})).await?;
    let path = format!("/api/streams/{}/donations", s.stream_id);
    let a = s.api.get(&path, None).await?;
    ensure!(a.status == 401, "anonymous: {} {}", a.status, a.text);
    let other = app.api().register("dother").await?;
    let a = s.api.get(&path, Some(&other.access)).await?;
    ensure!(a.status == 403, "someone else: {} {}", a.status, a.text);
    let a = s.api.get(&format!("{path}?limit=1"), Some(&s.owner.access)).await?;
    ensure!(a.status == 200, "owner: {} {}", a.status, a.text);
    let first = a.body["donations"][0]["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cursor = a.body["next_cursor"].as_str().ok_or("a second page")?.to_string();
    let b = s
        .api
        .get(&format!("{path}?limit=1&cursor={cursor}"), Some(&s.owner.access))
        .await?;
    let second = b.body["donations"][0]["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut seen = [first, second];
    seen.sort();
    let mut expected = [a1, a2];
    expected.sort();
    ensure!(
        seen == expected,
        "both donations across two pages: {seen:?} vs {expected:?}"
    );
    ensure!(b.body["next_cursor"].is_null(), "no third page: {}", b.text);
    ensure!(a.body["total_paid"] == 0, "nothing paid yet: {}", a.text);
    Ok(())
}

async fn signed_in_donors_are_one_leaderboard_entry_under_their_username(app: &TestApp) -> TestResult {
    let s = setup(app, "dboard").await?;
    let fan = app.api();
    let who = fan.register("dfan").await?;
    let path = format!("/api/streams/{}/donations", s.stream_id);
    for amount in [5_000, 7_000] {
        // A donor_name from a signed-in donor is ignored: they are shown under their username.
        let a = fan
            .post(
                &path,
                Some(&who.access),
                &json!({"amount": amount, "donor_name": "Someone Else"}),
            )
            .await?;
        ensure!(a.status == 201, "donate: {} {}", a.status, a.text);
        pay(app, a.body["redirect_url"].as_str().ok_or("redirect")?, "card").await?;
    }
    let (_, redirect) = donate(app, &s.stream_id, 3_000, json!({"donor_name": "guest"})).await?;
    pay(app, &redirect, "bank_transfer").await?;
    let top = leaderboard(&s.api, &s.stream_id).await?;
    ensure!(
        top == [
            json!({"donor": who.username, "total": 12_000}),
            json!({"donor": "guest", "total": 3_000})
        ],
        "leaderboard: {top:?}"
    );
    ensure!(total_paid(&s).await? == 15_000, "total");
    Ok(())
}

async fn midtrans_unreachable_at_checkout_gives_502_and_a_failed_donation_row(app: &TestApp) -> TestResult {
    let s = setup(app, "doutage").await?;
    control(app, "outage", json!({"on": true})).await?;
    let result = app
        .api()
        .post(
            &format!("/api/streams/{}/donations", s.stream_id),
            None,
            &json!({"amount": 8_000}),
        )
        .await;
    control(app, "outage", json!({"on": false})).await?;
    let a = result?;
    ensure!(
        a.status == 502 && a.code() == "payment_gateway_unavailable",
        "{} {}",
        a.status,
        a.text
    );
    ensure!(
        !a.text.contains("stand-in"),
        "Midtrans's own words stay out of our answer: {}",
        a.text
    );
    let list = s
        .api
        .get(
            &format!("/api/streams/{}/donations", s.stream_id),
            Some(&s.owner.access),
        )
        .await?;
    let rows = list.body["donations"].as_array().cloned().unwrap_or_default();
    ensure!(
        rows.len() == 1 && rows[0]["status"] == "failed",
        "one failed row, nothing dangling: {}",
        list.text
    );
    ensure!(list.body["total_paid"] == 0, "nothing credited");
    // Once Midtrans is back, checkout works again.
    donate(app, &s.stream_id, 8_000, json!({})).await?;
    Ok(())
}

async fn a_lost_notification_is_recovered_by_the_scheduled_status_check(app: &TestApp) -> TestResult {
    let s = setup(app, "dlost").await?;
    let mut viewer = ChatClient::connect(&app.base, &s.stream_id, Credentials::Anonymous).await?;
    let (order_id, redirect) = donate(app, &s.stream_id, 33_000, json!({"donor_name": "Lost"})).await?;
    control(app, "mute-notifications", json!({"on": true})).await?;
    let paid = pay(app, &redirect, "card").await;
    control(app, "mute-notifications", json!({"on": false})).await?;
    ensure!(paid?.0 == 303, "paid at Midtrans");
    let sent = sent_notifications(app, &order_id).await?;
    ensure!(
        sent.iter().all(|n| n["muted"] == true),
        "every notification was lost: {sent:?}"
    );
    ensure!(
        donation(&s.api, &order_id).await?["status"] == "pending",
        "we never heard of it"
    );

    // The test stack runs with DONATION_RECONCILE_AFTER_SECONDS=0, so one cron run asks the status API.
    eventually(Duration::from_secs(20), "the cron to settle the donation", || async {
        app.run_cron().await?;
        Ok(donation(&s.api, &order_id).await?["status"] == "paid")
    })
    .await?;
    ensure!(total_paid(&s).await? == 33_000, "credited");
    let frames = viewer.collect_of_type("donation", Duration::from_secs(3)).await;
    ensure!(
        frames.len() == 1 && frames[0]["donor"] == "Lost",
        "one alert: {frames:?}"
    );
    app.run_cron().await?;
    ensure!(total_paid(&s).await? == 33_000, "a second cron run changes nothing");
    Ok(())
}
