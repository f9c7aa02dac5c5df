//! `triage route train --head embedding`: encoder classifier heads ([`backends::head`]) trained
//! on scenario items — the gold label of a `choices` item is its `expected` answer — one head
//! per task (its labels: every gold label of the task's scenarios; a request's `choices` may be
//! any subset, the backend renormalises over them).
//!
//! `--half calibration` trains on the calibration half only, the split `bench run --half`
//! uses ([`crate::half`], same seed), so `bench run --half evaluation` measures the head on
//! items it never saw; the report measures it there too. The split pools a task's items over
//! the scenarios given, as the run pools them over its suite: train from the suite file the
//! run uses (or the same scenario files), or the halves differ.
//!
//! The text of an item is [`backends::head::classifier_text`] of the request the harness sends
//! for it (the rendered prompt of its last user turn), the same function the backend calls.

#[cfg(feature = "llama")]
use std::collections::BTreeMap;
use std::fmt;
#[cfg(not(feature = "llama"))]
use std::path::Path;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::half::Half;
use crate::scenario::{read_yaml, Scenario, Suite};
#[cfg(feature = "llama")]
use crate::stats::wilson;
use crate::stats::Estimate;

/// One labelled item of a `choices` scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelledItem {
    /// The scenario's task.
    pub task: String,
    /// The scenario's name.
    pub scenario: String,
    /// The item's id.
    pub item_id: String,
    /// What the head reads: [`backends::head::classifier_text`] of the item's request.
    pub text: String,
    /// The gold label (the item's `expected` answer, one of the scenario's choices).
    pub label: String,
    /// The choices its request offers (the scenario's).
    pub choices: Vec<String>,
}

/// Scenarios from scenario or suite files; a suite is loaded as `bench run` loads it (its
/// limits, `limit` as `--limit`, `few_shot_from_items` as `--few-shot-from-items`, `split_seed`
/// as `--split-seed`): the halves are computed over the items left, so they must be the run's.
pub fn load_for_heads(
    paths: &[PathBuf],
    limit: Option<usize>,
    few_shot_from_items: Option<usize>,
    split_seed: u64,
) -> Result<Vec<Scenario>> {
    let mut out = Vec::new();
    for path in paths {
        let value: Value = read_yaml(path)?;
        if value.get("scenarios").is_some() {
            let suite = Suite::load_seeded(path, limit, few_shot_from_items, split_seed)?;
            out.extend(suite.scenarios);
        } else {
            out.push(Scenario::load(path, limit)?);
        }
    }
    Ok(out)
}

/// The labelled items of every scenario with `choices` (others are named in the second
/// list), split into (calibration, evaluation) halves under `seed`; with `leave_out`, that
/// fold of the calibration half is in neither (cross-fitting, [`crate::half::keep_fold`]).
pub fn labelled_halves(
    mut scenarios: Vec<Scenario>,
    seed: u64,
    leave_out: Option<crate::half::Fold>,
) -> Result<(Vec<LabelledItem>, Vec<LabelledItem>, Vec<String>)> {
    let skipped = scenarios
        .iter()
        .filter(|s| !has_choices(s))
        .map(|s| s.name.clone())
        .collect();
    // The split runs over every scenario given, as `bench run --half` splits its suite.
    let all = items_of(&scenarios)?;
    crate::half::keep(&mut scenarios, Half::Calibration, seed);
    let mut left_out = std::collections::BTreeSet::new();
    if let Some(fold) = leave_out {
        left_out = crate::half::fold_items(&scenarios, fold, seed)
            .into_iter()
            .map(|(i, id)| (scenarios[i].name.clone(), id))
            .collect();
        crate::half::keep_fold(&mut scenarios, fold, seed, false);
    }
    let all: Vec<LabelledItem> = all
        .into_iter()
        .filter(|i| !left_out.contains(&(i.scenario.clone(), i.item_id.clone())))
        .collect();
    let calibration_ids: std::collections::BTreeSet<(String, String)> = scenarios
        .iter()
        .flat_map(|s| s.items.iter().map(|i| (s.name.clone(), i.id.clone())))
        .collect();
    let (calibration, evaluation) = all
        .into_iter()
        .partition(|i| calibration_ids.contains(&(i.scenario.clone(), i.item_id.clone())));
    Ok((calibration, evaluation, skipped))
}

fn has_choices(s: &Scenario) -> bool {
    s.generation.choices.as_ref().is_some_and(|c| c.len() >= 2)
}

