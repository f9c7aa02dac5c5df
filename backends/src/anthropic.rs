//! The Anthropic Messages backend (`POST {base_url}/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`).
//!
//! Clients speak OpenAI Chat Completions to triage, so this module translates both ways:
//!
//! - request: system and developer messages → `system`; user/assistant turns → `messages`
//!   (assistant `tool_calls` → `tool_use` blocks, `tool` messages → `tool_result` blocks,
//!   image URLs → image blocks); `stop` → `stop_sequences`; `max_tokens` (default
//!   [`DEFAULT_MAX_TOKENS`]); `temperature`, `top_p`, `top_k`; function `tools` and
//!   `tool_choice`; `user` → `metadata.user_id`; a JSON-schema `response_format` →
//!   `output_config.format`; triage's `choices` → the same, with a schema whose `answer` is an
//!   enum of the choices, unwrapped back to the bare choice ([`crate::choice_schema`]: the
//!   Messages API has no such field, and the answer must be the same question on every
//!   target). OpenAI-only fields Anthropic would reject (`logit_bias`,
//!   penalties, `seed`, …) are dropped; other unknown fields (e.g. `thinking`) are forwarded.
//! - response and stream events: text → content tokens, `tool_use` blocks and their
//!   `input_json_delta`s → tool-call deltas (server-side tools such as web search run at
//!   Anthropic and are not client tool calls, so they are skipped, as are thinking blocks),
//!   `message_delta` → finish reason and usage, `message_stop` → end, `ping` → nothing,
//!   `error` → a typed error. Stop reasons map to OpenAI's: `end_turn`/`stop_sequence` →
//!   `stop`, `max_tokens` → `length`, `tool_use` → `tool_calls`, `refusal` →
//!   `content_filter` (with the refusal explanation, when given, as refusal text).
//!   Usage: `prompt_tokens` = input + cache-creation + cache-read input tokens (OpenAI counts
//!   cached tokens inside `prompt_tokens`), `completion_tokens` = output tokens.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sse_stream::Sse;

use crate::remote::{
    self, snippet, status_error, status_for_error_type, AuthStyle, Extensions, RemoteClient,
    RemoteConfig, SseDecoder,
};
use crate::{
    choice_schema, unix_now, Backend, BackendError, ChatEvent, ChatMessage, ChatRequest,
    ChatResponse, Choice, EventStream, FinishReason, FunctionCall, MessageContent, ResponseFormat,
    ResponseMessage, Result, Role, ToolCall, Usage,
};

/// The API version header every request carries.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the Messages API; this is used when the client sent none.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// OpenAI request fields that the Messages API does not know and would reject.
const OPENAI_ONLY_FIELDS: &[&str] = &[
    "logit_bias",
    "frequency_penalty",
    "presence_penalty",
    "store",
    "modalities",
    "audio",
    "prediction",
    "reasoning_effort",
    "web_search_options",
    "service_tier",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "user",
    "tools",
    "tool_choice",
];

/// A backend speaking the Anthropic Messages API.
#[derive(Debug)]
pub struct AnthropicBackend {
    client: RemoteClient,
}

impl AnthropicBackend {
    /// Validate `config` and read the key (once) from `config.api_key_env`.
    pub fn new(config: RemoteConfig) -> Result<Self> {
        if config.extensions != Extensions::None {
            return Err(BackendError::Config(format!(
                "extensions: {} needs an OpenAI-protocol upstream (another `triage serve`); the \
                 Anthropic backend emulates `choices` with a JSON schema",
                config.extensions.as_str()
            )));
        }
        let client = RemoteClient::new(
            config,
            AuthStyle::Header("x-api-key"),
            &[("anthropic-version", ANTHROPIC_VERSION)],
        )?;
        Ok(Self { client })
    }

    pub fn config(&self) -> &RemoteConfig {
        self.client.config()
    }

    /// The Messages API body sent upstream for `request`.
    pub fn request_body(&self, request: &ChatRequest, stream: bool) -> Result<Value> {
        to_messages_request(request, &self.config().model, stream)
    }

    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<remote::Accepted> {
        let body = self.request_body(request, stream)?;
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| BackendError::InvalidRequest(format!("cannot encode request: {e}")))?;
        self.client.post_json("/messages", Bytes::from(bytes)).await
    }
}

