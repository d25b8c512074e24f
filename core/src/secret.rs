//! Secrets: constant-time comparison, and the rule that production refuses development values.

use subtle::ConstantTimeEq;

/// Every development-only secret in `.dev.vars` starts with this; production refuses to serve with one.
pub const DEV_SECRET_PREFIX: &str = "dev-only-";

/// Constant-time equality of two secrets (length is not hidden, contents are).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Why a configured secret cannot be used in production.
pub fn production_problem(value: Option<&str>) -> Option<&'static str> {
    match value {
        None => Some("is missing"),
        Some(v) if v.starts_with(DEV_SECRET_PREFIX) => Some("is a development-only value"),
        Some(v) if v.len() < 16 => Some("is shorter than 16 characters"),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_secrets_compare_equal_and_others_do_not() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
    }

    #[test]
    fn production_refuses_missing_short_and_development_secrets() {
        assert!(production_problem(None).is_some());
        assert!(production_problem(Some("dev-only-jwt-secret-do-not-deploy")).is_some());
        assert!(production_problem(Some("short")).is_some());
        assert!(production_problem(Some("a-real-long-random-production-secret")).is_none());
    }
}
