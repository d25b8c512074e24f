//! The one route table. Every API route is a row in `ROUTES` and an arm in `dispatch`; `openapi.json` is checked
//! against this table by a host test, so a route cannot exist without being documented (or the reverse).
//! Paths outside `/api/`, `/hls/` (video) and `/healthz` are the web client's pages and files.

use sunnylive_core::error::ApiError;
use sunnylive_core::request_log::{self, RouteName};
use worker::{Env, Request, Response};

use crate::app::App;
use crate::http::respond;
use crate::{auth, broadcasts, donations, hls, openapi, pages, rtmp, streams};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    OpenApi,
    Register,
    Login,
    Refresh,
    Logout,
    Me,
    MyStreams,
    ListStreams,
    CreateStream,
    GetStream,
    UpdateStream,
    DeleteStream,
    GetStreamKey,
    RotateStreamKey,
    ChatSocket,
    ChatMessages,
    OnPublish,
    OnUpdate,
    OnPublishDone,
    CreateDonation,
    GetDonation,
    ListDonations,
    Leaderboard,
    MidtransWebhook,
    ListBroadcasts,
    DeleteBroadcast,
    UploadHls,
    UploadRenditionHls,
    LiveMaster,
    LivePlaylist,
    LiveRenditionPlaylist,
    BroadcastMaster,
    BroadcastPlaylist,
    BroadcastRenditionPlaylist,
    HlsFile,
    HlsRenditionFile,
}

/// (method, path pattern, route). `{name}` matches one non-empty path segment.
pub const ROUTES: &[(&str, &str, Route)] = &[
    ("GET", "/healthz", Route::Health),
    ("GET", "/api/openapi.json", Route::OpenApi),
    ("POST", "/api/auth/register", Route::Register),
    ("POST", "/api/auth/login", Route::Login),
    ("POST", "/api/auth/refresh", Route::Refresh),
    ("POST", "/api/auth/logout", Route::Logout),
    ("GET", "/api/me", Route::Me),
    ("GET", "/api/me/streams", Route::MyStreams),
    ("GET", "/api/streams", Route::ListStreams),
    ("POST", "/api/streams", Route::CreateStream),
    ("GET", "/api/streams/{id}", Route::GetStream),
    ("PATCH", "/api/streams/{id}", Route::UpdateStream),
    ("DELETE", "/api/streams/{id}", Route::DeleteStream),
    ("GET", "/api/streams/{id}/key", Route::GetStreamKey),
    ("POST", "/api/streams/{id}/key", Route::RotateStreamKey),
    ("GET", "/api/streams/{id}/chat", Route::ChatSocket),
    ("GET", "/api/streams/{id}/messages", Route::ChatMessages),
    ("POST", "/api/rtmp/on-publish", Route::OnPublish),
    ("POST", "/api/rtmp/on-update", Route::OnUpdate),
    ("POST", "/api/rtmp/on-publish-done", Route::OnPublishDone),
    ("POST", "/api/streams/{id}/donations", Route::CreateDonation),
    ("GET", "/api/streams/{id}/donations", Route::ListDonations),
    ("GET", "/api/streams/{id}/leaderboard", Route::Leaderboard),
    ("GET", "/api/donations/{order_id}", Route::GetDonation),
    ("POST", "/api/webhooks/midtrans", Route::MidtransWebhook),
    ("GET", "/api/streams/{id}/broadcasts", Route::ListBroadcasts),
    (
        "DELETE",
        "/api/streams/{id}/broadcasts/{broadcast_id}",
        Route::DeleteBroadcast,
    ),
    ("PUT", "/api/origin/hls/{broadcast_id}/{file}", Route::UploadHls),
    (
        "PUT",
        "/api/origin/hls/{broadcast_id}/{rendition}/{file}",
        Route::UploadRenditionHls,
    ),
    // Video, on the site's own origin. Each pattern ending in a fixed name is matched before the `{file}` pattern it
    // would also fit. Rendition names (`source`, `480p`) never look like broadcast ids (16 characters).
    ("GET", "/hls/{id}/master.m3u8", Route::LiveMaster),
    ("GET", "/hls/{id}/live.m3u8", Route::LivePlaylist),
    ("GET", "/hls/{id}/{rendition}/live.m3u8", Route::LiveRenditionPlaylist),
    ("GET", "/hls/{id}/{broadcast_id}/master.m3u8", Route::BroadcastMaster),
    ("GET", "/hls/{id}/{broadcast_id}/index.m3u8", Route::BroadcastPlaylist),
    (
        "GET",
        "/hls/{id}/{broadcast_id}/{rendition}/index.m3u8",
        Route::BroadcastRenditionPlaylist,
    ),
    ("GET", "/hls/{id}/{broadcast_id}/{file}", Route::HlsFile),
    (
        "GET",
        "/hls/{id}/{broadcast_id}/{rendition}/{file}",
        Route::HlsRenditionFile,
    ),
];

