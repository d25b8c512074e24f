//! Access tokens (JWT HS256 through `jsonwebtoken`) and refresh tokens (opaque random, stored as SHA-256).
//!
//! `jsonwebtoken` is built without a crypto backend: its `rust_crypto` backend links RSA (RUSTSEC-2023-0071) and
//! elliptic curves that HS256 never needs, which costs ~280 KB gzip in the Worker. Instead this module installs an
//! HS256-only provider on `hmac` + `sha2`, once, in `ensure_provider`, which every public function here calls first.

use std::sync::Once;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::UserId;

/// Access tokens live 15 minutes.
pub const ACCESS_TTL_SECONDS: i64 = 15 * 60;
/// A login (refresh-token family) lives 30 days from its last rotation.
pub const REFRESH_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// Random bytes in a refresh token or a token id.
pub const REFRESH_RANDOM_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

struct Hs256Signer(HmacSha256);
struct Hs256Verifier(HmacSha256);

impl signature::Signer<Vec<u8>> for Hs256Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl JwtSigner for Hs256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl signature::Verifier<Vec<u8>> for Hs256Verifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // `verify_slice` compares in constant time.
        mac.verify_slice(sig).map_err(signature::Error::from_source)
    }
}

impl JwtVerifier for Hs256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn signer_factory(alg: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    if *alg != Algorithm::HS256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let mac = HmacSha256::new_from_slice(key.as_bytes()).map_err(|_| ErrorKind::InvalidKeyFormat)?;
    Ok(Box::new(Hs256Signer(mac)))
}

fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    if *alg != Algorithm::HS256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let mac = HmacSha256::new_from_slice(key.try_get_as_bytes()?).map_err(|_| ErrorKind::InvalidKeyFormat)?;
    Ok(Box::new(Hs256Verifier(mac)))
}

static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs the HS256 provider before jsonwebtoken's first use (it locks in a panicking default otherwise).
fn ensure_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means a provider is already installed, which is the state we want.
        let _ = HS256_ONLY.install_default();
    });
}

/// The claims of an access token, exactly as the contract lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub name: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The login (refresh-token family) this token was issued for, so a logout with only this token can revoke
    /// that login and close its chat sockets. Absent from tokens issued before the claim existed (they expire
    /// within 15 minutes of a deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Signs and verifies access tokens with one secret.
///
/// Signing and verification go through `jsonwebtoken::crypto` (and so through the HS256 provider above). The
/// header is ours and fixed, `{"alg":"HS256","typ":"JWT"}`, and is parsed strictly on the way in: jsonwebtoken's
/// general `Header` type deserializes every JWK field a header may carry, which is ~40 KB of wasm we never need.
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Why a presented access token was refused (all of them answer the same 401; this is for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    Expired,
    BadSignature,
    WrongAlgorithm,
    Malformed,
}

/// The only header we issue or accept. Unknown members (`crit`, `jku`, `kid`, ...) are refused, not ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl AccessTokens {
    pub fn new(secret: &[u8]) -> Self {
        ensure_provider();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Issues a token for `user`'s login `login` at `now` (unix seconds). `jti_random` are random bytes for the
    /// token id.
    pub fn issue(
        &self,
        user: &UserId,
        username: &str,
        login: &UserId,
        now: i64,
        jti_random: [u8; 16],
    ) -> (String, AccessClaims) {
        let claims = AccessClaims {
            sub: user.as_str().to_string(),
            name: username.to_string(),
            iat: now,
            exp: now + ACCESS_TTL_SECONDS,
            jti: B64URL.encode(jti_random),
            sid: Some(login.as_str().to_string()),
        };
        let payload = serde_json::to_vec(&claims).expect("BUG: claims are plain data");
        let message = format!("{}.{}", B64URL.encode(HEADER_JSON), B64URL.encode(payload));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::HS256)
            .expect("BUG: HS256 signing with an HMAC key cannot fail");
        (format!("{message}.{signature}"), claims)
    }

    /// Verifies the header (HS256 only: `none` and every other algorithm are refused before any crypto), the
    /// signature (constant time), and expiry against `now` (unix seconds, passed in; no leeway).
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenRejection> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenRejection::Malformed);
        };
        let header: StrictHeader = B64URL
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(TokenRejection::Malformed)?;
        if header.alg != "HS256" || header.typ.as_deref().is_some_and(|t| t != "JWT") {
            return Err(TokenRejection::WrongAlgorithm);
        }
        let message_len = token.len() - signature.len() - 1;
        let valid = jsonwebtoken::crypto::verify(
            signature,
            &token.as_bytes()[..message_len],
            &self.decoding,
            Algorithm::HS256,
        )
        .map_err(|_| TokenRejection::Malformed)?;
        if !valid {
            return Err(TokenRejection::BadSignature);
        }
        let claims: AccessClaims = B64URL
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(TokenRejection::Malformed)?;
        if claims.exp <= now {
            return Err(TokenRejection::Expired);
        }
        if crate::ids::UserId::parse(&claims.sub).is_none()
            || claims
                .sid
                .as_deref()
                .is_some_and(|sid| crate::ids::UserId::parse(sid).is_none())
        {
            return Err(TokenRejection::Malformed);
        }
        Ok(claims)
    }
}

