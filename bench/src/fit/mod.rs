//! Per-task routing calibration, honest about over-fitting: from one run in which every item
//! was answered by the LLM and by one or more small targets (the SLM, an encoder classifier, …,
//! with their confidence signals), choose for each task the cheapest of "always small target
//! X", "always LLM" and "X first, escalate on signal S below threshold t" that reaches the
//! quality target — on one half of the items — and report it on the other half.
//!
//! Why this shape (see `../shared/design/ROUTING-LOOP.md` §2):
//! - **Split first.** Items of each task are split into a calibration and an evaluation half,
//!   seeded and stratified by gold label (the expected answer), before anything is chosen. The
//!   policy is chosen on the calibration half only; the numbers a user should believe are the
//!   evaluation half's, printed next to each single target on the same items.
//! - **Several first steps.** The cheapest good answer is not always the SLM's: an encoder
//!   classifier answers a `choices` task in milliseconds, and on a machine where the SLM's
//!   engine time costs about what a cheap API's tokens cost, only such a target saves money.
//!   Every small target is a candidate on its own and as a cascade's first step; the fit picks
//!   per task, and `--write` routes each task to the target it picked.
//! - **A coarse grid.** Thresholds are quantiles of the signal on the calibration half (deciles
//!   by default), not every distinct value: with 15–30 items per half, a per-value sweep finds
//!   the threshold that happens to separate this half's few mistakes and nothing else.
//! - **Evidence, not luck** (`gap.rs`): a policy reaches the quality target only when the
//!   one-sided 95% lower bound of its per-item difference from the best single target clears
//!   the allowed loss; the cheapest policy that *happens* to reach the target on a small half
//!   is optimistic by construction. `target_lower_bound: false` goes back to point estimates.
//! - **A minimum gain.** A cascade replaces "always LLM" only when it saves at least
//!   `min_saving` of the LLM calls on the calibration half; smaller savings are within noise.
//! - **Nothing is rerun.** A cascade item costs its first step always and the LLM when
//!   escalated; its quality is the LLM's score when escalated and the first step's otherwise.
//!   An item whose first answer has no value for the signal (a failure, a backend without
//!   log-probabilities) escalates.
//!
//! - **A budget over all tasks** (optional, `budget.rs`): when the per-task choices together
//!   cost more than a given share of the all-LLM cost, the tasks that lose least quality per
//!   dollar give way, exactly (a small knapsack), and the report says what it cost in quality.
//!
//! Each small target's signals' AUROC for predicting its own pass/fail is reported per task on
//! the evaluation half with a seeded percentile-bootstrap interval; 0.5 means the signal
//! carries no information for that task, and the report says so instead of hiding it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::record::RequestRecord;

mod auroc;
mod budget;
mod gap;
mod pair;
mod policy;
mod privacy;
mod split;
pub mod write;

pub use auroc::{auroc, auroc_ci, SignalQuality};
pub use budget::BudgetReport;
use budget::Planned;
pub use gap::Gap;
pub use pair::{pair_by_task, signals_of};
pub use policy::{outcome, Answer, Outcome, Policy, TaskItem};
pub use privacy::{Privacy, PrivacyReport};
pub(crate) use split::stable_hash;
pub use split::{halves, split};

/// How to fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FitOptions {
    /// Target names of the small models in the run (first steps), in order of preference when
    /// two policies tie.
    pub small: Vec<String>,
    /// Target name of the large model in the run.
    pub llm: String,
    /// Quality to reach, as a share of the best single target's quality on the calibration
    /// half (0.95: within 5% of the best one).
    pub target_share: f64,
    /// Whether a policy reaches the target only when the one-sided 95% lower bound of its paired
    /// difference from the best single target does (the default), or when its point estimate
    /// does.
    #[serde(default = "yes")]
    pub target_lower_bound: bool,
    /// Instead of a quality target: the best quality whose cost per request is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Over all tasks together: spend at most this share of the all-LLM cost on the calibration
    /// half, giving up as little quality as possible when the per-task choices cost more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_share: Option<f64>,
    /// Hold the budget on the one-sided 95% upper bound of the cost (new items of the same mix),
    /// not on the calibration half's point total.
    #[serde(default = "yes")]
    pub budget_upper_bound: bool,
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
            small: vec!["slm".into()],
            llm: "llm".into(),
            target_share: 0.95,
            target_lower_bound: true,
            max_cost: None,
            budget_share: None,
            budget_upper_bound: true,
            seed: 7,
            min_saving: 0.2,
            grid: 10,
            bootstrap: 1000,
        }
    }
}