/// Path parameters of a matched route, in pattern order.
pub struct Params(Vec<String>);

impl Params {
    /// The first (and usually only) parameter.
    pub fn first(&self) -> &str {
        self.get(0)
    }

    /// The `i`-th parameter ("" when the pattern has fewer).
    pub fn get(&self, i: usize) -> &str {
        self.0.get(i).map(String::as_str).unwrap_or_default()
    }
}

fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(params),
            (Some(pp), Some(ss)) if pp.starts_with('{') && !ss.is_empty() => params.push(ss.to_string()),
            (Some(pp), Some(ss)) if pp == ss => {}
            _ => return None,
        }
    }
}

/// Finds the route for `method` and `path`. `Err(MethodNotAllowed)` when the path exists with other methods,
/// `Ok(None)` when no API route has this path.
pub fn find(method: &str, path: &str) -> Result<Option<(Route, Params)>, ApiError> {
    let path = without_trailing_slash(path);
    let mut path_known = false;
    for (m, pattern, route) in ROUTES {
        if let Some(params) = matches(pattern, path) {
            if *m == method || (method == "HEAD" && *m == "GET") {
                return Ok(Some((*route, Params(params))));
            }
            path_known = true;
        }
    }
    if path_known {
        Err(ApiError::MethodNotAllowed)
    } else {
        Ok(None)
    }
}

fn without_trailing_slash(path: &str) -> &str {
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

/// The `Allow` header of a 405 (RFC 9110 requires one): the methods the route table has for `path`, plus HEAD
/// wherever GET is (`find` answers HEAD with the GET handler); pages and files answer GET and HEAD only.
pub fn allowed_methods(path: &str) -> String {
    if !is_api(path) {
        return "GET, HEAD".into();
    }
    let path = without_trailing_slash(path);
    let mut methods: Vec<&str> = Vec::new();
    for (m, pattern, _) in ROUTES {
        if matches(pattern, path).is_some() && !methods.contains(m) {
            methods.push(m);
        }
    }
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.join(", ")
}

fn is_api(path: &str) -> bool {
    path == "/healthz" || path == "/api" || path.starts_with("/api/") || path.starts_with("/hls/")
}

/// The pattern of a route's row (the first, when several methods share it).
fn pattern(route: Route) -> &'static str {
    ROUTES
        .iter()
        .find(|(_, _, r)| *r == route)
        .map(|(_, p, _)| *p)
        .expect("BUG: every Route has a row in ROUTES")
}

/// What a request is, for its log line: the API route's pattern or the kind of web path. Never the path itself.
fn route_name(method: &str, path: &str) -> RouteName {
    if !is_api(path) {
        return match pages::target(path) {
            pages::Target::Page { .. } => RouteName::Page,
            pages::Target::Asset => RouteName::Asset,
            pages::Target::NotFound => RouteName::NotFound,
        };
    }
    match find(method, path) {
        Ok(Some((route, _))) => RouteName::Api(pattern(route)),
        _ => RouteName::UnknownApi,
    }
}

/// Entry point for every HTTP request. Each one gets a request id (Cloudflare's `cf-ray` when there is one),
/// returned as `x-request-id` and written with the route, status and duration as one JSON line
/// (`sunnylive_core::request_log`), which `wrangler tail` and Workers Logs show.
pub async fn handle(req: Request, env: Env) -> Response {
    // The clock only moves across I/O inside a Worker: this is wall time spent waiting, which is what costs.
    let started = js_sys::Date::now();
    let request_id = request_log::id_from_ray(req.headers().get("cf-ray").ok().flatten().as_deref())
        .unwrap_or_else(|| request_log::id_from_random(crate::crypto::random()));
    // The method as sent: workers-rs's `Method` turns any method it does not know (QUERY, PROPFIND, ...) into GET,
    // which would serve them as reads instead of answering 405.
    let method = req.inner().method();
    let path = req.path();
    let name = route_name(&method, &path);
    let result = async {
        let app = App::new(env)?;
        if !is_api(&path) {
            if !matches!(method.as_str(), "GET" | "HEAD") {
                return Err(ApiError::MethodNotAllowed);
            }
            return pages::serve(&app, req).await;
        }
        match find(&method, &path)? {
            Some((route, params)) => dispatch(route, &app, req, params).await,
            None => Err(ApiError::NotFound {
                code: "route_not_found",
                message: "No such API route.".into(),
            }),
        }
    }
    .await;
    let error = result.as_ref().err().map(ApiError::code);
    let mut response = respond(result, &method, &request_id);
    if response.status_code() == 405 {
        let _ = response.headers_mut().set("allow", &allowed_methods(&path));
    }
    // A WebSocket upgrade answered by the chat room's Durable Object has immutable headers; its line still has the id.
    let _ = response.headers_mut().set("x-request-id", &request_id);
    let duration_ms = (js_sys::Date::now() - started).max(0.0) as u64;
    let cache_hit = response.headers().get("x-cache").ok().flatten().as_deref() == Some("HIT");
    if request_log::worth_logging(name, response.status_code(), cache_hit) {
        worker::console_log!(
            "{}",
            request_log::line(&request_id, &method, name, response.status_code(), duration_ms, error)
        );
    }
    response
}

