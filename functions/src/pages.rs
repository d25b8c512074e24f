//! The web client's side of the worker: page routes (`/`, `/s/{id}`, `/studio`, ...) mapped to their HTML files,
//! every other non-API path to the static file itself, all fetched through the ASSETS binding, with the security
//! headers (Content-Security-Policy, nosniff, Referrer-Policy) added on the way out. The parts every page shares
//! (the head's links, the site header and footer) are written once, in web/partials/, and filled into each page here.
//!
//! wrangler.toml's `run_worker_first` sends the pages (and the page templates' own names, answered 404) here; every
//! other static file is served by Cloudflare without the Worker, with the headers of `web/_headers`. Unknown paths
//! fall through to this code too (the 404 page). The asset server keeps its default `html_handling`
//! ("auto-trailing-slash"): `watch.html` is fetched as `/watch`, and a request for `/watch.html` itself is answered
//! with a redirect to the clean path.

use sunnylive_core::error::ApiError;
use worker::{Headers, Method, Request, Response};

use crate::app::App;
use crate::http::OrInternal;

/// What a non-API path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A page: the asset path of its HTML file (as the asset server names it) and whether other sites may frame it.
    Page { asset: &'static str, frameable: bool },
    /// A static file under `web/`, fetched by its own path.
    Asset,
    /// Not ours to serve (a page template's own name, a malformed page path): the 404 page.
    NotFound,
}

/// Where a clip's page gets its link-preview tags (`sunnylive_core::clip::preview_tags`), filled in here: link
/// preview bots run no script.
const PREVIEW_MARKER: &str = "<!--#preview-->";

/// The 404 page's asset path.
const NOT_FOUND_PAGE: &str = "/404";

/// Page templates are only reachable through their routes: `/watch` without an id is not a page.
const TEMPLATES: [&str; 5] = ["/watch", "/donation", "/overlay", "/clip", "/404"];

/// The page parts every page shares, each written once under web/partials/ and compiled in: a page template names
/// one by its marker line, and `fill_partials` puts it there. The partials themselves are served to nobody.
const PARTIALS: [(&str, &str); 3] = [
    (
        "<!--#include page-head-->",
        include_str!("../../web/partials/page-head.html"),
    ),
    (
        "<!--#include site-header-->",
        include_str!("../../web/partials/site-header.html"),
    ),
    (
        "<!--#include site-footer-->",
        include_str!("../../web/partials/site-footer.html"),
    ),
];
const PARTIALS_DIR: &str = "/partials/";

/// A page template with every partial filled in.
pub fn fill_partials(template: &str) -> String {
    PARTIALS.iter().fold(template.to_string(), |page, (marker, part)| {
        page.replace(marker, part.trim_end_matches('\n'))
    })
}

/// FNV-1a over every partial: it changes whenever one does.
const fn partials_hash() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut p = 0;
    while p < PARTIALS.len() {
        let bytes = PARTIALS[p].1.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        p += 1;
    }
    hash
}

/// What a filled page's ETag adds to its template's, so a page whose partials changed is never answered 304.
fn partials_tag() -> String {
    format!("-p{:016x}", partials_hash())
}

/// A filled page's ETag: the template's (`"abc"` or `W/"abc"`) with `partials_tag` inside the quotes.
pub fn page_etag(template_etag: &str) -> Option<String> {
    let inner = template_etag.strip_suffix('"')?;
    Some(format!("{inner}{}\"", partials_tag()))
}

/// The template's ETag behind a client's `If-None-Match` for a filled page, or None when the client's copy was
/// filled with other partials (or it names no single ETag of ours): then the page is sent whole.
pub fn template_etag(if_none_match: &str) -> Option<String> {
    let inner = if_none_match.trim().strip_suffix('"')?;
    inner.strip_suffix(&partials_tag()).map(|t| format!("{t}\""))
}

