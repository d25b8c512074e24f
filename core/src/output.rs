//! Simulcast outputs: where the origin re-sends a live stream (another platform's RTMP or RTMPS ingest), as
//! newtypes that exist only once checked. The owner gives a name, the target's server URL and its stream key; the
//! key is write-only (the Worker stores it encrypted and shows a hint of its last characters). The origin's
//! supervisor reports each output's state (`OutputStatus`) back.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{ApiError, FieldErrors};

/// At most this many outputs per stream.
pub const MAX_OUTPUTS_PER_STREAM: usize = 5;
/// Limits of the three fields, in characters.
pub const NAME_MAX_CHARS: usize = 60;
pub const URL_MAX_LEN: usize = 512;
pub const KEY_MIN_LEN: usize = 8;
pub const KEY_MAX_LEN: usize = 512;
/// Characters of the key a hint shows (its end).
pub const KEY_HINT_LEN: usize = 4;
/// The longest status message kept.
pub const MESSAGE_MAX_CHARS: usize = 200;

/// 1-60 characters after trimming, no control characters ("YouTube", "Twitch backup").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputName(String);

impl OutputName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let n = t.chars().count();
        if n == 0 {
            return Err("must not be empty".into());
        }
        if n > NAME_MAX_CHARS {
            return Err(format!("must be at most {NAME_MAX_CHARS} characters long"));
        }
        if t.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A target's stream key: 8-512 printable ASCII characters without spaces (what platforms hand out: letters,
/// digits, `-_.`, and for some a `?query`). Never shown again once stored: only `hint` is.
#[derive(Clone, PartialEq, Eq)]
pub struct OutputKey(String);

impl std::fmt::Debug for OutputKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputKey(…{})", self.hint())
    }
}

impl OutputKey {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces".into());
        }
        if s.len() < KEY_MIN_LEN || s.len() > KEY_MAX_LEN {
            return Err(format!("must be {KEY_MIN_LEN}-{KEY_MAX_LEN} characters long"));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The last four characters: enough for the owner to tell keys apart, too few to use one.
    pub fn hint(&self) -> &str {
        &self.0[self.0.len() - KEY_HINT_LEN..]
    }
}

/// Whether private and loopback targets are accepted: only in development (the e2e suite pushes to receivers on
/// 127.0.0.1). In production they would let a streamer make the origin connect to its own network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPolicy {
    PublicOnly,
    AllowPrivate,
}

/// A target's server URL: `rtmp://` or `rtmps://`, a host, an optional port and an optional application path
/// (`rtmps://live-api-s.facebook.com:443/rtmp`, `rtmp://a.rtmp.youtube.com/live2`). No credentials, query or
/// fragment; with `TargetPolicy::PublicOnly` no loopback, private, link-local or otherwise internal host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputUrl(String);

impl OutputUrl {
    pub fn parse(s: &str, policy: TargetPolicy) -> Result<Self, String> {
        let s = s.trim();
        if s.len() > URL_MAX_LEN {
            return Err(format!("must be at most {URL_MAX_LEN} characters long"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces".into());
        }
        let lower = s.to_ascii_lowercase();
        let (scheme, rest) = if lower.starts_with("rtmp://") {
            ("rtmp", &s[7..])
        } else if lower.starts_with("rtmps://") {
            ("rtmps", &s[8..])
        } else {
            return Err("must start with rtmp:// or rtmps://".into());
        };
        if s.contains(['?', '#']) {
            return Err("must not have a query or fragment (the stream key goes in `key`)".into());
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err("must not contain credentials (user:password@)".into());
        }
        let (host, port) = split_host_port(authority).ok_or("must name a host (and optionally a port)")?;
        if port.is_some_and(|p| p == 0) {
            return Err("must have a port between 1 and 65535".into());
        }
        if path.split('/').any(|seg| seg == ".." || seg == ".") || path.contains("//") {
            return Err("must have a plain path".into());
        }
        if policy == TargetPolicy::PublicOnly && is_internal_host(&host) {
            return Err("must not point at a private, loopback or internal address".into());
        }
        // The scheme in lower case: the origin's supervisor picks TLS by it.
        Ok(Self(format!("{scheme}://{}", rest.trim_end_matches('/'))))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// (lower-case host, port) of `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u32>().ok().filter(|n| *n <= 65535)? as u16)
        }
        Some(_) => return None,
        None => None,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
    valid.then_some((host, port))
}

/// True for hosts a production origin must not connect to on a streamer's behalf: loopback, private, link-local,
/// shared (CGNAT), unspecified and multicast IPv4 addresses in any spelling the resolver accepts, every IPv6 literal
/// (platforms hand out host names; telling public from internal IPv6 takes a parser the Worker's upload budget
/// would rather not carry), and names that only mean something inside a network (`localhost`, `*.local`,
/// `*.internal`, single labels). A public name that resolves to a private address is not caught here (the Worker
/// does not resolve names).
pub fn is_internal_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.contains(':') {
        return true;
    }
    if let Some(v4) = loose_ipv4(&host) {
        return internal_v4(v4);
    }
    !host.contains('.')
        || host == "localhost"
        || [".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
}

fn internal_v4([a, b, ..]: [u8; 4]) -> bool {
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 224
}

/// An IPv4 address in any form `inet_aton` takes (`127.1`, `0x7f.0.0.1`, `2130706433`, `0177.0.0.1`): a resolver
/// would connect to it, so each is judged as the address it is. None when `host` is a name.
fn loose_ipv4(host: &str) -> Option<[u8; 4]> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let n = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()?
        } else {
            return None;
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) || *last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let mut value = *last;
    for (i, n) in head.iter().enumerate() {
        value |= n << (8 * (3 - i));
    }
    Some((value as u32).to_be_bytes())
}

