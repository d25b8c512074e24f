//! Stored password hashes in a self-describing format, `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`, so the
//! scheme or its cost can change later: a login that verifies against an older format is re-hashed (`needs_rehash`).
//! The derivation itself (PBKDF2 through WebCrypto, which is ~6x faster than wasm) is done by the caller.

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use subtle::ConstantTimeEq;

/// WebCrypto PBKDF2 iterations per password. Workers in production refuse more than `PBKDF2_PRODUCTION_CEILING`
/// (`wrangler dev` does not: a higher count would pass every local test and break every login once deployed).
pub const PBKDF2_ITERATIONS: u32 = 100_000;
/// The most PBKDF2 iterations workerd accepts in production.
pub const PBKDF2_PRODUCTION_CEILING: u32 = 100_000;
pub const SALT_LEN: usize = 16;
pub const HASH_LEN: usize = 32;

const SCHEME: &str = "pbkdf2-sha256";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPassword {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

impl StoredPassword {
    pub fn new(iterations: u32, salt: Vec<u8>, hash: Vec<u8>) -> Self {
        Self { iterations, salt, hash }
    }

    /// Reads the stored string. `None` for an unknown scheme or a damaged value.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('$');
        if parts.next()? != SCHEME {
            return None;
        }
        let iterations: u32 = parts.next()?.parse().ok()?;
        let salt = B64.decode(parts.next()?).ok()?;
        let hash = B64.decode(parts.next()?).ok()?;
        if parts.next().is_some() || iterations == 0 || salt.is_empty() || hash.is_empty() {
            return None;
        }
        Some(Self { iterations, salt, hash })
    }

    pub fn encode(&self) -> String {
        format!(
            "{SCHEME}${}${}${}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.hash)
        )
    }

    /// Constant-time comparison of a freshly derived hash with the stored one.
    pub fn matches(&self, derived: &[u8]) -> bool {
        self.hash.len() == derived.len() && bool::from(self.hash.as_slice().ct_eq(derived))
    }

    /// True when this hash was made with weaker parameters than today's: re-hash it on the next good login.
    pub fn needs_rehash(&self) -> bool {
        self.iterations < PBKDF2_ITERATIONS || self.salt.len() < SALT_LEN || self.hash.len() < HASH_LEN
    }
}

/// A fixed salt used to derive a throwaway hash when the username is unknown, so that an unknown user and a wrong
/// password cost the same time and answer the same 401.
pub const DUMMY_SALT: [u8; SALT_LEN] = *b"sunnylive-dummy!";

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = [0u8; HASH_LEN];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
        out.to_vec()
    }

    #[test]
    fn a_stored_hash_round_trips_through_its_text_form() {
        let s = StoredPassword::new(PBKDF2_ITERATIONS, vec![7; SALT_LEN], vec![9; HASH_LEN]);
        assert_eq!(StoredPassword::parse(&s.encode()), Some(s));
    }

    #[test]
    fn the_right_password_matches_and_a_wrong_one_does_not() {
        let salt = b"0123456789abcdef";
        let stored = StoredPassword::new(1000, salt.to_vec(), derive(b"correct horse", salt, 1000));
        assert!(stored.matches(&derive(b"correct horse", salt, 1000)));
        assert!(!stored.matches(&derive(b"correct horsf", salt, 1000)));
        assert!(!stored.matches(&[]));
    }

    #[test]
    fn rfc_7914_pbkdf2_sha256_vector_matches_the_format() {
        // RFC 7914 section 11: P="passwd", S="salt", c=1, dkLen=64; we keep the first 32 bytes.
        let derived = derive(b"passwd", b"salt", 1);
        assert_eq!(hex::encode(&derived[..8]), "55ac046e56e3089f");
    }

    #[test]
    fn the_iteration_count_stays_within_what_production_workers_accept() {
        // Deliberately a plain constant check: raising PBKDF2_ITERATIONS past the ceiling must fail here, on the
        // host, because nothing local would notice (wrangler dev derives any count) until every login broke.
        const { assert!(PBKDF2_ITERATIONS <= PBKDF2_PRODUCTION_CEILING) };
        assert_eq!(PBKDF2_PRODUCTION_CEILING, 100_000);
    }

    #[test]
    fn weaker_hashes_ask_to_be_rehashed() {
        assert!(StoredPassword::new(10_000, vec![0; SALT_LEN], vec![0; HASH_LEN]).needs_rehash());
        assert!(!StoredPassword::new(PBKDF2_ITERATIONS, vec![0; SALT_LEN], vec![0; HASH_LEN]).needs_rehash());
    }

    #[test]
    fn damaged_or_foreign_values_are_refused() {
        for bad in [
            "",
            "bcrypt$10$x$y",
            "pbkdf2-sha256$0$AA$AA",
            "pbkdf2-sha256$x$AA$AA",
            "pbkdf2-sha256$1$AA",
            "pbkdf2-sha256$1$AA$AA$AA",
        ] {
            assert!(StoredPassword::parse(bad).is_none(), "{bad:?} parsed");
        }
    }
}
