//! Task classifier: decides which task a prompt is (sentiment, qa, extraction, …) so routing
//! rules can name tasks. Fast, local and explainable:
//!
//! 1. keyword/regex rules from config are checked first, in order; a hit gives confidence 1.0
//!    and names the rule and the text that matched;
//! 2. otherwise a learned model scores the text: hashed word uni/bi-gram and character
//!    3-gram features (FNV-1a into 2^18 buckets, log-scaled counts, L2-normalised) and a
//!    multinomial logistic regression trained by deterministic full-pass gradient descent.
//!    The explanation lists the n-grams that pushed hardest towards the chosen task;
//! 3. below the confidence threshold the task is `unknown`.
//!
//! Models are saved as small JSON files (sparse weights: only buckets seen in training), and
//! training is reproducible: the same examples in the same order give the same file.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The task name used when nothing is confident enough.
pub const UNKNOWN_TASK: &str = "unknown";
/// Format tag written into model files.
pub const MODEL_FORMAT: &str = "triage-task-classifier/1";
const DIMS_LOG2: u32 = 18;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassifierError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    BadExample {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: not a classifier model: {message}")]
    BadModel { path: String, message: String },
    #[error("cannot train: {0}")]
    Training(String),
    #[error("classifier rule {rule:?}: {message}")]
    BadRule { rule: String, message: String },
}

/// One labelled example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub task: String,
}

/// Training knobs; the defaults suit a few hundred to a few thousand short examples.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 40,
            learning_rate: 0.5,
            l2: 1e-5,
        }
    }
}

/// A trained model: per-task bias and sparse weights over hashed n-gram buckets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: String,
    pub dims_log2: u32,
    pub tasks: Vec<String>,
    pub bias: Vec<f32>,
    /// `weights[bucket] = [w_task0, w_task1, …]`, only for buckets seen in training.
    pub weights: BTreeMap<u32, Vec<f32>>,
    /// How many examples per task the model was trained on (for `explain`).
    pub trained_on: BTreeMap<String, usize>,
}

/// 64-bit FNV-1a. Hand-written because its exact output is part of the saved model format:
/// a hasher from a crate or std (`DefaultHasher` makes no stability promise) could change.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn bucket(ngram: &str, dims_log2: u32) -> u32 {
    let h = fnv1a(ngram.as_bytes());
    (h >> (64 - dims_log2)) as u32
}

/// Calls `f` with every feature n-gram of `text`: `w:word`, `b:word word`, `c:abc`.
fn for_each_ngram(text: &str, mut f: impl FnMut(&str)) {
    let lower = text.to_lowercase();
    let mut buf = String::with_capacity(64);
    let mut chars: Vec<char> = Vec::with_capacity(32);
    let mut prev: Option<&str> = None;
    for word in lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
    {
        buf.clear();
        buf.push_str("w:");
        buf.push_str(word);
        f(&buf);
        if let Some(p) = prev {
            buf.clear();
            buf.push_str("b:");
            buf.push_str(p);
            buf.push(' ');
            buf.push_str(word);
            f(&buf);
        }
        prev = Some(word);
        // Character trigrams of the word with boundary markers: "^ab", "abc", …, "yz$".
        chars.clear();
        chars.push('^');
        chars.extend(word.chars());
        chars.push('$');
        for win in chars.windows(3) {
            buf.clear();
            buf.push_str("c:");
            buf.extend(win);
            f(&buf);
        }
    }
}

/// Sparse, L2-normalised feature vector: (bucket, value), sorted by bucket.
fn featurize(text: &str, dims_log2: u32) -> Vec<(u32, f32)> {
    // Sort bucket ids and count runs: cheaper than hashing them into a map.
    let mut ids: Vec<u32> = Vec::with_capacity(text.len() * 2);
    for_each_ngram(text, |g| ids.push(bucket(g, dims_log2)));
    ids.sort_unstable();
    let mut v: Vec<(u32, f32)> = Vec::with_capacity(ids.len());
    for id in ids {
        match v.last_mut() {
            Some((last, count)) if *last == id => *count += 1.0,
            _ => v.push((id, 1.0)),
        }
    }
    for (_, c) in &mut v {
        *c = c.ln_1p();
    }
    let norm = v.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, x) in &mut v {
            *x /= norm;
        }
    }
    v
}

fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// Train a multinomial logistic regression on `examples` (in the order given: deterministic).
pub fn train(examples: &[Example], options: &TrainOptions) -> Result<Model, ClassifierError> {
    let mut tasks: Vec<String> = examples.iter().map(|e| e.task.clone()).collect();
    tasks.sort();
    tasks.dedup();
    if tasks.len() < 2 {
        return Err(ClassifierError::Training(format!(
            "need examples of at least 2 tasks, got {} example(s) of {} task(s)",
            examples.len(),
            tasks.len()
        )));
    }
    if tasks.iter().any(|t| t.is_empty() || t == UNKNOWN_TASK) {
        return Err(ClassifierError::Training(format!(
            "task names must be non-empty and not {UNKNOWN_TASK:?}"
        )));
    }
    let k = tasks.len();
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let data: Vec<(Vec<(u32, f32)>, usize)> = examples
        .iter()
        .map(|e| (featurize(&e.text, DIMS_LOG2), index[e.task.as_str()]))
        .collect();
    // Dense rows only for buckets that occur; map bucket → row.
    let mut rows: BTreeMap<u32, usize> = BTreeMap::new();
    for (x, _) in &data {
        for &(b, _) in x {
            let next = rows.len();
            rows.entry(b).or_insert(next);
        }
    }
    let mut w = vec![0.0f32; rows.len() * k];
    let mut bias = vec![0.0f32; k];
    let mut probs = vec![0.0f32; k];
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng_state: u64 = 0x5EED_7A5C;
    for epoch in 0..options.epochs {
        // Step size decays slowly so late passes settle instead of oscillating.
        let lr = options.learning_rate / (1.0 + epoch as f32 * 0.05);
        // Visit examples in a fresh pseudo-random order each epoch: data files are often sorted
        // by task, and SGD over sorted data drifts towards whichever task comes last.
        shuffle(&mut order, &mut rng_state);
        for &i in &order {
            let (x, y) = &data[i];
            probs.copy_from_slice(&bias);
            for &(b, v) in x {
                let r = rows[&b] * k;
                for (c, p) in probs.iter_mut().enumerate() {
                    *p += w[r + c] * v;
                }
            }
            softmax(&mut probs);
            for (c, p) in probs.iter().enumerate() {
                let g = p - if c == *y { 1.0 } else { 0.0 };
                bias[c] -= lr * g;
                for &(b, v) in x {
                    let i = rows[&b] * k + c;
                    w[i] -= lr * (g * v + options.l2 * w[i]);
                }
            }
        }
    }
    let mut trained_on = BTreeMap::new();
    for e in examples {
        *trained_on.entry(e.task.clone()).or_insert(0) += 1;
    }
    let weights = rows
        .iter()
        .map(|(&b, &r)| {
            (
                b,
                w[r * k..(r + 1) * k].iter().map(|x| round6(*x)).collect(),
            )
        })
        .collect();
    Ok(Model {
        format: MODEL_FORMAT.to_string(),
        dims_log2: DIMS_LOG2,
        tasks,
        bias: bias.into_iter().map(round6).collect(),
        weights,
        trained_on,
    })
}

/// SplitMix64 (Steele, Lea & Flood 2014): a fixed, seedable generator, hand-written because
/// training must give the same model on every platform and version (crate RNGs do not promise
/// a stable stream).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fisher–Yates with [`splitmix64`].
fn shuffle(items: &mut [usize], state: &mut u64) {
    for i in (1..items.len()).rev() {
        let j = (splitmix64(state) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Six decimals keep the JSON small and the file identical across runs.
fn round6(x: f32) -> f32 {
    (x * 1e6).round() / 1e6
}

impl Model {
    /// Probability of each task for `text`, in `self.tasks` order.
    pub fn probabilities(&self, text: &str) -> Vec<f32> {
        self.probabilities_of(&featurize(text, self.dims_log2))
    }

    fn probabilities_of(&self, x: &[(u32, f32)]) -> Vec<f32> {
        let mut scores = self.bias.clone();
        for (b, v) in x {
            if let Some(ws) = self.weights.get(b) {
                for (s, w) in scores.iter_mut().zip(ws) {
                    *s += w * v;
                }
            }
        }
        softmax(&mut scores);
        scores
    }

    /// The n-grams of `text` that pushed hardest towards task `t` (up to `n`, with the margin
    /// of their weight over the best other task's, times their feature value).
    pub fn top_features(&self, text: &str, t: usize, n: usize) -> Vec<(String, f32)> {
        self.top_features_of(text, &featurize(text, self.dims_log2), t, n)
            .into_iter()
            .map(|(_, g, m)| (g, m))
            .collect()
    }

    fn top_features_of(
        &self,
        text: &str,
        x: &[(u32, f32)],
        t: usize,
        n: usize,
    ) -> Vec<(u32, String, f32)> {
        // Rank buckets first (no strings), then name only the winners in one n-gram pass.
        let mut top: Vec<(u32, f32)> = x
            .iter()
            .filter_map(|&(b, v)| {
                let ws = self.weights.get(&b)?;
                let others = ws
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != t)
                    .map(|(_, w)| *w)
                    .fold(f32::NEG_INFINITY, f32::max);
                let margin = (ws.get(t).copied().unwrap_or(0.0) - others.max(-1e9)) * v;
                (margin > 0.0).then_some((b, margin))
            })
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(n);
        let mut named: Vec<(u32, String, f32)> = Vec::with_capacity(top.len());
        for_each_ngram(text, |g| {
            if named.len() == top.len() {
                return;
            }
            let b = bucket(g, self.dims_log2);
            if let Some(&(_, m)) = top.iter().find(|(tb, _)| *tb == b) {
                if !named.iter().any(|(nb, ..)| *nb == b) {
                    named.push((b, g.to_string(), m));
                }
            }
        });
        named.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
        named
    }

    pub fn save(&self, path: &Path) -> Result<(), ClassifierError> {
        let io = |source| ClassifierError::Io {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_string(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(path, json).map_err(io)
    }

    pub fn load(path: &Path) -> Result<Model, ClassifierError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClassifierError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let bad = |message: String| ClassifierError::BadModel {
            path: path.display().to_string(),
            message,
        };
        let model: Model = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if model.format != MODEL_FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {MODEL_FORMAT:?}",
                model.format
            )));
        }
        let k = model.tasks.len();
        if k < 2 || model.bias.len() != k || model.weights.values().any(|w| w.len() != k) {
            return Err(bad("weights do not match the task list".into()));
        }
        if !(8..=24).contains(&model.dims_log2) {
            return Err(bad(format!("dims_log2 {} out of range", model.dims_log2)));
        }
        Ok(model)
    }
}

