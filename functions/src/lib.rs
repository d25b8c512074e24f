//! The Sunnylive Worker: entry points for HTTP (`fetch`) and the minute cron (`scheduled`). Requests are matched
//! against the one route table in `routes.rs`; each resource lives in its own module; every failure becomes a
//! contract-shaped error through `sunnylive_core::error::ApiError` in `http::respond`.

mod account;
mod app;
mod auth;
mod broadcasts;
mod chat;
mod clips;
mod cron;
mod crypto;
mod db;
mod donations;
mod hls;
mod http;
mod openapi;
mod outputs;
mod pages;
mod replay;
mod room_client;
mod routes;
mod rtmp;
mod stream_row;
mod streams;

use worker::{event, Context, Env, Request, Response, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    Ok(routes::handle(req, env, ctx).await)
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    cron::run(env).await;
}
