//! The OpenAI-compatible backend: Chat Completions against `{base_url}/chat/completions`
//! (and embeddings against `{base_url}/embeddings`, forwarded as sent),
//! for OpenAI itself and every server that speaks its protocol (vLLM, llama-server, Ollama,
//! Groq, OpenRouter, another triage).
//!
//! Requests are forwarded as the client sent them (unknown fields and `response_format`
//! included) with these changes: `model` becomes the configured upstream model; the triage
//! extension `choices` travels as a top-level field to another `triage serve`
//! ([`Extensions::Triage`]) and is emulated for every other upstream with a strict JSON schema
//! whose answer is unwrapped back to the bare choice ([`crate::choice_schema`]); the llama.cpp
//! samplers `top_k`/`min_p` are dropped when the upstream is api.openai.com, which rejects them;
//! and streaming requests ask for the final usage chunk (`stream_options.include_usage`). The
//! conversation itself goes as the client's own bytes when the gateway kept them
//! ([`OpenAiBackend::request_bytes`]). Stream chunks become [`ChatEvent`]s: content tokens with
//! their log-probability entries (token, bytes, `top_logprobs`, as sent), refusal deltas, tool-call deltas, per-choice finish reasons and the
//! usage chunk; the stream must end with `data: [DONE]`. A triage gateway upstream settles a
//! streamed answer's cost only at its end and sends it in the usage chunk's extra `triage`
//! object (backend, route, escalated, cost); that object is kept in the usage event's
//! [`Usage::extra`] under [`TRIAGE_USAGE_KEY`], so a client (the benchmark harness) records the
//! settled cost rather than an estimate.

use std::time::Instant;

use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use sse_stream::Sse;

use crate::remote::{
    self, snippet, status_error, status_for_error_type, AuthStyle, Extensions, RemoteClient,
    RemoteConfig, SseDecoder,
};
use crate::{
    choice_schema, Backend, BackendError, ChatEvent, ChatRequest, ChatResponse, EmbeddingRequest,
    EmbeddingResponse, EventStream, FinishReason, Result, TokenLogprob, Usage,
};

/// Key in [`Usage::extra`] holding a triage gateway's `triage` object (its routing decision and
/// settled cost) from the usage chunk of a stream.
pub const TRIAGE_USAGE_KEY: &str = "triage";

/// A backend speaking OpenAI Chat Completions.
#[derive(Debug)]
pub struct OpenAiBackend {
    client: RemoteClient,
    /// The upstream is api.openai.com, which rejects the llama.cpp sampler fields.
    official: bool,
}

impl OpenAiBackend {
    /// Validate `config` and read the key (once) from `config.api_key_env`.
    pub fn new(config: RemoteConfig) -> Result<Self> {
        let official = reqwest::Url::parse(config.base_url.trim())
            .ok()
            .and_then(|url| {
                url.host_str()
                    .map(|h| h.eq_ignore_ascii_case("api.openai.com"))
            })
            .unwrap_or(false);
        let client = RemoteClient::new(config, AuthStyle::Bearer, &[])?;
        Ok(Self { client, official })
    }

    /// The configuration this backend was built with (upstream URL, model id, timeouts, retries).
    pub fn config(&self) -> &RemoteConfig {
        self.client.config()
    }

