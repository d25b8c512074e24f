//! Which copy of D1 a request reads (D1 global read replication, through the Sessions API). A replica near the
//! viewer answers reads that may be a moment old; the primary answers everything that must be current. A client
//! reads its own writes by carrying a bookmark: every API answer that ran a D1 statement names the newest state it
//! saw in the `Sunnylive-Bookmark` header, the web client sends the last one back on its next API request, and a
//! session started from it reads a copy at least that new (docs/API.md, "Read bookmarks and caching").

/// The request and response header that carries a D1 bookmark.
pub const BOOKMARK_HEADER: &str = "Sunnylive-Bookmark";

/// A D1 bookmark as a client sent it back. Opaque to us, but only ever hex digits and dashes (D1 writes them as
/// dash-separated hex fields); anything else, or anything longer than a bookmark could be, is ignored as if none
/// had been sent, so a damaged header can neither fail the request nor reach D1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark(String);

impl Bookmark {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Option<Bookmark> {
        let raw = raw.trim();
        let ok =
            !raw.is_empty() && raw.len() <= Self::MAX_LEN && raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        ok.then(|| Bookmark(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a request's D1 session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStart {
    /// The primary: writes, and reads that must be current.
    Primary,
    /// Any replica: an anonymous read, where a moment-old copy is what a cache would have served anyway.
    Unconstrained,
    /// A copy at least as new as the client's last answer.
    After(Bookmark),
}

impl SessionStart {
    /// The argument of D1's `withSession`.
    pub fn constraint(&self) -> &str {
        match self {
            SessionStart::Primary => "first-primary",
            SessionStart::Unconstrained => "first-unconstrained",
            SessionStart::After(b) => b.as_str(),
        }
    }
}

/// The session a request starts. `must_be_current` marks the routes that decide on fresh state whoever asks (the
/// RTMP callbacks and uploads, the Midtrans webhook); every request that may write (any method but GET and HEAD)
/// reads the primary too, because its reads decide its writes (a refresh token's reuse, a lockout count). A read
/// that carries a bookmark starts from it; a signed-in read without one starts at the primary (its last write may
/// be newer than any replica); an anonymous read may use any replica.
pub fn session_start(method: &str, must_be_current: bool, signed_in: bool, bookmark: Option<&str>) -> SessionStart {
    let reads_only = matches!(method, "GET" | "HEAD");
    if must_be_current || !reads_only {
        return SessionStart::Primary;
    }
    match bookmark.and_then(Bookmark::parse) {
        Some(b) => SessionStart::After(b),
        None if signed_in => SessionStart::Primary,
        None => SessionStart::Unconstrained,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKMARK: &str = "0000003c-00000002-00004f9b-6c4f1b4de3d4e4b3e33c5c3b1d7c0a0e";

    #[test]
    fn an_anonymous_read_may_use_any_replica() {
        assert_eq!(session_start("GET", false, false, None), SessionStart::Unconstrained);
        assert_eq!(session_start("HEAD", false, false, None), SessionStart::Unconstrained);
    }

    #[test]
    fn a_read_with_a_bookmark_starts_from_it() {
        let start = session_start("GET", false, true, Some(BOOKMARK));
        assert_eq!(start.constraint(), BOOKMARK);
        assert_eq!(
            session_start("GET", false, false, Some(BOOKMARK)).constraint(),
            BOOKMARK
        );
    }

    #[test]
    fn a_signed_in_read_without_a_bookmark_reads_the_primary() {
        assert_eq!(session_start("GET", false, true, None), SessionStart::Primary);
    }

    #[test]
    fn writes_and_what_must_be_current_read_the_primary_whatever_was_sent() {
        for method in ["POST", "PATCH", "DELETE", "PUT"] {
            assert_eq!(
                session_start(method, false, true, Some(BOOKMARK)),
                SessionStart::Primary,
                "{method}"
            );
        }
        assert_eq!(session_start("GET", true, false, Some(BOOKMARK)), SessionStart::Primary);
        assert_eq!(SessionStart::Primary.constraint(), "first-primary");
        assert_eq!(SessionStart::Unconstrained.constraint(), "first-unconstrained");
    }

    #[test]
    fn a_damaged_bookmark_is_ignored_like_none() {
        for bad in [
            "",
            " ",
            "first-primary!",
            "zz",
            "a b",
            "<script>",
            &"a".repeat(Bookmark::MAX_LEN + 1),
        ] {
            assert_eq!(Bookmark::parse(bad), None, "{bad:?}");
            assert_eq!(
                session_start("GET", false, false, Some(bad)),
                SessionStart::Unconstrained,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_constraint_words_are_never_taken_for_a_bookmark() {
        // "first-primary" is not hex: a client cannot pick the session's kind by sending D1's own words.
        assert_eq!(Bookmark::parse("first-primary"), None);
        assert_eq!(Bookmark::parse("first-unconstrained"), None);
    }
}
