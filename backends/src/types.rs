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
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Most tokens to generate (legacy name; see [`Self::max_output_tokens`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Most tokens to generate (current name; wins over `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature (OpenAI range 0–2; 0 is greedy on the local engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling: keep the smallest token set whose probability reaches this mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// llama.cpp extension (also accepted by vLLM and llama-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    /// llama.cpp extension (also accepted by vLLM and llama-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    /// Seed of the sampler's random draws, for reproducible sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Strings that end generation; not included in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    /// Whether the answer is streamed as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream settings (whether a final usage chunk is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Required output shape: free text, any JSON object, or a JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Whether token log-probabilities are returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many alternatives per token position to return with `logprobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Number of choices to generate (the local engine and Anthropic answer only 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// triage extension: the answer must be exactly one of these strings. The local engine
    /// scores every choice and answers with the most probable one; another `triage serve`
    /// receives it as this field (`Extensions::Triage`); other remote APIs receive it as a
    /// strict JSON schema and their answer is unwrapped ([`crate::choice_schema`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    /// OpenAI `metadata` key/values; the router reads its `task` key to pick the task.
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

    /// Whether the client asked for a stream (`stream: true`).
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The stop strings as a list, whichever wire form they came in (empty when none).
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
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

/// OpenAI `stream_options`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the request's token usage.
    #[serde(default)]
    pub include_usage: bool,
    /// Options triage does not model, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// OpenAI `response_format`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any syntactically valid JSON object.
    JsonObject,
    /// JSON matching the given schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// The `json_schema` object of a `json_schema` response format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// The schema's name (OpenAI requires one; informational elsewhere).
    #[serde(default)]
    pub name: String,
    /// The JSON schema the output must match.
    #[serde(default)]
    pub schema: Value,
    /// OpenAI strict mode: the output must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// What the output is for, shown to the model by OpenAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

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
    /// Tokens of the prompt, cached ones included.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// `prompt_tokens + completion_tokens`.
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
            total_tokens: prompt_tokens + completion_tokens,
            extra: Map::new(),
        }
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
    FirstByte {
        /// When it happened.
        at: Instant,
    },
    /// Content text for one choice. `logprobs` holds the log-probability of each token in `text`
    /// when known (the local engine always knows; remotes when `logprobs` was asked for).
    Token {
        /// Which choice the text belongs to.
        choice: u32,
        /// The text delta (may be several tokens from a remote).
        text: String,
        /// Log-probability of each token in `text`; empty when unknown.
        logprobs: Vec<f32>,
        /// When the text was produced.
        at: Instant,
    },
    /// A refusal text delta.
    Refusal {
        /// Which choice refused.
        choice: u32,
        /// The refusal text delta.
        text: String,
        /// When it arrived.
        at: Instant,
    },
    /// A piece of a tool call; `arguments` is appended to the call at `index`.
    ToolCallDelta {
        /// Which choice made the call.
        choice: u32,
        /// Position of the call in the choice's `tool_calls`.
        index: u32,
        /// The call's id (only on its first delta).
        id: Option<String>,
        /// The function's name (only on its first delta).
        name: Option<String>,
        /// Text to append to the call's JSON arguments.
        arguments: String,
        /// When it arrived.
        at: Instant,
    },
    /// Token counts for the whole request.
    Usage {
        /// The counts (prompt, completion, total, and any detail objects).
        usage: Usage,
        /// When the counts arrived.
        at: Instant,
    },
    /// Seconds of local engine compute attributed to this request (its share of each batched
    /// decode step), sent before `Done`; the router prices local answers with it.
    LocalCompute {
        /// Engine-busy seconds billed to this request.
        busy_secs: f64,
        /// When the share was reported.
        at: Instant,
    },
    /// Confidence signals of the answer (local engine), sent before `Done`.
    Signals {
        /// The answer's confidence numbers.
        signals: Signals,
        /// When they were computed.
        at: Instant,
    },
    /// One choice finished.
    Done {
        /// Which choice finished.
        choice: u32,
        /// Why it finished.
        finish_reason: FinishReason,
        /// When it finished.
        at: Instant,
    },
}

impl ChatEvent {
    /// When this event was born.
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
