//! The streamed answer ([`Streamed`]): each backend is asked with `chat_stream`, read until its
//! first output (so a failure before it can still fall back), and the events are forwarded as
//! OpenAI `chat.completion.chunk`s over SSE.
//!
//! The SSE body: the assistant role chunk, content (refusal, tool-call) chunks — content chunks
//! with their tokens' `logprobs` when the client asked (an accepted cascade answer replays its
//! whole `logprobs` object with its text) — one finish chunk
//! per choice (`stop` for a choice that ended without one), then — with
//! `stream_options.include_usage` — the usage chunk with its `triage` object (backend, route,
//! escalated, cost, saved), a `: triage backend=… cost_usd=… saved_usd=…` comment and
//! `data: [DONE]`. A failure after the first output (or the deadline passing) becomes a `data:`
//! line holding an OpenAI error object and ends the stream without `[DONE]`.
//!
//! TTFT and inter-token gaps come from the events' own instants; `LocalCompute` events add the
//! engine's busy seconds to the request, so a streamed local answer is billed by engine time.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use backends::{
    content_of, BackendError, ChatEvent, ChatRequest, ChatResponse, EventStream, FinishReason,
};
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::time::Instant;

use super::exec::{Answered, Delivery};
use super::tracker::Tracker;
use crate::gateway::error::ApiError;
use crate::gateway::sse::ChunkHeader;
use crate::gateway::DynBackend;

/// Deliver the answer as server-sent events.
pub(crate) struct Streamed;

/// A stream that has produced its first output, with what it produced so far.
pub(crate) struct Opened {
    pending: VecDeque<ChatEvent>,
    rest: Option<EventStream>,
}

impl Delivery for Streamed {
    type Answer = Opened;

    async fn ask(
        backend: Arc<dyn DynBackend>,
        request: ChatRequest,
    ) -> Result<Opened, BackendError> {
        let mut stream = backend.chat_stream(request).await?;
        let mut pending = VecDeque::new();
        while let Some(event) = stream.next().await {
            let event = event?;
            let output = is_output(&event);
            pending.push_back(event);
            if output {
                return Ok(Opened {
                    pending,
                    rest: Some(stream),
                });
            }
        }
        Err(BackendError::Protocol(
            "stream ended before any token".into(),
        ))
    }

    fn accepted(response: ChatResponse) -> Opened {
        Opened {
            pending: events_of(&response),
            rest: None,
        }
    }

