//! A trained model: a multinomial logistic regression over hashed n-gram buckets, scored here
//! and explained by the n-grams that pushed hardest towards its answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::features::{bucket, featurize, for_each_ngram};

/// Format tag written into model files.
pub const MODEL_FORMAT: &str = "triage-task-classifier/1";

/// A trained model: per-task bias and sparse weights over hashed n-gram buckets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Always [`MODEL_FORMAT`]; checked when a file is read.
    pub format: String,
    /// The feature space has 2^`dims_log2` hashed buckets.
    pub dims_log2: u32,
    /// Task names, in the order of `bias` and of each weight vector.
    pub tasks: Vec<String>,
    /// Per-task bias (intercept) of the logistic regression.
    pub bias: Vec<f32>,
    /// `weights[bucket] = [w_task0, w_task1, …]`, only for buckets seen in training.
    pub weights: BTreeMap<u32, Vec<f32>>,
    /// How many examples per task the model was trained on (for `explain`).
    pub trained_on: BTreeMap<String, usize>,
}

pub(super) fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// Index and value of the largest probability (the first on ties).
pub(super) fn arg_max(probs: &[f32]) -> (usize, f32) {
    probs
        .iter()
        .copied()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |acc, (i, p)| if p > acc.1 { (i, p) } else { acc },
        )
}

impl Model {
    /// Probability of each task for `text`, in `self.tasks` order.
    pub fn probabilities(&self, text: &str) -> Vec<f32> {
        self.probabilities_of(&featurize(text, self.dims_log2))
    }

    /// The most probable task for `text` and its probability.
    pub fn predict(&self, text: &str) -> (&str, f32) {
        let (best, p) = arg_max(&self.probabilities(text));
        (self.tasks.get(best).map(String::as_str).unwrap_or(""), p)
    }

    pub(super) fn probabilities_of(&self, x: &[(u32, f32)]) -> Vec<f32> {
        let mut scores = self.bias.clone();
        for (b, v) in x {
            if let Some(ws) = self.weights.get(b) {
                for (s, w) in scores.iter_mut().zip(ws) {
                    *s += w * v;
                }
            }
        }
        softmax(&mut scores);
        scores
    }

    /// The n-grams of `text` that pushed hardest towards task `t` (up to `n`, with the margin
    /// of their weight over the best other task's, times their feature value).
    pub fn top_features(&self, text: &str, t: usize, n: usize) -> Vec<(String, f32)> {
        self.top_features_of(text, &featurize(text, self.dims_log2), t, n)
            .into_iter()
            .map(|(_, g, m)| (g, m))
            .collect()
    }

    pub(super) fn top_features_of(
        &self,
        text: &str,
        x: &[(u32, f32)],
        t: usize,
        n: usize,
    ) -> Vec<(u32, String, f32)> {
        // Rank buckets first (no strings), then name only the winners in one n-gram pass.
        let mut top: Vec<(u32, f32)> = x
            .iter()
            .filter_map(|&(b, v)| {
                let ws = self.weights.get(&b)?;
                let others = ws
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != t)
                    .map(|(_, w)| *w)
                    .fold(f32::NEG_INFINITY, f32::max);
                let margin = (ws.get(t).copied().unwrap_or(0.0) - others.max(-1e9)) * v;
                (margin > 0.0).then_some((b, margin))
            })
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(n);
        let mut named: Vec<(u32, String, f32)> = Vec::with_capacity(top.len());
        for_each_ngram(text, |g| {
            if named.len() == top.len() {
                return;
            }
            let b = bucket(g, self.dims_log2);
            if let Some(&(_, m)) = top.iter().find(|(tb, _)| *tb == b) {
                if !named.iter().any(|(nb, ..)| *nb == b) {
                    named.push((b, g.to_string(), m));
                }
            }
        });
        named.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
        named
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_arg_max_takes_the_first_of_ties() {
        let mut s = vec![1.0, 3.0, 3.0, -2.0];
        softmax(&mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(arg_max(&s).0, 1);
        assert_eq!(arg_max(&[]).0, 0);
    }
}
