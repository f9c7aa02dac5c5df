//! A cost budget over all tasks: "spend at most this share of what sending everything to the
//! LLM would cost, and lose as little quality as possible for it".
//!
//! Why: the per-task quality target chooses each task on its own, so the total cost is whatever
//! the tasks add up to. A team with a budget wants the opposite question answered: which tasks
//! should give up some quality so the whole stays within it, and how much quality that costs.
//! Each task keeps its quality-target choice unless the total is over the budget; then the fit
//! chooses, among each task's candidates that cost no more than its own choice, the combination
//! with the best total quality (items-weighted, calibration half) that fits the budget. That is
//! a multiple-choice knapsack; with at most a few dozen tasks and candidates it is solved
//! exactly by dynamic programming over the budget cut into [`UNITS`] steps, each candidate's
//! cost rounded *up* to a whole step so that whatever the program picks really fits.
//! By default the budget is held with 95% confidence, not on the point estimate: the total
//! cost of new items of the same mix varies around the calibration half's, so the fit keeps
//! the one-sided upper bound of the total (normal, from the per-item costs' spread) within the
//! budget. The program holds point totals; the point budget is lowered by the bound's excess
//! until the bound fits.
//! When even the cheapest candidate of every task is over the budget, each task takes its
//! cheapest candidate and the report says the budget was not reachable.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::gap::Judge;
use super::policy::apply as apply_one;
use super::{admissible, outcome, scored, FitOptions, Outcome, Policy, TaskItem};

/// One-sided 95% normal quantile: the budget holds on new items of the same mix with this
/// confidence (the totals are over hundreds of items, so the normal is close enough).
const Z_ONE_SIDED_95: f64 = 1.645;

/// Steps the budget is cut into; a candidate's cost is rounded up to a whole step.
const UNITS: usize = 4000;

/// A task's calibration half with the policy chosen for it so far.
#[derive(Clone, Debug)]
pub(super) struct Planned {
    /// The task's name.
    pub task: String,
    /// Its calibration half.
    pub cal: Vec<TaskItem>,
    /// Its evaluation half.
    pub eval: Vec<TaskItem>,
    /// The policy chosen so far and why.
    pub chosen: Policy,
    /// Why that policy.
    pub why: String,
    /// Candidates evaluated.
    pub candidates: usize,
}

/// What the budget did, on the calibration half (USD over all its items).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetReport {
    /// The budget as a share of the all-LLM cost.
    pub share: f64,
    /// Sending every calibration item to the LLM.
    pub all_llm_usd: f64,
    /// `share × all_llm_usd`.
    pub budget_usd: f64,
    /// The per-task choices before the budget.
    pub before_usd: f64,
    /// The choices kept.
    pub after_usd: f64,
    /// What the budget is held to: `after_usd`, or its one-sided 95% upper bound over new
    /// items of the same mix (`budget_upper_bound`).
    pub after_upper_usd: f64,
    /// Mean quality over the calibration half before the budget, as the quality target judges
    /// it (by default each task's quality with 95% confidence, see `gap.rs`).
    pub quality_before: f64,
    /// The same after it.
    pub quality_after: f64,
    /// Whether the choices kept fit the budget.
    pub reachable: bool,
    /// Tasks whose policy the budget changed.
    pub changed: Vec<String>,
}

/// One candidate of one task, over the task's whole calibration half.
struct Candidate {
    policy: Policy,
    /// Total quality (sum of item scores).
    value: f64,
    /// Total cost in USD.
    cost: f64,
    /// Sum of the squared per-item costs, for the spread of the total.
    cost_sq: f64,
}

/// Σ cost² over the items under `policy`.
fn squares(policy: &Policy, items: &[TaskItem]) -> f64 {
    items
        .iter()
        .filter_map(|i| apply_one(policy, i))
        .map(|(_, c, _)| c * c)
        .sum()
}

