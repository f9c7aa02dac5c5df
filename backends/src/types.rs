//! OpenAI-shaped chat types shared by every backend, the router and the harness.
//!
//! Requests mirror OpenAI Chat Completions. Fields triage does not model (tools, tool_choice,
//! logit_bias, user, …) are kept in `extra` and forwarded to remote backends unchanged.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A chat completion request, as a client sends it to `/v1/chat/completions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// A route name (`auto`), a backend name, or the upstream model id.
    #[serde(default)]
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// llama.cpp extension (also accepted by vLLM and llama-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    /// llama.cpp extension (also accepted by vLLM and llama-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// triage extension: the answer must be exactly one of these strings. The local engine
    /// scores every choice and answers with the most probable one; another `triage serve`
    /// receives it as this field (`Extensions::Triage`); other remote APIs receive it as a
    /// strict JSON schema and their answer is unwrapped ([`crate::choice_schema`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Every field triage does not model, forwarded to remote backends unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// A request with one user message and everything else default.
    pub fn user(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            messages: vec![ChatMessage::new(Role::User, prompt)],
            ..Self::default()
        }
    }

    /// `max_completion_tokens` (the newer name) wins over `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn stop_sequences(&self) -> Vec<String> {
        match &self.stop {
            None => Vec::new(),
            Some(StopSequences::One(s)) => vec![s.clone()],
            Some(StopSequences::Many(v)) => v.clone(),
        }
    }

    /// Whether the client sent tools (kept in `extra`).
    pub fn has_tools(&self) -> bool {
        self.extra
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| !tools.is_empty())
    }

    /// The concatenated text of every message, for classifiers and detectors.
    pub fn all_text(&self) -> String {
        let mut out = String::new();
        for m in &self.messages {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&m.text());
        }
        out
    }
}

/// `stop` is a string or an array of strings on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenAI `response_format`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

impl Role {
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
    pub role: Role,
    #[serde(default)]
    pub content: Option<MessageContent>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<Value>),
}

/// Why generation of one choice ended. Unknown upstream values are kept as they came.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
    #[serde(untagged)]
    Other(String),
}

impl FinishReason {
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
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            extra: Map::new(),
        }
    }
}

/// A non-streaming chat completion, OpenAI-shaped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default = "chat_completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
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

    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.choices.first().and_then(|c| c.finish_reason.as_ref())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: ResponseMessage,
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub role: Role,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
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

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_string()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: String,
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

/// What a model knows about its own answer, computed where the answer is made: the numbers a
/// cascade can use to accept a small model's answer or escalate it (design notes, "Signals").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// For a `choices` request answered by scoring: every choice (as listed) with the model's
    /// probability of it as the complete answer, in request order; they sum to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_probs: Option<Vec<(String, f64)>>,
    /// Index in `choice_probs` of the emitted answer (the arg-max at temperature 0, a draw from
    /// the distribution otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<usize>,
    /// Mean log-probability of the freely chosen tokens (see `free_tokens`); `None` when there
    /// were none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f64>,
    /// Lowest log-probability among the freely chosen tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_logprob: Option<f64>,
    /// Generated tokens the model chose freely: all of them without a grammar; under a grammar
    /// (JSON schema) those where the grammar left a real choice — not when every token it
    /// allowed spells the same forced text (a key the schema demands, split one way or
    /// another). Forced tokens say nothing about the model's confidence, so the statistics
    /// leave them out. Zero for scored `choices`.
    #[serde(default)]
    pub free_tokens: u32,
}

impl Signals {
    /// Probability of the emitted choice (of the most probable one when `chosen` is unset).
    pub fn p_chosen(&self) -> Option<f64> {
        let probs = self.choice_probs.as_ref()?;
        match self.chosen {
            Some(i) => probs.get(i).map(|(_, p)| *p),
            None => probs.iter().map(|(_, p)| *p).reduce(f64::max),
        }
    }

    /// p1 − p2: how far the most probable choice is ahead of the runner-up (p1 with one choice).
    pub fn margin(&self) -> Option<f64> {
        let probs = self.choice_probs.as_ref()?;
        let (mut first, mut second) = (f64::NEG_INFINITY, 0.0f64);
        for &(_, p) in probs {
            if p > first {
                second = first.max(0.0);
                first = p;
            } else if p > second {
                second = p;
            }
        }
        first.is_finite().then_some(first - second)
    }
}