    /// The JSON body sent upstream for `request`.
    pub fn request_body(&self, request: &ChatRequest, stream: bool) -> Result<Value> {
        let mut body = serde_json::to_value(request)
            .map_err(|e| BackendError::InvalidRequest(format!("cannot encode request: {e}")))?;
        let Some(obj) = body.as_object_mut() else {
            return Err(BackendError::InvalidRequest(
                "request did not encode to a JSON object".into(),
            ));
        };
        obj.insert("model".into(), Value::String(self.config().model.clone()));
        // `f32` fields would otherwise go out as e.g. 0.699999988079071.
        for (field, value) in [
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            ("min_p", request.min_p),
        ] {
            if let Some(value) = value {
                obj.insert(field.into(), remote::f32_json(value));
            }
        }
        // `choices`: forwarded to a triage upstream as is (serialized above), emulated for a
        // plain one.
        if self.config().extensions == Extensions::None {
            obj.remove("choices");
            if let Some(choices) = choice_schema::emulated_choices(request)? {
                let format = serde_json::to_value(choice_schema::response_format(choices))
                    .map_err(|e| {
                        BackendError::InvalidRequest(format!("cannot encode request: {e}"))
                    })?;
                obj.insert("response_format".into(), format);
            }
        }
        if self.official {
            obj.remove("top_k");
            obj.remove("min_p");
        }
        if stream {
            obj.insert("stream".into(), Value::Bool(true));
            let options = obj.entry("stream_options").or_insert_with(|| json!({}));
            if !options.is_object() {
                *options = json!({});
            }
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), Value::Bool(true));
            }
        } else {
            obj.remove("stream");
            obj.remove("stream_options");
        }
        Ok(body)
    }

    /// [`Backend::chat_stream`], plus the upstream's response headers (lower-case names). The
    /// benchmark harness uses them to record the routing decision a gateway reports
    /// (`x-triage-backend`, `x-triage-route`, `x-triage-escalated`, `x-triage-cost-usd`).
    pub async fn chat_stream_with_headers(
        &self,
        request: ChatRequest,
    ) -> Result<(EventStream, Vec<(String, String)>)> {
        let accepted = self.send(&request, true).await?;
        let headers = accepted.headers();
        let events = accepted.into_events(OpenAiDecoder);
        Ok((self.unwrap_stream(&request, events), headers))
    }

    /// The choices whose emulated answers must be unwrapped (`None` for a triage upstream,
    /// which answers with the bare choice itself, or a request without `choices`).
    fn emulated<'a>(&self, request: &'a ChatRequest) -> Option<&'a [String]> {
        match self.config().extensions {
            Extensions::Triage => None,
            Extensions::None => request.choices.as_deref(),
        }
    }

    fn unwrap_stream(&self, request: &ChatRequest, events: EventStream) -> EventStream {
        match self.emulated(request) {
            Some(choices) => choice_schema::unwrap_stream(events, choices.to_vec()),
            None => events,
        }
    }

    /// The bytes sent upstream for `request`: [`Self::request_body`] serialized; when the
    /// request kept the client's body and its `messages` bytes can stand for the typed
    /// messages ([`crate::ClientBody::messages_json`]), the body is built from everything else
    /// and those bytes are spliced in as the `messages` value, so a long conversation is
    /// neither copied into a JSON tree nor escaped again. Either way the upstream receives the
    /// same JSON document.
    pub fn request_bytes(&self, request: &ChatRequest, stream: bool) -> Result<Vec<u8>> {
        let Some(messages) = request.client_body.messages_json(request.messages.len()) else {
            return serde_json::to_vec(&self.request_body(request, stream)?).map_err(encode_error);
        };
        let body = self.request_body(&request.without_messages(), stream)?;
        let Value::Object(fields) = body else {
            return Err(BackendError::InvalidRequest(
                "request did not encode to a JSON object".into(),
            ));
        };
        let mut out = Vec::with_capacity(messages.len() + 256);
        out.push(b'{');
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, key).map_err(encode_error)?;
            out.push(b':');
            if key == "messages" {
                out.extend_from_slice(messages.as_bytes());
            } else {
                serde_json::to_writer(&mut out, value).map_err(encode_error)?;
            }
        }
        out.push(b'}');
        Ok(out)
    }

    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<remote::Accepted> {
        let bytes = self.request_bytes(request, stream)?;
        self.client
            .post_json("/chat/completions", Bytes::from(bytes))
            .await
    }
}

impl OpenAiBackend {
    /// Forward an embeddings request to `{base_url}/embeddings` with `model` set to the
    /// configured upstream model; everything else (token-id inputs, `dimensions`,
    /// `encoding_format`, unknown fields) goes as the client sent it. The answer's `model` is
    /// the upstream's.
    pub async fn embeddings(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        let mut upstream = request.clone();
        upstream.model = self.config().model.clone();
        let bytes = serde_json::to_vec(&upstream)
            .map_err(|e| BackendError::InvalidRequest(format!("cannot encode request: {e}")))?;
        let body = self
            .client
            .post_json("/embeddings", Bytes::from(bytes))
            .await?
            .body()
            .await?;
        parse_embeddings(&body)
    }
}

