//! Joining a run's records into per-task items that carry every target's answer: the LLM's and
//! each small target's (the SLM, an encoder classifier, …), so every policy can be replayed.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{BenchError, Result};
use crate::record::RequestRecord;

use super::policy::{Answer, TaskItem};

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

fn answer(r: &RequestRecord) -> Answer {
    Answer {
        quality: r.quality,
        passed: r.passed,
        cost: r.cost_usd.unwrap_or(0.0),
        signals: if r.error.is_some() {
            BTreeMap::new()
        } else {
            signals_of(r)
        },
    }
}

/// Join the records of the small targets and the LLM by (scenario, item), grouped by task.
/// Items answered more than once use their first record. A task's small targets are those
/// that answered at least one of its items without an error (an encoder classifier fails every
/// item of a task without `choices`: it is no candidate there); an item missing the LLM's
/// answer or one of those targets' is skipped and counted (so every policy of a task is judged
/// on the same items).
pub fn pair_by_task(
    records: &[RequestRecord],
    small: &[String],
    llm: &str,
) -> Result<(BTreeMap<String, Vec<TaskItem>>, usize)> {
    for name in small.iter().map(String::as_str).chain([llm]) {
        if !records.iter().any(|r| r.target == name) {
            return Err(BenchError::Analysis(format!(
                "the run has no records of target `{name}`"
            )));
        }
    }
    let task_of = |r: &RequestRecord| {
        if r.task.is_empty() {
            r.scenario.clone()
        } else {
            r.task.clone()
        }
    };
    // (task, scenario, item) → target → first record.
    type Key = (String, String, String);
    let mut by_key: BTreeMap<Key, BTreeMap<&str, &RequestRecord>> = BTreeMap::new();
    let mut present: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for r in records {
        let Some(target) = small
            .iter()
            .map(String::as_str)
            .chain([llm])
            .find(|t| *t == r.target)
        else {
            continue;
        };
        let task = task_of(r);
        let seen = present.entry(task.clone()).or_default();
        if r.error.is_none() || target == llm {
            seen.insert(target);
        }
        by_key
            .entry((task, r.scenario.clone(), r.item_id.clone()))
            .or_default()
            .entry(target)
            .or_insert(r);
    }
    let mut tasks: BTreeMap<String, Vec<TaskItem>> = BTreeMap::new();
    let mut skipped = 0;
    for ((task, scenario, item_id), answers) in by_key {
        let Some(wanted) = present.get(&task) else {
            skipped += 1;
            continue;
        };
        let (Some(l), true) = (
            answers.get(llm),
            wanted.iter().all(|t| answers.contains_key(t)),
        ) else {
            skipped += 1;
            continue;
        };
        let small_answers: BTreeMap<String, Answer> = small
            .iter()
            .filter(|t| wanted.contains(t.as_str()))
            .filter_map(|t| answers.get(t.as_str()).map(|r| (t.clone(), answer(r))))
            .collect();
        if small_answers.is_empty() {
            skipped += 1;
            continue;
        }
        // The gold label, for the stratified split: any target's record carries it.
        let label = answers.values().find_map(|r| r.expected.clone());
        tasks.entry(task).or_default().push(TaskItem {
            scenario,
            item_id,
            label,
            small: small_answers,
            llm: answer(l),
            forced: None,
        });
    }
    if tasks.is_empty() {
        return Err(BenchError::Analysis(
            "no item was answered by the LLM and a small target".into(),
        ));
    }
    Ok((tasks, skipped))
}
