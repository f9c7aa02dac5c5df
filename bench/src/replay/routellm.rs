//! RouteLLM's recorded benchmark data (Apache-2.0): GSM8K and MMLU prompts with the
//! correctness of Mixtral-8x7B-Instruct (weak) and GPT-4-1106-preview (strong), and for GSM8K
//! both models' full answers. Routers are evaluated as RouteLLM's `evals/benchmarks.py` does:
//! contaminated prompts are dropped, each router scores every prompt (higher = send to the
//! strong model), thresholds are the edges of `num_results` equal-count bins of the scores
//! (`pd.qcut`), and each threshold gives a (strong share, accuracy) point; APGR and CPT come from
//! [`crate::calibrate`].

use std::collections::HashSet;
use std::path::Path;

use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Recorded, ReplayBackend};
use crate::calibrate::{apgr, cpt, CurvePoint};
use crate::error::{BenchError, Result, UnknownName};

/// The weak model of RouteLLM's recordings (Mixtral-8x7B-Instruct), as RouteLLM names it.
pub const WEAK: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";
/// The strong model of RouteLLM's recordings (GPT-4-1106-preview), as RouteLLM names it.
pub const STRONG: &str = "gpt-4-1106-preview";

/// One benchmark prompt with both models' correctness (and answers, where recorded).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The benchmark prompt as recorded.
    pub prompt: String,
    /// Whether the weak model (Mixtral) answered correctly.
    pub weak_correct: bool,
    /// Whether the strong model (GPT-4) answered correctly.
    pub strong_correct: bool,
    /// The weak model's full answer (GSM8K only).
    pub weak_response: Option<String>,
    /// The strong model's full answer (GSM8K only).
    pub strong_response: Option<String>,
}

/// Which of RouteLLM's recorded benchmarks to evaluate on (`--benchmark gsm8k|mmlu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Benchmark {
    /// GSM8K grade-school math, with both models' full answers.
    Gsm8k,
    /// MMLU multiple choice, correctness only.
    Mmlu,
}

impl std::str::FromStr for Benchmark {
    type Err = UnknownName;
    fn from_str(s: &str) -> std::result::Result<Self, UnknownName> {
        match s.to_ascii_lowercase().as_str() {
            "gsm8k" => Ok(Benchmark::Gsm8k),
            "mmlu" => Ok(Benchmark::Mmlu),
            other => Err(UnknownName {
                what: "benchmark",
                name: other.to_string(),
                known: "gsm8k or mmlu",
            }),
        }
    }
}

/// Load a benchmark from RouteLLM's eval directory, decontaminated. Returns the rows and how
/// many were dropped as contaminated.
pub fn load(dir: &Path, benchmark: Benchmark) -> Result<(Vec<Row>, usize)> {
    let (files, contaminated) = match benchmark {
        Benchmark::Gsm8k => (
            vec![dir.join("gsm8k_gsm8k_responses.csv")],
            dir.join("gsm8k_contaminated_prompts.jsonl"),
        ),
        Benchmark::Mmlu => {
            let sub = dir.join("mmlu_responses");
            let mut files: Vec<_> = std::fs::read_dir(&sub)
                .map_err(|e| BenchError::io(&sub, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "csv"))
                .collect();
            files.sort();
            (files, dir.join("mmlu_contaminated_prompts.jsonl"))
        }
    };
    let excluded = read_contaminated(&contaminated)?;
    let mut rows = Vec::new();
    let mut dropped = 0;
    for file in files {
        for row in read_csv(&file)? {
            if excluded.contains(&row.prompt) {
                dropped += 1;
            } else {
                rows.push(row);
            }
        }
    }
    if rows.is_empty() {
        return Err(BenchError::Analysis(format!(
            "no rows found for {benchmark:?} in {}",
            dir.display()
        )));
    }
    Ok((rows, dropped))
}

fn read_contaminated(path: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    let mut out = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| BenchError::Dataset {
            path: path.to_path_buf(),
            row: i + 1,
            message: e.to_string(),
        })?;
        if let Some(p) = v.get("eval_prompt").and_then(|p| p.as_str()) {
            out.insert(p.to_string());
        }
    }
    Ok(out)
}

fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| BenchError::invalid(path, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| BenchError::invalid(path, e.to_string()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(p), Some(w), Some(s)) = (col("prompt"), col(WEAK), col(STRONG)) else {
        return Err(BenchError::invalid(
            path,
            format!("expected columns prompt, {WEAK}, {STRONG}"),
        ));
    };
    let wr = col(&format!("{WEAK}_response"));
    let sr = col(&format!("{STRONG}_response"));
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| BenchError::Dataset {
            path: path.to_path_buf(),
            row: i + 1,
            message: e.to_string(),
        })?;
        let flag = |idx: usize| -> Result<bool> {
            match rec.get(idx).unwrap_or("") {
                "True" | "true" | "1" => Ok(true),
                "False" | "false" | "0" => Ok(false),
                other => Err(BenchError::Dataset {
                    path: path.to_path_buf(),
                    row: i + 1,
                    message: format!("correctness `{other}` is not True/False"),
                }),
            }
        };
        rows.push(Row {
            prompt: rec.get(p).unwrap_or("").to_string(),
            weak_correct: flag(w)?,
            strong_correct: flag(s)?,
            weak_response: wr.and_then(|i| rec.get(i)).map(str::to_string),
            strong_response: sr.and_then(|i| rec.get(i)).map(str::to_string),
        });
    }
    Ok(rows)
}

