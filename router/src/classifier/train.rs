//! Training: a multinomial logistic regression fitted by deterministic stochastic gradient
//! descent, and the seeded, stratified split that keeps a held-out part for measuring it.
//!
//! Reproducibility is part of the contract: the same examples in the same order give the same
//! model file on every platform, so the generator (SplitMix64) and the shuffle are written here
//! rather than taken from a crate whose stream may change between versions.

use std::collections::{BTreeMap, HashMap};

use super::features::{featurize, DIMS_LOG2};
use super::model::{softmax, Model, MODEL_FORMAT};
use super::{ClassifierError, Example, UNKNOWN_TASK};

/// Training knobs; the defaults suit a few hundred to a few thousand short examples.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Passes over the examples (default 40).
    pub epochs: usize,
    /// Initial step size; it decays as `lr / (1 + 0.05 * epoch)` (default 0.5).
    pub learning_rate: f32,
    /// L2 regularisation strength applied to each weight update (default 1e-5).
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 40,
            learning_rate: 0.5,
            l2: 1e-5,
        }
    }
}

/// Train a multinomial logistic regression on `examples` (in the order given: deterministic).
pub fn train(examples: &[Example], options: &TrainOptions) -> Result<Model, ClassifierError> {
    let mut tasks: Vec<String> = examples.iter().map(|e| e.task.clone()).collect();
    tasks.sort();
    tasks.dedup();
    if tasks.len() < 2 {
        return Err(ClassifierError::Training(format!(
            "need examples of at least 2 tasks, got {} example(s) of {} task(s)",
            examples.len(),
            tasks.len()
        )));
    }
    if tasks.iter().any(|t| t.is_empty() || t == UNKNOWN_TASK) {
        return Err(ClassifierError::Training(format!(
            "task names must be non-empty and not {UNKNOWN_TASK:?}"
        )));
    }
    let k = tasks.len();
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    // Each example's features with the dense row of every bucket resolved once.
    let mut rows: BTreeMap<u32, usize> = BTreeMap::new();
    let mut data: Vec<(Vec<(usize, f32)>, usize)> = Vec::with_capacity(examples.len());
    for e in examples {
        let x = featurize(&e.text, DIMS_LOG2)
            .into_iter()
            .map(|(b, v)| {
                let next = rows.len();
                (*rows.entry(b).or_insert(next), v)
            })
            .collect();
        let y = index.get(e.task.as_str()).copied().unwrap_or(0);
        data.push((x, y));
    }
    let mut w = vec![0.0f32; rows.len() * k];
    let mut bias = vec![0.0f32; k];
    let mut probs = vec![0.0f32; k];
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng_state: u64 = 0x5EED_7A5C;
    for epoch in 0..options.epochs {
        // Step size decays slowly so late passes settle instead of oscillating.
        let lr = options.learning_rate / (1.0 + epoch as f32 * 0.05);
        // Visit examples in a fresh pseudo-random order each epoch: data files are often sorted
        // by task, and SGD over sorted data drifts towards whichever task comes last.
        shuffle(&mut order, &mut rng_state);
        for &i in &order {
            let (x, y) = &data[i];
            probs.copy_from_slice(&bias);
            for &(r, v) in x {
                for (c, p) in probs.iter_mut().enumerate() {
                    *p += w[r * k + c] * v;
                }
            }
            softmax(&mut probs);
            for (c, p) in probs.iter().enumerate() {
                let g = p - if c == *y { 1.0 } else { 0.0 };
                bias[c] -= lr * g;
                for &(r, v) in x {
                    let i = r * k + c;
                    w[i] -= lr * (g * v + options.l2 * w[i]);
                }
            }
        }
    }
    let mut trained_on = BTreeMap::new();
    for e in examples {
        *trained_on.entry(e.task.clone()).or_insert(0) += 1;
    }
    let weights = rows
        .iter()
        .map(|(&b, &r)| {
            (
                b,
                w[r * k..(r + 1) * k].iter().map(|x| round6(*x)).collect(),
            )
        })
        .collect();
    Ok(Model {
        format: MODEL_FORMAT.to_string(),
        dims_log2: DIMS_LOG2,
        tasks,
        bias: bias.into_iter().map(round6).collect(),
        weights,
        trained_on,
    })
}

