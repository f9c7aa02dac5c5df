//! The Anthropic Messages API request as clients send it to `POST /v1/messages`, typed so a
//! bad body is refused with the path of the field at fault (`messages[1].content[0]: unknown
//! variant `document`…`) before anything is routed.
//!
//! Only what triage can carry to every backend is modelled: text, images, `tool_use` and
//! `tool_result` blocks, custom tools and `tool_choice`. Block fields triage does not use
//! (`cache_control`, `citations`) are ignored; unknown top-level fields (`thinking`,
//! `service_tier`, …) are kept in `extra` and forwarded to remote backends, as the chat
//! endpoint does.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A `POST /v1/messages` body.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct MessagesRequest {
    /// A route name (`auto`), or a backend name.
    pub(crate) model: String,
    /// The conversation, oldest first; user and assistant turns.
    pub(crate) messages: Vec<InputMessage>,
    /// Most tokens to generate; the Messages API requires it.
    pub(crate) max_tokens: u32,
    /// The system prompt: a string or text blocks.
    #[serde(default)]
    pub(crate) system: Option<TextOrBlocks<TextBlock>>,
    /// Strings that end generation.
    #[serde(default)]
    pub(crate) stop_sequences: Option<Vec<String>>,
    /// Sampling temperature (0–1).
    #[serde(default)]
    pub(crate) temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub(crate) top_p: Option<f32>,
    /// Sample from the top K tokens only.
    #[serde(default)]
    pub(crate) top_k: Option<i32>,
    /// Tools the model may call.
    #[serde(default)]
    pub(crate) tools: Option<Vec<Tool>>,
    /// How the model must use the tools.
    #[serde(default)]
    pub(crate) tool_choice: Option<ToolChoice>,
    /// Whether the answer is streamed as server-sent events.
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    /// `user_id`, and triage's `task` hint.
    #[serde(default)]
    pub(crate) metadata: Option<Map<String, Value>>,
    /// Fields triage does not model, forwarded to remote backends unchanged.
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

/// One turn of the conversation.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct InputMessage {
    /// Who wrote it.
    pub(crate) role: InputRole,
    /// A string, or content blocks.
    pub(crate) content: TextOrBlocks<Block>,
}

/// The two roles of the Messages API (the system prompt is a field of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InputRole {
    /// The end user (and tool results).
    User,
    /// The model's earlier turns (text and tool calls).
    Assistant,
}

/// A field that is a plain string or an array of blocks.
#[derive(Clone, Debug)]
pub(crate) enum TextOrBlocks<T> {
    /// Plain text.
    Text(String),
    /// Typed blocks.
    Blocks(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TextOrBlocks<T> {
    /// By hand rather than `#[serde(untagged)]`: an untagged enum reports only "did not match
    /// any variant", while this names the bad block and what is wrong with it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Either<T> {
            type Value = TextOrBlocks<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content blocks")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TextOrBlocks::Text(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(TextOrBlocks::Text(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(TextOrBlocks::Blocks(blocks))
            }
        }
        deserializer.deserialize_any(Either(std::marker::PhantomData))
    }
}

/// A text block (the only block a system prompt may hold).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum TextBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
}

impl TextBlock {
    pub(crate) fn text(&self) -> &str {
        match self {
            TextBlock::Text { text } => text,
        }
    }
}

/// A content block of a turn.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, inline or by URL.
    Image {
        /// Where the image's bytes are.
        source: ImageSource,
    },
    /// A tool call the assistant made.
    ToolUse {
        /// The call's id, which its result names.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments (a JSON object).
        input: Value,
    },
    /// A tool's result, in a user turn.
    ToolResult {
        /// The id of the `tool_use` it answers.
        tool_use_id: String,
        /// The result: a string or text blocks.
        #[serde(default)]
        content: Option<TextOrBlocks<TextBlock>>,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
    },
}

/// An image block's source.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ImageSource {
    /// Base64 bytes with their media type.
    Base64 {
        /// `image/png`, `image/jpeg`, …
        media_type: String,
        /// The base64 data.
        data: String,
    },
    /// An image on the web.
    Url {
        /// Its URL.
        url: String,
    },
}

/// A tool definition: a custom (client) tool has a name and an input schema; server tools
/// (`web_search_…`, …) have another `type`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Tool {
    /// `custom` or absent for client tools; anything else is a server tool.
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
    /// The tool's name.
    pub(crate) name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// JSON schema of its input.
    #[serde(default)]
    pub(crate) input_schema: Option<Value>,
}

/// How the model must use the tools.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToolChoice {
    /// The model decides.
    Auto {
        /// At most one tool call.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// Some tool must be called.
    Any {
        /// At most one tool call.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// This tool must be called.
    Tool {
        /// The tool's name.
        name: String,
        /// At most one tool call.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// No tool may be called.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<MessagesRequest, String> {
        let text = v.to_string();
        let mut de = serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_strings_and_blocks_and_names_bad_blocks() {
        let ok = parse(serde_json::json!({"model": "auto", "max_tokens": 5,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]}],
            "thinking": {"type": "disabled"}}))
        .unwrap();
        assert_eq!(ok.messages.len(), 3);
        assert!(ok.extra.contains_key("thinking"));
        let err = parse(serde_json::json!({"model": "auto", "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "document"}]}]}))
        .unwrap_err();
        assert!(err.contains("messages[0].content[1]"), "{err}");
        assert!(err.contains("document"), "{err}");
        let err = parse(serde_json::json!({"model": "auto", "messages": []})).unwrap_err();
        assert!(err.contains("max_tokens"), "{err}");
        let err = parse(serde_json::json!({"model": "auto", "max_tokens": 1,
            "messages": [{"role": "system", "content": "x"}]}))
        .unwrap_err();
        assert!(err.contains("messages[0].role"), "{err}");
    }
}
