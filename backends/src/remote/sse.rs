//! Server-sent events to chat events: the `sse-stream` decoder cuts a body into events and a
//! protocol's [`SseDecoder`] reads each one. Public (via [`decode_sse`]) so tests and replays can
//! feed recorded bytes cut at any position; a body ending before the terminal event is an error.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sse_stream::{Sse, SseByteStream};

use crate::{BackendError, ChatEvent, Result};

/// A protocol's reading of SSE events.
pub trait SseDecoder: Send + 'static {
    /// Turn one SSE event into chat events (appended to `out`). `Ok(true)` means this was the
    /// protocol's terminal event: the stream ends after it.
    fn decode(&mut self, event: Sse, at: Instant, out: &mut Vec<ChatEvent>) -> Result<bool>;
    /// The error message for a body that ended before the terminal event.
    fn truncated(&self) -> String;
}

/// Decode a body's chunks into chat events with `decoder`. Public so that tests and replays
/// can feed recorded bytes cut at any position.
pub fn decode_sse<S, D>(chunks: S, decoder: D) -> impl Stream<Item = Result<ChatEvent>> + Send
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
    D: SseDecoder,
{
    struct State<D> {
        sse: Pin<Box<dyn Stream<Item = std::result::Result<Sse, sse_stream::Error>> + Send>>,
        decoder: D,
        pending: VecDeque<ChatEvent>,
        finished: bool,
    }
    let state = State {
        sse: Box::pin(SseByteStream::new(Box::pin(chunks))),
        decoder,
        pending: VecDeque::new(),
        finished: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.finished {
                return None;
            }
            match st.sse.next().await {
                None => {
                    st.finished = true;
                    let message = st.decoder.truncated();
                    return Some((Err(BackendError::Protocol(message)), st));
                }
                Some(Err(e)) => {
                    st.finished = true;
                    return Some((Err(sse_error(e)), st));
                }
                Some(Ok(sse)) => {
                    let mut out = Vec::new();
                    match st.decoder.decode(sse, Instant::now(), &mut out) {
                        Ok(terminal) => {
                            st.pending.extend(out);
                            st.finished = terminal;
                        }
                        Err(e) => {
                            st.finished = true;
                            return Some((Err(e), st));
                        }
                    }
                }
            }
        }
    })
}

fn sse_error(e: sse_stream::Error) -> BackendError {
    match e {
        sse_stream::Error::Body(inner) => match inner.downcast::<BackendError>() {
            Ok(backend) => *backend,
            Err(other) => BackendError::Connection(other.to_string()),
        },
        sse_stream::Error::Utf8Parse(e) => {
            BackendError::Protocol(format!("invalid UTF-8 in an SSE field: {e}"))
        }
        other => BackendError::Protocol(format!("invalid SSE stream: {other}")),
    }
}
