//! A non-streaming answer, OpenAI-shaped: [`ChatResponse`] with its choices, tool calls, finish
//! reason and token usage, plus the [`Timings`] measured where tokens are born (never serialized).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{count, Role, Signals};

/// Why generation of one choice ended. Unknown upstream values are kept as they came.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer or hit a stop string.
    Stop,
    /// `max_tokens` (or the context window) cut the answer.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The upstream withheld or refused content.
    ContentFilter,
    /// The model called a function (OpenAI's deprecated form of tool calls).
    FunctionCall,
    /// Any other reason an upstream reported, verbatim.
    #[serde(untagged)]
    Other(String),
}

impl FinishReason {
    /// The wire value (`stop`, `length`, `tool_calls`, …).
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::FunctionCall => "function_call",
            FinishReason::Other(s) => s,
        }
    }
}

/// Token counts, as OpenAI reports them. Extra detail objects are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt, cached ones included. Every count is read saturating: a negative,
    /// fractional or huge number from an upstream becomes the nearest `u32`.
    #[serde(deserialize_with = "count::deserialize")]
    pub prompt_tokens: u32,
    /// Tokens generated.
    #[serde(deserialize_with = "count::deserialize")]
    pub completion_tokens: u32,
    /// `prompt_tokens + completion_tokens`.
    #[serde(deserialize_with = "count::deserialize")]
    pub total_tokens: u32,
    /// Detail objects (`prompt_tokens_details`, …) and triage's own fields, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// Counts with `total_tokens` filled in and no details.
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            extra: Map::new(),
        }
    }

    /// These counts with OpenAI's `prompt_tokens_details.cached_tokens`: how many prompt tokens
    /// were served from a cache (an upstream's, or the local engine's prompt cache). Other
    /// prompt details already present are kept.
    pub fn with_cached_tokens(mut self, cached: u32) -> Self {
        let details = self
            .extra
            .entry("prompt_tokens_details")
            .or_insert_with(|| Value::Object(Map::new()));
        match details {
            Value::Object(map) => {
                map.insert("cached_tokens".into(), Value::from(cached));
            }
            other => *other = serde_json::json!({ "cached_tokens": cached }),
        }
        self
    }

    /// `prompt_tokens_details.cached_tokens`, when reported.
    pub fn cached_tokens(&self) -> Option<u32> {
        self.extra
            .get("prompt_tokens_details")?
            .get("cached_tokens")?
            .as_u64()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// A non-streaming chat completion, OpenAI-shaped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Completion id (`chatcmpl-…`).
    #[serde(default)]
    pub id: String,
    /// Always `chat.completion`.
    #[serde(default = "chat_completion_object")]
    pub object: String,
    /// Creation time, seconds since the Unix epoch.
    #[serde(default)]
    pub created: u64,
    /// The model that answered, as the backend names it.
    #[serde(default)]
    pub model: String,
    /// The answers, one per requested choice.
    pub choices: Vec<Choice>,
    /// Token counts, when the backend reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Other response fields (`system_fingerprint`, `service_tier`, …), kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Where tokens were born; never serialized.
    #[serde(skip)]
    pub timings: Timings,
    /// Log-probability of each generated token of the first choice, when the backend knows them
    /// (cascade confidence); never serialized.
    #[serde(skip)]
    pub token_logprobs: Vec<f32>,
    /// What the backend knows about its own answer (the local engine sends them); never
    /// serialized here — the router decides how to expose them.
    #[serde(skip)]
    pub signals: Option<Signals>,
}

fn chat_completion_object() -> String {
    "chat.completion".to_string()
}

impl ChatResponse {
    /// The first choice's text content (empty when there is none).
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .and_then(|c| c.message.content.as_deref())
            .unwrap_or("")
    }

    /// The first choice's finish reason, if it has one.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.choices.first().and_then(|c| c.finish_reason.as_ref())
    }
}

/// One answer of a response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position of this choice (0 unless `n` > 1).
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    pub message: ResponseMessage,
    /// Why generation of this choice ended.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// OpenAI's log-probability object for this choice, passed through as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// The request's stop string that ended this choice, when the backend said which (see
    /// `ChatEvent::Done`); never on OpenAI's wire, which has no such field — the Messages API
    /// reports it as `stop_sequence`.
    #[serde(skip)]
    pub stop_sequence: Option<String>,
}

/// The assistant message of a choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Always `assistant` in practice.
    pub role: Role,
    /// The answer text; `None` when the answer is only tool calls.
    #[serde(default)]
    pub content: Option<String>,
    /// The model's refusal text, when it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Tools the model called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Other message fields (annotations, audio, …), kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for ResponseMessage {
    fn default() -> Self {
        Self {
            role: Role::Assistant,
            content: None,
            refusal: None,
            tool_calls: None,
            extra: Map::new(),
        }
    }
}

/// A tool call of an assistant message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Id the tool's result refers back to (`tool_call_id`).
    #[serde(default)]
    pub id: String,
    /// The tool kind (`type` on the wire); always `function` here.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Which function and with what arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_string()
}

/// The function a tool call invokes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name, as declared in the request's `tools`.
    #[serde(default)]
    pub name: String,
    /// Arguments as a JSON text (possibly invalid: models write it).
    #[serde(default)]
    pub arguments: String,
}

/// When things happened for one request, measured where tokens are born.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// When the backend accepted the request.
    pub started: Option<Instant>,
    /// First byte of the upstream response (remote backends) or first decode (local).
    pub first_byte: Option<Instant>,
    /// First content token.
    pub first_token: Option<Instant>,
    /// Last event.
    pub finished: Option<Instant>,
    /// Seconds the local engine spent on this request (its share of batched decode steps).
    pub engine_busy_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_are_openai_prompt_details_and_keep_other_details() {
        let plain = Usage::new(10, 2);
        assert_eq!(plain.cached_tokens(), None);
        let cached = plain.clone().with_cached_tokens(7);
        assert_eq!(cached.cached_tokens(), Some(7));
        let wire = serde_json::to_value(&cached).unwrap_or_default();
        assert_eq!(wire["prompt_tokens_details"]["cached_tokens"], 7);
        assert_eq!(wire["prompt_tokens"], 10);

        let mut with_audio = plain;
        with_audio.extra.insert(
            "prompt_tokens_details".into(),
            serde_json::json!({ "audio_tokens": 3 }),
        );
        let both = with_audio.with_cached_tokens(4);
        assert_eq!(both.extra["prompt_tokens_details"]["audio_tokens"], 3);
        assert_eq!(both.cached_tokens(), Some(4));
    }
}
