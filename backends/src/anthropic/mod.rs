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
//!
//! One file per direction: `request` (OpenAI request → Messages body), `response` (a whole
//! Messages body → OpenAI response, stop reasons, usage) and `stream` (Messages SSE events →
//! chat events). This file holds the backend itself and re-exports the public functions.

mod request;
mod response;
mod stream;

use bytes::Bytes;
use serde_json::Value;

pub use request::to_messages_request;
pub use response::{finish_reason, parse_response};
pub use stream::decode_stream;
use stream::AnthropicDecoder;

use crate::remote::{self, AuthStyle, Extensions, RemoteClient, RemoteConfig};
use crate::{choice_schema, Backend, BackendError, ChatRequest, ChatResponse, EventStream, Result};

/// The API version header every request carries.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the Messages API; this is used when the client sent none.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

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

    /// The configuration this backend was built with (upstream URL, model id, timeouts, retries).
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
