//! [`Tracker`]: follows one chat (or embeddings) request to its single summary — ledger row, metrics, event —
//! whatever happens.
//!
//! It collects what the request's path learns (route, backends tried, notes for the reason,
//! usage, engine busy seconds, TTFT and inter-token gaps, the cost of a rejected cascade answer)
//! and records the summary once: when the response is complete, when it fails, or — if the
//! client went away and the response was dropped — from its `Drop`, with status 499 (408
//! `write_timeout` when the transport cut a client that stopped reading, 500 `internal_error`
//! when the drop is a panic unwinding). The same cost settles the request's budget reservation
//! ([`Hold`]) exactly once; an answer that ends without the provider's usage is billed the
//! tokens counted on the stream and the prompt tokens routing counted. Its clock starts when the request's headers arrived. It
//! also writes the `x-triage-*` headers known so far.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use backends::{ChatResponse, Usage};

use crate::events::RequestSummary;
use crate::gateway::error::ApiError;
use crate::gateway::routing::Routed;
use crate::gateway::transport::{Arrival, ConnState};
use crate::gateway::AppState;
use crate::headers::{
    BACKEND as HEADER_BACKEND, COST as HEADER_COST, ESCALATED as HEADER_ESCALATED,
    ESCALATION_FAILED as HEADER_ESCALATION_FAILED, REQUEST_ID as HEADER_REQUEST_ID,
    ROUTE as HEADER_ROUTE, SIGNAL as HEADER_SIGNAL, TASK as HEADER_TASK,
};
use crate::policy::Locality;
use crate::pricing::{self, CostBreakdown};
use crate::reserve::Hold;
use crate::stages::{Stage, Stages};

/// Follows one request to its single summary.
pub(crate) struct Tracker {
    state: AppState,
    pub(crate) s: RequestSummary,
    arrived: Instant,
    last_token: Option<Instant>,
    gaps: Vec<f64>,
    pub(crate) usage: Option<Usage>,
    /// The cascade signal judged and its value (`p_chosen=0.8123`), when a cascade ran.
    pub(crate) signal: Option<String>,
    /// Seconds the local engine spent on the answer, once a backend reported them.
    busy_secs: Option<f64>,
    /// Calls whose answers were thrown away (a cascade's rejected first answer).
    wasted: Vec<(String, pricing::Usage)>,
    trace: Vec<String>,
    done: bool,
    /// The connection the request came on, to tell a write timeout from a client leaving.
    connection: Option<Arc<ConnState>>,
    /// The request's budget reservation, settled with the summary's cost.
    hold: Option<Hold>,
    /// Output events (tokens) that reached the client: billed when usage never arrived.
    streamed: u32,
    /// The prompt's tokens as routing counted them: billed when usage never arrived.
    prompt_tokens: u32,
    /// Where the request's time went, stage by stage (`triage_stage_seconds`, `Server-Timing`).
    pub(crate) stages: Stages,
    /// Whether the answer is streamed (its time after the first byte is the stream's, not a
    /// stage of the gateway's).
    streaming: bool,
    /// Which part of the task classifier decided, and its probability (`x-triage-classifier`).
    classifier: Option<String>,
}

impl Tracker {
    /// Follow a request whose headers arrived at `arrival`.
    pub(crate) fn new(state: AppState, arrival: Arrival) -> Self {
        state.inner.metrics.in_flight(1);
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let arrived = arrival.at.into_std();
        let mut stages = Stages::starting(arrived);
        // The handler starts once the body has been read whole.
        stages.mark(Stage::body_read);
        Self {
            stages,
            streaming: false,
            state,
            s: RequestSummary {
                id: backends::new_completion_id(),
                unix_ms,
                ..RequestSummary::default()
            },
            arrived,
            last_token: None,
            gaps: Vec::new(),
            usage: None,
            signal: None,
            busy_secs: None,
            wasted: Vec::new(),
            trace: Vec::new(),
            done: false,
            connection: arrival.connection,
            hold: None,
            streamed: 0,
            prompt_tokens: 0,
            classifier: None,
        }
    }

    pub(crate) fn routed(&mut self, routed: &Routed) {
        self.s.route = Some(routed.decision.route.clone());
        self.s.reason = Some(routed.decision.reason.clone());
        self.s.task = Some(routed.task.clone());
        self.s.task_source = Some(routed.task_source.clone());
        self.classifier.clone_from(&routed.classifier);
        self.prompt_tokens = routed.prompt_tokens;
        if let Some(hold) = routed.hold.take() {
            self.hold = Some(hold);
        }
    }

    /// The prompt's tokens as routing counted them (before any usage arrived).
    pub(crate) fn routed_prompt_tokens(&self) -> u32 {
        self.prompt_tokens
    }

    /// When the request's deadline passes (its budget reservation expires then).
    pub(crate) fn expires(&self) -> Instant {
        self.arrived + self.state.inner.options.request_deadline
    }

    pub(crate) fn note(&mut self, what: String) {
        self.trace.push(what);
    }

