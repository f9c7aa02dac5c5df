//! The engine thread: owns the `LlamaContext` and runs the continuous-batching loop, in which
//! generating sequences (one sampled token per step) and scoring sequences (`choices`: several
//! variants per step, each in a lane of its own, see [`super::choices`]) share every decode.
//!
//! KV sequence ids: slot `s` owns sequence `s`; its scoring lanes are sequences
//! `slots + s·lanes .. slots + (s+1)·lanes` ([`Lanes`]), which share the prompt's cells by
//! `llama_memory_seq_cp`. That needs one unified KV cache for all sequences (`kv_unified`), whose
//! size is still `context_per_slot × slots`; the per-slot budget is enforced here.
//!
//! With the prompt cache on, a slot's own sequence keeps its cells when its request ends (only
//! its lanes are cleared), and a new request starts after the prefix it shares with them
//! ([`super::prefix`]). A slot never holds more than `context_per_slot` cells, request or not,
//! so the unified cache cannot run out either.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

mod step;

use super::admission::Admission;
use super::prefix::{place, SlotMemory};
use super::signals::FreeTokenStats;
use super::text::TextAssembler;
use super::{llama_backend, token_report, Job, LlamaEngineConfig, StatCounters, Work};
use crate::types::{ChatEvent, TokenLogprob};
use crate::{BackendError, Result};
use step::{advance_generation, advance_scoring, finish, Ended};

/// llama.cpp's `LLAMA_MAX_SEQ` with a unified KV cache.
const MAX_SEQUENCES: usize = 256;

/// How many scoring lanes each of `slots` slots has when `wanted` are configured
/// ([`super::LlamaEngineConfig::score_lanes`]; 0: a request scores in its own sequence, one
/// variant per step).
pub(super) fn score_lanes(slots: usize, wanted: usize) -> usize {
    (MAX_SEQUENCES / slots.max(1)).saturating_sub(1).min(wanted)
}

/// The KV sequence ids of slots and their scoring lanes.
#[derive(Clone, Copy)]
struct Lanes {
    slots: usize,
    per_slot: usize,
}

impl Lanes {
    /// The sequence of `slot_seq`'s lane `lane` (its own sequence when slots have no lanes).
    fn seq(self, slot_seq: i32, lane: usize) -> i32 {
        if self.per_slot == 0 {
            return slot_seq;
        }
        let lane = lane.min(self.per_slot - 1);
        (self.slots + slot_seq as usize * self.per_slot + lane) as i32
    }

    /// Every KV sequence id in use.
    fn total(self) -> usize {
        self.slots * (1 + self.per_slot)
    }
}

/// One sequence in a slot.
struct Sequence {
    job: Job,
    seq_id: i32,
    /// Prompt tokens already put in a batch (the reused prefix counts as done).
    prompt_done: usize,
    /// Prompt tokens whose KV cells the slot held from an earlier request.
    cached: usize,
    /// The tokens in this slot's own KV sequence, in position order (the reused prefix, then
    /// every token fed to it; scored variants are removed again and not listed).
    held: Vec<LlamaToken>,
    /// Next position in this sequence's KV cache.
    n_past: i32,
    /// The token to feed in the next step (sampled last step), when generating.
    next_input: Option<LlamaToken>,
    /// Index of this sequence's logits in the batch just decoded.
    logits_index: Option<i32>,
    generated: u32,
    text: TextAssembler,
    /// Log-probability entries of tokens whose text is held back (stop-string prefix, partial
    /// UTF-8); they leave with the text that releases them.
    pending_logprobs: Vec<TokenLogprob>,
    /// Confidence over the tokens generated so far.
    free: FreeTokenStats,
    busy_secs: f64,
    /// Tokens this sequence put in the batch being decoded.
    tokens_in_batch: usize,
    /// Scoring feeds in the batch being decoded: (lane, index of its first logits row, tokens).
    feeds: Vec<(usize, i32, usize)>,
}

impl Sequence {
    fn send(&self, event: ChatEvent) -> bool {
        self.job.events.send(Ok(event)).is_ok()
    }
}

