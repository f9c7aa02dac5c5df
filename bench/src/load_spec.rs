//! The `load` section of a suite: how requests are sent (sequential, closed or open loop), how
//! many, and for how long — plain data the runner schedules from, with the check that its fields
//! fit together. Re-exported from [`crate::scenario`], where suite files are read.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::LoadSpecError;

/// How requests are sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// How requests are scheduled (default `sequential`).
    #[serde(default)]
    pub mode: LoadMode,
    /// Workers for `closed` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Requests per second for `open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Inter-arrival times for `open`: `constant` or `poisson` (exponential gaps).
    #[serde(default)]
    pub arrival: Arrival,
    /// Requests in flight at most in `open` mode; later arrivals wait and are measured from
    /// their intended send time (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Requests sent first and not recorded.
    #[serde(default)]
    pub warmup: usize,
    /// Total recorded requests per target (items are cycled); default: every item once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<usize>,
    /// Keep sending (cycling items) for this many seconds instead of a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Seed for Poisson arrivals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Per-request deadline in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
}

/// The load generator's scheduling mode (`load.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// One request at a time, each sent when the previous one finished.
    #[default]
    Sequential,
    /// `concurrency` workers, each sending its next request when its previous one finished.
    Closed,
    /// Requests sent at `rate` per second regardless of how fast the target answers, with latency
    /// measured from each request's intended send time (coordinated-omission correction).
    Open,
}

/// How `open` mode spaces its send times (`load.arrival`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced, `1 / rate` seconds apart.
    #[default]
    Constant,
    /// Exponentially distributed gaps with mean `1 / rate` (a Poisson process), seeded by
    /// `load.seed`.
    Poisson,
}

/// Check the load section's fields fit together.
pub fn validate_load(load: &LoadSpec) -> std::result::Result<(), LoadSpecError> {
    match load.mode {
        LoadMode::Open => match load.rate {
            Some(r) if r > 0.0 && r.is_finite() => {}
            _ => return Err(LoadSpecError::OpenWithoutRate),
        },
        LoadMode::Closed => {
            if load.concurrency == Some(0) {
                return Err(LoadSpecError::ZeroConcurrency);
            }
        }
        LoadMode::Sequential => {
            if load.concurrency.is_some_and(|c| c != 1) {
                return Err(LoadSpecError::ConcurrencyWithoutClosed);
            }
        }
    }
    if load.requests.is_some() && load.duration_s.is_some() {
        return Err(LoadSpecError::RequestsAndDuration);
    }
    if load.max_in_flight == Some(0) {
        return Err(LoadSpecError::ZeroMaxInFlight);
    }
    Ok(())
}