/// A validated create (name, url and key required) or update (each optional).
#[derive(Debug, Default)]
pub struct OutputChanges {
    pub name: Option<OutputName>,
    pub url: Option<OutputUrl>,
    pub key: Option<OutputKey>,
    pub enabled: Option<bool>,
}

/// The raw fields of a create or update body.
#[derive(Debug, Default, Clone, Copy)]
pub struct OutputFields<'a> {
    pub name: Option<&'a str>,
    pub url: Option<&'a str>,
    pub key: Option<&'a str>,
    pub enabled: Option<bool>,
}

impl OutputChanges {
    pub fn parse(fields: OutputFields<'_>, required: bool, policy: TargetPolicy) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::new();
        fn take<T>(
            errors: &mut FieldErrors,
            field: &str,
            value: Option<&str>,
            required: bool,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Option<T> {
            match value.map(parse) {
                Some(Ok(v)) => Some(v),
                Some(Err(why)) => {
                    errors.insert(field.into(), why);
                    None
                }
                None if required => {
                    errors.insert(field.into(), "is required".into());
                    None
                }
                None => None,
            }
        }
        let name = take(&mut errors, "name", fields.name, required, OutputName::parse);
        let url = take(&mut errors, "url", fields.url, required, |s| {
            OutputUrl::parse(s, policy)
        });
        let key = take(&mut errors, "key", fields.key, required, OutputKey::parse);
        if errors.is_empty() {
            Ok(Self {
                name,
                url,
                key,
                enabled: fields.enabled,
            })
        } else {
            Err(ApiError::Invalid(errors))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.url.is_none() && self.key.is_none() && self.enabled.is_none()
    }
}

/// What the origin last reported about an output: `idle` (not running: the stream is offline, or the output is
/// disabled), `connecting` (started, not yet accepted by the target, or reconnecting after a drop), `live` (the
/// target takes the stream), `error` (the target refused or cannot be reached; retried with backoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStatus {
    Idle,
    Connecting,
    Live,
    Error,
}

impl OutputStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "idle" => Some(Self::Idle),
            "connecting" => Some(Self::Connecting),
            "live" => Some(Self::Live),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Error => "error",
        }
    }
}

