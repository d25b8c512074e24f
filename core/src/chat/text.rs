//! `ChatText`: the text of one chat message, trimmed, 1-500 characters, no control characters, kept exactly as sent
//! (never HTML-escaped: escaping is the renderer's job, and the contract promises the text back byte for byte).

use serde::{Deserialize, Deserializer, Serialize};

/// Longest chat message, in characters (Unicode scalar values), after trimming.
pub const MAX_CHAT_CHARS: usize = 500;

/// A chat message's text; exists only once checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ChatText(String);

/// Why a text was refused. Each maps to one error-frame code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTextError {
    /// Nothing left after trimming.
    Empty,
    /// More than `MAX_CHAT_CHARS` characters after trimming.
    TooLong,
    /// A control character (newline, tab, NUL, escape, ...) inside the text.
    ControlCharacter,
}

impl ChatText {
    pub fn parse(raw: &str) -> Result<Self, ChatTextError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(ChatTextError::Empty);
        }
        if text.chars().count() > MAX_CHAT_CHARS {
            return Err(ChatTextError::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(ChatTextError::ControlCharacter);
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Reading a stored or received message back goes through the same check, so a `ChatText` is always valid.
impl<'de> Deserialize<'de> for ChatText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ChatText::parse(&raw).map_err(|e| serde::de::Error::custom(format!("invalid chat text: {e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_kept_otherwise_as_sent() {
        let t = ChatText::parse("  <script>alert('x')</script> &amp; \u{1F600}  ").unwrap();
        assert_eq!(t.as_str(), "<script>alert('x')</script> &amp; \u{1F600}");
    }

    #[test]
    fn empty_or_blank_text_is_refused() {
        for raw in ["", "   ", "\u{3000}\u{2003}"] {
            assert_eq!(ChatText::parse(raw), Err(ChatTextError::Empty), "{raw:?}");
        }
    }

    #[test]
    fn five_hundred_characters_pass_and_five_hundred_and_one_do_not() {
        let ok = "\u{1F600}".repeat(MAX_CHAT_CHARS);
        assert!(ChatText::parse(&ok).is_ok(), "the limit counts characters, not bytes");
        let long = "a".repeat(MAX_CHAT_CHARS + 1);
        assert_eq!(ChatText::parse(&long), Err(ChatTextError::TooLong));
    }

    #[test]
    fn control_characters_inside_the_text_are_refused() {
        for raw in ["a\nb", "a\tb", "a\u{0}b", "a\u{1b}[31mb", "a\u{7f}b", "a\u{85}b"] {
            assert_eq!(ChatText::parse(raw), Err(ChatTextError::ControlCharacter), "{raw:?}");
        }
    }

    #[test]
    fn trailing_newlines_are_trimmed_rather_than_refused() {
        assert_eq!(ChatText::parse("hello\r\n").unwrap().as_str(), "hello");
    }

    #[test]
    fn deserializing_applies_the_same_rules() {
        assert!(serde_json::from_str::<ChatText>("\"  hi \"").is_ok());
        assert!(serde_json::from_str::<ChatText>("\"a\\u0000b\"").is_err());
    }
}
