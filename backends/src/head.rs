//! A classifier head over sentence embeddings: a multinomial logistic regression (softmax, L2)
//! from an encoder's unit-length vectors to a task's labels (`positive`/`negative`, ten
//! banking intents, …). Pure code — training, prediction and the JSON file — so the router,
//! the harness and `triage route train` share it without the local engine; the backend that
//! runs it on [`crate::embed::EmbeddingEngine`] vectors is [`crate::classifier`].
//!
//! Why hand-written: the model is a dense `labels × dims` matrix fitted on a few hundred
//! 384-dimensional vectors; full-batch gradient descent with Nesterov momentum is ~60 lines,
//! deterministic (no shuffling, no seed: the same examples give the same file on every machine)
//! and needs no linear-algebra dependency. Features are standardised for the fit (each
//! dimension centred and scaled to unit variance, which makes gradient descent converge in a
//! few hundred steps) and the scaling is folded back into the weights, so the saved head reads
//! raw unit embeddings.
//!
//! A head is tied to the encoder that produced its training vectors: the file records the
//! model file's name, SHA-256 and width, and [`Head::check_encoder`] refuses another encoder
//! with an error naming both. The text a head reads is [`classifier_text`] of the request, the
//! one function training and serving both call.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{ChatRequest, Role};

/// Format tag written into head files.
pub const HEAD_FORMAT: &str = "triage-encoder-head/1";

/// Why a head could not be trained, read, written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// A head file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a head of this format, or its shapes do not agree.
    #[error("{path}: not an encoder head: {message}")]
    BadHead {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The examples cannot train a head (fewer than 2 labels, vectors of unequal width, …).
    #[error("cannot train the head: {0}")]
    Training(String),
    /// The head was trained on another encoder's vectors.
    #[error("head {head} was trained on {trained} but the encoder is {actual}")]
    WrongEncoder {
        /// The head (its task or file).
        head: String,
        /// The encoder recorded in the head.
        trained: String,
        /// The encoder it was given.
        actual: String,
    },
}

/// Which encoder produced the vectors a head reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderId {
    /// The GGUF file's name (no directory), e.g. `all-MiniLM-L6-v2.gguf`.
    pub file: String,
    /// The GGUF file's SHA-256, lowercase hex.
    pub sha256: String,
    /// Width of its vectors.
    pub dims: usize,
}

impl EncoderId {
    /// Identify the encoder in `path` (hashes the file: a fraction of a second for MiniLM).
    pub fn of_file(path: &Path, dims: usize) -> Result<EncoderId, HeadError> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let io = |source| HeadError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(EncoderId {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256,
            dims,
        })
    }
}

impl std::fmt::Display for EncoderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = self.sha256.get(..12).unwrap_or(&self.sha256);
        write!(f, "{} ({} dims, sha256 {short}…)", self.file, self.dims)
    }
}

/// A trained head: per label a weight vector over the embedding's dimensions and a bias.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Always [`HEAD_FORMAT`]; checked when a file is read.
    pub format: String,
    /// The task the head answers (`sentiment`, `intent`, …).
    pub task: String,
    /// The encoder whose vectors it reads.
    pub encoder: EncoderId,
    /// The labels, in the order of `weights` and `bias`.
    pub labels: Vec<String>,
    /// `weights[label][dim]`.
    pub weights: Vec<Vec<f32>>,
    /// Per-label intercept.
    pub bias: Vec<f32>,
    /// Training examples per label.
    pub trained_on: BTreeMap<String, usize>,
    /// The L2 strength it was trained with.
    pub l2: f32,
}

/// Training knobs.
#[derive(Clone, Debug)]
pub struct HeadOptions {
    /// Full-batch gradient steps (default 400).
    pub steps: usize,
    /// L2 penalty on the (standardised) weights, added to the mean cross-entropy as
    /// `l2/2 · ‖W‖²` (default 0.01).
    pub l2: f32,
    /// Labels the head must answer besides its examples' (every choice its task offers): a
    /// label without an example gets a low probability, yet a request offering it is answered
    /// rather than refused. A small training half need not hold every label.
    pub known_labels: Vec<String>,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self {
            steps: 400,
            l2: 0.01,
            known_labels: Vec::new(),
        }
    }
}

/// The text a head reads for a request: the last user message (the item the harness rendered,
/// or what a client asked), without the system prompt or few-shot turns. Training renders each
/// labelled item into the same request and calls this, so train and serve see the same text.
pub fn classifier_text(request: &ChatRequest) -> Option<String> {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.text())
        .filter(|t| !t.trim().is_empty())
}

/// `softmax(scores)` in place.
fn softmax(scores: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    if sum > 0.0 {
        for s in scores.iter_mut() {
            *s /= sum;
        }
    }
}

