//! Fixed-window rate limits for login and registration, counted in D1 (`rate_limits` table). This module holds
//! only the arithmetic (which window a moment falls in, and what to answer for a count) and the keys: which client
//! or account an attempt counts against.

use crate::account::Username;

/// A limit of `max` events per `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: i64,
    pub window_seconds: i64,
}

/// Login attempts per client IP: generous enough for a shared NAT, tight enough to stop password spraying.
pub const LOGIN_PER_IP: Limit = Limit {
    max: 30,
    window_seconds: 300,
};
/// Failed login attempts per username: stops guessing one account's password. Strangers' failures count together;
/// a client that signed in to the account successfully before counts apart (`login_lockout_key`), so strangers
/// cannot lock it out.
pub const LOGIN_PER_USERNAME: Limit = Limit {
    max: 10,
    window_seconds: 300,
};
/// Registrations per client IP.
pub const REGISTER_PER_IP: Limit = Limit {
    max: 20,
    window_seconds: 3600,
};
/// Donation checkouts per client IP (each one calls Midtrans).
pub const DONATE_PER_IP: Limit = Limit {
    max: 30,
    window_seconds: 60,
};

/// Account exports per user (each asks every chat room the user spoke in).
pub const EXPORT_PER_USER: Limit = Limit {
    max: 10,
    window_seconds: 3600,
};
/// Reports per reporting user: enough for a bad evening of chat, not enough to bury the operators.
pub const REPORTS_PER_USER: Limit = Limit {
    max: 10,
    window_seconds: 3600,
};
/// Clips made per user (each writes a few D1 rows and copies a thumbnail): a viewer clipping every moment of a
/// long stream stays well inside it; a script does not.
pub const CLIPS_PER_USER: Limit = Limit {
    max: 10,
    window_seconds: 300,
};

/// The client a per-IP limit counts, from the address Cloudflare saw. An IPv6 host is normally given a whole /64
/// (and picks addresses in it at will), so IPv6 addresses count per /64 (`2001:db8:1:2::/64`); IPv4 addresses, and
/// IPv4-mapped IPv6 ones, count per address. Anything unparsable (only possible without Cloudflare in front) is
/// cut to 64 bytes, so a limiter key never carries a long header.
pub fn client_bucket(ip: &str) -> String {
    use std::net::IpAddr;
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
        Err(_) => ip.chars().take(64).collect(),
    }
}

/// The key the per-username login lockout counts failures under. Built only from a parsed `Username` (never from
/// raw input, which may be 16 KiB), lower-cased like the accounts' names. `known_client` is the client's bucket
/// (`client_bucket`) when that client signed in to this account successfully before: its failures then count
/// apart from everyone else's.
pub fn login_lockout_key(username: &Username, known_client: Option<&str>) -> String {
    let name = username.as_str().to_ascii_lowercase();
    match known_client {
        Some(client) => format!("login-user:{name}@{client}"),
        None => format!("login-user:{name}"),
    }
}

impl Limit {
    /// Start of the window that contains `now` (unix seconds).
    pub fn window_start(&self, now: i64) -> i64 {
        now - now.rem_euclid(self.window_seconds)
    }

    /// `Some(retry_after_seconds)` when `count` (including this attempt) is over the limit.
    pub fn check(&self, count: i64, now: i64) -> Option<u64> {
        (count > self.max).then(|| (self.window_start(now) + self.window_seconds - now).max(1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_up_to_the_max_pass_and_the_next_is_told_when_to_retry() {
        let l = Limit {
            max: 3,
            window_seconds: 60,
        };
        assert_eq!(l.check(3, 120), None);
        assert_eq!(l.check(4, 130), Some(50));
    }

    #[test]
    fn ipv6_clients_count_per_64_and_ipv4_clients_per_address() {
        assert_eq!(client_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(client_bucket("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
        assert_ne!(client_bucket("2001:db8:1:3::1"), client_bucket("2001:db8:1:2::1"));
        assert_eq!(client_bucket("203.0.113.9"), "203.0.113.9");
        assert_eq!(client_bucket("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(client_bucket("local"), "local");
        assert_eq!(client_bucket(&"x".repeat(10_000)).len(), 64);
    }

    #[test]
    fn the_lockout_key_is_the_lower_case_name_and_known_clients_count_apart() {
        let name = Username::parse("Budi_99").unwrap();
        assert_eq!(login_lockout_key(&name, None), "login-user:budi_99");
        assert_eq!(
            login_lockout_key(&name, Some("2001:db8:1:2::/64")),
            "login-user:budi_99@2001:db8:1:2::/64"
        );
    }

    #[test]
    fn windows_are_aligned() {
        let l = Limit {
            max: 1,
            window_seconds: 300,
        };
        assert_eq!(l.window_start(1000), 900);
        assert_eq!(l.window_start(900), 900);
    }

    #[test]
    fn retry_after_is_never_zero() {
        let l = Limit {
            max: 0,
            window_seconds: 60,
        };
        assert!(l.check(1, 119).unwrap() >= 1);
    }
}