fn yes() -> bool {
    true
}

/// Every single target and the chosen policy on one half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HalfReport {
    /// Items in the half.
    pub n: usize,
    /// "Always X" on these items, for each small target X that answered all of them.
    pub small: BTreeMap<String, Outcome>,
    /// "Always LLM" on these items.
    pub llm: Outcome,
    /// The chosen policy on these items (for `overall`, each task's own policy).
    pub chosen: Outcome,
    /// The chosen policy minus the best single target on these items, paired per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_best: Option<Gap>,
}

/// One signal of one small target, judged on the evaluation half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetSignal {
    /// The small target whose answers carry the signal.
    pub target: String,
    /// How well the signal predicts that target's pass/fail.
    #[serde(flatten)]
    pub quality: SignalQuality,
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
    /// AUROC of each small target's signals on the evaluation half.
    pub signals: Vec<TargetSignal>,
}

/// The result of a per-task fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Fit {
    /// The options the fit ran with.
    pub options: FitOptions,
    /// One fit per task with at least two items answered by the LLM and a small target.
    pub tasks: Vec<TaskFit>,
    /// Every task's evaluation half together: each single target and the per-task router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<HalfReport>,
    /// What `budget_share` did, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetReport>,
    /// What the config's privacy rule did, when the fit knew one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyReport>,
    /// Items some target did not answer, or never scored.
    pub skipped_items: usize,
}

/// The small targets answering every item, in the options' order.
fn small_targets<'a>(items: &[TaskItem], options: &'a FitOptions) -> Vec<&'a String> {
    options
        .small
        .iter()
        .filter(|t| !items.is_empty() && items.iter().all(|i| i.small.contains_key(*t)))
        .collect()
}

/// The candidate policies for a calibration half: each small target alone, the LLM, and for
/// each small target a cascade per signal at each distinct grid quantile of that signal.
pub fn candidates(items: &[TaskItem], options: &FitOptions) -> Vec<Policy> {
    let grid = options.grid.max(2);
    let small = small_targets(items, options);
    let mut out: Vec<Policy> = small
        .iter()
        .map(|t| Policy::Small {
            target: (*t).clone(),
        })
        .collect();
    out.push(Policy::Llm);
    for target in small {
        let mut names: Vec<&String> = items
            .iter()
            .filter_map(|i| i.small.get(target))
            .flat_map(|a| a.signals.keys())
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let mut values: Vec<f64> = items
                .iter()
                .filter_map(|i| i.small.get(target)?.signals.get(name).copied())
                .filter(|v| v.is_finite())
                .collect();
            if values.is_empty() {
                continue;
            }
            values.sort_by(f64::total_cmp);
            let mut thresholds: Vec<f64> = (1..grid)
                .map(|k| values[((k * values.len()) / grid).min(values.len() - 1)])
                .collect();
            thresholds.dedup();
            for t in thresholds {
                // A threshold at the minimum escalates nothing: that is "always X".
                if t > values[0] {
                    out.push(Policy::Cascade {
                        first: target.clone(),
                        signal: name.clone(),
                        threshold: t,
                    });
                }
            }
        }
    }
    out
}

/// Every candidate policy with its outcome on `items`.
pub(super) fn scored(items: &[TaskItem], options: &FitOptions) -> Vec<(Policy, Outcome)> {
    candidates(items, options)
        .into_iter()
        .filter_map(|p| outcome(&p, items).map(|o| (p, o)))
        .collect()
}

