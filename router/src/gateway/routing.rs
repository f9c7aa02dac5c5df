//! The seam between the gateway (HTTP, streaming, execution) and the routing brain (facts,
//! policy, pricing, budgets, ledger).
//!
//! The gateway asks a [`RoutingCore`] for a [`Routed`] decision and, once the request is over,
//! for its cost and to record it; it executes decisions (route, fallback, cascade, refuse)
//! itself. [`PolicyCore`](super::configured_routing::PolicyCore) is the real core, built from
//! `triage.yaml`; tests may script one.

use std::collections::BTreeMap;
use std::sync::Arc;

use backends::ChatRequest;
use futures::future::BoxFuture;
use serde::Serialize;

use super::backend::BackendSlot;
use super::error::ApiError;
use crate::classifier::Classification;
use crate::events::RequestSummary;
use crate::policy::{Decision, LocalLoad};
use crate::pricing::{CostBreakdown, Usage};

/// What the core sees of one request.
#[derive(Clone, Copy, Debug)]
pub struct RouteInput<'a> {
    /// The client's request.
    pub request: &'a ChatRequest,
    /// Tenant (or hashed key label) of the API key used, when keys are configured.
    pub tenant: Option<&'a str>,
    /// The `x-triage-task` header.
    pub task_header: Option<&'a str>,
    /// The backend the request's `model` names, if it names one (no rules apply then, but the
    /// privacy and budget guards do).
    pub pinned: Option<&'a str>,
    /// Load of each local backend right now (spill decisions).
    pub local: &'a BTreeMap<String, LocalLoad>,
    /// Counts the prompt's tokens with a local tokenizer, when one is loaded. Called only when
    /// a rule has a `prompt_tokens` condition (tokenizing costs time on every request).
    pub count_tokens: Option<TokenCounter<'a>>,
    /// The task classifier's answer when [`RoutingCore::classify`] awaited one (the embedding
    /// classifier); `None`: the core classifies synchronously if it needs to.
    pub classified: Option<&'a Classification>,
}

/// What admission sees of a decided request.
#[derive(Clone, Copy, Debug)]
pub struct AdmitInput<'a> {
    /// The client's request (its `max_tokens` bounds the reservation).
    pub request: &'a ChatRequest,
    /// Tenant (or hashed key label) of the API key used: its budgets and rate limits apply.
    pub tenant: Option<&'a str>,
    /// When the request's deadline passes: its budget reservation expires then.
    pub expires: std::time::Instant,
}

/// Counts a request's prompt tokens with a local tokenizer (`None`: it could not).
#[derive(Clone, Copy)]
pub struct TokenCounter<'a>(pub &'a (dyn Fn(&ChatRequest) -> Option<usize> + Sync));

impl std::fmt::Debug for TokenCounter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCounter")
    }
}

/// A decision with the task it was made for.
#[derive(Clone, Debug, PartialEq)]
pub struct Routed {
    /// Where the request goes and why.
    pub decision: Decision,
    /// The task it was routed as.
    pub task: String,
    /// `header`, `metadata` or `classifier`.
    pub task_source: String,
    /// When the classifier decided: which part and its probability (`embedding p=0.91`), for
    /// the `x-triage-classifier` header.
    pub classifier: Option<String>,
    /// The prompt's tokens as routing counted them (exact where the local tokenizer counted,
    /// else estimated): billed when an answer ends without the provider's usage.
    pub prompt_tokens: u32,
    /// The request's budget reservation, settled when the answer ends (empty without budgets).
    pub hold: crate::reserve::HoldSlot,
}

/// A model name clients may send besides backend names, or a route, for `/v1/models`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    /// The name clients send as `model` (`auto`, a route name).
    pub name: String,
    /// What sending it does, for `/v1/models`.
    pub description: String,
}

/// The routing brain behind the gateway.
pub trait RoutingCore: Send + Sync {
    /// Model names that go through the policy (`auto`, and names the rules match on).
    fn policy_models(&self) -> Vec<RouteInfo>;
    /// The routes (rules), for `/v1/models`.
    fn routes(&self) -> Vec<RouteInfo>;
    /// Gather the request's facts (task, PII, tokens) and decide.
    fn decide(&self, input: &RouteInput<'_>) -> Routed;
    /// The work of deciding that must wait for an engine: the task of a request the
    /// embedding classifier must read (no task header or `metadata.task`, not pinned to a
    /// backend, a route names tasks), its vector from `encoder`. `None`: nothing to await
    /// ([`RoutingCore::decide`] classifies synchronously if it needs to). Never an error: an
    /// encoder that cannot answer gives `unknown`, with the reason.
    fn classify<'a>(
        &'a self,
        request: &'a ChatRequest,
        task_header: Option<&'a str>,
        encoder: Option<&'a Arc<BackendSlot>>,
    ) -> BoxFuture<'a, Option<Classification>> {
        let _ = (request, task_header, encoder);
        Box::pin(std::future::ready(None))
    }
    /// Admit a decided request before anything runs: reserve its budget and take its rate-limit
    /// share (with a shared store, the request's one round trip to it). The decision may change
    /// (a spent budget's `on_exhausted`); an error is the answer (429 rate limit, 503 store
    /// down). By default everything is admitted as decided (a core without budgets).
    fn admit<'a>(
        &'a self,
        routed: Routed,
        input: AdmitInput<'a>,
    ) -> BoxFuture<'a, Result<Routed, ApiError>> {
        let _ = input;
        Box::pin(std::future::ready(Ok(routed)))
    }
    /// The shared store's health, when budgets and rate limits live in one (`/metrics`,
    /// `/readyz`).
    fn store_health(&self) -> Option<&crate::reserve::StoreHealth> {
        None
    }
    /// Cost of a finished request from every backend call that used tokens, in order (the
    /// last produced the answer).
    fn cost(&self, calls: &[(&str, Usage)]) -> CostBreakdown;
    /// Record a finished request: ledger row and spend counters for budgets.
    fn record(&self, summary: &RequestSummary);
    /// The buffered ledger writer's counters (Postgres), for `/metrics`; `None` otherwise.
    fn ledger_writer(&self) -> Option<crate::store::WriterStats> {
        None
    }
}