/// Each task's candidates no dearer than its current choice (the current one included), each
/// valued at the quality the quality target judges it by (by default with 95% confidence).
fn options_of(plan: &Planned, options: &FitOptions) -> Vec<Candidate> {
    let n = plan.cal.len();
    let all = scored(&plan.cal, options);
    let judge = Judge::new(&all, &plan.cal, options);
    let totals = |p: &Policy, o: &Outcome| {
        let q = judge.as_ref().map_or(o.quality.value, |j| j.quality(p, o));
        (q * n as f64, o.cost_per_request * n as f64)
    };
    let current = outcome(&plan.chosen, &plan.cal).map(|o| totals(&plan.chosen, &o));
    let ceiling = current.map_or(f64::INFINITY, |(_, c)| c);
    let mut out: Vec<Candidate> = all
        .into_iter()
        .filter(|c| admissible(c, options) || c.0 == plan.chosen)
        .map(|(policy, o)| {
            let (value, cost) = totals(&policy, &o);
            let cost_sq = squares(&policy, &plan.cal);
            Candidate {
                policy,
                value,
                cost,
                cost_sq,
            }
        })
        .filter(|o| o.cost <= ceiling * (1.0 + 1e-12) + 1e-15)
        .collect();
    if !out.iter().any(|o| o.policy == plan.chosen) {
        if let Some((value, cost)) = current {
            out.push(Candidate {
                cost_sq: squares(&plan.chosen, &plan.cal),
                policy: plan.chosen.clone(),
                value,
                cost,
            });
        }
    }
    out
}

/// Better: more total quality; on a tie, less cost.
fn better(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 > b.0 + 1e-9 || ((a.0 - b.0).abs() <= 1e-9 && a.1 < b.1)
}

/// Keep every task's policy if the total fits `share` of the all-LLM cost; otherwise replace
/// them with the best-quality combination that fits (see the module doc).
pub(super) fn apply(plans: &mut [Planned], share: f64, options: &FitOptions) -> BudgetReport {
    let per_task: Vec<Vec<Candidate>> = plans.iter().map(|p| options_of(p, options)).collect();
    let all_llm_usd: f64 = plans
        .iter()
        .filter_map(|p| {
            outcome(&Policy::Llm, &p.cal).map(|o| o.cost_per_request * p.cal.len() as f64)
        })
        .sum();
    let items: usize = plans.iter().map(|p| p.cal.len()).sum::<usize>().max(1);
    let current = |i: usize| per_task[i].iter().position(|o| o.policy == plans[i].chosen);
    let sum = |pick: &[Option<usize>]| {
        pick.iter()
            .enumerate()
            .filter_map(|(i, j)| j.map(|j| &per_task[i][j]))
            .fold((0.0, 0.0, 0.0), |a, c| {
                (a.0 + c.value, a.1 + c.cost, a.2 + c.cost_sq)
            })
    };
    let n = items as f64;
    let z = if options.budget_upper_bound {
        Z_ONE_SIDED_95
    } else {
        0.0
    };
    // The total cost a pick is held to: its point total, or the one-sided upper bound of the
    // total over new items of the same mix (n × the mean's upper bound).
    let upper = |pick: &[Option<usize>]| {
        let (_, total, sq) = sum(pick);
        let var = if n > 1.0 {
            ((sq - total * total / n) / (n - 1.0)).max(0.0)
        } else {
            0.0
        };
        total + z * (n * var).sqrt()
    };
    let before: Vec<Option<usize>> = (0..plans.len()).map(current).collect();
    let (value_before, before_usd, _) = sum(&before);
    let budget_usd = share * all_llm_usd;
    let fits = |usd: f64| usd <= budget_usd * (1.0 + 1e-9) + 1e-15;

    let (pick, reachable) = if fits(upper(&before)) {
        (before.clone(), true)
    } else {
        // The knapsack holds point totals; the spread is added after and the point budget
        // lowered by the excess until the bound fits (a few rounds; the spread hardly moves).
        let mut point_budget = budget_usd;
        let mut found = None;
        for _ in 0..64 {
            let Some(p) = knapsack(&per_task, point_budget) else {
                break;
            };
            let p: Vec<Option<usize>> = p.into_iter().map(Some).collect();
            let u = upper(&p);
            if fits(u) {
                found = Some(p);
                break;
            }
            point_budget -= (u - budget_usd).max(budget_usd * 1e-3);
            if point_budget <= 0.0 {
                break;
            }
        }
        match found {
            Some(p) => (p, true),
            None => {
                // Not reachable: every task at its cheapest (then best) candidate.
                let cheapest = per_task
                    .iter()
                    .map(|opts| {
                        (0..opts.len()).min_by(|&a, &b| {
                            opts[a]
                                .cost
                                .total_cmp(&opts[b].cost)
                                .then(opts[b].value.total_cmp(&opts[a].value))
                        })
                    })
                    .collect::<Vec<_>>();
                let u = upper(&cheapest);
                (cheapest, fits(u))
            }
        }
    };
    let (value_after, after_usd, _) = sum(&pick);
    let after_upper_usd = upper(&pick);
    let mut changed = Vec::new();
    for (i, plan) in plans.iter_mut().enumerate() {
        let Some(j) = pick[i] else { continue };
        let new = &per_task[i][j];
        if new.policy == plan.chosen {
            continue;
        }
        let n = plan.cal.len().max(1) as f64;
        let old = before[i].map(|b| &per_task[i][b]);
        plan.why = format!(
            "within the budget ({share}× the all-LLM cost of every task's calibration half, ${budget_usd:.6}): {} instead of {} (quality {:.3} → {:.3}, ${:.6} → ${:.6}/request)",
            new.policy.describe(),
            plan.chosen.describe(),
            old.map_or(f64::NAN, |o| o.value / n),
            new.value / n,
            old.map_or(f64::NAN, |o| o.cost / n),
            new.cost / n,
        );
        plan.chosen = new.policy.clone();
        changed.push(plan.task.clone());
    }
    BudgetReport {
        share,
        all_llm_usd,
        budget_usd,
        before_usd,
        after_usd,
        after_upper_usd,
        quality_before: value_before / items as f64,
        quality_after: value_after / items as f64,
        reachable,
        changed,
    }
}

