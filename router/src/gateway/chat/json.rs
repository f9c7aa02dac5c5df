//! The whole answer ([`Whole`]): each backend is asked with `chat` and the answer leaves as one
//! `chat.completion` JSON body with the `x-triage-*` headers, the cost included.
//!
//! `chat`, not a collected `chat_stream`: a remote's non-streaming body carries what its events
//! do not (per-choice `logprobs` objects, `system_fingerprint`, `service_tier`, message extras),
//! and those pass through to the client unchanged. For the local engine (and the test double)
//! `chat` is the stream collected by `backends::collect_stream`, so nothing differs there. A
//! choice's `logprobs` object is sent only when the client asked for `logprobs`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use backends::{BackendError, ChatRequest, ChatResponse};
use tokio::time::Instant;

use super::exec::{Answered, Delivery};
use super::tracker::Tracker;
use crate::gateway::error::ApiError;
use crate::gateway::DynBackend;

/// Deliver the whole answer as one JSON body.
pub(crate) struct Whole;

impl Delivery for Whole {
    type Answer = ChatResponse;

    async fn ask(
        backend: Arc<dyn DynBackend>,
        request: ChatRequest,
    ) -> Result<ChatResponse, BackendError> {
        backend.chat(request).await
    }

    fn accepted(response: ChatResponse) -> ChatResponse {
        response
    }

    fn respond(
        mut t: Tracker,
        answered: Answered<ChatResponse>,
        request: &ChatRequest,
        _deadline: Instant,
    ) -> Response {
        let Answered {
            backend,
            answer: mut response,
        } = answered;
        t.answered(&backend, &response);
        response.id = t.s.id.clone();
        response.object = "chat.completion".into();
        response.created = backends::unix_now();
        response.model = backend;
        // Log-probabilities only when asked for: a cascade's first step asks for them itself, and
        // the local engine always knows them.
        if request.logprobs != Some(true) {
            for choice in &mut response.choices {
                choice.logprobs = None;
            }
        }
        // An upstream triage's accounting is its own, not this gateway's (headers carry ours).
        if let Some(usage) = response.usage.as_mut() {
            usage.extra.remove(backends::openai::TRIAGE_USAGE_KEY);
        }
        let body = match serde_json::to_vec(&response) {
            Ok(b) => b,
            Err(e) => {
                return t.fail(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    format!("could not encode the response: {e}"),
                ))
            }
        };
        let cost = t.finish(200, None);
        let mut out = (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        t.headers(out.headers_mut(), Some(cost.cost_usd));
        t.server_timing(out.headers_mut());
        out
    }
}
