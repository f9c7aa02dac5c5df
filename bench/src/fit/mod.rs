//! Per-task routing calibration, honest about over-fitting: from one run in which every item
//! was answered by both the SLM and the LLM (with the SLM's confidence signals), choose for each
//! task the cheapest of "always SLM", "always LLM" and "cascade on signal S at threshold t" that
//! reaches the quality target — on one half of the items — and report it on the other half.
//!
//! Why this shape (see `../shared/design/ROUTING-LOOP.md` §2):
//! - **Split first.** Items of each task are split into a calibration and an evaluation half,
//!   seeded and stratified by gold label (the expected answer), before anything is chosen. The
//!   policy is chosen on the calibration half only; the numbers a user should believe are the
//!   evaluation half's, printed next to SLM-only and LLM-only on the same items.
//! - **A coarse grid.** Thresholds are quantiles of the signal on the calibration half (deciles
//!   by default), not every distinct value: with 15–30 items per half, a per-value sweep finds
//!   the threshold that happens to separate this half's few mistakes and nothing else.
//! - **A minimum gain.** A cascade replaces "always LLM" only when it saves at least
//!   `min_saving` of the LLM calls on the calibration half; smaller savings are within noise.
//! - **Nothing is rerun.** A cascade item costs the SLM always and the LLM when escalated; its
//!   quality is the LLM's score when escalated and the SLM's otherwise. An item whose SLM answer
//!   has no value for the signal (a failure, a backend without log-probabilities) escalates.
//!
//! Each signal's AUROC for predicting the SLM's pass/fail is reported per task on the evaluation
//! half with a seeded percentile-bootstrap interval; 0.5 means the signal carries no
//! information for that task, and the report says so instead of hiding it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::record::RequestRecord;
use crate::stats::{mean_t, Estimate};

mod auroc;
mod split;
pub mod write;

pub use auroc::{auroc, auroc_ci, SignalQuality};
pub(crate) use split::stable_hash;
pub use split::{halves, split};

/// How to fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FitOptions {
    /// Target name of the small model in the run.
    pub slm: String,
    /// Target name of the large model in the run.
    pub llm: String,
    /// Quality to reach, as a share of the better single model's quality on the calibration
    /// half (0.95: within 5% of the better model).
    pub target_share: f64,
    /// Instead of a quality target: the best quality whose cost per request is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Seed of the split and of the bootstrap.
    pub seed: u64,
    /// Least share of LLM calls a cascade must save against "always LLM" to be chosen.
    pub min_saving: f64,
    /// Thresholds per signal: the quantiles k/grid, k = 1..grid−1, of the calibration half.
    pub grid: usize,
    /// Bootstrap resamples for the AUROC intervals.
    pub bootstrap: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            slm: "slm".into(),
            llm: "llm".into(),
            target_share: 0.95,
            max_cost: None,
            seed: 7,
            min_saving: 0.2,
            grid: 10,
            bootstrap: 1000,
        }
    }
}

/// A routing policy for one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Policy {
    /// Always the small model.
    Slm,
    /// Always the large model.
    Llm,
    /// The small model first; escalate when its `signal` is below `threshold` (or missing).
    Cascade {
        /// Name of the SLM answer's signal compared (e.g. `mean_logprob`).
        signal: String,
        /// Escalate when the signal is below this value.
        threshold: f64,
    },
}

impl Policy {
    /// Whether an item escalates (or goes) to the LLM under this policy.
    fn uses_llm(&self, item: &TaskItem) -> bool {
        match self {
            Policy::Slm => false,
            Policy::Llm => true,
            Policy::Cascade { signal, threshold } => item
                .signals
                .get(signal)
                .is_none_or(|v| v.is_nan() || *v < *threshold),
        }
    }

    /// Whether the SLM is called under this policy.
    fn calls_slm(&self) -> bool {
        !matches!(self, Policy::Llm)
    }

    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            Policy::Slm => "always SLM".into(),
            Policy::Llm => "always LLM".into(),
            Policy::Cascade { signal, threshold } => {
                format!("cascade: escalate when {signal} < {threshold:.4}")
            }
        }
    }
}

