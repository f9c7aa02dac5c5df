//! Retrieval and answer statistics of a group of RAG requests, for `summary.json` and
//! `bench compare`.
//!
//! Recall@k is the share of items with a marked gold passage whose gold passage ranked within
//! the first k; it is a property of the retrieval, so every target of a run shows the same
//! value (a check that they were given the same passages). Exact match is SQuAD's (normalised
//! answer equals normalised gold answer); token F1 is the `token_f1` scorer's mean in the
//! group's `scorers`. Abstentions and faithfulness come from the `faithfulness` scorer's verdict
//! (see `score::faithful`): the share of answers that abstained, and among the others the share
//! whose content is supported by the passages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::record::RequestRecord;
use crate::score::faithful::{FaithfulnessRaw, KIND as FAITHFULNESS};
use crate::score::text::normalize;

/// Retrieval and answer statistics of a group's RAG requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RagSummary {
    /// Requests that were given retrieved passages.
    pub requests: u64,
    /// Of those, requests whose item marks a gold passage (the denominator of recall).
    pub with_gold: u64,
    /// Share of `with_gold` whose gold passage ranked first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_at_1: Option<f64>,
    /// Share of `with_gold` whose gold passage ranked in the first 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_at_3: Option<f64>,
    /// Share of `with_gold` whose gold passage ranked in the first 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_at_5: Option<f64>,
    /// Mean reciprocal rank of the gold passage (0 when not within the first 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrr_at_5: Option<f64>,
    /// Share of answered requests whose normalised answer equals the normalised gold answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
    /// Share of answered requests (no error) that abstained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstained: Option<f64>,
    /// Among answers that did not abstain, the share the passages support (faithfulness passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithful: Option<f64>,
    /// Among answers that did not abstain, the mean share of content tokens found in the
    /// passages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_mean: Option<f64>,
}

/// The statistics of `records`, or `None` when none of them was given passages.
pub fn summarize(records: &[&RequestRecord]) -> Option<RagSummary> {
    let rag: Vec<&RequestRecord> = records
        .iter()
        .copied()
        .filter(|r| r.retrieval.is_some())
        .collect();
    if rag.is_empty() {
        return None;
    }
    let share = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
    let ranks: Vec<Option<u32>> = rag
        .iter()
        .filter_map(|r| r.retrieval.as_ref())
        .filter(|r| r.gold_marked)
        .map(|r| r.gold_rank)
        .collect();
    let within = |k: u32| ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count();
    let answered: Vec<&RequestRecord> = rag.iter().copied().filter(|r| r.error.is_none()).collect();
    let exact = answered
        .iter()
        .filter(|r| {
            r.expected
                .as_deref()
                .is_some_and(|e| normalize(e) == normalize(&r.output))
        })
        .count();
    let verdicts: Vec<(FaithfulnessRaw, bool)> = answered
        .iter()
        .filter_map(|r| {
            let s = r.scores.iter().find(|s| s.scorer == FAITHFULNESS)?;
            let raw: FaithfulnessRaw = serde_json::from_value(s.raw.clone()).ok()?;
            Some((raw, s.passed))
        })
        .collect();
    let abstained = verdicts.iter().filter(|(v, _)| v.abstained).count();
    let claims: Vec<&(FaithfulnessRaw, bool)> =
        verdicts.iter().filter(|(v, _)| !v.abstained).collect();
    let supports: Vec<f64> = claims.iter().filter_map(|(v, _)| v.support).collect();
    Some(RagSummary {
        requests: rag.len() as u64,
        with_gold: ranks.len() as u64,
        recall_at_1: share(within(1), ranks.len()),
        recall_at_3: share(within(3), ranks.len()),
        recall_at_5: share(within(5), ranks.len()),
        mrr_at_5: (!ranks.is_empty()).then(|| {
            ranks
                .iter()
                .map(|r| r.filter(|r| *r <= 5).map_or(0.0, |r| 1.0 / r as f64))
                .sum::<f64>()
                / ranks.len() as f64
        }),
        exact_match: share(exact, answered.len()),
        abstained: share(abstained, verdicts.len()),
        faithful: share(claims.iter().filter(|(_, p)| *p).count(), claims.len()),
        support_mean: (!supports.is_empty())
            .then(|| supports.iter().sum::<f64>() / supports.len() as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rag::RecordRetrieval;
    use crate::score::ScoreResult;

    fn record(rank: Option<u32>, output: &str, abstained: bool, support: f64) -> RequestRecord {
        RequestRecord {
            output: output.into(),
            expected: Some("The engine thread".into()),
            retrieval: Some(RecordRetrieval {
                passages: vec!["a.md#0".into()],
                gold_marked: true,
                gold_rank: rank,
            }),
            scores: vec![ScoreResult {
                scorer: FAITHFULNESS.into(),
                score: if abstained { 1.0 } else { support },
                passed: abstained || support >= 0.75,
                raw: serde_json::to_value(FaithfulnessRaw {
                    abstained,
                    support: (!abstained).then_some(support),
                    content_tokens: 3,
                    unsupported: Vec::new(),
                })
                .unwrap(),
            }],
            ..RequestRecord::default()
        }
    }

    #[test]
    fn recall_exact_match_abstention_and_faithfulness_are_counted_separately() {
        let records = [
            record(Some(1), "engine thread", false, 1.0),
            record(Some(3), "a made-up answer", false, 0.5),
            record(None, "not in the context", true, 0.0),
            record(Some(2), "the engine thread.", false, 1.0),
        ];
        let refs: Vec<&RequestRecord> = records.iter().collect();
        let s = summarize(&refs).unwrap();
        assert_eq!(s.with_gold, 4);
        assert_eq!(s.recall_at_1, Some(0.25));
        assert_eq!(s.recall_at_3, Some(0.75));
        assert_eq!(s.recall_at_5, Some(0.75));
        assert_eq!(s.mrr_at_5, Some((1.0 + 1.0 / 3.0 + 0.5) / 4.0));
        assert_eq!(s.exact_match, Some(0.5));
        assert_eq!(s.abstained, Some(0.25));
        assert_eq!(s.faithful, Some(2.0 / 3.0));
        assert_eq!(s.support_mean, Some(2.5 / 3.0));
        assert!(summarize(&[&RequestRecord::default()]).is_none());
    }
}
