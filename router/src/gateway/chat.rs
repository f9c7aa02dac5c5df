//! `POST /v1/chat/completions`: from bytes to a complete answer or a well-formed error.
//!
//! 1. Check the key, read the body (size limit → 413), parse it naming the bad field (→ 400).
//! 2. Resolve `model`: a policy model (`auto`, names rules match on) asks the [`RoutingCore`](super::RoutingCore) for a
//!    decision ([`Routed`]); a backend name pins that backend (the policy still applies its
//!    privacy and budget guards); anything else is 404 `model_not_found`.
//!    The task hint comes from header `x-triage-task`, else `metadata.task`; without one the
//!    core classifies.
//! 3. Execute the plan: call the backend, falling back along the plan's list on upstream errors
//!    *before any token reached the client*; a cascade asks its first backend for the whole
//!    answer (held back in streaming mode), keeps it if [`cascade::judge`] accepts, else
//!    escalates; a refusal is answered as an error (429 for budgets).
//! 4. Stream or return the answer with `x-triage-*` headers. For streams the cost is known only
//!    at the end: it is sent in the usage chunk's extra `triage` object (when
//!    `stream_options.include_usage`) and always in a final SSE comment
//!    `: triage cost_usd=… saved_usd=…` before `data: [DONE]`; the `x-triage-cost-usd` header is
//!    omitted on streams. A failure after the first token becomes an SSE `data:` line holding an
//!    OpenAI error object, and the stream ends (without `[DONE]`).
//!
//! Every request, whatever happens, ends in exactly one summary (ledger row, metrics, event):
//! the [`Tracker`] records it when the request finishes, or — if the client went away and the
//! response was dropped — from its `Drop`, with status 499.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use backends::{
    BackendError, ChatEvent, ChatRequest, ChatResponse, EventStream, FinishReason, Usage,
};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::cascade;
use super::core::{RouteInput, Routed};
use super::error::ApiError;
use super::sse::ChunkHeader;
use super::AppState;
use crate::events::RequestSummary;
use crate::policy::{Action, Decision};
use crate::pricing::{self, CostBreakdown};

use crate::headers::{
    BACKEND as HEADER_BACKEND, COST as HEADER_COST, ESCALATED as HEADER_ESCALATED,
    REQUEST_ID as HEADER_REQUEST_ID, ROUTE as HEADER_ROUTE, TASK as HEADER_TASK,
};

/// The handler.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut t = Tracker::new(state.clone());
    let (request, routed) = match prepare(&state, &headers, body, &mut t) {
        Ok(x) => x,
        Err(e) => return t.fail(e),
    };
    t.routed(&routed);
    let plan = routed.decision;
    let deadline = t.arrived + state.inner.options.request_deadline;
    if request.is_stream() {
        let opened = tokio::time::timeout_at(
            deadline.into(),
            open_stream(&state, &mut t, &plan, request.clone()),
        )
        .await;
        match opened {
            Ok(Ok(opened)) => stream_response(t, opened, &request, deadline),
            Ok(Err(e)) => t.fail(e),
            Err(_) => t.fail(ApiError::deadline(state.inner.options.request_deadline)),
        }
    } else {
        let answered =
            tokio::time::timeout_at(deadline.into(), answer(&state, &mut t, &plan, request)).await;
        match answered {
            Ok(Ok(response)) => json_response(t, response),
            Ok(Err(e)) => t.fail(e),
            Err(_) => t.fail(ApiError::deadline(state.inner.options.request_deadline)),
        }
    }
}

/// Key, body, parse, validation and plan.
fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    t: &mut Tracker,
) -> Result<(ChatRequest, Routed), ApiError> {
    let key = state.inner.auth.check(headers)?;
    t.s.key = key.clone();
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(state.inner.options.body_limit_bytes)
        } else {
            ApiError::bad_request(format!("Could not read the request body: {r}"), None)
        }
    })?;
    let request = parse_request(&bytes)?;
    t.s.model = request.model.clone();
    t.s.stream = request.is_stream();
    validate(&request)?;
    let plan = resolve(state, &request, headers, key.as_deref())?;
    Ok((request, plan))
}

/// Parse a chat request, naming the field that is wrong.
pub fn parse_request(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let request: ChatRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        ApiError::bad_request(
            format!("Invalid chat completion request body{at}: {inner}"),
            (path != ".").then_some(path),
        )
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(format!("Invalid chat completion request body: {e}"), None)
    })?;
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
    Ok(())
}