impl Backend for AnthropicBackend {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let response = self
            .send(&request, false)
            .await?
            .into_response(parse_response)
            .await?;
        match &request.choices {
            Some(choices) => choice_schema::unwrap_response(response, choices),
            None => Ok(response),
        }
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream> {
        let accepted = self.send(&request, true).await?;
        let events = accepted.into_events(AnthropicDecoder::default());
        Ok(match request.choices {
            Some(choices) => choice_schema::unwrap_stream(events, choices),
            None => events,
        })
    }
}

/// Translate an OpenAI-shaped request into a Messages API body for `model`.
pub fn to_messages_request(request: &ChatRequest, model: &str, stream: bool) -> Result<Value> {
    if let Some(n) = request.n.filter(|n| *n > 1) {
        return Err(BackendError::InvalidRequest(format!(
            "the Anthropic Messages API returns one choice per request; n={n} is not supported"
        )));
    }
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        match message.role {
            Role::System | Role::Developer => system.push(message.text()),
            Role::User => push_turn(&mut messages, "user", user_content(message, i)?),
            Role::Assistant => {
                push_turn(&mut messages, "assistant", assistant_content(message, i)?)
            }
            Role::Tool | Role::Function => push_turn(
                &mut messages,
                "user",
                Value::Array(vec![tool_result(message, i)?]),
            ),
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "max_tokens".into(),
        json!(request.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), remote::f32_json(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), remote::f32_json(p));
    }
    if let Some(k) = request.top_k {
        body.insert("top_k".into(), json!(k));
    }
    let stops = request.stop_sequences();
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), json!(stops));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    if let Some(tools) = request.extra.get("tools").and_then(Value::as_array) {
        if !tools.is_empty() {
            body.insert("tools".into(), Value::Array(translate_tools(tools)?));
        }
    }
    let parallel = request
        .extra
        .get("parallel_tool_calls")
        .and_then(Value::as_bool);
    if let Some(choice) = translate_tool_choice(request.extra.get("tool_choice"), parallel)? {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(user) = request.extra.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(ResponseFormat::JsonSchema { json_schema }) = &request.response_format {
        body.insert(
            "output_config".into(),
            json!({ "format": { "type": "json_schema", "schema": json_schema.schema } }),
        );
    }
    if let Some(choices) = choice_schema::emulated_choices(request)? {
        body.insert(
            "output_config".into(),
            json!({ "format": { "type": "json_schema", "schema": choice_schema::schema(choices) } }),
        );
    }
    for (key, value) in &request.extra {
        if !OPENAI_ONLY_FIELDS.contains(&key.as_str()) && !body.contains_key(key) {
            body.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(body))
}

/// Append a turn. Consecutive turns of one role (tool results, then a user message) stay
/// separate messages: the Messages API combines consecutive same-role turns itself.
fn push_turn(messages: &mut Vec<Value>, role: &str, content: Value) {
    messages.push(json!({ "role": role, "content": content }));
}

fn user_content(message: &ChatMessage, i: usize) -> Result<Value> {
    match &message.content {
        None => Ok(json!("")),
        Some(MessageContent::Text(text)) => Ok(json!(text)),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .map(|part| translate_part(part, i))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
    }
}

/// OpenAI content parts → Anthropic blocks; blocks already in Anthropic shape pass through.
fn translate_part(part: &Value, i: usize) -> Result<Value> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({
            "type": "text",
            "text": part.get("text").and_then(Value::as_str).unwrap_or_default()
        })),
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    BackendError::InvalidRequest(format!(
                        "messages[{i}]: image_url part without a url"
                    ))
                })?;
            if let Some(rest) = url.strip_prefix("data:") {
                let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
                    BackendError::InvalidRequest(format!(
                        "messages[{i}]: image data URL is not base64 (data:<type>;base64,<data>)"
                    ))
                })?;
                Ok(json!({
                    "type": "image",
                    "source": { "type": "base64", "media_type": media_type, "data": data }
                }))
            } else {
                Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }))
            }
        }
        Some(kind @ ("input_audio" | "file")) => Err(BackendError::InvalidRequest(format!(
            "messages[{i}]: content part type {kind:?} is not supported by the Anthropic backend"
        ))),
        _ => Ok(part.clone()),
    }
}

