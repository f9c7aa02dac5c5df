//! How well a signal predicts the SLM's pass/fail: AUROC (Mann–Whitney, ties counted half)
//! with a seeded percentile-bootstrap interval, so "this signal says nothing here" is a
//! reported result rather than a hidden one.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How well one signal predicts the SLM's pass/fail on a task's evaluation half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignalQuality {
    /// Signal name as recorded by the backend (e.g. `mean_logprob`).
    pub signal: String,
    /// Items with a value for the signal and a scored SLM answer.
    pub n: usize,
    /// Probability that a passing item's signal exceeds a failing one's (ties count half); `None`
    /// when either class is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auroc: Option<f64>,
    /// Percentile-bootstrap 95% interval of the AUROC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<(f64, f64)>,
}

impl SignalQuality {
    /// The interval includes 0.5: no evidence that the signal carries information.
    pub fn uninformative(&self) -> bool {
        match (self.auroc, self.ci95) {
            (None, _) => true,
            (Some(_), Some((lo, hi))) => lo <= 0.5 && hi >= 0.5,
            // No interval (too few items of a class): no evidence either way.
            (Some(_), None) => true,
        }
    }
}

/// AUROC of `scores` for predicting `positive` (ties count half). `None` without both classes.
pub fn auroc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scores
        .iter()
        .copied()
        .zip(positive.iter().copied())
        .filter(|(s, _)| s.is_finite())
        .collect();
    let pos = pairs.iter().filter(|p| p.1).count();
    let neg = pairs.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann–Whitney U with mid-ranks for ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len() && pairs[j + 1].0 == pairs[i].0 {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += mid_rank * pairs[i..=j].iter().filter(|p| p.1).count() as f64;
        i = j + 1;
    }
    let (pos, neg) = (pos as f64, neg as f64);
    Some((rank_sum_pos - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// AUROC with a seeded percentile-bootstrap 95% interval.
pub fn auroc_ci(
    scores: &[f64],
    positive: &[bool],
    resamples: usize,
    seed: u64,
) -> (Option<f64>, Option<(f64, f64)>) {
    let point = auroc(scores, positive);
    // With fewer than two items of either class the resamples are degenerate: no interval.
    let pos = positive.iter().filter(|p| **p).count();
    if point.is_none() || resamples == 0 || pos < 2 || positive.len() - pos < 2 {
        return (point, None);
    }
    let n = scores.len();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stats = Vec::with_capacity(resamples);
    let (mut s, mut p) = (vec![0.0; n], vec![false; n]);
    for _ in 0..resamples {
        for k in 0..n {
            let j = rng.random_range(0..n);
            s[k] = scores[j];
            p[k] = positive[j];
        }
        if let Some(a) = auroc(&s, &p) {
            stats.push(a);
        }
    }
    if stats.len() < resamples / 2 {
        return (point, None);
    }
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| stats[((q * stats.len() as f64) as usize).min(stats.len() - 1)];
    (point, Some((at(0.025), at(0.975))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_hand_checked() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        // All tied: 0.5.
        assert_eq!(auroc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        // One inversion out of four pairs.
        assert_eq!(
            auroc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        let (a, ci) = auroc_ci(
            &[0.1, 0.2, 0.3, 0.7, 0.8, 0.9],
            &[false, false, false, true, true, true],
            200,
            1,
        );
        assert_eq!(a, Some(1.0));
        let (lo, hi) = ci.unwrap();
        assert!(lo <= 1.0 && hi == 1.0 && lo > 0.5, "{lo} {hi}");
    }
}
