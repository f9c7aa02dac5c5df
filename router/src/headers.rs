//! The `x-triage-*` response headers: written by the gateway, read by the harness's HTTP target
//! and by any client that wants to know who answered. One list, so both sides agree.

/// The backend that produced the answer.
pub const BACKEND: &str = "x-triage-backend";
/// The route (rule) that decided.
pub const ROUTE: &str = "x-triage-route";
/// The request's cost in USD (non-streaming answers; streams carry it in the usage chunk).
pub const COST: &str = "x-triage-cost-usd";
/// `true` when a cascade escalated past its first backend.
pub const ESCALATED: &str = "x-triage-escalated";
/// Set when a cascade's escalation failed upstream (its backends down, refusing connections or
/// answering 5xx) and the first step's answer was delivered instead: the escalation's error code.
pub const ESCALATION_FAILED: &str = "x-triage-escalation-failed";
/// The cascade signal judged on the first answer and its value, `NAME=VALUE` (`p_chosen=0.8123`;
/// `NAME=none` when the answer lacked it).
pub const SIGNAL: &str = "x-triage-signal";
/// The task: a request header hint in, the task the router used out.
pub const TASK: &str = "x-triage-task";
/// When the task classifier decided the task: which part of it (`rule`, `ngram`,
/// `embedding`, or `nothing`) and its probability, `embedding p=0.91`.
pub const CLASSIFIER: &str = "x-triage-classifier";
/// The gateway's id of the request (the ledger row's id).
pub const REQUEST_ID: &str = "x-triage-request-id";
