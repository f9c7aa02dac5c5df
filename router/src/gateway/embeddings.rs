//! `POST /v1/embeddings`: OpenAI's embeddings endpoint, answered by a local embedding model
//! (`kind: embedding`) or forwarded to an OpenAI-compatible upstream (`kind: openai`).
//!
//! `model` names the backend: vectors of different models are not interchangeable, so there
//! are no rules, fallbacks or cascades here, and a request is never moved to another model.
//! The policy's guards still apply, through the same pinned decision chat uses
//! ([`crate::policy::decide_pinned`]): with a privacy rule on, input holding personal data
//! never reaches a remote backend (403), and token-id input — which the PII detector cannot
//! read — counts as content it cannot scan (`pii.non_text`); a spent budget refuses a remote
//! backend (429) instead of answering from a different model. Every request ends in one ledger
//! row with task `embedding`, its prompt tokens and its cost (per token upstream, the engine's
//! busy seconds at the machine price locally), through the chat path's tracker.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use backends::{ChatMessage, ChatRequest, EmbeddingInput, EmbeddingRequest, MessageContent, Role};
use serde_json::json;

use super::chat::exec::refusal;
use super::chat::tracker::Tracker;
use super::chat::{admit, read_body};
use super::error::ApiError;
use super::prologue::{self, Started};
use super::routing::{RouteInput, Routed};
use super::transport::Arrival;
use super::AppState;
use crate::policy::Action;

/// The task name embeddings requests are routed and recorded as.
pub const EMBEDDING_TASK: &str = "embedding";

/// The handler.
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    arrival: Option<Extension<Arrival>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Started { mut t, deadline } = match prologue::start(&state, arrival, &headers, "embeddings")
    {
        Ok(started) => started,
        Err(refused) => return refused.into_response(),
    };
    let (request, backend) = match prepare(&state, &headers, body, &mut t).await {
        Ok(x) => x,
        Err(e) => return t.fail(e),
    };
    let Some(slot) = state.inner.backends.get(&backend) else {
        return t.fail(ApiError::model_not_found(&backend, &[]));
    };
    let handle = match slot.handle() {
        Ok(h) => h.clone(),
        Err(e) => return t.fail(ApiError::from_backend(&backend, &e)),
    };
    let answered = tokio::time::timeout_at(deadline, handle.embeddings(request)).await;
    match answered {
        Ok(Ok(mut response)) => {
            t.embedded(&backend, &response);
            response.model = t.s.model.clone();
            let cost = t.finish(200, None);
            let mut out = Json(response).into_response();
            t.headers(out.headers_mut(), Some(cost.cost_usd));
            out
        }
        Ok(Err(e)) => {
            t.s.tried.push(backend.clone());
            t.fail(ApiError::from_backend(&backend, &e))
        }
        Err(_) => t.fail(ApiError::deadline(state.inner.options.request_deadline)),
    }
}

/// Key, body, parse, checks and the policy's verdict; the backend to call.
async fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    t: &mut Tracker,
) -> Result<(EmbeddingRequest, String), ApiError> {
    let bytes = read_body(state, headers, body)?;
    let request = parse_request(&bytes)?;
    t.s.model = request.model.clone();
    if request.model.trim().is_empty() {
        return Err(ApiError::bad_request(
            "You must provide a model parameter (an embedding backend's name)",
            Some("model".into()),
        ));
    }
    check_input(&request.input)?;
    let backend = embedding_backend(state, &request.model)?;
    let view = policy_view(&request);
    let decided = state.inner.core.decide(&RouteInput {
        request: &view,
        tenant: t.s.key.as_deref(),
        task_header: Some(EMBEDDING_TASK),
        pinned: Some(&backend),
        local: &state.inner.backends.local_loads(),
        count_tokens: None,
        classified: None,
    });
    let routed = admit(state, t, &view, decided).await?;
    check_decision(&routed, &backend)?;
    Ok((request, backend))
}

/// Parse an embeddings request, naming the field that is wrong.
pub fn parse_request(bytes: &[u8]) -> Result<EmbeddingRequest, ApiError> {
    prologue::parse_json(bytes, "embeddings", |path| {
        if path == "input" {
            " (`input` is a string, an array of strings, or token ids)"
        } else {
            ""
        }
    })
}

/// Empty input is refused here, for every backend (OpenAI refuses it too).
fn check_input(input: &EmbeddingInput) -> Result<(), ApiError> {
    let empty = match input {
        EmbeddingInput::Text(t) => t.is_empty().then(|| "input".to_string()),
        EmbeddingInput::Texts(ts) if ts.is_empty() => Some("input".into()),
        EmbeddingInput::Texts(ts) => ts
            .iter()
            .position(String::is_empty)
            .map(|i| format!("input[{i}]")),
        EmbeddingInput::Tokens(ids) => ids.is_empty().then(|| "input".to_string()),
        EmbeddingInput::TokenBatches(b) if b.is_empty() => Some("input".into()),
        EmbeddingInput::TokenBatches(b) => b
            .iter()
            .position(Vec::is_empty)
            .map(|i| format!("input[{i}]")),
    };
    match empty {
        Some(path) => Err(ApiError::bad_request(
            format!("`{path}` is empty: every input must hold some text or tokens"),
            Some(path),
        )),
        None => Ok(()),
    }
}

/// The backend `model` names, if it answers embeddings; else 404 listing those that do.
fn embedding_backend(state: &AppState, model: &str) -> Result<String, ApiError> {
    let serves = |name: &str| {
        state
            .inner
            .backends
            .get(name)
            .and_then(|s| s.handle().ok())
            .is_some_and(|h| h.serves_embeddings())
    };
    match state.inner.backends.get(model) {
        // A backend still loading answers 503 when called.
        Some(slot) if !slot.is_loaded() || serves(model) => Ok(slot.name.clone()),
        _ => {
            let known: Vec<String> = state
                .inner
                .backends
                .names()
                .into_iter()
                .filter(|n| serves(n))
                .collect();
            Err(ApiError::model_not_found(model, &known))
        }
    }
}

/// The request as the policy's guards read it: its texts as one user message (the PII
/// detector scans them), token ids as a part it cannot read.
fn policy_view(request: &EmbeddingRequest) -> ChatRequest {
    let content = match &request.input {
        EmbeddingInput::Text(_) | EmbeddingInput::Texts(_) => {
            MessageContent::Text(request.input.text_parts().join("\n"))
        }
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
            MessageContent::Parts(vec![json!({"type": "file", "file": {"note": "token ids"}})])
        }
    };
    let mut message = ChatMessage::new(Role::User, "");
    message.content = Some(content);
    ChatRequest {
        model: request.model.clone(),
        messages: vec![message],
        ..ChatRequest::default()
    }
}

/// Only "call the named backend" lets the request through: a refusal is answered as chat's
/// are, and a budget's switch to its `on_exhausted` backend (a different model) is refused.
fn check_decision(routed: &Routed, backend: &str) -> Result<(), ApiError> {
    match &routed.decision.action {
        Action::Backend(b) if b == backend => Ok(()),
        Action::Refuse { status, message } => Err(refusal(*status, message)),
        _ => Err(refusal(
            429,
            &format!(
                "budget exhausted ({}); embeddings are not moved to another model, so `{backend}` \
                 is refused",
                routed.decision.reason
            ),
        )),
    }
}