    /// A content token born at `at` reached (or is about to reach) the client.
    pub(crate) fn token(&mut self, at: Instant) {
        let at = at.max(self.arrived);
        if !self.streaming {
            self.streaming = true;
            self.stages.mark_at(Stage::upstream_first_byte, at);
        }
        self.streamed = self.streamed.saturating_add(1);
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
    pub(crate) fn answered(&mut self, backend: &str, response: &ChatResponse) {
        self.s.backend = Some(backend.to_string());
        self.usage = response.usage.clone();
        self.add_busy(response.timings.engine_busy_secs);
        let timings = &response.timings;
        self.stages
            .upstream(timings.started, timings.first_byte, timings.finished);
        if let Some(first) = response.timings.first_token {
            let first = first.max(self.arrived);
            self.s.ttft_ms = Some((first - self.arrived).as_secs_f64() * 1e3);
        }
    }

    /// The engine spent `secs` on the answer (a `LocalCompute` event, or a whole answer's
    /// timings).
    pub(crate) fn add_busy(&mut self, secs: f64) {
        *self.busy_secs.get_or_insert(0.0) += secs;
    }

    /// The request's deadline, counted from its arrival (named in timeout errors).
    pub(crate) fn request_deadline(&self) -> Duration {
        self.state.inner.options.request_deadline
    }

    /// The embeddings answer came from `backend`: its prompt tokens are billed (nothing is
    /// generated), with the engine's busy share for a local model.
    pub(crate) fn embedded(&mut self, backend: &str, response: &backends::EmbeddingResponse) {
        self.s.backend = Some(backend.to_string());
        self.s.tried.push(backend.to_string());
        let tokens = u32::try_from(response.usage.prompt_tokens).unwrap_or(u32::MAX);
        self.usage = Some(Usage {
            prompt_tokens: tokens,
            completion_tokens: 0,
            total_tokens: tokens,
            ..Usage::default()
        });
        self.add_busy(response.engine_busy_secs);
    }

    /// A cascade's first answer was rejected: its cost still counts.
    pub(crate) fn wasted(&mut self, backend: &str, response: &ChatResponse) {
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
    pub(crate) fn finish(&mut self, status: u16, error: Option<String>) -> CostBreakdown {
        if self.done {
            return CostBreakdown {
                cost_usd: self.s.cost_usd,
                reference_usd: self.s.cost_usd + self.s.saved_usd,
                saved_usd: self.s.saved_usd,
            };
        }
        self.done = true;
        let recording = Instant::now();
        if !self.streaming {
            self.stages.mark_at(Stage::respond, recording);
        }
        self.s.status = status;
        self.s.error = error;
        self.s.e2e_ms = self.arrived.elapsed().as_secs_f64() * 1e3;
        let mut calls: Vec<(&str, pricing::Usage)> = self
            .wasted
            .iter()
            .map(|(b, u)| (b.as_str(), u.clone()))
            .collect();
        if self.usage.is_none() && self.streamed > 0 {
            // The answer ended without the provider's usage (a disconnect, an error mid-stream,
            // an upstream that sends none): bill what was counted, never $0.
            self.usage = Some(Usage {
                prompt_tokens: self.prompt_tokens,
                completion_tokens: self.streamed,
                total_tokens: self.prompt_tokens.saturating_add(self.streamed),
                ..Usage::default()
            });
        }
        if let (Some(usage), Some(backend)) = (&self.usage, &self.s.backend) {
            self.s.prompt_tokens = usage.prompt_tokens;
            self.s.completion_tokens = usage.completion_tokens;
            let busy = self.busy_secs.unwrap_or_else(|| {
                // No backend reported the engine's busy share: use the stream's wall time (an
                // upper bound for a batched local engine).
                self.last_token
                    .map(|l| l.saturating_duration_since(self.arrived).as_secs_f64())
                    .unwrap_or(0.0)
            });
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
        if let Some(hold) = self.hold.take() {
            // The same cost as the ledger row, exactly once; nothing spent releases it.
            let tokens: u64 = calls.iter().map(|(_, u)| u.tokens_in + u.tokens_out).sum();
            hold.settle(cost.cost_usd, tokens);
        }
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
                if slot.kind == Locality::Local {
                    slot.observe(self.s.ttft_ms, self.s.e2e_ms);
                }
            }
        }
        inner.metrics.in_flight(-1);
        inner.metrics.observe(&self.s, &self.gaps);
        inner.core.record(&self.s);
        inner.events.publish(Arc::new(self.s.clone()));
        self.stages.mark(Stage::record);
        inner.metrics.observe_stages(&self.stages);
        cost
    }

    /// Answer with an error, recorded.
    pub(crate) fn fail(mut self, err: ApiError) -> Response {
        self.finish(err.status.as_u16(), Some(err.ledger_code()));
        let mut out = err.into_response();
        self.headers(out.headers_mut(), None);
        self.server_timing(out.headers_mut());
        out
    }

    /// The `Server-Timing` header: the stages passed so far, in milliseconds.
    pub(crate) fn server_timing(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.stages.server_timing()) {
            headers.insert(HeaderName::from_static("server-timing"), v);
        }
    }

    /// The `x-triage-*` headers known now.
    pub(crate) fn headers(&self, headers: &mut HeaderMap, cost_usd: Option<f64>) {
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
        if let Some(code) = &self.s.escalation_failed {
            put(HEADER_ESCALATION_FAILED, code);
        }
        if let Some(task) = &self.s.task {
            put(HEADER_TASK, task);
        }
        if let Some(c) = &self.classifier {
            put(crate::headers::CLASSIFIER, c);
        }
        if let Some(signal) = &self.signal {
            put(HEADER_SIGNAL, signal);
        }
        if let Some(c) = cost_usd {
            put(HEADER_COST, &format!("{c:.8}"));
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if std::thread::panicking() {
            // A panic is unwinding through the handler: the client is answered 500.
            self.finish(500, Some("internal_error".into()));
        } else if self
            .connection
            .as_ref()
            .is_some_and(|c| c.write_timed_out())
        {
            // The transport cut a client that stopped reading (`server.write_timeout`).
            self.finish(408, Some("write_timeout".into()));
        } else {
            // The response was dropped before it finished: the client went away.
            self.finish(499, Some("client_closed_request".into()));
        }
    }
}
