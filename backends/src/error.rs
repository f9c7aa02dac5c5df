//! Typed backend errors. The router maps each kind to a decision (fallback, spill, 429) and the
//! gateway maps it to an OpenAI-shaped error body with the right HTTP status.

use std::path::PathBuf;
use std::time::Duration;

/// Which phase of a remote call timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Establishing the TCP/TLS connection.
    Connect,
    /// Waiting for the response headers after sending the request.
    FirstByte,
    /// The gap between two chunks of a stream.
    Idle,
    /// The whole-request deadline.
    Total,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first byte",
            TimeoutPhase::Idle => "idle gap between chunks",
            TimeoutPhase::Total => "total deadline",
        })
    }
}

/// Everything that can go wrong answering a request, each kind mapped to an HTTP status
/// ([`BackendError::http_status`]) and a ledger code ([`BackendError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The request is invalid for this backend (bad sampling parameter, bad schema, …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request asks for tool calls from a local model that cannot make them (a base model
    /// prompted with completion text); another backend of the chain may answer it.
    #[error("tools unsupported: {0}")]
    ToolsUnsupported(String),
    /// The backend cannot answer this kind of request (an encoder classifier asked for free
    /// text, or for labels none of its heads knows); another backend of the chain may.
    #[error("unsupported request: {0}")]
    Unsupported(String),
    /// The prompt does not fit in the context window of one sequence.
    #[error("prompt is {prompt_tokens} tokens but the context window holds {context_tokens} tokens per sequence")]
    PromptTooLong {
        /// Tokens in the rendered prompt.
        prompt_tokens: usize,
        /// Tokens one sequence's context holds (`context_per_slot`).
        context_tokens: usize,
    },
    /// The local engine's admission queue is full.
    #[error("local engine overloaded: admission queue of {capacity} requests is full")]
    Overloaded {
        /// Queued requests the engine admits before refusing (`queue_capacity`).
        capacity: usize,
    },
    /// A model file is missing, unreadable or not a valid GGUF.
    #[error("cannot load model {path}: {reason}")]
    ModelLoad {
        /// The model file as configured.
        path: PathBuf,
        /// What llama.cpp or the file system reported.
        reason: String,
    },
    /// The backend is still loading its model: retry later, or another backend may answer.
    #[error("{0}")]
    NotReady(String),
    /// The local engine failed while running.
    #[error("local engine error: {0}")]
    Engine(String),
    /// The upstream answered 429 (or 529 overloaded) after every retry.
    #[error("rate limited by upstream (status {status}){}", retry_after.map(|d| format!(", retry after {:.3}s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        /// 429, or Anthropic's 529 "overloaded".
        status: u16,
        /// The wait the upstream asked for (`retry-after-ms` / `Retry-After`), if any.
        retry_after: Option<Duration>,
        /// The upstream's error body (at most 16 KiB of it, API key redacted).
        body: String,
    },
    /// The upstream answered a non-success status; `body` is its error body.
    #[error("upstream returned status {status}: {body}")]
    UpstreamStatus {
        /// The HTTP status (or the status an in-stream error `type` stands for).
        status: u16,
        /// The upstream's error body (API key redacted).
        body: String,
    },
    /// A phase of the call took longer than its configured limit.
    #[error("timed out waiting for {phase} after {after:?}")]
    Timeout {
        /// Which phase ran out of time.
        phase: TimeoutPhase,
        /// The limit that was exceeded (the configured timeout of that phase).
        after: Duration,
    },
    /// The upstream sent something that is not the protocol (bad JSON, truncated stream, …).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Could not connect, or the connection broke.
    #[error("connection error: {0}")]
    Connection(String),
    /// A configuration problem (missing key variable, bad URL, …).
    #[error("configuration error: {0}")]
    Config(String),
}

impl BackendError {
    /// The HTTP status a gateway should answer with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            BackendError::InvalidRequest(_)
            | BackendError::ToolsUnsupported(_)
            | BackendError::Unsupported(_)
            | BackendError::PromptTooLong { .. } => 400,
            BackendError::Overloaded { .. } | BackendError::RateLimited { .. } => 429,
            BackendError::UpstreamStatus { status, .. } if (400..500).contains(status) => *status,
            BackendError::Timeout { .. } => 504,
            BackendError::NotReady(_) => 503,
            BackendError::UpstreamStatus { .. }
            | BackendError::Protocol(_)
            | BackendError::Connection(_) => 502,
            BackendError::ModelLoad { .. } | BackendError::Engine(_) | BackendError::Config(_) => {
                500
            }
        }
    }

    /// The OpenAI error `type` for this error.
    pub fn openai_type(&self) -> &'static str {
        match self.http_status() {
            400 | 404 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            _ => "api_error",
        }
    }

    /// A short machine-readable code for ledgers and the OpenAI error `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            BackendError::InvalidRequest(_) => "invalid_request",
            BackendError::ToolsUnsupported(_) => "tools_unsupported",
            BackendError::Unsupported(_) => "unsupported_request",
            BackendError::PromptTooLong { .. } => "context_length_exceeded",
            BackendError::Overloaded { .. } => "overloaded",
            BackendError::ModelLoad { .. } => "model_load_failed",
            BackendError::NotReady(_) => "model_loading",
            BackendError::Engine(_) => "engine_error",
            BackendError::RateLimited { .. } => "rate_limited",
            BackendError::UpstreamStatus { .. } => "upstream_error",
            BackendError::Timeout { .. } => "timeout",
            BackendError::Protocol(_) => "protocol_error",
            BackendError::Connection(_) => "connection_error",
            BackendError::Config(_) => "config_error",
        }
    }

    /// Whether another backend might answer: the router falls back on these (a local model
    /// without tool calls included: a remote one may make them).
    pub fn is_upstream_failure(&self) -> bool {
        !matches!(
            self,
            BackendError::InvalidRequest(_) | BackendError::PromptTooLong { .. }
        )
    }
}

/// `std::result::Result` with [`BackendError`] as the default error.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;
