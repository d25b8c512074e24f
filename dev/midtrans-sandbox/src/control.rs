//! `/_control/*`: switches and records for the end-to-end suite. Not part of Midtrans; never reachable in
//! production because the stand-in only ever runs on 127.0.0.1.
//!
//! - `GET  /_control/health` -> `{"ok": true}`
//! - `POST /_control/outage {"on": bool, "status"?: u16, "status_api"?: bool}`: Snap create answers `status`
//!   (default 503); with `status_api` the status API fails too.
//! - `POST /_control/mute-notifications {"on": bool}`: payments still happen, notifications are not sent.
//! - `POST /_control/replay/{order_id} {"times"?: n}`: resends the order's last notification n times (default 1),
//!   byte for byte, and answers what the receiver said each time.
//! - `GET  /_control/notifications/{order_id}`: every notification for the order and the answer it got.
//! - `GET  /_control/orders/{order_id}`: the order, including the Snap create body and override URL received.
//! - `POST /_control/reset`: forgets every order and clears the switches.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::payment::deliver;
use crate::AppState;

/// Upper bound on `/_control/replay` so a typo cannot make the stand-in hammer the worker for minutes.
const MAX_REPLAYS: u32 = 1000;

pub async fn health() -> Response {
    Json(json!({ "ok": true })).into_response()
}

#[derive(Deserialize)]
pub struct Outage {
    on: bool,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    status_api: bool,
}

pub async fn outage(State(app): State<Arc<AppState>>, Json(o): Json<Outage>) -> Response {
    let switches = app.store.update_switches(|s| {
        s.outage = o.on.then(|| o.status.filter(|c| (400..600).contains(c)).unwrap_or(503));
        s.outage_status_api = o.on && o.status_api;
    });
    Json(switches).into_response()
}

#[derive(Deserialize)]
pub struct Toggle {
    on: bool,
}

pub async fn mute_notifications(State(app): State<Arc<AppState>>, Json(t): Json<Toggle>) -> Response {
    Json(app.store.update_switches(|s| s.mute_notifications = t.on)).into_response()
}

#[derive(Deserialize, Default)]
pub struct Replay {
    #[serde(default)]
    times: Option<u32>,
}

pub async fn replay(
    State(app): State<Arc<AppState>>,
    Path(order_id): Path<String>,
    body: Option<Json<Replay>>,
) -> Response {
    let times = body.and_then(|Json(r)| r.times).unwrap_or(1).clamp(1, MAX_REPLAYS);
    let Some(order) = app.store.get(&order_id) else {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "no such order" }))).into_response();
    };
    let Some(last) = order.notifications.last().map(|n| n.body.clone()) else {
        return (
            StatusCode::CONFLICT,
            Json(json!({ "error": "no notification to replay yet" })),
        )
            .into_response();
    };
    let mut answers = Vec::new();
    for _ in 0..times {
        for sent in deliver(&app, &order_id, last.clone(), true).await {
            answers.push(json!({ "answer_status": sent.answer_status, "error": sent.error }));
        }
    }
    Json(json!({ "order_id": order_id, "sent": answers.len(), "answers": answers })).into_response()
}

pub async fn notifications(State(app): State<Arc<AppState>>, Path(order_id): Path<String>) -> Response {
    match app.store.get(&order_id) {
        Some(o) => Json(json!({ "order_id": order_id, "notifications": o.notifications })).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": "no such order" }))).into_response(),
    }
}

pub async fn order(State(app): State<Arc<AppState>>, Path(order_id): Path<String>) -> Response {
    match app.store.get(&order_id) {
        Some(o) => Json(o).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": "no such order" }))).into_response(),
    }
}

pub async fn reset(State(app): State<Arc<AppState>>) -> Response {
    app.store.reset();
    StatusCode::NO_CONTENT.into_response()
}