/// Train a head for `task` on `(vector, label)` examples.
pub fn train_head(
    task: &str,
    encoder: EncoderId,
    examples: &[(Vec<f32>, String)],
    options: &HeadOptions,
) -> Result<Head, HeadError> {
    let mut labels: Vec<String> = examples.iter().map(|(_, l)| l.clone()).collect();
    labels.sort();
    labels.dedup();
    if labels.len() < 2 {
        return Err(HeadError::Training(format!(
            "need examples of at least 2 labels, got {} example(s) of {} label(s)",
            examples.len(),
            labels.len()
        )));
    }
    labels.extend(options.known_labels.iter().cloned());
    labels.sort();
    labels.dedup();
    let d = encoder.dims;
    if let Some((v, _)) = examples.iter().find(|(v, _)| v.len() != d) {
        return Err(HeadError::Training(format!(
            "a vector has {} dimensions, the encoder {d}",
            v.len()
        )));
    }
    let k = labels.len();
    let n = examples.len() as f64;
    let y: Vec<usize> = examples
        .iter()
        .map(|(_, l)| labels.binary_search(l).unwrap_or(0))
        .collect();
    // Standardise each dimension (centre, unit variance) for a well-conditioned fit.
    let mut mean = vec![0.0f64; d];
    for (v, _) in examples {
        for (m, x) in mean.iter_mut().zip(v) {
            *m += f64::from(*x) / n;
        }
    }
    let mut scale = vec![0.0f64; d];
    for (v, _) in examples {
        for ((s, m), x) in scale.iter_mut().zip(&mean).zip(v) {
            *s += (f64::from(*x) - m).powi(2) / n;
        }
    }
    for s in &mut scale {
        *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
    }
    let xs: Vec<Vec<f64>> = examples
        .iter()
        .map(|(v, _)| {
            v.iter()
                .zip(mean.iter().zip(&scale))
                .map(|(x, (m, s))| (f64::from(*x) - m) / s)
                .collect()
        })
        .collect();
    // Nesterov-accelerated full-batch gradient descent on the mean cross-entropy + L2, with
    // the step 1/L: the softmax loss's curvature is at most half the largest eigenvalue of
    // XᵀX/n (found by power iteration; the bias column adds 1), plus the L2 term.
    let l2 = f64::from(options.l2.max(0.0));
    let lr = 1.0 / (0.5 * (largest_eigenvalue(&xs) + 1.0) + l2);
    let size = k * (d + 1);
    let mut w = vec![0.0f64; size];
    let mut previous = w.clone();
    let mut grad = vec![0.0f64; size];
    let mut probs = vec![0.0f64; k];
    for step in 0..options.steps {
        let momentum = step as f64 / (step as f64 + 3.0);
        let look: Vec<f64> = w
            .iter()
            .zip(&previous)
            .map(|(a, b)| a + momentum * (a - b))
            .collect();
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (x, &label) in xs.iter().zip(&y) {
            for (c, p) in probs.iter_mut().enumerate() {
                let row = &look[c * (d + 1)..(c + 1) * (d + 1)];
                *p = row[d] + row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
            }
            softmax(&mut probs);
            for (c, p) in probs.iter().enumerate() {
                let g = (p - if c == label { 1.0 } else { 0.0 }) / n;
                let row = &mut grad[c * (d + 1)..(c + 1) * (d + 1)];
                for (gi, xi) in row.iter_mut().zip(x) {
                    *gi += g * xi;
                }
                row[d] += g;
            }
        }
        previous.clone_from(&w);
        for (i, (wi, gi)) in w.iter_mut().zip(&grad).enumerate() {
            let penalty = if i % (d + 1) == d { 0.0 } else { l2 };
            *wi = look[i] - lr * (gi + penalty * look[i]);
        }
    }
    // Fold the standardisation into the weights: w·(x−m)/s + b = (w/s)·x + (b − Σ w·m/s).
    let mut weights = Vec::with_capacity(k);
    let mut bias = Vec::with_capacity(k);
    for c in 0..k {
        let row = &w[c * (d + 1)..(c + 1) * (d + 1)];
        let folded: Vec<f64> = row[..d].iter().zip(&scale).map(|(a, s)| a / s).collect();
        let shift: f64 = folded.iter().zip(&mean).map(|(a, m)| a * m).sum();
        bias.push(round6(row[d] - shift));
        weights.push(folded.into_iter().map(round6).collect());
    }
    let mut trained_on = BTreeMap::new();
    for (_, l) in examples {
        *trained_on.entry(l.clone()).or_insert(0) += 1;
    }
    Ok(Head {
        format: HEAD_FORMAT.to_string(),
        task: task.to_string(),
        encoder,
        labels,
        weights,
        bias,
        trained_on,
        l2: options.l2,
    })
}

