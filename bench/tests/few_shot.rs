#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `few_shot_from_items`: examples come from the calibration half of the fit's split only, are
//! removed before the limit applies, are never sent or scored, and are listed in metadata.json.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use backends::mock::{MockBackend, Script};
use bench::fit::{split, FitOptions, TaskItem};
use bench::results::read_records;
use bench::runner::RunOptions;
use bench::scenario::Suite;
use bench::score::Judges;
use bench::suite::run_suite;
use bench::target::{BackendTarget, Target};

/// A scenario file of `n` reviews (ids `NAME-i`, labels alternating, every third one neutral
/// when `three_labels`), with `extra` lines appended.
fn write_scenario(dir: &Path, name: &str, n: usize, three_labels: bool, extra: &str) {
    let labels: &[&str] = if three_labels {
        &["positive", "negative", "neutral"]
    } else {
        &["positive", "negative"]
    };
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{id: {name}-{i}, text: \"review {i}\", label: {}}}",
                labels[i % labels.len()]
            )
        })
        .collect();
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        format!(
            "name: {name}\ntask: sentiment\ndataset: {{items: [{}], id: id}}\nsystem: Classify.\nprompt: \"Review: {{{{text}}}}\"\nexpected: \"{{{{label}}}}\"\nscorer: {{kind: choice, choices: [{}]}}\n{extra}",
            items.join(", "),
            labels.join(", ")
        ),
    )
    .unwrap();
}

/// The calibration and evaluation halves the per-task fit computes over these items.
fn fit_halves(items: &[(String, String, String)]) -> (BTreeSet<String>, BTreeSet<String>) {
    let task_items: Vec<TaskItem> = items
        .iter()
        .map(|(scenario, id, label)| TaskItem {
            scenario: scenario.clone(),
            item_id: id.clone(),
            label: Some(label.clone()),
            ..TaskItem::default()
        })
        .collect();
    let (cal, eval) = split(&task_items, "sentiment", FitOptions::default().seed);
    let ids = |v: Vec<TaskItem>| v.into_iter().map(|i| i.item_id).collect();
    (ids(cal), ids(eval))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drawn_examples_come_from_the_calibration_half_and_are_never_scored() {
    let dir = tempfile::tempdir().unwrap();
    // Two scenarios of one task: `own` has examples of its own (nothing is drawn for it) but
    // its items are part of the task's split, as in the fit.
    write_scenario(dir.path(), "reviews", 24, false, "");
    write_scenario(
        dir.path(),
        "own",
        9,
        true,
        "few_shot:\n  - {text: fine, label: positive}\n",
    );
    std::fs::write(
        dir.path().join("suite.yaml"),
        "name: s\nscenarios:\n  - { path: reviews.yaml, limit: 8, few_shot_from_items: 3 }\n  - { path: own.yaml, limit: 4 }\nload: { mode: sequential }\n",
    )
    .unwrap();
    let mut every_item = Vec::new();
    for i in 0..24 {
        let label = ["positive", "negative"][i % 2];
        every_item.push((
            "reviews".to_string(),
            format!("reviews-{i}"),
            label.to_string(),
        ));
    }
    for i in 0..9 {
        let label = ["positive", "negative", "neutral"][i % 3];
        every_item.push(("own".to_string(), format!("own-{i}"), label.to_string()));
    }
    let (calibration, evaluation) = fit_halves(&every_item);

    let suite = Suite::load(&dir.path().join("suite.yaml")).unwrap();
    let reviews = &suite.scenarios[0];
    let drawn = reviews.drawn_examples.clone().expect("examples drawn");
    assert_eq!(drawn.requested, 3);
    assert_eq!(drawn.seed, FitOptions::default().seed);
    assert_eq!(drawn.items.len(), 3);
    for id in &drawn.items {
        assert!(
            calibration.contains(id),
            "{id} is not in the calibration half"
        );
        assert!(!evaluation.contains(id), "{id} is in the evaluation half");
    }
    // Both labels are shown.
    let labels: BTreeSet<&str> = drawn
        .items
        .iter()
        .map(|id| {
            every_item
                .iter()
                .find(|(_, i, _)| i == id)
                .unwrap()
                .2
                .as_str()
        })
        .collect();
    assert_eq!(labels.len(), 2, "{drawn:?}");
    // The examples are turns of every request, rendered like `few_shot` entries.
    assert_eq!(reviews.few_shot.len(), 3);
    for ((user, assistant), id) in reviews.few_shot.iter().zip(&drawn.items) {
        let n: usize = id.trim_start_matches("reviews-").parse().unwrap();
        assert_eq!(user, &format!("Review: review {n}"));
        assert_eq!(assistant, ["positive", "negative"][n % 2]);
    }
    // Drawn before the limit: still 8 items to measure, none of them an example.
    assert_eq!(reviews.items.len(), 8);
    assert!(reviews.items.iter().all(|i| !drawn.items.contains(&i.id)));
    // The scenario with its own examples keeps them and all its items up to its limit.
    let own = &suite.scenarios[1];
    assert!(own.drawn_examples.is_none());
    assert_eq!(own.few_shot.len(), 1);
    assert_eq!(own.items.len(), 4);

    // Run it: no record is an example; metadata.json lists them.
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen_by_backend = seen.clone();
    let backend = MockBackend::scripted(Script::answering(move |r| {
        seen_by_backend.lock().unwrap().push(r.messages.len());
        "positive".to_string()
    }));
    let target: Arc<dyn Target> = Arc::new(BackendTarget::new("t", "test-double", backend));
    let run_dir = dir.path().join("run");
    let opts = RunOptions {
        load: suite.file.load.clone(),
        ..RunOptions::default()
    };
    run_suite(
        suite,
        vec![target],
        Judges::default(),
        opts,
        &run_dir,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let records = read_records(&run_dir).unwrap();
    assert_eq!(records.len(), 12);
    assert!(records.iter().all(|r| !drawn.items.contains(&r.item_id)));
    // system + 3 example pairs + question, or system + 1 pair + question.
    let sizes: BTreeSet<usize> = seen.lock().unwrap().iter().copied().collect();
    assert_eq!(sizes, BTreeSet::from([4, 8]));
    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("metadata.json")).unwrap())
            .unwrap();
    let listed = &metadata["few_shot"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["scenario"], "reviews");
    assert_eq!(
        listed[0]["items"],
        serde_json::to_value(&drawn.items).unwrap()
    );
}

