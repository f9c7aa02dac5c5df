//! Log-probabilities from a logits row, fast enough to run for every token: the arg-max for
//! greedy decoding and the log-softmax normaliser over the whole vocabulary, in 16 vectorizable
//! lanes with a branch-free exp (the engine computes them between decodes, on its own thread).

use llama_cpp_2::token::LlamaToken;

/// log p(token) under the model's own distribution (log-softmax of the raw logits).
pub(super) fn token_logprob(logits: &[f32], token: LlamaToken) -> f32 {
    LogSoftmax::of(logits).logprob(logits, token)
}

/// The log-softmax of one logits row, computed once and read for many tokens (the first token
/// of every scored choice comes from the same row).
#[derive(Clone, Copy, Debug)]
pub(super) struct LogSoftmax {
    max: f32,
    ln_sum: f32,
}

impl LogSoftmax {
    pub(super) fn of(logits: &[f32]) -> Self {
        let max = max_logit(logits);
        Self {
            max,
            ln_sum: sum_exp_below(logits, max).ln(),
        }
    }

    /// log p(token) in this row; −∞ for a token outside the vocabulary.
    pub(super) fn logprob(self, logits: &[f32], token: LlamaToken) -> f32 {
        let Some(&chosen) = usize::try_from(token.0).ok().and_then(|i| logits.get(i)) else {
            return f32::NEG_INFINITY;
        };
        chosen - self.max - self.ln_sum
    }
}

/// The `n` most likely tokens of a row with their log-probabilities, most likely first (ties:
/// lower token id first, as the arg-max). One pass over the vocabulary keeping a sorted list of
/// at most `n` (n ≤ 20), so asking for alternatives costs about one more log-softmax.
pub(super) fn top_logprobs(logits: &[f32], n: usize) -> Vec<(LlamaToken, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let softmax = LogSoftmax::of(logits);
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(n + 1);
    for (i, &l) in logits.iter().enumerate() {
        let full_and_worse = best.len() == n && best.last().is_some_and(|&(_, w)| l <= w);
        if l.is_nan() || full_and_worse {
            continue;
        }
        let at = best.partition_point(|&(_, b)| b >= l);
        best.insert(at, (i, l));
        best.truncate(n);
    }
    best.into_iter()
        .map(|(i, l)| (LlamaToken(i as i32), l - softmax.max - softmax.ln_sum))
        .collect()
}

/// log p of the most likely token: −ln Σ exp(l − max).
pub(super) fn logprob_of_max(logits: &[f32], max: f32) -> f32 {
    -sum_exp_below(logits, max).ln()
}

/// Index and value of the first maximum: a vectorized maximum, then the first position holding
/// it (the scalar loop that tracks the index does not vectorize and cost about as much as the
/// log-softmax).
pub(super) fn argmax(logits: &[f32]) -> (usize, f32) {
    let max = max_logit(logits);
    let best = logits.iter().position(|&l| l == max).unwrap_or(0);
    (best, max)
}

/// The largest logit, in 16 lanes so it vectorizes (NaN never wins; all-NaN gives −∞).
fn max_logit(logits: &[f32]) -> f32 {
    const LANES: usize = 16;
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for chunk in chunks {
        for (m, &l) in lanes.iter_mut().zip(chunk) {
            *m = if l > *m { l } else { *m };
        }
    }
    lanes
        .iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &l| if l > m { l } else { m })
}

