//! Task classifier: decides which task a prompt is (sentiment, qa, extraction, …) so routing
//! rules can name tasks. Fast, local and explainable:
//!
//! 1. keyword/regex rules from config are checked first, in order; a hit gives confidence 1.0
//!    and names the rule and the text that matched ([`rules`]);
//! 2. otherwise a learned model scores the text: hashed word uni/bi-gram and character
//!    3-gram features ([`features`]: FNV-1a into 2^18 buckets, log-scaled counts,
//!    L2-normalised) and a multinomial logistic regression ([`model`]) trained by deterministic
//!    stochastic gradient descent ([`train`]). The explanation lists the n-grams that pushed
//!    hardest towards the chosen task;
//!    With `kind: embedding` the learned model is instead a task head over MiniLM sentence
//!    vectors ([`embedding`]); the vector comes from the encoder thread, so the gateway awaits
//!    it before deciding ([`Classifier::classify_with`]) and falls back to `unknown`, with the
//!    reason, when the encoder cannot answer;
//! 3. below the confidence threshold the task is `unknown`.
//!
//! Models are saved as small JSON files ([`persist`]); training is reproducible (the same
//! examples in the same order give the same file) and measured on a seeded, stratified
//! held-out part ([`train::stratified_split`], [`eval`]). `triage route train` builds the
//! shipped model from the scenarios and the shared datasets. A configured model file that does
//! not exist yet leaves the classifier on its rules ([`Classifier::missing_model`]) so the gateway
//! still starts; the config loader reports it as a warning.

mod embedding;
pub mod eval;
mod features;
mod model;
mod persist;
mod rules;
pub mod train;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use embedding::{EmbeddingModel, TASK_HEAD};
pub use eval::{evaluate, evaluate_with, Evaluation, TaskScore};
pub use model::{Model, MODEL_FORMAT};
pub use persist::read_examples;
pub use rules::TaskRule;
pub use train::{seeded_shuffle, stratified_split, train, TrainOptions};

/// The task name used when nothing is confident enough.
pub const UNKNOWN_TASK: &str = "unknown";

/// Why examples, a model or a rule could not be read, or a model could not be trained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassifierError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of an examples file (JSONL) is not an example, or the file has none.
    #[error("{path}:{line}: {message}")]
    BadExample {
        /// The examples file.
        path: String,
        /// 1-based line number (0: the file as a whole).
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A model file is not JSON of the expected format.
    #[error("{path}: not a classifier model: {message}")]
    BadModel {
        /// The model file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The examples cannot train a model (fewer than 2 tasks, …).
    #[error("cannot train: {0}")]
    Training(String),
    /// A config rule has neither keywords nor a regex, or its regex does not compile.
    #[error("classifier rule {rule:?}: {message}")]
    BadRule {
        /// The rule's name (`TASK#N` when unnamed).
        rule: String,
        /// What is wrong with it.
        message: String,
    },
}

/// One labelled example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The prompt text.
    pub text: String,
    /// Its task label (`sentiment`, `qa`, …).
    pub task: String,
}

/// Which part of the classifier decided a request's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decider {
    /// A config rule matched.
    Rule,
    /// The hashed n-gram model (`kind: ngram`).
    Ngram,
    /// The task head over sentence vectors (`kind: embedding`).
    Embedding,
    /// Nothing could decide (no model, encoder unavailable): the task is `unknown`.
    Nothing,
}

impl Decider {
    /// Its name in explanations and JSON (`rule`, `ngram`, `embedding`, `nothing`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decider::Rule => "rule",
            Decider::Ngram => "ngram",
            Decider::Embedding => "embedding",
            Decider::Nothing => "nothing",
        }
    }
}

/// What the classifier decided and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    /// The task name, or `unknown`.
    pub task: String,
    /// 1.0 for a rule hit, the model's probability otherwise (0 when there is no model).
    pub confidence: f32,
    /// One line for people: the rule that matched, or the model's probability and strongest
    /// n-grams (or runner-up task), or why nothing decided.
    pub explanation: String,
    /// Which part decided.
    pub decided_by: Decider,
}

impl Classification {
    /// `unknown`, because nothing could decide, and why.
    pub fn nothing(explanation: String) -> Classification {
        Classification {
            task: UNKNOWN_TASK.into(),
            confidence: 0.0,
            explanation,
            decided_by: Decider::Nothing,
        }
    }
}

/// The learned part of a classifier: which kind of model reads the text.
#[derive(Clone, Debug, PartialEq)]
pub enum LearnedModel {
    /// Hashed word and character n-grams with a logistic regression (`kind: ngram`).
    Ngram(Model),
    /// A task head over an encoder's sentence vectors (`kind: embedding`).
    Embedding(EmbeddingModel),
}

/// Rules, then the learned model, then the threshold.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    /// Config rules, tried in order before the model.
    pub rules: Vec<TaskRule>,
    /// The learned model, when one is configured and its file exists.
    pub model: Option<LearnedModel>,
    /// Below this probability the learned model's answer becomes `unknown`.
    pub threshold: f32,
    /// The configured model file, when it did not exist at load time: the classifier runs on
    /// its rules alone and says so in every explanation.
    pub missing_model: Option<PathBuf>,
}

