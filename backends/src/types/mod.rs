//! OpenAI-shaped chat (and embeddings) types shared by every backend, the router and the harness.
//!
//! Requests mirror OpenAI Chat Completions. Fields triage does not model (tools, tool_choice,
//! logit_bias, user, …) are kept in `extra` and forwarded to remote backends unchanged.
//!
//! Split by concern: `request` (what a client sends), `client_body` (the bytes it was parsed
//! from, for forwarding), `message` (conversation messages and
//! roles), `response` (a whole answer), `event` (what a stream yields), `logprobs` (token log-probabilities) and `signals` (a
//! model's confidence in its answer). Everything is re-exported here, so `types::ChatRequest`
//! and `backends::ChatRequest` name the same type.

mod client_body;
pub(crate) mod count;
mod embedding;
mod event;
mod logprobs;
mod message;
mod request;
mod response;
mod signals;

pub use client_body::ClientBody;
pub use embedding::{
    EmbeddingData, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage,
    EmbeddingVector, EncodingFormat,
};
pub use event::ChatEvent;
pub use logprobs::{content_object, content_of, TokenLogprob, TopLogprob, MAX_TOP_LOGPROBS};
pub use message::{ChatMessage, MessageContent, Role};
pub use request::{ChatRequest, JsonSchemaFormat, ResponseFormat, StopSequences, StreamOptions};
pub use response::{
    ChatResponse, Choice, FinishReason, FunctionCall, ResponseMessage, Timings, ToolCall, Usage,
};
pub use signals::Signals;
