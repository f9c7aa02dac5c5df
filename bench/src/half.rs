//! `triage bench run --half calibration|evaluation`: run only one half of each task's items —
//! the same halves `bench calibrate --per-task` splits a run into ([`crate::fit::halves`], the
//! fit's default seed, pooled by task across scenarios, stratified by gold answer) — so a router
//! calibrated on one run's calibration half is measured on items it never saw.
//!
//! The split is computed over the items that remain after few-shot draws and limits, exactly the
//! items a measuring run with the same suite and limits answers; the halves agree with the fit's
//! as long as that run answered every item (the fit leaves out items either model failed).

//!
//! **Folds** (`--fold k/K`): a component *trained* on the calibration half (an encoder
//! classifier's head) would answer its own training items in the measuring run, and the fit
//! would choose among policies on training-set accuracy. Cross-fitting avoids that: the half's
//! items are dealt into K folds (seeded, stratified by gold answer, pooled by task as the halves
//! are); head k is trained on the half without fold k (`route train --leave-out-fold k/K`) and
//! answers only fold k (`bench run --half calibration --fold k/K`), so every calibration answer
//! comes from a head that never saw the item — while the evaluation half is answered by the head
//! trained on the whole calibration half.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::fit::{halves, stable_hash};
use crate::scenario::Scenario;

/// Which half of each task's items to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Half {
    /// The items a per-task fit chooses its policies on.
    Calibration,
    /// The held-out items it reports on.
    Evaluation,
}

impl std::str::FromStr for Half {
    type Err = String;
    fn from_str(s: &str) -> Result<Half, String> {
        match s {
            "calibration" => Ok(Half::Calibration),
            "evaluation" => Ok(Half::Evaluation),
            other => Err(format!(
                "unknown half `{other}` (calibration or evaluation)"
            )),
        }
    }
}

/// Fold k of K (`k/K`, 1 ≤ k ≤ K, K ≥ 2) of a half's items; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fold {
    /// Which fold, from 1.
    pub index: usize,
    /// How many folds.
    pub count: usize,
}

