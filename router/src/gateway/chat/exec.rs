//! Executing a routing decision: the one chain runner and the one cascade step, shared by the
//! whole and the streamed answer.
//!
//! A [`Delivery`] says how one backend is asked and how its answer reaches the client:
//! [`Whole`] calls `chat` and answers with one JSON body; [`Streamed`](super::stream::Streamed)
//! calls `chat_stream`, reads until the first output and forwards the rest as SSE.
//!
//! - [`run_chain`] tries each backend of a chain in order and stops at the first that answers
//!   (whole) or produces its first output (streamed). It falls back only on upstream failures
//!   ([`BackendError::is_upstream_failure`]), and only then: nothing has reached the client
//!   yet, because a stream is handed over only once it has produced output.
//! - [`cascade_step`] asks the cascade's first backend for the whole answer (held back, with
//!   token log-probabilities), judges it with [`cascade::judge`], and either hands the accepted
//!   answer over in the delivery's form ([`Delivery::accepted`]) or escalates through
//!   [`run_chain`]; a rejected answer's cost is kept as wasted. When the escalation cannot
//!   answer because its backends are down or failing (not because the request is bad), the
//!   rejected first answer is delivered after all: a degraded answer beats an error, and the
//!   summary's `escalation_failed` says so.
//!
//! Every attempt is listed in the summary's `tried`; every fallback and cascade verdict is a note
//! in its reason.

use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use backends::{BackendError, ChatRequest, ChatResponse};
use tokio::time::Instant;

use super::json::Whole;
use super::tracker::Tracker;
use crate::gateway::cascade;
use crate::gateway::error::ApiError;
use crate::gateway::{AppState, DynBackend};
use crate::policy::{Action, CascadeSpec, Decision};

/// How a backend is asked and how its answer reaches the client.
pub(crate) trait Delivery {
    /// What a backend hands over once it has answered (whole) or started to (streamed).
    type Answer: Send;

    /// Ask one backend; an error here happened before any output reached the client.
    fn ask(
        backend: Arc<dyn DynBackend>,
        request: ChatRequest,
    ) -> impl Future<Output = Result<Self::Answer, BackendError>> + Send;

    /// A whole answer (a cascade's accepted first answer) in this delivery's form.
    fn accepted(response: ChatResponse) -> Self::Answer;