fn assistant_content(message: &ChatMessage, i: usize) -> Result<Value> {
    let calls = message
        .extra
        .get("tool_calls")
        .and_then(Value::as_array)
        .filter(|calls| !calls.is_empty());
    let Some(calls) = calls else {
        return user_content(message, i);
    };
    let mut blocks = Vec::new();
    let text = message.text();
    if !text.is_empty() {
        blocks.push(json!({ "type": "text", "text": text }));
    }
    for (j, call) in calls.iter().enumerate() {
        let function = call.get("function").cloned().unwrap_or(Value::Null);
        let arguments = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        let input: Value = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments).map_err(|e| {
                BackendError::InvalidRequest(format!(
                    "messages[{i}].tool_calls[{j}].function.arguments is not JSON: {e}"
                ))
            })?
        };
        blocks.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
            "name": function.get("name").and_then(Value::as_str).unwrap_or_default(),
            "input": input,
        }));
    }
    Ok(Value::Array(blocks))
}

fn tool_result(message: &ChatMessage, i: usize) -> Result<Value> {
    let id = message
        .extra
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            BackendError::InvalidRequest(format!(
                "messages[{i}]: tool message without tool_call_id"
            ))
        })?;
    Ok(json!({ "type": "tool_result", "tool_use_id": id, "content": message.text() }))
}

fn translate_tools(tools: &[Value]) -> Result<Vec<Value>> {
    tools
        .iter()
        .enumerate()
        .map(|(j, tool)| {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                // Already an Anthropic tool (custom or server tool): forward as is.
                return Ok(tool.clone());
            }
            let function = tool.get("function").ok_or_else(|| {
                BackendError::InvalidRequest(format!(
                    "tools[{j}]: function tool without `function`"
                ))
            })?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    BackendError::InvalidRequest(format!("tools[{j}].function has no name"))
                })?;
            let mut out = json!({
                "name": name,
                "input_schema": function
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
            });
            if let Some(description) = function.get("description") {
                out["description"] = description.clone();
            }
            Ok(out)
        })
        .collect()
}

fn translate_tool_choice(choice: Option<&Value>, parallel: Option<bool>) -> Result<Option<Value>> {
    let mut out = match choice {
        None => {
            if parallel == Some(false) {
                json!({ "type": "auto" })
            } else {
                return Ok(None);
            }
        }
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "required" => json!({ "type": "any" }),
            "none" => json!({ "type": "none" }),
            other => {
                return Err(BackendError::InvalidRequest(format!(
                    "tool_choice {other:?} is not one of auto, required, none"
                )))
            }
        },
        Some(object) => match object
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => json!({ "type": "tool", "name": name }),
            // Already Anthropic-shaped.
            None => object.clone(),
        },
    };
    if parallel == Some(false) && out.get("type").and_then(Value::as_str) != Some("none") {
        out["disable_parallel_tool_use"] = json!(true);
    }
    Ok(Some(out))
}

/// Anthropic stop reasons in OpenAI's words.
pub fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

/// Anthropic's usage object; fields absent in some events default to zero.
#[derive(Clone, Debug, Default, Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
}

impl AnthropicUsage {
    /// Later counts (from `message_delta`) replace earlier ones field by field.
    fn merge(&mut self, later: AnthropicUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    fn to_openai(&self) -> Usage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_creation = self.cache_creation_input_tokens.unwrap_or(0);
        let mut usage = Usage::new(
            self.input_tokens.unwrap_or(0) + cache_read + cache_creation,
            self.output_tokens.unwrap_or(0),
        );
        if cache_read > 0 {
            usage.extra.insert(
                "prompt_tokens_details".into(),
                json!({ "cached_tokens": cache_read }),
            );
        }
        if cache_creation > 0 {
            usage
                .extra
                .insert("cache_creation_input_tokens".into(), json!(cache_creation));
        }
        usage
    }
}

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_details: Option<Value>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// Parse a non-streaming Messages API body into an OpenAI-shaped response.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse> {
    let parsed: MessagesResponse = serde_json::from_slice(body).map_err(|e| {
        BackendError::Protocol(format!(
            "malformed Anthropic message body ({e}); body starts: {}",
            snippet(&String::from_utf8_lossy(body), 200)
        ))
    })?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &parsed.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.get_or_insert_with(String::new).push_str(
                block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: block
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    arguments: block
                        .get("input")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                },
            }),
            _ => {}
        }
    }
    let refusal = (parsed.stop_reason.as_deref() == Some("refusal"))
        .then(|| refusal_explanation(parsed.stop_details.as_ref()))
        .flatten();
    Ok(ChatResponse {
        id: parsed.id,
        object: "chat.completion".into(),
        created: unix_now(),
        model: parsed.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: Role::Assistant,
                content: text,
                refusal,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                extra: Map::new(),
            },
            finish_reason: parsed.stop_reason.as_deref().map(finish_reason),
            logprobs: None,
        }],
        usage: Some(parsed.usage.to_openai()),
        ..ChatResponse::default()
    })
}