impl std::str::FromStr for Fold {
    type Err = String;
    fn from_str(s: &str) -> Result<Fold, String> {
        let bad = || format!("fold `{s}`: expected k/K with 1 ≤ k ≤ K and K ≥ 2 (e.g. 1/5)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count < 2 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Fold { index, count })
    }
}

impl std::fmt::Display for Fold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// An item by (scenario index, item id).
type ItemKey = (usize, String);

/// Keep fold `fold` of the items left (`keep_in: true`, what `bench run --fold` answers), or
/// every item but that fold (`false`, what `route train --leave-out-fold` trains on).
pub fn keep_fold(scenarios: &mut [Scenario], fold: Fold, seed: u64, keep_in: bool) {
    let in_fold = fold_items(scenarios, fold, seed);
    for (i, scenario) in scenarios.iter_mut().enumerate() {
        scenario
            .items
            .retain(|item| in_fold.contains(&(i, item.id.clone())) == keep_in);
    }
}

/// The items of fold `fold`, by (scenario index, item id): dealt per task (pooled over its
/// scenarios), stratified by gold answer, under `seed`.
pub fn fold_items(scenarios: &[Scenario], fold: Fold, seed: u64) -> BTreeSet<(usize, String)> {
    let tasks: BTreeSet<String> = scenarios.iter().map(task_of).collect();
    let mut in_fold: BTreeSet<ItemKey> = BTreeSet::new();
    for task in &tasks {
        let mut strata: BTreeMap<Option<String>, Vec<(ItemKey, [u64; 4])>> = BTreeMap::new();
        for (i, s) in scenarios.iter().enumerate() {
            if &task_of(s) != task {
                continue;
            }
            for item in &s.items {
                let label = item.expected.as_deref().map(|l| l.trim().to_lowercase());
                let key = stable_hash(seed, &["fold", task, &s.name, &item.id]);
                strata
                    .entry(label)
                    .or_default()
                    .push(((i, item.id.clone()), key));
            }
        }
        // Dealt round robin, the turn carrying over between labels, as the halves are.
        let mut turn = 0usize;
        for (_, mut members) in strata {
            members.sort_by_key(|m| m.1);
            for (id, _) in members {
                if turn % fold.count == fold.index - 1 {
                    in_fold.insert(id);
                }
                turn += 1;
            }
        }
    }
    in_fold
}

/// Keep only `half` of each task's items (pooled over the scenarios of the task).
pub fn keep(scenarios: &mut [Scenario], half: Half, seed: u64) {
    let tasks: BTreeSet<String> = scenarios.iter().map(task_of).collect();
    let mut kept: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for task in &tasks {
        let pool: Vec<(usize, &str, &str, Option<&str>)> = scenarios
            .iter()
            .enumerate()
            .filter(|(_, s)| &task_of(s) == task)
            .flat_map(|(i, s)| {
                s.items.iter().map(move |item| {
                    (
                        i,
                        s.name.as_str(),
                        item.id.as_str(),
                        item.expected.as_deref(),
                    )
                })
            })
            .collect();
        let (calibration, evaluation) = halves(&pool, task, seed, |(_, scenario, id, label)| {
            (scenario, id, *label)
        });
        let chosen = match half {
            Half::Calibration => calibration,
            Half::Evaluation => evaluation,
        };
        for (i, _, id, _) in chosen {
            kept.entry(*i).or_default().insert(id.to_string());
        }
    }
    for (i, scenario) in scenarios.iter_mut().enumerate() {
        let ids = kept.remove(&i).unwrap_or_default();
        scenario.items.retain(|item| ids.contains(&item.id));
    }
}

/// The task a scenario's records carry (the fit groups by it; the scenario name when unset).
fn task_of(s: &Scenario) -> String {
    if s.task.is_empty() {
        s.name.clone()
    } else {
        s.task.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::{fit, FitOptions};
    use crate::record::RequestRecord;
    use crate::scenario::Suite;
    use std::path::Path;

    fn quickstart() -> Suite {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.yaml");
        Suite::load_with(&path, Some(8), None).unwrap()
    }

    fn ids(suite: &Suite) -> BTreeSet<(String, String)> {
        suite
            .scenarios
            .iter()
            .flat_map(|s| s.items.iter().map(|i| (s.name.clone(), i.id.clone())))
            .collect()
    }

    /// The K folds of a half partition it, each label spread over the folds; leaving a fold
    /// out keeps exactly the others.
    #[test]
    fn folds_partition_a_half() {
        assert!("0/5".parse::<Fold>().is_err());
        assert!("6/5".parse::<Fold>().is_err());
        assert!("1/1".parse::<Fold>().is_err());
        assert!("x".parse::<Fold>().is_err());
        let mut cal = quickstart();
        cal.keep_half(Half::Calibration);
        let all = ids(&cal);
        let mut union = BTreeSet::new();
        for k in 1..=3 {
            let fold: Fold = format!("{k}/3").parse().unwrap();
            assert_eq!(fold.to_string(), format!("{k}/3"));
            let (mut inside, mut outside) = (quickstart(), quickstart());
            inside.keep_half(Half::Calibration);
            outside.keep_half(Half::Calibration);
            keep_fold(&mut inside.scenarios, fold, 7, true);
            keep_fold(&mut outside.scenarios, fold, 7, false);
            let (i, o) = (ids(&inside), ids(&outside));
            assert!(!i.is_empty() && i.is_disjoint(&o) && i.is_disjoint(&union));
            assert_eq!(i.union(&o).cloned().collect::<BTreeSet<_>>(), all);
            union.extend(i);
        }
        assert_eq!(union, all);
    }

    /// The halves are disjoint, cover every item, and are the fit's halves: a run that answered
    /// every item, fitted per task, counts the same items in each half per task.
    #[test]
    fn halves_partition_the_items_as_the_fit_splits_them() {
        let all = quickstart();
        let (mut cal, mut eval) = (quickstart(), quickstart());
        cal.keep_half(Half::Calibration);
        eval.keep_half(Half::Evaluation);
        let (a, c, e) = (ids(&all), ids(&cal), ids(&eval));
        assert!(c.is_disjoint(&e));
        assert_eq!(c.union(&e).cloned().collect::<BTreeSet<_>>(), a);
        assert!(!c.is_empty() && !e.is_empty());

        let mut records = Vec::new();
        for s in &all.scenarios {
            for item in &s.items {
                for target in ["slm", "llm"] {
                    records.push(RequestRecord {
                        target: target.into(),
                        scenario: s.name.clone(),
                        task: s.task.clone(),
                        item_id: item.id.clone(),
                        expected: item.expected.clone(),
                        quality: 1.0,
                        passed: true,
                        cost_usd: Some(0.0),
                        ..RequestRecord::default()
                    });
                }
            }
        }
        let f = fit(&records, &FitOptions::default()).unwrap();
        for t in &f.tasks {
            let count = |suite: &Suite| {
                suite
                    .scenarios
                    .iter()
                    .filter(|s| task_of(s) == t.task)
                    .map(|s| s.items.len())
                    .sum::<usize>()
            };
            assert_eq!(t.calibration.n, count(&cal), "{}", t.task);
            assert_eq!(t.evaluation.n, count(&eval), "{}", t.task);
        }
        assert_eq!("evaluation".parse::<Half>(), Ok(Half::Evaluation));
        assert!("test".parse::<Half>().is_err());
    }
}
