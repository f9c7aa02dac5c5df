#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shipped suites end to end against test targets, the run directory, its schema, and the
//! analyses that read it back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backends::mock::{MockBackend, Script};
use bench::compare::{self, Format};
use bench::replay::{Recorded, ReplayBackend};
use bench::results::{self, read_records, read_summary};
use bench::runner::RunOptions;
use bench::scenario::{self, Suite};
use bench::score::Judges;
use bench::suite::run_suite;
use bench::target::{BackendTarget, Target};
use router::pricing::BackendPrice;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Compare a generated schema with the checked-in file; `BLESS=1` rewrites the file.
fn check_schema(generated: &Value, path: &Path) {
    let text = serde_json::to_string_pretty(generated).unwrap() + "\n";
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run the tests with BLESS=1 to write it)",
            path.display()
        )
    });
    assert_eq!(
        on_disk,
        text,
        "{} is out of date: run the tests with BLESS=1",
        path.display()
    );
}

#[test]
fn published_schemas_are_up_to_date() {
    let root = repo();
    check_schema(
        &scenario::scenario_schema(),
        &root.join("scenarios/schema/scenario.schema.json"),
    );
    check_schema(
        &scenario::suite_schema(),
        &root.join("scenarios/schema/suite.schema.json"),
    );
    check_schema(
        &results::summary_schema(),
        &root.join("bench/schema/summary.schema.json"),
    );
}

#[test]
fn every_shipped_scenario_loads_validates_against_its_schema_and_has_50_items() {
    let dir = repo().join("scenarios");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("schema/scenario.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let yaml: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if yaml.get("scenarios").is_some() {
            Suite::load(&path).unwrap_or_else(|e| panic!("{e}"));
            continue;
        }
        let errors: Vec<String> = validator
            .iter_errors(&yaml)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let s = scenario::Scenario::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.items.len() >= 50,
            "{} has {} items",
            path.display(),
            s.items.len()
        );
        count += 1;
    }
    assert_eq!(count, 10, "ten shipped scenarios");
}

