//! The limits that act on requests rather than sockets, as axum middleware in [`app`]
//! (so in-process callers get them too): header size (`431`), arrival time and the body's read
//! deadline (`408`), chat completions in flight (`429`), and the `500` answer to a panic.
//!
//! [`app`]: crate::gateway::app

use std::any::Any;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

use super::ConnState;
use crate::gateway::{ApiError, AppState};

/// When a request's headers arrived (a request extension set by [`guard_request`]); the
/// request deadline counts from it, so time spent waiting for the body is part of it.
#[derive(Clone)]
pub(crate) struct Arrival {
    /// The moment the headers had been read, on tokio's clock (so deadlines follow paused time
    /// in tests).
    pub(crate) at: Instant,
    /// The connection it came on (absent for in-process calls).
    pub(crate) connection: Option<Arc<ConnState>>,
}

impl Arrival {
    /// Now, with no connection: for calls that did not pass [`guard_request`].
    pub(crate) fn now() -> Self {
        Self {
            at: Instant::now(),
            connection: None,
        }
    }
}

/// The request body did not arrive within `server.body_read_timeout` of the headers.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct BodyReadTimeout(pub(crate) Duration);

/// Whether reading the body failed because of [`BodyReadTimeout`] (anywhere in `err`'s chain).
pub(crate) fn body_timed_out(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<BodyReadTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Refuse oversized headers with an OpenAI-shaped `431`, note the arrival, and put the body
/// under its read deadline.
pub(crate) async fn guard_request(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let limits = &state.inner.options.transport;
    let size = header_bytes(&request);
    if size > limits.max_header_bytes {
        state.metrics().transport_rejected("header_too_large");
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request_error",
            format!(
                "The request line and headers take {size} bytes; the limit is {} \
                 (server.max_header_bytes)",
                limits.max_header_bytes
            ),
        )
        .with_code("request_header_fields_too_large")
        .into_response();
    }
    let arrival = Arrival {
        at: Instant::now(),
        connection: request.extensions().get::<Arc<ConnState>>().cloned(),
    };
    let after = limits.body_read_timeout;
    let deadline = arrival.at + after;
    request.extensions_mut().insert(arrival);
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            after,
        })
    });
    next.run(request).await
}

/// The request line and headers as they were sent, approximately: name, value and separators.
fn header_bytes(request: &Request) -> usize {
    let line = request.method().as_str().len() + request.uri().to_string().len() + 12;
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// A body that fails with [`BodyReadTimeout`] once its deadline passes while a frame is awaited.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    after: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|r| r.map_err(Into::into))),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyReadTimeout(this.after).into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Answer `429` with `Retry-After` when `server.max_in_flight` chat completions are running; a
/// request holds its place until its response body (a stream included) is finished or dropped.
pub(crate) async fn limit_in_flight(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = state.inner.in_flight.clone().try_acquire_owned() else {
        state.metrics().transport_rejected("in_flight");
        let mut response = ApiError::too_many_requests(
            format!(
                "The gateway is answering its maximum of {} requests at once \
                 (server.max_in_flight); retry after a second",
                state.inner.options.transport.max_in_flight
            ),
            "too_many_requests_in_flight",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held: &tokio::sync::OwnedSemaphorePermit = &permit;
            frame
        }))
    })
}

/// The answer to a panic inside a handler: an OpenAI-shaped `500`, logged (without the panic's
/// message, which may quote request text) and counted in `triage_handler_panics_total`. The
/// request's `Tracker`, dropped while unwinding, ledgers it as 500.
pub(crate) fn panic_response(
    state: AppState,
) -> impl FnMut(Box<dyn Any + Send + 'static>) -> Response + Clone {
    move |_payload| {
        state.metrics().handler_panic();
        tracing::error!(
            "a request handler panicked; answered 500 (the panic message is not logged: it may \
             quote request content)"
        );
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "The gateway failed while handling this request (an internal error, logged and \
             counted)",
        )
        .with_code("internal_error")
        .into_response()
    }
}