/// Every item of the `choices` scenarios among `scenarios` (its `expected` answer must be one
/// of the choices).
pub fn items_of(scenarios: &[Scenario]) -> Result<Vec<LabelledItem>> {
    let mut out = Vec::new();
    for s in scenarios.iter().filter(|s| has_choices(s)) {
        let choices = s.generation.choices.clone().unwrap_or_default();
        for item in &s.items {
            let Some(label) = item.expected.as_deref().map(str::trim) else {
                continue;
            };
            if !choices.iter().any(|c| c == label) {
                return Err(BenchError::Analysis(format!(
                    "scenario `{}` item `{}`: expected answer `{label}` is not one of its \
                     choices",
                    s.name, item.id
                )));
            }
            let request = s.request(item)?;
            let Some(text) = backends::head::classifier_text(&request) else {
                continue;
            };
            out.push(LabelledItem {
                task: task_of(s),
                scenario: s.name.clone(),
                item_id: item.id.clone(),
                text,
                label: label.to_string(),
                choices: choices.clone(),
            });
        }
    }
    Ok(out)
}

fn task_of(s: &Scenario) -> String {
    if s.task.is_empty() {
        s.name.clone()
    } else {
        s.task.clone()
    }
}

/// One head written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeadResult {
    /// The task.
    pub task: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Items trained on.
    pub trained_on: usize,
    /// Where the head was written.
    pub file: PathBuf,
}

/// A head's accuracy on one held-out source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceResult {
    /// The head's task.
    pub task: String,
    /// A scenario (its held-out half) or `dataset:ID` (its held-out part).
    pub source: String,
    /// Held-out items.
    pub n: usize,
    /// Arg-max accuracy over each item's choices (Wilson 95% CI).
    pub accuracy: Option<Estimate>,
}

/// What `route train --head embedding` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeadReport {
    /// The encoder the heads read.
    pub encoder: String,
    /// Which scenario items trained the heads (`calibration-half`, `evaluation-half`, `all`).
    pub trained_on: String,
    /// The split seed.
    pub split_seed: u64,
    /// Scenarios left out (no `choices`).
    pub skipped: Vec<String>,
    /// What each shared dataset contributed.
    pub datasets: Vec<String>,
    /// One row per head.
    pub heads: Vec<HeadResult>,
    /// Held-out accuracy per head and source.
    pub held_out: Vec<SourceResult>,
    /// Seconds spent embedding and training.
    pub seconds: f64,
}

impl fmt::Display for HeadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "encoder {}; scenario items: the {} (split seed {}); {:.1} s",
            self.encoder, self.trained_on, self.split_seed, self.seconds
        )?;
        if !self.skipped.is_empty() {
            writeln!(f, "skipped (no choices): {}", self.skipped.join(", "))?;
        }
        for note in &self.datasets {
            writeln!(f, "dataset {note}")?;
        }
        for h in &self.heads {
            writeln!(
                f,
                "head {:<12} {} labels, trained on {:>5} items -> {}",
                h.task,
                h.labels.len(),
                h.trained_on,
                h.file.display()
            )?;
        }
        if self.held_out.is_empty() {
            return writeln!(f, "nothing held out: no accuracy measured");
        }
        writeln!(
            f,
            "\nheld-out accuracy (arg-max over each item's choices; Wilson 95% CI)"
        )?;
        writeln!(
            f,
            "{:<12} {:<28} {:>5} {:>9} {:>16}",
            "task", "source", "n", "accuracy", "95% CI"
        )?;
        for r in &self.held_out {
            let (acc, ci) = match &r.accuracy {
                Some(e) => (
                    format!("{:.3}", e.value),
                    format!("[{:.3}, {:.3}]", e.ci95_low, e.ci95_high),
                ),
                None => ("-".into(), "-".into()),
            };
            writeln!(
                f,
                "{:<12} {:<28} {:>5} {acc:>9} {ci:>16}",
                r.task, r.source, r.n
            )?;
        }
        Ok(())
    }
}

/// What to train on and where to write.
#[derive(Clone, Debug)]
pub struct HeadSetup {
    /// Scenario or suite files.
    pub scenarios: Vec<PathBuf>,
    /// Train on this half only (`Calibration`; `Evaluation` trains on the evaluation half and
    /// measures on the calibration half); `None` trains on every item and measures nothing.
    pub half: Option<Half>,
    /// The split seed (`bench run --split-seed`).
    pub split_seed: u64,
    /// At most this many items per scenario (`bench run --limit`).
    pub limit: Option<usize>,
    /// Items drawn as few-shot examples first (`bench run --few-shot-from-items`).
    pub few_shot_from_items: Option<usize>,
    /// With `half: Calibration`: train without this fold of it (cross-fitting; the run answers
    /// the fold with `bench run --half calibration --fold k/K`).
    pub leave_out: Option<crate::half::Fold>,
    /// The encoder GGUF.
    pub encoder: PathBuf,
    /// Directory the heads are written to, as `TASK.json`.
    pub out_dir: PathBuf,
    /// The shared datasets (`../shared/datasets`): labelled rows of the scenarios' kind
    /// ([`crate::head_data`]) train and measure too.
    pub datasets: Option<PathBuf>,
    /// At most this many training rows per label from each dataset.
    pub per_label: usize,
    /// Encoder threads.
    pub threads: i32,
    /// Training knobs.
    pub options: backends::head::HeadOptions,
}

