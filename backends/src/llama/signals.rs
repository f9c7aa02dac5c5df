//! The arithmetic behind [`Signals`]: choice probabilities from summed token log-probabilities
//! (log-sum-exp over the ways a choice can be written, softmax over choices, seeded sampling),
//! and mean / min log-probability over the tokens a model chose freely. Pure functions, so the
//! numbers are checked on hand-built inputs.

use crate::types::Signals;

/// log Σ exp(x) computed stably; −∞ for an empty slice or when every term is −∞. NaN terms count
/// as −∞ (a probability that could not be computed is no evidence).
pub fn logsumexp(xs: &[f64]) -> f64 {
    let max = xs
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if max == f64::INFINITY {
        return f64::INFINITY;
    }
    let sum: f64 = xs
        .iter()
        .filter(|x| !x.is_nan())
        .map(|x| (x - max).exp())
        .sum();
    max + sum.ln()
}

/// Softmax of per-choice log-scores: probabilities that sum to 1. When no choice has a finite
/// score (nothing to tell them apart) the distribution is uniform; empty input gives empty output.
pub fn choice_probabilities(log_scores: &[f64]) -> Vec<f64> {
    let total = logsumexp(log_scores);
    if !total.is_finite() {
        let n = log_scores.len();
        return vec![1.0 / n as f64; n];
    }
    log_scores
        .iter()
        .map(|&s| if s.is_nan() { 0.0 } else { (s - total).exp() })
        .collect()
}

/// Index of the first largest probability (ties go to the choice listed first).
pub fn argmax(probs: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &p) in probs.iter().enumerate() {
        if best.is_none_or(|(_, b)| p > b) {
            best = Some((i, p));
        }
    }
    best.map(|(i, _)| i)
}

/// The answer to emit: the arg-max at temperature 0; otherwise a draw, seeded by the request's
/// seed, from the choice distribution sharpened or flattened by the temperature
/// (p_i^(1/T), renormalised — T = 1 samples the model's own distribution).
pub fn pick_choice(log_scores: &[f64], temperature: f32, seed: u32) -> Option<usize> {
    if temperature <= 0.0 {
        return argmax(&choice_probabilities(log_scores));
    }
    let t = f64::from(temperature);
    let scaled: Vec<f64> = log_scores.iter().map(|s| s / t).collect();
    let probs = choice_probabilities(&scaled);
    let draw = fastrand::Rng::with_seed(u64::from(seed)).f64();
    let mut cumulative = 0.0;
    for (i, p) in probs.iter().enumerate() {
        cumulative += p;
        if draw < cumulative {
            return Some(i);
        }
    }
    // Rounding left the cumulative sum just below 1: the last choice with any mass.
    probs.iter().rposition(|&p| p > 0.0).or(argmax(&probs))
}

/// Signals of a scored `choices` answer.
pub fn choice_signals(choices: &[String], log_scores: &[f64], chosen: usize) -> Signals {
    let probs = choice_probabilities(log_scores);
    Signals {
        choice_probs: Some(choices.iter().cloned().zip(probs).collect()),
        chosen: Some(chosen),
        ..Signals::default()
    }
}

/// Whether a grammar forced the next token: the tokens it allowed all spell one text, each a
/// prefix of the longest (`"`, `"a`, `"age`, `"age"` when the schema demands the key `"age"`).
/// A grammar that allows exactly one token is the simplest case, but rare with BPE vocabularies,
/// which spell a forced key several ways; the model then chooses only how to split text it
/// must write, which says nothing about its confidence. `None` is a token without text of its
/// own (end of generation): stopping is a choice, so it agrees with no other token. Reads
/// `allowed` lazily and stops at the first disagreement (a free position disagrees at once).
pub fn one_forced_text(allowed: impl IntoIterator<Item = Option<Vec<u8>>>) -> bool {
    let mut longest: Option<Vec<u8>> = None;
    let mut seen = 0usize;
    let mut textless = false;
    for piece in allowed {
        seen += 1;
        match piece.filter(|p| !p.is_empty()) {
            None => {
                if seen > 1 {
                    return false;
                }
                textless = true;
            }
            Some(_) if textless => return false,
            Some(piece) => match &longest {
                Some(l) if l.starts_with(&piece) => {}
                Some(l) if piece.starts_with(l) => longest = Some(piece),
                Some(_) => return false,
                None => longest = Some(piece),
            },
        }
    }
    seen > 0
}