fn refusal_explanation(stop_details: Option<&Value>) -> Option<String> {
    stop_details?
        .get("explanation")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Decode an Anthropic SSE body (chunks cut anywhere) into chat events.
pub fn decode_stream<S>(chunks: S) -> impl Stream<Item = Result<ChatEvent>> + Send
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    remote::decode_sse(chunks, AnthropicDecoder::default())
}

/// Reads Messages API stream events; `message_stop` is the terminal event.
#[derive(Default)]
struct AnthropicDecoder {
    usage: AnthropicUsage,
    /// Content block index → tool-call index, for `tool_use` blocks.
    tool_of_block: HashMap<u64, u32>,
    next_tool: u32,
}

impl SseDecoder for AnthropicDecoder {
    fn decode(&mut self, event: Sse, at: Instant, out: &mut Vec<ChatEvent>) -> Result<bool> {
        let Some(data) = event.data else {
            return Ok(false);
        };
        let data = data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            BackendError::Protocol(format!(
                "malformed JSON in an Anthropic stream data line ({e}): {}",
                snippet(data, 200)
            ))
        })?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                if let Some(usage) = value.get("message").and_then(|m| m.get("usage")) {
                    self.usage.merge(usage_from(usage, data)?);
                }
            }
            "content_block_start" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = value.get("content_block").cloned().unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !text.is_empty() {
                            out.push(token(text, at));
                        }
                    }
                    Some("tool_use") => {
                        let tool = self.next_tool;
                        self.next_tool += 1;
                        self.tool_of_block.insert(index, tool);
                        let arguments = match block.get("input") {
                            Some(Value::Object(map)) if !map.is_empty() => {
                                Value::Object(map.clone()).to_string()
                            }
                            _ => String::new(),
                        };
                        out.push(ChatEvent::ToolCallDelta {
                            choice: 0,
                            index: tool,
                            id: block.get("id").and_then(Value::as_str).map(str::to_string),
                            name: block
                                .get("name")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            arguments,
                            at,
                        });
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = value.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !text.is_empty() {
                            out.push(token(text, at));
                        }
                    }
                    Some("input_json_delta") => {
                        if let Some(tool) = self.tool_of_block.get(&index) {
                            let partial = delta
                                .get("partial_json")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            out.push(ChatEvent::ToolCallDelta {
                                choice: 0,
                                index: *tool,
                                id: None,
                                name: None,
                                arguments: partial.to_string(),
                                at,
                            });
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = value.get("usage") {
                    self.usage.merge(usage_from(usage, data)?);
                }
                let delta = value.get("delta");
                if let Some(stop) = delta
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    if stop == "refusal" {
                        if let Some(text) =
                            refusal_explanation(delta.and_then(|d| d.get("stop_details")))
                        {
                            out.push(ChatEvent::Refusal {
                                choice: 0,
                                text,
                                at,
                            });
                        }
                    }
                    out.push(ChatEvent::Done {
                        choice: 0,
                        finish_reason: finish_reason(stop),
                        at,
                    });
                }
                out.push(ChatEvent::Usage {
                    usage: self.usage.to_openai(),
                    at,
                });
            }
            "message_stop" => return Ok(true),
            "error" => {
                let error_type = value
                    .get("error")
                    .and_then(|e| e.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                return Err(status_error(
                    status_for_error_type(error_type),
                    None,
                    data.to_string(),
                ));
            }
            // `ping`, `content_block_stop`, and event types added after this was written.
            _ => {}
        }
        Ok(false)
    }

    fn truncated(&self) -> String {
        "Anthropic stream ended before its terminal `message_stop` event".into()
    }
}

fn token(text: &str, at: Instant) -> ChatEvent {
    ChatEvent::Token {
        choice: 0,
        text: text.to_string(),
        logprobs: Vec::new(),
        at,
    }
}