/// Replay backends for the weak and strong models from the recorded answers (GSM8K only —
/// MMLU has no answers recorded).
pub fn replay_backends(rows: &[Row]) -> Result<(ReplayBackend, ReplayBackend)> {
    let take = |f: fn(&Row) -> Option<&String>| {
        rows.iter()
            .filter_map(|r| {
                f(r).map(|resp| Recorded {
                    prompt: r.prompt.clone(),
                    response: resp.clone(),
                    logprobs: Vec::new(),
                })
            })
            .collect::<Vec<_>>()
    };
    let weak = take(|r| r.weak_response.as_ref());
    let strong = take(|r| r.strong_response.as_ref());
    if weak.is_empty() || strong.is_empty() {
        return Err(BenchError::Analysis(
            "these rows carry no recorded answers".into(),
        ));
    }
    Ok((ReplayBackend::new(weak), ReplayBackend::new(strong)))
}

/// A simple router scoring prompts (higher = more likely to need the strong model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimpleRouter {
    /// Uniform random scores (seeded): the baseline every router must beat (APGR ≈ 0.5).
    Random {
        /// Seed of the random scores.
        seed: u64,
    },
    /// Longer prompts go to the strong model.
    Length,
    /// Counts digits, arithmetic operators and "hard question" keywords.
    Keyword,
    /// Knows the recorded correctness: strong only where the weak model fails and the strong
    /// one succeeds. The upper bound, not a router.
    Oracle,
}

impl SimpleRouter {
    /// The router's name as accepted by [`Self::parse`].
    pub fn name(&self) -> String {
        match self {
            SimpleRouter::Random { .. } => "random".into(),
            SimpleRouter::Length => "length".into(),
            SimpleRouter::Keyword => "keyword".into(),
            SimpleRouter::Oracle => "oracle".into(),
        }
    }

    /// The router named `name` (`random` gets seed 0); an error lists the known names.
    pub fn parse(name: &str) -> std::result::Result<Self, UnknownName> {
        match name {
            "random" => Ok(SimpleRouter::Random { seed: 0 }),
            "length" => Ok(SimpleRouter::Length),
            "keyword" => Ok(SimpleRouter::Keyword),
            "oracle" => Ok(SimpleRouter::Oracle),
            other => Err(UnknownName {
                what: "router",
                name: other.to_string(),
                known: "random, length, keyword, oracle",
            }),
        }
    }

