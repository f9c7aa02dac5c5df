//! [`ChatEvent`]: what a backend's stream yields, each event stamped with the `Instant` it was
//! born at so latency is measured at the source.

use std::time::Instant;

use super::{FinishReason, Signals, TokenLogprob, Usage};

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
    /// Content text for one choice. `logprobs` holds an entry for each token in `text` when
    /// known (the local engine always knows; remotes when `logprobs` was asked for).
    Token {
        /// Which choice the text belongs to.
        choice: u32,
        /// The text delta (may be several tokens from a remote).
        text: String,
        /// Log-probability of each token in `text` (with its alternatives when asked for);
        /// empty when unknown.
        logprobs: Vec<TokenLogprob>,
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
        /// The request's stop string that ended it, when the backend says (the local engine
        /// always does; an Anthropic upstream reports its `stop_sequence`; OpenAI's wire has no
        /// such field). `None` for every other way of finishing.
        stop_sequence: Option<String>,
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
