//! Benchmark: per-request time of login and of `GET /api/me` through the real worker (wrangler dev), median and p99
//! over 50 requests each, against `/healthz` as the floor of fixed overhead (loopback, miniflare's proxy, routing).
//! Run with `make bench` (or `cargo run --release -p sunnylive-e2e --bin bench_auth` after `make build`).

use std::time::{Duration, Instant};

use serde_json::json;
use sunnylive_e2e::{BoxError, TestApp};

const N: usize = 50;

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[(v.len() * 99 / 100).min(v.len() - 1)]))
}

fn main() -> Result<(), BoxError> {
    sunnylive_e2e::quiet_worker_logs();
    let app = TestApp::start()?;
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let api = app.api();
        let s = api.register("bench").await?;
        // Logins are limited to 10 per username per 5 minutes: log in 50 different users once each.
        let mut users = Vec::with_capacity(N);
        for _ in 0..N {
            users.push(app.api().register("benchl").await?);
        }
        // Warm up: the first requests compile the wasm and open D1.
        for _ in 0..5 {
            api.get("/healthz", None).await?;
            api.get("/api/me", Some(&s.access)).await?;
        }
        let mut rows = Vec::new();
        for (name, kind) in [
            ("GET /healthz (floor)", 0),
            ("GET /api/me", 1),
            ("POST /api/auth/login", 2),
        ] {
            let mut times = Vec::with_capacity(N);
            for user in &users {
                // A fresh client address each time, so the per-IP limit never trips either.
                let client = app.api();
                let t = Instant::now();
                let a = match kind {
                    0 => client.get("/healthz", None).await?,
                    1 => client.get("/api/me", Some(&s.access)).await?,
                    _ => {
                        client
                            .post(
                                "/api/auth/login",
                                None,
                                &json!({"username": user.username, "password": user.password}),
                            )
                            .await?
                    }
                };
                times.push(t.elapsed());
                if a.status != 200 {
                    return Err(format!("{name}: {} {}", a.status, a.text).into());
                }
            }
            rows.push((name, stats(times)));
        }
        Ok::<_, BoxError>(rows)
    });
    app.stop();
    let rows = result?;
    let floor = rows[0].1 .0;
    println!("\nAuth request time through wrangler dev (N = {N} each, loopback, one client at a time)\n");
    println!("| request | median ms | p99 ms | median minus floor ms |");
    println!("|---|---:|---:|---:|");
    for (name, (median, p99)) in &rows {
        println!("| {name} | {median:.1} | {p99:.1} | {:.1} |", median - floor);
    }
    Ok(())
}