/// A refresh token as handed to the client, and the hash that is all we store of it.
pub struct NewRefreshToken {
    pub token: String,
    pub hash: String,
}

/// Makes a refresh token from 32 random bytes. Refresh tokens carry a `rt_` prefix so they can never be mistaken
/// for (or used as) an access token.
pub fn new_refresh_token(random: [u8; REFRESH_RANDOM_BYTES]) -> NewRefreshToken {
    let token = format!("rt_{}", B64URL.encode(random));
    let hash = hash_refresh_token(&token);
    NewRefreshToken { token, hash }
}

/// The stored form of a refresh token: hex SHA-256. (A fast hash is right here: the token is 256 random bits.)
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn user() -> UserId {
        UserId::generate([3; 10])
    }

    fn login() -> UserId {
        UserId::generate([4; 10])
    }

    fn tokens() -> AccessTokens {
        AccessTokens::new(b"test-secret-test-secret-test-secret")
    }

    #[test]
    fn an_issued_token_verifies_and_carries_the_contract_claims() {
        let (t, claims) = tokens().issue(&user(), "alice", &login(), NOW, [1; 16]);
        let back = tokens().verify(&t, NOW + 1).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.exp - back.iat, 900);
        assert_eq!(back.name, "alice");
        assert_eq!(back.sid.as_deref(), Some(login().as_str()), "the token names its login");
    }

    #[test]
    fn an_expired_token_is_refused() {
        let (t, _) = tokens().issue(&user(), "alice", &login(), NOW, [1; 16]);
        assert_eq!(
            tokens().verify(&t, NOW + ACCESS_TTL_SECONDS),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let (t, _) =
            AccessTokens::new(b"another-key-another-key-another!").issue(&user(), "alice", &login(), NOW, [1; 16]);
        assert_eq!(tokens().verify(&t, NOW), Err(TokenRejection::BadSignature));
    }

    #[test]
    fn alg_none_is_refused() {
        let header = B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = B64URL.encode(format!(
            r#"{{"sub":"{}","name":"a","iat":{NOW},"exp":{}, "jti":"x"}}"#,
            user(),
            NOW + 100
        ));
        let forged = format!("{header}.{body}.");
        assert!(tokens().verify(&forged, NOW).is_err());
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let (t, _) = tokens().issue(&user(), "alice", &login(), NOW, [1; 16]);
        let mut parts: Vec<&str> = t.split('.').collect();
        let evil = B64URL.encode(format!(
            r#"{{"sub":"{}","name":"root","iat":{NOW},"exp":{},"jti":"x"}}"#,
            user(),
            NOW + 900
        ));
        parts[1] = &evil;
        assert_eq!(
            tokens().verify(&parts.join("."), NOW),
            Err(TokenRejection::BadSignature)
        );
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token() {
        let r = new_refresh_token([5; 32]);
        assert!(tokens().verify(&r.token, NOW).is_err());
        assert!(r.token.starts_with("rt_"));
        assert_eq!(r.hash, hash_refresh_token(&r.token));
        assert_eq!(r.hash.len(), 64);
    }

    #[test]
    fn headers_with_members_we_do_not_understand_are_refused() {
        let (t, _) = tokens().issue(&user(), "alice", &login(), NOW, [1; 16]);
        let parts: Vec<&str> = t.split('.').collect();
        let header = B64URL.encode(br#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#);
        assert!(tokens()
            .verify(&format!("{header}.{}.{}", parts[1], parts[2]), NOW)
            .is_err());
    }

    #[test]
    fn tokens_with_extra_or_missing_parts_are_malformed() {
        let (t, _) = tokens().issue(&user(), "alice", &login(), NOW, [1; 16]);
        assert_eq!(tokens().verify(&format!("{t}.x"), NOW), Err(TokenRejection::Malformed));
        assert_eq!(
            tokens().verify(t.rsplit_once('.').unwrap().0, NOW),
            Err(TokenRejection::Malformed)
        );
    }

    #[test]
    fn hs384_headers_are_refused_even_with_the_right_key() {
        let (t, _) = tokens().issue(&user(), "alice", &login(), NOW, [1; 16]);
        let parts: Vec<&str> = t.split('.').collect();
        let header = B64URL.encode(br#"{"alg":"HS384","typ":"JWT"}"#);
        let forged = format!("{header}.{}.{}", parts[1], parts[2]);
        assert!(tokens().verify(&forged, NOW).is_err());
    }
}