fn encode_error(e: serde_json::Error) -> BackendError {
    BackendError::InvalidRequest(format!("cannot encode request: {e}"))
}

/// Parse an upstream `/embeddings` body.
pub fn parse_embeddings(body: &[u8]) -> Result<EmbeddingResponse> {
    serde_json::from_slice(body).map_err(|e| {
        BackendError::Protocol(format!(
            "malformed OpenAI embeddings body ({e}); body starts: {}",
            snippet(&String::from_utf8_lossy(body), 200)
        ))
    })
}

/// Parse a non-streaming Chat Completions body; the first choice's token log-probabilities
/// (when the upstream sent them) go to `token_logprobs`.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse> {
    let mut response: ChatResponse = serde_json::from_slice(body).map_err(|e| {
        BackendError::Protocol(format!(
            "malformed OpenAI chat completion body ({e}); body starts: {}",
            snippet(&String::from_utf8_lossy(body), 200)
        ))
    })?;
    if response.choices.is_empty() {
        return Err(BackendError::Protocol(format!(
            "OpenAI chat completion has no choices; body starts: {}",
            snippet(&String::from_utf8_lossy(body), 200)
        )));
    }
    response.token_logprobs = response
        .choices
        .iter()
        .find(|c| c.index == 0)
        .and_then(|c| c.logprobs.as_ref())
        .and_then(|l| l.get("content"))
        .and_then(Value::as_array)
        .map(|tokens| {
            tokens
                .iter()
                .filter_map(|t| t.get("logprob").and_then(Value::as_f64))
                .map(|l| l as f32)
                .collect()
        })
        .unwrap_or_default();
    Ok(response)
}

/// Decode an OpenAI SSE body (chunks cut anywhere) into chat events.
pub fn decode_stream<S>(chunks: S) -> impl Stream<Item = Result<ChatEvent>> + Send
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    remote::decode_sse(chunks, OpenAiDecoder)
}

impl Backend for OpenAiBackend {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let response = self
            .send(&request, false)
            .await?
            .into_response(parse_response)
            .await?;
        match self.emulated(&request) {
            Some(choices) => choice_schema::unwrap_response(response, choices),
            None => Ok(response),
        }
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream> {
        let accepted = self.send(&request, true).await?;
        Ok(self.unwrap_stream(&request, accepted.into_events(OpenAiDecoder)))
    }
}

/// Reads `chat.completion.chunk` events; `data: [DONE]` is the terminal event.
struct OpenAiDecoder;

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    /// A triage gateway's routing and settled cost, next to `usage`.
    #[serde(default)]
    triage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    logprobs: Option<ChunkLogprobs>,
    #[serde(default)]
    finish_reason: Option<FinishReason>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

#[derive(Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(Deserialize)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct ChunkLogprobs {
    #[serde(default)]
    content: Option<Vec<TokenLogprob>>,
}

impl SseDecoder for OpenAiDecoder {
    fn decode(&mut self, event: Sse, at: Instant, out: &mut Vec<ChatEvent>) -> Result<bool> {
        let Some(data) = event.data else {
            return Ok(false);
        };
        let trimmed = data.trim();
        if trimmed == "[DONE]" {
            return Ok(true);
        }
        if trimmed.is_empty() {
            return Ok(false);
        }
        if event.event.as_deref() == Some("error") {
            return Err(stream_error(serde_json::from_str(trimmed).ok(), trimmed));
        }
        let chunk: Chunk = serde_json::from_str(trimmed).map_err(|e| {
            BackendError::Protocol(format!(
                "malformed JSON in an OpenAI stream data line ({e}): {}",
                snippet(trimmed, 200)
            ))
        })?;
        if let Some(error) = chunk.error {
            return Err(stream_error(Some(json!({ "error": error })), trimmed));
        }
        for choice in chunk.choices {
            let index = choice.index;
            if let Some(delta) = choice.delta {
                let logprobs: Vec<TokenLogprob> =
                    choice.logprobs.and_then(|l| l.content).unwrap_or_default();
                match delta.content {
                    Some(text) if !text.is_empty() || !logprobs.is_empty() => {
                        out.push(ChatEvent::Token {
                            choice: index,
                            text,
                            logprobs,
                            at,
                        })
                    }
                    _ => {}
                }
                if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
                    out.push(ChatEvent::Refusal {
                        choice: index,
                        text,
                        at,
                    });
                }
                for call in delta.tool_calls.unwrap_or_default() {
                    let (name, arguments) = match call.function {
                        Some(f) => (f.name, f.arguments.unwrap_or_default()),
                        None => (None, String::new()),
                    };
                    out.push(ChatEvent::ToolCallDelta {
                        choice: index,
                        index: call.index,
                        id: call.id,
                        name,
                        arguments,
                        at,
                    });
                }
            }
            if let Some(finish_reason) = choice.finish_reason {
                out.push(ChatEvent::Done {
                    choice: index,
                    finish_reason,
                    stop_sequence: None,
                    at,
                });
            }
        }
        if let Some(mut usage) = chunk.usage {
            if let Some(triage) = chunk.triage.filter(Value::is_object) {
                usage.extra.insert(TRIAGE_USAGE_KEY.into(), triage);
            }
            out.push(ChatEvent::Usage { usage, at });
        }
        Ok(false)
    }

    fn truncated(&self) -> String {
        "OpenAI stream ended before its terminal `data: [DONE]` event".into()
    }
}

