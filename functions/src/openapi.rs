//! `GET /healthz` and `GET /api/openapi.json`. The document is a checked-in file (functions/openapi.json) kept in
//! step with the route table by a host test in routes.rs.

use sunnylive_core::error::ApiError;
use worker::Response;

use crate::http::{self, OrInternal};

pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

pub fn health() -> Result<Response, ApiError> {
    http::json(
        200,
        &serde_json::json!({ "ok": true, "version": env!("CARGO_PKG_VERSION") }),
    )
}

pub fn document() -> Result<Response, ApiError> {
    let response = Response::ok(OPENAPI_JSON).or_internal("openapi response")?;
    response
        .headers()
        .set("content-type", "application/json; charset=utf-8")
        .or_internal("headers")?;
    Ok(response)
}
