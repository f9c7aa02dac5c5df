//! `triage route train`: assemble the labelled texts ([`crate::classifier_data`]), split them
//! (seeded, stratified per task and source), train the router's task classifier on one part and
//! measure it on the other, with Wilson 95% intervals per task and per source.
//!
//! The same split and report serve the embedding task classifier
//! ([`crate::classifier_train_embedding`]), so the two kinds are compared on the same texts.
//!
//! The model written is the one measured (trained on the kept part only), so the printed
//! accuracy describes the file the gateway loads. `holdout = 0` trains on everything and
//! measures nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use router::classifier::{
    evaluate_with, stratified_split, train, Classifier, Evaluation, Example, LearnedModel, Model,
    TaskScore, TrainOptions,
};
use serde::Serialize;

use crate::classifier_data::{
    load_scenarios, scenario_texts, shared_texts, LabelledText, SourceNote,
};
use crate::error::{BenchError, Result};
use crate::stats::{wilson, Estimate};

/// What to train on and how.
#[derive(Clone, Debug)]
pub struct TrainSetup {
    /// Scenario (or suite) files.
    pub scenarios: Vec<PathBuf>,
    /// The shared datasets directory (`../shared/datasets`), if any.
    pub datasets: Option<PathBuf>,
    /// Extra labelled examples (already read from JSONL).
    pub extra: Vec<(String, Example)>,
    /// Share of each task-and-source stratum held out for measuring (0 to 1).
    pub holdout: f64,
    /// Seed of the held-out split and of the per-source sampling.
    pub seed: u64,
    /// At most this many texts per shared source.
    pub per_source: usize,
    /// The gateway threshold the confident accuracy is counted at.
    pub threshold: f32,
    /// The classifier's training settings (passed to `router::classifier::train`).
    pub options: TrainOptions,
}

/// Held-out results of one group (a task, a source, or all).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupResult {
    /// The group: a task name, a source (`scenario:NAME`, `dataset:ID`, `data:FILE`), or `all`.
    pub name: String,
    /// Held-out texts.
    pub n: usize,
    /// Most probable task right, with its Wilson 95% interval.
    pub accuracy: Option<Estimate>,
    /// Right with probability at or above the threshold (what the gateway routes on).
    pub accuracy_at_threshold: Option<Estimate>,
}

impl GroupResult {
    fn new(name: impl Into<String>, s: TaskScore) -> Self {
        Self {
            name: name.into(),
            n: s.n,
            accuracy: wilson(s.correct as u64, s.n as u64),
            accuracy_at_threshold: wilson(s.correct_confident as u64, s.n as u64),
        }
    }
}

/// What training did and how the model did on the held-out texts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainReport {
    /// Which model was trained: `ngram` or `embedding`.
    pub classifier: String,
    /// Names of the scenarios whose items were used.
    pub scenarios: Vec<String>,
    /// What became of each shared dataset (used, available, or why skipped).
    pub sources: Vec<SourceNote>,
    /// Labelled texts per task (before the split).
    pub texts_per_task: BTreeMap<String, usize>,
    /// Texts the model was trained on.
    pub trained_on: usize,
    /// Texts held out for measuring.
    pub held_out: usize,
    /// Share of each task-and-source stratum held out, as asked.
    pub holdout: f64,
    /// Seed of the split and the sampling.
    pub seed: u64,
    /// Probability threshold `accuracy_at_threshold` is counted at.
    pub threshold: f32,
    /// Wall-clock training time in seconds.
    pub train_seconds: f64,
    /// Held-out results per true task.
    pub per_task: Vec<GroupResult>,
    /// Held-out results per source.
    pub per_source: Vec<GroupResult>,
    /// Held-out results over every held-out text; `None` when nothing was held out.
    pub overall: Option<GroupResult>,
    /// Mistakes: true task → predicted task → count.
    pub confusions: BTreeMap<String, BTreeMap<String, usize>>,
    /// Time to classify one held-out text (single-threaded, one at a time; for `embedding` the
    /// encoder pass included).
    pub latency: Option<Latency>,
}

/// The labelled texts of a setup, split as `route train` splits them (the same for every kind
/// of model: seeded, stratified by task and source).
pub(crate) struct Split {
    pub(crate) scenarios: Vec<String>,
    pub(crate) sources: Vec<SourceNote>,
    pub(crate) texts_per_task: BTreeMap<String, usize>,
    pub(crate) kept: Vec<LabelledText>,
    pub(crate) held: Vec<LabelledText>,
}