/// The best total quality with total cost ≤ `budget`, one candidate per task; `None` when no
/// combination fits.
fn knapsack(per_task: &[Vec<Candidate>], budget: f64) -> Option<Vec<usize>> {
    let unit = budget / UNITS as f64;
    let weight = |cost: f64| -> Option<usize> {
        if cost <= 0.0 {
            return Some(0);
        }
        if unit <= 0.0 {
            return None;
        }
        let w = (cost / unit - 1e-9).ceil();
        (w <= UNITS as f64).then_some(w as usize)
    };
    // best[w]: (value, cost) of the best combination so far of exactly weight w.
    let mut best: Vec<Option<(f64, f64)>> = vec![None; UNITS + 1];
    best[0] = Some((0.0, 0.0));
    let mut choice: Vec<Vec<Option<(usize, usize)>>> = Vec::with_capacity(per_task.len());
    for opts in per_task {
        let mut next: Vec<Option<(f64, f64)>> = vec![None; UNITS + 1];
        let mut from: Vec<Option<(usize, usize)>> = vec![None; UNITS + 1];
        for (j, o) in opts.iter().enumerate() {
            let Some(wj) = weight(o.cost) else { continue };
            for w in wj..=UNITS {
                let Some((v, c)) = best[w - wj] else { continue };
                let cand = (v + o.value, c + o.cost);
                if next[w].is_none_or(|cur| better(cand, cur)) {
                    next[w] = Some(cand);
                    from[w] = Some((j, w - wj));
                }
            }
        }
        best = next;
        choice.push(from);
    }
    let mut w =
        (0..=UNITS)
            .filter(|&w| best[w].is_some())
            .reduce(|a, b| match (best[a], best[b]) {
                (Some(x), Some(y)) if better(y, x) => b,
                _ => a,
            })?;
    let mut pick = vec![0; per_task.len()];
    for t in (0..per_task.len()).rev() {
        let (j, prev) = choice[t][w]?;
        pick[t] = j;
        w = prev;
    }
    Some(pick)
}