/// Both answers to one item of a task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskItem {
    /// Scenario the item belongs to.
    pub scenario: String,
    /// The item's id within its scenario.
    pub item_id: String,
    /// Stratum of the split: the gold answer when there is one.
    pub label: Option<String>,
    /// The SLM's score in [0, 1] (mean over its scorers).
    pub slm_quality: f64,
    /// The LLM's score in [0, 1].
    pub llm_quality: f64,
    /// Whether the SLM's answer passed every scorer; what the signals' AUROC predicts.
    pub slm_passed: bool,
    /// The SLM request's cost in USD (0 when unpriced).
    pub slm_cost: f64,
    /// The LLM request's cost in USD (0 when unpriced).
    pub llm_cost: f64,
    /// The SLM answer's signals (higher = more confident).
    pub signals: BTreeMap<String, f64>,
}

/// A policy's result on a set of items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Outcome {
    /// Mean quality with its 95% interval.
    pub quality: Estimate,
    /// Mean cost per item in USD: the SLM's when called plus the LLM's when escalated.
    pub cost_per_request: f64,
    /// Share of items sent to the LLM.
    pub llm_share: f64,
}

/// The three policies (and the chosen one) on one half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HalfReport {
    /// Items in the half.
    pub n: usize,
    /// "Always SLM" on these items.
    pub slm: Outcome,
    /// "Always LLM" on these items.
    pub llm: Outcome,
    /// The chosen policy on these items (for `overall`, each task's own policy).
    pub chosen: Outcome,
}

/// The fit of one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskFit {
    /// The task (scenario `task`, or the scenario name when empty).
    pub task: String,
    /// The policy chosen on the calibration half.
    pub chosen: Policy,
    /// Why this policy: the target and what reached it.
    pub why: String,
    /// Policies evaluated on the calibration half.
    pub candidates: usize,
    /// The policies on the calibration half, where the choice was made.
    pub calibration: HalfReport,
    /// The policies on the evaluation half: the numbers to believe.
    pub evaluation: HalfReport,
    /// AUROC of each signal on the evaluation half.
    pub signals: Vec<SignalQuality>,
}

/// The result of a per-task fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Fit {
    /// The options the fit ran with.
    pub options: FitOptions,
    /// One fit per task with at least two items answered by both targets.
    pub tasks: Vec<TaskFit>,
    /// Every task's evaluation half together: SLM-only, LLM-only and the per-task router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<HalfReport>,
    /// Items answered by only one side, or never scored.
    pub skipped_items: usize,
}

/// The signals of one record, by name: the backend's own plus the legacy `confidence`
/// (exp of the mean token log-probability) when it has no `mean_logprob` signal.
pub fn signals_of(record: &RequestRecord) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = record
        .signals
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if !out.contains_key("mean_logprob") {
        if let Some(m) = record.mean_logprob.filter(|m| m.is_finite()) {
            out.insert("mean_logprob".into(), m);
        }
    }
    out
}

/// Join the SLM's and the LLM's records by (scenario, item), grouped by task. Items answered
/// more than once use their first record; items missing on either side are counted as skipped.
pub fn pair_by_task(
    records: &[RequestRecord],
    slm: &str,
    llm: &str,
) -> Result<(BTreeMap<String, Vec<TaskItem>>, usize)> {
    let by_key = crate::calibrate::join(records, slm, llm)?;
    let mut tasks: BTreeMap<String, Vec<TaskItem>> = BTreeMap::new();
    let mut skipped = 0;
    for ((scenario, item_id), answers) in by_key {
        let (Some(s), Some(l)) = answers else {
            skipped += 1;
            continue;
        };
        let task = if s.task.is_empty() {
            scenario.clone()
        } else {
            s.task.clone()
        };
        tasks.entry(task).or_default().push(TaskItem {
            scenario,
            item_id,
            label: s.expected.clone(),
            slm_quality: s.quality,
            llm_quality: l.quality,
            slm_passed: s.passed,
            slm_cost: s.cost_usd.unwrap_or(0.0),
            llm_cost: l.cost_usd.unwrap_or(0.0),
            signals: if s.error.is_some() {
                BTreeMap::new()
            } else {
                signals_of(s)
            },
        });
    }
    if tasks.is_empty() {
        return Err(BenchError::Analysis(
            "no item was answered by both targets".into(),
        ));
    }
    Ok((tasks, skipped))
}

