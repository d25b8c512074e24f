//! Opaque, URL-safe ids. New ids are made from random bytes the caller supplies (the worker draws them from
//! `crypto.getRandomValues`), so this module stays pure. Ids use a lowercase base32 alphabet: URL-safe, case-stable,
//! and free of `_`, which the stream-key format uses as its separator.

const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// Length of every id we mint: 16 symbols of 5 bits = 80 random bits.
pub const ID_LEN: usize = 16;

/// Random bytes needed to mint one id.
pub const ID_RANDOM_BYTES: usize = 10;

/// Encodes 10 random bytes as a 16-symbol id.
pub fn new_id(random: [u8; ID_RANDOM_BYTES]) -> String {
    let mut bits: u128 = 0;
    for b in random {
        bits = (bits << 8) | u128::from(b);
    }
    (0..ID_LEN)
        .rev()
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// True when `s` could be an id we minted. Anything else is "not found" without a database round trip.
pub fn looks_like_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Mints a fresh id from random bytes.
            pub fn generate(random: [u8; ID_RANDOM_BYTES]) -> Self {
                Self(new_id(random))
            }
            /// Accepts a string from outside (a path segment, a D1 row) when it has an id's shape.
            pub fn parse(s: &str) -> Option<Self> {
                looks_like_id(s).then(|| Self(s.to_string()))
            }
            /// Trusts a value read back from our own storage.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user's id (`sub` in access tokens).
    UserId
);
id_type!(
    /// A stream's public id: in URLs, HLS paths and the chat room's name.
    StreamId
);
id_type!(
    /// One broadcast of a stream (each accepted publish starts one): the origin's HLS directory name, the R2 prefix
    /// `hls/<stream id>/<broadcast id>/`, and a past broadcast's id in the API.
    BroadcastId
);
id_type!(
    /// A simulcast output of a stream (core/src/output.rs); also what ties a sealed output key to its row.
    OutputId
);
id_type!(
    /// A clip (core/src/clip.rs): its page `/clip/<id>` and its playlists under `/hls/<stream id>/clips/<id>/`.
    ClipId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_a_fixed_url_safe_shape() {
        let id = new_id([0xff; 10]);
        assert_eq!(id.len(), ID_LEN);
        assert!(looks_like_id(&id));
        assert_eq!(new_id([0; 10]), "aaaaaaaaaaaaaaaa");
    }

    #[test]
    fn different_random_bytes_give_different_ids() {
        assert_ne!(new_id([1; 10]), new_id([2; 10]));
    }

    #[test]
    fn strings_that_are_not_ids_are_refused() {
        for bad in [
            "",
            "short",
            "AAAAAAAAAAAAAAAA",
            "aaaaaaaaaaaaaaa_",
            "aaaaaaaaaaaaaaaaa",
            "../../etc/passwd",
        ] {
            assert!(StreamId::parse(bad).is_none(), "{bad:?} was accepted");
        }
    }
}
