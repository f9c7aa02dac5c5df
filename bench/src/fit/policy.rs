//! What a per-task routing policy is and what it yields on a set of items: which targets each
//! item calls, what it pays and which answer it keeps. Nothing is rerun: every target's answer
//! to every item was recorded by the measuring run.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stats::{mean_t, Estimate};

/// A routing policy for one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Policy {
    /// Always one small target (the SLM, an encoder classifier, …).
    Small {
        /// The small target's name (a harness target, and the gateway backend of that name).
        target: String,
    },
    /// Always the large model.
    Llm,
    /// A small target first; escalate to the LLM when its `signal` is below `threshold` (or
    /// missing).
    Cascade {
        /// The small target answering first.
        first: String,
        /// Name of the first answer's signal compared (e.g. `mean_logprob`).
        signal: String,
        /// Escalate when the signal is below this value.
        threshold: f64,
    },
}

impl Policy {
    /// The small target this policy calls, if any.
    pub fn small_target(&self) -> Option<&str> {
        match self {
            Policy::Small { target } => Some(target),
            Policy::Llm => None,
            Policy::Cascade { first, .. } => Some(first),
        }
    }

    /// Whether an item escalates (or goes) to the LLM under this policy. An item whose small
    /// answer is missing or has no value for the signal escalates.
    pub fn uses_llm(&self, item: &TaskItem) -> bool {
        match self {
            Policy::Small { .. } => false,
            Policy::Llm => true,
            Policy::Cascade {
                first,
                signal,
                threshold,
            } => item
                .small
                .get(first)
                .and_then(|a| a.signals.get(signal))
                .is_none_or(|v| v.is_nan() || *v < *threshold),
        }
    }

    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            Policy::Small { target } => format!("always {target}"),
            Policy::Llm => "always LLM".into(),
            Policy::Cascade {
                first,
                signal,
                threshold,
            } => format!("cascade: {first}, escalate when {signal} < {threshold:.4}"),
        }
    }

    /// Simpler policies win ties: one small target, then the LLM, then a cascade.
    pub(super) fn simplicity(&self) -> u8 {
        match self {
            Policy::Small { .. } => 0,
            Policy::Llm => 1,
            Policy::Cascade { .. } => 2,
        }
    }
}

/// One target's recorded answer to one item.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// Its score in [0, 1] (mean over the item's scorers).
    pub quality: f64,
    /// Whether it passed every scorer; what the signals' AUROC predicts.
    pub passed: bool,
    /// The request's cost in USD (0 when unpriced).
    pub cost: f64,
    /// The answer's signals (higher = more confident); empty for a failed request.
    pub signals: BTreeMap<String, f64>,
}

/// Every target's answer to one item of a task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskItem {
    /// Scenario the item belongs to.
    pub scenario: String,
    /// The item's id within its scenario.
    pub item_id: String,
    /// Stratum of the split: the gold answer when there is one.
    pub label: Option<String>,
    /// The small targets' answers, by target name.
    pub small: BTreeMap<String, Answer>,
    /// The LLM's answer.
    pub llm: Answer,
    /// The small target that answers this item under every policy: the config's privacy rule
    /// keeps its prompt local (`privacy.rs`).
    pub forced: Option<String>,
}

/// A policy's result on a set of items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Outcome {
    /// Mean quality with its 95% interval.
    pub quality: Estimate,
    /// Mean cost per item in USD: the small target's when called plus the LLM's when used.
    pub cost_per_request: f64,
    /// Share of items sent to the LLM.
    pub llm_share: f64,
}

/// Quality is a mean of scores in [0, 1]: a t interval is clipped to that range.
pub(super) fn bounded(mut e: Estimate) -> Estimate {
    e.ci95_low = e.ci95_low.clamp(0.0, 1.0);
    e.ci95_high = e.ci95_high.clamp(0.0, 1.0);
    e
}

/// One item under a policy: (quality, cost, whether the LLM was called). `None` when the
/// policy's small target has no answer to the item.
pub(super) fn apply(policy: &Policy, item: &TaskItem) -> Option<(f64, f64, bool)> {
    if let Some(kept) = item.forced.as_ref().and_then(|t| item.small.get(t)) {
        return Some((kept.quality, kept.cost, false));
    }
    let small = match policy.small_target() {
        Some(t) => Some(item.small.get(t)?),
        None => None,
    };
    let small_cost = small.map_or(0.0, |a| a.cost);
    Some(if policy.uses_llm(item) {
        (item.llm.quality, small_cost + item.llm.cost, true)
    } else {
        (
            small.map_or(item.llm.quality, |a| a.quality),
            small_cost,
            false,
        )
    })
}

/// Each item's quality under `policy` (`None` when its small target did not answer them all).
pub(super) fn qualities(policy: &Policy, items: &[TaskItem]) -> Option<Vec<f64>> {
    items
        .iter()
        .map(|i| apply(policy, i).map(|(q, _, _)| q))
        .collect()
}

/// A policy's outcome on items (`None` for no items, or when its small target did not answer
/// every item).
pub fn outcome(policy: &Policy, items: &[TaskItem]) -> Option<Outcome> {
    outcome_each(items.iter().map(|i| (policy, i)))
}

/// The outcome of items each under its own policy (`None` when empty or not applicable).
pub(super) fn outcome_each<'a>(
    items: impl Iterator<Item = (&'a Policy, &'a TaskItem)>,
) -> Option<Outcome> {
    let mut qualities = Vec::new();
    let (mut cost, mut llm) = (0.0, 0usize);
    for (policy, item) in items {
        let (q, c, used_llm) = apply(policy, item)?;
        qualities.push(q);
        cost += c;
        llm += usize::from(used_llm);
    }
    let n = qualities.len() as f64;
    Some(Outcome {
        quality: bounded(mean_t(&qualities)?),
        cost_per_request: cost / n,
        llm_share: llm as f64 / n,
    })
}