/// Quality is a mean of scores in [0, 1]: a t interval is clipped to that range.
fn bounded(mut e: Estimate) -> Estimate {
    e.ci95_low = e.ci95_low.clamp(0.0, 1.0);
    e.ci95_high = e.ci95_high.clamp(0.0, 1.0);
    e
}

/// A policy's outcome on items (`None` for no items).
pub fn outcome(policy: &Policy, items: &[TaskItem]) -> Option<Outcome> {
    if items.is_empty() {
        return None;
    }
    let mut qualities = Vec::with_capacity(items.len());
    let (mut cost, mut llm) = (0.0, 0usize);
    for item in items {
        if policy.calls_slm() {
            cost += item.slm_cost;
        }
        if policy.uses_llm(item) {
            llm += 1;
            cost += item.llm_cost;
            qualities.push(item.llm_quality);
        } else {
            qualities.push(item.slm_quality);
        }
    }
    let n = items.len() as f64;
    Some(Outcome {
        quality: bounded(mean_t(&qualities)?),
        cost_per_request: cost / n,
        llm_share: llm as f64 / n,
    })
}

/// The candidate policies for a calibration half: SLM, LLM, and a cascade per signal at each
/// distinct grid quantile of that signal.
pub fn candidates(items: &[TaskItem], grid: usize) -> Vec<Policy> {
    let mut out = vec![Policy::Slm, Policy::Llm];
    let mut names: Vec<&String> = items.iter().flat_map(|i| i.signals.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let mut values: Vec<f64> = items
            .iter()
            .filter_map(|i| i.signals.get(name).copied())
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let mut thresholds: Vec<f64> = (1..grid.max(2))
            .map(|k| {
                let rank = (k * values.len()) / grid.max(2);
                values[rank.min(values.len() - 1)]
            })
            .collect();
        thresholds.dedup();
        for t in thresholds {
            // A threshold at the minimum escalates nothing: that is "always SLM".
            if t > values[0] {
                out.push(Policy::Cascade {
                    signal: name.clone(),
                    threshold: t,
                });
            }
        }
    }
    out
}

/// Choose a policy on the calibration half. Returns the policy, the reason and the number of
/// candidates.
pub fn choose(items: &[TaskItem], options: &FitOptions) -> Option<(Policy, String, usize)> {
    let all = candidates(items, options.grid);
    let scored: Vec<(Policy, Outcome)> = all
        .iter()
        .filter_map(|p| outcome(p, items).map(|o| (p.clone(), o)))
        .collect();
    let slm = scored.iter().find(|(p, _)| *p == Policy::Slm)?.1.clone();
    let llm = scored.iter().find(|(p, _)| *p == Policy::Llm)?.1.clone();
    let cheaper = |a: &(Policy, Outcome), b: &(Policy, Outcome)| {
        a.1.cost_per_request
            .total_cmp(&b.1.cost_per_request)
            .then(a.1.llm_share.total_cmp(&b.1.llm_share))
            .then(simplicity(&a.0).cmp(&simplicity(&b.0)))
    };
    // A cascade must save enough LLM calls against "always LLM" to be believed.
    let admissible = |(p, o): &&(Policy, Outcome)| match p {
        Policy::Cascade { .. } => o.llm_share <= 1.0 - options.min_saving,
        _ => true,
    };
    if let Some(max_cost) = options.max_cost {
        let best = scored
            .iter()
            .filter(admissible)
            .filter(|(_, o)| o.cost_per_request <= max_cost + 1e-15)
            .max_by(|a, b| {
                a.1.quality
                    .value
                    .total_cmp(&b.1.quality.value)
                    .then(cheaper(b, a))
            })
            .or_else(|| scored.iter().min_by(|a, b| cheaper(a, b)))?;
        let why = format!(
            "best quality at ≤ ${max_cost:.6}/request on the calibration half ({:.3})",
            best.1.quality.value
        );
        return Some((best.0.clone(), why, scored.len()));
    }
    let better = slm.quality.value.max(llm.quality.value);
    let goal = options.target_share * better;
    let pick = scored
        .iter()
        .filter(admissible)
        .filter(|(_, o)| o.quality.value + 1e-12 >= goal)
        .min_by(|a, b| cheaper(a, b))?;
    let why = format!(
        "cheapest reaching {:.0}% of the better model ({goal:.3} of {better:.3}) on the calibration half: {:.3}",
        options.target_share * 100.0,
        pick.1.quality.value
    );
    Some((pick.0.clone(), why, scored.len()))
}

