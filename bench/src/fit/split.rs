//! The calibration/evaluation split: seeded, stratified by gold label, independent of record
//! order and of any random-number generator's version (SHA-256 keys).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::TaskItem;

/// A stable pseudo-random key of `parts` under `seed` (SHA-256), so splits and bootstrap seeds
/// depend neither on record order nor on a random-number generator's version.
pub(crate) fn stable_hash(seed: u64, parts: &[&str]) -> [u64; 4] {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d: [u8; 32] = h.finalize().into();
    let mut out = [0u64; 4];
    for (i, chunk) in d.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        out[i] = u64::from_le_bytes(b);
    }
    out
}

/// Split a task's items into (calibration, evaluation), stratified by label: within each label
/// the items are ordered by their seeded key and dealt alternately, the alternation carrying
/// over from one label to the next so the halves differ in size by at most one.
pub fn split(items: &[TaskItem], task: &str, seed: u64) -> (Vec<TaskItem>, Vec<TaskItem>) {
    let (cal, eval) = halves(items, task, seed, |item| {
        (&item.scenario, &item.item_id, item.label.as_deref())
    });
    (
        cal.into_iter().cloned().collect(),
        eval.into_iter().cloned().collect(),
    )
}

/// [`split`] over any kind of item, given each item's (scenario, item id, gold label): the
/// harness draws few-shot examples from the calibration half of a scenario's items with it, so
/// an item the fit would evaluate on is never shown as an example.
pub fn halves<'a, T>(
    items: &'a [T],
    task: &str,
    seed: u64,
    key: impl Fn(&T) -> (&str, &str, Option<&str>),
) -> (Vec<&'a T>, Vec<&'a T>) {
    let mut strata: BTreeMap<Option<String>, Vec<(&T, [u64; 4])>> = BTreeMap::new();
    for item in items {
        let (scenario, item_id, label) = key(item);
        let label = label.map(|l| l.trim().to_lowercase());
        strata
            .entry(label)
            .or_default()
            .push((item, stable_hash(seed, &[task, scenario, item_id])));
    }
    // A label only one item has (a free-text task's gold answer) stratifies nothing: such items
    // are pooled, so the seed orders them. (Kept apart, each would be its own stratum and the
    // split would follow the labels' alphabetical order whatever the seed.)
    let singles: Vec<Option<String>> = strata
        .iter()
        .filter(|(label, members)| label.is_some() && members.len() == 1)
        .map(|(label, _)| label.clone())
        .collect();
    for label in singles {
        if let Some(members) = strata.remove(&label) {
            strata.entry(None).or_default().extend(members);
        }
    }
    let (mut cal, mut eval) = (Vec::new(), Vec::new());
    let mut turn = 0usize;
    for (_, mut members) in strata {
        members.sort_by_key(|m| m.1);
        for (item, _) in members {
            if turn.is_multiple_of(2) {
                cal.push(item);
            } else {
                eval.push(item);
            }
            turn += 1;
        }
    }
    (cal, eval)
}

#[cfg(test)]
mod tests {
    use super::super::tests::item;
    use super::*;

    #[test]
    fn split_is_stratified_seeded_and_balanced() {
        let items: Vec<TaskItem> = (0..21)
            .map(|i| item(i, if i % 3 == 0 { "a" } else { "b" }, 1.0, 1.0, None))
            .collect();
        let (cal, eval) = split(&items, "t", 7);
        assert_eq!(cal.len() + eval.len(), 21);
        assert!(cal.len().abs_diff(eval.len()) <= 1);
        let count =
            |v: &[TaskItem], l: &str| v.iter().filter(|i| i.label.as_deref() == Some(l)).count();
        assert!(count(&cal, "a").abs_diff(count(&eval, "a")) <= 1);
        assert!(count(&cal, "b").abs_diff(count(&eval, "b")) <= 1);
        // Same seed, same split, whatever the order of the input.
        let mut reversed = items.clone();
        reversed.reverse();
        let (cal2, _) = split(&reversed, "t", 7);
        let ids = |v: &[TaskItem]| {
            let mut x: Vec<String> = v.iter().map(|i| i.item_id.clone()).collect();
            x.sort();
            x
        };
        assert_eq!(ids(&cal), ids(&cal2));
        let (cal3, _) = split(&items, "t", 8);
        assert_ne!(ids(&cal), ids(&cal3), "another seed, another split");
    }

    #[test]
    fn unique_labels_do_not_fix_the_split() {
        // A free-text task: every gold answer differs. The seed, not the answers' order, decides.
        let items: Vec<TaskItem> = (0..20)
            .map(|i| item(i, &format!("answer {i:02}"), 1.0, 1.0, None))
            .collect();
        let ids = |v: &[TaskItem]| {
            let mut x: Vec<String> = v.iter().map(|i| i.item_id.clone()).collect();
            x.sort();
            x
        };
        let splits: Vec<Vec<String>> = (1..=5).map(|s| ids(&split(&items, "t", s).0)).collect();
        assert!(splits.iter().all(|c| c.len() == 10));
        assert!(
            splits.windows(2).any(|w| w[0] != w[1]),
            "every seed gave the same split: {splits:?}"
        );
    }
}
