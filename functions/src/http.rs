//! HTTP plumbing shared by every handler: reading bodies within limits and content types, typed access to JSON
//! fields, cookies, client IPs, query strings, and turning results into responses (errors in the contract's shape,
//! internal errors logged with context and answered opaquely).

use std::collections::HashMap;

use serde_json::{Map, Value};
use sunnylive_core::error::ApiError;
use worker::{Request, Response};

// Written once for the Worker and the Durable Objects (edge/).
pub use sunnylive_edge::{error_response, json, no_content, outbound, read_body, OrInternal};

/// Default limit for JSON bodies: every request we accept is far smaller.
pub const JSON_LIMIT: usize = 16 * 1024;

fn content_type(req: &Request) -> String {
    req.headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A JSON object body whose fields are read one by one with precise errors.
#[derive(Default)]
pub struct JsonBody(Map<String, Value>);

/// Reads a JSON object body: 415 unless `application/json`, 413 over `limit`, 400 when it is not a JSON object.
pub async fn read_json(req: &mut Request, limit: usize) -> Result<JsonBody, ApiError> {
    let ct = content_type(req);
    if !(ct.starts_with("application/json") || ct.contains("+json")) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    let bytes = read_body(req, limit).await?;
    parse_json_object(&bytes)
}

pub fn parse_json_object(bytes: &[u8]) -> Result<JsonBody, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(JsonBody(map)),
        Ok(_) => Err(ApiError::Malformed("expected a JSON object".into())),
        Err(e) => Err(ApiError::Malformed(format!("not valid JSON ({e})"))),
    }
}

/// An optional body for routes whose body may be empty (logout, refresh with a cookie).
pub async fn read_optional_json(req: &mut Request, limit: usize) -> Result<JsonBody, ApiError> {
    let bytes = read_body(req, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(JsonBody(Map::new()));
    }
    if !content_type(req).starts_with("application/json") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    parse_json_object(&bytes)
}

impl JsonBody {
    /// The whole object, for parsers in the core that take a `serde_json::Value`.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// A string field: `Ok(None)` when absent or null, 422 when present with another type.
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(name, "must be a string")),
        }
    }

    /// A boolean field: `Ok(None)` when absent or null, 422 when present with another type.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }
}

/// Reads an `application/x-www-form-urlencoded` body (nginx-rtmp's callbacks). A field given twice keeps its FIRST
/// value: nginx-rtmp appends the publisher's own `?query` after its fields, and those must never override them.
pub async fn read_form(req: &mut Request, limit: usize) -> Result<HashMap<String, String>, ApiError> {
    if !content_type(req).starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/x-www-form-urlencoded",
        });
    }
    let bytes = read_body(req, limit).await?;
    let text = String::from_utf8(bytes).map_err(|_| ApiError::Malformed("the form is not UTF-8".into()))?;
    Ok(first_values(&text))
}

/// Form pairs into a map, the first value of a repeated field winning.
pub fn first_values(form: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(form.as_bytes()).into_owned() {
        map.entry(k).or_insert(v);
    }
    map
}

/// GET, HEAD and OPTIONS change nothing, so they need no Origin check.
pub fn is_safe_method(m: &worker::Method) -> bool {
    matches!(m, worker::Method::Get | worker::Method::Head | worker::Method::Options)
}

/// The query string as a map (last value wins).
pub fn query(req: &Request) -> HashMap<String, String> {
    req.url()
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// One cookie's value from the request.
pub fn cookie(req: &Request, name: &str) -> Option<String> {
    let header = req.headers().get("cookie").ok().flatten()?;
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// `Authorization: Bearer <token>`.
pub fn bearer(req: &Request) -> Option<String> {
    let header = req.headers().get("authorization").ok().flatten()?;
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// The client as every per-IP limit counts it: the address Cloudflare saw (`CF-Connecting-IP`; "local" under
/// `wrangler dev` without it), with IPv6 bucketed by /64 (`sunnylive_core::rate_limit::client_bucket`).
pub fn client_ip(req: &Request) -> String {
    let ip = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "local".into());
    sunnylive_core::rate_limit::client_bucket(&ip)
}

/// The site's own origin (`PUBLIC_BASE_URL` when configured, else this request's scheme://host:port).
pub fn own_origin(req: &Request, public_base_url: Option<&str>) -> String {
    if let Some(base) = public_base_url {
        if let Ok(u) = url::Url::parse(base) {
            return u.origin().ascii_serialization();
        }
    }
    req.url().map(|u| u.origin().ascii_serialization()).unwrap_or_default()
}

/// Turns a handler's result into the response sent. Internal errors are logged with their context and the
/// request id (which the request's own log line carries too); the client only ever sees the opaque contract error.
pub fn respond(result: Result<Response, ApiError>, method: &str, request_id: &str) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => {
            if let ApiError::Internal { context } = &e {
                worker::console_error!("500 on {method} (request {request_id}): {context}");
            }
            error_response(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_form_field_keeps_its_first_value() {
        let f = first_values("call=update_publish&addr=10.0.0.1&name=sk_a_b&call=update_play&addr=127.0.0.1");
        assert_eq!(f["call"], "update_publish");
        assert_eq!(f["addr"], "10.0.0.1");
        assert_eq!(f["name"], "sk_a_b");
    }
}
