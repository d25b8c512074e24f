//! The Sunnylive Worker: entry points for HTTP (`fetch`) and the minute cron (`scheduled`). Requests are matched
//! against the one route table in `routes.rs`; each resource lives in its own module; every failure becomes a
//! contract-shaped error through `sunnylive_core::error::ApiError` in `http::respond`.

mod account;
mod admin;
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
mod video_cache;

use worker::worker_sys::web_sys;
use worker::{event, Context, Env, Request, ScheduleContext, ScheduledEvent};

/// Takes the request as the runtime gives it: a video answer the colo's cache holds (most of what viewers ask) is
/// served from it before anything else is built (`video_cache`); everything else goes through the route table.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    let missed = match video_cache::lookup(&req).await {
        video_cache::Lookup::Hit(response) => return Ok(response),
        video_cache::Lookup::Missed => true,
        video_cache::Lookup::NotVideo => false,
    };
    Ok(routes::handle(Request::from(req), env, ctx, missed).await.into())
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    cron::run(env).await;
}
