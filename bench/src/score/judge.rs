//! LLM-as-judge, MT-Bench style single-answer grading: a rubric prompt asks a judge model to
//! rate the answer 1–10 and to write the rating as `[[N]]`; the score is (N − 1) / 9.
//!
//! The prompt is our own wording of the single-answer grading set-up (an impartial judge,
//! explanation first, then the rating in double brackets), with the reference answer included
//! when the scenario has an expected answer. [`Judges`] holds the targets that grade: the
//! suite's default judge and any named ones.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use backends::{ChatMessage, ChatRequest, Role};
use regex::Regex;
use serde_json::json;

use super::{ScoreInput, ScoreResult};
use crate::target::Target;

/// Judge targets for `judge` scorers: the suite default and any named ones.
#[derive(Clone, Default)]
pub struct Judges {
    /// The judge used when a scorer names none: the suite's `judge` (or `--judge`) target.
    pub default: Option<Arc<dyn Target>>,
    /// Every run target by name, for scorers whose `judge:` names one.
    pub named: HashMap<String, Arc<dyn Target>>,
}

impl Judges {
    /// The judge a scorer names, or the default one for `None`.
    pub fn get(&self, name: Option<&str>) -> Option<&dyn Target> {
        match name {
            Some(n) => self.named.get(n).map(|t| t.as_ref()),
            None => self.default.as_deref(),
        }
    }
}

/// A validated `judge` scorer: a judge model rates the answer 1–10 against a rubric.
#[derive(Debug, Clone)]
pub struct JudgeScorer {
    /// Judge target name; `None` means the suite's judge.
    pub target: Option<String>,
    /// Grading criteria put before the question; none: the judge's general instructions only.
    pub rubric: Option<String>,
    /// Pass when the score (rating mapped to [0, 1]) is at least this.
    pub pass_at: f64,
}

static DOUBLE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]").ok());
static SINGLE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\[\s*(\d+(?:\.\d+)?)\s*\]").ok());

/// The rating in a judge's answer: the last `[[N]]`, else the last `[N]` (MT-Bench's fallback),
/// accepted only within 1–10.
pub fn parse_rating(text: &str) -> Option<f64> {
    for re in [&DOUBLE, &SINGLE] {
        let re = re.as_ref()?;
        if let Some(c) = re.captures_iter(text).last() {
            let v: f64 = c.get(1)?.as_str().parse().ok()?;
            return (1.0..=10.0).contains(&v).then_some(v);
        }
    }
    None
}

/// The rating mapped to [0, 1].
pub fn rating_to_score(rating: f64) -> f64 {
    ((rating - 1.0) / 9.0).clamp(0.0, 1.0)
}

/// The judge request for one answer.
pub fn judge_request(
    rubric: Option<&str>,
    question: &str,
    answer: &str,
    reference: Option<&str>,
) -> ChatRequest {
    let system = "You are an impartial judge. Evaluate the quality of the AI assistant's answer \
                  to the user's question. Be objective; do not let the length of the answer \
                  sway you. First explain your evaluation briefly, then give a rating from 1 \
                  (useless) to 10 (perfect) in exactly this format: \"Rating: [[5]]\".";
    let mut user = String::new();
    if let Some(r) = rubric {
        user.push_str("[Grading criteria]\n");
        user.push_str(r);
        user.push_str("\n\n");
    }
    user.push_str("[Question]\n");
    user.push_str(question);
    user.push_str("\n\n");
    if let Some(reference) = reference {
        user.push_str("[Reference answer]\n");
        user.push_str(reference);
        user.push_str("\n\n");
    }
    user.push_str("[The assistant's answer]\n");
    user.push_str(answer);
    user.push_str("\n[End of answer]");
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, system),
            ChatMessage::new(Role::User, user),
        ],
        temperature: Some(0.0),
        max_tokens: Some(512),
        stream: Some(true),
        ..ChatRequest::default()
    }
}

impl JudgeScorer {
    /// Ask `judge` to rate the answer and map the rating to a score. Without a judge, when its
    /// request fails or when its reply holds no rating, the score is 0 and `raw` says why.
    pub async fn score(&self, input: &ScoreInput<'_>, judge: Option<&dyn Target>) -> ScoreResult {
        let fail = |reason: String| ScoreResult {
            scorer: "judge".into(),
            score: 0.0,
            passed: false,
            raw: json!({ "error": reason }),
        };
        let Some(target) = judge else {
            return fail("no judge target configured (set `judge:` in the suite)".into());
        };
        let request = judge_request(
            self.rubric.as_deref(),
            input.prompt,
            input.output,
            input.expected,
        );
        let reply = match target.send(request).await {
            Ok(r) => r,
            Err(e) => return fail(format!("judge request failed: {e}")),
        };
        let response = match backends::collect_stream(reply.events, target.name()).await {
            Ok(r) => r,
            Err(e) => return fail(format!("judge stream failed: {e}")),
        };
        let text = response.text().to_string();
        match parse_rating(&text) {
            Some(rating) => {
                let score = rating_to_score(rating);
                ScoreResult {
                    scorer: "judge".into(),
                    score,
                    passed: score >= self.pass_at,
                    raw: json!({ "rating": rating, "judgement": text }),
                }
            }
            None => ScoreResult {
                scorer: "judge".into(),
                score: 0.0,
                passed: false,
                raw: json!({ "rating": null, "judgement": text, "error": "no [[rating]] in the judgement" }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mt_bench_ratings() {
        assert_eq!(parse_rating("Good answer. Rating: [[8]]"), Some(8.0));
        assert_eq!(parse_rating("Rating: [[ 7.5 ]]"), Some(7.5));
        assert_eq!(
            parse_rating("[[3]] at first, on reflection [[4]]"),
            Some(4.0)
        );
        assert_eq!(
            parse_rating("Rating: [6]"),
            Some(6.0),
            "single-bracket fallback"
        );
        assert_eq!(parse_rating("Rating: [[11]]"), None, "out of range");
        assert_eq!(parse_rating("I'd give it an 8"), None);
        assert_eq!(parse_rating(""), None);
        assert_eq!(rating_to_score(1.0), 0.0);
        assert_eq!(rating_to_score(10.0), 1.0);
        assert!((rating_to_score(5.5) - 0.5).abs() < 1e-12);
    }
}
