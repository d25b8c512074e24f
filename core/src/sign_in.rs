//! What a person sees of their own sign-ins, and the codes that let them back in without their password.
//!
//! A sign-in is shown by a coarse place only: the network it came from (an IPv4 /24 or an IPv6 /48, never a whole
//! address) and the family of its browser. Recovery codes are 60 random bits each, shown once and stored as SHA-256
//! (like refresh tokens: a fast hash is right for random secrets; guessing is stopped by the login limits).

use sha2::{Digest, Sha256};

/// How many recovery codes a set has.
pub const RECOVERY_CODES: usize = 10;
/// Random bytes behind one recovery code (the first 60 bits are used: twelve base32 characters).
pub const RECOVERY_RANDOM_BYTES: usize = 8;
/// RFC 4648 base32 in lower case: no 0 or 1 to misread as o or l.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters of a code, without its dashes.
const CODE_CHARS: usize = 12;

/// The coarse network of a client address: `203.0.113.0/24` or `2001:db8:1::/48`. An IPv4-mapped IPv6 address
/// counts as IPv4. `None` when the address does not parse (only possible without Cloudflare in front).
pub fn coarse_network(ip: &str) -> Option<String> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let v4 = |a: Ipv4Addr| {
        let [x, y, z, _] = a.octets();
        format!("{x}.{y}.{z}.0/24")
    };
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(v4(a)),
        IpAddr::V6(a) => Some(match a.to_ipv4_mapped() {
            Some(mapped) => v4(mapped),
            None => {
                let s = a.segments();
                format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        }),
    }
}

/// The browser family named by a `User-Agent`: one of a short, fixed list (never the header itself, which can
/// identify a person more than a family does). Order matters: Edge and Opera also say "Chrome", Chrome also says
/// "Safari".
pub fn browser_family(user_agent: &str) -> &'static str {
    const FAMILIES: [(&str, &str); 12] = [
        ("Edg/", "Edge"),
        ("EdgA/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chrome"),
        ("OBS/", "OBS"),
        ("curl/", "curl"),
    ];
    if let Some((_, family)) = FAMILIES.iter().find(|(needle, _)| user_agent.contains(needle)) {
        return family;
    }
    if user_agent.contains("Safari/") && user_agent.contains("Version/") {
        return "Safari";
    }
    if user_agent.trim().is_empty() {
        "Unknown"
    } else {
        "Other"
    }
}

/// A recovery code as typed by a person: any case, its groups of four with or without the dashes between them
/// (`ABCD-efgh-ijkl`, `abcdefghijkl`; the contract's pattern). `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

impl RecoveryCode {
    pub fn parse(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        let bytes = lower.as_bytes();
        let dashed = bytes.len() == CODE_CHARS + 2 && bytes[4] == b'-' && bytes[9] == b'-';
        let bare: String = if dashed {
            [&lower[..4], &lower[5..9], &lower[10..]].concat()
        } else {
            lower
        };
        if bare.len() == CODE_CHARS && bare.bytes().all(|b| ALPHABET.contains(&b)) {
            Ok(Self(bare))
        } else {
            Err("must be a recovery code like abcd-efgh-ijkl".into())
        }
    }

    /// The code made from `random` bytes (60 of their bits).
    pub fn generate(random: [u8; RECOVERY_RANDOM_BYTES]) -> Self {
        let bits = u64::from_be_bytes(random);
        let bare = (0..CODE_CHARS)
            .map(|i| ALPHABET[((bits >> (59 - 5 * i as u32)) & 31) as usize] as char)
            .collect();
        Self(bare)
    }

    /// As shown to the person: three groups of four, `abcd-efgh-ijkl`.
    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[..4], &self.0[4..8], &self.0[8..])
    }

    /// The stored form: hex SHA-256 of the bare code.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_client_is_shown_by_its_24() {
        assert_eq!(coarse_network("203.0.113.77").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(
            coarse_network("::ffff:198.51.100.9").as_deref(),
            Some("198.51.100.0/24")
        );
    }

    #[test]
    fn an_ipv6_client_is_shown_by_its_48() {
        assert_eq!(
            coarse_network("2001:db8:abcd:12:1:2:3:4").as_deref(),
            Some("2001:db8:abcd::/48")
        );
    }

    #[test]
    fn an_unparsable_address_has_no_place() {
        assert_eq!(coarse_network("local"), None);
        assert_eq!(coarse_network(""), None);
    }

    #[test]
    fn browsers_are_named_by_family_and_the_chrome_lookalikes_by_their_own() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(browser_family(chrome), "Chrome");
        assert_eq!(browser_family(&format!("{chrome} Edg/120.0")), "Edge");
        assert_eq!(browser_family(&format!("{chrome} OPR/105.0")), "Opera");
        assert_eq!(
            browser_family("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
            "Firefox"
        );
        assert_eq!(
            browser_family(
                "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
            ),
            "Safari"
        );
        assert_eq!(browser_family("reqwest/0.12"), "Other");
        assert_eq!(browser_family(""), "Unknown");
    }

    #[test]
    fn a_generated_code_parses_back_however_it_is_typed() {
        let code = RecoveryCode::generate([0xA5, 0x5A, 1, 2, 3, 4, 5, 6]);
        let shown = code.display();
        assert_eq!(shown.len(), 14);
        assert_eq!(RecoveryCode::parse(&shown), Ok(code.clone()));
        assert_eq!(RecoveryCode::parse(&shown.to_uppercase()), Ok(code.clone()));
        assert_eq!(RecoveryCode::parse(&shown.replace('-', "")), Ok(code));
    }

    #[test]
    fn different_random_bytes_make_different_codes_and_hashes() {
        let a = RecoveryCode::generate([1; 8]);
        let b = RecoveryCode::generate([2; 8]);
        assert_ne!(a, b);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn anything_not_shaped_like_a_code_is_refused() {
        for bad in [
            "",
            "abcd-efgh-ijk",
            "abcd-efgh-ijklm",
            "abcd-efgh-ij0l",
            "abcd_efgh_ijkl",
            "ábcd-efgh-ijkl",
            "abcd efgh ijkl",
            "abcd--efghijkl",
            "abcdefgh-ijkl",
        ] {
            assert!(RecoveryCode::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_code_never_shows_in_debug_output() {
        let code = RecoveryCode::generate([7; 8]);
        assert!(!format!("{code:?}").contains(&code.display()[..4]));
    }
}
