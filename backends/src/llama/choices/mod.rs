//! `choices` answered by scoring instead of by grammar: every choice is scored as a complete
//! continuation of the prompt, and the answer is the most probable one.
//!
//! Generating under a `"a" | "b"` grammar made a small model collapse onto one label (issue 13):
//! the grammar forbids the leading space or newline the model wants to write first, so greedy
//! decoding picks among tokens the model finds unlikely. Scoring asks the model instead how likely
//! each complete answer is. A choice may be written several ways (as listed, lowercase,
//! Capitalized; bare, after a space, after a newline): each way is a *variant*, tokenized without
//! BOS, followed by the tokens that end an answer ([`AnswerEnd`]), so the score is the
//! probability of the answer and nothing after it — a choice that is a prefix of another ("no",
//! "no way") is told apart by whether the model wants to stop. A choice's log-score is the
//! log-sum-exp over its variants; the softmax over choices is the [`Signals`] distribution.
//!
//! [`ChoiceScoring`] is the engine's progress through one request: the prompt's last logits row
//! gives every variant's first token; then each engine step feeds up to `lanes` variants at once,
//! each in a lane (a KV sequence of its own that shares the prompt's cells), all with logits, and
//! reads their log-probabilities; a finished variant's lane is cleared and takes the next one.
//! So all choices are scored in a few batched steps, not one step per variant.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::logits::{token_logprob, LogSoftmax};
use super::prompt::PromptFormat;
use super::signals::{choice_signals, logsumexp, pick_choice};
use crate::types::Signals;

/// The ways each choice may be written, as (choice index, text): the choice as listed, its
/// lowercase and Capitalized forms when they differ (unless such a form is itself another listed
/// choice), each bare, after a space and after a newline.
pub fn variant_texts(choices: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, choice) in choices.iter().enumerate() {
        let mut forms = vec![choice.clone()];
        for form in [choice.to_lowercase(), capitalized(choice)] {
            let is_other_choice = choices
                .iter()
                .enumerate()
                .any(|(j, c)| j != i && *c == form);
            if !forms.contains(&form) && !is_other_choice {
                forms.push(form);
            }
        }
        for form in &forms {
            for prefix in ["", " ", "\n"] {
                out.push((i, format!("{prefix}{form}")));
            }
        }
    }
    out
}

/// First character uppercase, the rest lowercase.
fn capitalized(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// How a scored answer ends, decided once per model and prompt format.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AnswerEnd {
    /// These tokens: the end-of-turn token the chat format writes right after an answer (found
    /// by rendering one; the GGUF's EOT is not reliable — SmolLM2's names `<|endoftext|>` while
    /// its turns end with `<|im_end|>`), else a fallback format's turn marker as text, else EOS.
    Tokens(Vec<LlamaToken>),
    /// Completion text: the blank line that ends an answer block
    /// ([`super::completion::ANSWER_END`]).
    Completion,
    /// Recurrent and hybrid models cannot drop a scored variant from their state: they keep the
    /// `choices` grammar.
    Unsupported,
}

impl AnswerEnd {
    pub(super) fn for_model(model: &LlamaModel, format: &PromptFormat) -> Self {
        if model.is_recurrent() || model.is_hybrid() {
            return AnswerEnd::Unsupported;
        }
        if matches!(format, PromptFormat::Completion) {
            return AnswerEnd::Completion;
        }
        let vocab = model.vocab();
        let written = format
            .text_after_answer(model)
            .and_then(|after| {
                vocab
                    .tokenize(after.as_bytes(), false, true)
                    .first()
                    .copied()
            })
            .filter(|&t| valid_token(model, t) && vocab.is_eog(t));
        let end = match (written, format.turn_stops().first()) {
            (Some(token), _) => vec![token],
            (None, Some(marker)) => vocab.tokenize(marker.as_bytes(), false, true),
            (None, None) => vec![vocab.eos()],
        };
        if !end.is_empty() && end.iter().all(|&t| valid_token(model, t)) {
            AnswerEnd::Tokens(end)
        } else {
            AnswerEnd::Unsupported
        }
    }

    /// The end tokens; `None` when choices cannot be scored.
    pub(super) fn tokens(&self, model: &LlamaModel) -> Option<Vec<LlamaToken>> {
        match self {
            AnswerEnd::Tokens(end) => Some(end.clone()),
            AnswerEnd::Unsupported => None,
            AnswerEnd::Completion => {
                let end =
                    model
                        .vocab()
                        .tokenize(super::completion::ANSWER_END.as_bytes(), false, false);
                (!end.is_empty() && end.iter().all(|&t| valid_token(model, t))).then_some(end)
            }
        }
    }
}

