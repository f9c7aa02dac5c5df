//! Whether a cascade keeps its first (small-model) answer: the gateway checks the request's
//! own constraint (`choices`, or a JSON `response_format`) on the answer, gathers the answer's
//! [`Evidence`] (token log-probabilities and the engine's signals) and hands it to
//! [`CascadeSpec::judge`] (the policy's rule).

use backends::{ChatRequest, ChatResponse, ResponseFormat};

use crate::policy::{CascadeSpec, CascadeVerdict, Evidence};

/// Whether the answer satisfies the request's constraint; `None` when it has none.
pub fn constraint_satisfied(request: &ChatRequest, answer: &str) -> Option<bool> {
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
pub fn judge(spec: &CascadeSpec, request: &ChatRequest, answer: &ChatResponse) -> CascadeVerdict {
    spec.judge(&evidence(request, answer))
}

/// What the judge sees of an answer.
pub fn evidence(request: &ChatRequest, answer: &ChatResponse) -> Evidence {
    Evidence::from_answer(
        &answer.token_logprobs,
        answer.signals.as_ref(),
        constraint_satisfied(request, answer.text()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_and_json_constraints() {
        let mut req = ChatRequest::user("auto", "sentiment?");
        req.choices = Some(vec!["positive".into(), "negative".into()]);
        assert_eq!(constraint_satisfied(&req, " positive\n"), Some(true));
        assert_eq!(constraint_satisfied(&req, "maybe"), Some(false));
        let mut req = ChatRequest::user("auto", "json please");
        req.response_format = Some(ResponseFormat::JsonObject);
        assert_eq!(constraint_satisfied(&req, r#"{"a": 1}"#), Some(true));
        assert_eq!(constraint_satisfied(&req, "{nope"), Some(false));
        assert_eq!(
            constraint_satisfied(&ChatRequest::user("auto", "x"), "y"),
            None
        );
    }
}
