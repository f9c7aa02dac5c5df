//! Whether a cascade keeps its first (small-model) answer.
//!
//! Confidence is the geometric-mean probability of the answer's tokens, `exp(mean logprob)`, a
//! number in (0, 1] comparable with `min_confidence`; optionally the least likely token must
//! also clear `min_token_prob`. When the request constrains the answer (`choices`, or a JSON
//! `response_format`), an answer violating the constraint is never accepted, and an answer
//! without token log-probabilities is accepted only if it satisfies such a constraint.

use backends::{ChatRequest, ChatResponse, ResponseFormat};

use super::core::CascadePlan;

/// The outcome of judging a first answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub accept: bool,
    pub confidence: Option<f64>,
    pub why: String,
}

/// Geometric-mean token probability and least token probability of `logprobs`.
pub fn confidence(logprobs: &[f32]) -> Option<(f64, f64)> {
    if logprobs.is_empty() {
        return None;
    }
    let mean = logprobs.iter().map(|&l| f64::from(l)).sum::<f64>() / logprobs.len() as f64;
    let min = logprobs
        .iter()
        .map(|&l| f64::from(l))
        .fold(f64::INFINITY, f64::min);
    Some((mean.exp(), min.exp()))
}

/// Whether the answer satisfies the request's own constraint; `None` when it has none.
fn constraint_satisfied(request: &ChatRequest, answer: &str) -> Option<bool> {
    if let Some(choices) = &request.choices {
        let a = answer.trim();
        return Some(choices.iter().any(|c| c.trim() == a));
    }
    match &request.response_format {
        Some(ResponseFormat::JsonObject) | Some(ResponseFormat::JsonSchema { .. }) => {
            Some(serde_json::from_str::<serde_json::Value>(answer.trim()).is_ok())
        }
        _ => None,
    }
}

/// Judge the first answer of a cascade.
pub fn judge(plan: &CascadePlan, request: &ChatRequest, answer: &ChatResponse) -> Verdict {
    let constraint = constraint_satisfied(request, answer.text());
    if constraint == Some(false) {
        return Verdict {
            accept: false,
            confidence: confidence(&answer.token_logprobs).map(|c| c.0),
            why: "answer violates the request's choices/JSON constraint".into(),
        };
    }
    match confidence(&answer.token_logprobs) {
        Some((mean, min)) => {
            let min_ok = plan.min_token_prob.is_none_or(|t| min >= t);
            let accept = mean >= plan.min_confidence && min_ok;
            Verdict {
                accept,
                confidence: Some(mean),
                why: format!(
                    "confidence {mean:.3} {} {:.3}{}",
                    if mean >= plan.min_confidence {
                        ">="
                    } else {
                        "<"
                    },
                    plan.min_confidence,
                    match plan.min_token_prob {
                        Some(t) => format!(", least token prob {min:.3} vs {t:.3}"),
                        None => String::new(),
                    }
                ),
            }
        }
        None => Verdict {
            accept: constraint == Some(true),
            confidence: None,
            why: if constraint == Some(true) {
                "no token log-probabilities; answer satisfies the request's constraint".into()
            } else {
                "no token log-probabilities and no constraint to check".into()
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backends::{Choice, ResponseMessage};

    fn answer(text: &str, logprobs: Vec<f32>) -> ChatResponse {
        ChatResponse {
            choices: vec![Choice {
                message: ResponseMessage {
                    content: Some(text.into()),
                    ..Default::default()
                },
                ..Default::default()
            }],
            token_logprobs: logprobs,
            ..Default::default()
        }
    }

    fn plan(min: f64) -> CascadePlan {
        CascadePlan {
            first: "slm".into(),
            escalate_to: "llm".into(),
            min_confidence: min,
            min_token_prob: None,
        }
    }

    #[test]
    fn accepts_confident_and_escalates_unsure_answers() {
        let req = ChatRequest::user("auto", "hi");
        let sure = judge(&plan(0.6), &req, &answer("yes", vec![-0.1, -0.05]));
        assert!(sure.accept, "{sure:?}");
        let unsure = judge(&plan(0.6), &req, &answer("yes", vec![-2.0, -1.5]));
        assert!(!unsure.accept);
        assert!(unsure.confidence.unwrap() < 0.6);
    }

    #[test]
    fn choices_constraint_gates_acceptance() {
        let mut req = ChatRequest::user("auto", "sentiment?");
        req.choices = Some(vec!["positive".into(), "negative".into()]);
        assert!(!judge(&plan(0.1), &req, &answer("maybe", vec![-0.01])).accept);
        assert!(judge(&plan(0.1), &req, &answer(" positive", vec![])).accept);
        let no_lp = judge(
            &plan(0.1),
            &ChatRequest::user("auto", "x"),
            &answer("y", vec![]),
        );
        assert!(!no_lp.accept);
    }
}