    /// Answer the client; the tracker records the request's summary.
    fn respond(
        t: Tracker,
        answered: Answered<Self::Answer>,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Response;
}

/// An answer and the backend that gave it.
pub(crate) struct Answered<A> {
    pub(crate) backend: String,
    pub(crate) answer: A,
}

/// Execute `plan`: refuse, run the chain, or take the cascade step.
pub(crate) async fn execute<D: Delivery>(
    state: &AppState,
    t: &mut Tracker,
    plan: &Decision,
    request: &ChatRequest,
) -> Result<Answered<D::Answer>, ApiError> {
    match &plan.action {
        Action::Refuse { status, message } => Err(refusal(*status, message)),
        Action::Backend(name) => {
            run_chain::<D>(state, t, &chain(name, &plan.fallback), request).await
        }
        Action::Cascade(spec) => cascade_step::<D>(state, t, spec, &plan.fallback, request).await,
    }
}

/// The chain runner: the first backend of `names` that answers; fall back on upstream failures.
async fn run_chain<D: Delivery>(
    state: &AppState,
    t: &mut Tracker,
    names: &[String],
    request: &ChatRequest,
) -> Result<Answered<D::Answer>, ApiError> {
    try_chain::<D>(state, t, names, request)
        .await
        .map_err(|f| f.error)
}

/// Why a chain gave no answer: the error for the client, and whether it was the backends'
/// fault (an upstream failure, a backend down) rather than the request's.
struct ChainFailure {
    error: ApiError,
    upstream: bool,
}

/// [`run_chain`], telling an upstream failure from a bad request.
async fn try_chain<D: Delivery>(
    state: &AppState,
    t: &mut Tracker,
    names: &[String],
    request: &ChatRequest,
) -> Result<Answered<D::Answer>, ChainFailure> {
    let mut last = None;
    for (i, name) in names.iter().enumerate() {
        match attempt::<D>(state, t, name, request.clone()).await {
            Ok(answer) => {
                return Ok(Answered {
                    backend: name.clone(),
                    answer,
                })
            }
            Err(e) if e.is_upstream_failure() && i + 1 < names.len() => {
                tracing::warn!(backend = %name, error = %e, "backend failed before any output; falling back");
                t.note(format!("`{name}` failed ({}); fell back", e.code()));
                last = Some(ApiError::from_backend(name, &e));
            }
            Err(e) => {
                return Err(ChainFailure {
                    error: ApiError::from_backend(name, &e),
                    upstream: e.is_upstream_failure(),
                })
            }
        }
    }
    Err(ChainFailure {
        error: last.unwrap_or_else(|| ApiError::unavailable("no backend to answer this request")),
        upstream: true,
    })
}

/// The cascade step: the first backend's whole answer if the judge accepts it, else the
/// escalation chain's answer — or, when every backend of that chain is down or fails upstream
/// (missing key, connection refused, 5xx), the first answer after all, marked
/// `escalation_failed` (header, ledger) instead of an error.
async fn cascade_step<D: Delivery>(
    state: &AppState,
    t: &mut Tracker,
    spec: &CascadeSpec,
    fallback: &[String],
    request: &ChatRequest,
) -> Result<Answered<D::Answer>, ApiError> {
    let rejected = match attempt::<Whole>(state, t, &spec.first, first_step_request(request)).await
    {
        Ok(response) => {
            let verdict = cascade::judge(spec, request, &response);
            t.s.confidence = verdict.confidence;
            t.signal = Some(match verdict.value {
                Some(v) => format!("{}={v:.6}", verdict.signal),
                None => format!("{}=none", verdict.signal),
            });
            t.note(format!("cascade: {}", verdict.reason));
            if verdict.accept {
                return Ok(Answered {
                    backend: spec.first.clone(),
                    answer: D::accepted(response),
                });
            }
            Some(response)
        }
        Err(e) => {
            t.note(format!(
                "cascade: `{}` failed ({}); escalating",
                spec.first,
                e.code()
            ));
            None
        }
    };
    t.s.escalated = true;
    match try_chain::<D>(state, t, &chain(&spec.escalate_to, fallback), request).await {
        Ok(answered) => {
            if let Some(response) = &rejected {
                t.wasted(&spec.first, response);
            }
            Ok(answered)
        }
        Err(failure) => match rejected {
            Some(response) if failure.upstream => {
                let code = failure.error.ledger_code();
                tracing::warn!(
                    escalate_to = %spec.escalate_to,
                    error = %failure.error,
                    "cascade escalation failed; answering with the first step's answer"
                );
                t.note(format!(
                    "cascade: escalation to `{}` failed ({code}); kept `{}`'s answer",
                    spec.escalate_to, spec.first
                ));
                t.s.escalated = false;
                t.s.escalation_failed = Some(code);
                Ok(Answered {
                    backend: spec.first.clone(),
                    answer: D::accepted(response),
                })
            }
            _ => Err(failure.error),
        },
    }
}

/// Ask backend `name`, listing it in the summary's `tried`.
async fn attempt<D: Delivery>(
    state: &AppState,
    t: &mut Tracker,
    name: &str,
    request: ChatRequest,
) -> Result<D::Answer, BackendError> {
    t.s.tried.push(name.to_string());
    let slot = state
        .inner
        .backends
        .get(name)
        .ok_or_else(|| missing_backend(name))?;
    let handle = slot.handle()?.clone();
    D::ask(handle, request_for(state, name, request)).await
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

/// The request a cascade's first step sends: the whole answer at once (it is held back until
/// accepted), with token log-probabilities.
fn first_step_request(request: &ChatRequest) -> ChatRequest {
    let mut r = request.clone();
    r.logprobs = Some(true);
    r.stream = Some(false);
    r.stream_options = None;
    r
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

pub(crate) fn refusal(status: u16, message: &str) -> ApiError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    let (kind, code) = match status.as_u16() {
        429 => ("rate_limit_error", "budget_exhausted"),
        403 => ("permission_error", "refused_by_policy"),
        s if s >= 500 => ("api_error", "refused_by_policy"),
        _ => ("invalid_request_error", "refused_by_policy"),
    };
    ApiError::new(status, kind, message).with_code(code)
}
