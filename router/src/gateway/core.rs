//! The seam between the gateway (HTTP, streaming, execution) and the routing brain (policy,
//! classifier, PII, pricing, budgets, ledger).
//!
//! The gateway asks a [`RoutingCore`] for a [`Plan`] and, once the request is over, for its cost
//! and to record it; it executes plans (route, fallback, cascade, refuse) itself. Keeping this a
//! small trait lets the gateway be tested with a scripted core and lets the policy stay pure.

use backends::{ChatRequest, Usage};
use serde::Serialize;

use super::backend::LocalLoad;
use crate::events::RequestSummary;

/// Where the task of a request came from before the classifier runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskHint {
    pub task: String,
    /// `header` (`x-triage-task`) or `metadata` (`metadata.task`).
    pub source: &'static str,
}

/// What the core sees of one request.
#[derive(Clone, Copy, Debug)]
pub struct RouteInput<'a> {
    pub request: &'a ChatRequest,
    /// Name of the API key used, when keys are configured.
    pub key: Option<&'a str>,
    pub task: Option<&'a TaskHint>,
    /// Load of each local backend right now (spill decisions).
    pub local: &'a [(String, LocalLoad)],
}

/// What to do with one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The rule that matched.
    pub route: String,
    /// Why, in one line.
    pub reason: String,
    pub task: Option<String>,
    /// `header`, `metadata`, `classifier`, or none.
    pub task_source: Option<String>,
    pub action: PlanAction,
    /// Backends to try, in order, when the chosen one fails before any token reached the client.
    pub fallback: Vec<String>,
    /// Every step of the decision, for `route explain` and debugging.
    pub trace: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PlanAction {
    /// Answer with this backend.
    Backend(String),
    /// Answer with `first`; keep its answer only if accepted, else answer with `escalate_to`.
    Cascade(CascadePlan),
    /// Answer with an error (budget exhausted → 429).
    Refuse { status: u16, message: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct CascadePlan {
    pub first: String,
    pub escalate_to: String,
    /// Accept the first answer when its confidence (geometric-mean token probability) is at
    /// least this.
    pub min_confidence: f64,
    /// Also require the least likely token to be at least this probable, when set.
    pub min_token_prob: Option<f64>,
}

/// What a finished request cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    pub usd: f64,
    /// What the reference LLM would have cost for the same tokens, minus `usd` (≥ 0).
    pub saved_usd: f64,
}

/// A model name clients may send besides backend names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    pub name: String,
    pub description: String,
}

/// The routing brain behind the gateway.
pub trait RoutingCore: Send + Sync {
    /// Model names that go through the policy (`auto` and named route sets).
    fn policy_models(&self) -> Vec<RouteInfo>;
    /// The routes (rules), for `/v1/models`.
    fn routes(&self) -> Vec<RouteInfo>;
    /// Decide what to do with a request (classifying it when no task hint is given).
    fn decide(&self, input: &RouteInput<'_>) -> Plan;
    /// Cost of a finished request answered by `backend`.
    fn cost(&self, backend: &str, usage: &Usage, engine_busy_secs: f64) -> Cost;
    /// Record a finished request: ledger row, spend counters for budgets.
    fn record(&self, summary: &RequestSummary);
}
