//! Fixed-window rate limits for login and registration, counted in D1 (`rate_limits` table). This module holds
//! only the arithmetic: which window a moment falls in, and what to answer for a count.

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
/// Login attempts per username, from anywhere: stops guessing one account's password.
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
