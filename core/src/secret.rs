//! Secrets and configuration: constant-time comparison, and what production refuses to serve with (development
//! or short secrets, secrets shared between jobs, the Midtrans sandbox unless asked for, placeholder hosts).

use subtle::ConstantTimeEq;

/// Every development-only secret in `.dev.vars` starts with this; production refuses to serve with one.
pub const DEV_SECRET_PREFIX: &str = "dev-only-";

/// Constant-time equality of two secrets (length is not hidden, contents are).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The shortest secret production accepts, in bytes: 256 bits for an HMAC-SHA256 key or a bearer token.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a configured secret cannot be used in production.
pub fn production_problem(value: Option<&str>) -> Option<&'static str> {
    match value {
        None => Some("is missing"),
        Some(v) if v.starts_with(DEV_SECRET_PREFIX) => Some("is a development-only value"),
        Some(v) if v.len() < MIN_SECRET_BYTES => Some("is shorter than 32 bytes"),
        Some(_) => None,
    }
}

/// Every pair of secrets (by name) that share a value: each secret has one job, and one leaked (an origin token
/// on the origin host, say) must not also sign access tokens.
pub fn equal_secrets<'a>(secrets: &[(&'a str, &str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = Vec::new();
    for (i, (a, va)) in secrets.iter().enumerate() {
        for (b, vb) in &secrets[i + 1..] {
            if secrets_equal(va.as_bytes(), vb.as_bytes()) {
                pairs.push((*a, *b));
            }
        }
    }
    pairs
}

/// What production refuses about Midtrans: its sandbox (an `SB-` server key, or a `sandbox.midtrans.com` URL) unless
/// the operator asked for it explicitly (`MIDTRANS_ENVIRONMENT=sandbox`), since sandbox payments are not money.
/// Returns (variable, problem) pairs; never a value.
pub fn midtrans_problems(
    sandbox_requested: bool,
    server_key: &str,
    urls: &[(&'static str, &str)],
) -> Vec<(&'static str, &'static str)> {
    if sandbox_requested {
        return Vec::new();
    }
    let mut problems = Vec::new();
    if server_key.starts_with("SB-") {
        problems.push((
            "MIDTRANS_SERVER_KEY",
            "is a sandbox key (SB-...); set MIDTRANS_ENVIRONMENT=sandbox to use the sandbox",
        ));
    }
    for (name, url) in urls {
        if host_of(url).is_some_and(|h| h == "sandbox.midtrans.com" || h.ends_with(".sandbox.midtrans.com")) {
            problems.push((
                name,
                "points at the Midtrans sandbox; set MIDTRANS_ENVIRONMENT=sandbox to use the sandbox",
            ));
        }
    }
    problems
}

/// True when `url`'s host is one of the documentation placeholders (`example.com`, `example.net`, `example.org`,
/// any name under them, or the `.example` TLD) that wrangler.toml ships with.
pub fn is_placeholder_url(url: &str) -> bool {
    host_of(url).is_some_and(|h| {
        ["example.com", "example.net", "example.org"]
            .iter()
            .any(|p| h == *p || h.ends_with(&format!(".{p}")))
            || h == "example"
            || h.ends_with(".example")
    })
}

/// The lower-case host of an absolute URL (`scheme://[user@]host[:port]/...`), without a URL parser (core stays
/// small).
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next()?
    } else {
        host.split(':').next()?
    };
    (!host.is_empty()).then(|| host.trim_end_matches('.').to_ascii_lowercase())
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
        assert!(production_problem(Some("thirty-one-bytes-is-still-short")).is_some());
        assert!(production_problem(Some("a-real-long-random-production-secret")).is_none());
    }

    #[test]
    fn secrets_shared_between_jobs_are_named_in_pairs() {
        let pairs = equal_secrets(&[("A", "same"), ("B", "other"), ("C", "same")]);
        assert_eq!(pairs, vec![("A", "C")]);
        assert!(equal_secrets(&[("A", "x"), ("B", "y")]).is_empty());
    }

    #[test]
    fn the_midtrans_sandbox_is_refused_unless_asked_for() {
        let sandbox = [
            ("MIDTRANS_SNAP_BASE_URL", "https://app.sandbox.midtrans.com"),
            ("MIDTRANS_API_BASE_URL", "https://api.sandbox.midtrans.com/"),
        ];
        let problems = midtrans_problems(false, "SB-Mid-server-abc", &sandbox);
        let names: Vec<_> = problems.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["MIDTRANS_SERVER_KEY", "MIDTRANS_SNAP_BASE_URL", "MIDTRANS_API_BASE_URL"]
        );
        assert!(midtrans_problems(true, "SB-Mid-server-abc", &sandbox).is_empty());
        let live = [("MIDTRANS_SNAP_BASE_URL", "https://app.midtrans.com")];
        assert!(midtrans_problems(false, "Mid-server-abc", &live).is_empty());
    }

    #[test]
    fn placeholder_hosts_are_recognised_and_real_ones_are_not() {
        for url in [
            "https://hls.example.com/hls",
            "rtmp://ingest.example.com/live",
            "https://EXAMPLE.org",
            "https://user@www.example.net:8443/x",
            "https://sunnylive.example/",
        ] {
            assert!(is_placeholder_url(url), "{url}");
        }
        for url in [
            "https://sunnylive.id",
            "https://notexample.com/x",
            "https://example.com.evil.id",
            "nonsense",
        ] {
            assert!(!is_placeholder_url(url), "{url}");
        }
    }
}
