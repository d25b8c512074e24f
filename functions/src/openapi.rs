//! `GET /healthz` and `GET /api/openapi.json`. The OpenAPI document is a static asset (web/api/openapi.json) served
//! through the ASSETS binding rather than compiled into the wasm, where it cost ~35 KB of the upload budget; a host
//! test in routes.rs keeps it in step with the route table.

use sunnylive_core::error::ApiError;
use worker::{Request, Response};

use crate::app::App;
use crate::http;

/// The document's text, for the host test that compares it with the route table.
#[cfg(test)]
pub const OPENAPI_JSON: &str = include_str!("../../web/api/openapi.json");

pub fn health() -> Result<Response, ApiError> {
    http::json(
        200,
        &serde_json::json!({ "ok": true, "version": env!("CARGO_PKG_VERSION") }),
    )
}

/// `GET /api/openapi.json`: the static file at the same path.
pub async fn document(app: &App, req: Request) -> Result<Response, ApiError> {
    crate::pages::serve(app, req).await
}