#[test]
fn scenario_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "name: x\ntask: t\ndataset: {items: [{a: 1}]}\nprompt: \"{{a}}\"\nscorer: {kind: choice, choises: [a]}\n").unwrap();
    let err = scenario::Scenario::load(&path, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("scorer"), "{err}");
    assert!(err.contains("choises"), "{err}");

    std::fs::write(&path, "name: x\ntask: t\ndataset: {items: [{a: 1}]}\nprompt: \"{{a}}\"\nmax_tokens: many\nscorer: {kind: exact}\nexpected: x\n").unwrap();
    let err = scenario::Scenario::load(&path, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 5") && err.contains("max_tokens"),
        "{err}"
    );

    std::fs::write(&path, "name: x\ntask: t\ndataset: {items: [{a: 1}, {b: 2}]}\nprompt: \"{{a}}\"\nexpected: \"{{a}}\"\nscorer: {kind: exact}\n").unwrap();
    let err = scenario::Scenario::load(&path, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 2") && err.contains("{{a}}"), "{err}");

    std::fs::write(&path, "name: x\ntask: t\ndataset: {items: [{a: 1, l: maybe}]}\nprompt: \"{{a}}\"\nexpected: \"{{l}}\"\nscorer: {kind: choice, choices: [yes, no]}\n").unwrap();
    let err = scenario::Scenario::load(&path, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not one of the choices"), "{err}");
}

/// An oracle: a replay of every item's expected answer, keyed by its rendered prompt.
fn oracle(suite: &Suite) -> ReplayBackend {
    let mut recs = Vec::new();
    for s in &suite.scenarios {
        for item in &s.items {
            let request = s.request(item).unwrap();
            let prompt = request.messages.last().unwrap().text();
            recs.push(Recorded {
                prompt,
                response: item.expected.clone().unwrap_or_default(),
                logprobs: vec![-0.05],
            });
        }
    }
    ReplayBackend::new(recs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_runs_end_to_end_and_summary_validates_against_its_schema() {
    let suite_path = repo().join("scenarios/quickstart.yaml");
    let suite = Suite::load_with_cap(&suite_path, Some(3)).unwrap();
    assert_eq!(suite.scenarios.len(), 9);
    let oracle: Arc<dyn Target> = Arc::new(
        BackendTarget::new("oracle", "replay", oracle(&suite)).with_price(Some(
            BackendPrice::PerToken {
                input: 0.15,
                output: 0.60,
            },
        )),
    );
    let echo: Arc<dyn Target> = Arc::new(BackendTarget::new(
        "echo",
        "test-double",
        MockBackend::scripted(Script::echo()),
    ));
    let out = tempfile::tempdir().unwrap();
    let run_dir = out.path().join("run");
    let opts = RunOptions {
        load: suite.file.load.clone(),
        ..RunOptions::default()
    };
    let done = run_suite(
        suite,
        vec![oracle, echo],
        Judges::default(),
        opts,
        &run_dir,
        serde_json::json!({"test": true}),
    )
    .await
    .unwrap();

    // The oracle answers every item correctly: every scorer of every shipped scenario agrees
    // with its own expected answers.
    let summary = read_summary(&run_dir).unwrap();
    assert_eq!(summary.groups.len(), done.summary.groups.len());
    let oracle_groups: Vec<_> = summary
        .groups
        .iter()
        .filter(|g| g.target == "oracle")
        .collect();
    assert_eq!(
        oracle_groups.len(),
        1 + 8,
        "all tasks + 8 distinct tasks (two sentiment scenarios share one)"
    );
    for g in &oracle_groups {
        assert_eq!(g.errors, 0);
        assert_eq!(
            g.pass_rate.as_ref().unwrap().value,
            1.0,
            "{} / {}",
            g.target,
            g.task
        );
        assert!(g.cost.total_usd.unwrap() > 0.0);
    }
    let all = oracle_groups.iter().find(|g| g.task == "*").unwrap();
    assert_eq!(all.requests, 27);
    assert!(all.latency.e2e.is_some() && all.latency.ttft.is_some());
    assert!(all.cost.per_correct_usd.unwrap() > 0.0);
    // The echo double fails most scorers.
    let echo_all = summary
        .groups
        .iter()
        .find(|g| g.target == "echo" && g.task == "*")
        .unwrap();
    assert!(echo_all.pass_rate.as_ref().unwrap().value < 0.5);

    // summary.json validates against the checked-in schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("bench/schema/summary.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&written)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut broken = written.clone();
    broken["groups"][0]["requests"] = Value::String("many".into());
    assert!(
        !validator.is_valid(&broken),
        "the schema rejects a wrong type"
    );

    // requests.jsonl has every request; histograms decode; metadata is there.
    let records = read_records(&run_dir).unwrap();
    assert_eq!(records.len(), 54);
    let hist: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("histograms.json")).unwrap())
            .unwrap();
    let e2e = bench::stats::LatencyHistogram::from_base64(&hist["oracle/*/e2e"]).unwrap();
    assert_eq!(e2e.len(), 27);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("metadata.json")).unwrap())
            .unwrap();
    assert!(meta["host"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(meta["config"]["test"], true);

    // compare renders every format.
    let rows = compare::rows(std::slice::from_ref(&run_dir), true).unwrap();
    assert_eq!(rows.len(), 2);
    let table = compare::render(&rows, Format::Table);
    assert!(
        table.contains("oracle") && table.contains("100.0"),
        "{table}"
    );
    assert!(compare::render(&rows, Format::Markdown).starts_with("| run | target |"));
    assert_eq!(compare::render(&rows, Format::Csv).lines().count(), 3);
    let json: Value = serde_json::from_str(&compare::render(&rows, Format::Json)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_scorer_grades_through_a_judge_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("judged.yaml");
    std::fs::write(
        &path,
        "name: judged\ntask: qa\ndataset: {items: [{q: 'Capital of France?', a: Paris}]}\nprompt: \"{{q}}\"\nexpected: \"{{a}}\"\nscorers: [{kind: judge, rubric: 'Correct and concise.'}, {kind: contains}]\n",
    )
    .unwrap();
    let suite_path = dir.path().join("suite.yaml");
    std::fs::write(
        &suite_path,
        "name: s\nscenarios: [judged.yaml]\njudge: grader\n",
    )
    .unwrap();
    let suite = Suite::load(&suite_path).unwrap();
    let answerer: Arc<dyn Target> = Arc::new(BackendTarget::new(
        "model",
        "test-double",
        MockBackend::scripted(Script::answering(|_| "It is Paris.".into())),
    ));
    // The judge double checks it was shown the answer and the reference, then rates it 8.
    let judge = MockBackend::scripted(Script::answering(|r| {
        let text = r.all_text();
        if text.contains("It is Paris.") && text.contains("[Reference answer]\nParis") {
            "Accurate and short. Rating: [[8]]".into()
        } else {
            "Rating: [[1]]".into()
        }
    }));
    let judges = Judges {
        default: Some(Arc::new(BackendTarget::new("grader", "test-double", judge))),
        named: Default::default(),
    };
    let run = run_suite(
        suite,
        vec![answerer],
        judges,
        RunOptions::default(),
        &dir.path().join("run"),
        Value::Null,
    )
    .await
    .unwrap();
    let r = &run.runs[0].records[0];
    let judge_score = r.scores.iter().find(|s| s.scorer == "judge").unwrap();
    assert!(
        (judge_score.score - 7.0 / 9.0).abs() < 1e-9,
        "{judge_score:?}"
    );
    assert_eq!(judge_score.raw["rating"], 8.0);
    assert!(judge_score.passed);
    assert!(r.passed);
    assert!((r.quality - (7.0 / 9.0 + 1.0) / 2.0).abs() < 1e-9);
}

#[tokio::test]
async fn every_item_of_every_shipped_scenario_passes_its_own_scorers_with_the_gold_answer() {
    let dir = repo().join("scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_none_or(|e| e != "yaml") || text.contains("\nscenarios:") {
            continue;
        }
        let s = scenario::Scenario::load(&path, None).unwrap();
        for item in &s.items {
            let gold = item.expected.clone().unwrap_or_default();
            // A RAG item's gold answer must be supported by its gold evidence alone.
            let mut fields = item.fields.clone();
            if s.rag.is_some() {
                fields.insert(
                    bench::rag::PASSAGES_FIELD.into(),
                    fields["evidence"].clone(),
                );
            }
            let prompt = s.prompt.render(&fields).unwrap();
            let input = bench::score::ScoreInput {
                output: &gold,
                expected: Some(&gold),
                item: &fields,
                prompt: &prompt,
            };
            for scorer in &s.scorers {
                let r = scorer.score(&input, None).await;
                assert!(
                    r.passed,
                    "{} item {}: {} fails on the gold answer: {}",
                    s.name, item.id, r.scorer, r.raw
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 9 * 50, "{checked}");
}
