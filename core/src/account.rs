//! Account inputs as newtypes: a `Username`, `Password` or `Email` exists only once it has been checked.

use crate::error::{ApiError, FieldErrors};

/// 3-32 characters of `[A-Za-z0-9_.-]`. Compared case-insensitively for uniqueness (the D1 column is NOCASE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if !(3..=32).contains(&n) {
            return Err("must be 3 to 32 characters long".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("may contain only letters, digits, '_', '.' and '-'".into());
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8-128 characters. Never logged, never echoed; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n < 8 {
            return Err("must be at least 8 characters long".into());
        }
        if n > 128 {
            return Err("must be at most 128 characters long".into());
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A plausible e-mail address: one `@`, something on each side, a dot in the domain, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        // Characters, not bytes: the limit openapi.json states as maxLength, which counts characters.
        let ok = s.chars().count() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err("must be an e-mail address like name@example.com".into())
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated registration.
#[derive(Debug)]
pub struct Registration {
    pub username: Username,
    pub password: Password,
    pub email: Option<Email>,
}

impl Registration {
    /// Checks every field and reports all problems at once (422 with one entry per field).
    pub fn parse(username: Option<&str>, password: Option<&str>, email: Option<&str>) -> Result<Self, ApiError> {
        let mut fields = FieldErrors::new();
        let username = match username.map(Username::parse) {
            Some(Ok(u)) => Some(u),
            Some(Err(why)) => {
                fields.insert("username".into(), why);
                None
            }
            None => {
                fields.insert("username".into(), "is required".into());
                None
            }
        };
        let password = match password.map(Password::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(why)) => {
                fields.insert("password".into(), why);
                None
            }
            None => {
                fields.insert("password".into(), "is required".into());
                None
            }
        };
        let email = match email.filter(|e| !e.trim().is_empty()).map(Email::parse) {
            Some(Ok(e)) => Some(e),
            Some(Err(why)) => {
                fields.insert("email".into(), why);
                None
            }
            None => None,
        };
        match (username, password) {
            (Some(username), Some(password)) if fields.is_empty() => Ok(Self {
                username,
                password,
                email,
            }),
            _ => Err(ApiError::Invalid(fields)),
        }
    }
}

/// What stays of a deleted account where others' records need an author (issue 26): the owner of its streams
/// (kept, emptied, for the donations they received) and the author of its chat messages. A users row with this id
/// exists (migration 0010) under a name no one can register or sign in with; the id is the only one of its shape
/// minted by hand, and a random id equals it with probability 2^-80.
pub const DELETED_USER_ID: &str = "aaaaaaaaaaaaaaaa";
/// How chat and donation alerts show a deleted account.
pub const DELETED_USER_NAME: &str = "deleted user";
/// How long a deleted account's username cannot be registered again: long enough that the links, overlays and
/// donation habits of its audience have gone cold, so that no one can take the name to collect donations or speak
/// in its voice while people still trust it; short enough that a good name is not lost for good.
pub const USERNAME_QUARANTINE_DAYS: i64 = 180;

/// The key a quarantined username is stored under: HMAC-SHA256 of the lower-cased name under a server secret, hex.
/// Not the name itself (nothing naming a deleted person stays), and not a plain hash either: usernames are few
/// enough to guess, and without the secret a stored key tells nothing.
pub fn quarantine_key(secret: &[u8], username: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("BUG: HMAC accepts keys of any length");
    m.update(b"sunnylive-username-quarantine:v1:");
    m.update(username.to_ascii_lowercase().as_bytes());
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_with_allowed_characters_is_accepted() {
        assert!(Username::parse("sunny_live.id-1").is_ok());
    }

    #[test]
    fn usernames_outside_the_rules_are_rejected() {
        for bad in ["ab", "", "a b c", "héllo", "semi;colon", &"x".repeat(33), "<script>"] {
            assert!(Username::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn passwords_must_be_8_to_128_characters() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"p".repeat(128)).is_ok());
        assert!(Password::parse(&"p".repeat(129)).is_err());
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let p = Password::parse("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn emails_are_checked_loosely_but_checked() {
        assert!(Email::parse("a@b.co").is_ok());
        for bad in ["nope", "@b.co", "a@", "a@b", "a b@c.d", "a@@b.co"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_registration_reports_every_bad_field_at_once() {
        let Err(ApiError::Invalid(fields)) = Registration::parse(Some("x"), Some("short"), Some("bad")) else {
            panic!("expected a validation error");
        };
        assert_eq!(fields.len(), 3);
    }

    #[test]
    fn an_empty_email_counts_as_absent() {
        let r = Registration::parse(Some("alice"), Some("correct horse"), Some("")).unwrap();
        assert!(r.email.is_none());
    }

    #[test]
    fn a_quarantine_key_ignores_case_and_never_shows_the_name() {
        let k = quarantine_key(b"secret", "Alice_99");
        assert_eq!(k, quarantine_key(b"secret", "alice_99"));
        assert_ne!(k, quarantine_key(b"other secret", "alice_99"));
        assert_eq!(k.len(), 64);
        assert!(!k.contains("alice"));
    }

    #[test]
    fn the_deleted_user_is_an_id_no_one_can_sign_in_as() {
        assert!(crate::ids::looks_like_id(DELETED_USER_ID));
        assert!(Username::parse(DELETED_USER_NAME).is_err());
        assert!(Username::parse("[deleted]").is_err());
    }
}