/// Assemble the labelled texts (scenario items, shared datasets, extra examples; each text
/// once) and split them.
pub(crate) fn assemble_and_split(setup: &TrainSetup) -> Result<Split> {
    if !(0.0..1.0).contains(&setup.holdout) {
        return Err(BenchError::Analysis(format!(
            "--holdout {} must be at least 0 and below 1",
            setup.holdout
        )));
    }
    let scenarios = load_scenarios(&setup.scenarios)?;
    let mut seen = BTreeSet::new();
    let mut texts: Vec<LabelledText> = scenario_texts(&scenarios)?
        .into_iter()
        .filter(|t| seen.insert(t.text.clone()))
        .collect();
    let mut sources = Vec::new();
    if let Some(dir) = &setup.datasets {
        if !dir.is_dir() {
            return Err(BenchError::Analysis(format!(
                "--datasets {}: no such directory",
                dir.display()
            )));
        }
        let (shared, notes) =
            shared_texts(dir, &scenarios, setup.per_source, setup.seed, &mut seen)?;
        texts.extend(shared);
        sources = notes;
    }
    for (source, e) in &setup.extra {
        if seen.insert(e.text.clone()) {
            texts.push(LabelledText {
                text: e.text.clone(),
                task: e.task.clone(),
                source: format!("data:{source}"),
            });
        }
    }
    let mut texts_per_task = BTreeMap::new();
    for t in &texts {
        *texts_per_task.entry(t.task.clone()).or_insert(0) += 1;
    }
    let (kept, held) = stratified_split(
        texts,
        |t: &LabelledText| format!("{}\u{1f}{}", t.task, t.source),
        setup.holdout,
        setup.seed,
    );
    Ok(Split {
        scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
        sources,
        texts_per_task,
        kept,
        held,
    })
}

/// A labelled text as the classifier's example type.
pub(crate) fn example(t: &LabelledText) -> Example {
    Example {
        text: t.text.clone(),
        task: t.task.clone(),
    }
}

/// Latency of one classification, one text at a time on one thread.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Texts timed (the held-out texts).
    pub n: usize,
    /// Median, in microseconds.
    pub p50_us: f64,
    /// 99th percentile (nearest rank), in microseconds.
    pub p99_us: f64,
}

impl Latency {
    /// From per-text durations in seconds; `None` when there are none.
    pub(crate) fn of(mut secs: Vec<f64>) -> Option<Latency> {
        if secs.is_empty() {
            return None;
        }
        secs.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let i = ((q * secs.len() as f64).ceil() as usize).clamp(1, secs.len()) - 1;
            secs.get(i).copied().unwrap_or(0.0) * 1e6
        };
        Some(Latency {
            n: secs.len(),
            p50_us: rank(0.5),
            p99_us: rank(0.99),
        })
    }
}

/// The report of a model whose held-out answers are `predicted` (task and probability, in
/// `split.held` order).
pub(crate) fn report(
    setup: &TrainSetup,
    split: &Split,
    classifier: &str,
    train_seconds: f64,
    predicted: &[(String, f32)],
    latency: Option<Latency>,
) -> TrainReport {
    let held_examples: Vec<Example> = split.held.iter().map(example).collect();
    let answers: BTreeMap<&str, &(String, f32)> = held_examples
        .iter()
        .map(|e| e.text.as_str())
        .zip(predicted)
        .collect();
    let predict = |e: &Example| {
        answers
            .get(e.text.as_str())
            .map_or((String::new(), 0.0), |a| (*a).clone())
    };
    let all = evaluate_with(setup.threshold, &held_examples, predict);
    let mut by_source: BTreeMap<&str, Vec<Example>> = BTreeMap::new();
    for (t, e) in split.held.iter().zip(&held_examples) {
        by_source.entry(&t.source).or_default().push(e.clone());
    }
    let per_source = by_source
        .iter()
        .map(|(source, examples)| {
            let e: Evaluation = evaluate_with(setup.threshold, examples, predict);
            GroupResult::new(*source, e.total())
        })
        .collect();
    TrainReport {
        classifier: classifier.to_string(),
        scenarios: split.scenarios.clone(),
        sources: split.sources.clone(),
        texts_per_task: split.texts_per_task.clone(),
        trained_on: split.kept.len(),
        held_out: split.held.len(),
        holdout: setup.holdout,
        seed: setup.seed,
        threshold: setup.threshold,
        train_seconds,
        per_task: all
            .tasks
            .iter()
            .map(|(task, s)| GroupResult::new(task, *s))
            .collect(),
        per_source,
        overall: (!split.held.is_empty()).then(|| GroupResult::new("all", all.total())),
        confusions: all.confusions,
        latency,
    }
}