/// Maps a request path to what serves it.
pub fn target(path: &str) -> Target {
    let page = |asset| Target::Page {
        asset,
        frameable: false,
    };
    match path {
        "/" => return page("/"),
        "/login" => return page("/login"),
        "/register" => return page("/register"),
        "/studio" => return page("/studio"),
        "/account" => return page("/account"),
        "/operator" => return page("/operator"),
        "/recover" => return page("/recover"),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/s/") {
        return if is_id(rest) { page("/watch") } else { Target::NotFound };
    }
    if let Some(rest) = path.strip_prefix("/clip/") {
        return if is_id(rest) { page("/clip") } else { Target::NotFound };
    }
    if let Some(rest) = path.strip_prefix("/donations/") {
        return if is_id(rest) {
            page("/donation")
        } else {
            Target::NotFound
        };
    }
    if let Some(rest) = path.strip_prefix("/overlay/") {
        // OBS shows the overlay as a browser source; streaming tools that embed it in a frame must be able to.
        return if is_id(rest) {
            Target::Page {
                asset: "/overlay",
                frameable: true,
            }
        } else {
            Target::NotFound
        };
    }
    if path.starts_with(PARTIALS_DIR) || path == PARTIALS_DIR.trim_end_matches('/') {
        return Target::NotFound;
    }
    let bare = path.strip_suffix(".html").unwrap_or(path);
    let bare = if bare.ends_with("/index") { "/" } else { bare };
    if TEMPLATES.contains(&bare) || path.ends_with(".html") || path.contains("..") {
        return Target::NotFound;
    }
    Target::Asset
}

/// Ids are opaque URL-safe strings (docs/API.md): one path segment of `[A-Za-z0-9_-]`, bounded.
fn is_id(segment: &str) -> bool {
    (1..=100).contains(&segment.len())
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `scheme://host[:port]` of an absolute http(s) URL, or None (a relative HLS base is same-origin already).
pub fn http_origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.origin().ascii_serialization())
}

/// The WebSocket origin matching an http(s) origin: the chat socket is `ws(s)://` to ourselves.
pub fn websocket_origin(http_origin: &str) -> Option<String> {
    if let Some(rest) = http_origin.strip_prefix("https://") {
        Some(format!("wss://{rest}"))
    } else {
        http_origin.strip_prefix("http://").map(|rest| format!("ws://{rest}"))
    }
}

/// The Content-Security-Policy for our pages. Scripts and styles only from our own origin (no inline code at
/// all, so an injected `<script>` or `onerror=` never runs); fetch/XHR to ourselves, our chat socket and the media
/// domain (when segments come from an R2 custom domain); media from there and the `blob:` URLs that Media Source
/// Extensions (hls.js) play from; images (thumbnails) from there too.
pub fn content_security_policy(own_origins: &[String], media_origin: Option<&str>, frameable: bool) -> String {
    let mut connect = vec!["'self'".to_string()];
    for origin in own_origins {
        if let Some(ws) = websocket_origin(origin) {
            if !connect.contains(&ws) {
                connect.push(ws);
            }
        }
    }
    let mut media = vec!["'self'".to_string(), "blob:".to_string()];
    let mut img = vec!["'self'".to_string(), "data:".to_string()];
    if let Some(origin) = media_origin {
        if !own_origins.iter().any(|o| o == origin) {
            connect.push(origin.to_string());
            media.push(origin.to_string());
            img.push(origin.to_string());
        }
    }
    let mut directives = vec![
        "default-src 'self'".to_string(),
        "script-src 'self'".to_string(),
        "style-src 'self'".to_string(),
        format!("img-src {}", img.join(" ")),
        "font-src 'self'".to_string(),
        format!("connect-src {}", connect.join(" ")),
        format!("media-src {}", media.join(" ")),
        // hls.js loads its Web Worker from our own /vendor/hls.worker.js (player.js `workerPath`), not from blob:.
        "worker-src 'self'".to_string(),
        "object-src 'none'".to_string(),
        "base-uri 'none'".to_string(),
        "form-action 'self'".to_string(),
    ];
    if !frameable {
        directives.push("frame-ancestors 'none'".to_string());
    }
    directives.join("; ")
}