fn valid_token(model: &LlamaModel, token: LlamaToken) -> bool {
    (0..model.n_vocab()).contains(&token.0)
}

/// One way of writing one choice, as tokens.
#[derive(Debug, Clone, PartialEq)]
struct Variant {
    choice: usize,
    /// The answer's tokens followed by the end-of-answer tokens.
    tokens: Vec<LlamaToken>,
    /// How many of `tokens` are the answer (the rest end it).
    answer_len: usize,
}

impl Variant {
    /// Tokens that must be fed after the prompt (the last one is only predicted).
    fn to_feed(&self) -> usize {
        self.tokens.len().saturating_sub(1)
    }
}

/// A request's choices with every variant tokenized, ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ChoiceSet {
    choices: Vec<String>,
    variants: Vec<Variant>,
}

impl ChoiceSet {
    /// Tokenize every variant with `tokenize` (no BOS, no special tokens) and append `end`.
    /// Variants of one choice that tokenize alike are kept once.
    pub(super) fn new(
        choices: Vec<String>,
        tokenize: impl Fn(&str) -> Vec<LlamaToken>,
        end: &[LlamaToken],
    ) -> Self {
        let mut variants: Vec<Variant> = Vec::new();
        for (choice, text) in variant_texts(&choices) {
            let answer = tokenize(&text);
            if answer.is_empty() {
                continue;
            }
            let answer_len = answer.len();
            let mut tokens = answer;
            tokens.extend_from_slice(end);
            if !variants
                .iter()
                .any(|v| v.choice == choice && v.tokens == tokens)
            {
                variants.push(Variant {
                    choice,
                    tokens,
                    answer_len,
                });
            }
        }
        Self { choices, variants }
    }

    /// KV cells the longest variant needs after the prompt.
    pub(super) fn longest_feed(&self) -> usize {
        self.variants
            .iter()
            .map(Variant::to_feed)
            .max()
            .unwrap_or(0)
    }

    /// Answer tokens of the longest variant (for the context-length error).
    pub(super) fn longest_answer(&self) -> usize {
        self.variants
            .iter()
            .map(|v| v.answer_len)
            .max()
            .unwrap_or(0)
    }
}

/// The scored answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Outcome {
    /// The chosen choice exactly as the request listed it.
    pub text: String,
    /// The answer tokens of the chosen choice's most probable variant.
    pub tokens: Vec<LlamaToken>,
    /// Their log-probabilities.
    pub token_logprobs: Vec<f32>,
    pub completion_tokens: u32,
    pub signals: Signals,
}

/// One variant's tokens for one engine step: fed at positions `offset..` after the prompt, in
/// `lane` (a KV sequence of its own that shares the prompt's cells), with a logits row for each.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Feed {
    pub lane: usize,
    /// Position after the prompt of the first token; 0 means the lane starts a new variant
    /// and must first be given the prompt's KV cells.
    pub offset: usize,
    pub tokens: Vec<LlamaToken>,
}

/// The variant a lane is feeding and how many of its tokens were fed.
#[derive(Debug, Clone, Copy)]
struct InLane {
    variant: usize,
    fed: usize,
}

/// One request's progress through its variants, inside the engine loop. Up to `lanes` variants
/// are fed in the same decode step, each in its own lane, so a request with many choices costs a
/// few batched steps rather than one step per variant.
#[derive(Debug)]
pub(super) struct ChoiceScoring {
    set: ChoiceSet,
    /// Log-probabilities read so far for each variant's tokens, in order.
    logprobs: Vec<Vec<f32>>,
    lanes: Vec<Option<InLane>>,
    /// The first variant not yet given a lane.
    next: usize,
    /// Whether the prompt's logits row was read.
    started: bool,
}

impl ChoiceScoring {
    /// Scoring that feeds at most `lanes` variants per step (at least one).
    pub(super) fn new(set: ChoiceSet, lanes: usize) -> Self {
        let logprobs = vec![Vec::new(); set.variants.len()];
        Self {
            set,
            logprobs,
            lanes: vec![None; lanes.max(1)],
            next: 0,
            started: false,
        }
    }

    pub(super) fn started(&self) -> bool {
        self.started
    }

    /// Every variant scored: [`Self::outcome`] is ready.
    pub(super) fn is_done(&self) -> bool {
        self.started
            && self.next >= self.set.variants.len()
            && self.lanes.iter().all(Option::is_none)
    }