/// The largest eigenvalue of XᵀX/n for the rows `xs` (power iteration from a fixed start).
fn largest_eigenvalue(xs: &[Vec<f64>]) -> f64 {
    let d = xs.first().map_or(0, Vec::len);
    let n = xs.len().max(1) as f64;
    let mut v = vec![1.0 / (d.max(1) as f64).sqrt(); d];
    let mut lambda = 0.0;
    for _ in 0..50 {
        let mut next = vec![0.0f64; d];
        for x in xs {
            let dot: f64 = x.iter().zip(&v).map(|(a, b)| a * b).sum();
            for (o, a) in next.iter_mut().zip(x) {
                *o += dot * a / n;
            }
        }
        let norm = next.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm <= 0.0 {
            return 0.0;
        }
        lambda = norm;
        v = next.into_iter().map(|a| a / norm).collect();
    }
    lambda
}

/// Six decimals keep the JSON small and the file identical across runs.
fn round6(x: f64) -> f32 {
    ((x * 1e6).round() / 1e6) as f32
}

impl Head {
    /// Probability of every label for `vector`, in `self.labels` order.
    pub fn probabilities(&self, vector: &[f32]) -> Vec<f64> {
        let mut scores: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| {
                f64::from(*b)
                    + w.iter()
                        .zip(vector)
                        .map(|(a, x)| f64::from(*a) * f64::from(*x))
                        .sum::<f64>()
            })
            .collect();
        softmax(&mut scores);
        scores
    }

    /// The probability of each of `choices` (renormalised over them), in their order; an error
    /// naming the labels when one is not a label of this head.
    pub fn choice_probabilities(
        &self,
        vector: &[f32],
        choices: &[String],
    ) -> Result<Vec<f64>, String> {
        let positions = self.positions(choices)?;
        let all = self.probabilities(vector);
        let picked: Vec<f64> = positions
            .iter()
            .map(|&i| all.get(i).copied().unwrap_or(0.0))
            .collect();
        let sum: f64 = picked.iter().sum();
        Ok(if sum > 0.0 {
            picked.iter().map(|p| p / sum).collect()
        } else {
            vec![1.0 / picked.len().max(1) as f64; picked.len()]
        })
    }

    /// Whether every one of `choices` is a label of this head.
    pub fn knows(&self, choices: &[String]) -> bool {
        self.positions(choices).is_ok()
    }

    fn positions(&self, choices: &[String]) -> Result<Vec<usize>, String> {
        choices
            .iter()
            .map(|c| {
                self.labels.iter().position(|l| l == c).ok_or_else(|| {
                    format!(
                        "choice `{c}` is not a label of the `{}` head (labels: {})",
                        self.task,
                        self.labels.join(", ")
                    )
                })
            })
            .collect()
    }

    /// Refuse an encoder other than the one the head was trained on (file hash, or width).
    pub fn check_encoder(&self, actual: &EncoderId) -> Result<(), HeadError> {
        if self.encoder.sha256 != actual.sha256 || self.encoder.dims != actual.dims {
            return Err(HeadError::WrongEncoder {
                head: self.task.clone(),
                trained: self.encoder.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Write the head as JSON, creating the parent directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), HeadError> {
        let io = |source| HeadError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let json = serde_json::to_string(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(path, json).map_err(io)
    }

    /// Read a head written by [`Head::save`], checking its format and shapes.
    pub fn load(path: &Path) -> Result<Head, HeadError> {
        let text = std::fs::read_to_string(path).map_err(|source| HeadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let bad = |message: String| HeadError::BadHead {
            path: path.display().to_string(),
            message,
        };
        let head: Head = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if head.format != HEAD_FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {HEAD_FORMAT:?}",
                head.format
            )));
        }
        let k = head.labels.len();
        if k < 2
            || head.bias.len() != k
            || head.weights.len() != k
            || head.weights.iter().any(|w| w.len() != head.encoder.dims)
        {
            return Err(bad(format!(
                "weights do not match {k} labels × {} dimensions",
                head.encoder.dims
            )));
        }
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder(dims: usize) -> EncoderId {
        EncoderId {
            file: "enc.gguf".into(),
            sha256: "ab".repeat(32),
            dims,
        }
    }

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// Three labels, each a noisy cluster around its own direction (a fixed pseudo-random
    /// noise, so the test is deterministic).
    fn clusters(per_label: usize, dims: usize, salt: u64) -> Vec<(Vec<f32>, String)> {
        let mut state = 0x1234_5678_u64 ^ salt;
        let mut noise = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let mut out = Vec::new();
        for (c, label) in ["a", "b", "c"].iter().enumerate() {
            for _ in 0..per_label {
                let v: Vec<f32> = (0..dims)
                    .map(|i| if i == c { 1.0 } else { 0.0 } + 0.6 * noise())
                    .collect();
                out.push((unit(v), label.to_string()));
            }
        }
        out
    }

    #[test]
    fn separable_clusters_are_learned_and_held_out_points_classified() {
        let train = clusters(20, 8, 1);
        let head = train_head("t", encoder(8), &train, &HeadOptions::default()).unwrap();
        assert_eq!(head.labels, ["a", "b", "c"]);
        let held = clusters(10, 8, 2);
        let right = held
            .iter()
            .filter(|(v, label)| {
                let p = head.probabilities(v);
                let best = (0..p.len()).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap();
                head.labels[best] == *label
            })
            .count();
        assert!(right >= 28, "{right} of 30 held-out points right");
        let p = head.probabilities(&unit(vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]));
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(p[0] > 0.8, "{p:?}");
    }

    #[test]
    fn training_is_deterministic_and_round_trips_through_a_file() {
        let train = clusters(10, 6, 3);
        let a = train_head("t", encoder(6), &train, &HeadOptions::default()).unwrap();
        let b = train_head("t", encoder(6), &train, &HeadOptions::default()).unwrap();
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let dir = tempfile_dir();
        let path = dir.join("head.json");
        a.save(&path).unwrap();
        assert_eq!(Head::load(&path).unwrap(), a);
        std::fs::write(&path, r#"{"format":"other"}"#).unwrap();
        assert!(matches!(Head::load(&path), Err(HeadError::BadHead { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn choices_are_renormalised_and_unknown_labels_or_encoders_refused() {
        let head = train_head(
            "t",
            encoder(6),
            &clusters(10, 6, 4),
            &HeadOptions::default(),
        )
        .unwrap();
        let v = unit(vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let two = head
            .choice_probabilities(&v, &["c".into(), "b".into()])
            .unwrap();
        assert!((two.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(two[1] > two[0]);
        let err = head
            .choice_probabilities(&v, &["b".into(), "zebra".into()])
            .unwrap_err();
        assert!(err.contains("zebra") && err.contains("a, b, c"), "{err}");
        assert!(!head.knows(&["zebra".into()]));
        let mut other = encoder(6);
        other.sha256 = "cd".repeat(32);
        let err = head.check_encoder(&other).unwrap_err().to_string();
        assert!(err.contains("enc.gguf"), "{err}");
        assert!(head.check_encoder(&encoder(6)).is_ok());
    }

    #[test]
    fn one_label_or_ragged_vectors_cannot_train() {
        let one = vec![(vec![1.0, 0.0], "a".to_string())];
        assert!(train_head("t", encoder(2), &one, &HeadOptions::default()).is_err());
        let ragged = vec![(vec![1.0], "a".to_string()), (vec![0.0, 1.0], "b".into())];
        assert!(train_head("t", encoder(2), &ragged, &HeadOptions::default()).is_err());
    }

    /// A label of the task without examples is still a label of the head: a request offering
    /// it is answered, and the examples' labels win on their own vectors.
    #[test]
    fn known_labels_without_examples_are_answerable() {
        let train: Vec<(Vec<f32>, String)> = (0..20)
            .map(|i| {
                let x = if i % 2 == 0 { 1.0 } else { -1.0 };
                (
                    vec![x, 0.1 * (i as f32 % 3.0)],
                    if x > 0.0 { "a" } else { "b" }.to_string(),
                )
            })
            .collect();
        let options = HeadOptions {
            known_labels: vec!["a".into(), "b".into(), "c".into()],
            ..HeadOptions::default()
        };
        let head = train_head("t", encoder(2), &train, &options).unwrap();
        assert_eq!(head.labels, ["a", "b", "c"]);
        let choices = ["a".to_string(), "b".to_string(), "c".to_string()];
        let p = head.choice_probabilities(&[1.0, 0.0], &choices).unwrap();
        assert!(p[0] > p[1] && p[0] > p[2], "{p:?}");
    }

    #[test]
    fn the_text_is_the_last_user_message() {
        use crate::ChatMessage;
        let mut r = ChatRequest::user("m", "first");
        r.messages.insert(0, ChatMessage::new(Role::System, "sys"));
        r.messages.push(ChatMessage::new(Role::Assistant, "ok"));
        r.messages.push(ChatMessage::new(Role::User, "the item"));
        assert_eq!(classifier_text(&r).as_deref(), Some("the item"));
        let empty = ChatRequest::default();
        assert_eq!(classifier_text(&empty), None);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "triage-head-{}-{}",
            std::process::id(),
            crate::new_completion_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
