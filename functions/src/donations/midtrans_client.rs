//! The worker's HTTP client of Midtrans: Snap's create-transaction call and the status API, each with the server key
//! as Basic auth and a time limit. What the answers mean is read in `sunnylive_core::midtrans`.

use std::time::Duration;

use futures::future::{select, Either};
use sunnylive_core::midtrans::{
    basic_auth, parse_snap_create_answer, snap_create_body, SnapCheckout, SnapError, SnapSession,
};
use worker::{Fetch, Headers, Method, Request};

use crate::app::App;
use crate::http;

/// How long we wait for Snap or the status API. Snap usually answers in well under a second; a checkout that hangs
/// longer is better refused (502) than left spinning in the donor's browser.
const MIDTRANS_TIMEOUT: Duration = Duration::from_secs(8);

/// Races a Midtrans call against `MIDTRANS_TIMEOUT`. `None` on timeout or network failure.
async fn fetch(req: Request) -> Result<(u16, Vec<u8>), String> {
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

fn headers(app: &App) -> worker::Result<Headers> {
    let headers = Headers::new();
    headers.set("accept", "application/json")?;
    headers.set("content-type", "application/json")?;
    headers.set("authorization", &basic_auth(&app.config.midtrans_server_key))?;
    Ok(headers)
}

/// `POST {snap base}/snap/v1/transactions`, with our webhook as `X-Override-Notification` so this transaction's
/// notifications reach us without any dashboard setting.
pub(super) async fn create_snap_checkout(
    app: &App,
    checkout: &SnapCheckout<'_>,
    webhook_url: &str,
) -> Result<SnapSession, SnapError> {
    let build = || -> worker::Result<Request> {
        let headers = headers(app)?;
        headers.set("x-override-notification", webhook_url)?;
        http::outbound(
            &Method::Post,
            &format!("{}/snap/v1/transactions", app.config.midtrans_snap_base_url),
            &headers,
            Some(&snap_create_body(checkout).to_string()),
            false,
        )
    };
    let req = build().map_err(|e| SnapError::BadAnswer(format!("building the request: {e}")))?;
    match fetch(req).await {
        Ok((status, body)) => parse_snap_create_answer(status, &body),
        Err(why) => {
            worker::console_error!("donations: Snap unreachable: {why}");
            Err(SnapError::Unavailable { status: None })
        }
    }
}

/// `GET {api base}/v2/{order_id}/status`: the status code and body as Midtrans sent them (read by
/// `sunnylive_core::midtrans::parse_status_answer`), or why there was no answer.
pub(super) async fn transaction_status(app: &App, order_id: &str) -> Result<(u16, Vec<u8>), String> {
    let build = || -> worker::Result<Request> {
        http::outbound(
            &Method::Get,
            &format!("{}/v2/{order_id}/status", app.config.midtrans_api_base_url),
            &headers(app)?,
            None,
            false,
        )
    };
    let req = build().map_err(|e| format!("building the request: {e}"))?;
    fetch(req).await
}
