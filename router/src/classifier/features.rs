//! Features: hashed word uni/bi-grams and character 3-grams of a text, as a sparse,
//! L2-normalised vector.
//!
//! FNV-1a is written by hand because its exact output is part of the saved model format: a
//! hasher from a crate or std (`DefaultHasher` makes no stability promise) could change, and a
//! saved model would then silently read different buckets.

/// log2 of the number of hash buckets models are trained with.
pub(super) const DIMS_LOG2: u32 = 18;

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bucket of one n-gram in a model of `2^dims_log2` buckets.
pub(super) fn bucket(ngram: &str, dims_log2: u32) -> u32 {
    let h = fnv1a(ngram.as_bytes());
    (h >> (64 - dims_log2)) as u32
}

/// Calls `f` with every feature n-gram of `text`: `w:word`, `b:word word`, `c:abc`.
pub(super) fn for_each_ngram(text: &str, mut f: impl FnMut(&str)) {
    let lower = text.to_lowercase();
    let mut buf = String::with_capacity(64);
    let mut chars: Vec<char> = Vec::with_capacity(32);
    let mut prev: Option<&str> = None;
    for word in lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
    {
        buf.clear();
        buf.push_str("w:");
        buf.push_str(word);
        f(&buf);
        if let Some(p) = prev {
            buf.clear();
            buf.push_str("b:");
            buf.push_str(p);
            buf.push(' ');
            buf.push_str(word);
            f(&buf);
        }
        prev = Some(word);
        // Character trigrams of the word with boundary markers: "^ab", "abc", …, "yz$".
        chars.clear();
        chars.push('^');
        chars.extend(word.chars());
        chars.push('$');
        for win in chars.windows(3) {
            buf.clear();
            buf.push_str("c:");
            buf.extend(win);
            f(&buf);
        }
    }
}

/// Sparse, L2-normalised feature vector: (bucket, value), sorted by bucket; values are
/// log-scaled counts.
pub(super) fn featurize(text: &str, dims_log2: u32) -> Vec<(u32, f32)> {
    // Sort bucket ids and count runs: cheaper than hashing them into a map.
    let mut ids: Vec<u32> = Vec::with_capacity(text.len() * 2);
    for_each_ngram(text, |g| ids.push(bucket(g, dims_log2)));
    ids.sort_unstable();
    let mut v: Vec<(u32, f32)> = Vec::with_capacity(ids.len());
    for id in ids {
        match v.last_mut() {
            Some((last, count)) if *last == id => *count += 1.0,
            _ => v.push((id, 1.0)),
        }
    }
    for (_, c) in &mut v {
        *c = c.ln_1p();
    }
    let norm = v.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, x) in &mut v {
            *x /= norm;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_its_published_test_vectors() {
        // From the FNV reference (Fowler, Noll, Vo): the saved model format depends on these.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn ngrams_are_words_bigrams_and_boundary_trigrams() {
        let mut grams = Vec::new();
        for_each_ngram("Hi, YOU", |g| grams.push(g.to_string()));
        assert_eq!(
            grams,
            ["w:hi", "c:^hi", "c:hi$", "w:you", "b:hi you", "c:^yo", "c:you", "c:ou$"]
        );
    }

    #[test]
    fn features_are_unit_length_and_sorted() {
        let v = featurize("the cat sat on the mat, the end", DIMS_LOG2);
        let norm: f32 = v.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(featurize("", DIMS_LOG2).is_empty());
    }
}