/// Serves every non-API path: the page or file from the ASSETS binding, or the 404 page, with security headers.
pub async fn serve(app: &App, req: Request) -> Result<Response, ApiError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed);
    }
    let url = req.url().or_internal("request url")?;
    let path = url.path().to_string();

    let (asset_path, frameable, mut ask) = match target(&path) {
        Target::Page { asset, frameable } => (asset.to_string(), frameable, Ask::Page),
        Target::Asset => (path.clone(), false, Ask::File),
        Target::NotFound => (NOT_FOUND_PAGE.to_string(), false, Ask::NotFoundPage),
    };
    let mut response = fetch_asset(app, &req, &url, &asset_path, ask).await?;
    let mut status = response.status_code();
    if ask == Ask::NotFoundPage {
        status = 404;
    } else if status == 404 {
        ask = Ask::NotFoundPage;
        response = fetch_asset(app, &req, &url, NOT_FOUND_PAGE, ask).await?;
    }

    let mut own = vec![url.origin().ascii_serialization()];
    if let Some(public) = app.config.public_base_url.as_deref().and_then(http_origin) {
        if !own.contains(&public) {
            own.push(public);
        }
    }
    let media = app.config.media_base_url.as_deref().and_then(http_origin);
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        headers.append(&name, &value).or_internal("copying asset headers")?;
    }
    let html = ask != Ask::File
        || headers
            .get("content-type")
            .ok()
            .flatten()
            .is_some_and(|t| t.starts_with("text/html"));
    let set = |name: &str, value: &str| headers.set(name, value).or_internal("security headers");
    set(
        "content-security-policy",
        &content_security_policy(&own, media.as_deref(), frameable),
    )?;
    set("x-content-type-options", "nosniff")?;
    // Donation result URLs carry an order id: never hand a page's path to another site.
    set("referrer-policy", "same-origin")?;
    set(
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    )?;
    if frameable {
        // web/_headers gives every asset X-Frame-Options: DENY; the overlay is the one page that may be framed.
        headers.delete("x-frame-options").or_internal("security headers")?;
    } else {
        set("x-frame-options", "DENY")?;
    }
    if html {
        // Pages change with every deploy and may show signed-in state: always revalidate, never share.
        set("cache-control", "private, no-cache")?;
    }
    if ask == Ask::File {
        let (_, body) = response.into_parts();
        return Ok(Response::builder().with_status(status).with_headers(headers).body(body));
    }
    // A page: its template filled with the partials. The filled page has its own length and ETag (see `page_etag`);
    // the 404 page, sent for other paths, has none.
    for name in ["content-length", "content-encoding", "last-modified", "etag"] {
        headers.delete(name).or_internal("page headers")?;
    }
    // A clip's page carries the clip's own preview tags: no ETag of the template's.
    let clip = path.strip_prefix("/clip/");
    if ask == Ask::Page && clip.is_none() {
        if let Some(etag) = response
            .headers()
            .get("etag")
            .ok()
            .flatten()
            .and_then(|e| page_etag(&e))
        {
            set("etag", &etag)?;
        }
    }
    if response.status_code() != 200 || req.method() == Method::Head {
        // A 304, a redirect, or a HEAD: no template to fill.
        let (_, body) = response.into_parts();
        return Ok(Response::builder().with_status(status).with_headers(headers).body(body));
    }
    let template = response.text().await.or_internal("page template")?;
    let mut page = fill_partials(&template);
    if let Some(id) = clip {
        match crate::clips::preview(app, id).await? {
            Some(c) => {
                let origin = crate::http::own_origin(&req, app.config.public_base_url.as_deref());
                let title = c["title"].as_str().unwrap_or_default();
                let description = format!(
                    "A {} s clip of {}, on Sunnylive.",
                    c["duration_seconds"].as_i64().unwrap_or(0).max(1),
                    c["stream_title"].as_str().unwrap_or_default()
                );
                let image = c["thumbnail_url"].as_str().map(|u| match u.starts_with('/') {
                    true => format!("{origin}{u}"),
                    false => u.to_string(),
                });
                let tags = sunnylive_core::clip::preview_tags(
                    title,
                    &description,
                    &format!("{origin}/clip/{id}"),
                    image.as_deref(),
                );
                // The player starts on this, before its script has asked the API anything: a clip plays at once.
                // Fetched while the scripts load (hls.js then finds it in the preload cache).
                let playlist = sunnylive_core::clip::html_escape(c["playlist_url"].as_str().unwrap_or_default());
                let tags = format!(
                    "{tags}\n<meta name=\"sunnylive-playlist\" content=\"{playlist}\">\n<link rel=\"preload\" \
                     as=\"fetch\" crossorigin=\"anonymous\" href=\"{playlist}\">"
                );
                page = page.replace(PREVIEW_MARKER, &tags).replace(
                    "<title>Clip · Sunnylive</title>",
                    &format!(
                        "<title>{} · Sunnylive</title>",
                        sunnylive_core::clip::html_escape(title)
                    ),
                );
            }
            // The page says so itself (its script finds no clip); bots get the status.
            None => status = 404,
        }
    }
    Ok(Response::ok(page)
        .or_internal("page")?
        .with_status(status)
        .with_headers(headers))
}

