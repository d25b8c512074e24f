//! The one API error type and its status mapping: every handler answers failures through it, so the JSON shape
//! `{"error": {"code", "message", "fields"?}}` and the status codes of the contract live in this file only.

use std::collections::BTreeMap;

use serde::Serialize;

/// Field name to a sentence saying why its value was refused.
pub type FieldErrors = BTreeMap<String, String>;

/// Everything a request can fail with. Each variant's doc names its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the body is not the JSON (or form) we expect.
    Malformed(String),
    /// 401: no credentials, or credentials that do not check out. `code` is usually `not_authenticated`.
    Unauthenticated { code: &'static str, message: String },
    /// 403: authenticated, but not allowed to do this.
    Forbidden { code: &'static str, message: String },
    /// 404: no such thing (or the route does not exist).
    NotFound { code: &'static str, message: String },
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 409: the request conflicts with the current state.
    Conflict { code: &'static str, message: String },
    /// 413: the body is larger than the route accepts.
    TooLarge { limit: usize },
    /// 415: the body's content type is not the one the route reads.
    UnsupportedMediaType { expected: &'static str },
    /// 422: well-formed, but field values are invalid.
    Invalid(FieldErrors),
    /// 422 with a specific code and no per-field detail (e.g. `amount_mismatch`).
    Unprocessable { code: &'static str, message: String },
    /// 429: slow down; `retry_after` seconds until the window opens again.
    RateLimited { retry_after: u64 },
    /// 502: Midtrans (or another upstream) failed.
    Upstream { code: &'static str, message: String },
    /// 503: the deployment is misconfigured (a secret missing or left at its development value).
    Misconfigured,
    /// 500: our fault. `context` is logged, never sent.
    Internal { context: String },
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a FieldErrors>,
}

impl ApiError {
    pub fn internal(context: impl Into<String>) -> Self {
        ApiError::Internal {
            context: context.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound {
            code: "not_found",
            message: format!("{what} not found."),
        }
    }

    pub fn unauthenticated() -> Self {
        ApiError::Unauthenticated {
            code: "not_authenticated",
            message: "Sign in to do this.".into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code: "forbidden",
            message: message.into(),
        }
    }

    /// One invalid field.
    pub fn invalid(field: &str, why: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.to_string(), why.into());
        ApiError::Invalid(fields)
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Malformed(_) => 400,
            ApiError::Unauthenticated { .. } => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::TooLarge { .. } => 413,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::Invalid(_) | ApiError::Unprocessable { .. } => 422,
            ApiError::RateLimited { .. } => 429,
            ApiError::Upstream { .. } => 502,
            ApiError::Misconfigured => 503,
            ApiError::Internal { .. } => 500,
        }
    }

    /// Seconds for a `Retry-After` header, when the error carries one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            ApiError::Misconfigured => Some(60),
            _ => None,
        }
    }

    /// The contract's error code (the `code` of the JSON body; also what a request log line names).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "malformed_body",
            ApiError::Unauthenticated { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Upstream { code, .. } => code,
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::Invalid(_) => "validation_failed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Misconfigured => "misconfigured",
            ApiError::Internal { .. } => "internal_error",
        }
    }

    /// The JSON body. Internal errors say nothing about their context.
    pub fn body(&self) -> String {
        let (message, fields): (String, Option<&FieldErrors>) = match self {
            ApiError::Malformed(why) => (format!("The request body could not be read: {why}"), None),
            ApiError::Unauthenticated { message, .. }
            | ApiError::Forbidden { message, .. }
            | ApiError::NotFound { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::Unprocessable { message, .. }
            | ApiError::Upstream { message, .. } => (message.clone(), None),
            ApiError::MethodNotAllowed => ("This route does not accept that method.".into(), None),
            ApiError::TooLarge { limit } => (format!("The request body is larger than {limit} bytes."), None),
            ApiError::UnsupportedMediaType { expected } => (format!("Send the body as {expected}."), None),
            ApiError::Invalid(fields) => ("Some fields are invalid.".into(), Some(fields)),
            ApiError::RateLimited { retry_after } => {
                (format!("Too many requests; try again in {retry_after} s."), None)
            }
            ApiError::Misconfigured => (
                "This deployment is not configured yet; the operator has been told.".into(),
                None,
            ),
            ApiError::Internal { .. } => ("Something went wrong on our side. Please try again.".into(), None),
        };
        serde_json::to_string(&Body {
            error: Inner {
                code: self.code(),
                message: &message,
                fields,
            },
        })
        .expect("BUG: serializing a fixed-shape error body cannot fail")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Internal { context } => write!(f, "internal error: {context}"),
            other => write!(f, "{} {}", other.status(), other.body()),
        }
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_never_leaks_its_context() {
        let e = ApiError::internal("D1: no such column secret_password");
        assert_eq!(e.status(), 500);
        assert!(!e.body().contains("secret_password"));
    }

    #[test]
    fn validation_errors_carry_their_fields() {
        let e = ApiError::invalid("username", "must be 3-32 characters");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "validation_failed");
        assert_eq!(v["error"]["fields"]["username"], "must be 3-32 characters");
        assert_eq!(e.status(), 422);
    }

    #[test]
    fn only_validation_errors_have_a_fields_member() {
        let v: serde_json::Value = serde_json::from_str(&ApiError::unauthenticated().body()).unwrap();
        assert!(v["error"].get("fields").is_none());
    }

    #[test]
    fn rate_limited_answers_429_with_retry_after() {
        let e = ApiError::RateLimited { retry_after: 17 };
        assert_eq!(e.status(), 429);
        assert_eq!(e.retry_after(), Some(17));
    }
}
