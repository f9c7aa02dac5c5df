//! Measuring a model on labelled examples it was not trained on: per task, how many it got
//! right (arg-max) and how many it got right with at least the gateway's threshold (below it the
//! gateway says `unknown`), and which tasks it mistook for which.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::Model;
use super::Example;

/// A model's results on the examples of one true task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TaskScore {
    /// Examples of this task.
    pub n: usize,
    /// Classified as this task (the most probable task).
    pub correct: usize,
    /// Classified as this task with probability at or above the threshold (what the gateway
    /// routes on; below it the task is `unknown`).
    pub correct_confident: usize,
}

/// A model's results on a labelled set.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// The gateway threshold `correct_confident` was counted at.
    pub threshold: f32,
    /// Per true task.
    pub tasks: BTreeMap<String, TaskScore>,
    /// Mistakes: (true task, predicted task) → count.
    pub confusions: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Evaluation {
    /// Totals over every task.
    pub fn total(&self) -> TaskScore {
        self.tasks
            .values()
            .fold(TaskScore::default(), |a, s| TaskScore {
                n: a.n + s.n,
                correct: a.correct + s.correct,
                correct_confident: a.correct_confident + s.correct_confident,
            })
    }
}

/// Classify every example with `model` and count, per true task.
pub fn evaluate<'a>(
    model: &Model,
    threshold: f32,
    examples: impl IntoIterator<Item = &'a Example>,
) -> Evaluation {
    evaluate_with(threshold, examples, |e| {
        let (task, p) = model.predict(&e.text);
        (task.to_string(), p)
    })
}

/// Count, per true task, the answers of any model: `predict` gives the most probable task of
/// an example and its probability (the embedding classifier's vectors come from an engine, so
/// its caller predicts first and looks the answers up here).
pub fn evaluate_with<'a>(
    threshold: f32,
    examples: impl IntoIterator<Item = &'a Example>,
    mut predict: impl FnMut(&Example) -> (String, f32),
) -> Evaluation {
    let mut out = Evaluation {
        threshold,
        ..Evaluation::default()
    };
    for e in examples {
        let (predicted, p) = predict(e);
        let score = out.tasks.entry(e.task.clone()).or_default();
        score.n += 1;
        if predicted == e.task {
            score.correct += 1;
            if p >= threshold {
                score.correct_confident += 1;
            }
        } else {
            *out.confusions
                .entry(e.task.clone())
                .or_default()
                .entry(predicted)
                .or_default() += 1;
        }
    }
    out
}