/// An error object sent inside a 200 stream, typed by its `type`/`code`.
fn stream_error(value: Option<Value>, raw: &str) -> BackendError {
    let error = value.as_ref().and_then(|v| v.get("error"));
    let kind = error
        .and_then(|e| e.get("type").and_then(Value::as_str))
        .or_else(|| error.and_then(|e| e.get("code").and_then(Value::as_str)))
        .unwrap_or("api_error");
    status_error(status_for_error_type(kind), None, raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::RemoteConfig;

    fn backend(base_url: &str) -> OpenAiBackend {
        OpenAiBackend::new(RemoteConfig::new(base_url, "gpt-4o-mini")).unwrap()
    }

    #[test]
    fn request_body_replaces_model_and_keeps_unknown_fields() {
        let mut request = ChatRequest::user("auto", "hi");
        request.choices = Some(vec!["yes".into(), "no".into()]);
        request.top_k = Some(40);
        request.min_p = Some(0.05);
        request
            .extra
            .insert("logit_bias".into(), json!({"50256": -100}));
        request.extra.insert("user".into(), json!("u-1"));
        request
            .metadata
            .get_or_insert_with(Default::default)
            .insert("team".into(), json!("a"));

        let official = backend("https://api.openai.com/v1");
        let body = official.request_body(&request, false).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["logit_bias"], json!({"50256": -100}));
        assert_eq!(body["user"], "u-1");
        assert_eq!(body["metadata"], json!({"team": "a"}));
        assert!(body.get("choices").is_none());
        assert!(body.get("top_k").is_none());
        assert!(body.get("min_p").is_none());
        assert!(body.get("stream").is_none());
        assert!(body.get("stream_options").is_none());

        // A plain upstream gets `choices` as a strict JSON schema.
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(
            body["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"],
            json!(["yes", "no"])
        );

        let local = backend("http://127.0.0.1:8080/v1");
        let body = local.request_body(&request, true).unwrap();
        assert_eq!(body["top_k"], 40);
        assert!(body.get("choices").is_none());
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[tokio::test]
    async fn a_gateways_settled_cost_stays_with_the_usage_event() {
        use futures::StreamExt;
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4},",
            "\"triage\":{\"backend\":\"slm\",\"cost_usd\":0.0001}}\n\n",
            ": triage backend=slm cost_usd=0.00010000 saved_usd=0.00000000\n\n",
            "data: [DONE]\n\n"
        );
        let chunks = futures::stream::iter([Ok(Bytes::from_static(body.as_bytes()))]);
        let events: Vec<ChatEvent> = decode_stream(chunks).map(|e| e.unwrap()).collect().await;
        let usage = events
            .iter()
            .find_map(|e| match e {
                ChatEvent::Usage { usage, .. } => Some(usage.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(usage.prompt_tokens, 3);
        assert_eq!(
            usage.extra[TRIAGE_USAGE_KEY],
            json!({"backend": "slm", "cost_usd": 0.0001})
        );
    }
}