/// What a backend's stream yields. Every event carries the `Instant` it was born at, so TTFT and
/// inter-token latency are measured at the source, not where they are printed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ChatEvent {
    /// Response headers arrived (remote) or the request was admitted to a slot (local).
    FirstByte { at: Instant },
    /// Content text for one choice. `logprobs` holds the log-probability of each token in `text`
    /// when known (the local engine always knows; remotes when `logprobs` was asked for).
    Token {
        choice: u32,
        text: String,
        logprobs: Vec<f32>,
        at: Instant,
    },
    /// A refusal text delta.
    Refusal {
        choice: u32,
        text: String,
        at: Instant,
    },
    /// A piece of a tool call; `arguments` is appended to the call at `index`.
    ToolCallDelta {
        choice: u32,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
        at: Instant,
    },
    /// Token counts for the whole request.
    Usage { usage: Usage, at: Instant },
    /// Seconds of local engine compute attributed to this request (its share of each batched
    /// decode step), sent before `Done`; the router prices local answers with it.
    LocalCompute { busy_secs: f64, at: Instant },
    /// Confidence signals of the answer (local engine), sent before `Done`.
    Signals { signals: Signals, at: Instant },
    /// One choice finished.
    Done {
        choice: u32,
        finish_reason: FinishReason,
        at: Instant,
    },
}

impl ChatEvent {
    pub fn at(&self) -> Instant {
        match self {
            ChatEvent::FirstByte { at }
            | ChatEvent::Token { at, .. }
            | ChatEvent::Refusal { at, .. }
            | ChatEvent::ToolCallDelta { at, .. }
            | ChatEvent::Usage { at, .. }
            | ChatEvent::LocalCompute { at, .. }
            | ChatEvent::Signals { at, .. }
            | ChatEvent::Done { at, .. } => *at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_probs(probs: &[(&str, f64)], chosen: Option<usize>) -> Signals {
        Signals {
            choice_probs: Some(probs.iter().map(|(c, p)| (c.to_string(), *p)).collect()),
            chosen,
            ..Signals::default()
        }
    }

    #[test]
    fn p_chosen_is_the_emitted_choice_and_margin_the_lead_of_the_best() {
        let s = with_probs(&[("a", 0.2), ("b", 0.5), ("c", 0.3)], Some(1));
        assert_eq!(s.p_chosen(), Some(0.5));
        assert!((s.margin().unwrap() - 0.2).abs() < 1e-12);
        // A sampled answer that is not the arg-max: p_chosen is its own probability, the margin
        // still compares the two most probable choices.
        let sampled = with_probs(&[("a", 0.2), ("b", 0.5), ("c", 0.3)], Some(0));
        assert_eq!(sampled.p_chosen(), Some(0.2));
        assert!((sampled.margin().unwrap() - 0.2).abs() < 1e-12);
        // Without `chosen`, the arg-max.
        assert_eq!(
            with_probs(&[("a", 0.7), ("b", 0.3)], None).p_chosen(),
            Some(0.7)
        );
    }

    #[test]
    fn margin_handles_ties_one_choice_and_no_choices() {
        assert_eq!(
            with_probs(&[("a", 0.5), ("b", 0.5)], Some(0)).margin(),
            Some(0.0)
        );
        assert_eq!(with_probs(&[("only", 1.0)], Some(0)).margin(), Some(1.0));
        // Runner-up listed first.
        let s = with_probs(&[("a", 0.1), ("b", 0.6), ("c", 0.3)], Some(1));
        assert!((s.margin().unwrap() - 0.3).abs() < 1e-12);
        let free = Signals {
            mean_logprob: Some(-0.3),
            min_logprob: Some(-1.0),
            free_tokens: 4,
            ..Signals::default()
        };
        assert_eq!(free.p_chosen(), None);
        assert_eq!(free.margin(), None);
        assert_eq!(with_probs(&[], None).margin(), None);
    }

    #[test]
    fn signals_round_trip_through_json() {
        let s = Signals {
            choice_probs: Some(vec![("yes".into(), 0.75), ("no".into(), 0.25)]),
            chosen: Some(0),
            mean_logprob: None,
            min_logprob: None,
            free_tokens: 0,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Signals>(&json).unwrap(), s);
    }
}