/// Mean and minimum log-probability of the tokens a model chose freely, accumulated token by
/// token as they are generated.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FreeTokenStats {
    free: u32,
    sum: f64,
    min: f64,
}

impl FreeTokenStats {
    /// Count one generated token; a forced token (the grammar allowed nothing else) is left out.
    pub fn push(&mut self, logprob: f32, forced: bool) {
        if forced {
            return;
        }
        let lp = f64::from(logprob);
        self.min = if self.free == 0 { lp } else { self.min.min(lp) };
        self.free += 1;
        self.sum += lp;
    }

    /// The signals of a generated answer.
    pub fn signals(&self) -> Signals {
        let any = self.free > 0;
        Signals {
            mean_logprob: any.then(|| self.sum / f64::from(self.free)),
            min_logprob: any.then_some(self.min),
            free_tokens: self.free,
            ..Signals::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn logsumexp_is_stable_and_handles_empty_and_infinite_terms() {
        assert!(close(logsumexp(&[0.0, 0.0]), 2f64.ln()));
        // Large negative values would underflow a naive exp.
        assert!(close(logsumexp(&[-1000.0, -1000.0]), -1000.0 + 2f64.ln()));
        assert!(close(logsumexp(&[-3.0, f64::NEG_INFINITY]), -3.0));
        assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
        assert_eq!(logsumexp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        assert!(close(logsumexp(&[f64::NAN, -2.0]), -2.0));
    }

    #[test]
    fn choice_probabilities_sum_to_one_in_input_order() {
        // Two ways of writing "yes" (with and without a leading space), one of "no".
        let yes = logsumexp(&[(0.5f64).ln(), (0.1f64).ln()]);
        let no = (0.2f64).ln();
        let probs = choice_probabilities(&[yes, no]);
        assert!(close(probs.iter().sum::<f64>(), 1.0));
        assert!(close(probs[0], 0.6 / 0.8));
        assert!(close(probs[1], 0.2 / 0.8));
        assert_eq!(argmax(&probs), Some(0));
    }

    #[test]
    fn a_choice_that_is_a_prefix_of_another_is_told_apart_by_the_end_token() {
        // "no" vs "no way", which share their first token. Token probabilities after the prompt:
        //   "no" 0.6, then end-of-turn 0.1 (the model wants to go on) → 0.06
        //   "no" 0.6, " way" 0.5, then end-of-turn 0.9 → 0.27
        // Without the end token, "no" would score 0.6 ≥ 0.3 and win although the complete
        // answer "no" is the less likely one.
        let no = 0.6f64.ln() + 0.1f64.ln();
        let no_way = 0.6f64.ln() + 0.5f64.ln() + 0.9f64.ln();
        let probs = choice_probabilities(&[no, no_way]);
        assert_eq!(argmax(&probs), Some(1));
        assert!(close(probs[1], 0.27 / (0.27 + 0.06)));
    }

    #[test]
    fn degenerate_scores_give_a_uniform_distribution_and_empty_gives_nothing() {
        assert_eq!(
            choice_probabilities(&[f64::NEG_INFINITY, f64::NEG_INFINITY]),
            vec![0.5, 0.5]
        );
        assert!(choice_probabilities(&[]).is_empty());
        assert_eq!(argmax(&[]), None);
        assert_eq!(pick_choice(&[], 0.0, 1), None);
        assert_eq!(pick_choice(&[], 1.0, 1), None);
        // A choice whose score is −∞ gets probability 0.
        let probs = choice_probabilities(&[-1.0, f64::NEG_INFINITY]);
        assert_eq!(probs, vec![1.0, 0.0]);
    }

    #[test]
    fn ties_go_to_the_first_listed_choice() {
        assert_eq!(argmax(&[0.25, 0.5, 0.25 - 1e-9, 0.5]), Some(1));
        assert_eq!(pick_choice(&[-1.0, -1.0], 0.0, 7), Some(0));
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_distribution() {
        let scores = [0.7f64.ln(), 0.2f64.ln(), 0.1f64.ln()];
        for seed in 0..20 {
            assert_eq!(
                pick_choice(&scores, 1.0, seed),
                pick_choice(&scores, 1.0, seed)
            );
        }
        let mut counts = [0usize; 3];
        for seed in 0..3000 {
            counts[pick_choice(&scores, 1.0, seed).unwrap()] += 1;
        }
        // 2100 / 600 / 300 expected; a wide band, the draw is pseudo-random.
        assert!((1900..2300).contains(&counts[0]), "{counts:?}");
        assert!((450..750).contains(&counts[1]), "{counts:?}");
        assert!((180..420).contains(&counts[2]), "{counts:?}");
        // A choice with probability 0 is never drawn.
        let impossible = [0.0, f64::NEG_INFINITY];
        assert!((0..200).all(|seed| pick_choice(&impossible, 1.0, seed) == Some(0)));
    }

    #[test]
    fn choice_signals_keep_request_order_and_the_emitted_choice() {
        let choices = vec!["b".to_string(), "a".to_string()];
        let s = choice_signals(&choices, &[0.25f64.ln(), 0.75f64.ln()], 1);
        let probs = s.choice_probs.clone().unwrap();
        assert_eq!(probs[0].0, "b");
        assert_eq!(probs[1].0, "a");
        assert!(close(probs[0].1 + probs[1].1, 1.0));
        assert!(close(s.p_chosen().unwrap(), 0.75));
        assert!(close(s.margin().unwrap(), 0.5));
        assert_eq!(s.free_tokens, 0);
        assert_eq!(s.mean_logprob, None);
    }

    fn pieces(texts: &[Option<&str>]) -> Vec<Option<Vec<u8>>> {
        texts
            .iter()
            .map(|t| t.map(|t| t.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_token_is_forced_when_the_allowed_tokens_spell_one_text() {
        // Exactly one allowed token.
        assert!(one_forced_text(pieces(&[Some("{")])));
        // A forced key, spelled several ways, in any order.
        assert!(one_forced_text(pieces(&[
            Some("\"age"),
            Some("\""),
            Some("\"a"),
            Some("\"age\"")
        ])));
        // Optional whitespace or a quote: a real choice.
        assert!(!one_forced_text(pieces(&[
            Some(" "),
            Some("\n"),
            Some("\"")
        ])));
        // Two keys that share a first character.
        assert!(!one_forced_text(pieces(&[
            Some("\"a"),
            Some("\"age"),
            Some("\"name")
        ])));
        // Stopping or going on is a choice; stopping alone is forced.
        assert!(!one_forced_text(pieces(&[None, Some("}")])));
        assert!(!one_forced_text(pieces(&[Some("}"), None])));
        assert!(one_forced_text(pieces(&[None])));
        // Nothing allowed: nothing forced.
        assert!(!one_forced_text(pieces(&[])));
    }

    #[test]
    fn a_free_position_is_decided_without_reading_every_token() {
        let mut read = 0;
        let allowed = (0..50_000).map(|i| {
            read += 1;
            Some(format!("tok{i}").into_bytes())
        });
        assert!(!one_forced_text(allowed));
        assert_eq!(read, 2, "tok0 and tok1 disagree");
    }

    #[test]
    fn forced_tokens_are_left_out_of_the_statistics() {
        let mut stats = FreeTokenStats::default();
        // `{"name": "` is forced by a schema; the name itself is free.
        stats.push(-0.001, true);
        stats.push(-2.0, false);
        stats.push(-9.0, true);
        stats.push(-1.0, false);
        let s = stats.signals();
        assert_eq!(s.free_tokens, 2);
        assert!(close(s.mean_logprob.unwrap(), -1.5));
        assert!(close(s.min_logprob.unwrap(), -2.0));
        assert_eq!(s.choice_probs, None);
    }

    #[test]
    fn no_free_tokens_means_no_statistics() {
        let empty = FreeTokenStats::default().signals();
        assert_eq!(empty.free_tokens, 0);
        assert_eq!(empty.mean_logprob, None);
        assert_eq!(empty.min_logprob, None);
        let mut all_forced = FreeTokenStats::default();
        all_forced.push(-0.5, true);
        assert_eq!(all_forced.signals(), empty);
        // Without a grammar every token is free; a single token is its own mean and minimum.
        let mut one = FreeTokenStats::default();
        one.push(-0.25, false);
        let s = one.signals();
        assert_eq!(
            (s.free_tokens, s.mean_logprob, s.min_logprob),
            (1, Some(-0.25), Some(-0.25))
        );
    }
}