/// Simpler policies win ties.
fn simplicity(p: &Policy) -> u8 {
    match p {
        Policy::Slm => 0,
        Policy::Llm => 1,
        Policy::Cascade { .. } => 2,
    }
}

fn signal_qualities(items: &[TaskItem], options: &FitOptions, task: &str) -> Vec<SignalQuality> {
    let mut names: Vec<&String> = items.iter().flat_map(|i| i.signals.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let (scores, positive): (Vec<f64>, Vec<bool>) = items
                .iter()
                .filter_map(|i| i.signals.get(name).map(|v| (*v, i.slm_passed)))
                .unzip();
            let seed = stable_hash(options.seed, &[task, name])[0];
            let (auroc, ci95) = auroc_ci(&scores, &positive, options.bootstrap, seed);
            SignalQuality {
                signal: name.clone(),
                n: scores.len(),
                auroc,
                ci95,
            }
        })
        .collect()
}

fn half(items: &[TaskItem], chosen: &Policy) -> Option<HalfReport> {
    Some(HalfReport {
        n: items.len(),
        slm: outcome(&Policy::Slm, items)?,
        llm: outcome(&Policy::Llm, items)?,
        chosen: outcome(chosen, items)?,
    })
}

/// Fit every task of a run.
pub fn fit(records: &[RequestRecord], options: &FitOptions) -> Result<Fit> {
    let (tasks, skipped) = pair_by_task(records, &options.slm, &options.llm)?;
    let mut out = Vec::new();
    let mut overall: Vec<(TaskItem, Policy)> = Vec::new();
    for (task, items) in tasks {
        let (cal, eval) = split(&items, &task, options.seed);
        if cal.is_empty() || eval.is_empty() {
            // One item: nothing to evaluate on; say so by leaving the task out of the fit.
            continue;
        }
        let Some((chosen, why, candidates)) = choose(&cal, options) else {
            continue;
        };
        let (Some(calibration), Some(evaluation)) = (half(&cal, &chosen), half(&eval, &chosen))
        else {
            continue;
        };
        overall.extend(eval.iter().map(|i| (i.clone(), chosen.clone())));
        out.push(TaskFit {
            signals: signal_qualities(&eval, options, &task),
            task,
            chosen,
            why,
            candidates,
            calibration,
            evaluation,
        });
    }
    if out.is_empty() {
        return Err(BenchError::Analysis(
            "no task has at least two items answered by both targets".into(),
        ));
    }
    Ok(Fit {
        options: options.clone(),
        overall: overall_report(&overall),
        tasks: out,
        skipped_items: skipped,
    })
}

/// The evaluation halves of all tasks together, each item under its task's policy.
fn overall_report(items: &[(TaskItem, Policy)]) -> Option<HalfReport> {
    let all: Vec<TaskItem> = items.iter().map(|(i, _)| i.clone()).collect();
    let mut qualities = Vec::with_capacity(items.len());
    let (mut cost, mut llm) = (0.0, 0usize);
    for (item, policy) in items {
        let o = outcome(policy, std::slice::from_ref(item))?;
        qualities.push(o.quality.value);
        cost += o.cost_per_request;
        llm += usize::from(o.llm_share > 0.0);
    }
    let n = items.len().max(1) as f64;
    Some(HalfReport {
        n: items.len(),
        slm: outcome(&Policy::Slm, &all)?,
        llm: outcome(&Policy::Llm, &all)?,
        chosen: Outcome {
            quality: bounded(mean_t(&qualities)?),
            cost_per_request: cost / n,
            llm_share: llm as f64 / n,
        },
    })
}

#[cfg(test)]
mod tests;
