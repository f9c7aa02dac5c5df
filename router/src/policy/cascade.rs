//! The cascade's rule: keep the first (small-model) answer when a named confidence signal is at
//! or above a threshold, else escalate.
//!
//! Which signal predicts correctness depends on the task (design notes, "Signals"): for a
//! `choices` request the probability of the chosen label ([`CascadeSignal::PChosen`]) or its lead
//! over the runner-up ([`CascadeSignal::Margin`]); for JSON-schema and free-text answers the mean
//! or minimum log-probability of the tokens the model chose freely. `triage bench calibrate
//! --per-task` measures each signal's AUROC per task and writes the route with the signal and
//! threshold it fitted; the gateway judges exactly that signal, computed the same way as the
//! harness records it ([`Evidence::from_answer`]). A satisfied constraint is not confidence: the
//! local grammar always satisfies it, so `accept_if_constrained` is off unless a route asks.

use serde::Serialize;

/// A confidence signal of an answer, by its name in configs and run records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CascadeSignal {
    /// exp(mean log-probability over all generated tokens): the legacy `min_confidence`.
    Confidence,
    /// Probability of the chosen answer among a `choices` request's choices.
    PChosen,
    /// Probability lead of the most likely choice over the runner-up.
    Margin,
    /// Mean log-probability of the freely chosen tokens.
    MeanLogprob,
    /// Lowest log-probability among the freely chosen tokens.
    MinLogprob,
}

impl CascadeSignal {
    /// Every signal, in documentation order.
    pub const ALL: [CascadeSignal; 5] = [
        CascadeSignal::Confidence,
        CascadeSignal::PChosen,
        CascadeSignal::Margin,
        CascadeSignal::MeanLogprob,
        CascadeSignal::MinLogprob,
    ];

    /// The name used in configs, headers and run records.
    pub fn name(self) -> &'static str {
        match self {
            CascadeSignal::Confidence => "confidence",
            CascadeSignal::PChosen => "p_chosen",
            CascadeSignal::Margin => "margin",
            CascadeSignal::MeanLogprob => "mean_logprob",
            CascadeSignal::MinLogprob => "min_logprob",
        }
    }

    /// The signal called `name`.
    pub fn from_name(name: &str) -> Option<CascadeSignal> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether `threshold` is a value this signal can take; the error says which range.
    pub fn check_threshold(self, threshold: f64) -> Result<(), ThresholdError> {
        match self {
            CascadeSignal::Confidence | CascadeSignal::PChosen | CascadeSignal::Margin => {
                if (0.0..=1.0).contains(&threshold) {
                    Ok(())
                } else {
                    Err(ThresholdError::NotAProbability {
                        signal: self.name(),
                        threshold,
                    })
                }
            }
            CascadeSignal::MeanLogprob | CascadeSignal::MinLogprob => {
                if threshold <= 0.0 {
                    Ok(())
                } else {
                    Err(ThresholdError::NotALogprob {
                        signal: self.name(),
                        threshold,
                    })
                }
            }
        }
    }
}

/// A cascade threshold outside the range of its signal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// A probability signal's threshold is outside [0, 1].
    #[error("{signal} is a probability: the threshold must be between 0 and 1 (got {threshold})")]
    NotAProbability {
        /// The signal's name.
        signal: &'static str,
        /// The threshold given.
        threshold: f64,
    },
    /// A log-probability signal's threshold is above 0.
    #[error("{signal} is a log-probability: the threshold must be <= 0 (got {threshold})")]
    NotALogprob {
        /// The signal's name.
        signal: &'static str,
        /// The threshold given.
        threshold: f64,
    },
}

impl std::fmt::Display for CascadeSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Answer with a (local) model first, and escalate unless its answer is confident enough.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CascadeSpec {
    /// The backend that answers first.
    pub first: String,
    /// The backend that answers when the first answer is not kept.
    pub escalate_to: String,
    /// The signal judged.
    pub signal: CascadeSignal,
    /// Keep the first answer when the signal is at least this.
    pub threshold: f64,
    /// Also require every free token's log-probability to be at least this (≤ 0), when set.
    pub min_token_logprob: Option<f64>,
    /// Keep an answer that satisfied a `choices` or JSON-schema constraint whatever its signal.
    pub accept_if_constrained: bool,
}

/// What the judge knows about a first answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// exp(mean log-probability over all generated tokens).
    pub confidence: Option<f64>,
    /// Probability of the chosen choice (`choices` requests answered by scoring).
    pub p_chosen: Option<f64>,
    /// p(first) − p(second) over the choices.
    pub margin: Option<f64>,
    /// Mean log-probability over the free tokens (over all tokens when the backend did not
    /// say which were free).
    pub mean_logprob: Option<f64>,
    /// Lowest free-token log-probability (likewise).
    pub min_logprob: Option<f64>,
    /// Whether the answer satisfied the request's constraint; `None` without one.
    pub constraint_satisfied: Option<bool>,
}