impl Classifier {
    /// The task of `text` without an encoder: the first rule that hits, else the n-gram
    /// model's answer (or `unknown` below the threshold). With `kind: embedding` a text no rule
    /// matches is `unknown` here, saying the encoder did not run: the gateway calls
    /// [`Classifier::classify_with`] instead when a route needs the task.
    pub fn classify(&self, text: &str) -> Classification {
        if let Some(hit) = self.rule_match(text) {
            return hit;
        }
        match &self.model {
            Some(LearnedModel::Embedding(_)) => Classification::nothing(
                "no rule matched, and the embedding classifier did not run (no route names a \
                 task, or no encoder was given)"
                    .into(),
            ),
            Some(LearnedModel::Ngram(model)) => self.classify_ngram(model, text),
            None => Classification::nothing(self.no_model_explanation()),
        }
    }

    /// The embedding model, when the classifier is `kind: embedding` and its head loaded.
    pub fn embedding(&self) -> Option<&EmbeddingModel> {
        match &self.model {
            Some(LearnedModel::Embedding(m)) => Some(m),
            _ => None,
        }
    }

    /// [`Classifier::classify`], with the sentence vector of `text` for `kind: embedding`:
    /// `vector` is awaited only when no rule matches. An encoder that could not answer
    /// (overloaded, not loaded, failed) makes the task `unknown`, with the reason.
    pub async fn classify_with<F>(&self, text: &str, vector: F) -> Classification
    where
        F: std::future::Future<Output = Result<Vec<f32>, String>>,
    {
        if let Some(hit) = self.rule_match(text) {
            return hit;
        }
        let Some(model) = self.embedding() else {
            return self.classify(text);
        };
        match vector.await {
            Ok(v) => model.classify_vector(&v, self.threshold),
            Err(why) => Classification::nothing(format!(
                "no rule matched, and the embedding classifier could not run: {why}"
            )),
        }
    }

    /// The first config rule that matches `text`.
    pub fn rule_match(&self, text: &str) -> Option<Classification> {
        self.rules.iter().find_map(|rule| {
            rule.find(text).map(|m| Classification {
                task: rule.task.clone(),
                confidence: 1.0,
                explanation: format!("rule {:?} matched {:?}", rule.name, m),
                decided_by: Decider::Rule,
            })
        })
    }

    fn no_model_explanation(&self) -> String {
        match &self.missing_model {
            Some(path) => format!(
                "no rule matched, and the learned model {} does not exist (train it: \
                 scripts/setup.sh, or triage route train)",
                path.display()
            ),
            None => "no rule matched and no learned model is configured".into(),
        }
    }

    fn classify_ngram(&self, model: &Model, text: &str) -> Classification {
        let x = features::featurize(text, model.dims_log2);
        let probs = model.probabilities_of(&x);
        let (best, p) = model::arg_max(&probs);
        let Some(task) = model.tasks.get(best) else {
            return Classification::nothing("the learned model has no tasks".into());
        };
        let mut explanation = format!("learned model: {task} p={p:.2}");
        let top = model.top_features_of(text, &x, best, 4);
        if !top.is_empty() {
            explanation.push_str(" (strongest n-grams:");
            for (_, g, m) in &top {
                let _ = write!(explanation, " {g:?} {m:+.2}");
            }
            explanation.push(')');
        }
        let task = if p < self.threshold {
            let _ = write!(
                explanation,
                "; below threshold {:.2} → unknown",
                self.threshold
            );
            UNKNOWN_TASK.to_string()
        } else {
            task.clone()
        };
        Classification {
            task,
            confidence: p,
            explanation,
            decided_by: Decider::Ngram,
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
            model: Some(LearnedModel::Ngram(loaded)),
            threshold: 0.4,
            missing_model: None,
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
            model: Some(LearnedModel::Ngram(model.clone())),
            threshold: 0.999,
            missing_model: None,
        };
        let got = strict.classify("zebra quantum lattice");
        assert_eq!(got.task, UNKNOWN_TASK);
        assert!(got.explanation.contains("below threshold"));
        let rules = Classifier {
            rules: vec![TaskRule::new("ner", "extraction", &["extract".into()], None).unwrap()],
            model: Some(LearnedModel::Ngram(model)),
            threshold: 0.5,
            missing_model: None,
        };
        let got = rules.classify("Please EXTRACT the names from: translate to French");
        assert_eq!(got.task, "extraction");
        assert_eq!(got.confidence, 1.0);
        assert!(got.explanation.contains("\"ner\""));
    }

    #[test]
    fn a_missing_model_file_leaves_the_rules_and_says_so() {
        let c = Classifier {
            rules: vec![TaskRule::new("ner", "extraction", &["extract".into()], None).unwrap()],
            model: None,
            threshold: 0.5,
            missing_model: Some(PathBuf::from("models/task-classifier.json")),
        };
        assert_eq!(c.classify("extract the dates").task, "extraction");
        let got = c.classify("Translate to French: hello");
        assert_eq!(got.task, UNKNOWN_TASK);
        assert!(
            got.explanation
                .contains("models/task-classifier.json does not exist"),
            "{}",
            got.explanation
        );
    }

    #[test]
    fn held_out_evaluation_counts_per_task() {
        let examples = corpus();
        let (kept, held) = stratified_split(examples, |e: &Example| e.task.clone(), 0.5, 1);
        let model = train(&kept, &TrainOptions::default()).unwrap();
        let eval = evaluate(&model, 0.5, &held);
        let total = eval.total();
        assert_eq!(total.n, held.len());
        assert_eq!(eval.tasks["sentiment"].n, 4);
        assert_eq!(eval.tasks["translation"].n, 2);
        assert!(total.correct_confident <= total.correct && total.correct <= total.n);
        let mistakes: usize = eval.confusions.values().flat_map(|m| m.values()).sum();
        assert_eq!(mistakes, total.n - total.correct);
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