    fn respond(
        mut t: Tracker,
        answered: Answered<Opened>,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Response {
        let Answered {
            backend,
            answer: opened,
        } = answered;
        t.s.backend = Some(backend.clone());
        let include_usage = request
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        let header = ChunkHeader {
            id: t.s.id.clone(),
            created: backends::unix_now(),
            model: backend,
            include_usage,
            logprobs: request.logprobs == Some(true),
        };
        let mut headers = HeaderMap::new();
        t.headers(&mut headers, None);
        let deadline_after = t.request_deadline();
        let body = sse_body(t, opened, header, deadline, deadline_after);
        let mut out = Sse::new(body).into_response();
        out.headers_mut().extend(headers);
        out
    }
}

fn is_output(event: &ChatEvent) -> bool {
    matches!(
        event,
        ChatEvent::Token { .. }
            | ChatEvent::Refusal { .. }
            | ChatEvent::ToolCallDelta { .. }
            | ChatEvent::Done { .. }
    )
}

/// Replay a whole (accepted) answer as stream events, born now.
fn events_of(response: &ChatResponse) -> VecDeque<ChatEvent> {
    let at = std::time::Instant::now();
    let mut out = VecDeque::new();
    for c in &response.choices {
        if let Some(text) = &c.message.content {
            out.push_back(ChatEvent::Token {
                choice: c.index,
                text: text.clone(),
                logprobs: c.logprobs.as_ref().map(content_of).unwrap_or_default(),
                at,
            });
        }
        if let Some(text) = &c.message.refusal {
            out.push_back(ChatEvent::Refusal {
                choice: c.index,
                text: text.clone(),
                at,
            });
        }
        for (i, call) in c.message.tool_calls.iter().flatten().enumerate() {
            out.push_back(ChatEvent::ToolCallDelta {
                choice: c.index,
                index: u32::try_from(i).unwrap_or(u32::MAX),
                id: Some(call.id.clone()),
                name: Some(call.function.name.clone()),
                arguments: call.function.arguments.clone(),
                at,
            });
        }
        out.push_back(ChatEvent::Done {
            choice: c.index,
            finish_reason: c.finish_reason.clone().unwrap_or(FinishReason::Stop),
            stop_sequence: c.stop_sequence.clone(),
            at,
        });
    }
    if let Some(usage) = &response.usage {
        out.push_back(ChatEvent::Usage {
            usage: usage.clone(),
            at,
        });
    }
    if response.timings.engine_busy_secs > 0.0 {
        out.push_back(ChatEvent::LocalCompute {
            busy_secs: response.timings.engine_busy_secs,
            at,
        });
    }
    out
}

fn sse_body(
    mut t: Tracker,
    opened: Opened,
    header: ChunkHeader,
    deadline: Instant,
    deadline_after: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let backend = header.model.clone();
    let events = answer_events(opened, backend.clone(), deadline, deadline_after);
    async_stream::stream! {
        let mut events = std::pin::pin!(events);
        let mut roles = BTreeSet::new();
        let mut finished = BTreeSet::new();
        roles.insert(0u32);
        yield Ok(Event::default().data(header.role(0)));
        while let Some(next) = events.next().await {
            let event = match next {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(backend = %backend, error = %err, "stream failed after its first token");
                    t.finish(err.status.as_u16(), Some(err.ledger_code()));
                    yield Ok(Event::default().data(err.to_json()));
                    return;
                }
            };
            let choice = match &event {
                ChatEvent::Token { choice, .. }
                | ChatEvent::Refusal { choice, .. }
                | ChatEvent::ToolCallDelta { choice, .. }
                | ChatEvent::Done { choice, .. } => Some(*choice),
                _ => None,
            };
            if let Some(c) = choice {
                if roles.insert(c) {
                    yield Ok(Event::default().data(header.role(c)));
                }
            }
            match event {
                ChatEvent::Token { choice, text, logprobs, at } => {
                    t.token(at);
                    yield Ok(Event::default().data(header.content(choice, &text, &logprobs)));
                }
                ChatEvent::Refusal { choice, text, at } => {
                    t.token(at);
                    yield Ok(Event::default().data(header.refusal(choice, &text)));
                }
                ChatEvent::ToolCallDelta { choice, index, id, name, arguments, at } => {
                    t.token(at);
                    yield Ok(Event::default().data(header.tool_call(
                        choice, index, id.as_deref(), name.as_deref(), &arguments,
                    )));
                }
                ChatEvent::Done { choice, finish_reason, .. } => {
                    finished.insert(choice);
                    yield Ok(Event::default().data(header.finish(choice, &finish_reason)));
                }
                ChatEvent::Usage { usage, .. } => t.usage = Some(usage),
                ChatEvent::LocalCompute { busy_secs, .. } => t.add_busy(busy_secs),
                _ => {}
            }
        }
        // A stream that ended without a finish reason for a choice gets `stop`.
        for c in roles.difference(&finished).copied().collect::<Vec<_>>() {
            yield Ok(Event::default().data(header.finish(c, &FinishReason::Stop)));
        }
        let usage = t.usage.clone().unwrap_or_default();
        let cost = t.finish(200, None);
        if header.include_usage {
            yield Ok(Event::default().data(header.usage(&usage, json!({
                "backend": backend,
                "route": t.s.route,
                "escalated": t.s.escalated,
                "escalation_failed": t.s.escalation_failed,
                "cost_usd": cost.cost_usd,
                "saved_usd": cost.saved_usd,
            }))));
        }
        yield Ok(Event::default().comment(format!(
            "triage backend={backend} cost_usd={:.8} saved_usd={:.8}",
            cost.cost_usd, cost.saved_usd
        )));
        yield Ok(Event::default().data("[DONE]"));
    }
}

/// The answer's events in order: those read while opening it, then the rest of the backend's
/// stream until it ends, fails (an error naming the backend) or outlives the request's
/// deadline. Shared by every streamed dialect (OpenAI chunks here, Anthropic events in
/// `messages`).
pub(crate) fn answer_events(
    opened: Opened,
    backend: String,
    deadline: Instant,
    deadline_after: Duration,
) -> impl Stream<Item = Result<ChatEvent, ApiError>> {
    let Opened { pending, rest } = opened;
    let replayed = futures::stream::iter(pending.into_iter().map(Ok));
    let live = futures::stream::unfold(rest, move |rest| {
        let backend = backend.clone();
        async move {
            let mut stream = rest?;
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => Some((Err(ApiError::deadline(deadline_after)), None)),
                Ok(None) => None,
                Ok(Some(Ok(event))) => Some((Ok(event), Some(stream))),
                Ok(Some(Err(e))) => Some((Err(ApiError::from_backend(&backend, &e)), None)),
            }
        }
    });
    replayed.chain(live)
}
