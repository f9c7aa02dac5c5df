//! The task classifier's second kind of learned model (`classifier: { kind: embedding }`): a
//! [`backends::head::Head`] whose labels are the tasks, over the sentence vectors of the same
//! in-process encoder (all-MiniLM-L6-v2) that `kind: embedding` and `kind: classifier`
//! backends run.
//!
//! Why a head and not a second regression: the head (softmax regression, the encoder's SHA-256
//! recorded in the file) is already trained, saved and checked by `backends::head`; a task
//! classifier is one head whose "labels" are task names. What this module adds is what the
//! router needs around it: which encoder file to load (`encoder`), and turning a vector — or
//! the reason there is none (encoder overloaded, not loaded) — into a [`Classification`].
//!
//! The text embedded is the same text the n-gram model reads ([`backends::ChatRequest::all_text`]),
//! cut to the encoder's input limit by [`backends::embed::EmbeddingEngine::embed_prefix`]:
//! the system prompt and first turns come first, and they carry most of a request's
//! instruction.

use std::fmt::Write as _;
use std::path::PathBuf;

use backends::head::Head;

use super::{Classification, Decider, UNKNOWN_TASK};

/// The `task` a task-classifier head records (a `kind: classifier` backend's heads record the
/// task they answer, `sentiment`, …): its labels are task names.
pub const TASK_HEAD: &str = "task-classifier";

/// A task head and the encoder it reads.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingModel {
    /// The head: its `labels` are task names.
    pub head: Head,
    /// The encoder GGUF the head was trained on (checked by SHA-256 when the config loads).
    pub encoder: PathBuf,
}

impl EmbeddingModel {
    /// The task of a text whose sentence vector is `vector` (most probable label), or
    /// `unknown` below `threshold`. The explanation names the classifier, the probability and
    /// the runner-up.
    pub fn classify_vector(&self, vector: &[f32], threshold: f32) -> Classification {
        let probs = self.head.probabilities(vector);
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let Some((&best, rest)) = order.split_first() else {
            return Classification::nothing("the embedding task head has no labels".into());
        };
        let task = self.head.labels.get(best).cloned().unwrap_or_default();
        let p = probs.get(best).copied().unwrap_or(0.0) as f32;
        let mut explanation = format!("embedding model: {task} p={p:.2}");
        if let Some(&second) = rest.first() {
            let _ = write!(
                explanation,
                " (next: {} p={:.2})",
                self.head.labels.get(second).map_or("-", String::as_str),
                probs.get(second).copied().unwrap_or(0.0)
            );
        }
        if p < threshold {
            let _ = write!(explanation, "; below threshold {threshold:.2} → unknown");
            return Classification {
                task: UNKNOWN_TASK.into(),
                confidence: p,
                explanation,
                decided_by: Decider::Embedding,
            };
        }
        Classification {
            task,
            confidence: p,
            explanation,
            decided_by: Decider::Embedding,
        }
    }
}