    /// One score per row, higher meaning "send to the strong model".
    pub fn scores(&self, rows: &[Row]) -> Vec<f64> {
        match self {
            SimpleRouter::Random { seed } => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(*seed);
                rows.iter().map(|_| rng.random::<f64>()).collect()
            }
            SimpleRouter::Length => rows
                .iter()
                .map(|r| r.prompt.chars().count() as f64)
                .collect(),
            SimpleRouter::Keyword => rows.iter().map(|r| keyword_score(&r.prompt)).collect(),
            SimpleRouter::Oracle => rows
                .iter()
                .map(|r| {
                    if !r.weak_correct && r.strong_correct {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }
}

const HARD_WORDS: [&str; 16] = [
    "percent",
    "%",
    "ratio",
    "average",
    "each",
    "per",
    "twice",
    "half",
    "remaining",
    "total",
    "prove",
    "calculate",
    "probability",
    "derivative",
    "integral",
    "theorem",
];

fn keyword_score(prompt: &str) -> f64 {
    let lower = prompt.to_lowercase();
    let digits = lower.chars().filter(|c| c.is_ascii_digit()).count() as f64;
    let operators = lower
        .chars()
        .filter(|c| matches!(c, '+' | '*' | '/' | '=' | '^'))
        .count() as f64;
    let words = HARD_WORDS
        .iter()
        .map(|w| lower.matches(w).count())
        .sum::<usize>() as f64;
    digits + 2.0 * operators + 3.0 * words
}

/// Scores from triage's learned classifier (`router::classifier`: hashed n-grams + logistic
/// regression), trained to predict "the strong model is needed" (the weak model's answer was
/// wrong and the strong model's right) from the prompt. Cross-fitted: the rows are split in
/// `folds` seeded folds and every prompt is scored by a model trained on the other folds, so no
/// prompt is scored by a model that saw its label. The score is P(strong needed).
pub fn classifier_scores(rows: &[Row], folds: usize, seed: u64) -> Result<Vec<f64>> {
    use router::classifier::{train, Example, TrainOptions};
    let folds = folds.max(2);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    {
        use rand::seq::SliceRandom;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        order.shuffle(&mut rng);
    }
    let mut fold_of = vec![0usize; rows.len()];
    for (rank, &i) in order.iter().enumerate() {
        fold_of[i] = rank % folds;
    }
    let label = |r: &Row| {
        if !r.weak_correct && r.strong_correct {
            "strong"
        } else {
            "weak"
        }
    };
    let mut scores = vec![0.0; rows.len()];
    for fold in 0..folds {
        let examples: Vec<Example> = rows
            .iter()
            .zip(&fold_of)
            .filter(|(_, f)| **f != fold)
            .map(|(r, _)| Example {
                text: r.prompt.clone(),
                task: label(r).to_string(),
            })
            .collect();
        let model = train(&examples, &TrainOptions::default())
            .map_err(|e| BenchError::Analysis(format!("training the classifier: {e}")))?;
        let strong = model.tasks.iter().position(|t| t == "strong");
        for (i, r) in rows.iter().enumerate() {
            if fold_of[i] == fold {
                let p = model.probabilities(&r.prompt);
                scores[i] = strong.and_then(|k| p.get(k)).copied().unwrap_or(0.0) as f64;
            }
        }
    }
    Ok(scores)
}

/// A router's curve and metrics on one benchmark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouterEval {
    /// Name of the evaluated router.
    pub router: String,
    /// One (strong share, accuracy) point per threshold, in threshold order.
    pub points: Vec<CurvePoint>,
    /// Average performance gap recovered (RouteLLM's APGR); `None` when both models score the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apgr: Option<f64>,
    /// Share of strong calls needed for 20/50/80/95% of the performance gap.
    pub cpt: std::collections::BTreeMap<String, Option<f64>>,
}

/// Accuracy of the weak and strong models alone.
pub fn model_accuracy(rows: &[Row]) -> (f64, f64) {
    let n = rows.len().max(1) as f64;
    (
        rows.iter().filter(|r| r.weak_correct).count() as f64 / n,
        rows.iter().filter(|r| r.strong_correct).count() as f64 / n,
    )
}

/// Quantile with linear interpolation (pandas' default), q in [0, 1], `sorted` ascending.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Evaluate router scores as RouteLLM does, with `num_results` bins (RouteLLM's default: 10).
pub fn evaluate(rows: &[Row], router: &str, scores: &[f64], num_results: usize) -> RouterEval {
    let (weak, strong) = model_accuracy(rows);
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let bins = num_results.max(1);
    let edges: Vec<f64> = (0..=bins)
        .map(|i| quantile(&sorted, i as f64 / bins as f64))
        .collect();
    let n = rows.len().max(1) as f64;
    let points = edges
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let last = i == edges.len() - 1;
            let mut correct = 0usize;
            let mut strong_calls = 0usize;
            for (row, &s) in rows.iter().zip(scores) {
                let to_strong = if last { s > t } else { s >= t };
                strong_calls += to_strong as usize;
                correct += if to_strong {
                    row.strong_correct
                } else {
                    row.weak_correct
                } as usize;
            }
            CurvePoint {
                threshold: t,
                strong_share: strong_calls as f64 / n,
                quality: correct as f64 / n,
                cost_per_request: strong_calls as f64 / n,
            }
        })
        .collect::<Vec<_>>();
    let cpt = [("20%", 0.2), ("50%", 0.5), ("80%", 0.8), ("95%", 0.95)]
        .into_iter()
        .map(|(k, f)| (k.to_string(), cpt(&points, weak, strong, f)))
        .collect();
    RouterEval {
        router: router.to_string(),
        apgr: apgr(&points, weak, strong),
        points,
        cpt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(w: bool, s: bool, prompt: &str) -> Row {
        Row {
            prompt: prompt.into(),
            weak_correct: w,
            strong_correct: s,
            weak_response: None,
            strong_response: None,
        }
    }

    #[test]
    fn oracle_beats_random_and_curves_span_both_ends() {
        let rows: Vec<Row> = (0..200)
            .map(|i| row(i % 3 != 0, i % 5 != 0, &"x".repeat(i % 17 + 1)))
            .collect();
        let (w, s) = model_accuracy(&rows);
        let random = evaluate(
            &rows,
            "random",
            &SimpleRouter::Random { seed: 1 }.scores(&rows),
            10,
        );
        let oracle = evaluate(&rows, "oracle", &SimpleRouter::Oracle.scores(&rows), 10);
        let first = random.points.first().unwrap();
        let last = random.points.last().unwrap();
        assert_eq!(
            first.strong_share, 1.0,
            "threshold at the minimum: everything strong"
        );
        assert!((first.quality - s).abs() < 1e-12);
        assert_eq!(last.strong_share, 0.0, "above the maximum: everything weak");
        assert!((last.quality - w).abs() < 1e-12);
        let (ra, oa) = (random.apgr.unwrap(), oracle.apgr.unwrap());
        assert!(oa > ra, "oracle {oa} vs random {ra}");
        assert!((ra - 0.5).abs() < 0.2, "random is near the diagonal: {ra}");
    }
}
