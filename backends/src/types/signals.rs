//! [`Signals`]: what a model knows about its own answer (choice probabilities, token
//! log-probabilities), the numbers a cascade accepts or escalates on.

use serde::{Deserialize, Serialize};

/// What a model knows about its own answer, computed where the answer is made: the numbers a
/// cascade can use to accept a small model's answer or escalate it (design notes, "Signals").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// For a `choices` request answered by scoring: every choice (as listed) with the model's
    /// probability of it as the complete answer, in request order; they sum to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_probs: Option<Vec<(String, f64)>>,
    /// Index in `choice_probs` of the emitted answer (the arg-max at temperature 0, a draw from
    /// the distribution otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<usize>,
    /// Mean log-probability of the freely chosen tokens (see `free_tokens`); `None` when there
    /// were none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f64>,
    /// Lowest log-probability among the freely chosen tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_logprob: Option<f64>,
    /// Generated tokens the model chose freely: all of them without a grammar; under a grammar
    /// (JSON schema) those where the grammar left a real choice — not when every token it
    /// allowed spells the same forced text (a key the schema demands, split one way or
    /// another). Forced tokens say nothing about the model's confidence, so the statistics
    /// leave them out. Zero for scored `choices`.
    #[serde(default)]
    pub free_tokens: u32,
}

impl Signals {
    /// Probability of the emitted choice (of the most probable one when `chosen` is unset).
    pub fn p_chosen(&self) -> Option<f64> {
        let probs = self.choice_probs.as_ref()?;
        match self.chosen {
            Some(i) => probs.get(i).map(|(_, p)| *p),
            None => probs.iter().map(|(_, p)| *p).reduce(f64::max),
        }
    }

    /// p1 − p2: how far the most probable choice is ahead of the runner-up (p1 with one choice).
    pub fn margin(&self) -> Option<f64> {
        let probs = self.choice_probs.as_ref()?;
        let (mut first, mut second) = (f64::NEG_INFINITY, 0.0f64);
        for &(_, p) in probs {
            if p > first {
                second = first.max(0.0);
                first = p;
            } else if p > second {
                second = p;
            }
        }
        first.is_finite().then_some(first - second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_probs(probs: &[(&str, f64)], chosen: Option<usize>) -> Signals {
        Signals {
            choice_probs: Some(probs.iter().map(|(c, p)| (c.to_string(), *p)).collect()),
            chosen,
            ..Signals::default()
        }
    }

    #[test]
    fn p_chosen_is_the_emitted_choice_and_margin_the_lead_of_the_best() {
        let s = with_probs(&[("a", 0.2), ("b", 0.5), ("c", 0.3)], Some(1));
        assert_eq!(s.p_chosen(), Some(0.5));
        assert!((s.margin().unwrap() - 0.2).abs() < 1e-12);
        // A sampled answer that is not the arg-max: p_chosen is its own probability, the margin
        // still compares the two most probable choices.
        let sampled = with_probs(&[("a", 0.2), ("b", 0.5), ("c", 0.3)], Some(0));
        assert_eq!(sampled.p_chosen(), Some(0.2));
        assert!((sampled.margin().unwrap() - 0.2).abs() < 1e-12);
        // Without `chosen`, the arg-max.
        assert_eq!(
            with_probs(&[("a", 0.7), ("b", 0.3)], None).p_chosen(),
            Some(0.7)
        );
    }

    #[test]
    fn margin_handles_ties_one_choice_and_no_choices() {
        assert_eq!(
            with_probs(&[("a", 0.5), ("b", 0.5)], Some(0)).margin(),
            Some(0.0)
        );
        assert_eq!(with_probs(&[("only", 1.0)], Some(0)).margin(), Some(1.0));
        // Runner-up listed first.
        let s = with_probs(&[("a", 0.1), ("b", 0.6), ("c", 0.3)], Some(1));
        assert!((s.margin().unwrap() - 0.3).abs() < 1e-12);
        let free = Signals {
            mean_logprob: Some(-0.3),
            min_logprob: Some(-1.0),
            free_tokens: 4,
            ..Signals::default()
        };
        assert_eq!(free.p_chosen(), None);
        assert_eq!(free.margin(), None);
        assert_eq!(with_probs(&[], None).margin(), None);
    }

    #[test]
    fn signals_round_trip_through_json() {
        let s = Signals {
            choice_probs: Some(vec![("yes".into(), 0.75), ("no".into(), 0.25)]),
            chosen: Some(0),
            mean_logprob: None,
            min_logprob: None,
            free_tokens: 0,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Signals>(&json).unwrap(), s);
    }
}