fn usage_from(value: &Value, data: &str) -> Result<AnthropicUsage> {
    serde_json::from_value(value.clone()).map_err(|e| {
        BackendError::Protocol(format!(
            "malformed usage in an Anthropic stream event ({e}): {}",
            snippet(data, 200)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StopSequences;

    #[test]
    fn translates_system_stop_tools_and_defaults() {
        let mut request = ChatRequest::user("auto", "What's the weather in SF?");
        request
            .messages
            .insert(0, ChatMessage::new(Role::System, "Be brief."));
        request
            .messages
            .insert(1, ChatMessage::new(Role::Developer, "Use Celsius."));
        request.stop = Some(StopSequences::One("\n\n".into()));
        request.temperature = Some(0.5);
        request.top_p = Some(0.9);
        request.choices = Some(vec!["a".into()]);
        request.extra.insert("logit_bias".into(), json!({"1": 2}));
        request
            .extra
            .insert("thinking".into(), json!({"type": "disabled"}));
        request.extra.insert("user".into(), json!("u-7"));
        request.extra.insert(
            "tools".into(),
            json!([{ "type": "function", "function": {
                "name": "get_weather", "description": "Weather lookup",
                "parameters": { "type": "object", "properties": { "city": { "type": "string" } } }
            }}]),
        );
        request
            .extra
            .insert("tool_choice".into(), json!("required"));
        let body = to_messages_request(&request, "claude-haiku-4-5", true).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 1024,
                "system": "Be brief.\n\nUse Celsius.",
                "messages": [{ "role": "user", "content": "What's the weather in SF?" }],
                "temperature": 0.5,
                "top_p": 0.9,
                "stop_sequences": ["\n\n"],
                "stream": true,
                "tools": [{ "name": "get_weather", "description": "Weather lookup",
                    "input_schema": { "type": "object", "properties": { "city": { "type": "string" } } } }],
                "tool_choice": { "type": "any" },
                "metadata": { "user_id": "u-7" },
                "thinking": { "type": "disabled" },
                // `choices` has no Messages API field: emulated with a strict schema.
                "output_config": { "format": { "type": "json_schema", "schema": {
                    "type": "object",
                    "properties": { "answer": { "type": "string", "enum": ["a"] } },
                    "required": ["answer"],
                    "additionalProperties": false
                } } }
            })
        );
    }

    #[test]
    fn translates_tool_turns() {
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "x",
            "max_tokens": 50,
            "messages": [
                { "role": "user", "content": "Weather in SF?" },
                { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "call_1", "type": "function",
                      "function": { "name": "get_weather", "arguments": "{\"city\":\"SF\"}" } } ] },
                { "role": "tool", "tool_call_id": "call_1", "content": "20C, sunny" },
                { "role": "user", "content": [{ "type": "text", "text": "And tomorrow?" }] }
            ]
        }))
        .unwrap();
        let body = to_messages_request(&request, "m", false).unwrap();
        assert_eq!(body["max_tokens"], 50);
        assert!(body.get("stream").is_none());
        assert_eq!(
            body["messages"],
            json!([
                { "role": "user", "content": "Weather in SF?" },
                { "role": "assistant", "content": [
                    { "type": "tool_use", "id": "call_1", "name": "get_weather", "input": { "city": "SF" } } ] },
                { "role": "user", "content": [
                    { "type": "tool_result", "tool_use_id": "call_1", "content": "20C, sunny" } ] },
                { "role": "user", "content": [ { "type": "text", "text": "And tomorrow?" } ] }
            ])
        );
    }

    #[test]
    fn rejects_what_cannot_be_translated() {
        let mut request = ChatRequest::user("x", "hi");
        request.n = Some(3);
        let err = to_messages_request(&request, "m", false).unwrap_err();
        assert!(err.to_string().contains("n=3"), "{err}");
        let request: ChatRequest = serde_json::from_value(json!({
            "messages": [{ "role": "tool", "content": "orphan" }]
        }))
        .unwrap();
        let err = to_messages_request(&request, "m", false).unwrap_err();
        assert!(err.to_string().contains("messages[0]"), "{err}");
    }

    #[test]
    fn stop_reasons_map_to_openai_finish_reasons() {
        assert_eq!(finish_reason("end_turn"), FinishReason::Stop);
        assert_eq!(finish_reason("stop_sequence"), FinishReason::Stop);
        assert_eq!(finish_reason("max_tokens"), FinishReason::Length);
        assert_eq!(finish_reason("tool_use"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("refusal"), FinishReason::ContentFilter);
        assert_eq!(
            finish_reason("pause_turn"),
            FinishReason::Other("pause_turn".into())
        );
    }
}
