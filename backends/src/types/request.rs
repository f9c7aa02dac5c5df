//! The request a client sends: [`ChatRequest`] and the option types of its fields (stop
//! strings, stream options, response format).
//!
//! Fields triage does not model (tools, tool_choice, logit_bias, user, …) are kept in `extra`
//! and forwarded to remote backends unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ChatMessage, ClientBody, MessageContent, Role};

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
    /// The body this request was parsed from, when the gateway kept it: a remote OpenAI
    /// backend forwards its `messages` bytes instead of re-serializing them
    /// ([`ClientBody`]). Never serialized. Code that changes `messages` after parsing must
    /// set it to [`ClientBody::none`].
    #[serde(skip)]
    pub client_body: ClientBody,
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

    /// A copy of everything but `messages` (left empty) and the client's body: what a remote
    /// backend needs to build the rest of its upstream body without copying the conversation.
    pub fn without_messages(&self) -> ChatRequest {
        ChatRequest {
            model: self.model.clone(),
            messages: Vec::new(),
            max_tokens: self.max_tokens,
            max_completion_tokens: self.max_completion_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            seed: self.seed,
            stop: self.stop.clone(),
            stream: self.stream,
            stream_options: self.stream_options.clone(),
            response_format: self.response_format.clone(),
            logprobs: self.logprobs,
            top_logprobs: self.top_logprobs,
            n: self.n,
            choices: self.choices.clone(),
            metadata: self.metadata.clone(),
            extra: self.extra.clone(),
            client_body: ClientBody::none(),
        }
    }

    /// The concatenated text of every message, for classifiers and detectors.
    pub fn all_text(&self) -> String {
        // One copy of each text (a long prompt is most of a request's bytes), sized once.
        let size = self
            .messages
            .iter()
            .map(|m| match &m.content {
                Some(MessageContent::Text(s)) => s.len() + 1,
                _ => 0,
            })
            .sum();
        let mut out = String::with_capacity(size);
        for m in &self.messages {
            if !out.is_empty() {
                out.push('\n');
            }
            match &m.content {
                Some(MessageContent::Text(s)) => out.push_str(s),
                _ => out.push_str(&m.text()),
            }
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
