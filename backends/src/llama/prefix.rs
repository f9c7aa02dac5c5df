//! Prompt caching across requests: which tokens each slot's KV sequence still holds after its
//! request ended, and which free slot a new prompt should go to.
//!
//! Requests share long prefixes (the system prompt, the instructions, the label list, few-shot
//! examples), and evaluating a prompt is most of a short request's engine time. So a finished
//! request's KV cells are kept; the next prompt goes to the free slot whose cells share the
//! longest token prefix with it, and only the tokens after that prefix are evaluated. At least
//! the prompt's last token is always evaluated again, since its logits row is what the answer
//! starts from. A slot counts as sharing the prompt only when it holds at least half of it (as
//! llama-server's `slot_prompt_similarity`); otherwise the least recently used slot is
//! overwritten, so a popular prefix survives a stray request that shares only the chat
//! template's first tokens with it.

use llama_cpp_2::token::LlamaToken;

/// What one slot's KV sequence holds while no request runs in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct SlotMemory {
    /// The tokens at positions `0..len` of the slot's sequence.
    tokens: Vec<LlamaToken>,
    /// When the slot was last given a request (a step counter; 0: never).
    last_used: u64,
}

impl SlotMemory {
    /// The slot's cells now hold `tokens`.
    pub(super) fn remember(&mut self, tokens: Vec<LlamaToken>) {
        self.tokens = tokens;
    }

    /// The slot's cells were cleared.
    pub(super) fn forget(&mut self) {
        self.tokens.clear();
    }

    /// How many tokens the slot's cells hold.
    pub(super) fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// Where a new prompt goes: the slot, and how many of its prompt tokens that slot's cells
/// already hold (always fewer than the prompt's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placement {
    pub slot: usize,
    pub reuse: usize,
}

/// Length of the common prefix of `a` and `b`.
pub(super) fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Choose among the free slots (`memories[i]` for each `i` in `free`) the one for `prompt`:
/// the longest reusable prefix, then the least recently used. `None` when no slot is free.
/// `now` marks the chosen slot as used.
pub(super) fn place(
    memories: &mut [SlotMemory],
    free: impl IntoIterator<Item = usize>,
    prompt: &[LlamaToken],
    now: u64,
) -> Option<Placement> {
    let reusable =
        |m: &SlotMemory| common_prefix(&m.tokens, prompt).min(prompt.len().saturating_sub(1));
    // A prefix shorter than half the prompt does not count as shared.
    let shared = |m: &SlotMemory| {
        let r = reusable(m);
        if 2 * r >= prompt.len() {
            r
        } else {
            0
        }
    };
    let slot = free
        .into_iter()
        .filter(|&i| i < memories.len())
        .max_by(|&a, &b| {
            let (ma, mb) = (&memories[a], &memories[b]);
            shared(ma)
                .cmp(&shared(mb))
                .then(mb.last_used.cmp(&ma.last_used))
                .then(b.cmp(&a))
        })?;
    let memory = &mut memories[slot];
    memory.last_used = now;
    Some(Placement {
        slot,
        reuse: reusable(memory),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    fn memories(held: &[&[i32]]) -> Vec<SlotMemory> {
        held.iter()
            .map(|h| SlotMemory {
                tokens: tokens(h),
                last_used: 0,
            })
            .collect()
    }

    #[test]
    fn the_longest_shared_prefix_wins_and_the_last_prompt_token_is_always_evaluated() {
        let mut m = memories(&[&[1, 2, 9], &[1, 2, 3, 4, 5], &[]]);
        let prompt = tokens(&[1, 2, 3, 4, 7]);
        assert_eq!(
            place(&mut m, 0..3, &prompt, 1),
            Some(Placement { slot: 1, reuse: 4 })
        );
        // The same prompt again: everything but its last token is reused.
        let mut m = memories(&[&[1, 2, 3, 4, 7, 8, 9]]);
        assert_eq!(
            place(&mut m, [0], &prompt, 1),
            Some(Placement { slot: 0, reuse: 4 })
        );
        let one = tokens(&[1]);
        assert_eq!(place(&mut m, [0], &one, 2).map(|p| p.reuse), Some(0));
    }

    #[test]
    fn only_free_slots_are_chosen() {
        let mut m = memories(&[&[1, 2, 3], &[]]);
        let prompt = tokens(&[1, 2, 3, 4]);
        assert_eq!(
            place(&mut m, [1], &prompt, 1),
            Some(Placement { slot: 1, reuse: 0 })
        );
        assert_eq!(place(&mut m, [], &prompt, 2), None);
        assert_eq!(place(&mut m, [7], &prompt, 2), None);
    }

    #[test]
    fn without_a_shared_prefix_the_least_recently_used_slot_is_overwritten() {
        let mut m = memories(&[&[5, 6], &[7, 8], &[9]]);
        let a = tokens(&[5, 6, 1]);
        assert_eq!(place(&mut m, 0..3, &a, 1).map(|p| p.slot), Some(0));
        let b = tokens(&[7, 8, 1]);
        assert_eq!(place(&mut m, 0..3, &b, 2).map(|p| p.slot), Some(1));
        // Nothing shared: slot 2 was used longest ago (never); then slot 0.
        let c = tokens(&[42, 1]);
        assert_eq!(place(&mut m, 0..3, &c, 3).map(|p| p.slot), Some(2));
        assert_eq!(place(&mut m, 0..3, &c, 4).map(|p| p.slot), Some(0));
    }

    #[test]
    fn a_short_shared_prefix_does_not_evict_a_long_one() {
        // Slot 0 holds a long system prompt; the new prompt shares only 2 of its 6 tokens with
        // it, so it takes the never-used slot 1 and slot 0's cells survive.
        let mut m = memories(&[&[1, 2, 3, 4, 5, 6, 7, 8], &[]]);
        m[0].last_used = 1;
        let stray = tokens(&[1, 2, 9, 9, 9, 9]);
        assert_eq!(
            place(&mut m, 0..2, &stray, 2),
            Some(Placement { slot: 1, reuse: 0 })
        );
    }

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&tokens(&[1, 2, 3]), &tokens(&[1, 2, 4])), 2);
        assert_eq!(common_prefix(&tokens(&[1, 2]), &tokens(&[1, 2, 3])), 2);
        assert_eq!(common_prefix(&tokens(&[]), &tokens(&[1])), 0);
    }
}