/// Embed, train one head per task, measure on the held-out items, write `OUT/TASK.json`.
#[cfg(feature = "llama")]
pub async fn train_heads(setup: &HeadSetup) -> Result<HeadReport> {
    use backends::head::{train_head, EncoderId};
    let started = std::time::Instant::now();
    let scenarios = load_for_heads(
        &setup.scenarios,
        setup.limit,
        setup.few_shot_from_items,
        setup.split_seed,
    )?;
    let (mut data_train, mut data_held, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(dir) = &setup.datasets {
        let seen = items_of(&scenarios)?.into_iter().map(|i| i.text).collect();
        (data_train, data_held, notes) = crate::head_data::dataset_items(
            dir,
            &scenarios,
            &seen,
            setup.per_label,
            setup.split_seed,
        )?;
    }
    if setup.leave_out.is_some() && setup.half != Some(Half::Calibration) {
        return Err(BenchError::Analysis(
            "a fold is left out of the calibration half: give --half calibration too".into(),
        ));
    }
    let (calibration, evaluation, skipped) =
        labelled_halves(scenarios, setup.split_seed, setup.leave_out)?;
    let (mut train_items, mut eval_items) = match setup.half {
        Some(Half::Calibration) => (calibration, evaluation),
        Some(Half::Evaluation) => (evaluation, calibration),
        None => (
            calibration.into_iter().chain(evaluation).collect(),
            Vec::new(),
        ),
    };
    train_items.append(&mut data_train);
    eval_items.append(&mut data_held);
    if train_items.is_empty() {
        return Err(BenchError::Analysis(
            "no labelled `choices` items to train on in the given scenarios".into(),
        ));
    }
    let mut config = backends::EmbeddingEngineConfig::new(setup.encoder.clone());
    config.threads = setup.threads;
    let engine = load_engine(config).await?;
    let encoder = EncoderId::of_file(&setup.encoder, engine.dimensions()).map_err(analysis)?;
    let train_vectors = embed_all(&engine, &train_items).await?;
    let eval_vectors = embed_all(&engine, &eval_items).await?;
    let mut tasks: BTreeMap<&str, Vec<(Vec<f32>, String)>> = BTreeMap::new();
    // Every choice a task's items offer is a label of its head, examples or not.
    let mut choices: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for item in train_items.iter().chain(&eval_items) {
        choices
            .entry(item.task.as_str())
            .or_default()
            .extend(item.choices.iter().cloned());
    }
    for (item, v) in train_items.iter().zip(train_vectors) {
        tasks
            .entry(item.task.as_str())
            .or_default()
            .push((v, item.label.clone()));
    }
    let mut heads = Vec::new();
    let mut held_out = Vec::new();
    for (task, examples) in &tasks {
        let options = backends::head::HeadOptions {
            known_labels: choices.get(task).cloned().unwrap_or_default(),
            ..setup.options.clone()
        };
        let head = train_head(task, encoder.clone(), examples, &options).map_err(analysis)?;
        let file = setup.out_dir.join(format!("{}.json", file_stem(task)));
        head.save(&file).map_err(analysis)?;
        // Held-out accuracy per source (a scenario's evaluation half, a dataset's held-out part).
        let mut by_source: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (item, v) in eval_items.iter().zip(&eval_vectors) {
            if item.task != *task {
                continue;
            }
            let counts = by_source.entry(item.scenario.as_str()).or_default();
            counts.1 += 1;
            if predict(&head, v, item) == item.label {
                counts.0 += 1;
            }
        }
        for (source, (right, n)) in by_source {
            held_out.push(SourceResult {
                task: task.to_string(),
                source: source.to_string(),
                n: n as usize,
                accuracy: wilson(right, n),
            });
        }
        heads.push(HeadResult {
            task: task.to_string(),
            labels: head.labels.clone(),
            trained_on: examples.len(),
            file,
        });
    }
    Ok(HeadReport {
        encoder: encoder.to_string(),
        trained_on: match setup.half {
            Some(Half::Calibration) => "calibration-half".into(),
            Some(Half::Evaluation) => "evaluation-half".into(),
            None => "all".into(),
        },
        split_seed: setup.split_seed,
        skipped,
        datasets: notes,
        heads,
        held_out,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The head's answer among the item's choices, as the backend answers a request.
#[cfg(feature = "llama")]
fn predict(head: &backends::head::Head, v: &[f32], item: &LabelledItem) -> String {
    let Ok(probs) = head.choice_probabilities(v, &item.choices) else {
        return String::new();
    };
    let best = probs
        .iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, &p)| {
                if p > b.1 {
                    (i, p)
                } else {
                    b
                }
            },
        )
        .0;
    item.choices.get(best).cloned().unwrap_or_default()
}

#[cfg(feature = "llama")]
async fn load_engine(
    config: backends::EmbeddingEngineConfig,
) -> Result<backends::embed::EmbeddingEngine> {
    tokio::task::spawn_blocking(move || backends::embed::EmbeddingEngine::load(config))
        .await
        .map_err(|e| BenchError::Analysis(format!("encoder loading thread failed: {e}")))?
        .map_err(|e| BenchError::Analysis(format!("loading the encoder: {e}")))
}

#[cfg(feature = "llama")]
async fn embed_all(
    engine: &backends::embed::EmbeddingEngine,
    items: &[LabelledItem],
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|i| i.text.as_str()).collect();
        let embedded = engine
            .embed(&texts)
            .await
            .map_err(|e| BenchError::Analysis(format!("embedding training texts: {e}")))?;
        out.extend(embedded.vectors);
    }
    Ok(out)
}