fn resolve(
    state: &AppState,
    request: &ChatRequest,
    headers: &HeaderMap,
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
    let task_header = headers
        .get(HEADER_TASK)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let local = state.inner.backends.local_loads();
    Ok(state.inner.core.decide(&RouteInput {
        request,
        tenant,
        task_header,
        pinned: if policy_model { None } else { pinned },
        local: &local,
    }))
}

/// The backends to try for a routed step: the chosen one, then the plan's fallbacks.
fn chain(first: &str, fallback: &[String]) -> Vec<String> {
    let mut out = vec![first.to_string()];
    for f in fallback {
        if !out.contains(f) {
            out.push(f.clone());
        }
    }
    out
}

fn refusal(status: u16, message: &str) -> ApiError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    let (kind, code) = match status.as_u16() {
        429 => ("rate_limit_error", "budget_exhausted"),
        403 => ("permission_error", "refused_by_policy"),
        s if s >= 500 => ("api_error", "refused_by_policy"),
        _ => ("invalid_request_error", "refused_by_policy"),
    };
    ApiError::new(status, kind, message).with_code(code)
}

/// Prepare the request for one backend: its upstream model id when configured.
fn request_for(state: &AppState, name: &str, mut request: ChatRequest) -> ChatRequest {
    if let Some(model) = state
        .inner
        .backends
        .get(name)
        .and_then(|s| s.upstream_model.clone())
    {
        request.model = model;
    }
    request
}

fn missing_backend(name: &str) -> BackendError {
    BackendError::Config(format!(
        "the plan names backend `{name}`, which is not configured"
    ))
}

// ---------------------------------------------------------------------------------------------
// Non-streaming

async fn call_one(
    state: &AppState,
    t: &mut Tracker,
    name: &str,
    request: ChatRequest,
) -> Result<ChatResponse, BackendError> {
    t.s.tried.push(name.to_string());
    let slot = state
        .inner
        .backends
        .get(name)
        .ok_or_else(|| missing_backend(name))?;
    let handle = slot.handle()?.clone();
    handle.chat(request_for(state, name, request)).await
}

async fn call_chain(
    state: &AppState,
    t: &mut Tracker,
    names: &[String],
    request: &ChatRequest,
) -> Result<(String, ChatResponse), ApiError> {
    let mut last = None;
    for (i, name) in names.iter().enumerate() {
        match call_one(state, t, name, request.clone()).await {
            Ok(response) => return Ok((name.clone(), response)),
            Err(e) if e.is_upstream_failure() && i + 1 < names.len() => {
                tracing::warn!(backend = %name, error = %e, "backend failed; falling back");
                t.note(format!("`{name}` failed ({}); fell back", e.code()));
                last = Some(ApiError::from_backend(name, &e));
            }
            Err(e) => return Err(ApiError::from_backend(name, &e)),
        }
    }
    Err(last.unwrap_or_else(|| ApiError::unavailable("no backend to answer this request")))
}

/// The request a cascade's first step sends: token log-probabilities asked for.
fn first_step_request(request: &ChatRequest) -> ChatRequest {
    let mut r = request.clone();
    r.logprobs = Some(true);
    r
}

async fn answer(
    state: &AppState,
    t: &mut Tracker,
    plan: &Decision,
    request: ChatRequest,
) -> Result<(String, ChatResponse), ApiError> {
    match &plan.action {
        Action::Refuse { status, message } => Err(refusal(*status, message)),
        Action::Backend(name) => {
            let (backend, response) =
                call_chain(state, t, &chain(name, &plan.fallback), &request).await?;
            t.answered(&backend, &response);
            Ok((backend, response))
        }
        Action::Cascade(c) => {
            match call_one(state, t, &c.first, first_step_request(&request)).await {
                Ok(response) => {
                    let verdict = cascade::judge(c, &request, &response);
                    t.s.confidence = verdict.confidence;
                    t.note(format!("cascade: {}", verdict.reason));
                    if verdict.accept {
                        t.answered(&c.first, &response);
                        return Ok((c.first.clone(), response));
                    }
                    t.wasted(&c.first, &response);
                }
                Err(e) => t.note(format!(
                    "cascade: `{}` failed ({}); escalating",
                    c.first,
                    e.code()
                )),
            }
            t.s.escalated = true;
            let (backend, response) =
                call_chain(state, t, &chain(&c.escalate_to, &plan.fallback), &request).await?;
            t.answered(&backend, &response);
            Ok((backend, response))
        }
    }
}