/// Read labelled examples from JSON Lines with `text` and `task` fields (other fields ignored).
pub fn read_examples(path: &Path) -> Result<Vec<Example>, ClassifierError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ClassifierError::Io {
        path: p.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(line).map_err(|e| ClassifierError::BadExample {
            path: p.clone(),
            line: i + 1,
            message: format!("expected an object with string fields `text` and `task`: {e}"),
        })?;
        out.push(ex);
    }
    if out.is_empty() {
        return Err(ClassifierError::BadExample {
            path: p,
            line: 0,
            message: "no examples".into(),
        });
    }
    Ok(out)
}

/// A config rule: the task is `task` when any keyword (whole word, any case) or the regex hits.
#[derive(Clone, Debug)]
pub struct TaskRule {
    pub name: String,
    pub task: String,
    matcher: Regex,
}

impl TaskRule {
    pub fn new(
        name: &str,
        task: &str,
        keywords: &[String],
        regex: Option<&str>,
    ) -> Result<TaskRule, ClassifierError> {
        let mut alternatives: Vec<String> = keywords
            .iter()
            .map(|k| format!(r"\b{}\b", regex::escape(k)))
            .collect();
        if let Some(r) = regex {
            Regex::new(r).map_err(|e| ClassifierError::BadRule {
                rule: name.into(),
                message: e.to_string(),
            })?;
            alternatives.push(format!("(?:{r})"));
        }
        if alternatives.is_empty() {
            return Err(ClassifierError::BadRule {
                rule: name.into(),
                message: "needs keywords or a regex".into(),
            });
        }
        let matcher = Regex::new(&format!("(?i){}", alternatives.join("|"))).map_err(|e| {
            ClassifierError::BadRule {
                rule: name.into(),
                message: e.to_string(),
            }
        })?;
        Ok(TaskRule {
            name: name.into(),
            task: task.into(),
            matcher,
        })
    }
}

/// What the classifier decided and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    pub task: String,
    pub confidence: f32,
    pub explanation: String,
}

/// Rules, then the learned model, then the threshold.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    pub rules: Vec<TaskRule>,
    pub model: Option<Model>,
    /// Below this probability the learned model's answer becomes `unknown`.
    pub threshold: f32,
}

impl Classifier {
    pub fn classify(&self, text: &str) -> Classification {
        for rule in &self.rules {
            if let Some(m) = rule.matcher.find(text) {
                return Classification {
                    task: rule.task.clone(),
                    confidence: 1.0,
                    explanation: format!("rule {:?} matched {:?}", rule.name, m.as_str()),
                };
            }
        }
        let Some(model) = &self.model else {
            return Classification {
                task: UNKNOWN_TASK.into(),
                confidence: 0.0,
                explanation: "no rule matched and no learned model is configured".into(),
            };
        };
        let x = featurize(text, model.dims_log2);
        let probs = model.probabilities_of(&x);
        let (best, p) =
            probs
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (i, p)| {
                        if p > acc.1 {
                            (i, p)
                        } else {
                            acc
                        }
                    },
                );
        let mut explanation = format!("learned model: {} p={p:.2}", model.tasks[best]);
        let top = model.top_features_of(text, &x, best, 4);
        if !top.is_empty() {
            explanation.push_str(" (strongest n-grams:");
            for (_, g, m) in &top {
                let _ = write!(explanation, " {g:?} {m:+.2}");
            }
            explanation.push(')');
        }
        if p < self.threshold {
            let _ = write!(
                explanation,
                "; below threshold {:.2} → unknown",
                self.threshold
            );
            return Classification {
                task: UNKNOWN_TASK.into(),
                confidence: p,
                explanation,
            };
        }
        Classification {
            task: model.tasks[best].clone(),
            confidence: p,
            explanation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, task: &str) -> Example {
        Example {
            text: text.into(),
            task: task.into(),
        }
    }

