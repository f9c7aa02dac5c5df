//! Policy choice and the whole fit on synthetic runs whose best policies are known.

use super::*;

pub(super) fn item(id: usize, label: &str, slm: f64, llm: f64, signal: Option<f64>) -> TaskItem {
    TaskItem {
        scenario: "s".into(),
        item_id: id.to_string(),
        label: Some(label.into()),
        slm_quality: slm,
        llm_quality: llm,
        slm_passed: slm >= 0.5,
        slm_cost: 0.0001,
        llm_cost: 0.01,
        signals: signal
            .map(|v| BTreeMap::from([("margin".to_string(), v)]))
            .unwrap_or_default(),
    }
}

/// A synthetic task whose best policy is known: the SLM is right exactly when its margin is
/// at least 0.5, the LLM is always right, so "cascade on margin at 0.5" reaches the LLM's
/// quality with half the LLM calls.
#[test]
fn finds_the_known_cascade() {
    let items: Vec<TaskItem> = (0..40)
        .map(|i| {
            let m = (i as f64 + 0.5) / 40.0;
            item(i, "x", if m >= 0.5 { 1.0 } else { 0.0 }, 1.0, Some(m))
        })
        .collect();
    let opts = FitOptions::default();
    let (policy, _, _) = choose(&items, &opts).unwrap();
    match policy {
        Policy::Cascade { signal, threshold } => {
            assert_eq!(signal, "margin");
            assert!((0.49..=0.52).contains(&threshold), "{threshold}");
        }
        p => panic!("expected a cascade, got {p:?}"),
    }
}

#[test]
fn picks_the_cheap_model_when_it_is_good_enough_and_the_llm_when_it_is_not() {
    let good_slm: Vec<TaskItem> = (0..20).map(|i| item(i, "x", 1.0, 1.0, Some(0.1))).collect();
    assert_eq!(
        choose(&good_slm, &FitOptions::default()).unwrap().0,
        Policy::Slm
    );
    // The SLM fails everything and the signal says nothing: always the LLM.
    let bad_slm: Vec<TaskItem> = (0..20).map(|i| item(i, "x", 0.0, 1.0, Some(0.3))).collect();
    assert_eq!(
        choose(&bad_slm, &FitOptions::default()).unwrap().0,
        Policy::Llm
    );
    // The LLM is worse than the SLM: always the SLM, even though it costs less anyway.
    let bad_llm: Vec<TaskItem> = (0..20).map(|i| item(i, "x", 0.8, 0.2, None)).collect();
    assert_eq!(
        choose(&bad_llm, &FitOptions::default()).unwrap().0,
        Policy::Slm
    );
}

#[test]
fn a_cascade_saving_too_little_is_not_chosen() {
    // The SLM is right only on the 10% most confident items: a cascade would save 10% of
    // the LLM calls, below the 20% minimum, so the LLM is chosen.
    let items: Vec<TaskItem> = (0..40)
        .map(|i| {
            let m = (i as f64 + 0.5) / 40.0;
            item(i, "x", if m >= 0.9 { 1.0 } else { 0.0 }, 1.0, Some(m))
        })
        .collect();
    assert_eq!(
        choose(&items, &FitOptions::default()).unwrap().0,
        Policy::Llm
    );
}

#[test]
fn missing_signal_escalates() {
    let p = Policy::Cascade {
        signal: "margin".into(),
        threshold: 0.2,
    };
    assert!(p.uses_llm(&item(0, "x", 1.0, 1.0, None)));
    assert!(!p.uses_llm(&item(0, "x", 1.0, 1.0, Some(0.3))));
    assert!(p.uses_llm(&item(0, "x", 1.0, 1.0, Some(0.1))));
}

fn record(target: &str, task: &str, id: usize, quality: f64, margin: Option<f64>) -> RequestRecord {
    RequestRecord {
        target: target.into(),
        scenario: task.into(),
        task: task.into(),
        item_id: id.to_string(),
        quality,
        passed: quality >= 0.5,
        cost_usd: Some(if target == "slm" { 0.0001 } else { 0.01 }),
        signals: margin
            .map(|m| BTreeMap::from([("margin".to_string(), m)]))
            .unwrap_or_default(),
        ..RequestRecord::default()
    }
}

/// Two tasks, each won by a different model: the per-task router is at least as good as
/// the better model on each, strictly above both overall, at a fraction of the LLM's cost.
#[test]
fn per_task_fit_beats_both_single_models_overall() {
    let mut records = Vec::new();
    for i in 0..30 {
        // Task "easy": the SLM is always right, the LLM half the time.
        records.push(record("slm", "easy", i, 1.0, Some(0.9)));
        records.push(record(
            "llm",
            "easy",
            i,
            if i % 2 == 0 { 1.0 } else { 0.0 },
            None,
        ));
        // Task "easy too": the same as "easy".
        records.push(record("slm", "easy too", i, 1.0, Some(0.9)));
        records.push(record(
            "llm",
            "easy too",
            i,
            if i % 2 == 0 { 1.0 } else { 0.0 },
            None,
        ));
        // Task "hard": the SLM never, the LLM always.
        records.push(record("slm", "hard", i, 0.0, Some(0.1)));
        records.push(record("llm", "hard", i, 1.0, None));
    }
    let f = fit(&records, &FitOptions::default()).unwrap();
    assert_eq!(f.tasks.len(), 3);
    let by: BTreeMap<&str, &TaskFit> = f.tasks.iter().map(|t| (t.task.as_str(), t)).collect();
    assert_eq!(by["easy"].chosen, Policy::Slm);
    assert_eq!(by["hard"].chosen, Policy::Llm);
    let o = f.overall.unwrap();
    assert_eq!(o.n, 45);
    assert!(o.chosen.quality.value > o.slm.quality.value);
    assert!(o.chosen.quality.value > o.llm.quality.value);
    assert!(o.chosen.cost_per_request <= 0.5 * o.llm.cost_per_request + 1e-12);
    // The margin signal is constant within each task: no information, and it says so.
    assert!(by["easy"].signals.iter().all(SignalQuality::uninformative));
}
