//! Trains the task classifier on public datasets in `../shared/datasets` (relative to the
//! repository root) and reports held-out accuracy: sentiment (SST-2 sentences), intent
//! (Banking77 customer queries), math (GSM8K questions) and open chat (MT-Bench first turns).
//! Every 5th example of each task is held out; at most 400 examples per task are used for
//! training, so the run takes seconds.
//!
//! `cargo run -p router --release --example classifier_eval [-- --write-train FILE.jsonl]`
//! (the written file is what `triage route train --data FILE.jsonl --out model.json` reads).

use std::path::{Path, PathBuf};
use std::time::Instant;

use router::classifier::{train, Classifier, Example, TrainOptions};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets")
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn load() -> Result<Vec<Example>, String> {
    let d = shared();
    let mut out = Vec::new();
    let mut push = |text: &str, task: &str| {
        let text = text.trim();
        if !text.is_empty() {
            out.push(Example {
                text: text.to_string(),
                task: task.to_string(),
            });
        }
    };
    for line in read(&d.join("sst2/sst2_glue_dev_872.tsv"))?.lines().skip(1) {
        if let Some((sentence, _label)) = line.rsplit_once('\t') {
            push(sentence, "sentiment");
        }
    }
    for line in read(&d.join("banking77/train.csv"))?
        .lines()
        .skip(1)
        .take(1000)
    {
        // text,category — the text may be quoted and contain commas.
        if let Some((text, _category)) = line.rsplit_once(',') {
            push(text.trim_matches('"'), "intent");
        }
    }
    for line in read(&d.join("gsm8k/test.jsonl"))?.lines().take(1000) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        push(v["question"].as_str().unwrap_or(""), "math");
    }
    for line in read(&d.join("mt_bench/mt_bench_question.jsonl"))?.lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        push(v["turns"][0].as_str().unwrap_or(""), "chat");
    }
    Ok(out)
}

fn main() -> Result<(), String> {
    let all = load()?;
    let mut train_set = Vec::new();
    let mut test_set = Vec::new();
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for e in all {
        let n = seen.entry(e.task.clone()).or_insert(0);
        *n += 1;
        if n.is_multiple_of(5) {
            test_set.push(e);
        } else if train_set
            .iter()
            .filter(|t: &&Example| t.task == e.task)
            .count()
            < 400
        {
            train_set.push(e);
        }
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--write-train" {
            let path = args.next().ok_or("--write-train needs a file")?;
            let lines: Vec<String> = train_set
                .iter()
                .map(|e| serde_json::to_string(e).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            std::fs::write(&path, lines.join("\n") + "\n").map_err(|e| format!("{path}: {e}"))?;
            println!("wrote {} training examples to {path}", train_set.len());
        }
    }
    let started = Instant::now();
    let mut options = TrainOptions::default();
    if let Some(v) = std::env::var("EPOCHS").ok().and_then(|v| v.parse().ok()) {
        options.epochs = v;
    }
    if let Some(v) = std::env::var("LR").ok().and_then(|v| v.parse().ok()) {
        options.learning_rate = v;
    }
    if let Some(v) = std::env::var("L2").ok().and_then(|v| v.parse().ok()) {
        options.l2 = v;
    }
    let model = train(&train_set, &options).map_err(|e| e.to_string())?;
    let train_time = started.elapsed();
    let size = serde_json::to_string(&model)
        .map_err(|e| e.to_string())?
        .len();
    let classifier = Classifier {
        rules: Vec::new(),
        model: Some(router::classifier::LearnedModel::Ngram(model)),
        threshold: 0.5,
        missing_model: None,
    };
    let mut correct = 0;
    let mut unknown = 0;
    let mut per_task: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    let started = Instant::now();
    for e in &test_set {
        let got = classifier.classify(&e.text);
        let entry = per_task.entry(e.task.as_str()).or_default();
        entry.1 += 1;
        if got.task == e.task {
            correct += 1;
            entry.0 += 1;
        } else if got.task == "unknown" {
            unknown += 1;
        }
        if got.task != e.task && std::env::var("SHOW").is_ok() {
            println!(
                "{} -> {} ({:.2}): {:.80}",
                e.task, got.task, got.confidence, e.text
            );
        }
    }
    let classify_time = started.elapsed();
    let started = Instant::now();
    if let Some(router::classifier::LearnedModel::Ngram(model)) = &classifier.model {
        for e in &test_set {
            std::hint::black_box(model.probabilities(&e.text));
        }
    }
    let score_time = started.elapsed();
    println!(
        "trained on {} examples in {:.2} s; model file {} KiB",
        train_set.len(),
        train_time.as_secs_f64(),
        size / 1024
    );
    println!(
        "held out {}: accuracy {:.3} ({} unknown at threshold 0.5); {:.1} µs per classify (with explanation)",
        test_set.len(),
        correct as f64 / test_set.len().max(1) as f64,
        unknown,
        classify_time.as_secs_f64() * 1e6 / test_set.len().max(1) as f64
    );
    println!(
        "scoring alone (no explanation): {:.1} µs per text",
        score_time.as_secs_f64() * 1e6 / test_set.len().max(1) as f64
    );
    for (task, (ok, n)) in per_task {
        println!(
            "  {task:<10} {ok:>4}/{n:<4} recall {:.3}",
            ok as f64 / n.max(1) as f64
        );
    }
    Ok(())
}
