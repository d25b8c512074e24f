//! The one route table. Every API route is a row in `ROUTES` and an arm in `dispatch`; `openapi.json` is checked
//! against this table by a host test, so a route cannot exist without being documented (or the reverse).
//! Paths outside `/api/`, `/hls/` (video) and `/healthz` are the web client's pages and files.

use sunnylive_core::cache::{self, Asker, CacheClass};
use sunnylive_core::error::ApiError;
use sunnylive_core::replica;
use sunnylive_core::request_log::{self, RouteName};
use worker::{Context, Env, Request, Response};

use crate::app::App;
use crate::http::respond;
use crate::{account, admin, auth, broadcasts, clips, donations, hls, openapi, outputs, pages, rtmp, streams};

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
    ChangePassword,
    ListLogins,
    EndLogin,
    EndOtherLogins,
    CreateRecoveryCodes,
    Recover,
    ExportMe,
    DeleteMe,
    CreateReport,
    AdminListReports,
    AdminCloseReport,
    AdminEndStream,
    AdminSuspendUser,
    AdminUnsuspendUser,
    AdminDeleteBroadcast,
    AdminDeleteChatMessage,
    AdminDeleteClip,
    AdminAudit,
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
    ListOutputs,
    CreateOutput,
    UpdateOutput,
    DeleteOutput,
    OriginOutputs,
    ReportOutputStatus,
    UploadRenditionHls,
    LiveMaster,
    LivePlaylist,
    LiveRenditionPlaylist,
    BroadcastMaster,
    BroadcastPlaylist,
    BroadcastRenditionPlaylist,
    HlsFile,
    HlsRenditionFile,
    CreateClip,
    ListClips,
    GetClip,
    DeleteClip,
    ClipMaster,
    ClipPlaylist,
    ClipThumbnail,
    BroadcastChat,
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
    ("POST", "/api/me/password", Route::ChangePassword),
    ("GET", "/api/me/logins", Route::ListLogins),
    ("DELETE", "/api/me/logins/{login_id}", Route::EndLogin),
    ("POST", "/api/me/logins/end-others", Route::EndOtherLogins),
    ("POST", "/api/me/recovery-codes", Route::CreateRecoveryCodes),
    ("POST", "/api/auth/recover", Route::Recover),
    ("GET", "/api/me/export", Route::ExportMe),
    ("DELETE", "/api/me", Route::DeleteMe),
    ("POST", "/api/reports", Route::CreateReport),
    ("GET", "/api/admin/reports", Route::AdminListReports),
    ("POST", "/api/admin/reports/{report_id}/close", Route::AdminCloseReport),
    ("POST", "/api/admin/streams/{id}/end", Route::AdminEndStream),
    ("POST", "/api/admin/users/{user_id}/suspend", Route::AdminSuspendUser),
    (
        "POST",
        "/api/admin/users/{user_id}/unsuspend",
        Route::AdminUnsuspendUser,
    ),
    (
        "DELETE",
        "/api/admin/broadcasts/{broadcast_id}",
        Route::AdminDeleteBroadcast,
    ),
    (
        "DELETE",
        "/api/admin/streams/{id}/messages/{message_id}",
        Route::AdminDeleteChatMessage,
    ),
    ("DELETE", "/api/admin/clips/{clip_id}", Route::AdminDeleteClip),
    ("GET", "/api/admin/audit", Route::AdminAudit),
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
    ("GET", "/api/streams/{id}/outputs", Route::ListOutputs),
    ("POST", "/api/streams/{id}/outputs", Route::CreateOutput),
    ("PATCH", "/api/streams/{id}/outputs/{output_id}", Route::UpdateOutput),
    ("DELETE", "/api/streams/{id}/outputs/{output_id}", Route::DeleteOutput),
    (
        "GET",
        "/api/origin/broadcasts/{broadcast_id}/outputs",
        Route::OriginOutputs,
    ),
    (
        "PUT",
        "/api/origin/broadcasts/{broadcast_id}/outputs/{output_id}/status",
        Route::ReportOutputStatus,
    ),
    (
        "PUT",
        "/api/origin/hls/{broadcast_id}/{rendition}/{file}",
        Route::UploadRenditionHls,
    ),
    ("POST", "/api/streams/{id}/clips", Route::CreateClip),
    ("GET", "/api/streams/{id}/clips", Route::ListClips),
    ("GET", "/api/clips/{clip_id}", Route::GetClip),
    (
        "GET",
        "/api/streams/{id}/broadcasts/{broadcast_id}/chat",
        Route::BroadcastChat,
    ),
    ("DELETE", "/api/clips/{clip_id}", Route::DeleteClip),
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
    // A clip's playlists and thumbnail: `clips` is never a broadcast id (16 characters).
    ("GET", "/hls/{id}/clips/{clip_id}/master.m3u8", Route::ClipMaster),
    (
        "GET",
        "/hls/{id}/clips/{clip_id}/{rendition}/index.m3u8",
        Route::ClipPlaylist,
    ),
    ("GET", "/hls/{id}/clips/{clip_id}/thumb.jpg", Route::ClipThumbnail),
];