/// Σ exp(l − max) over the vocabulary, in 16 independent lanes with a branch-free exp so the
/// compiler vectorizes it (the scalar `f32::exp` loop cost ~0.2 ms per token on a 49k vocabulary).
fn sum_exp_below(logits: &[f32], max: f32) -> f32 {
    const LANES: usize = 16;
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut lanes = [0.0f32; LANES];
    for chunk in chunks {
        for (acc, &l) in lanes.iter_mut().zip(chunk) {
            *acc += exp_nonpositive(l - max);
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().map(|&l| exp_nonpositive(l - max)).sum::<f32>()
}

/// exp(x) for x ≤ 0 (the log-softmax case): 2^k · 2^f with k = round(x·log2 e), f ∈ [−½, ½]
/// and the degree-7 Taylor polynomial of 2^f; relative error below 1e-6 for x ≥ −10 and 5e-6
/// down to −87 (smaller values contribute nothing to a sum that holds exp(0) = 1).
/// Hand-written because it must stay branch-free and integer-conversion-free to vectorize: adding
/// 1.5·2^23 rounds to an integer held in the low mantissa bits, which become the exponent of 2^k
/// by integer arithmetic (a `floor` and an `as i32` kept the loop at ~85 µs per 49k-entry row,
/// this runs in ~26 µs).
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23
    let t = x.max(-87.0) * std::f32::consts::LOG2_E;
    let rounded = t + ROUND;
    let f = t - (rounded - ROUND);
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5
                + f * (0.055_504_11
                    + f * (0.009_618_129
                        + f * (0.001_333_355_8 + f * (0.000_154_035_3 + f * 1.525_273_4e-5))))));
    // The low bits of `rounded` hold k ∈ [−126, 0]; k + 127 is a normal exponent.
    let exponent = rounded
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127)
        << 23;
    p * f32::from_bits(exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_exp_where_it_matters() {
        let mut x = 0.0f32;
        while x > -80.0 {
            let (fast, exact) = (exp_nonpositive(x) as f64, (x as f64).exp());
            // Below −10 the f32 rounding of x·log2(e) itself dominates; those terms are
            // e^−10 of the largest one in a log-softmax sum.
            let tolerance = if x >= -10.0 { 1e-6 } else { 5e-6 };
            assert!(
                (fast - exact).abs() <= tolerance * exact,
                "x={x}: {fast} vs {exact}"
            );
            x -= 0.013;
        }
        assert!(exp_nonpositive(-1000.0) < 1e-37);
    }

    #[test]
    fn greedy_fast_path_agrees_with_the_definitions() {
        // A vocabulary-sized row with a tie for the maximum: the first index wins, as in
        // llama.cpp's greedy sampler.
        let logits: Vec<f32> = (0..49_152)
            .map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0)
            .collect();
        let (best, max) = argmax(&logits);
        assert_eq!(
            max,
            logits.iter().copied().fold(f32::NEG_INFINITY, f32::max)
        );
        assert_eq!(logits.iter().position(|&l| l == max), Some(best));
        let exact = {
            let m = max as f64;
            let z: f64 = logits.iter().map(|&l| (l as f64 - m).exp()).sum();
            -(z.ln())
        };
        let fast = logprob_of_max(&logits, max) as f64;
        assert!((fast - exact).abs() < 1e-4, "{fast} vs {exact}");
        let via_token = token_logprob(&logits, LlamaToken(best as i32)) as f64;
        assert!((via_token - exact).abs() < 1e-4, "{via_token} vs {exact}");
    }

    #[test]
    fn argmax_skips_nan_and_takes_the_first_maximum() {
        let mut logits = vec![0.5f32; 37];
        logits[0] = f32::NAN;
        logits[5] = 3.0;
        logits[20] = 3.0;
        logits[30] = f32::NAN;
        assert_eq!(argmax(&logits), (5, 3.0));
        let (best, max) = argmax(&[f32::NAN; 20]);
        assert_eq!(best, 0);
        assert_eq!(max, f32::NEG_INFINITY);
    }

    #[test]
    fn top_logprobs_are_the_most_likely_in_order() {
        let logits = [0.5f32, 3.0, -2.0, 3.0, -1.0, 2.0];
        let top = top_logprobs(&logits, 3);
        let ids: Vec<i32> = top.iter().map(|(t, _)| t.0).collect();
        assert_eq!(ids, vec![1, 3, 5]);
        for (token, lp) in &top {
            assert!((lp - token_logprob(&logits, *token)).abs() < 1e-6);
        }
        assert!(top_logprobs(&logits, 0).is_empty());
        assert_eq!(top_logprobs(&logits[..2], 5).len(), 2);
    }

    #[test]
    fn logprob_is_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        let expected = (3.0f32.exp() / z).ln();
        assert!((token_logprob(&logits, LlamaToken(2)) - expected).abs() < 1e-6);
    }
}
