//! The streamed Messages answer ([`MessageStream`]): the same backends and event pump as the
//! chat endpoint's stream (`chat::stream::answer_events`), written as Anthropic's server-sent
//! events:
//!
//! `message_start` (input tokens as routing counted them) → per content block
//! `content_block_start` (the first one followed by a `ping`), `content_block_delta`
//! (`text_delta`, or `input_json_delta` for a `tool_use` block), `content_block_stop` →
//! `message_delta` (stop reason, final usage) → a `: triage backend=… cost_usd=…` comment →
//! `message_stop`. A failure after the first output is an `error` event
//! (`{"type":"error","error":{…}}`) and the stream ends there, as Anthropic's do.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use backends::{BackendError, ChatEvent, ChatRequest, ChatResponse, FinishReason};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::convert::stop_reason;
use super::errors;
use crate::gateway::chat::exec::{Answered, Delivery};
use crate::gateway::chat::stream::{answer_events, Opened, Streamed};
use crate::gateway::chat::tracker::Tracker;
use crate::gateway::DynBackend;

/// Deliver the answer as Anthropic stream events.
pub(crate) struct MessageStream;

impl Delivery for MessageStream {
    type Answer = Opened;

    fn ask(
        backend: Arc<dyn DynBackend>,
        request: ChatRequest,
    ) -> impl std::future::Future<Output = Result<Opened, BackendError>> + Send {
        Streamed::ask(backend, request)
    }

    fn accepted(response: ChatResponse) -> Opened {
        Streamed::accepted(response)
    }

    fn respond(
        mut t: Tracker,
        answered: Answered<Opened>,
        _request: &ChatRequest,
        deadline: Instant,
    ) -> Response {
        let Answered { backend, answer } = answered;
        t.s.backend = Some(backend.clone());
        let mut headers = HeaderMap::new();
        t.headers(&mut headers, None);
        let after = t.request_deadline();
        let body = events(t, answer, backend, deadline, after);
        let mut out = Sse::new(body).into_response();
        out.headers_mut().extend(headers);
        out
    }
}

fn event(name: &'static str, data: Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// The content block being written.
enum Open {
    Text,
    Tool { call: u32 },
}

/// Content blocks in order: which one is open and the index the next one gets.
#[derive(Default)]
struct Blocks {
    open: Option<(u32, Open)>,
    next: u32,
}

impl Blocks {
    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some((index, _)) = self.open.take() {
            out.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn start(&mut self, block: Value, kind: Open, out: &mut Vec<Event>) -> u32 {
        self.close(out);
        let index = self.next;
        self.next += 1;
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        if index == 0 {
            // Anthropic sends its keep-alive `ping` right after the first block opens.
            out.push(event("ping", json!({"type": "ping"})));
        }
        self.open = Some((index, kind));
        index
    }

    fn text(&mut self, text: &str, out: &mut Vec<Event>) {
        let index = match self.open {
            Some((index, Open::Text)) => index,
            _ => self.start(json!({"type": "text", "text": ""}), Open::Text, out),
        };
        out.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}),
        ));
    }

    fn tool(
        &mut self,
        call: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: &str,
        out: &mut Vec<Event>,
    ) {
        let index = match self.open {
            Some((index, Open::Tool { call: open })) if open == call => index,
            _ => self.start(
                json!({"type": "tool_use", "id": id.unwrap_or_default(),
                    "name": name.unwrap_or_default(), "input": {}}),
                Open::Tool { call },
                out,
            ),
        };
        if !arguments.is_empty() {
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": arguments}}),
            ));
        }
    }
}

fn events(
    mut t: Tracker,
    opened: Opened,
    backend: String,
    deadline: Instant,
    deadline_after: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let answer = answer_events(opened, backend.clone(), deadline, deadline_after);
    async_stream::stream! {
        let mut answer = std::pin::pin!(answer);
        yield Ok(event("message_start", json!({"type": "message_start", "message": {
            "id": t.s.id, "type": "message", "role": "assistant", "content": [],
            "model": backend, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": t.routed_prompt_tokens(), "output_tokens": 0},
        }})));
        let mut blocks = Blocks::default();
        let mut finish = None;
        let mut out = Vec::new();
        while let Some(next) = answer.next().await {
            let item = match next {
                Ok(item) => item,
                Err(err) => {
                    tracing::warn!(backend = %backend, error = %err, "stream failed after its first token");
                    t.finish(err.status.as_u16(), Some(err.ledger_code()));
                    yield Ok(event("error", errors::body(&err, Some(&t.s.id))));
                    return;
                }
            };
            match item {
                ChatEvent::Token { text, at, .. } | ChatEvent::Refusal { text, at, .. } => {
                    t.token(at);
                    if !text.is_empty() {
                        blocks.text(&text, &mut out);
                    }
                }
                ChatEvent::ToolCallDelta { index, id, name, arguments, at, .. } => {
                    t.token(at);
                    blocks.tool(index, id, name, &arguments, &mut out);
                }
                ChatEvent::Done { finish_reason, stop_sequence, .. } => {
                    finish = Some((finish_reason, stop_sequence));
                }
                ChatEvent::Usage { usage, .. } => t.usage = Some(usage),
                ChatEvent::LocalCompute { busy_secs, .. } => t.add_busy(busy_secs),
                _ => {}
            }
            for e in out.drain(..) {
                yield Ok(e);
            }
        }
        blocks.close(&mut out);
        for e in out.drain(..) {
            yield Ok(e);
        }
        let cost = t.finish(200, None);
        let (reason, sequence) = finish.unwrap_or((FinishReason::Stop, None));
        let (reason, sequence) = stop_reason(&reason, sequence.as_deref());
        yield Ok(event("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": {"input_tokens": t.s.prompt_tokens, "output_tokens": t.s.completion_tokens},
        })));
        yield Ok(Event::default().comment(format!(
            "triage backend={backend} cost_usd={:.8} saved_usd={:.8}",
            cost.cost_usd, cost.saved_usd
        )));
        yield Ok(event("message_stop", json!({"type": "message_stop"})));
    }
}
