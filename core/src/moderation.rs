//! Reports and operator acts (issue 26): what a viewer may report and why, what an operator must say when acting,
//! and how a report is closed. The Worker's `functions/src/admin.rs` carries them out and writes the audit rows.

use crate::chat::MessageId;
use crate::error::{ApiError, FieldErrors};
use crate::ids::looks_like_id;

/// What a report is about. `target_id` is the stream's, broadcast's or clip's id, or `<stream id>/<message id>` for
/// a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    Stream,
    Broadcast,
    Clip,
    ChatMessage,
}

impl TargetType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stream" => Some(Self::Stream),
            "broadcast" => Some(Self::Broadcast),
            "clip" => Some(Self::Clip),
            "chat_message" => Some(Self::ChatMessage),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Broadcast => "broadcast",
            Self::Clip => "clip",
            Self::ChatMessage => "chat_message",
        }
    }
}

/// The short list a reporter picks from (the D1 column checks the same list).
pub const REPORT_REASONS: [&str; 7] = ["spam", "harassment", "hate", "violence", "sexual", "illegal", "other"];

/// A report as filed: every field checked, all problems reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    pub target_type: TargetType,
    pub target_id: String,
    pub reason: &'static str,
}

impl NewReport {
    pub fn parse(target_type: Option<&str>, target_id: Option<&str>, reason: Option<&str>) -> Result<Self, ApiError> {
        let mut fields = FieldErrors::new();
        let kind = match target_type.map(TargetType::parse) {
            Some(Some(kind)) => Some(kind),
            Some(None) => {
                fields.insert(
                    "target_type".into(),
                    "must be stream, broadcast, clip or chat_message".into(),
                );
                None
            }
            None => {
                fields.insert("target_type".into(), "is required".into());
                None
            }
        };
        // Only presence and length here: an id of the wrong shape names nothing, which is a 404 (`names_something`),
        // not a malformed request.
        let id = match target_id.map(str::trim) {
            None | Some("") => {
                fields.insert("target_id".into(), "is required".into());
                None
            }
            Some(id) if id.len() > 64 => {
                fields.insert("target_id".into(), "must be at most 64 characters".into());
                None
            }
            Some(id) => Some(id),
        };
        let why = match reason {
            Some(r) => match REPORT_REASONS.iter().find(|known| **known == r) {
                Some(known) => Some(*known),
                None => {
                    fields.insert("reason".into(), format!("must be one of {}", REPORT_REASONS.join(", ")));
                    None
                }
            },
            None => {
                fields.insert("reason".into(), "is required".into());
                None
            }
        };
        match (kind, id, why) {
            (Some(target_type), Some(id), Some(reason)) if fields.is_empty() => Ok(Self {
                target_type,
                target_id: id.to_string(),
                reason,
            }),
            _ => Err(ApiError::Invalid(fields)),
        }
    }

    /// Whether `target_id` has the shape of its type's ids (`<stream id>/<message id>` for a chat message): one that
    /// does not names nothing that could exist.
    pub fn names_something(&self) -> bool {
        match self.target_type {
            TargetType::Stream | TargetType::Broadcast | TargetType::Clip => looks_like_id(&self.target_id),
            TargetType::ChatMessage => self
                .target_id
                .split_once('/')
                .is_some_and(|(stream, message)| looks_like_id(stream) && MessageId::parse(message).is_some()),
        }
    }

    /// The stream the target belongs to, when the id says (a stream, a chat message).
    pub fn stream_id(&self) -> Option<&str> {
        match self.target_type {
            TargetType::Stream => Some(&self.target_id),
            TargetType::ChatMessage => self.target_id.split_once('/').map(|(s, _)| s),
            TargetType::Broadcast | TargetType::Clip => None,
        }
    }
}

/// Why an operator acted: required, 1-500 characters once trimmed. It goes to the audit table as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorReason(String);

pub const OPERATOR_REASON_MAX: usize = 500;

impl OperatorReason {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        let s = s.map(str::trim).unwrap_or_default();
        if s.is_empty() {
            return Err(ApiError::invalid("reason", "is required: say why, for the audit"));
        }
        if s.chars().count() > OPERATOR_REASON_MAX {
            return Err(ApiError::invalid(
                "reason",
                format!("must be at most {OPERATOR_REASON_MAX} characters"),
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How an operator closed a report: what was done about it (the act itself has its own audit row).
pub const RESOLUTIONS: [&str; 4] = ["no_action", "stream_ended", "user_suspended", "content_deleted"];

pub fn parse_resolution(s: Option<&str>) -> Result<&'static str, ApiError> {
    s.and_then(|s| RESOLUTIONS.iter().find(|r| **r == s).copied())
        .ok_or_else(|| ApiError::invalid("resolution", format!("must be one of {}", RESOLUTIONS.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "abcdefghijkmnpqr";

    #[test]
    fn a_report_names_its_target_and_a_reason_from_the_list() {
        let r = NewReport::parse(Some("stream"), Some(STREAM), Some("spam")).unwrap();
        assert_eq!(
            (r.target_type, r.reason, r.stream_id()),
            (TargetType::Stream, "spam", Some(STREAM))
        );
        let m = NewReport::parse(Some("chat_message"), Some(&format!("{STREAM}/42")), Some("hate")).unwrap();
        assert_eq!(m.stream_id(), Some(STREAM));
        let b = NewReport::parse(Some("broadcast"), Some(STREAM), Some("other")).unwrap();
        assert_eq!(b.stream_id(), None);
    }

    #[test]
    fn a_bad_report_names_every_bad_field_at_once() {
        let Err(ApiError::Invalid(fields)) = NewReport::parse(Some("planet"), Some(""), Some("boring")) else {
            panic!("expected a validation error");
        };
        assert_eq!(fields.len(), 3, "{fields:?}");
        let Err(ApiError::Invalid(fields)) = NewReport::parse(None, None, None) else {
            panic!("expected a validation error");
        };
        assert_eq!(fields.len(), 3);
        assert!(NewReport::parse(Some("stream"), Some(&"a".repeat(65)), Some("spam")).is_err());
    }

    #[test]
    fn a_target_id_of_the_wrong_shape_names_nothing() {
        for bad in [STREAM, "abc/1", "abcdefghijkmnpqr/0", "abcdefghijkmnpqr/"] {
            let r = NewReport::parse(Some("chat_message"), Some(bad), Some("spam")).unwrap();
            assert!(!r.names_something(), "{bad}");
        }
        let r = NewReport::parse(Some("broadcast"), Some("x/1"), Some("spam")).unwrap();
        assert!(!r.names_something());
        let r = NewReport::parse(Some("chat_message"), Some(&format!("{STREAM}/7")), Some("spam")).unwrap();
        assert!(r.names_something());
    }

    #[test]
    fn an_operator_must_say_why_in_at_most_500_characters() {
        assert!(OperatorReason::parse(None).is_err());
        assert!(OperatorReason::parse(Some("   ")).is_err());
        assert!(OperatorReason::parse(Some(&"x".repeat(501))).is_err());
        assert_eq!(OperatorReason::parse(Some(" doxxing ")).unwrap().as_str(), "doxxing");
    }

    #[test]
    fn a_report_closes_with_a_known_resolution() {
        assert_eq!(parse_resolution(Some("stream_ended")).unwrap(), "stream_ended");
        assert!(parse_resolution(Some("banned_forever")).is_err());
        assert!(parse_resolution(None).is_err());
    }
}
