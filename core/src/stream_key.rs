//! Stream keys without key material at rest. A key is `sk_<stream id>_<mac>` where
//! `mac = base64url(HMAC-SHA256(server secret, "sunnylive-stream-key:v1:" + id + ":" + generation)[..24])`:
//! 192 bits of MAC. D1 holds only the generation counter, so the owner can see the key at any time, rotation is one
//! counter bump, and a deleted stream's key is dead with its row. Checking a key is one primary-key lookup.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ids::StreamId;

const MAC_BYTES: usize = 24;
const DOMAIN: &str = "sunnylive-stream-key:v1:";

fn mac(secret: &[u8], id: &StreamId, generation: i64) -> [u8; MAC_BYTES] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("BUG: HMAC accepts keys of any length");
    m.update(DOMAIN.as_bytes());
    m.update(id.as_str().as_bytes());
    m.update(b":");
    m.update(generation.to_string().as_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&full[..MAC_BYTES]);
    out
}

/// The key for `id` at `generation`.
pub fn derive(secret: &[u8], id: &StreamId, generation: i64) -> String {
    format!("sk_{}_{}", id, B64URL.encode(mac(secret, id, generation)))
}

/// A presented key split into the stream it names and its MAC, before any database lookup.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedKey {
    pub stream_id: StreamId,
    mac: Vec<u8>,
}

impl PresentedKey {
    /// `None` when the string cannot be a key at all (refused without touching D1).
    pub fn parse(key: &str) -> Option<Self> {
        let rest = key.strip_prefix("sk_")?;
        let (id, mac) = rest.split_once('_')?;
        let stream_id = StreamId::parse(id)?;
        let mac = B64URL.decode(mac).ok()?;
        (mac.len() == MAC_BYTES).then_some(Self { stream_id, mac })
    }

    /// Constant-time check against the stream's current generation.
    pub fn is_valid(&self, secret: &[u8], generation: i64) -> bool {
        bool::from(mac(secret, &self.stream_id, generation).as_slice().ct_eq(&self.mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"stream-key-secret";

    fn id() -> StreamId {
        StreamId::generate([4; 10])
    }

    #[test]
    fn a_derived_key_checks_out_at_its_generation() {
        let key = derive(SECRET, &id(), 0);
        let p = PresentedKey::parse(&key).unwrap();
        assert_eq!(p.stream_id, id());
        assert!(p.is_valid(SECRET, 0));
    }

    #[test]
    fn rotation_kills_the_old_key() {
        let old = PresentedKey::parse(&derive(SECRET, &id(), 0)).unwrap();
        assert!(!old.is_valid(SECRET, 1));
        assert_ne!(derive(SECRET, &id(), 0), derive(SECRET, &id(), 1));
    }

    #[test]
    fn a_key_made_with_another_secret_is_refused() {
        let p = PresentedKey::parse(&derive(b"other", &id(), 0)).unwrap();
        assert!(!p.is_valid(SECRET, 0));
    }

    #[test]
    fn the_key_carries_at_least_128_bits_of_mac() {
        let key = derive(SECRET, &id(), 7);
        let mac_part = key.splitn(3, '_').nth(2).unwrap();
        assert!(B64URL.decode(mac_part).unwrap().len() * 8 >= 128);
    }

    #[test]
    fn garbage_is_not_a_key() {
        for bad in [
            "",
            "sk_",
            "sk_abc_def",
            "live",
            "sk_aaaaaaaaaaaaaaaa_",
            "sk_aaaaaaaaaaaaaaaa_!!!!",
            "../etc",
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_key_for_one_stream_does_not_open_another() {
        let other = StreamId::generate([5; 10]);
        let key = derive(SECRET, &id(), 0);
        let forged = key.replace(id().as_str(), other.as_str());
        assert!(!PresentedKey::parse(&forged).unwrap().is_valid(SECRET, 0));
    }
}