#[test]
fn the_command_line_count_overrides_and_asking_for_every_item_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_scenario(dir.path(), "reviews", 6, false, "few_shot_from_items: 1\n");
    std::fs::write(
        dir.path().join("suite.yaml"),
        "name: s\nscenarios: [reviews.yaml]\n",
    )
    .unwrap();
    let suite_path = dir.path().join("suite.yaml");
    // The scenario's own setting.
    let suite = Suite::load(&suite_path).unwrap();
    assert_eq!(suite.scenarios[0].few_shot.len(), 1);
    assert_eq!(suite.scenarios[0].items.len(), 5);
    // The command line's wins; 0 turns drawing off.
    let suite = Suite::load_with(&suite_path, None, Some(0)).unwrap();
    assert!(suite.scenarios[0].few_shot.is_empty());
    assert_eq!(suite.scenarios[0].items.len(), 6);
    // More than the calibration half holds: the whole half (3 of 6), never an evaluation item.
    let suite = Suite::load_with(&suite_path, None, Some(5)).unwrap();
    assert_eq!(suite.scenarios[0].few_shot.len(), 3);
    assert_eq!(suite.scenarios[0].items.len(), 3);

    // A scenario left with nothing to measure is an error.
    write_scenario(dir.path(), "one", 1, false, "few_shot_from_items: 1\n");
    let err = bench::scenario::Scenario::load(&dir.path().join("one.yaml"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no item to measure"), "{err}");

    // `few_shot` and `few_shot_from_items` in one file contradict each other.
    write_scenario(
        dir.path(),
        "both",
        6,
        false,
        "few_shot_from_items: 2\nfew_shot:\n  - {text: fine, label: positive}\n",
    );
    let err = bench::scenario::Scenario::load(&dir.path().join("both.yaml"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn a_task_name_a_gateway_would_refuse_is_an_error_at_load() {
    let yaml = "name: s\ntask: \"mixed qa\"\ndataset: {items: [{t: a}]}\nprompt: \"{{t}}\"\n";
    let raw: bench::scenario::ScenarioFile =
        bench::scenario::parse_yaml(yaml, std::path::Path::new("s.yaml")).unwrap();
    let e = bench::scenario::Scenario::from_file(raw, std::path::Path::new("s.yaml"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("s.yaml") && e.contains("field `task`"), "{e}");
    // Upper case folds to the gateway's form.
    let yaml = "name: s\ntask: Sentiment\ndataset: {items: [{t: a}]}\nprompt: \"{{t}}\"\nscorer: {kind: contains}\nexpected: a\n";
    let raw: bench::scenario::ScenarioFile =
        bench::scenario::parse_yaml(yaml, std::path::Path::new("s.yaml")).unwrap();
    let s =
        bench::scenario::Scenario::from_file(raw, std::path::Path::new("s.yaml"), None).unwrap();
    assert_eq!(s.task, "sentiment");
}
