//! Overlap scores against a reference: token F1 (SQuAD), ROUGE-L and chrF.
//!
//! Written here rather than taken from a crate: each is a few lines over normalised tokens or
//! characters, the Rust crates that exist pull in tokenizers or whole NLP stacks, and the
//! definitions are pinned by tests against hand-computed values (chrF follows sacrebleu 2.x:
//! character n-grams up to 6 with whitespace removed, β = 2, the F-score averaged over the
//! orders that exist in both strings).

use std::collections::HashMap;

use super::text::tokens;

/// SQuAD token F1 between prediction and reference (both normalised). Both empty: 1.
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let p = tokens(prediction);
    let r = tokens(reference);
    if p.is_empty() || r.is_empty() {
        return if p.is_empty() && r.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in &r {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let mut common = 0i64;
    for t in &p {
        if let Some(c) = counts.get_mut(t.as_str()) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / p.len() as f64;
    let recall = common as f64 / r.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// ROUGE-L F1: longest common subsequence of lower-cased alphanumeric tokens.
pub fn rouge_l(prediction: &str, reference: &str) -> f64 {
    let split = |s: &str| -> Vec<String> {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let p = split(prediction);
    let r = split(reference);
    if p.is_empty() || r.is_empty() {
        return if p.is_empty() && r.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let lcs = lcs_len(&p, &r);
    if lcs == 0 {
        return 0.0;
    }
    let precision = lcs as f64 / p.len() as f64;
    let recall = lcs as f64 / r.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// chrF in [0, 1] (sacrebleu's sentence chrF / 100).
pub fn chrf(prediction: &str, reference: &str) -> f64 {
    const ORDER: usize = 6;
    const BETA2: f64 = 4.0;
    const EPS: f64 = 1e-16;
    let chars = |s: &str| -> Vec<char> { s.chars().filter(|c| !c.is_whitespace()).collect() };
    let p = chars(prediction);
    let r = chars(reference);
    let mut total = 0.0;
    let mut effective = 0usize;
    for n in 1..=ORDER {
        let hyp = ngrams(&p, n);
        let refs = ngrams(&r, n);
        let n_hyp: usize = hyp.values().sum();
        let n_ref: usize = refs.values().sum();
        let matches: usize = hyp
            .iter()
            .map(|(g, c)| (*c).min(refs.get(g).copied().unwrap_or(0)))
            .sum();
        let precision = if n_hyp > 0 {
            matches as f64 / n_hyp as f64
        } else {
            EPS
        };
        let recall = if n_ref > 0 {
            matches as f64 / n_ref as f64
        } else {
            EPS
        };
        let denom = BETA2 * precision + recall;
        total += if denom > 0.0 {
            (1.0 + BETA2) * precision * recall / denom
        } else {
            EPS
        };
        if n_hyp > 0 && n_ref > 0 {
            effective += 1;
        }
    }
    if effective == 0 {
        return 0.0;
    }
    (total / effective as f64).clamp(0.0, 1.0)
}

fn ngrams(chars: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut m = HashMap::new();
    if chars.len() >= n {
        for w in chars.windows(n) {
            *m.entry(w).or_default() += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn token_f1_hand_checked() {
        // pred {paris, france}, ref {paris}: P = 1/2, R = 1 → F1 = 2/3.
        assert!(close(token_f1("Paris, France", "paris"), 2.0 / 3.0));
        assert!(
            close(token_f1("The Paris", "paris!"), 1.0),
            "articles and punctuation"
        );
        assert!(close(token_f1("", "paris"), 0.0), "empty output");
        assert!(close(token_f1("", ""), 1.0));
        assert!(
            close(token_f1("Zürich Zürich", "zürich"), 2.0 / 3.0),
            "Unicode, repeats"
        );
    }

    #[test]
    fn rouge_l_hand_checked() {
        // LCS("the cat sat on the mat", "the cat on the mat") = 5; P = 5/6, R = 1.
        let f = rouge_l("the cat sat on the mat", "the cat on the mat");
        assert!(close(f, 2.0 * (5.0 / 6.0) / (5.0 / 6.0 + 1.0)), "{f}");
        assert!(close(rouge_l("", "x"), 0.0));
        assert!(close(rouge_l("über alles", "Über alles"), 1.0));
    }

    #[test]
    fn chrf_hand_checked() {
        assert!(close(chrf("abc", "abc"), 1.0), "identical");
        assert!(chrf("xyz", "abc") < 1e-12, "nothing shared");
        assert_eq!(chrf("", "abc"), 0.0, "empty output");
        // "ab" vs "abc": 1-grams P=1 R=2/3 → F = 5·(2/3)/(4 + 2/3) = 5/7;
        // 2-grams P=1 R=1/2 → F = 5·(1/2)/(4.5) = 5/9; 3-grams absent in the hypothesis (EPS)
        // and not effective. Mean over the 2 effective orders of (5/7 + 5/9 + ~0).
        let expected = (5.0 / 7.0 + 5.0 / 9.0) / 2.0;
        assert!(
            (chrf("ab", "abc") - expected).abs() < 1e-9,
            "{}",
            chrf("ab", "abc")
        );
        // Whitespace does not count; Unicode characters are characters.
        assert!(close(chrf("le  chat", "lechat"), 1.0));
        assert!(chrf("東京へ行く", "東京に行く") > 0.2);
    }
}
