#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `triage route train`'s library half on a synthetic set: scenario files with inline items and
//! a miniature shared-datasets directory laid out as `../shared/datasets` is (same paths,
//! same formats, made-up rows), so every rule of the data assembly is checked exactly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bench::classifier_data::{load_scenarios, scenario_texts, shared_texts, SHARED_SOURCES};
use bench::classifier_train::{train_classifier, TrainSetup};
use router::classifier::TrainOptions;

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// A scenario file with inline items whose field `field` takes each of `values`.
fn scenario(
    name: &str,
    task: &str,
    system: &str,
    prompt: &str,
    field: &str,
    values: &[String],
) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| {
            format!(
                "      - {{ {field}: {}, label: x }}",
                serde_json::to_string(v).unwrap()
            )
        })
        .collect();
    format!(
        "name: {name}\ntask: {task}\nsystem: {system}\nprompt: {}\ndataset:\n  items:\n{}\nexpected: \"{{{{label}}}}\"\nscorer: {{ kind: exact }}\n",
        serde_json::to_string(prompt).unwrap(),
        items.join("\n")
    )
}

fn contents(prefix: &str, n: usize) -> Vec<String> {
    let words = [
        "card", "river", "yellow", "engine", "garden", "ticket", "window", "doctor", "market",
        "planet", "violin", "bridge",
    ];
    (0..n)
        .map(|i| {
            format!(
                "{prefix} {} {} {}",
                words[i % words.len()],
                words[(i * 5 + 3) % words.len()],
                i
            )
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    scenarios: Vec<PathBuf>,
    datasets: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let intent = write(
        root,
        "scenarios/intent.yaml",
        &scenario(
            "support-intent",
            "intent",
            "You route customer-support messages.",
            "Which intent does this message have?\nMessage: {{text}}\nIntent:",
            "text",
            &contents("where is my", 12),
        ),
    );
    let sentiment = write(
        root,
        "scenarios/sentiment.yaml",
        &scenario(
            "sentiment",
            "sentiment",
            "You are a sentiment classifier.",
            "Is the sentiment of this movie review positive or negative?\nReview: {{text}}",
            "text",
            &contents("the film was", 12),
        ),
    );
    let qa = write(
        root,
        "scenarios/qa.yaml",
        &scenario(
            "short-qa",
            "qa",
            "Answer with a few words only.",
            "Question: {{question}}",
            "question",
            &contents("what is the capital of", 12),
        ),
    );
    // A suite naming one of them again: it must not be loaded twice.
    let suite = write(
        root,
        "scenarios/quick.yaml",
        "name: quick\nscenarios:\n  - { path: intent.yaml, limit: 2 }\n",
    );
    let datasets = root.join("datasets");
    // BANKING77's layout: text,category. One row repeats a scenario item's text exactly.
    let mut csv = String::from("text,category\n");
    for t in contents("I cannot find my", 8) {
        csv.push_str(&format!("\"{t}, please help\",card_arrival\n"));
    }
    csv.push_str("\"where is my card engine 0\",card_arrival\n");
    write(&datasets, "banking77/train.csv", &csv);
    // MT-Bench's layout: only the math and extraction categories are taken.
    let mut jsonl = String::new();
    for (i, category) in ["math", "writing", "extraction", "math"].iter().enumerate() {
        jsonl.push_str(&format!(
            "{{\"question_id\": {i}, \"category\": \"{category}\", \"turns\": [\"{category} question number {i}\", \"follow-up\"]}}\n"
        ));
    }
    write(&datasets, "mt_bench/mt_bench_question.jsonl", &jsonl);
    Fixture {
        _dir: dir,
        scenarios: vec![intent, sentiment, qa, suite],
        datasets,
    }
}

#[test]
fn scenario_items_are_labelled_as_the_gateway_sees_them() {
    let f = fixture();
    let scenarios = load_scenarios(&f.scenarios).unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["support-intent", "sentiment", "short-qa"],
        "the suite adds nothing"
    );
    let texts = scenario_texts(&scenarios).unwrap();
    assert_eq!(texts.len(), 36);
    let first = &texts[0];
    assert_eq!(first.task, "intent");
    assert_eq!(first.source, "scenario:support-intent");
    // System prompt and the rendered user turn, as `ChatRequest::all_text` joins them.
    assert_eq!(
        first.text,
        "You route customer-support messages.\nWhich intent does this message have?\nMessage: where is my card engine 0\nIntent:"
    );
}

#[test]
fn shared_datasets_are_rendered_deduplicated_capped_and_filtered() {
    let f = fixture();
    let scenarios = load_scenarios(&f.scenarios).unwrap();
    let mut seen: BTreeSet<String> = scenario_texts(&scenarios)
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    let (texts, notes) = shared_texts(&f.datasets, &scenarios, 5, 1, &mut seen).unwrap();
    let note = |id: &str| notes.iter().find(|n| n.id == id).unwrap().clone();
    assert_eq!(notes.len(), SHARED_SOURCES.len());

    // 9 rows, one the same text as a scenario item: 8 available, capped at 5.
    let banking = note("banking77");
    assert_eq!((banking.available, banking.used), (8, 5));
    let from_banking: Vec<_> = texts
        .iter()
        .filter(|t| t.source == "dataset:banking77")
        .collect();
    assert_eq!(from_banking.len(), 5);
    for t in &from_banking {
        assert_eq!(t.task, "intent");
        assert!(
            t.text
                .starts_with("You route customer-support messages.\nWhich intent")
                && t.text.contains("please help"),
            "rendered through the intent scenario: {}",
            t.text
        );
    }
    // Raw MT-Bench questions, by category, first turn only.
    let math: Vec<_> = texts
        .iter()
        .filter(|t| t.source == "dataset:mt_bench-math")
        .collect();
    assert_eq!(math.len(), 2);
    assert!(math
        .iter()
        .all(|t| t.task == "math" && t.text.starts_with("math question")));
    let extraction: Vec<_> = texts
        .iter()
        .filter(|t| t.source == "dataset:mt_bench-extraction")
        .collect();
    assert_eq!(extraction.len(), 1);
    assert_eq!(extraction[0].text, "extraction question number 2");
    let chat: Vec<_> = texts
        .iter()
        .filter(|t| t.source == "dataset:mt_bench-chat")
        .collect();
    assert_eq!(chat.len(), 1);
    assert_eq!(
        (chat[0].task.as_str(), chat[0].text.as_str()),
        ("chat", "writing question number 1")
    );
    // Absent files and scenarios not given are skipped, with the reason.
    assert!(note("sst2").skipped.unwrap().contains("not found"));
    // The same seed gives the same sample; texts never repeat.
    let mut seen2: BTreeSet<String> = scenario_texts(&scenarios)
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    let (again, _) = shared_texts(&f.datasets, &scenarios, 5, 1, &mut seen2).unwrap();
    assert_eq!(texts, again);
    let unique: BTreeSet<&str> = texts.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(unique.len(), texts.len());
}

#[test]
fn a_scenario_that_was_not_given_skips_its_datasets() {
    let f = fixture();
    let only_sentiment = load_scenarios(&f.scenarios[1..2]).unwrap();
    let (texts, notes) =
        shared_texts(&f.datasets, &only_sentiment, 100, 0, &mut BTreeSet::new()).unwrap();
    let banking = notes.iter().find(|n| n.id == "banking77").unwrap();
    assert_eq!(banking.used, 0);
    assert!(
        banking
            .skipped
            .as_deref()
            .unwrap()
            .contains("support-intent"),
        "{banking:?}"
    );
    assert!(texts.iter().all(|t| !t.source.contains("banking77")));
}

#[test]
fn training_holds_out_half_of_each_task_and_source_and_measures_it() {
    let f = fixture();
    let setup = TrainSetup {
        scenarios: f.scenarios.clone(),
        datasets: Some(f.datasets.clone()),
        extra: Vec::new(),
        holdout: 0.5,
        seed: 0,
        per_source: 100,
        threshold: 0.5,
        options: TrainOptions::default(),
    };
    let (model, report) = train_classifier(&setup).unwrap();
    assert_eq!(
        model.tasks,
        ["chat", "extraction", "intent", "math", "qa", "sentiment"]
    );
    // 36 scenario texts, 8 banking77, 2 + 1 + 1 MT-Bench (math, extraction, writing → chat).
    assert_eq!(report.trained_on + report.held_out, 48);
    // floor(n/2) of each stratum held out: 6+6+6 scenario items, 4 banking77, 1 math, 0 of the
    // one-text extraction and chat strata.
    assert_eq!(report.held_out, 23);
    assert_eq!(
        model.trained_on["extraction"], 1,
        "a stratum of one is kept for training"
    );
    let task = |name: &str| report.per_task.iter().find(|r| r.name == name).unwrap();
    assert_eq!(task("intent").n, 10);
    let acc = task("intent").accuracy.clone().unwrap();
    assert!(acc.ci95_low <= acc.value && acc.value <= acc.ci95_high);
    assert_eq!(acc.method, "wilson");
    // Every held-out text is counted once per task and once per source.
    let by_task: usize = report.per_task.iter().map(|r| r.n).sum();
    let by_source: usize = report.per_source.iter().map(|r| r.n).sum();
    assert_eq!((by_task, by_source), (23, 23));
    assert_eq!(report.overall.as_ref().unwrap().n, 23);
    let text = report.to_string();
    assert!(
        text.contains("held-out accuracy") && text.contains("scenario:sentiment"),
        "{text}"
    );

    // Same inputs, same model file.
    let (again, _) = train_classifier(&setup).unwrap();
    assert_eq!(
        serde_json::to_string(&model).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
    // Everything held out is refused; nothing held out measures nothing.
    let all = TrainSetup {
        holdout: 1.0,
        ..setup.clone()
    };
    assert!(train_classifier(&all).is_err());
    let none = TrainSetup {
        holdout: 0.0,
        ..setup
    };
    let (_, report) = train_classifier(&none).unwrap();
    assert_eq!((report.trained_on, report.held_out), (48, 0));
    assert!(report.overall.is_none());
}

/// `--head embedding --task-classifier` on the same fixture: the same texts and the same
/// held-out split as the n-gram model (the report counts them identically), a task head over
/// the real all-MiniLM-L6-v2 whose labels are the tasks, and a latency per classification.
#[cfg(feature = "llama")]
#[tokio::test]
async fn the_embedding_task_head_trains_on_the_same_split() {
    let encoder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2.gguf");
    assert!(
        encoder.exists(),
        "{} is missing: run `make setup`",
        encoder.display()
    );
    let f = fixture();
    let setup = TrainSetup {
        scenarios: f.scenarios.clone(),
        datasets: Some(f.datasets.clone()),
        extra: Vec::new(),
        holdout: 0.5,
        seed: 0,
        per_source: 100,
        threshold: 0.5,
        options: TrainOptions::default(),
    };
    let (_, ngram) = train_classifier(&setup).unwrap();
    let (head, report) = bench::classifier_train_embedding::train_task_head(
        &setup,
        &encoder,
        1,
        &backends::head::HeadOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(head.task, router::classifier::TASK_HEAD);
    assert_eq!(
        head.labels,
        ["chat", "extraction", "intent", "math", "qa", "sentiment"]
    );
    assert_eq!(report.classifier, "embedding");
    assert_eq!(
        (report.trained_on, report.held_out),
        (ngram.trained_on, ngram.held_out)
    );
    let sizes = |r: &bench::classifier_train::TrainReport| {
        r.per_source
            .iter()
            .map(|g| (g.name.clone(), g.n))
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(&report), sizes(&ngram), "the same held-out texts");
    // The scenario items carry their scenario's instruction: the head tells them apart.
    let task = |name: &str| report.per_task.iter().find(|r| r.name == name).unwrap();
    for t in ["intent", "qa", "sentiment"] {
        assert_eq!(
            task(t).accuracy.as_ref().unwrap().value,
            1.0,
            "{t}: {report}"
        );
    }
    let latency = report.latency.as_ref().unwrap();
    assert_eq!(latency.n, report.held_out);
    assert!(latency.p50_us > 0.0 && latency.p50_us <= latency.p99_us);
    assert!(report
        .to_string()
        .contains("embedding classifier: one classification"));
}