/// A cascade must save enough LLM calls against "always LLM" to be believed.
pub(super) fn admissible((p, o): &(Policy, Outcome), options: &FitOptions) -> bool {
    match p {
        Policy::Cascade { .. } => o.llm_share <= 1.0 - options.min_saving,
        _ => true,
    }
}

/// Choose a policy on the calibration half. Returns the policy, the reason and the number of
/// candidates; `None` when no single target answered every item.
pub fn choose(items: &[TaskItem], options: &FitOptions) -> Option<(Policy, String, usize)> {
    let scored = scored(items, options);
    let preference = |p: &Policy| {
        p.small_target()
            .and_then(|t| options.small.iter().position(|s| s == t))
            .unwrap_or(usize::MAX)
    };
    let cheaper = |a: &(Policy, Outcome), b: &(Policy, Outcome)| {
        a.1.cost_per_request
            .total_cmp(&b.1.cost_per_request)
            .then(a.1.llm_share.total_cmp(&b.1.llm_share))
            .then(a.0.simplicity().cmp(&b.0.simplicity()))
            .then(preference(&a.0).cmp(&preference(&b.0)))
    };
    let admissible = |c: &&(Policy, Outcome)| admissible(c, options);
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
    let judge = gap::Judge::new(&scored, items, options)?;
    let (best, best_single) = (judge.best, judge.best_policy.describe());
    let goal = options.target_share * best;
    let judged = |(p, o): &(Policy, Outcome)| judge.quality(p, o);
    let pick = scored
        .iter()
        .filter(admissible)
        .filter(|c| judged(c) + 1e-12 >= goal)
        .min_by(|a, b| cheaper(a, b))?;
    let why = if options.target_lower_bound {
        format!(
            "cheapest reaching {:.0}% of the best single target ({best_single}: {goal:.3} of {best:.3}) with 95% confidence on the calibration half: {:.3}, at least {:.3}",
            options.target_share * 100.0,
            pick.1.quality.value,
            judged(pick)
        )
    } else {
        format!(
            "cheapest reaching {:.0}% of the best single target ({best_single}: {goal:.3} of {best:.3}) on the calibration half: {:.3}",
            options.target_share * 100.0,
            pick.1.quality.value
        )
    };
    Some((pick.0.clone(), why, scored.len()))
}

fn signal_qualities(items: &[TaskItem], options: &FitOptions, task: &str) -> Vec<TargetSignal> {
    let mut out = Vec::new();
    for target in &options.small {
        let answers: Vec<_> = items.iter().filter_map(|i| i.small.get(target)).collect();
        let mut names: Vec<&String> = answers.iter().flat_map(|a| a.signals.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let (scores, positive): (Vec<f64>, Vec<bool>) = answers
                .iter()
                .filter_map(|a| a.signals.get(name).map(|v| (*v, a.passed)))
                .unzip();
            // The first target keeps the single-SLM seed, so its intervals do not move.
            let seed = if Some(target) == options.small.first() {
                stable_hash(options.seed, &[task, name])[0]
            } else {
                stable_hash(options.seed, &[task, target, name])[0]
            };
            let (auroc, ci95) = auroc_ci(&scores, &positive, options.bootstrap, seed);
            out.push(TargetSignal {
                target: target.clone(),
                quality: SignalQuality {
                    signal: name.clone(),
                    n: scores.len(),
                    auroc,
                    ci95,
                },
            });
        }
    }
    out
}

