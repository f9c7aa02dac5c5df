//! Shared HTTP machinery for the remote backends ([`crate::openai`], [`crate::anthropic`]).
//!
//! It owns what both upstream protocols have in common, so each protocol module only
//! translates bodies and events:
//!
//! - configuration ([`RemoteConfig`], [`Timeouts`], [`RetryPolicy`]) and the API key
//!   ([`ApiKey`]), read once from the environment and redacted in every `Debug`/`Display`;
//! - sending one request with retries: exponential back-off with full jitter on connection
//!   failures and on 408/429/500/502/503/504/529, honouring `retry-after-ms` and `Retry-After`
//!   (seconds or HTTP date) and `x-should-retry`; a request whose response headers arrived with
//!   a success status is never retried, so a stream handed to the caller is never replayed;
//! - the four timeout phases (connect, first byte, idle gap between chunks, total deadline),
//!   each reported as [`BackendError::Timeout`](crate::BackendError::Timeout) with its phase;
//! - turning a response body into [`ChatEvent`](crate::ChatEvent)s through the `sse-stream`
//!   decoder and a protocol-specific [`SseDecoder`]; a stream that ends before its terminal
//!   event is a [`BackendError::Protocol`](crate::BackendError::Protocol) error, never a silent
//!   truncation.
//!
//! One file per concern: `config` (the plain settings), `key` (the secret), `client` (the
//! attempt loop), `body` (reading an accepted response under the timers), `sse` (events),
//! `errors` (what a failure status means). Everything public is re-exported here, so callers
//! name `backends::remote::X` only.

mod body;
mod client;
mod config;
mod errors;
mod key;
mod sse;

pub(crate) use body::Accepted;
pub(crate) use client::RemoteClient;
pub use config::{Extensions, RemoteConfig, RetryPolicy, Timeouts};
pub use errors::{retry_after, RETRYABLE_STATUSES};
pub(crate) use errors::{status_error, status_for_error_type};
pub use key::ApiKey;
pub(crate) use key::AuthStyle;
pub use sse::{decode_sse, SseDecoder};

/// An `f32` as the JSON number a person would write (`0.7`, not `0.699999988079071`).
pub(crate) fn f32_json(x: f32) -> serde_json::Value {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// At most `max` characters of `text`, for error messages quoting upstream data.
pub(crate) fn snippet(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}
