//! `POST /v1/chat/completions`: from bytes to a complete answer or a well-formed error.
//!
//! One path for every request, whole (JSON) or streamed (SSE):
//!
//! 1. [`chat_completions`] checks the key first (a refusal is a 401 counted in metrics, with no
//!    ledger row; the prologue every model endpoint shares, `gateway::prologue`), then
//!    [`serve_chat`] (which `/v1/messages` shares too): the content type (only
//!    `application/json`, else 415), read the body (size limit → 413), parse it naming the bad
//!    field ([`parse_request`], → 400), `validate` it (task names from `x-triage-task` and
//!    `metadata.task`: at most 64 of `[a-z0-9_.-]`, uppercase folded, else 400).
//! 2. `resolve`: a policy model (`auto`, names rules match on) asks the
//!    [`RoutingCore`](super::RoutingCore) to decide ([`Routed`]), then to admit the decision
//!    (budget reservation and rate limits: the one await before execution; 429/503 here); a backend name pins that
//!    backend (the policy still applies its privacy and budget guards); anything else is 404
//!    `model_not_found`. The task hint comes from header `x-triage-task`, else `metadata.task`;
//!    without one the core classifies.
//! 3. `exec.rs`: execute the plan within the request deadline, with one chain runner and one
//!    cascade step: fall back along the plan's list on upstream errors *before any output
//!    reached the client*; a cascade asks its first backend for the whole answer (held back),
//!    keeps it if [`cascade::judge`](super::cascade::judge) accepts, else escalates; a refusal
//!    is answered as an error (429 for budgets). A `Delivery` says how a backend is asked and
//!    how the answer leaves: `Whole` (`json.rs`) or `Streamed` (`stream.rs`).
//! 4. Respond with the `x-triage-*` headers: one JSON body, or SSE. For streams the cost is
//!    known only at the end: it is sent in the usage chunk's extra `triage` object (when
//!    `stream_options.include_usage`) and always in a final SSE comment
//!    `: triage backend=… cost_usd=… saved_usd=…` before `data: [DONE]`; the
//!    `x-triage-cost-usd` header is omitted on streams. A failure after the first token becomes
//!    an SSE `data:` line holding an OpenAI error object, and the stream ends (without
//!    `[DONE]`).
//!
//! Every request, whatever happens, ends in exactly one summary (ledger row, metrics, event):
//! the `Tracker` (`tracker.rs`) records it when the request finishes, or — if the client went
//! away and the response was dropped — from its `Drop`, with status 499. The request deadline
//! and the ledger's timings count from the headers' arrival (`transport::Arrival`), so a body
//! that is slow to arrive (at most `server.body_read_timeout`, else 408) eats into the deadline.

pub(crate) mod exec;
pub(crate) mod json;
mod shape;
pub(crate) mod stream;
pub(crate) mod tracker;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backends::ChatRequest;
use tokio::time::Instant;

use super::error::ApiError;
use super::prologue::{self, Started};
use super::routing::{AdmitInput, RouteInput, Routed, TokenCounter};
use super::transport::{body_timed_out, Arrival};
use super::AppState;
use crate::headers::TASK as HEADER_TASK;
use crate::stages::Stage;
use exec::Delivery;
use tracker::Tracker;

/// The handler.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    arrival: Option<Extension<Arrival>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match prologue::start(&state, arrival, &headers, "chat") {
        Ok(started) => {
            serve_chat::<stream::Streamed, json::Whole>(
                state,
                started,
                &headers,
                body,
                parse_request_keeping_body,
            )
            .await
        }
        Err(refused) => refused.into_response(),
    }
}

/// A chat-shaped request past its key check (chat completions, and messages once converted):
/// body, `parse`, validation and plan, admission, then the answer, streamed by `S` or whole by
/// `W`. Every error from here on is the tracker's ledger row.
pub(crate) async fn serve_chat<S: Delivery, W: Delivery>(
    state: AppState,
    started: Started,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&Bytes) -> Result<ChatRequest, ApiError>,
) -> Response {
    let Started { mut t, deadline } = started;
    let request = match read_body(&state, headers, body).and_then(|bytes| parse(&bytes)) {
        Ok(request) => request,
        Err(e) => return t.fail(e),
    };
    t.stages.mark(Stage::parse);
    let decided = match plan(&state, headers, &request, &mut t).await {
        Ok(routed) => routed,
        Err(e) => return t.fail(e),
    };
    t.stages.mark(Stage::decide);
    let routed = match admit(&state, &mut t, &request, decided).await {
        Ok(routed) => routed,
        Err(e) => return t.fail(e),
    };
    t.stages.mark(Stage::admit);
    if request.is_stream() {
        answer::<S>(state, t, routed, request, deadline).await
    } else {
        answer::<W>(state, t, routed, request, deadline).await
    }
}

/// Execute the plan within the deadline and deliver the answer (or the error).
pub(crate) async fn answer<D: Delivery>(
    state: AppState,
    mut t: Tracker,
    routed: Routed,
    request: ChatRequest,
    deadline: Instant,
) -> Response {
    let plan = routed.decision;
    if Instant::now() >= deadline {
        // The body took the whole deadline: no backend is asked (a quick one would answer
        // before the timer below is first checked).
        return t.fail(ApiError::deadline(state.inner.options.request_deadline));
    }
    let executed = tokio::time::timeout_at(
        deadline,
        exec::execute::<D>(&state, &mut t, &plan, &request),
    )
    .await;
    match executed {
        Ok(Ok(answered)) => D::respond(t, answered, &request, deadline),
        Ok(Err(e)) => t.fail(e),
        Err(_) => t.fail(ApiError::deadline(state.inner.options.request_deadline)),
    }
}