    fn corpus() -> Vec<Example> {
        let mut v = Vec::new();
        for (a, b) in [
            (
                "loved this movie, wonderful acting",
                "terrible film, boring plot",
            ),
            (
                "great product, works perfectly",
                "awful service, never again",
            ),
            (
                "the food was delicious and the staff friendly",
                "cold food and rude waiter",
            ),
            ("an enjoyable, moving story", "a dull and pointless sequel"),
        ] {
            v.push(ex(
                &format!("Classify the sentiment of this review: {a}"),
                "sentiment",
            ));
            v.push(ex(
                &format!("Is this review positive or negative? {b}"),
                "sentiment",
            ));
        }
        for q in [
            "Translate to French: good morning, how are you?",
            "Translate this sentence into German: the weather is nice",
            "Please translate to Spanish: where is the train station",
            "Translate into Italian: I would like a coffee",
            "translate the following text to Portuguese: thank you very much",
        ] {
            v.push(ex(q, "translation"));
        }
        for q in [
            "What is 12 times 7 plus 3?",
            "Solve: a train travels 60 miles per hour for 3 hours, how far does it go?",
            "If John has 5 apples and gives away 2, how many are left?",
            "Compute the sum of 45 and 38, then divide by 2",
            "A shop sells pens at 3 dollars each; how much do 9 pens cost?",
        ] {
            v.push(ex(q, "math"));
        }
        v
    }

    #[test]
    fn train_classify_round_trip_through_a_file() {
        let model = train(&corpus(), &TrainOptions::default()).unwrap();
        assert_eq!(model.tasks, vec!["math", "sentiment", "translation"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        model.save(&path).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert_eq!(loaded, model);
        let c = Classifier {
            rules: vec![],
            model: Some(loaded),
            threshold: 0.4,
        };
        let got = c.classify("Translate to Dutch: see you tomorrow");
        assert_eq!(got.task, "translation", "{got:?}");
        assert!(
            got.explanation.contains("translation p=") && got.explanation.contains("n-grams"),
            "{}",
            got.explanation
        );
        assert_eq!(
            c.classify("Is this review positive or negative? boring and awful")
                .task,
            "sentiment"
        );
        assert_eq!(
            c.classify("If Mary has 8 pens and buys 4 more, how many pens?")
                .task,
            "math"
        );
    }

    #[test]
    fn training_is_deterministic() {
        let a = train(&corpus(), &TrainOptions::default()).unwrap();
        let b = train(&corpus(), &TrainOptions::default()).unwrap();
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    #[test]
    fn low_confidence_is_unknown_and_rules_win() {
        let model = train(&corpus(), &TrainOptions::default()).unwrap();
        let strict = Classifier {
            rules: vec![],
            model: Some(model.clone()),
            threshold: 0.999,
        };
        let got = strict.classify("zebra quantum lattice");
        assert_eq!(got.task, UNKNOWN_TASK);
        assert!(got.explanation.contains("below threshold"));
        let rules = Classifier {
            rules: vec![TaskRule::new("ner", "extraction", &["extract".into()], None).unwrap()],
            model: Some(model),
            threshold: 0.5,
        };
        let got = rules.classify("Please EXTRACT the names from: translate to French");
        assert_eq!(got.task, "extraction");
        assert_eq!(got.confidence, 1.0);
        assert!(got.explanation.contains("\"ner\""));
    }

    #[test]
    fn bad_inputs_are_named() {
        assert!(matches!(
            train(&[ex("a", "x"), ex("b", "x")], &TrainOptions::default()),
            Err(ClassifierError::Training(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, "{\"text\":\"a\",\"task\":\"x\"}\n{\"text\":1}\n").unwrap();
        let err = read_examples(&path).unwrap_err().to_string();
        assert!(err.contains("data.jsonl:2:"), "{err}");
        assert!(TaskRule::new("r", "t", &[], None).is_err());
        assert!(TaskRule::new("r", "t", &[], Some("(")).is_err());
    }
}