async fn dispatch(route: Route, app: &App, req: Request, params: Params) -> Result<Response, ApiError> {
    match route {
        Route::Health => openapi::health(),
        Route::OpenApi => openapi::document(app, req).await,
        Route::Register => auth::register(app, req).await,
        Route::Login => auth::login(app, req).await,
        Route::Refresh => auth::refresh(app, req).await,
        Route::Logout => auth::logout(app, req).await,
        Route::Me => auth::me(app, req).await,
        Route::MyStreams => streams::list_mine(app, req).await,
        Route::ListStreams => streams::list(app, req).await,
        Route::CreateStream => streams::create(app, req).await,
        Route::GetStream => streams::get(app, params.first()).await,
        Route::UpdateStream => streams::update(app, req, params.first()).await,
        Route::DeleteStream => streams::delete(app, req, params.first()).await,
        Route::GetStreamKey => streams::get_key(app, req, params.first()).await,
        Route::RotateStreamKey => streams::rotate_key(app, req, params.first()).await,
        Route::ChatSocket => crate::chat::connect(app, req, params.first()).await,
        Route::ChatMessages => crate::chat::messages(app, req, params.first()).await,
        Route::OnPublish => rtmp::on_publish(app, req).await,
        Route::OnUpdate => rtmp::on_update(app, req).await,
        Route::OnPublishDone => rtmp::on_publish_done(app, req).await,
        Route::CreateDonation => donations::create(app, req, params.first()).await,
        Route::ListDonations => donations::list_for_owner(app, req, params.first()).await,
        Route::Leaderboard => donations::leaderboard(app, params.first()).await,
        Route::GetDonation => donations::get(app, params.first()).await,
        Route::MidtransWebhook => donations::webhook(app, req).await,
        Route::ListBroadcasts => broadcasts::list(app, req, params.first()).await,
        Route::DeleteBroadcast => broadcasts::delete(app, req, params.first(), params.get(1)).await,
        Route::UploadHls => hls::upload(app, req, params.first(), None, params.get(1)).await,
        Route::UploadRenditionHls => hls::upload(app, req, params.first(), Some(params.get(1)), params.get(2)).await,
        Route::LiveMaster => hls::live_master(app, req, params.first()).await,
        Route::LivePlaylist => hls::live_playlist(app, req, params.first(), None).await,
        Route::LiveRenditionPlaylist => hls::live_playlist(app, req, params.first(), Some(params.get(1))).await,
        Route::BroadcastMaster => hls::broadcast_master(app, req, params.first(), params.get(1)).await,
        Route::BroadcastPlaylist => hls::broadcast_playlist(app, req, params.first(), params.get(1), None).await,
        Route::BroadcastRenditionPlaylist => {
            hls::broadcast_playlist(app, req, params.first(), params.get(1), Some(params.get(2))).await
        }
        Route::HlsFile => hls::file(app, req, params.first(), params.get(1), None, params.get(2)).await,
        Route::HlsRenditionFile => {
            hls::file(
                app,
                req,
                params.first(),
                params.get(1),
                Some(params.get(2)),
                params.get(3),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_its_parameters() {
        let (route, params) = find("GET", "/api/streams/abc/key").unwrap().unwrap();
        assert_eq!(route, Route::GetStreamKey);
        assert_eq!(params.first(), "abc");
    }

    #[test]
    fn a_known_path_with_another_method_is_405_and_an_unknown_path_is_none() {
        assert_eq!(find("PUT", "/api/streams").err(), Some(ApiError::MethodNotAllowed));
        assert!(find("GET", "/api/nope").unwrap().is_none());
        assert!(find("GET", "/api/streams//key").unwrap().is_none());
    }

    #[test]
    fn master_and_rendition_playlists_are_not_taken_for_files() {
        assert_eq!(find("GET", "/hls/s/master.m3u8").unwrap().unwrap().0, Route::LiveMaster);
        let (route, params) = find("GET", "/hls/s/480p/live.m3u8").unwrap().unwrap();
        assert_eq!((route, params.get(1)), (Route::LiveRenditionPlaylist, "480p"));
        assert_eq!(
            find("GET", "/hls/s/b/master.m3u8").unwrap().unwrap().0,
            Route::BroadcastMaster
        );
        let (route, params) = find("GET", "/hls/s/b/480p/index.m3u8").unwrap().unwrap();
        assert_eq!((route, params.get(2)), (Route::BroadcastRenditionPlaylist, "480p"));
        let (route, params) = find("GET", "/hls/s/b/480p/7.ts").unwrap().unwrap();
        assert_eq!((route, params.get(3)), (Route::HlsRenditionFile, "7.ts"));
        let (route, params) = find("PUT", "/api/origin/hls/b/360p/7.ts").unwrap().unwrap();
        assert_eq!((route, params.get(1)), (Route::UploadRenditionHls, "360p"));
    }

    #[test]
    fn a_broadcast_playlist_is_not_taken_for_a_file_and_files_keep_their_names() {
        let (route, params) = find("GET", "/hls/s/b/index.m3u8").unwrap().unwrap();
        assert_eq!((route, params.get(1)), (Route::BroadcastPlaylist, "b"));
        let (route, params) = find("GET", "/hls/s/b/12.ts").unwrap().unwrap();
        assert_eq!((route, params.get(2)), (Route::HlsFile, "12.ts"));
        assert_eq!(find("GET", "/hls/s/live.m3u8").unwrap().unwrap().0, Route::LivePlaylist);
    }

    #[test]
    fn a_log_names_the_route_pattern_and_never_the_path() {
        assert_eq!(
            route_name("GET", "/api/streams/abc123/key"),
            RouteName::Api("/api/streams/{id}/key")
        );
        assert_eq!(
            route_name("POST", "/api/rtmp/on-publish"),
            RouteName::Api("/api/rtmp/on-publish")
        );
        assert_eq!(route_name("GET", "/api/sk_abc_def"), RouteName::UnknownApi);
        assert_eq!(route_name("GET", "/s/abc123"), RouteName::Page);
        assert_eq!(route_name("GET", "/css/sunnylive.css"), RouteName::Asset);
        assert_eq!(route_name("GET", "/watch.html"), RouteName::NotFound);
    }

    #[test]
    fn a_405_names_every_method_the_path_answers() {
        assert_eq!(allowed_methods("/api/streams/abc"), "GET, PATCH, DELETE, HEAD");
        assert_eq!(allowed_methods("/api/auth/login/"), "POST");
        assert_eq!(allowed_methods("/watch/abc"), "GET, HEAD");
    }

    #[test]
    fn a_trailing_slash_is_forgiven() {
        assert_eq!(find("GET", "/api/me/").unwrap().unwrap().0, Route::Me);
    }

    #[test]
    fn every_route_is_in_the_openapi_document_and_every_documented_operation_is_routed() {
        let doc: serde_json::Value = serde_json::from_str(openapi::OPENAPI_JSON).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (method, pattern, route) in ROUTES {
            let op = &paths
                .get(*pattern)
                .unwrap_or_else(|| panic!("{pattern} missing from openapi.json"))[method.to_lowercase()];
            assert!(op.is_object(), "{method} {pattern} missing from openapi.json");
            // Generated clients name their methods after operationId: the route's own name, in lowerCamelCase.
            let name = format!("{route:?}");
            let expected = format!("{}{}", name[..1].to_lowercase(), &name[1..]);
            assert_eq!(
                op["operationId"],
                expected.as_str(),
                "operationId of {method} {pattern}"
            );
        }
        for (pattern, ops) in paths {
            for method in ops.as_object().unwrap().keys().filter(|k| *k != "parameters") {
                let m = method.to_uppercase();
                assert!(
                    ROUTES.iter().any(|(rm, rp, _)| *rm == m && rp == pattern),
                    "openapi.json documents {m} {pattern}, which is not routed"
                );
            }
        }
    }
}