    /// The prompt's last logits row: the log-probability of every variant's first token.
    pub(super) fn read_prompt_row(&mut self, logits: &[f32]) {
        let row = LogSoftmax::of(logits);
        for (variant, lps) in self.set.variants.iter().zip(&mut self.logprobs) {
            if let Some(&first) = variant.tokens.first() {
                lps.push(row.logprob(logits, first));
            }
        }
        self.started = true;
    }

    /// This step's feeds, at most `room` tokens in all: free lanes take the next variants (a
    /// variant with nothing to feed — one token, no end — is complete at once), then every busy
    /// lane gets its next tokens.
    pub(super) fn plan(&mut self, room: usize) -> Vec<Feed> {
        if !self.started {
            return Vec::new();
        }
        for lane in self.lanes.iter_mut().filter(|l| l.is_none()) {
            while let Some(variant) = self.set.variants.get(self.next) {
                self.next += 1;
                if variant.to_feed() > 0 {
                    *lane = Some(InLane {
                        variant: self.next - 1,
                        fed: 0,
                    });
                    break;
                }
            }
        }
        let mut left = room;
        let mut feeds = Vec::new();
        for (lane, in_lane) in self.lanes.iter().enumerate() {
            let Some(InLane { variant, fed }) = *in_lane else {
                continue;
            };
            let Some(v) = self.set.variants.get(variant) else {
                continue;
            };
            let end = v.to_feed().min(fed + left);
            if end <= fed {
                break;
            }
            left -= end - fed;
            feeds.push(Feed {
                lane,
                offset: fed,
                tokens: v.tokens[fed..end].to_vec(),
            });
        }
        feeds
    }

    /// The logits rows of what `lane` fed in the step just decoded, one per token in order.
    /// Returns true when the lane's variant is complete: the lane's KV cells must be removed
    /// before it takes the next variant.
    pub(super) fn read_lane_rows<'a>(
        &mut self,
        lane: usize,
        rows: impl IntoIterator<Item = &'a [f32]>,
    ) -> bool {
        let Some(Some(in_lane)) = self.lanes.get_mut(lane) else {
            return false;
        };
        let (Some(variant), Some(lps)) = (
            self.set.variants.get(in_lane.variant),
            self.logprobs.get_mut(in_lane.variant),
        ) else {
            return false;
        };
        for row in rows {
            let Some(&next) = variant.tokens.get(in_lane.fed + 1) else {
                break;
            };
            lps.push(token_logprob(row, next));
            in_lane.fed += 1;
        }
        if in_lane.fed < variant.to_feed() {
            return false;
        }
        self.lanes[lane] = None;
        true
    }

    /// The answer: per-choice log-scores (log-sum-exp over variants of the summed token
    /// log-probabilities), the emitted choice (arg-max, or a seeded draw at temperature > 0) and
    /// its signals. `None` before every variant is scored.
    pub(super) fn outcome(&self, temperature: f32, seed: u32) -> Option<Outcome> {
        if !self.is_done() {
            return None;
        }
        let totals: Vec<f64> = self
            .logprobs
            .iter()
            .map(|lps| lps.iter().map(|&l| f64::from(l)).sum())
            .collect();
        let log_scores: Vec<f64> = (0..self.set.choices.len())
            .map(|c| {
                let of_choice: Vec<f64> = self
                    .set
                    .variants
                    .iter()
                    .zip(&totals)
                    .filter(|(v, _)| v.choice == c)
                    .map(|(_, &t)| t)
                    .collect();
                logsumexp(&of_choice)
            })
            .collect();
        let chosen = pick_choice(&log_scores, temperature, seed)?;
        let best = (0..self.set.variants.len())
            .filter(|&i| self.set.variants[i].choice == chosen)
            .max_by(|&a, &b| totals[a].total_cmp(&totals[b]).then(b.cmp(&a)));
        let (tokens, token_logprobs, completion_tokens) = match best {
            Some(i) => {
                let variant = &self.set.variants[i];
                let n = variant.answer_len;
                (
                    variant.tokens.iter().take(n).copied().collect(),
                    self.logprobs[i].iter().take(n).copied().collect(),
                    n,
                )
            }
            None => (Vec::new(), Vec::new(), 0),
        };
        Some(Outcome {
            text: self.set.choices.get(chosen)?.clone(),
            tokens,
            token_logprobs,
            completion_tokens: completion_tokens as u32,
            signals: choice_signals(&self.set.choices, &log_scores, chosen),
        })
    }
}

#[cfg(test)]
mod tests;