/// A status report's message: control characters dropped, cut at 200 characters.
pub fn status_message(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MESSAGE_MAX_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Bytes of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
const SEALED_PREFIX: &str = "v1.";

/// The AES-256 key output keys are sealed under, derived from the `OUTPUT_KEY_SECRET` Worker secret (HMAC-SHA256
/// with a fixed label, so the secret itself is never a key of anything else).
pub fn sealing_key(secret: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("BUG: HMAC accepts keys of any length");
    m.update(b"sunnylive simulcast output keys v1");
    m.finalize().into_bytes().into()
}

/// A sealed key as stored (`key_sealed`): the version, then base64url of the nonce and the ciphertext with its tag
/// (base64, which the Worker carries anyway for stream keys, rather than a hex encoder of its own).
pub fn format_sealed(nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> String {
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(ciphertext);
    format!("{SEALED_PREFIX}{}", B64URL.encode(bytes))
}

/// The nonce and ciphertext of a stored sealed key; None when it is not one (a 16-byte tag at least).
pub fn parse_sealed(s: &str) -> Option<([u8; NONCE_LEN], Vec<u8>)> {
    let bytes = B64URL.decode(s.strip_prefix(SEALED_PREFIX)?).ok()?;
    if bytes.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    Some((nonce.try_into().ok()?, ciphertext.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: TargetPolicy = TargetPolicy::PublicOnly;
    const DEV: TargetPolicy = TargetPolicy::AllowPrivate;

    #[test]
    fn platform_ingest_urls_are_accepted_and_lose_their_trailing_slash() {
        for (url, kept) in [
            ("rtmp://a.rtmp.youtube.com/live2", "rtmp://a.rtmp.youtube.com/live2"),
            (
                "rtmps://live-api-s.facebook.com:443/rtmp/",
                "rtmps://live-api-s.facebook.com:443/rtmp",
            ),
            ("RTMP://live.twitch.tv/app", "rtmp://live.twitch.tv/app"),
            ("rtmp://ingest.example.net", "rtmp://ingest.example.net"),
        ] {
            assert_eq!(OutputUrl::parse(url, PUBLIC).unwrap().as_str(), kept);
        }
    }

    #[test]
    fn other_schemes_credentials_queries_and_odd_paths_are_refused() {
        for bad in [
            "http://a.rtmp.youtube.com/live2",
            "srt://x.example.net:9000",
            "rtmp:/x.example.net",
            "rtmp://user:pass@x.example.net/app",
            "rtmp://user@x.example.net/app",
            "rtmp://x.example.net/app?key=1",
            "rtmp://x.example.net/app#k",
            "rtmp://x.example.net/../app",
            "rtmp://x.example.net:0/app",
            "rtmp://x.example.net:99999/app",
            "rtmp://x.example.net:/app",
            "rtmp:///app",
            "rtmp://x .example.net/app",
            "rtmp://exa_mple.net/app",
            "",
        ] {
            assert!(OutputUrl::parse(bad, DEV).is_err(), "{bad:?} was accepted");
        }
        assert!(OutputUrl::parse(&format!("rtmp://x.example.net/{}", "a".repeat(500)), DEV).is_err());
    }

    #[test]
    fn private_and_loopback_targets_are_refused_in_production_and_allowed_in_development() {
        for host in [
            "127.0.0.1:1935",
            "localhost",
            "foo.localhost",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.10",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "[::1]",
            "[::ffff:127.0.0.1]:1935",
            "[fd00::1]",
            "[fe80::1]",
            "[2001:db8::1]",
            "printer.local",
            "metadata.google.internal",
            "intranet",
        ] {
            let url = format!("rtmp://{host}/app");
            assert!(OutputUrl::parse(&url, PUBLIC).is_err(), "{url} was accepted");
            assert!(OutputUrl::parse(&url, DEV).is_ok(), "{url} was refused in development");
        }
        for host in ["8.8.8.8", "172.32.0.1", "live.twitch.tv", "1.2.3.4:1935"] {
            let url = format!("rtmp://{host}/app");
            assert!(OutputUrl::parse(&url, PUBLIC).is_ok(), "{url} was refused");
        }
    }

    #[test]
    fn a_key_is_printable_without_spaces_and_shows_only_its_last_four_characters() {
        let key = OutputKey::parse("live_123456_abcdefWXYZ").unwrap();
        assert_eq!(key.hint(), "WXYZ");
        assert!(!format!("{key:?}").contains("abcdef"));
        assert!(OutputKey::parse("abcd-efgh-ijkl-mnop?s_bl=1&s_psc=1").is_ok());
        for bad in [
            "short",
            "has space in it",
            "new\nline-key",
            "ünïcödé-key",
            &"k".repeat(513),
        ] {
            assert!(OutputKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(OutputName::parse("  YouTube ").unwrap().as_str(), "YouTube");
        for bad in ["", "  ", &"n".repeat(61), "tab\there"] {
            assert!(OutputName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_create_needs_every_field_and_names_each_bad_one() {
        let Err(ApiError::Invalid(fields)) = OutputChanges::parse(OutputFields::default(), true, PUBLIC) else {
            panic!("an empty create was accepted");
        };
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["key", "name", "url"]);
        let update = OutputChanges::parse(
            OutputFields {
                enabled: Some(false),
                ..Default::default()
            },
            false,
            PUBLIC,
        )
        .unwrap();
        assert_eq!(update.enabled, Some(false));
        assert!(!update.is_empty());
    }

    #[test]
    fn a_sealed_key_reads_back_as_its_nonce_and_ciphertext_and_anything_else_is_refused() {
        let sealed = format_sealed(&[7; NONCE_LEN], &[1; 20]);
        assert!(sealed.starts_with("v1.BwcH"));
        assert_eq!(parse_sealed(&sealed), Some(([7; NONCE_LEN], vec![1; 20])));
        for bad in ["", "v1.", "v2.BwcH", "v1.!!", &format_sealed(&[7; NONCE_LEN], &[1; 15])] {
            assert!(parse_sealed(bad).is_none(), "{bad:?} was read");
        }
    }

    #[test]
    fn the_sealing_key_depends_on_the_secret() {
        assert_ne!(sealing_key(b"one secret"), sealing_key(b"another secret"));
        assert_eq!(sealing_key(b"one secret"), sealing_key(b"one secret"));
    }

    #[test]
    fn statuses_parse_from_their_names_and_messages_are_cleaned_and_cut() {
        for s in ["idle", "connecting", "live", "error"] {
            assert_eq!(OutputStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(OutputStatus::parse("LIVE").is_none());
        assert_eq!(status_message(" refused\n by target "), "refused by target");
        assert_eq!(status_message(&"m".repeat(300)).len(), MESSAGE_MAX_CHARS);
    }
}
