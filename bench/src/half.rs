//! `triage bench run --half calibration|evaluation`: run only one half of each task's items —
//! the same halves `bench calibrate --per-task` splits a run into ([`crate::fit::halves`], the
//! fit's default seed, pooled by task across scenarios, stratified by gold answer) — so a router
//! calibrated on one run's calibration half is measured on items it never saw.
//!
//! The split is computed over the items that remain after few-shot draws and limits, exactly the
//! items a measuring run with the same suite and limits answers; the halves agree with the fit's
//! as long as that run answered every item (the fit leaves out items either model failed).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::fit::halves;
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