/// How `fetch_asset` asks the asset server for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// A static file, as the client asked for it: its encodings, validators and range pass through.
    File,
    /// A page template, to be filled: whole and unencoded, conditional only on an ETag this build's partials made.
    Page,
    /// The 404 page standing in for another path: whole, unencoded, unconditional.
    NotFoundPage,
}

/// One GET/HEAD to the asset server for `asset_path`, asking as `ask` says: a file keeps the client's encodings and
/// validators (ETag), so an unchanged file is a 304. Redirects are not followed: one from the asset server goes to
/// the browser as it is.
async fn fetch_asset(
    app: &App,
    req: &Request,
    url: &url::Url,
    asset_path: &str,
    ask: Ask,
) -> Result<Response, ApiError> {
    let assets = app
        .env
        .assets("ASSETS")
        .map_err(|e| ApiError::internal(format!("ASSETS binding: {e}")))?;
    let mut asset_url = url.clone();
    asset_url.set_path(asset_path);
    if asset_path != url.path() {
        // A page's query string is for its script, not for the asset server.
        asset_url.set_query(None);
    }
    let headers = Headers::new();
    let from_client = |name: &str| req.headers().get(name).ok().flatten();
    let passed: &[&str] = match ask {
        Ask::File => &[
            "accept",
            "accept-encoding",
            "if-none-match",
            "if-modified-since",
            "range",
        ],
        Ask::Page | Ask::NotFoundPage => &["accept"],
    };
    for name in passed {
        if let Some(value) = from_client(name) {
            headers.set(name, &value).or_internal("asset request headers")?;
        }
    }
    if ask == Ask::Page {
        if let Some(etag) = from_client("if-none-match").and_then(|v| template_etag(&v)) {
            headers
                .set("if-none-match", &etag)
                .or_internal("asset request headers")?;
        }
    }
    let asset_req =
        crate::http::outbound(&req.method(), asset_url.as_str(), &headers, None, true).or_internal("asset request")?;
    assets
        .fetch_request(asset_req)
        .await
        .or_internal(&format!("fetching asset {asset_path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(asset: &'static str) -> Target {
        Target::Page {
            asset,
            frameable: false,
        }
    }

    #[test]
    fn each_page_route_maps_to_its_html_file() {
        assert_eq!(target("/"), page("/"));
        assert_eq!(target("/login"), page("/login"));
        assert_eq!(target("/register"), page("/register"));
        assert_eq!(target("/studio"), page("/studio"));
        assert_eq!(target("/account"), page("/account"));
        assert_eq!(target("/operator"), page("/operator"));
        assert_eq!(target("/recover"), page("/recover"));
        assert_eq!(target("/s/abcdefghij234567"), page("/watch"));
        assert_eq!(target("/donations/order-1_x"), page("/donation"));
        assert_eq!(target("/clip/abcdefghij234567"), page("/clip"));
    }

    #[test]
    fn only_the_overlay_may_be_framed() {
        assert_eq!(
            target("/overlay/abcdefghij234567"),
            Target::Page {
                asset: "/overlay",
                frameable: true
            }
        );
    }

    #[test]
    fn page_routes_with_a_missing_or_odd_id_are_not_found() {
        for path in [
            "/s/",
            "/s/a/b",
            "/s/%3Cscript%3E",
            "/donations/",
            "/overlay/x.y",
            "/s/..",
        ] {
            assert_eq!(target(path), Target::NotFound, "{path}");
        }
    }

    #[test]
    fn page_templates_are_not_reachable_by_their_own_names() {
        for path in [
            "/watch",
            "/watch.html",
            "/donation",
            "/overlay",
            "/clip",
            "/clip.html",
            "/404",
            "/404.html",
            "/index.html",
            "/login.html",
            "/partials",
            "/partials/site-header",
            "/partials/site-header.html",
        ] {
            assert_eq!(target(path), Target::NotFound, "{path}");
        }
    }

    #[test]
    fn every_page_gets_the_shared_parts_once_and_no_marker_is_left() {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
        let mut pages = 0;
        for entry in std::fs::read_dir(&web).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "html") {
                continue;
            }
            let template = std::fs::read_to_string(&path).unwrap();
            let page = fill_partials(&template);
            assert!(
                !page.contains("<!--#include"),
                "{path:?} names a partial that does not exist"
            );
            if path.ends_with("overlay.html") {
                // OBS's browser source: a bare page with no site chrome.
                assert!(!page.contains("site-header"), "{path:?}");
                continue;
            }
            pages += 1;
            assert_eq!(page.matches(r#"<header class="site-header">"#).count(), 1, "{path:?}");
            assert_eq!(page.matches(r#"<footer class="site-footer">"#).count(), 1, "{path:?}");
            assert_eq!(
                page.matches(r#"<link rel="stylesheet" href="/css/sunnylive.css">"#)
                    .count(),
                1,
                "{path:?}"
            );
            assert!(
                page.find("<meta charset=").unwrap() < page.find("<title>").unwrap(),
                "{path:?}"
            );
        }
        assert_eq!(pages, 11);
    }

    #[test]
    fn a_filled_page_has_its_own_etag_and_only_that_one_revalidates() {
        let etag = page_etag(r#""abc123""#).unwrap();
        assert_ne!(etag, r#""abc123""#);
        assert_eq!(template_etag(&etag).as_deref(), Some(r#""abc123""#));
        let weak = page_etag(r#"W/"abc""#).unwrap();
        assert_eq!(template_etag(&weak).as_deref(), Some(r#"W/"abc""#));
        // The template's own ETag, or one filled with other partials, is not a copy of this page.
        assert_eq!(template_etag(r#""abc123""#), None);
        assert_eq!(template_etag(r#""abc123-p0000000000000000""#), None);
        assert_eq!(page_etag("unquoted"), None);
    }

    #[test]
    fn other_paths_are_static_files() {
        for path in [
            "/css/sunnylive.css",
            "/js/pages/watch.js",
            "/vendor/hls.light.min.js",
            "/favicon.svg",
        ] {
            assert_eq!(target(path), Target::Asset, "{path}");
        }
    }

    #[test]
    fn the_policy_allows_only_our_scripts_and_the_hls_origin_for_media() {
        let csp = content_security_policy(
            &["http://127.0.0.1:8787".to_string()],
            Some("http://127.0.0.1:8080"),
            false,
        );
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' ws://127.0.0.1:8787 http://127.0.0.1:8080;"),
            "{csp}"
        );
        assert!(csp.contains("media-src 'self' blob: http://127.0.0.1:8080;"), "{csp}");
        assert!(csp.contains("img-src 'self' data: http://127.0.0.1:8080;"), "{csp}");
        assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
    }

    #[test]
    fn an_https_site_allows_its_chat_over_wss_and_the_overlay_may_be_framed() {
        let csp = content_security_policy(&["https://sunny.example".to_string()], None, true);
        assert!(csp.contains("connect-src 'self' wss://sunny.example;"), "{csp}");
        assert!(!csp.contains("frame-ancestors"), "{csp}");
    }

    #[test]
    fn a_media_base_url_becomes_its_origin_and_a_relative_one_adds_nothing() {
        assert_eq!(
            http_origin("http://127.0.0.1:8080/hls").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            http_origin("https://hls.example.com/hls/").as_deref(),
            Some("https://hls.example.com")
        );
        assert_eq!(http_origin("/hls"), None);
        assert_eq!(http_origin("ftp://x.example/hls"), None);
    }
}
