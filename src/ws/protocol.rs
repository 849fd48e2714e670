//! The chat's JSON frames, both ways.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::rfc3339;
use crate::store::MessageRecord;

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Start receiving a room's messages; answered by `joined`.
    Join {
        /// Room name.
        room: String,
    },
    /// Stop receiving them.
    Leave {
        /// Room name.
        room: String,
    },
    /// Say something. Any `from` the client adds is ignored: the sender
    /// comes from the session.
    Message {
        /// Room name.
        room: String,
        /// The text.
        text: String,
    },
}

impl ClientFrame {
    /// Reads one text frame; the error is a sentence for the client that
    /// says what a frame looks like, never serde's internals.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_slice(raw);
        let frame: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let e = e.into_inner();
            if e.is_syntax() || e.is_eof() {
                return r#"Not a chat frame: frames are JSON objects like {"type":"join","room":"general"}."#
                    .to_owned();
            }
            if let Some(rest) = e.to_string().strip_prefix("unknown variant `") {
                let name = rest.split('`').next().unwrap_or_default();
                return format!("type: {name:?} is not a frame type; use join, leave or message.");
            }
            crate::http::describe_json_error("A frame", &field, &e)
        })?;
        de.end()
            .map_err(|_| "Not a chat frame: one JSON object per frame.".to_owned())?;
        Ok(frame)
    }
}

/// `Message` in the contract.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    id: String,
    room: String,
    from: Sender,
    text: String,
    sent_at: String,
}

#[derive(Debug, Serialize)]
struct Sender {
    id: String,
    username: String,
}

impl From<&MessageRecord> for MessageView {
    fn from(m: &MessageRecord) -> Self {
        Self {
            id: message_id(m.id),
            room: m.room.clone(),
            from: Sender {
                id: crate::domain::UserId::from_u64(m.from_id).to_string(),
                username: m.from_name.clone(),
            },
            text: m.text.clone(),
            sent_at: rfc3339(m.sent_at_ms),
        }
    }
}

/// The public form of a message id (what `before` takes).
pub fn message_id(id: u64) -> String {
    format!("{id:016x}")
}

/// Reads the public form back.
pub fn parse_message_id(raw: &str) -> Option<u64> {
    (raw.len() == 16).then(|| u64::from_str_radix(raw, 16).ok())?
}

/// `{"type":"message", ...Message}`.
pub fn message_frame(m: &MessageRecord) -> String {
    let mut value = serde_json::to_value(MessageView::from(m)).unwrap_or_default();
    value["type"] = json!("message");
    value.to_string()
}

/// `{"type":"joined","room","history":[Message]}`.
pub fn joined_frame(room: &str, history: &[MessageRecord]) -> String {
    let history: Vec<_> = history.iter().map(MessageView::from).collect();
    json!({ "type": "joined", "room": room, "history": history }).to_string()
}

/// `{"type":"error","code","message"}`: the socket stays open.
pub fn error_frame(code: &str, message: &str) -> String {
    json!({ "type": "error", "code": code, "message": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_extra_fields_are_ignored() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"message","room":"general","text":"hi","from":{"id":"x","username":"mallory"}}"#,
        )
        .unwrap();
        assert!(
            matches!(f, ClientFrame::Message { room, text } if room == "general" && text == "hi")
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout","room":"a"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"join"}"#).is_err());
    }

    #[test]
    fn message_ids_round_trip() {
        assert_eq!(parse_message_id(&message_id(42)), Some(42));
        assert_eq!(parse_message_id("42"), None);
    }
}
