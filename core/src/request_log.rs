//! The one log line per request that the Worker writes (functions/src/routes.rs, `handle`): JSON that `wrangler tail`
//! and Workers Logs show and that an operator can filter (`route`, `status`, `duration_ms`, `request_id`). It names
//! the route by its pattern (`/api/streams/{id}`), never the concrete path, query string, headers or body: RTMP
//! callbacks carry stream keys in their bodies, sign-ins passwords, and a mistyped URL may carry anything.

use serde::Serialize;

/// What the request was, as logged: an API route's pattern, or what kind of non-API path it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteName {
    /// A row of the route table: its method-independent pattern, e.g. `/api/streams/{id}/chat`.
    Api(&'static str),
    /// An `/api/` path that is not in the table.
    UnknownApi,
    /// A page of the web client (`/`, `/s/{id}`, ...).
    Page,
    /// A static file that reached the Worker (unknown files, and every file when `run_worker_first` covers it).
    Asset,
    /// A path that is no page and no file: the 404 page.
    NotFound,
}

impl RouteName {
    pub fn as_str(&self) -> &'static str {
        match self {
            RouteName::Api(pattern) => pattern,
            RouteName::UnknownApi => "(unknown api route)",
            RouteName::Page => "(page)",
            RouteName::Asset => "(static file)",
            RouteName::NotFound => "(not found)",
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    request_id: &'a str,
    method: &'a str,
    route: &'static str,
    status: u16,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    /// The D1 region that answered the request's last statement (`served_by_region` in D1's result meta: a replica's
    /// or the primary's), when it ran one and D1 said.
    #[serde(skip_serializing_if = "Option::is_none")]
    served_by_region: Option<&'a str>,
}

/// Whether a request gets its line. Every one does, but a video answer (`/hls/...`) that the colo's cache served
/// without an error: those are nearly every request a live stream makes (each viewer fetches a playlist and a
/// segment every couple of seconds), say nothing an operator acts on, and each line is a Workers Logs event (billed,
/// and counted against the plan's daily allowance). Video misses (an R2 or D1 read) and errors keep their lines.
///
/// Nor a healthy `/healthz`: an uptime monitor asks every few seconds, and "still up" is what its own record says;
/// a failed check keeps its line.
pub fn worth_logging(route: RouteName, status: u16, cache_hit: bool) -> bool {
    let video = matches!(route, RouteName::Api(pattern) if pattern.starts_with("/hls/"));
    let health = route == RouteName::Api("/healthz");
    !((video && cache_hit || health) && status < 400)
}

/// The JSON line for one request. `error` is the contract's error code when the answer was an error.
pub fn line(
    request_id: &str,
    method: &str,
    route: RouteName,
    status: u16,
    duration_ms: u64,
    error: Option<&'static str>,
    served_by_region: Option<&str>,
) -> String {
    serde_json::to_string(&Line {
        kind: "request",
        request_id,
        // A method is a short token; anything else is not worth logging verbatim.
        method: if method.len() <= 10 && method.bytes().all(|b| b.is_ascii_uppercase()) {
            method
        } else {
            "OTHER"
        },
        route: route.as_str(),
        status,
        duration_ms,
        error,
        // A region is a short code (`WEUR`, `APAC`, ...); anything else is not worth logging verbatim.
        served_by_region: served_by_region.filter(|r| r.len() <= 16 && r.bytes().all(|b| b.is_ascii_alphanumeric())),
    })
    .expect("BUG: a log line of plain fields always serializes")
}

/// A request id from Cloudflare's `cf-ray` (so a line can be matched with Cloudflare's own logs), if it looks like
/// one; `None` means: generate one.
pub fn id_from_ray(cf_ray: Option<&str>) -> Option<String> {
    let ray = cf_ray?;
    ((8..=40).contains(&ray.len()) && ray.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| ray.to_string())
}

/// The path of a request URL as the runtime serializes it (`https://host/a/b?x#y` -> `/a/b`), without parsing it
/// again: a WHATWG serialization always has a path after the host, and `?` and `#` inside it are percent-encoded.
pub fn path_of_url(url: &str) -> &str {
    let Some(host_start) = url.find("://").map(|i| i + 3) else {
        return url;
    };
    match url[host_start..].find('/') {
        Some(i) => {
            let path = &url[host_start + i..];
            &path[..path.find(['?', '#']).unwrap_or(path.len())]
        }
        None => "/",
    }
}

/// A request id from 8 random bytes, as 16 hex digits.
pub fn id_from_random(bytes: [u8; 8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_the_route_pattern_and_no_path() {
        let text = line(
            "abc123",
            "POST",
            RouteName::Api("/api/rtmp/on-publish"),
            403,
            7,
            Some("invalid_stream_key"),
            Some("WEUR"),
        );
        assert!(!text.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "request");
        assert_eq!(v["request_id"], "abc123");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["route"], "/api/rtmp/on-publish");
        assert_eq!(v["status"], 403);
        assert_eq!(v["duration_ms"], 7);
        assert_eq!(v["error"], "invalid_stream_key");
        assert_eq!(v["served_by_region"], "WEUR");
    }

    #[test]
    fn a_success_has_no_error_field_and_an_odd_method_is_not_logged_verbatim() {
        let v: serde_json::Value =
            serde_json::from_str(&line("x", "sk_secret?", RouteName::Page, 200, 1, None, Some("a\"b"))).unwrap();
        assert!(v.get("error").is_none());
        assert!(
            v.get("served_by_region").is_none(),
            "an odd region is not logged verbatim"
        );
        assert_eq!(v["method"], "OTHER");
        assert_eq!(v["route"], "(page)");
    }

    #[test]
    fn a_ray_id_is_the_request_id_and_anything_else_is_replaced() {
        assert_eq!(
            id_from_ray(Some("8f1b2c3d4e5f6789-SIN")).as_deref(),
            Some("8f1b2c3d4e5f6789-SIN")
        );
        assert_eq!(id_from_ray(Some("x")), None);
        assert_eq!(id_from_ray(Some("8f1b2c3d4e5f6789\"}-SIN")), None);
        assert_eq!(id_from_ray(None), None);
        assert_eq!(id_from_random([0, 1, 2, 0xab, 4, 5, 6, 0xff]), "000102ab040506ff");
    }

    #[test]
    fn the_path_of_a_url_is_what_lies_between_its_host_and_its_query() {
        assert_eq!(
            path_of_url("https://tv.example.com/hls/a/b/seg1.ts?miss=1#x"),
            "/hls/a/b/seg1.ts"
        );
        assert_eq!(path_of_url("http://127.0.0.1:8787/healthz"), "/healthz");
        assert_eq!(path_of_url("https://tv.example.com"), "/");
        assert_eq!(path_of_url("https://tv.example.com/?q"), "/");
        assert_eq!(path_of_url("https://tv.example.com/a%3Fb"), "/a%3Fb");
    }

    #[test]
    fn video_cache_hits_are_not_logged_and_everything_else_is() {
        let segment = RouteName::Api("/hls/{id}/{broadcast_id}/{file}");
        assert!(!worth_logging(segment, 200, true));
        assert!(!worth_logging(segment, 304, true));
        assert!(!worth_logging(RouteName::Api("/hls/{id}/live.m3u8"), 206, true));
        assert!(worth_logging(segment, 200, false), "a miss is an R2 read: logged");
        assert!(worth_logging(segment, 404, true), "errors are always logged");
        assert!(worth_logging(RouteName::Api("/api/streams/{id}"), 200, true));
        assert!(worth_logging(RouteName::Page, 200, true));
    }

    #[test]
    fn a_healthy_health_check_is_not_logged_and_a_failed_one_is() {
        assert!(!worth_logging(RouteName::Api("/healthz"), 200, false));
        assert!(worth_logging(RouteName::Api("/healthz"), 503, false));
    }
}
