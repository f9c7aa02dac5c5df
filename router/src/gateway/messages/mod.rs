//! `POST /v1/messages` (Anthropic's Messages API) and `POST /v1/messages/count_tokens`, so
//! teams on Anthropic's SDKs use triage unchanged.
//!
//! A Messages request is parsed into its wire types (`wire.rs`, errors name the field),
//! converted to the internal chat request (`convert.rs`) and then takes *the chat endpoint's
//! path* (`gateway::prologue::start`, then `chat::serve_chat`): the same key check (`x-api-key` or `Authorization: Bearer`), body limits, validation,
//! routing core (PII, budgets and reservations, cascades, tenancy), chain runner and fallbacks,
//! deadline and `Tracker` (one ledger row per request, 499 on a client that left). Only the way
//! the answer leaves differs, as two more [`Delivery`] kinds: [`MessageWhole`] (one `message`
//! JSON body) and [`stream::MessageStream`] (Anthropic's SSE events). Errors, wherever they
//! arise, are re-rendered in Anthropic's shape by [`errors::anthropic_errors`].
//!
//! Ids are `msg_…` (the ledger row's id too). `stop_reason` maps from the finish reason
//! (`end_turn`, `max_tokens`, `tool_use`, `refusal`), and is `stop_sequence`, with the string in
//! `stop_sequence`, when the backend said which of the request's stop strings ended the answer
//! (the local engine and Anthropic upstreams say; OpenAI upstreams cannot, so their stops read
//! as `end_turn`).
//!
//! `count_tokens` counts the converted request's prompt with a loaded local tokenizer, else
//! estimates it (UTF-8 bytes / 4), and says which in `x-triage-token-count: exact|estimate`;
//! it calls no backend, so it writes no ledger row.

mod convert;
pub(crate) mod errors;
mod stream;
mod wire;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backends::{BackendError, ChatRequest, ChatResponse};
use serde_json::json;
use tokio::time::Instant;

use super::chat::exec::{Answered, Delivery};
use super::chat::json::Whole;
use super::chat::tracker::Tracker;
use super::chat::{read_body, serve_chat};
use super::error::ApiError;
use super::prologue;
use super::transport::Arrival;
use super::{AppState, DynBackend};
use stream::MessageStream;
use wire::MessagesRequest;

/// The `POST /v1/messages` handler.
pub(crate) async fn messages(
    State(state): State<AppState>,
    arrival: Option<Extension<Arrival>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut started = match prologue::start(&state, arrival, &headers, "messages") {
        Ok(started) => started,
        Err(refused) => return refused.into_response(),
    };
    started.t.s.id = message_id(&started.t.s.id);
    // The Anthropic body is not the chat request's: no client body is kept.
    serve_chat::<MessageStream, MessageWhole>(state, started, &headers, body, |bytes| {
        convert::to_chat_request(parse(bytes)?)
    })
    .await
}

/// `msg_` and the tracker's random part, so the answer's id is the ledger row's.
fn message_id(completion_id: &str) -> String {
    let random = completion_id
        .strip_prefix("chatcmpl-")
        .unwrap_or(completion_id);
    format!("msg_{random}")
}

/// Parse a Messages body, naming the field that is wrong.
fn parse(bytes: &[u8]) -> Result<MessagesRequest, ApiError> {
    let request: MessagesRequest = prologue::parse_json(bytes, "messages", prologue::no_hint)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request(
            "`messages` must contain at least one message",
            Some("messages".into()),
        ));
    }
    Ok(request)
}

/// Deliver the whole answer as one Messages API `message`.
pub(crate) struct MessageWhole;

impl Delivery for MessageWhole {
    type Answer = ChatResponse;

    fn ask(
        backend: Arc<dyn DynBackend>,
        request: ChatRequest,
    ) -> impl std::future::Future<Output = Result<ChatResponse, BackendError>> + Send {
        Whole::ask(backend, request)
    }

    fn accepted(response: ChatResponse) -> ChatResponse {
        response
    }

    fn respond(
        mut t: Tracker,
        answered: Answered<ChatResponse>,
        _request: &ChatRequest,
        _deadline: Instant,
    ) -> Response {
        let Answered { backend, answer } = answered;
        t.answered(&backend, &answer);
        let message = match convert::to_message(&answer, &t.s.id, &backend) {
            Ok(m) => m,
            Err(e) => return t.fail(e),
        };
        let cost = t.finish(200, None);
        let mut out = (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            message.to_string(),
        )
            .into_response();
        t.headers(out.headers_mut(), Some(cost.cost_usd));
        out
    }
}

/// The `POST /v1/messages/count_tokens` handler: `{"input_tokens": N}`.
pub(crate) async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match count(&state, &headers, body) {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn count(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authenticate(headers, "messages")?;
    let bytes = read_body(state, headers, body)?;
    // `max_tokens` is not part of a count request; the parser requires it of messages.
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!("Invalid count_tokens request body: {e}"), None)
    })?;
    if let Some(object) = value.as_object_mut() {
        object.entry("max_tokens").or_insert(json!(1));
    }
    let request = convert::to_chat_request(parse(value.to_string().as_bytes())?)?;
    let known = state.inner.policy_models.contains(&request.model)
        || state.inner.backends.get(&request.model).is_some();
    if !known {
        let mut names = state.inner.policy_models.clone();
        names.extend(state.inner.backends.names());
        return Err(ApiError::model_not_found(&request.model, &names));
    }
    let (tokens, how) = match state.inner.backends.count_prompt_tokens(&request) {
        Some(n) => (n, "exact"),
        None => {
            let mut text = request.all_text();
            if let Some(tools) = request.extra.get("tools") {
                text.push_str(&tools.to_string());
            }
            (crate::explain::estimate_tokens(&text), "estimate")
        }
    };
    Ok((
        StatusCode::OK,
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (
                axum::http::HeaderName::from_static("x-triage-token-count"),
                how,
            ),
        ],
        json!({ "input_tokens": tokens }).to_string(),
    )
        .into_response())
}
