//! A local stand-in for the Midtrans sandbox: Snap create, the status API, a payment page whose buttons send
//! notifications signed exactly as Midtrans signs them, and `/_control/*` switches for the end-to-end suite.
//! It lets `make dev` and the tests run the whole donation flow with no internet and no Midtrans account.

pub mod control;
pub mod payment;
pub mod signing;
pub mod snap;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::store::Store;

/// The development server key (the `MIDTRANS_SERVER_KEY` in the committed `.dev.vars`).
pub const DEFAULT_SERVER_KEY: &str = "dev-only-midtrans-server-key";
/// `SUNNYLIVE_MIDTRANS_PORT` when unset.
pub const DEFAULT_PORT: u16 = 8790;

/// Midtrans wants an answer within 5 s; waiting a little longer shows a slow webhook as slow rather than as lost.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Config {
    pub server_key: String,
    /// Base of the `redirect_url`s handed out, e.g. `http://127.0.0.1:8790`.
    pub public_url: String,
    /// Where notifications really go, e.g. `http://127.0.0.1:8787`: replaces the scheme, host and port of every
    /// override URL (keeping its path). For a site whose public origin this stand-in cannot reach, such as the
    /// end-to-end suite's https front under a made-up host name; unset, URLs are used as given.
    pub notify_origin: Option<String>,
}

/// `url` with its origin replaced by `origin` (path and query kept).
pub fn rerouted(url: &str, origin: Option<&str>) -> String {
    let Some(origin) = origin else {
        return url.to_string();
    };
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{}{path}", origin.trim_end_matches('/'))
}

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub http: reqwest::Client,
}

/// Midtrans's sandbox writes times in Jakarta time (UTC+7) as "YYYY-MM-DD HH:MM:SS".
pub fn now_wib() -> String {
    let wib = chrono::FixedOffset::east_opt(7 * 3600).expect("BUG: +07:00 is a valid offset");
    chrono::Utc::now()
        .with_timezone(&wib)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Every route of the stand-in.
pub fn router(config: Config) -> Router {
    let http = reqwest::Client::builder()
        .timeout(NOTIFY_TIMEOUT)
        // Midtrans's notifier identifies itself like this; some receivers log it.
        .user_agent("Veritrans")
        .build()
        .expect("BUG: a plain-HTTP reqwest client always builds");
    let state = Arc::new(AppState {
        config,
        store: Store::default(),
        http,
    });
    Router::new()
        .route("/snap/v1/transactions", post(snap::create))
        .route("/v2/{order_id}/status", get(snap::status))
        .route("/snap/v4/redirection/{token}", get(payment::show))
        .route("/snap/v4/redirection/{token}/pay", post(payment::pay))
        .route("/_control/health", get(control::health))
        .route("/_control/outage", post(control::outage))
        .route("/_control/mute-notifications", post(control::mute_notifications))
        .route("/_control/replay/{order_id}", post(control::replay))
        .route("/_control/notifications/{order_id}", get(control::notifications))
        .route("/_control/orders/{order_id}", get(control::order))
        .route("/_control/reset", post(control::reset))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The path as logged: a Snap token is a bearer link to the payment page, so only its first characters are shown.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/snap/v4/redirection/") {
        Some(rest) => {
            let (token, tail) = rest.split_once('/').map_or((rest, ""), |(t, tail)| (t, tail));
            let short: String = token.chars().take(8).collect();
            let slash = if tail.is_empty() { "" } else { "/" };
            format!("/snap/v4/redirection/{short}...{slash}{tail}")
        }
        None => path.to_string(),
    }
}

/// One line per request: method, path, status, time. Headers (the Basic auth carries the server key) and bodies
/// are never logged.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
    let started = Instant::now();
    let resp = next.run(req).await;
    println!(
        "{method} {path} -> {} in {} ms",
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_paths_never_carry_a_whole_snap_token() {
        let token = "66e4fa55-fdac-4ef9-91b5-733b97d1b862";
        let p = loggable_path(&format!("/snap/v4/redirection/{token}/pay"));
        assert_eq!(p, "/snap/v4/redirection/66e4fa55.../pay");
        assert!(!loggable_path(&format!("/snap/v4/redirection/{token}")).contains(token));
        assert_eq!(loggable_path("/v2/sl-a/status"), "/v2/sl-a/status");
    }

    #[test]
    fn wib_times_look_like_midtrans_times() {
        let t = now_wib();
        assert_eq!(t.len(), 19);
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
    }
}

#[cfg(test)]
mod reroute_tests {
    use super::rerouted;

    #[test]
    fn a_notification_can_be_delivered_to_another_origin_keeping_its_path() {
        assert_eq!(
            rerouted(
                "https://sunnylive.test:4443/api/webhooks/midtrans",
                Some("http://127.0.0.1:8787")
            ),
            "http://127.0.0.1:8787/api/webhooks/midtrans"
        );
        assert_eq!(rerouted("https://a.example/x?y=1", None), "https://a.example/x?y=1");
    }
}
