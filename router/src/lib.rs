//! # router
//!
//! The decision side of triage: what a request is, where it should go, and what it cost.
//!
//! - [`config`]: `triage.yaml` loading and validation into runtime types (errors name file,
//!   line, column and field path);
//! - [`classifier`]: the task classifier (config rules, then a learned hashed-n-gram model);
//! - [`pii`]: the PII detector the privacy rule relies on;
//! - [`policy`]: rules, budgets and the pure [`policy::decide`] function;
//! - [`pricing`]: the shipped price table, per-backend prices, cost and savings;
//! - [`store`] and [`ledger`]: budgets/spend counters and the per-request ledger behind one
//!   store interface (SQLite in WAL mode by default);
//! - [`explain`]: the decision and its trace for one request, without calling any backend;
//! - [`gateway`]: the OpenAI-compatible HTTP server that acts on these decisions, with
//!   [`metrics`] (Prometheus) and [`events`] (live per-request summaries);
//! - [`headers`]: the `x-triage-*` response header names the gateway writes and the harness reads;
//! - `testing` (feature `test-util`): the gateway test harness the workspace's tests share.
#![warn(missing_docs)]

pub mod classifier;
pub mod config;
pub mod events;
pub mod explain;
pub mod gateway;
pub mod headers;
pub mod ledger;
pub mod metrics;
pub mod pii;
pub mod policy;
pub mod pricing;
pub mod reserve;
pub mod stages;
pub mod store;
pub mod task_name;
pub mod telemetry;
pub mod terminal;
#[cfg(feature = "test-util")]
pub mod testing;