/// The request body, if it is declared JSON and arrived whole, in time and within the size
/// limit.
pub(crate) fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    check_content_type(headers)?;
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(state.inner.options.body_limit_bytes)
        } else if body_timed_out(&r) {
            let after = state.inner.options.transport.body_read_timeout;
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                format!(
                    "The request body did not arrive within {after:?} of its headers \
                     (server.body_read_timeout)"
                ),
            )
            .with_code("body_read_timeout")
        } else {
            ApiError::bad_request(format!("Could not read the request body: {r}"), None)
        }
    })
}

/// Validate a parsed request and ask the routing core for its plan (noting model and stream
/// in the summary first, so a refusal's ledger row names them).
pub(crate) async fn plan(
    state: &AppState,
    headers: &HeaderMap,
    request: &ChatRequest,
    t: &mut Tracker,
) -> Result<Routed, ApiError> {
    t.s.model = request.model.clone();
    t.s.stream = request.is_stream();
    validate(request)?;
    let task_header = task_header(headers)?;
    resolve(state, request, task_header.as_deref(), t.s.key.as_deref()).await
}

/// Admit a decided plan (budget reservation, rate limits: the one await before execution;
/// 429/503 here). A refusal still records the decision, so its ledger row names the route.
pub(crate) async fn admit(
    state: &AppState,
    t: &mut Tracker,
    request: &ChatRequest,
    decided: Routed,
) -> Result<Routed, ApiError> {
    let admitted = state.inner.core.admit(
        decided.clone(),
        AdmitInput {
            request,
            tenant: t.s.key.as_deref(),
            expires: t.expires(),
        },
    );
    match admitted.await {
        Ok(routed) => {
            t.routed(&routed);
            Ok(routed)
        }
        Err(e) => {
            t.routed(&decided);
            Err(e)
        }
    }
}

/// Only JSON bodies are read: `Content-Type: application/json`, parameters (`; charset=utf-8`)
/// allowed, case-insensitive; anything else, or none, is 415.
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Err(ApiError::unsupported_media_type(None));
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(Some(&text)))
    }
}

/// The task named by `x-triage-task`, checked ([`crate::task_name::validate`]); `None` when the
/// header is absent or blank.
fn task_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER_TASK) else {
        return Ok(None);
    };
    let raw = value.to_str().map_err(|_| {
        ApiError::bad_request(
            format!("The `{HEADER_TASK}` header must be a task name of a-z, 0-9, `_`, `.` and `-`"),
            None,
        )
    })?;
    let name = crate::task_name::validate(raw)
        .map_err(|e| ApiError::bad_request(format!("The `{HEADER_TASK}` header {e}"), None))?;
    Ok((!name.is_empty()).then_some(name))
}

/// Parse a chat request, naming the field that is wrong.
pub fn parse_request(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    prologue::parse_json(bytes, "chat completion", prologue::no_hint)
}

/// [`parse_request`], keeping the body with the request (`ChatRequest::client_body`): a remote
/// OpenAI-compatible backend forwards its `messages` bytes instead of re-serializing them. The
/// gateway never changes a request's messages after this point.
fn parse_request_keeping_body(bytes: &Bytes) -> Result<ChatRequest, ApiError> {
    let mut request = parse_request(bytes)?;
    request.client_body = backends::ClientBody::new(bytes.clone());
    Ok(request)
}

fn validate(request: &ChatRequest) -> Result<(), ApiError> {
    if request.model.trim().is_empty() {
        return Err(ApiError::bad_request(
            "You must provide a model parameter (`auto`, a route or a backend name)",
            Some("model".into()),
        ));
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_request(
            "`messages` must contain at least one message",
            Some("messages".into()),
        ));
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request(
            "triage answers one choice per request: `n` must be 1",
            Some("n".into()),
        ));
    }
    if let Some(n) = request
        .top_logprobs
        .filter(|&n| n > backends::MAX_TOP_LOGPROBS)
    {
        return Err(ApiError::bad_request(
            format!(
                "`top_logprobs` must be between 0 and {}, got {n}",
                backends::MAX_TOP_LOGPROBS
            ),
            Some("top_logprobs".into()),
        ));
    }
    shape::check(request)?;
    if let Some(task) = request
        .metadata
        .as_ref()
        .and_then(|m| m.get("task"))
        .and_then(|t| t.as_str())
    {
        crate::task_name::validate(task).map_err(|e| {
            ApiError::bad_request(format!("`metadata.task` {e}"), Some("metadata.task".into()))
        })?;
    }
    Ok(())
}

async fn resolve(
    state: &AppState,
    request: &ChatRequest,
    task_header: Option<&str>,
    tenant: Option<&str>,
) -> Result<Routed, ApiError> {
    let model = request.model.as_str();
    let policy_model = state.inner.policy_models.iter().any(|m| m == model);
    let pinned = state.inner.backends.get(model).map(|s| s.name.as_str());
    if !policy_model && pinned.is_none() {
        let mut known = state.inner.policy_models.clone();
        known.extend(state.inner.backends.names());
        return Err(ApiError::model_not_found(model, &known));
    }
    let pinned = if policy_model { None } else { pinned };
    let backends = &state.inner.backends;
    // The embedding classifier's one await (its vector from the encoder thread); only for
    // requests the policy routes and whose task nobody stated.
    let classified = match pinned {
        Some(_) => None,
        None => {
            state
                .inner
                .core
                .classify(request, task_header, backends.task_encoder())
                .await
        }
    };
    let local = backends.local_loads();
    let count = |r: &ChatRequest| backends.count_prompt_tokens(r);
    Ok(state.inner.core.decide(&RouteInput {
        request,
        tenant,
        task_header,
        pinned,
        local: &local,
        count_tokens: Some(TokenCounter(&count)),
        classified: classified.as_ref(),
    }))
}