pub(super) fn run(
    model: Arc<LlamaModel>,
    config: LlamaEngineConfig,
    jobs: &Admission<Job>,
    counters: Arc<StatCounters>,
    ready: Sender<Result<()>>,
) {
    // However the thread ends (even by a panic), callers get an error instead of a queue that
    // nobody serves.
    let _close = CloseOnExit(jobs);
    let backend = match llama_backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let n_ctx = config.context_per_slot.saturating_mul(config.slots as u32);
    let lanes = Lanes {
        slots: config.slots,
        per_slot: score_lanes(config.slots, config.score_lanes),
    };
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(config.batch_size)
        .with_n_ubatch(config.batch_size)
        .with_n_seq_max(lanes.total() as u32)
        .with_kv_unified(lanes.per_slot > 0)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads_batch)
        .with_flash_attention_policy(match config.flash_attention {
            crate::FlashAttention::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
            crate::FlashAttention::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            crate::FlashAttention::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        });
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(BackendError::Engine(format!(
                "creating a context of {n_ctx} tokens for {} slots: {e}",
                config.slots
            ))));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut batch = LlamaBatch::new(config.batch_size as usize, config.slots as i32);
    let mut slots: Vec<Option<Sequence>> = (0..config.slots).map(|_| None).collect();
    // Recurrent and hybrid models cannot drop cells past a position, so they cannot resume
    // from a prefix.
    let prompt_cache = config.prompt_cache && !model.is_recurrent() && !model.is_hybrid();
    let mut memories = vec![SlotMemory::default(); config.slots];
    let mut admissions = 0u64;
    // When the last decode returned, while sequences keep running (host-overhead accounting).
    let mut last_decode_end: Option<Instant> = None;

    loop {
        // Cancelled sequences (the client dropped the stream) free their slot and KV cells
        // first, and the gauge says so before the engine may block below.
        for slot in slots.iter_mut() {
            if slot.as_ref().is_some_and(|s| s.job.events.is_closed()) {
                if let Some(seq) = slot.take() {
                    release(&mut ctx, lanes, &mut memories, seq, prompt_cache);
                }
            }
        }
        let busy = slots.iter().filter(|s| s.is_some()).count();
        counters.busy_slots.store(busy, Ordering::SeqCst);
        // Block only when nothing is running: a running engine comes back here every step.
        if busy == 0 {
            last_decode_end = None;
            if !jobs.wait_for_job() {
                return;
            }
        }
        // Admission: only as many jobs as there are free slots leave the queue; the rest keep
        // counting against its bound. Cancelled waiting jobs never take a slot.
        // Each goes to the free slot that already holds the longest prefix of its prompt.
        for job in jobs.admit(busy, config.slots - busy) {
            let free = (0..slots.len()).filter(|&i| slots[i].is_none());
            admissions += 1;
            let Some(placement) = place(&mut memories, free, &job.tokens, admissions) else {
                break;
            };
            let index = placement.slot;
            let seq_id = index as i32;
            let reuse = if prompt_cache {
                resume(&mut ctx, &mut memories[index], seq_id, placement.reuse)
            } else {
                0
            };
            let text = TextAssembler::new(job.params.all_stops())
                .skipping_leading_whitespace(job.params.skip_leading_whitespace);
            let held = job.tokens[..reuse].to_vec();
            let seq = Sequence {
                job,
                seq_id,
                prompt_done: reuse,
                cached: reuse,
                held,
                n_past: reuse as i32,
                next_input: None,
                logits_index: None,
                generated: 0,
                text,
                pending_logprobs: Vec::new(),
                free: FreeTokenStats::default(),
                busy_secs: 0.0,
                tokens_in_batch: 0,
                feeds: Vec::new(),
            };
            seq.send(ChatEvent::FirstByte { at: Instant::now() });
            slots[index] = Some(seq);
        }

        // Build the batch: one token per generating sequence, the current variant of every
        // scoring sequence, then prompt chunks.
        batch.clear();
        let capacity = config.batch_size as usize;
        let mut used = 0usize;
        for seq in slots.iter_mut().flatten() {
            seq.logits_index = None;
            seq.tokens_in_batch = 0;
            seq.feeds.clear();
            if let Some(token) = seq.next_input {
                if batch.add(token, seq.n_past, &[seq.seq_id], true).is_ok() {
                    seq.logits_index = Some(used as i32);
                    seq.held.push(token);
                    seq.n_past += 1;
                    seq.tokens_in_batch = 1;
                    used += 1;
                }
            }
        }
        for seq in slots.iter_mut().flatten() {
            let Work::Score(scoring) = &mut seq.job.work else {
                continue;
            };
            // Positions after the prompt (`n_past` stays at the prompt's end while scoring); a
            // logits row for every token; each variant in its lane.
            'feeds: for feed in scoring.plan(capacity - used) {
                let lane_seq = lanes.seq(seq.seq_id, feed.lane);
                if feed.offset == 0 && lane_seq != seq.seq_id {
                    // A lane starting a variant shares the prompt's cells.
                    let prompt_end = u32::try_from(seq.n_past).unwrap_or(0);
                    if let Err(e) =
                        ctx.copy_kv_cache_seq(seq.seq_id, lane_seq, Some(0), Some(prompt_end))
                    {
                        tracing::warn!(error = %e, "could not share a prompt with a scoring lane");
                        break;
                    }
                }
                let first = used;
                let mut added = 0;
                let mut full = false;
                for (j, &token) in feed.tokens.iter().enumerate() {
                    let pos = seq.n_past + (feed.offset + j) as i32;
                    if batch.add(token, pos, &[lane_seq], true).is_err() {
                        full = true;
                        break;
                    }
                    added += 1;
                    used += 1;
                }
                seq.tokens_in_batch += added;
                if added > 0 {
                    seq.feeds.push((feed.lane, first as i32, added));
                }
                if full {
                    break 'feeds;
                }
            }
        }
        for seq in slots.iter_mut().flatten() {
            if seq.next_input.is_some() || used >= capacity {
                continue;
            }
            let remaining = seq.job.tokens.len() - seq.prompt_done;
            let take = remaining.min(capacity - used);
            let mut added = 0;
            for i in 0..take {
                let token = seq.job.tokens[seq.prompt_done + i];
                let last_of_prompt = seq.prompt_done + i + 1 == seq.job.tokens.len();
                if batch
                    .add(token, seq.n_past, &[seq.seq_id], last_of_prompt)
                    .is_err()
                {
                    break;
                }
                if last_of_prompt {
                    seq.logits_index = Some(used as i32);
                }
                seq.held.push(token);
                seq.n_past += 1;
                added += 1;
                used += 1;
            }
            seq.prompt_done += added;
            seq.tokens_in_batch += added;
        }
        if used == 0 {
            continue;
        }

        let step_started = Instant::now();
        if let Some(end) = last_decode_end {
            add_nanos(&counters.host_nanos, step_started.duration_since(end));
        }
        let decoded = ctx.decode(&mut batch);
        let decode_end = Instant::now();
        last_decode_end = Some(decode_end);
        counters.decode_steps.fetch_add(1, Ordering::Relaxed);
        add_nanos(
            &counters.decode_nanos,
            decode_end.duration_since(step_started),
        );
        if let Err(e) = decoded {
            // Fail every sequence in this batch; the engine keeps serving the others.
            let message = format!("llama_decode failed: {e}");
            for slot in slots.iter_mut() {
                if slot.as_ref().is_some_and(|s| s.tokens_in_batch > 0) {
                    if let Some(seq) = slot.take() {
                        let _ = seq
                            .job
                            .events
                            .send(Err(BackendError::Engine(message.clone())));
                        // What the failed decode left in its cells is unknown: forget them.
                        release(&mut ctx, lanes, &mut memories, seq, false);
                    }
                }
            }
            continue;
        }
        let step_secs = decode_end.duration_since(step_started).as_secs_f64();
        for seq in slots.iter_mut().flatten() {
            seq.busy_secs += step_secs * seq.tokens_in_batch as f64 / used as f64;
        }

        // Sample, detokenize, stream; or read the scored variant's log-probabilities.
        for slot in slots.iter_mut() {
            let Some(seq) = slot.as_mut() else { continue };
            if seq.logits_index.is_none() && seq.feeds.is_empty() {
                continue;
            }
            let index = seq.logits_index;
            let advanced = match (&seq.job.work, index) {
                (Work::Generate { .. }, None) => continue,
                (Work::Generate { .. }, Some(index)) => {
                    advance_generation(&ctx, &model, seq, index, config.context_per_slot)
                        .map(|finish| finish.map(|ended| (ended, None)))
                }
                (Work::Score(_), _) => advance_scoring(&mut ctx, lanes, seq, index)
                    .map(|outcome| outcome.map(|o| (Ended::stop(), Some(o)))),
            };
            let at = Instant::now();
            match advanced {
                Ok(None) => {}
                Ok(Some((ended, outcome))) => {
                    let (completion_tokens, signals) = match outcome {
                        Some(outcome) => {
                            seq.send(ChatEvent::Token {
                                choice: 0,
                                text: outcome.text,
                                logprobs: token_report::entries(
                                    &model,
                                    &outcome.tokens,
                                    &outcome.token_logprobs,
                                ),
                                at,
                            });
                            (outcome.completion_tokens, outcome.signals)
                        }
                        None => (seq.generated, seq.free.signals()),
                    };
                    finish(seq, completion_tokens, signals, ended, prompt_cache, at);
                    if let Some(done) = slot.take() {
                        release(&mut ctx, lanes, &mut memories, done, prompt_cache);
                    }
                }
                Err(message) => {
                    let _ = seq.job.events.send(Err(BackendError::Engine(message)));
                    if let Some(failed) = slot.take() {
                        release(&mut ctx, lanes, &mut memories, failed, false);
                    }
                }
            }
        }
        counters.busy_slots.store(
            slots.iter().filter(|s| s.is_some()).count(),
            Ordering::SeqCst,
        );
    }
}

