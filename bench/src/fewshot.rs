//! Few-shot examples drawn from a scenario's own items (`few_shot_from_items: K`), for scenarios
//! that have none of their own: a base model answers a bare question poorly, a few worked
//! examples of the same task show it the answer's shape.
//!
//! Examples must never be items the routing fit evaluates on, and never be scored themselves:
//! - they come from the **calibration half** only: the task's items (across the suite's scenarios
//!   of that task, as the fit groups them) are split by [`crate::fit::halves`] with the fit's
//!   default seed, and a scenario's examples are chosen among its own items in that half;
//! - the chosen items are **removed** from the scenario's items before its `limit` applies, so
//!   they are not sent, and the run's metadata lists them ([`FewShotDraw`]).
//!
//! Within the calibration half the choice is seeded and spread over the gold labels (one item of
//! each label in turn, labels in seeded order), so K = 3 on a two-label task shows both labels;
//! the chosen examples are then put in a seeded order. Each becomes a (user, assistant) turn pair
//! through the scenario's `prompt` and `expected` templates, exactly as `few_shot` entries do.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::fit::{halves, stable_hash, FitOptions};
use crate::scenario::{Scenario, ScenarioItem};

/// The items one scenario uses as few-shot examples (recorded in `metadata.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FewShotDraw {
    /// Name of the scenario the examples are shown in.
    pub scenario: String,
    /// Its task, whose calibration half the examples come from.
    pub task: String,
    /// Examples asked for (`few_shot_from_items`).
    pub requested: usize,
    /// Seed of the calibration/evaluation split (the fit's default, `bench calibrate --seed`).
    pub seed: u64,
    /// Ids of the items shown as examples, in prompt order; none of them is sent or scored.
    pub items: Vec<String>,
}

/// The seed of the split the examples are drawn from: the per-task fit's default.
pub fn split_seed() -> u64 {
    FitOptions::default().seed
}

/// Draw examples for every scenario that asks for them (`few_shot_from_items > 0`) and has no
/// `few_shot` of its own, from the calibration half of its task's items under `seed`; the drawn
/// items leave the scenario's items and become its `few_shot` turns. Call before any `limit`
/// is applied, with every scenario of the suite (a task's items are split together).
pub fn draw(scenarios: &mut [Scenario], seed: u64) -> Result<()> {
    let tasks: BTreeSet<String> = scenarios
        .iter()
        .filter(|s| wants_examples(s))
        .map(|s| s.task.clone())
        .collect();
    let mut chosen: Vec<(usize, Vec<String>)> = Vec::new();
    for task in &tasks {
        let pool: Vec<(usize, &ScenarioItem)> = scenarios
            .iter()
            .enumerate()
            .filter(|(_, s)| &s.task == task)
            .flat_map(|(i, s)| s.items.iter().map(move |item| (i, item)))
            .collect();
        let (calibration, _) = halves(&pool, task, seed, |(i, item)| {
            let scenario = scenarios.get(*i).map(|s| s.name.as_str()).unwrap_or("");
            (scenario, item.id.as_str(), item.expected.as_deref())
        });
        for (i, scenario) in scenarios.iter().enumerate() {
            if &scenario.task != task || !wants_examples(scenario) {
                continue;
            }
            let own: Vec<&ScenarioItem> = calibration
                .iter()
                .filter(|(j, _)| *j == i)
                .map(|(_, item)| *item)
                .collect();
            let picked = pick(
                &own,
                scenario.few_shot_from_items,
                seed,
                task,
                &scenario.name,
            );
            chosen.push((i, picked));
        }
    }
    for (i, ids) in chosen {
        let Some(scenario) = scenarios.get_mut(i) else {
            continue;
        };
        apply(scenario, ids, seed)?;
    }
    Ok(())
}

fn wants_examples(scenario: &Scenario) -> bool {
    // A RAG scenario's examples would carry no retrieved passages.
    scenario.few_shot_from_items > 0 && scenario.few_shot.is_empty() && scenario.rag.is_none()
}

/// Up to `k` of `items`: round-robin over their labels (labels and items in seeded order), then
/// in seeded order.
fn pick(items: &[&ScenarioItem], k: usize, seed: u64, task: &str, scenario: &str) -> Vec<String> {
    let key = |id: &str| stable_hash(seed, &["few-shot", task, scenario, id]);
    let mut by_label: BTreeMap<Option<String>, Vec<&ScenarioItem>> = BTreeMap::new();
    for item in items {
        let label = item.expected.as_ref().map(|l| l.trim().to_lowercase());
        by_label.entry(label).or_default().push(item);
    }
    let mut groups: Vec<Vec<&ScenarioItem>> = by_label.into_values().collect();
    for group in &mut groups {
        group.sort_by_key(|item| key(&item.id));
    }
    groups.sort_by_key(|group| group.first().map(|item| key(&item.id)));
    let mut picked: Vec<&ScenarioItem> = Vec::new();
    let mut round = 0;
    while picked.len() < k && groups.iter().any(|g| g.len() > round) {
        for group in &groups {
            if picked.len() < k {
                if let Some(item) = group.get(round) {
                    picked.push(item);
                }
            }
        }
        round += 1;
    }
    picked.sort_by_key(|item| key(&item.id));
    picked.into_iter().map(|item| item.id.clone()).collect()
}

/// Move the picked items out of the scenario's items into its few-shot turns.
fn apply(scenario: &mut Scenario, ids: Vec<String>, seed: u64) -> Result<()> {
    let invalid = |m: String| BenchError::invalid(&scenario.path, m);
    let Some(expected) = &scenario.expected else {
        return Err(invalid(
            "`few_shot_from_items` needs an `expected` template to write the examples' answers"
                .into(),
        ));
    };
    let mut turns = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(item) = scenario.items.iter().find(|item| &item.id == id) else {
            continue;
        };
        let user = scenario.prompt.render(&item.fields)?;
        let assistant = expected.render(&item.fields)?;
        turns.push((user, assistant));
    }
    if scenario.items.len() <= ids.len() {
        return Err(invalid(format!(
            "`few_shot_from_items: {}` would leave no item to measure ({} items)",
            scenario.few_shot_from_items,
            scenario.items.len()
        )));
    }
    scenario.items.retain(|item| !ids.contains(&item.id));
    scenario.few_shot = turns;
    scenario.drawn_examples = Some(FewShotDraw {
        scenario: scenario.name.clone(),
        task: scenario.task.clone(),
        requested: scenario.few_shot_from_items,
        seed,
        items: ids,
    });
    Ok(())
}