/// Each single target and `chosen` on a half, items each under their own policy. The single
/// targets are what each does alone (no privacy rule); the chosen policies include it.
fn half_report(items: &[(&TaskItem, &Policy)], options: &FitOptions) -> Option<HalfReport> {
    let all: Vec<TaskItem> = items
        .iter()
        .map(|(i, _)| TaskItem {
            forced: None,
            ..(*i).clone()
        })
        .collect();
    let small: BTreeMap<String, Outcome> = small_targets(&all, options)
        .into_iter()
        .filter_map(|t| {
            let o = outcome(&Policy::Small { target: t.clone() }, &all)?;
            Some((t.clone(), o))
        })
        .collect();
    let llm = outcome(&Policy::Llm, &all)?;
    let chosen_items: Vec<f64> = items
        .iter()
        .map(|(i, p)| policy::apply(p, i).map(|(q, _, _)| q))
        .collect::<Option<_>>()?;
    // The best single target on these items, and the chosen policies against it.
    let best = small
        .iter()
        .map(|(t, o)| (Policy::Small { target: t.clone() }, o.quality.value))
        .chain([(Policy::Llm, llm.quality.value)])
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(p, _)| p);
    let vs_best = best.and_then(|p| {
        let q = policy::qualities(&p, &all)?;
        gap::gap(p.describe(), &chosen_items, &q)
    });
    Some(HalfReport {
        n: items.len(),
        small,
        llm,
        chosen: policy::outcome_each(items.iter().copied().map(|(i, p)| (p, i)))?,
        vs_best,
    })
}

/// Fit every task of a run.
pub fn fit(records: &[RequestRecord], options: &FitOptions) -> Result<Fit> {
    fit_with(records, options, None)
}

/// Fit every task of a run, with the router config's privacy rule when it has one: items
/// whose prompt it would keep local are answered by its target under every policy.
pub fn fit_with(
    records: &[RequestRecord],
    options: &FitOptions,
    privacy: Option<&Privacy<'_>>,
) -> Result<Fit> {
    if let Some(share) = options.budget_share {
        if !(share.is_finite() && share >= 0.0) {
            return Err(BenchError::Analysis(format!(
                "the budget share must be a number ≥ 0 (a share of the all-LLM cost), got {share}"
            )));
        }
    }
    let (mut tasks, skipped) = pair_by_task(records, &options.small, &options.llm)?;
    let first_small = options
        .small
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let privacy = privacy.map(|p| privacy::mark(&mut tasks, records, p, first_small));
    let mut plans = Vec::new();
    for (task, items) in tasks {
        let (cal, eval) = split(&items, &task, options.seed);
        if cal.is_empty() || eval.is_empty() {
            // One item: nothing to evaluate on; say so by leaving the task out of the fit.
            continue;
        }
        let Some((chosen, mut why, candidates)) = choose(&cal, options) else {
            continue;
        };
        let kept = cal
            .iter()
            .chain(&eval)
            .filter(|i| i.forced.is_some())
            .count();
        if let (Some(p), true) = (&privacy, kept > 0) {
            why.push_str(&format!(
                "; {kept} of {} items hold PII and stay on {} by the privacy rule `{}`",
                cal.len() + eval.len(),
                p.to,
                p.rule
            ));
        }
        plans.push(Planned {
            task,
            cal,
            eval,
            chosen,
            why,
            candidates,
        });
    }
    let budget = options
        .budget_share
        .map(|share| budget::apply(&mut plans, share, options));
    let mut out = Vec::new();
    let mut overall: Vec<(TaskItem, Policy)> = Vec::new();
    for plan in plans {
        let Planned {
            task,
            cal,
            eval,
            chosen,
            why,
            candidates,
        } = plan;
        let cal_items: Vec<(&TaskItem, &Policy)> = cal.iter().map(|i| (i, &chosen)).collect();
        let eval_items: Vec<(&TaskItem, &Policy)> = eval.iter().map(|i| (i, &chosen)).collect();
        let (Some(calibration), Some(evaluation)) = (
            half_report(&cal_items, options),
            half_report(&eval_items, options),
        ) else {
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
            "no task has at least two items answered by the LLM and a small target".into(),
        ));
    }
    let refs: Vec<(&TaskItem, &Policy)> = overall.iter().map(|(i, p)| (i, p)).collect();
    Ok(Fit {
        options: options.clone(),
        overall: half_report(&refs, options),
        budget,
        privacy,
        tasks: out,
        skipped_items: skipped,
    })
}

#[cfg(test)]
mod tests;