/// Assemble, split, train, measure. Returns the trained model and the report.
pub fn train_classifier(setup: &TrainSetup) -> Result<(Model, TrainReport)> {
    let split = assemble_and_split(setup)?;
    let train_set: Vec<Example> = split.kept.iter().map(example).collect();
    let started = Instant::now();
    let model = train(&train_set, &setup.options)
        .map_err(|e| BenchError::Analysis(format!("training the classifier: {e}")))?;
    let train_seconds = started.elapsed().as_secs_f64();
    // What the gateway runs per request: features, scores, the explanation's top n-grams.
    let classifier = Classifier {
        rules: Vec::new(),
        model: Some(LearnedModel::Ngram(model.clone())),
        threshold: setup.threshold,
        missing_model: None,
    };
    let mut predicted = Vec::with_capacity(split.held.len());
    let mut secs = Vec::with_capacity(split.held.len());
    for t in &split.held {
        let started = Instant::now();
        std::hint::black_box(classifier.classify(&t.text));
        secs.push(started.elapsed().as_secs_f64());
        predicted.push(model.predict(&t.text));
    }
    let predicted: Vec<(String, f32)> = predicted
        .into_iter()
        .map(|(task, p)| (task.to_string(), p))
        .collect();
    let report = report(
        setup,
        &split,
        "ngram",
        train_seconds,
        &predicted,
        Latency::of(secs),
    );
    Ok((model, report))
}

impl fmt::Display for TrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.texts_per_task.values().sum();
        writeln!(
            f,
            "{total} labelled texts from {} scenarios{}; trained on {} in {:.1} s, held out {} \
             ({:.0}% of each task and source, seed {})",
            self.scenarios.len(),
            if self.sources.is_empty() {
                String::new()
            } else {
                format!(
                    " and {} shared datasets",
                    self.sources.iter().filter(|s| s.used > 0).count()
                )
            },
            self.trained_on,
            self.train_seconds,
            self.held_out,
            self.holdout * 100.0,
            self.seed,
        )?;
        for s in &self.sources {
            match &s.skipped {
                Some(why) => writeln!(f, "  dataset {:<20} skipped: {why}", s.id)?,
                None => writeln!(
                    f,
                    "  dataset {:<20} {} of {} texts",
                    s.id, s.used, s.available
                )?,
            }
        }
        if self.overall.is_none() {
            return writeln!(f, "nothing held out: no accuracy measured");
        }
        if let Some(l) = &self.latency {
            writeln!(
                f,
                "{} classifier: one classification p50 {:.1} µs, p99 {:.1} µs ({} held-out \
                 texts, one at a time)",
                self.classifier, l.p50_us, l.p99_us, l.n
            )?;
        }
        writeln!(
            f,
            "\nheld-out accuracy (most probable task; Wilson 95% CI; last column: right with \
             p >= {:.2}, the gateway's threshold)",
            self.threshold
        )?;
        table(f, "task", &self.per_task, self.overall.as_ref())?;
        writeln!(f)?;
        table(f, "source", &self.per_source, None)?;
        if !self.confusions.is_empty() {
            writeln!(f, "\nmistakes (true → predicted):")?;
            for (truth, predicted) in &self.confusions {
                for (p, n) in predicted {
                    writeln!(f, "  {truth} → {p}: {n}")?;
                }
            }
        }
        Ok(())
    }
}

fn table(
    f: &mut fmt::Formatter<'_>,
    header: &str,
    rows: &[GroupResult],
    total: Option<&GroupResult>,
) -> fmt::Result {
    let width = rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(header.len());
    writeln!(
        f,
        "{header:<width$}  {:>4}  {:>8}  {:>15}  {:>9}",
        "n", "accuracy", "95% CI", "at thresh"
    )?;
    for r in rows.iter().chain(total) {
        let (acc, ci) = match &r.accuracy {
            Some(e) => (
                format!("{:.3}", e.value),
                format!("[{:.3}, {:.3}]", e.ci95_low, e.ci95_high),
            ),
            None => ("-".into(), "-".into()),
        };
        let at = r
            .accuracy_at_threshold
            .as_ref()
            .map_or("-".into(), |e| format!("{:.3}", e.value));
        writeln!(
            f,
            "{:<width$}  {:>4}  {acc:>8}  {ci:>15}  {at:>9}",
            r.name, r.n
        )?;
    }
    Ok(())
}
