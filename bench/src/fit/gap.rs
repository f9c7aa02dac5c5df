//! How far a policy falls short of the best single target, item by item.
//!
//! Why paired: every policy and every single target answered the same items, so the question
//! "is this policy as good as the best single target?" is about the per-item differences, whose
//! spread is far smaller than either quality's. Two uses:
//! - **Choosing** (calibration half): a policy reaches the quality target only when the
//!   one-sided 95% lower bound of its mean difference from the best single target is above the
//!   allowed loss, not merely its point estimate. With 15–30 items per half, the point estimate
//!   of the cheapest policy that reaches a target is biased upwards — it was picked *because* it
//!   happened to do well on these items — and on new items it fell short (on the shipped
//!   summarization task: 98% of the LLM on its calibration half, 87% on the evaluation half).
//!   The bound asks the calibration half for evidence, not luck; a policy that agrees with the
//!   best target on every item has no spread and passes at its point value.
//! - **Reporting** (either half): the chosen policy minus the best single target on the same
//!   items, with its two-sided 95% interval — the number that says whether the router is below
//!   the better model on a task.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::{qualities, Outcome, Policy, TaskItem};
use super::FitOptions;
use crate::stats::{mean_t, t95, Estimate};

/// How the policies of one calibration half are judged against the quality target.
pub(super) struct Judge<'a> {
    items: &'a [TaskItem],
    /// The best single target's quality on each item.
    best_items: Vec<f64>,
    /// Its mean quality.
    pub best: f64,
    /// Which single target it is.
    pub best_policy: Policy,
    /// Judge by the lower bound (else by the point estimate).
    bound: bool,
}

impl<'a> Judge<'a> {
    /// The judge of `items`, from their scored candidates: the best single target (a fixed
    /// target, never a cascade) is the reference. `None` when no single target answered all.
    pub fn new(
        scored: &[(Policy, Outcome)],
        items: &'a [TaskItem],
        options: &FitOptions,
    ) -> Option<Judge<'a>> {
        let (best_policy, best) = scored
            .iter()
            .filter(|(p, _)| !matches!(p, Policy::Cascade { .. }))
            .max_by(|a, b| a.1.quality.value.total_cmp(&b.1.quality.value))
            .map(|(p, o)| (p.clone(), o.quality.value))?;
        Some(Judge {
            best_items: qualities(&best_policy, items)?,
            items,
            best,
            best_policy,
            bound: options.target_lower_bound,
        })
    }

    /// The quality a policy is judged to reach: its point quality, or the best target's plus
    /// the lower bound of the paired difference (what it reaches with 95% confidence).
    pub fn quality(&self, policy: &Policy, outcome: &Outcome) -> f64 {
        if !self.bound {
            return outcome.quality.value;
        }
        qualities(policy, self.items).map_or(f64::NEG_INFINITY, |q| {
            self.best + lower_bound(&differences(&q, &self.best_items))
        })
    }
}

/// The chosen policy against the best single target on the same items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Gap {
    /// The best single target on these items (`always slm`, `always LLM`, …).
    pub against: String,
    /// Mean per-item quality of the chosen policy minus that target's, with a 95% t interval.
    pub difference: Estimate,
}

/// Per-item differences `a − b` (equal lengths).
pub(super) fn differences(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// The one-sided 95% lower bound of the mean of `d` (Student t). No spread: the mean itself;
/// one item that differs, or none at all: minus infinity (no evidence).
pub(super) fn lower_bound(d: &[f64]) -> f64 {
    let n = d.len();
    if n == 0 {
        return f64::NEG_INFINITY;
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let spread = d.iter().any(|v| (v - mean).abs() > 1e-12);
    if !spread {
        return mean;
    }
    if n == 1 {
        return f64::NEG_INFINITY;
    }
    let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    mean - t95(n - 1) * (var / n as f64).sqrt()
}

/// The report of `chosen − against` on one half (`None` for no items).
pub(super) fn gap(against: String, chosen: &[f64], best: &[f64]) -> Option<Gap> {
    Some(Gap {
        against,
        difference: mean_t(&differences(chosen, best))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_bound_hand_checked() {
        // d = 0, 0, 0, −1 (one item of four lost): mean −0.25, s = 0.5, se = 0.25,
        // t(0.95; 3) = 2.353 → −0.25 − 0.588 = −0.838.
        let lb = lower_bound(&[0.0, 0.0, 0.0, -1.0]);
        assert!((lb + 0.838_25).abs() < 1e-4, "{lb}");
        // The same answers everywhere: no spread, the bound is the mean.
        assert_eq!(lower_bound(&[0.0; 5]), 0.0);
        assert_eq!(lower_bound(&[0.25; 3]), 0.25);
        assert_eq!(lower_bound(&[-0.5]), -0.5);
        assert_eq!(lower_bound(&[]), f64::NEG_INFINITY);
    }

    #[test]
    fn the_bound_tightens_with_more_items() {
        // The same mix of wins and losses: more items, a bound closer to the mean.
        let few: Vec<f64> = [0.2, -0.2, 0.1, -0.1, 0.0].repeat(2);
        let many: Vec<f64> = few.repeat(10);
        assert!(lower_bound(&few) < lower_bound(&many));
        assert!(lower_bound(&many) < 0.0);
    }
}