#[cfg(feature = "llama")]
fn analysis(e: backends::head::HeadError) -> BenchError {
    BenchError::Analysis(e.to_string())
}

/// A task name as a file name: letters, digits, `-` and `_` kept, anything else `_`.
pub fn file_stem(task: &str) -> String {
    task.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Heads named on a spec or in a config: files, or directories whose `*.json` files are heads.
pub fn head_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| BenchError::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Unused-path guard for builds without the engine.
#[cfg(not(feature = "llama"))]
pub async fn train_heads(setup: &HeadSetup) -> Result<HeadReport> {
    Err(BenchError::Analysis(format!(
        "cannot train heads on {}: this build has no local engine (build with `llama`)",
        Path::new(&setup.encoder).display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn choices_scenarios_split_into_disjoint_labelled_halves() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let scenarios = load_for_heads(
            &[dir.join("sentiment.yaml"), dir.join("intent.yaml")],
            None,
            None,
            7,
        )
        .unwrap();
        let load = || {
            load_for_heads(
                &[dir.join("sentiment.yaml"), dir.join("intent.yaml")],
                None,
                None,
                7,
            )
            .unwrap()
        };
        let (cal, eval, skipped) = labelled_halves(scenarios, 7, None).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(cal.len() + eval.len(), 120);
        for c in &cal {
            assert!(!eval
                .iter()
                .any(|e| e.scenario == c.scenario && e.item_id == c.item_id));
        }
        let first = cal.iter().find(|i| i.task == "sentiment").unwrap();
        assert!(first
            .text
            .starts_with("Is the sentiment of this movie review"));
        assert!(["positive", "negative"].contains(&first.label.as_str()));
        // The same halves as `bench run --half`.
        let mut run = load();
        crate::half::keep(&mut run, Half::Evaluation, 7);
        let n: usize = run.iter().map(|s| s.items.len()).sum();
        assert_eq!(n, eval.len());
        assert_eq!(file_stem("a/b c"), "a_b_c");

        // Leaving fold 2/4 out trains on the rest of the calibration half: exactly the items
        // `bench run --half calibration --fold 2/4` does not answer; the evaluation half stays.
        let fold: crate::half::Fold = "2/4".parse().unwrap();
        let (cal_wo, eval_wo, _) = labelled_halves(load(), 7, Some(fold)).unwrap();
        let mut answered = load();
        crate::half::keep(&mut answered, Half::Calibration, 7);
        crate::half::keep_fold(&mut answered, fold, 7, true);
        let answered: std::collections::BTreeSet<(String, String)> = answered
            .iter()
            .flat_map(|s| s.items.iter().map(|i| (s.name.clone(), i.id.clone())))
            .collect();
        assert!(!answered.is_empty());
        assert_eq!(cal_wo.len() + answered.len(), cal.len());
        assert!(cal_wo
            .iter()
            .all(|i| !answered.contains(&(i.scenario.clone(), i.item_id.clone()))));
        assert_eq!(eval_wo.len(), eval.len());
    }
}
