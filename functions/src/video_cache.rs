//! The answer most requests get: a playlist, segment or thumbnail this colo's cache already holds. It is looked up
//! first, on the request as the runtime hands it over, before the request becomes a `worker::Request` or meets the
//! `App` (configuration, D1 session), and a hit goes back with two headers added and nothing else done. `scripts/bench
//! cpu` measured this path at most of our CPU over the floor Worker (which only asks the cache): the workers-rs
//! conversions (a `worker::Request` made and, for the cache, cloned; the cached answer rebuilt as a `worker::Response`
//! and again as a runtime `Response`) and the route table's bookkeeping for an answer that needs none of it.
//!
//! A hit carries what `routes::handle` gives every video answer: `x-cache: HIT`, `x-request-id`, and its
//! `Cache-Tag`s; video answers keep their own `Cache-Control` (`CacheClass::Video`) and a hit is never logged
//! (`request_log::worth_logging`). Anything but a GET of a video route, and any failure here, goes the usual way.

use sunnylive_core::cache::CacheClass;
use sunnylive_core::request_log::path_of_url;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::ext::CacheStorageExt;
use worker::worker_sys::web_sys;

use crate::routes;

pub enum Lookup {
    /// The colo's copy, marked as a hit.
    Hit(web_sys::Response),
    /// A video route the cache has no copy of: its handler reads D1 or R2 without asking the cache again.
    Missed,
    /// Not a GET of a video route (or the cache could not be asked): the handler decides.
    NotVideo,
}

pub async fn lookup(req: &web_sys::Request) -> Lookup {
    if req.method() != "GET" {
        return Lookup::NotVideo;
    }
    let url = req.url();
    let path = path_of_url(&url);
    if !path.starts_with("/hls/") {
        return Lookup::NotVideo;
    }
    let Ok(Some((route, params))) = routes::find("GET", path) else {
        return Lookup::NotVideo;
    };
    if routes::cache_class(route) != CacheClass::Video {
        return Lookup::NotVideo;
    }
    match matching(req).await {
        None => Lookup::NotVideo,
        Some(None) => Lookup::Missed,
        Some(Some(hit)) => {
            let tags = (hit.status() < 400).then(|| routes::video_tags(route, &params));
            match marked(&hit, "HIT", Some(&routes::request_id(&req.headers())), tags.as_deref()) {
                Some(response) => Lookup::Hit(response),
                None => Lookup::NotVideo,
            }
        }
    }
}

/// The colo's cached answer for this request (Some(None): none), asked with the request itself so that the cache
/// answers its Range and If-None-Match; None when the cache could not be asked.
pub async fn matching(req: &web_sys::Request) -> Option<Option<web_sys::Response>> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let cache = global.caches().ok()?.default();
    let found = JsFuture::from(cache.match_with_request(req)).await.ok()?;
    Some((!found.is_undefined()).then(|| found.unchecked_into()))
}

/// A copy of `response` (a cached answer's headers are immutable) with `x-cache: status`, and the request id and
/// cache tags when given. The headers are copied by the runtime in one call (`new Headers(init)`).
pub fn marked(
    response: &web_sys::Response,
    status: &str,
    request_id: Option<&str>,
    tags: Option<&str>,
) -> Option<web_sys::Response> {
    let headers = web_sys::Headers::new_with_headers(&response.headers()).ok()?;
    headers.set("x-cache", status).ok()?;
    if let Some(id) = request_id {
        headers.set("x-request-id", id).ok()?;
    }
    if let Some(tags) = tags {
        headers.set("cache-tag", tags).ok()?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(response.status());
    init.set_status_text(&response.status_text());
    init.set_headers(&headers);
    web_sys::Response::new_with_opt_readable_stream_and_init(response.body().as_ref(), &init).ok()
}
