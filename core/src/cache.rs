//! What the cache in front of the Worker (Workers Cache, `[cache]` in wrangler.toml) may keep, said once for every
//! response. The cache keys an answer by path and query only, never by cookie, `Authorization` or host, and it
//! serves a fresh entry without running the Worker: an answer that depended on who asked and said `public` would be
//! served to everybody after. So the rule is written here, applied by the route table to every answer, and walked
//! route by route by the end-to-end suite (`ops::every_answer_says_who_may_cache_it`):
//! - video (playlists, segments, thumbnails) says its own `public` lifetime and carries its `Cache-Tag`s;
//! - a few reads that are the same for everybody (`PublicRead`) are `public` for a few seconds, but only when the
//!   request carried nothing personal (no cookie, no `Authorization`, no read bookmark) and succeeded;
//! - everything else is `private, no-store`.

/// The `Cache-Control` of every answer that is not public: no shared cache keeps it, no browser stores it.
pub const PRIVATE: &str = "private, no-store";

/// The `Cache-Control` of a public read: a listing or a stream page a few seconds old is fine, and a stale copy may
/// be served for a while longer while the cache asks the Worker for a new one.
pub const PUBLIC_READ: &str = "public, max-age=5, stale-while-revalidate=25";

/// Public reads also vary by the read bookmark (`crate::replica::BOOKMARK_HEADER`): a client that has just written
/// sends its bookmark, so it never gets the copy cached before its own write.
pub const PUBLIC_READ_VARY: &str = "Sunnylive-Bookmark";

/// How a route's answers may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheClass {
    /// Playlists, segments and thumbnails: the handlers set their own public lifetimes and tags.
    Video,
    /// The same answer for everybody who asks: public for a few seconds when asked anonymously.
    PublicRead,
    /// The web client's pages and files: pages say `private, no-cache` themselves (each names its own origin in
    /// its security policy), files are the same for everybody.
    Web,
    /// Anything else.
    Private,
}

/// What the request carried that could make an answer personal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Asker {
    pub cookie: bool,
    pub authorization: bool,
    pub bookmark: bool,
}

impl Asker {
    pub fn is_anonymous(self) -> bool {
        !(self.cookie || self.authorization || self.bookmark)
    }
}

/// The `Cache-Control` to put on an answer (None: keep what the handler set), and whether it varies by bookmark.
pub fn cache_control(class: CacheClass, asker: Asker, status: u16, sets_cookie: bool) -> Option<&'static str> {
    if sets_cookie {
        return Some(PRIVATE);
    }
    match class {
        // Video answers never depend on who asked; their errors already say no-store.
        CacheClass::Video | CacheClass::Web => None,
        CacheClass::PublicRead if asker.is_anonymous() && status == 200 => Some(PUBLIC_READ),
        _ => Some(PRIVATE),
    }
}

/// The `Cache-Tag` of a stream's video answers, and of one broadcast's: purging `stream_tag` drops everything of a
/// deleted stream, `broadcast_tag` everything of a deleted broadcast. Ids are URL-safe, so the tags are too.
pub fn stream_tag(stream_id: &str) -> String {
    format!("stream-{stream_id}")
}

pub fn broadcast_tag(broadcast_id: &str) -> String {
    format!("broadcast-{broadcast_id}")
}

/// The `Cache-Tag` header value for an answer of `stream_id` (and of `broadcast_id`, when it belongs to one).
pub fn video_tags(stream_id: &str, broadcast_id: Option<&str>) -> String {
    match broadcast_id {
        Some(b) => format!("{},{}", stream_tag(stream_id), broadcast_tag(b)),
        None => stream_tag(stream_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANONYMOUS: Asker = Asker {
        cookie: false,
        authorization: false,
        bookmark: false,
    };

    #[test]
    fn a_public_read_asked_anonymously_is_public_for_a_few_seconds() {
        assert_eq!(
            cache_control(CacheClass::PublicRead, ANONYMOUS, 200, false),
            Some(PUBLIC_READ)
        );
    }

    #[test]
    fn a_public_read_asked_with_anything_personal_is_private() {
        for asker in [
            Asker {
                cookie: true,
                ..ANONYMOUS
            },
            Asker {
                authorization: true,
                ..ANONYMOUS
            },
            Asker {
                bookmark: true,
                ..ANONYMOUS
            },
        ] {
            assert_eq!(
                cache_control(CacheClass::PublicRead, asker, 200, false),
                Some(PRIVATE),
                "{asker:?}"
            );
        }
    }

    #[test]
    fn a_failed_public_read_is_not_cached() {
        assert_eq!(
            cache_control(CacheClass::PublicRead, ANONYMOUS, 404, false),
            Some(PRIVATE)
        );
        assert_eq!(
            cache_control(CacheClass::PublicRead, ANONYMOUS, 429, false),
            Some(PRIVATE)
        );
    }

    #[test]
    fn anything_that_sets_a_cookie_is_private_whatever_the_route() {
        for class in [
            CacheClass::Video,
            CacheClass::Web,
            CacheClass::PublicRead,
            CacheClass::Private,
        ] {
            assert_eq!(cache_control(class, ANONYMOUS, 200, true), Some(PRIVATE), "{class:?}");
        }
    }

    #[test]
    fn private_routes_are_private_even_when_asked_anonymously() {
        assert_eq!(cache_control(CacheClass::Private, ANONYMOUS, 200, false), Some(PRIVATE));
    }

    #[test]
    fn video_keeps_the_lifetime_its_handler_set() {
        assert_eq!(cache_control(CacheClass::Video, ANONYMOUS, 200, false), None);
        let signed_in = Asker {
            cookie: true,
            ..ANONYMOUS
        };
        assert_eq!(cache_control(CacheClass::Video, signed_in, 200, false), None);
    }

    #[test]
    fn video_tags_name_the_stream_and_the_broadcast() {
        assert_eq!(video_tags("s1", Some("b2")), "stream-s1,broadcast-b2");
        assert_eq!(video_tags("s1", None), "stream-s1");
    }
}
