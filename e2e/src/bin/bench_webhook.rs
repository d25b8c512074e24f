//! Benchmark: the Midtrans webhook through the real worker (wrangler dev, local D1, the chat room), median and p99
//! over 1,000 signed notifications sent one at a time, then 1,000 more from 16 concurrent senders for throughput.
//! Each run uses 50 fresh donations, each receiving what a card payment with a jittery notifier produces: one
//! `pending`, one `capture`/`accept` (the move into paid: credit plus chat alert), then 18 duplicate
//! `settlement`s. Checks afterwards that every answer was 200 and every donation was credited exactly once.
//! Run with `make bench` (or `cargo run --release -p sunnylive-e2e --bin bench_webhook` after `make build`).

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};
use sunnylive_e2e::{BoxError, TestApp, MIDTRANS_SERVER_KEY};

const DONATIONS: usize = 50;
const PER_DONATION: usize = 20;
const CONCURRENCY: usize = 16;
const AMOUNT: u64 = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `pending` for a pending donation: a duplicate that may still record the payment method.
    Pending,
    /// `capture` + `accept`: the move into paid, the total's credit and the chat alert.
    Paid,
    /// `settlement` for a paid donation: a duplicate, nothing changes.
    Duplicate,
}

fn notification(order_id: &str, kind: Kind) -> Value {
    let (status, code) = match kind {
        Kind::Pending => ("pending", "201"),
        Kind::Paid => ("capture", "200"),
        Kind::Duplicate => ("settlement", "200"),
    };
    let gross = format!("{AMOUNT}.00");
    let signature = hex::encode(Sha512::digest(format!("{order_id}{code}{gross}{MIDTRANS_SERVER_KEY}")));
    json!({
        "transaction_time": "2026-11-25 22:00:00", "transaction_status": status, "transaction_id": "bench",
        "status_message": "midtrans payment notification", "status_code": code, "signature_key": signature,
        "payment_type": "credit_card", "order_id": order_id, "merchant_id": "G000000000", "gross_amount": gross,
        "fraud_status": "accept", "currency": "IDR", "masked_card": "48111111-1114", "bank": "bni",
    })
}

/// The notifications for a set of donations, in the order a notifier would send them per donation.
fn workload(orders: &[String]) -> Vec<(Kind, String)> {
    let mut out = Vec::with_capacity(orders.len() * PER_DONATION);
    for order_id in orders {
        let mut kinds = vec![Kind::Pending, Kind::Paid];
        kinds.extend(std::iter::repeat_n(Kind::Duplicate, PER_DONATION - 2));
        for kind in kinds {
            out.push((kind, notification(order_id, kind).to_string()));
        }
    }
    out
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[(v.len() * 99 / 100).min(v.len() - 1)]))
}

async fn send(client: &reqwest::Client, url: &str, body: String) -> Result<Duration, BoxError> {
    let t = Instant::now();
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    let elapsed = t.elapsed();
    if status != 200 {
        return Err(format!("webhook answered {status}: {text}").into());
    }
    Ok(elapsed)
}

/// A stream with `DONATIONS` pending donations of `AMOUNT`: (owner token, stream id, order ids).
async fn prepare(app: &TestApp, label: &str) -> Result<(String, String, Vec<String>), BoxError> {
    let api = app.api();
    let owner = api.register(label).await?;
    let (stream_id, _) = api.create_stream(&owner, label).await?;
    let mut orders = Vec::with_capacity(DONATIONS);
    for _ in 0..DONATIONS {
        // Each checkout from its own client address, so the per-IP checkout limit never trips.
        let a = app
            .api()
            .post(
                &format!("/api/streams/{stream_id}/donations"),
                None,
                &json!({"amount": AMOUNT, "donor_name": "bench"}),
            )
            .await?;
        if a.status != 201 {
            return Err(format!("checkout: {} {}", a.status, a.text).into());
        }
        orders.push(a.body["order_id"].as_str().unwrap_or_default().to_string());
    }
    Ok((owner.access, stream_id, orders))
}