fn json_response(mut t: Tracker, (backend, mut response): (String, ChatResponse)) -> Response {
    response.id = t.s.id.clone();
    response.object = "chat.completion".into();
    response.created = backends::unix_now();
    response.model = backend;
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
    out
}

// ---------------------------------------------------------------------------------------------
// Streaming

/// A stream that has produced its first output, with what it produced so far.
pub(crate) struct Opened {
    backend: String,
    pending: VecDeque<ChatEvent>,
    rest: Option<EventStream>,
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

/// Open a stream from the first backend of `names` that produces output; fall back otherwise.
async fn open_chain(
    state: &AppState,
    t: &mut Tracker,
    names: &[String],
    request: &ChatRequest,
) -> Result<Opened, ApiError> {
    let mut last = None;
    for (i, name) in names.iter().enumerate() {
        let err = match open_one(state, t, name, request.clone()).await {
            Ok(opened) => return Ok(opened),
            Err(e) => e,
        };
        if err.is_upstream_failure() && i + 1 < names.len() {
            tracing::warn!(backend = %name, error = %err, "backend failed before its first token; falling back");
            t.note(format!("`{name}` failed ({}); fell back", err.code()));
            last = Some(ApiError::from_backend(name, &err));
        } else {
            return Err(ApiError::from_backend(name, &err));
        }
    }
    Err(last.unwrap_or_else(|| ApiError::unavailable("no backend to answer this request")))
}

async fn open_one(
    state: &AppState,
    t: &mut Tracker,
    name: &str,
    request: ChatRequest,
) -> Result<Opened, BackendError> {
    t.s.tried.push(name.to_string());
    let slot = state
        .inner
        .backends
        .get(name)
        .ok_or_else(|| missing_backend(name))?;
    let handle = slot.handle()?.clone();
    let mut stream = handle
        .chat_stream(request_for(state, name, request))
        .await?;
    let mut pending = VecDeque::new();
    while let Some(event) = stream.next().await {
        let event = event?;
        let output = is_output(&event);
        pending.push_back(event);
        if output {
            return Ok(Opened {
                backend: name.to_string(),
                pending,
                rest: Some(stream),
            });
        }
    }
    Err(BackendError::Protocol(
        "stream ended before any token".into(),
    ))
}

/// Replay a whole (accepted) answer as stream events, born now.
fn events_of(response: &ChatResponse) -> VecDeque<ChatEvent> {
    let at = Instant::now();
    let mut out = VecDeque::new();
    for c in &response.choices {
        if let Some(text) = &c.message.content {
            out.push_back(ChatEvent::Token {
                choice: c.index,
                text: text.clone(),
                logprobs: Vec::new(),
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
            at,
        });
    }
    if let Some(usage) = &response.usage {
        out.push_back(ChatEvent::Usage {
            usage: usage.clone(),
            at,
        });
    }
    out
}

async fn open_stream(
    state: &AppState,
    t: &mut Tracker,
    plan: &Decision,
    request: ChatRequest,
) -> Result<Opened, ApiError> {
    match &plan.action {
        Action::Refuse { status, message } => Err(refusal(*status, message)),
        Action::Backend(name) => open_chain(state, t, &chain(name, &plan.fallback), &request).await,
        Action::Cascade(c) => {
            // The first answer is held back until it is accepted: ask for all of it at once.
            let mut first = first_step_request(&request);
            first.stream = Some(false);
            first.stream_options = None;
            match call_one(state, t, &c.first, first).await {
                Ok(response) => {
                    let verdict = cascade::judge(c, &request, &response);
                    t.s.confidence = verdict.confidence;
                    t.note(format!("cascade: {}", verdict.reason));
                    if verdict.accept {
                        t.busy_secs += response.timings.engine_busy_secs;
                        return Ok(Opened {
                            backend: c.first.clone(),
                            pending: events_of(&response),
                            rest: None,
                        });
                    }
                    t.wasted(&c.first, &response);
                }
                Err(e) => t.note(format!(
                    "cascade: `{}` failed ({}); escalating",
                    c.first,
                    e.code()
                )),
            }
            t.s.escalated = true;
            open_chain(state, t, &chain(&c.escalate_to, &plan.fallback), &request).await
        }
    }
}

fn stream_response(
    mut t: Tracker,
    opened: Opened,
    request: &ChatRequest,
    deadline: Instant,
) -> Response {
    t.s.backend = Some(opened.backend.clone());
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let header = ChunkHeader {
        id: t.s.id.clone(),
        created: backends::unix_now(),
        model: opened.backend.clone(),
        include_usage,
    };
    let mut headers = HeaderMap::new();
    t.headers(&mut headers, None);
    let deadline_after = t.state.inner.options.request_deadline;
    let body = sse_body(t, opened, header, deadline, deadline_after);
    let mut out = Sse::new(body).into_response();
    out.headers_mut().extend(headers);
    out
}

fn sse_body(
    mut t: Tracker,
    opened: Opened,
    header: ChunkHeader,
    deadline: Instant,
    deadline_after: std::time::Duration,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let Opened {
        backend,
        mut pending,
        mut rest,
    } = opened;
    async_stream::stream! {
        let mut roles = BTreeSet::new();
        let mut finished = BTreeSet::new();
        roles.insert(0u32);
        yield Ok(Event::default().data(header.role(0)));
        loop {
            let next = if let Some(event) = pending.pop_front() {
                Some(Ok(event))
            } else if let Some(stream) = rest.as_mut() {
                match tokio::time::timeout_at(deadline.into(), stream.next()).await {
                    Err(_) => Some(Err(ApiError::deadline(deadline_after))),
                    Ok(None) => None,
                    Ok(Some(Ok(event))) => Some(Ok(event)),
                    Ok(Some(Err(e))) => Some(Err(ApiError::from_backend(&backend, &e))),
                }
            } else {
                None
            };
            let event = match next {
                None => break,
                Some(Ok(event)) => event,
                Some(Err(err)) => {
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
                ChatEvent::Token { choice, text, at, .. } => {
                    t.token(at);
                    yield Ok(Event::default().data(header.content(choice, &text)));
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

// ---------------------------------------------------------------------------------------------
// Tracking

/// Follows one request to its single summary.
pub(crate) struct Tracker {
    state: AppState,
    pub(crate) s: RequestSummary,
    arrived: Instant,
    last_token: Option<Instant>,
    gaps: Vec<f64>,
    pub(crate) usage: Option<Usage>,
    pub(crate) busy_secs: f64,
    /// Calls whose answers were thrown away (a cascade's rejected first answer).
    wasted: Vec<(String, pricing::Usage)>,
    trace: Vec<String>,
    done: bool,
}

impl Tracker {
    fn new(state: AppState) -> Self {
        state.inner.metrics.in_flight(1);
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            state,
            s: RequestSummary {
                id: backends::new_completion_id(),
                unix_ms,
                ..RequestSummary::default()
            },
            arrived: Instant::now(),
            last_token: None,
            gaps: Vec::new(),
            usage: None,
            busy_secs: 0.0,
            wasted: Vec::new(),
            trace: Vec::new(),
            done: false,
        }
    }

    fn routed(&mut self, routed: &Routed) {
        self.s.route = Some(routed.decision.route.clone());
        self.s.reason = Some(routed.decision.reason.clone());
        self.s.task = Some(routed.task.clone());
        self.s.task_source = Some(routed.task_source.clone());
    }

    fn note(&mut self, what: String) {
        self.trace.push(what);
    }

    /// A content token born at `at` reached (or is about to reach) the client.
    fn token(&mut self, at: Instant) {
        let at = at.max(self.arrived);
        if self.s.ttft_ms.is_none() {
            self.s.ttft_ms = Some((at - self.arrived).as_secs_f64() * 1e3);
        }
        if let Some(prev) = self.last_token {
            self.gaps
                .push(at.saturating_duration_since(prev).as_secs_f64());
        }
        self.last_token = Some(at);
    }

    /// The whole answer came from `backend` (non-streaming).
    fn answered(&mut self, backend: &str, response: &ChatResponse) {
        self.s.backend = Some(backend.to_string());
        self.usage = response.usage.clone();
        self.busy_secs += response.timings.engine_busy_secs;
        if let Some(first) = response.timings.first_token {
            let first = first.max(self.arrived);
            self.s.ttft_ms = Some((first - self.arrived).as_secs_f64() * 1e3);
        }
    }

    /// A cascade's first answer was rejected: its cost still counts.
    fn wasted(&mut self, backend: &str, response: &ChatResponse) {
        if let Some(usage) = &response.usage {
            self.wasted.push((
                backend.to_string(),
                pricing::Usage {
                    tokens_in: u64::from(usage.prompt_tokens),
                    tokens_out: u64::from(usage.completion_tokens),
                    engine_busy_secs: response.timings.engine_busy_secs,
                },
            ));
        }
    }

    /// Record the summary once; returns the request's cost.
    fn finish(&mut self, status: u16, error: Option<String>) -> CostBreakdown {
        if self.done {
            return CostBreakdown {
                cost_usd: self.s.cost_usd,
                reference_usd: self.s.cost_usd + self.s.saved_usd,
                saved_usd: self.s.saved_usd,
            };
        }
        self.done = true;
        self.s.status = status;
        self.s.error = error;
        self.s.e2e_ms = self.arrived.elapsed().as_secs_f64() * 1e3;
        let mut calls: Vec<(&str, pricing::Usage)> = self
            .wasted
            .iter()
            .map(|(b, u)| (b.as_str(), u.clone()))
            .collect();
        if let (Some(usage), Some(backend)) = (&self.usage, &self.s.backend) {
            self.s.prompt_tokens = usage.prompt_tokens;
            self.s.completion_tokens = usage.completion_tokens;
            let busy = if self.busy_secs > 0.0 {
                self.busy_secs
            } else {
                // Streams do not report the engine's busy share: use the stream's wall time
                // (an upper bound for a batched local engine).
                self.last_token
                    .map(|l| l.saturating_duration_since(self.arrived).as_secs_f64())
                    .unwrap_or(0.0)
            };
            calls.push((
                backend.as_str(),
                pricing::Usage {
                    tokens_in: u64::from(usage.prompt_tokens),
                    tokens_out: u64::from(usage.completion_tokens),
                    engine_busy_secs: busy,
                },
            ));
        }
        let inner = &self.state.inner;
        let cost = if calls.is_empty() {
            CostBreakdown::default()
        } else {
            inner.core.cost(&calls)
        };
        self.s.cost_usd = cost.cost_usd;
        self.s.saved_usd = cost.saved_usd;
        if !self.trace.is_empty() {
            let extra = self.trace.join("; ");
            self.s.reason = Some(match self.s.reason.take() {
                Some(r) => format!("{r}; {extra}"),
                None => extra,
            });
        }
        if self.s.is_success() {
            if let Some(slot) = self
                .s
                .backend
                .as_deref()
                .and_then(|b| inner.backends.get(b))
            {
                if slot.kind == super::BackendKind::Local {
                    slot.observe(self.s.ttft_ms, self.s.e2e_ms);
                }
            }
        }
        inner.metrics.in_flight(-1);
        inner.metrics.observe(&self.s, &self.gaps);
        inner.core.record(&self.s);
        inner.events.publish(Arc::new(self.s.clone()));
        cost
    }

    /// Answer with an error, recorded.
    fn fail(mut self, err: ApiError) -> Response {
        self.finish(err.status.as_u16(), Some(err.ledger_code()));
        let mut out = err.into_response();
        self.headers(out.headers_mut(), None);
        out
    }

    /// The `x-triage-*` headers known now.
    fn headers(&self, headers: &mut HeaderMap, cost_usd: Option<f64>) {
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        put(HEADER_REQUEST_ID, &self.s.id);
        if let Some(b) = &self.s.backend {
            put(HEADER_BACKEND, b);
        }
        if let Some(r) = &self.s.route {
            put(HEADER_ROUTE, r);
            put(
                HEADER_ESCALATED,
                if self.s.escalated { "true" } else { "false" },
            );
        }
        if let Some(task) = &self.s.task {
            put(HEADER_TASK, task);
        }
        if let Some(c) = cost_usd {
            put(HEADER_COST, &format!("{c:.8}"));
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.done {
            // The response was dropped before it finished: the client went away.
            self.finish(499, Some("client_closed_request".into()));
        }
    }
}