/// Closes the admission queue when the engine thread ends.
struct CloseOnExit<'a>(&'a Admission<Job>);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn add_nanos(counter: &std::sync::atomic::AtomicU64, elapsed: std::time::Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(nanos, Ordering::Relaxed);
}

/// Make a slot's cells hold exactly the first `reuse` tokens it remembers, for a request that
/// starts after them; the number of tokens it may skip (0 when the cells could not be cut).
fn resume(ctx: &mut LlamaContext<'_>, memory: &mut SlotMemory, seq_id: i32, reuse: usize) -> usize {
    if reuse >= memory.len() {
        return reuse;
    }
    let cut = u32::try_from(reuse)
        .ok()
        .and_then(|from| ctx.kv_cache_seq_rm(seq_id, Some(from), None).ok());
    if cut.is_some() {
        return reuse;
    }
    tracing::warn!(seq_id, "could not cut a cached prompt; evaluating it whole");
    clear_sequence(ctx, seq_id);
    memory.forget();
    0
}

/// A request left its slot (finished, failed or cancelled): clear its scoring lanes, and either
/// keep the cells of its own sequence for the next request (`keep`: what a scored variant in
/// that sequence added is cut off first) or clear them too.
fn release(
    ctx: &mut LlamaContext<'_>,
    lanes: Lanes,
    memories: &mut [SlotMemory],
    seq: Sequence,
    keep: bool,
) {
    let seq_id = seq.seq_id;
    for lane in 0..lanes.per_slot {
        let lane_seq = lanes.seq(seq_id, lane);
        if lane_seq != seq_id {
            clear_sequence(ctx, lane_seq);
        }
    }
    let Some(memory) = memories.get_mut(seq_id as usize) else {
        clear_sequence(ctx, seq_id);
        return;
    };
    let kept = keep
        && u32::try_from(seq.held.len())
            .ok()
            .is_some_and(|end| ctx.kv_cache_seq_rm(seq_id, Some(end), None).is_ok());
    if kept {
        memory.remember(seq.held);
    } else {
        clear_sequence(ctx, seq_id);
        memory.forget();
    }
}

fn clear_sequence(ctx: &mut LlamaContext<'_>, seq_id: i32) {
    let Ok(id) = u32::try_from(seq_id) else {
        return;
    };
    if let Err(e) = ctx.clear_kv_cache_seq(Some(id), None, None) {
        tracing::warn!(seq_id, error = %e, "could not free KV cells of a finished sequence");
    }
}