impl Evidence {
    /// The evidence of an answer from its token log-probabilities and the engine's signals —
    /// the one definition the gateway judges and the harness records.
    pub fn from_answer(
        token_logprobs: &[f32],
        signals: Option<&backends::Signals>,
        constraint_satisfied: Option<bool>,
    ) -> Evidence {
        let finite: Vec<f64> = token_logprobs
            .iter()
            .map(|&x| f64::from(x))
            .filter(|x| !x.is_nan())
            .collect();
        let mean_all =
            (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64);
        let min_all = finite.iter().copied().reduce(f64::min);
        let ok = |v: Option<f64>| v.filter(|v| !v.is_nan());
        Evidence {
            confidence: mean_all.map(f64::exp),
            p_chosen: ok(signals.and_then(|s| s.p_chosen())),
            margin: ok(signals.and_then(|s| s.margin())),
            mean_logprob: ok(signals.and_then(|s| s.mean_logprob)).or(mean_all),
            min_logprob: ok(signals.and_then(|s| s.min_logprob)).or(min_all),
            constraint_satisfied,
        }
    }

    /// The value of `signal`, when the answer has it.
    pub fn value(&self, signal: CascadeSignal) -> Option<f64> {
        match signal {
            CascadeSignal::Confidence => self.confidence,
            CascadeSignal::PChosen => self.p_chosen,
            CascadeSignal::Margin => self.margin,
            CascadeSignal::MeanLogprob => self.mean_logprob,
            CascadeSignal::MinLogprob => self.min_logprob,
        }
    }

    /// Every signal the answer has, by name (what a run record stores).
    pub fn named(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        CascadeSignal::ALL
            .into_iter()
            .filter_map(|s| self.value(s).map(|v| (s.name(), v)))
    }
}

/// Accept or escalate a cascade's first answer, with the reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CascadeVerdict {
    /// Keep the first answer.
    pub accept: bool,
    /// Why, in words (a ledger note and the explain output).
    pub reason: String,
    /// The signal judged.
    pub signal: CascadeSignal,
    /// Its value for this answer, when it had one.
    pub value: Option<f64>,
    /// exp(mean token log-probability), when there were tokens (the ledger's confidence).
    pub confidence: Option<f64>,
}

impl CascadeSpec {
    /// A cascade on the legacy confidence signal (exp of the mean token log-probability).
    pub fn on_confidence(first: &str, escalate_to: &str, min_confidence: f64) -> CascadeSpec {
        CascadeSpec {
            first: first.into(),
            escalate_to: escalate_to.into(),
            signal: CascadeSignal::Confidence,
            threshold: min_confidence,
            min_token_logprob: None,
            accept_if_constrained: false,
        }
    }