/// Path parameters of a matched route, in pattern order.
#[derive(Clone)]
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

/// The rows whose pattern matches `path`, with their parameters. Only the most specific patterns count (those with
/// the fewest parameters): `/api/me/logins/end-others` is that route's path alone, not also a `{login_id}`, and
/// `/hls/{id}/{broadcast_id}/index.m3u8` is the playlist, not a `{file}`.
fn matching(path: &str) -> Vec<(&'static str, Route, Vec<String>)> {
    let all: Vec<_> = ROUTES
        .iter()
        .filter_map(|(m, pattern, route)| matches(pattern, path).map(|params| (*m, *route, params)))
        .collect();
    let fewest = all.iter().map(|(_, _, params)| params.len()).min().unwrap_or(0);
    all.into_iter()
        .filter(|(_, _, params)| params.len() == fewest)
        .collect()
}

/// Finds the route for `method` and `path`. `Err(MethodNotAllowed)` when the path exists with other methods,
/// `Ok(None)` when no API route has this path.
pub fn find(method: &str, path: &str) -> Result<Option<(Route, Params)>, ApiError> {
    let rows = matching(without_trailing_slash(path));
    if rows.is_empty() {
        return Ok(None);
    }
    rows.into_iter()
        .find(|(m, _, _)| *m == method || (method == "HEAD" && *m == "GET"))
        .map(|(_, route, params)| Some((route, Params(params))))
        .ok_or(ApiError::MethodNotAllowed)
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
    let mut methods: Vec<&str> = Vec::new();
    for (m, _, _) in matching(without_trailing_slash(path)) {
        if !methods.contains(&m) {
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
#[cfg(test)]
fn route_name(method: &str, path: &str) -> RouteName {
    name_of(path, find(method, path).ok().flatten().map(|(route, _)| route))
}

/// The log line's name for a request to `path`, given the API route it matched.
fn name_of(path: &str, route: Option<Route>) -> RouteName {
    if !is_api(path) {
        return match pages::target(path) {
            pages::Target::Page { .. } => RouteName::Page,
            pages::Target::Asset => RouteName::Asset,
            pages::Target::NotFound => RouteName::NotFound,
        };
    }
    match route {
        Some(route) => RouteName::Api(pattern(route)),
        None => RouteName::UnknownApi,
    }
}

/// How the cache in front of the Worker may keep this route's answers (`sunnylive_core::cache` says why).
pub fn cache_class(route: Route) -> CacheClass {
    match route {
        Route::LiveMaster
        | Route::LivePlaylist
        | Route::LiveRenditionPlaylist
        | Route::BroadcastMaster
        | Route::BroadcastPlaylist
        | Route::BroadcastRenditionPlaylist
        | Route::HlsFile
        | Route::HlsRenditionFile
        | Route::ClipMaster
        | Route::ClipPlaylist
        | Route::ClipThumbnail => CacheClass::Video,
        // The same for whoever asks; a few seconds old is fine. (Chat history is not: a moderator's delete must
        // take at once; a donation list is the owner's.)
        Route::OpenApi
        | Route::ListStreams
        | Route::GetStream
        | Route::ListBroadcasts
        | Route::Leaderboard
        | Route::GetClip
        | Route::ListClips => CacheClass::PublicRead,
        _ => CacheClass::Private,
    }
}

/// Routes that decide on current state whoever asks: the origin's callbacks, uploads and simulcast polls (an output
/// switched off must stop), and Midtrans's notifications. They read D1's primary, never a replica.
fn must_be_current(route: Route) -> bool {
    matches!(
        route,
        Route::OnPublish
            | Route::OnUpdate
            | Route::OnPublishDone
            | Route::UploadHls
            | Route::UploadRenditionHls
            | Route::OriginOutputs
            | Route::ReportOutputStatus
            | Route::MidtransWebhook
    )
}

/// Entry point for every HTTP request. Each one gets a request id (Cloudflare's `cf-ray` when there is one),
/// returned as `x-request-id` and written with the route, status and duration as one JSON line
/// (`sunnylive_core::request_log`), which `wrangler tail` and Workers Logs show. Every answer leaves with a
/// `Cache-Control` from `sunnylive_core::cache` and, when it read or wrote D1, the session's newest bookmark.
/// This request's id (`x-request-id`, and in its log line): Cloudflare's ray id when it has a usable one, else 16
/// random hex digits.
pub fn request_id(headers: &web_sys::Headers) -> String {
    request_log::id_from_ray(headers.get("cf-ray").ok().flatten().as_deref())
        .unwrap_or_else(|| request_log::id_from_random(crate::crypto::random()))
}

/// The `Cache-Tag` of a video route's answer: its stream, and its broadcast when it has one.
pub fn video_tags(route: Route, params: &Params) -> String {
    // A broadcast's routes name it second (`/hls/{id}/{broadcast_id}/...`); the live ones name none, and a clip's
    // second parameter is the clip (its playlists stay while the broadcast's other answers are purged).
    let of_no_broadcast = matches!(
        route,
        Route::LiveMaster
            | Route::LivePlaylist
            | Route::LiveRenditionPlaylist
            | Route::ClipMaster
            | Route::ClipPlaylist
            | Route::ClipThumbnail
    );
    cache::video_tags(params.first(), (!of_no_broadcast).then(|| params.get(1)))
}

/// Answers one request. `video_cache_missed`: the edge cache was already asked for this request and had nothing
/// (`video_cache::lookup`), so the video handlers go straight to D1 and R2.
pub async fn handle(req: Request, env: Env, ctx: Context, video_cache_missed: bool) -> Response {
    // The clock only moves across I/O inside a Worker: this is wall time spent waiting, which is what costs.
    let started = js_sys::Date::now();
    let headers = req.headers();
    let request_id = request_id(&headers.0);
    let bookmark = headers.get(replica::BOOKMARK_HEADER).ok().flatten();
    let asker = Asker {
        cookie: headers.has("cookie").unwrap_or(false),
        authorization: headers.has("authorization").unwrap_or(false),
        bookmark: bookmark.is_some(),
    };
    // The method as sent: workers-rs's `Method` turns any method it does not know (QUERY, PROPFIND, ...) into GET,
    // which would serve them as reads instead of answering 405.
    let method = req.inner().method();
    let path = req.path();
    // The route table is consulted once: the log line's name, the cache class and the dispatch all use this.
    let lookup = if is_api(&path) { find(&method, &path) } else { Ok(None) };
    let route = lookup.as_ref().ok().and_then(|found| found.as_ref().map(|(r, _)| *r));
    let name = name_of(&path, route);
    let start = replica::session_start(
        &method,
        route.is_some_and(must_be_current),
        asker.cookie || asker.authorization,
        bookmark.as_deref(),
    );
    let app = App::new(env, &start, Some(ctx)).map(|mut app| {
        app.video_cache_missed = video_cache_missed;
        app
    });
    let result = match &app {
        Err(e) => Err(e.clone()),
        Ok(app) => serve(app, req, &method, &path, &lookup).await,
    };
    let error = result.as_ref().err().map(ApiError::code);
    let mut response = respond(result, &method, &request_id);
    let status = response.status_code();
    let out = response.headers_mut();
    if status == 405 {
        let _ = out.set("allow", &allowed_methods(&path));
    }
    // A WebSocket upgrade answered by the chat room's Durable Object has immutable headers: these sets fail
    // harmlessly there (a 101 is never cached), and its log line still has the id.
    let _ = out.set("x-request-id", &request_id);
    let class = match route {
        Some(route) => cache_class(route),
        None if !is_api(&path) => CacheClass::Web,
        None => CacheClass::Private,
    };
    let sets_cookie = out.has("set-cookie").unwrap_or(false);
    let control = cache::cache_control(class, asker, status, sets_cookie);
    if let Some(value) = control {
        let _ = out.set("cache-control", value);
    }
    // Video is tagged by stream and broadcast, so deleting either purges its copies (`App::purge_cache`).
    if let (CacheClass::Video, Ok(Some((route, params))), true) = (class, &lookup, status < 400) {
        let _ = out.set("cache-tag", &video_tags(*route, params));
    }
    let public = control == Some(cache::PUBLIC_READ);
    if public {
        let _ = out.set("vary", cache::PUBLIC_READ_VARY);
    }
    // The bookmark lets this client read its own writes next time; a shared answer carries none.
    if matches!(class, CacheClass::Private | CacheClass::PublicRead) && !public {
        if let Some(b) = app.as_ref().ok().and_then(|app| app.db.bookmark()) {
            let _ = out.set(replica::BOOKMARK_HEADER, &b);
        }
    }
    let served_by_region = app.as_ref().ok().and_then(|app| app.db.served_by_region());
    let duration_ms = (js_sys::Date::now() - started).max(0.0) as u64;
    let cache_hit = response.headers().get("x-cache").ok().flatten().as_deref() == Some("HIT");
    if request_log::worth_logging(name, status, cache_hit) {
        worker::console_log!(
            "{}",
            request_log::line(
                &request_id,
                &method,
                name,
                status,
                duration_ms,
                error,
                served_by_region.as_deref()
            )
        );
    }
    response
}

/// A page or file of the web client, or an API route.
/// `lookup`: what the route table said of this API request (`find`); the parameters are taken from it.
async fn serve(
    app: &App,
    req: Request,
    method: &str,
    path: &str,
    lookup: &Result<Option<(Route, Params)>, ApiError>,
) -> Result<Response, ApiError> {
    if !is_api(path) {
        if !matches!(method, "GET" | "HEAD") {
            return Err(ApiError::MethodNotAllowed);
        }
        return pages::serve(app, req).await;
    }
    match lookup.as_ref().map_err(Clone::clone)? {
        Some((route, params)) => dispatch(*route, app, req, params.clone()).await,
        None => Err(ApiError::NotFound {
            code: "route_not_found",
            message: "No such API route.".into(),
        }),
    }
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
        Route::ChangePassword => account::change_password(app, req).await,
        Route::ListLogins => account::list_logins(app, req).await,
        Route::EndLogin => account::end_login(app, req, params.first()).await,
        Route::EndOtherLogins => account::end_other_logins(app, req).await,
        Route::CreateRecoveryCodes => account::create_recovery_codes(app, req).await,
        Route::Recover => account::recover(app, req).await,
        Route::ExportMe => account::export(app, req).await,
        Route::DeleteMe => account::delete_account(app, req).await,
        Route::CreateReport => admin::create_report(app, req).await,
        Route::AdminListReports => admin::operator(app, req, admin::Act::ListReports, "", "").await,
        Route::AdminCloseReport => admin::operator(app, req, admin::Act::CloseReport, params.first(), "").await,
        Route::AdminEndStream => admin::operator(app, req, admin::Act::EndStream, params.first(), "").await,
        Route::AdminSuspendUser => admin::operator(app, req, admin::Act::Suspend, params.first(), "").await,
        Route::AdminUnsuspendUser => admin::operator(app, req, admin::Act::Unsuspend, params.first(), "").await,
        Route::AdminDeleteBroadcast => admin::operator(app, req, admin::Act::DeleteBroadcast, params.first(), "").await,
        Route::AdminDeleteChatMessage => {
            admin::operator(app, req, admin::Act::DeleteMessage, params.first(), params.get(1)).await
        }
        Route::AdminDeleteClip => admin::operator(app, req, admin::Act::DeleteClip, params.first(), "").await,
        Route::AdminAudit => admin::operator(app, req, admin::Act::Audit, "", "").await,
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
        Route::ListOutputs => outputs::list(app, req, params.first()).await,
        Route::CreateOutput => outputs::create(app, req, params.first()).await,
        Route::UpdateOutput => outputs::update(app, req, params.first(), params.get(1)).await,
        Route::DeleteOutput => outputs::delete(app, req, params.first(), params.get(1)).await,
        Route::OriginOutputs => outputs::for_origin(app, req, params.first()).await,
        Route::ReportOutputStatus => outputs::report_status(app, req, params.first(), params.get(1)).await,
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
        Route::CreateClip => clips::create(app, req, params.first()).await,
        Route::ListClips => clips::list(app, req, params.first()).await,
        Route::GetClip => clips::get(app, params.first()).await,
        Route::DeleteClip => clips::delete(app, req, params.first()).await,
        Route::ClipMaster => clips::playlist(app, req, params.first(), params.get(1), None).await,
        Route::ClipPlaylist => clips::playlist(app, req, params.first(), params.get(1), Some(params.get(2))).await,
        Route::ClipThumbnail => clips::thumbnail(app, req, params.first(), params.get(1)).await,
        Route::BroadcastChat => crate::replay::chat(app, req, params.first(), params.get(1)).await,
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
    fn a_clips_playlists_and_thumbnail_are_not_taken_for_a_broadcasts_files() {
        let (route, params) = find("GET", "/hls/s/clips/c/master.m3u8").unwrap().unwrap();
        assert_eq!((route, params.get(1)), (Route::ClipMaster, "c"));
        let (route, params) = find("GET", "/hls/s/clips/c/480p/index.m3u8").unwrap().unwrap();
        assert_eq!((route, params.get(2)), (Route::ClipPlaylist, "480p"));
        assert_eq!(
            find("GET", "/hls/s/clips/c/thumb.jpg").unwrap().unwrap().0,
            Route::ClipThumbnail
        );
        assert_eq!(
            find("GET", "/hls/s/b/480p/7.ts").unwrap().unwrap().0,
            Route::HlsRenditionFile
        );
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
    fn ending_the_other_logins_is_not_taken_for_ending_one_named_end_others() {
        assert_eq!(
            find("POST", "/api/me/logins/end-others").unwrap().unwrap().0,
            Route::EndOtherLogins
        );
        let (route, params) = find("DELETE", "/api/me/logins/abc").unwrap().unwrap();
        assert_eq!((route, params.first()), (Route::EndLogin, "abc"));
        assert_eq!(
            find("DELETE", "/api/me/logins/end-others").err(),
            Some(ApiError::MethodNotAllowed)
        );
        assert_eq!(allowed_methods("/api/me/logins/end-others"), "POST");
        assert_eq!(allowed_methods("/api/me/logins/abc"), "DELETE");
    }

    #[test]
    fn a_trailing_slash_is_forgiven() {
        assert_eq!(find("GET", "/api/me/").unwrap().unwrap().0, Route::Me);
    }

    #[test]
    fn every_api_operation_documents_the_read_bookmark() {
        let doc: serde_json::Value = serde_json::from_str(openapi::OPENAPI_JSON).unwrap();
        for (method, pattern, _) in ROUTES.iter().filter(|(_, p, _)| p.starts_with("/api/")) {
            let op = &doc["paths"][*pattern][method.to_lowercase()];
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            assert!(
                params.iter().any(|p| p["$ref"] == "#/components/parameters/Bookmark"),
                "{method} {pattern}: the Sunnylive-Bookmark request header is not documented"
            );
        }
    }

    #[test]
    fn only_video_and_the_listed_reads_may_be_cached_by_everybody() {
        for (method, pattern, route) in ROUTES {
            let class = cache_class(*route);
            if pattern.starts_with("/hls/") {
                assert_eq!(class, CacheClass::Video, "{method} {pattern}");
            } else if *method != "GET" {
                assert_eq!(
                    class,
                    CacheClass::Private,
                    "{method} {pattern}: a write is never cached"
                );
            }
        }
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