/// SplitMix64 (Steele, Lea & Flood 2014): a fixed, seedable generator.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fisher–Yates with [`splitmix64`].
fn shuffle<T>(items: &mut [T], state: &mut u64) {
    for i in (1..items.len()).rev() {
        let j = (splitmix64(state) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Shuffle `items` in an order fixed by `seed` (the same on every platform and version).
pub fn seeded_shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed ^ 0xC1A5_51F1_E4D0_0000;
    shuffle(items, &mut state);
}

/// Split `items` into (kept, held out): within each stratum (the value of `stratum`, e.g. the
/// task, or task and source), a seeded shuffle, then `floor(n × holdout)` items held out and
/// the rest kept, so a stratum of one item is always kept for training. Strata are shuffled
/// independently, so adding a stratum does not change another's split. Order within each part
/// follows the strata (sorted) and the shuffle.
pub fn stratified_split<T>(
    items: Vec<T>,
    stratum: impl Fn(&T) -> String,
    holdout: f64,
    seed: u64,
) -> (Vec<T>, Vec<T>) {
    let holdout = if holdout.is_finite() {
        holdout.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut strata: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for item in items {
        strata.entry(stratum(&item)).or_default().push(item);
    }
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for (name, mut group) in strata {
        let mut state = seed ^ fnv_of(&name);
        shuffle(&mut group, &mut state);
        let n_held = ((group.len() as f64) * holdout).floor() as usize;
        let rest = group.split_off(n_held);
        held.extend(group);
        kept.extend(rest);
    }
    (kept, held)
}

/// A stable 64-bit value of a stratum name, so each stratum gets its own shuffle.
fn fnv_of(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Six decimals keep the JSON small and the file identical across runs.
fn round6(x: f32) -> f32 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_seeded_and_keeps_singletons() {
        let items: Vec<(String, usize)> = (0..10)
            .map(|i| ("a".to_string(), i))
            .chain((0..5).map(|i| ("b".to_string(), i)))
            .chain(std::iter::once(("c".to_string(), 0)))
            .collect();
        let (kept, held) = stratified_split(items.clone(), |x| x.0.clone(), 0.5, 7);
        let count = |v: &[(String, usize)], s: &str| v.iter().filter(|x| x.0 == s).count();
        assert_eq!((count(&held, "a"), count(&kept, "a")), (5, 5));
        assert_eq!((count(&held, "b"), count(&kept, "b")), (2, 3));
        assert_eq!((count(&held, "c"), count(&kept, "c")), (0, 1));
        // Same seed, same split; another seed, another split.
        let again = stratified_split(items.clone(), |x| x.0.clone(), 0.5, 7);
        assert_eq!((kept.clone(), held.clone()), again);
        let other = stratified_split(items.clone(), |x| x.0.clone(), 0.5, 8);
        assert_ne!(held, other.1);
        // Nothing lost, nothing doubled.
        let mut all: Vec<_> = kept.into_iter().chain(held).collect();
        all.sort();
        let mut want = items;
        want.sort();
        assert_eq!(all, want);
        // holdout 0 keeps everything.
        let (k, h) = stratified_split(vec![1, 2, 3], |_| "x".into(), 0.0, 1);
        assert_eq!((k.len(), h.len()), (3, 0));
    }

    #[test]
    fn seeded_shuffle_is_a_fixed_permutation() {
        let mut a: Vec<u32> = (0..20).collect();
        let mut b = a.clone();
        seeded_shuffle(&mut a, 3);
        seeded_shuffle(&mut b, 3);
        assert_eq!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<_>>());
        a.sort();
        assert_eq!(a, (0..20).collect::<Vec<_>>());
    }
}
