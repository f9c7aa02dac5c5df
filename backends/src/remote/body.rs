//! Reading an accepted response: [`Accepted`] turns the body into bytes, a parsed response or
//! chat events, with the idle-gap and total-deadline timers enforced on every chunk and broken
//! connections reported with the key redacted.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::Instant as TokioInstant;

use super::errors::chain;
use super::key::ApiKey;
use super::sse::{decode_sse, SseDecoder};
use super::Timeouts;
use crate::{BackendError, ChatEvent, EventStream, Result, TimeoutPhase};

/// A response whose headers arrived with a success status.
pub(crate) struct Accepted {
    pub(super) response: reqwest::Response,
    pub(crate) started: Instant,
    pub(crate) first_byte: Instant,
    pub(super) deadline: TokioInstant,
    pub(super) total: Duration,
    pub(super) idle: Duration,
    pub(super) key: Option<ApiKey>,
}

impl Accepted {
    /// The response headers as (lower-case name, value) pairs; values that are not valid
    /// UTF-8 are skipped. A gateway in front reports its routing decision in them (triage's
    /// `x-triage-*`), which the benchmark harness records.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        self.response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|v| (name.as_str().to_string(), v.to_string()))
            })
            .collect()
    }

    /// The whole body, with the idle and total timeouts enforced.
    pub(crate) async fn body(self) -> Result<Bytes> {
        let mut stream = Box::pin(self.into_byte_stream());
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(out))
    }

    /// A non-streaming answer: the whole body parsed by `parse`, with the request's timings (the
    /// first token is known only when the whole body has arrived).
    pub(crate) async fn into_response(
        self,
        parse: fn(&[u8]) -> Result<crate::ChatResponse>,
    ) -> Result<crate::ChatResponse> {
        let (started, first_byte) = (self.started, self.first_byte);
        let body = self.body().await?;
        let finished = std::time::Instant::now();
        let mut response = parse(&body)?;
        response.timings.started = Some(started);
        response.timings.first_byte = Some(first_byte);
        response.timings.first_token = Some(finished);
        response.timings.finished = Some(finished);
        Ok(response)
    }

    /// The body as chat events: `FirstByte` first, then whatever `decoder` makes of each SSE
    /// event, ending after the decoder's terminal event.
    pub(crate) fn into_events<D: SseDecoder>(self, decoder: D) -> EventStream {
        let first_byte = ChatEvent::FirstByte {
            at: self.first_byte,
        };
        let events = decode_sse(self.into_byte_stream(), decoder);
        Box::pin(futures::stream::once(async move { Ok(first_byte) }).chain(events))
    }

    /// The body's chunks; a gap longer than `idle` or passing the total deadline ends it with
    /// a timeout, a broken connection with a connection error.
    fn into_byte_stream(self) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        timed_chunks(
            self.response.bytes_stream(),
            self.idle,
            self.deadline,
            self.total,
            self.key,
        )
    }
}

/// Wrap a body's chunk stream with the idle-gap and total-deadline timers.
fn timed_chunks<S>(
    chunks: S,
    idle: Duration,
    deadline: TokioInstant,
    total: Duration,
    key: Option<ApiKey>,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
{
    let chunks = Box::pin(chunks);
    futures::stream::unfold(Some(chunks), move |state| {
        let key = key.clone();
        async move {
            let mut chunks = state?;
            let idle_limit = TokioInstant::now() + idle;
            let (limit, phase, after) = if deadline <= idle_limit {
                (deadline, TimeoutPhase::Total, total)
            } else {
                (idle_limit, TimeoutPhase::Idle, idle)
            };
            match tokio::time::timeout_at(limit, chunks.next()).await {
                Err(_) => Some((Err(BackendError::Timeout { phase, after }), None)),
                Ok(None) => None,
                Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(chunks))),
                Ok(Some(Err(e))) => {
                    let message = chain(&e);
                    let message = match &key {
                        Some(key) => key.redact(&message),
                        None => message,
                    };
                    Some((
                        Err(BackendError::Connection(format!(
                            "connection broke while reading the response: {message}"
                        ))),
                        None,
                    ))
                }
            }
        }
    })
}

/// Read at most `cap` bytes of a body (idle and total timeouts enforced).
pub(super) async fn read_capped(
    response: reqwest::Response,
    deadline: TokioInstant,
    timeouts: Timeouts,
    cap: usize,
) -> Result<Vec<u8>> {
    let mut stream = Box::pin(timed_chunks(
        response.bytes_stream(),
        timeouts.idle,
        deadline,
        timeouts.total,
        None,
    ));
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    Ok(out)
}