    /// The rule in words: "slm first, escalate to llm when p_chosen < 0.8".
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} first, escalate to {} when {} < {}",
            self.first, self.escalate_to, self.signal, self.threshold
        );
        if let Some(lp) = self.min_token_logprob {
            s.push_str(&format!(" or a token's log-prob < {lp}"));
        }
        if self.accept_if_constrained {
            s.push_str(" (an answer that satisfies the request's constraint is kept)");
        }
        s
    }

    /// Judge the first backend's answer.
    pub fn judge(&self, evidence: &Evidence) -> CascadeVerdict {
        let value = evidence.value(self.signal);
        let verdict = |accept: bool, reason: String| CascadeVerdict {
            accept,
            reason,
            signal: self.signal,
            value,
            confidence: evidence.confidence,
        };
        match evidence.constraint_satisfied {
            Some(true) if self.accept_if_constrained => {
                return verdict(true, "answer satisfied the request's constraint".into())
            }
            Some(false) => {
                return verdict(false, "answer violated the request's constraint".into())
            }
            _ => {}
        }
        let signal = self.signal;
        let Some(v) = value.filter(|v| !v.is_nan()) else {
            return verdict(false, format!("the answer has no {signal} signal"));
        };
        if v < self.threshold {
            return verdict(
                false,
                format!("{signal} {v:.3} < threshold {:.3}", self.threshold),
            );
        }
        if let (Some(limit), Some(min)) = (self.min_token_logprob, evidence.min_logprob) {
            if min < limit {
                return verdict(
                    false,
                    format!("weakest token log-prob {min:.3} < min_token_logprob {limit:.3}"),
                );
            }
        }
        verdict(
            true,
            format!("{signal} {v:.3} >= threshold {:.3}", self.threshold),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backends::Signals;

    fn ln(p: f64) -> f32 {
        p.ln() as f32
    }

    fn spec(signal: CascadeSignal, threshold: f64) -> CascadeSpec {
        CascadeSpec {
            signal,
            threshold,
            ..CascadeSpec::on_confidence("slm", "llm", 0.0)
        }
    }

    fn choice_signals(probs: &[f64], chosen: usize) -> Signals {
        Signals {
            choice_probs: Some(
                probs
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("c{i}"), *p))
                    .collect(),
            ),
            chosen: Some(chosen),
            ..Signals::default()
        }
    }

    #[test]
    fn names_round_trip_and_thresholds_are_checked_per_kind() {
        for s in CascadeSignal::ALL {
            assert_eq!(CascadeSignal::from_name(s.name()), Some(s));
        }
        assert_eq!(CascadeSignal::from_name("nope"), None);
        assert!(CascadeSignal::PChosen.check_threshold(0.7).is_ok());
        assert!(CascadeSignal::PChosen.check_threshold(1.5).is_err());
        assert!(CascadeSignal::MeanLogprob.check_threshold(-0.4).is_ok());
        let e = CascadeSignal::MinLogprob.check_threshold(0.5).unwrap_err();
        assert!(e.to_string().contains("<= 0"), "{e}");
    }

    #[test]
    fn evidence_prefers_the_engines_free_token_signals() {
        let signals = Signals {
            mean_logprob: Some(-0.2),
            min_logprob: Some(-0.9),
            free_tokens: 3,
            ..Signals::default()
        };
        let e = Evidence::from_answer(&[ln(0.5), ln(0.5)], Some(&signals), None);
        assert_eq!(e.mean_logprob, Some(-0.2));
        assert_eq!(e.min_logprob, Some(-0.9));
        assert!((e.confidence.unwrap() - 0.5).abs() < 1e-6);
        assert_eq!(e.p_chosen, None);
        // Without engine signals (a remote backend) every token counts as free.
        let e = Evidence::from_answer(&[ln(0.5), ln(0.25)], None, None);
        assert!((e.mean_logprob.unwrap() - (0.125f64.ln() / 2.0)).abs() < 1e-6);
        assert!((e.min_logprob.unwrap() - 0.25f64.ln()).abs() < 1e-6);
        let e = Evidence::from_answer(&[], Some(&choice_signals(&[0.7, 0.2, 0.1], 0)), None);
        assert_eq!(e.p_chosen, Some(0.7));
        assert!((e.margin.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(e.confidence, None);
        let names: Vec<&str> = e.named().map(|(n, _)| n).collect();
        assert_eq!(names, ["p_chosen", "margin"]);
    }

    #[test]
    fn judgement_table() {
        let sure = Evidence::from_answer(&[], Some(&choice_signals(&[0.9, 0.1], 0)), Some(true));
        let unsure = Evidence::from_answer(
            &[],
            Some(&choice_signals(&[0.4, 0.35, 0.25], 0)),
            Some(true),
        );
        let text = Evidence::from_answer(&[ln(0.9), ln(0.2)], None, None);
        type Case<'a> = (CascadeSpec, &'a Evidence, bool, &'static str);
        let (sure, unsure, text) = (&sure, &unsure, &text);
        let cases: Vec<Case> = vec![
            (
                spec(CascadeSignal::PChosen, 0.8),
                sure,
                true,
                "p_chosen 0.900 >= threshold",
            ),
            (
                spec(CascadeSignal::PChosen, 0.8),
                unsure,
                false,
                "p_chosen 0.400 < threshold",
            ),
            // A satisfied constraint is not confidence, unless the route says so.
            (
                CascadeSpec {
                    accept_if_constrained: true,
                    ..spec(CascadeSignal::PChosen, 0.8)
                },
                unsure,
                true,
                "satisfied",
            ),
            (spec(CascadeSignal::Margin, 0.5), sure, true, "margin 0.800"),
            (
                spec(CascadeSignal::Margin, 0.5),
                unsure,
                false,
                "margin 0.050",
            ),
            // A signal the answer lacks escalates.
            (
                spec(CascadeSignal::PChosen, 0.1),
                text,
                false,
                "no p_chosen signal",
            ),
            (
                spec(CascadeSignal::MeanLogprob, -1.0),
                text,
                true,
                "mean_logprob",
            ),
            (
                spec(CascadeSignal::MinLogprob, -1.0),
                text,
                false,
                "min_logprob -1.609 <",
            ),
            (
                spec(CascadeSignal::Confidence, 0.4),
                text,
                true,
                "confidence 0.424 >=",
            ),
            (
                CascadeSpec {
                    min_token_logprob: Some(-1.0),
                    ..spec(CascadeSignal::Confidence, 0.4)
                },
                text,
                false,
                "weakest token",
            ),
        ];
        for (i, (spec, evidence, accept, reason)) in cases.into_iter().enumerate() {
            let v = spec.judge(evidence);
            assert_eq!(v.accept, accept, "case {i}: {v:?}");
            assert!(v.reason.contains(reason), "case {i}: {v:?}");
            assert_eq!(v.value, evidence.value(spec.signal));
        }
        let violated = Evidence {
            constraint_satisfied: Some(false),
            ..sure.clone()
        };
        let v = spec(CascadeSignal::PChosen, 0.0).judge(&violated);
        assert!(!v.accept && v.reason.contains("violated"), "{v:?}");
    }

    #[test]
    fn describe_names_the_signal() {
        let s = spec(CascadeSignal::Margin, 0.25);
        assert_eq!(
            s.describe(),
            "slm first, escalate to llm when margin < 0.25"
        );
    }
}