/// Every donation must be paid and the total must count each exactly once.
async fn verify(app: &TestApp, token: &str, stream_id: &str, orders: &[String]) -> Result<(), BoxError> {
    let api = app.api();
    let a = api
        .get(&format!("/api/streams/{stream_id}/donations?limit=100"), Some(token))
        .await?;
    let expected = (orders.len() as u64 * AMOUNT) as i64;
    if a.body["total_paid"].as_i64() != Some(expected) {
        return Err(format!("total_paid {} != {expected}", a.body["total_paid"]).into());
    }
    let paid = a.body["donations"]
        .as_array()
        .map_or(0, |d| d.iter().filter(|d| d["status"] == "paid").count());
    if paid != orders.len() {
        return Err(format!("{paid} of {} donations paid", orders.len()).into());
    }
    Ok(())
}

struct Row {
    name: String,
    n: usize,
    median: f64,
    p99: f64,
    per_second: Option<f64>,
}

fn main() -> Result<(), BoxError> {
    sunnylive_e2e::quiet_worker_logs();
    let app = TestApp::start()?;
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}/api/webhooks/midtrans", app.base);
        let mut rows = Vec::new();

        // Warm up: the first requests compile the wasm and open D1.
        let (_, _, warm) = prepare(&app, "benchwarm").await?;
        for (_, body) in workload(&warm[..2]) {
            send(&client, &url, body).await?;
        }
        let mut floor = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            client
                .get(format!("{}/healthz", app.base))
                .send()
                .await?
                .error_for_status()?;
            floor.push(t.elapsed());
        }
        let (median, p99) = stats(floor);
        rows.push(Row {
            name: "GET /healthz (floor)".into(),
            n: 50,
            median,
            p99,
            per_second: None,
        });

        // One at a time: latency.
        let (token, stream_id, orders) = prepare(&app, "benchseq").await?;
        let work = workload(&orders);
        let (mut all, mut moved, mut dup) = (Vec::new(), Vec::new(), Vec::new());
        let started = Instant::now();
        for (kind, body) in work {
            let d = send(&client, &url, body).await?;
            all.push(d);
            if kind == Kind::Paid {
                moved.push(d)
            } else {
                dup.push(d)
            }
        }
        let wall = started.elapsed().as_secs_f64();
        verify(&app, &token, &stream_id, &orders).await?;
        let n = all.len();
        let (median, p99) = stats(all);
        rows.push(Row {
            name: "all notifications, sequential".into(),
            n,
            median,
            p99,
            per_second: Some(n as f64 / wall),
        });
        let n = moved.len();
        let (median, p99) = stats(moved);
        rows.push(Row {
            name: "  move into paid (credit + chat alert)".into(),
            n,
            median,
            p99,
            per_second: None,
        });
        let n = dup.len();
        let (median, p99) = stats(dup);
        rows.push(Row {
            name: "  duplicates (pending, settlement)".into(),
            n,
            median,
            p99,
            per_second: None,
        });

        // Concurrent senders: throughput. Each donation's notifications stay in order within its sender.
        let (token, stream_id, orders) = prepare(&app, "benchpar").await?;
        let chunks: Vec<Vec<(Kind, String)>> = orders.iter().map(|o| workload(std::slice::from_ref(o))).collect();
        let started = Instant::now();
        let results: Vec<Result<Vec<Duration>, BoxError>> = stream::iter(chunks)
            .map(|chunk| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let mut times = Vec::with_capacity(chunk.len());
                    for (_, body) in chunk {
                        times.push(send(&client, &url, body).await?);
                    }
                    Ok(times)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let wall = started.elapsed().as_secs_f64();
        let mut all = Vec::new();
        for r in results {
            all.extend(r?);
        }
        verify(&app, &token, &stream_id, &orders).await?;
        let n = all.len();
        let (median, p99) = stats(all);
        rows.push(Row {
            name: format!("all notifications, {CONCURRENCY} concurrent senders"),
            n,
            median,
            p99,
            per_second: Some(n as f64 / wall),
        });
        Ok::<_, BoxError>(rows)
    });
    app.stop();
    let rows = result?;
    println!(
        "\nMidtrans webhook through wrangler dev (local D1 and Durable Objects, loopback; {DONATIONS} donations x"
    );
    println!("{PER_DONATION} notifications per run; every answer 200, every donation credited exactly once)\n");
    println!("| workload | n | median ms | p99 ms | notifications/s |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        let rate = r.per_second.map_or_else(|| "-".to_string(), |x| format!("{x:.0}"));
        println!("| {} | {} | {:.1} | {:.1} | {rate} |", r.name, r.n, r.median, r.p99);
    }
    Ok(())
}
