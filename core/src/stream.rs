//! Stream inputs: titles, descriptions and search text, as newtypes that exist only once checked.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, FieldErrors};

/// A stream's broadcast state: the `streams.status` column, the API's `status`, and what the chat room shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    Live,
    Offline,
}

impl StreamStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(StreamStatus::Live),
            "offline" => Some(StreamStatus::Offline),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            StreamStatus::Live => "live",
            StreamStatus::Offline => "offline",
        }
    }
}

fn has_control_chars(s: &str, allow_newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\r' || c == '\t')))
}

/// 1-128 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTitle(String);

impl StreamTitle {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let n = t.chars().count();
        if n == 0 {
            return Err("must not be empty".into());
        }
        if n > 128 {
            return Err("must be at most 128 characters long".into());
        }
        if has_control_chars(t, false) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At most 2000 characters; newlines allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription(String);

impl StreamDescription {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.chars().count() > 2000 {
            return Err("must be at most 2000 characters long".into());
        }
        if has_control_chars(t, true) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated create or update. For an update every field is optional; for a create the title is required.
#[derive(Debug, Default)]
pub struct StreamChanges {
    pub title: Option<StreamTitle>,
    pub description: Option<StreamDescription>,
}

impl StreamChanges {
    pub fn parse(title: Option<&str>, description: Option<&str>, title_required: bool) -> Result<Self, ApiError> {
        let mut fields = FieldErrors::new();
        let title = match title.map(StreamTitle::parse) {
            Some(Ok(t)) => Some(t),
            Some(Err(why)) => {
                fields.insert("title".into(), why);
                None
            }
            None if title_required => {
                fields.insert("title".into(), "is required".into());
                None
            }
            None => None,
        };
        let description = match description.map(StreamDescription::parse) {
            Some(Ok(d)) => Some(d),
            Some(Err(why)) => {
                fields.insert("description".into(), why);
                None
            }
            None => None,
        };
        if fields.is_empty() {
            Ok(Self { title, description })
        } else {
            Err(ApiError::Invalid(fields))
        }
    }
}

/// Search text turned into an FTS5 query that matches every word as a prefix, with user input quoted so FTS5
/// operators (`OR`, `NEAR`, `*`, `"`) in it are plain text. `None` when nothing searchable is left.
pub fn fts_query(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(|w| format!("\"{}\"*", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_trimmed_and_kept() {
        assert_eq!(
            StreamTitle::parse("  Speedrun night ").unwrap().as_str(),
            "Speedrun night"
        );
    }

    #[test]
    fn titles_that_are_empty_too_long_or_contain_controls_are_rejected() {
        for bad in ["", "   ", &"t".repeat(129), "bell\u{7}"] {
            assert!(StreamTitle::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn descriptions_may_have_newlines_but_not_2001_characters() {
        assert!(StreamDescription::parse("line one\nline two").is_ok());
        assert!(StreamDescription::parse(&"d".repeat(2001)).is_err());
    }

    #[test]
    fn a_create_without_a_title_is_invalid_but_an_update_is_not() {
        assert!(StreamChanges::parse(None, None, true).is_err());
        assert!(StreamChanges::parse(None, Some("x"), false).is_ok());
    }

    #[test]
    fn search_words_become_quoted_prefix_terms() {
        assert_eq!(fts_query("Speed RUN").unwrap(), "\"speed\"* \"run\"*");
        assert_eq!(fts_query("a\" OR \"b").unwrap(), "\"a\"* \"or\"* \"b\"*");
        assert!(fts_query("  ** ").is_none());
    }
}
