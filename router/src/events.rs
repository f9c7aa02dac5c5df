//! Request summaries and their live broadcast.
//!
//! Every chat request that reaches the gateway ends in exactly one [`RequestSummary`]: it is
//! appended to the ledger, counted in `/metrics`, and published on an [`EventBus`] that
//! `GET /v1/triage/events` streams to live dashboards (one SSE `data:` line per request). The bus
//! is a `tokio::sync::broadcast` channel: publishing never blocks a request, and a subscriber
//! that falls behind skips summaries (it is told how many) rather than slowing the gateway.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// What happened to one request, from arrival to its last byte.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The completion id returned to the client (`chatcmpl-…`).
    pub id: String,
    /// Arrival time, Unix milliseconds.
    pub unix_ms: u64,
    /// Which configured API key was used (its name, never the secret).
    pub key: Option<String>,
    /// The `model` the client asked for (`auto`, a route, a backend).
    pub model: String,
    /// The task the request was routed as, and where it came from (`header`, `metadata`,
    /// `classifier`).
    pub task: Option<String>,
    /// Where the task came from (`header`, `metadata`, `classifier`).
    pub task_source: Option<String>,
    /// The routing rule that matched, and why.
    pub route: Option<String>,
    /// Why it matched, then what happened while answering (cascade verdict, fallbacks),
    /// `; `-joined.
    pub reason: Option<String>,
    /// The backend whose answer the client got.
    pub backend: Option<String>,
    /// Every backend called, in order (cascade first step, fallbacks).
    pub tried: Vec<String>,
    /// Whether a cascade escalated to its second backend.
    pub escalated: bool,
    /// A cascade's escalation failed upstream (its backends down or failing) and the client got
    /// the first step's answer instead: the error code of the escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_failed: Option<String>,
    /// Cascade confidence of the first answer, when a cascade ran.
    pub confidence: Option<f64>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// HTTP status (for streams: 200, or the status of the error event that ended the stream;
    /// 499 when the client went away first).
    pub status: u16,
    /// Error code when the request did not end in a complete answer.
    pub error: Option<String>,
    /// Prompt tokens of the answer, as its backend counted them.
    pub prompt_tokens: u32,
    /// Completion tokens of the answer.
    pub completion_tokens: u32,
    /// What this request cost, and what the reference LLM would have cost minus that.
    pub cost_usd: f64,
    /// The reference backend's price for the same tokens minus `cost_usd`, USD.
    pub saved_usd: f64,
    /// Time to first content token and end-to-end time, measured from arrival at the gateway.
    pub ttft_ms: Option<f64>,
    /// Milliseconds from arrival to the last byte.
    pub e2e_ms: f64,
}

impl RequestSummary {
    /// Whether the client got a complete answer.
    pub fn is_success(&self) -> bool {
        self.error.is_none() && self.status < 400
    }
}

/// Fan-out of finished-request summaries to any number of live subscribers.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<RequestSummary>>,
}

impl EventBus {
    /// A bus keeping up to `capacity` summaries for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// Publish one summary; without subscribers it is dropped (the ledger keeps it).
    pub fn publish(&self, summary: Arc<RequestSummary>) {
        let _ = self.tx.send(summary);
    }

    /// A new receiver of every summary published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RequestSummary>> {
        self.tx.subscribe()
    }

    /// How many receivers are live (connected event streams, tests).
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_receive_published_summaries() {
        let bus = EventBus::new(4);
        let mut rx = bus.subscribe();
        bus.publish(Arc::new(RequestSummary {
            id: "chatcmpl-1".into(),
            status: 200,
            ..Default::default()
        }));
        let got = rx.recv().await.unwrap();
        assert_eq!(got.id, "chatcmpl-1");
        assert!(got.is_success());
    }
}
