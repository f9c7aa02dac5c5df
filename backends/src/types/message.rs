//! Conversation messages and roles, shared by requests (the conversation) and responses (the
//! assistant's role).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who wrote a message, as OpenAI names the roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the deployer.
    System,
    /// Instructions from the developer (OpenAI's newer name for `system`).
    Developer,
    /// The end user.
    User,
    /// The model's own earlier turns (text and tool calls).
    Assistant,
    /// A tool's result, answering the assistant's call with the same `tool_call_id`.
    Tool,
    /// A function's result (OpenAI's deprecated predecessor of `tool`).
    Function,
}

impl Role {
    /// The role's wire name (`system`, `user`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Function => "function",
        }
    }
}

/// One message of the conversation. `content` is a string, an array of parts, or null (an
/// assistant message that only carries tool calls). Other fields (name, tool_calls,
/// tool_call_id) are kept in `extra`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// The text or content parts; `None` for a tool-call-only assistant message.
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// Other message fields (`name`, `tool_calls`, `tool_call_id`, …), forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
    /// A plain-text message from `role`.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(MessageContent::Text(text.into())),
            extra: Map::new(),
        }
    }

    /// The message's text: the string, or its text parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(MessageContent::Text(s)) => s.clone(),
            Some(MessageContent::Parts(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

/// A message's `content`: a string or an array of typed parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts (`text`, `image_url`, …), kept as JSON.
    Parts(Vec<Value>),
}
