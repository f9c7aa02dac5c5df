//! One decoded row's effect on its sequence, and the end of a request: a generating sequence
//! samples its next token (greedy arg-max, the sampler chain, or under a grammar), turns it into
//! text (stop strings and UTF-8, `super::super::text`) and streams it with its log-probability;
//! a scoring sequence reads its variants' rows. Kept apart from the loop (`engine.rs`), which
//! owns batching, slots and KV cells.

use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::{Lanes, Sequence};
use crate::llama::choices::Outcome;
use crate::llama::logits::{argmax, logprob_of_max, token_logprob};
use crate::llama::signals::one_forced_text;
use crate::llama::text::Assembled;
use crate::llama::{token_report, Work};
use crate::types::{ChatEvent, FinishReason, Signals, Usage};

/// Why a sequence ended: its finish reason and, when one of the request's stop strings ended
/// it, that string.
pub(super) struct Ended {
    reason: FinishReason,
    stop_sequence: Option<String>,
}

impl Ended {
    /// Ended by the model (or a turn marker), not by a stop string of the request.
    pub(super) fn stop() -> Self {
        Self::by(FinishReason::Stop)
    }

    fn by(reason: FinishReason) -> Self {
        Self {
            reason,
            stop_sequence: None,
        }
    }
}

/// Sample the next token of a generating sequence from its logits row, stream its text, and say
/// whether (and why) the sequence finished.
pub(super) fn advance_generation(
    ctx: &LlamaContext<'_>,
    model: &LlamaModel,
    seq: &mut Sequence,
    index: i32,
    context_per_slot: u32,
) -> std::result::Result<Option<Ended>, String> {
    let Work::Generate { sampler, grammar } = &mut seq.job.work else {
        return Ok(None);
    };
    let (token, logprob, forced) = match grammar {
        // Greedy without a grammar is the arg-max of the logits (llama.cpp's greedy sampler
        // picks the first maximum too): no candidate array of the whole vocabulary.
        None if seq.job.params.temperature <= 0.0 => {
            let logits = ctx.get_logits_ith(index);
            let (best, max) = argmax(logits);
            (LlamaToken(best as i32), logprob_of_max(logits, max), false)
        }
        None => {
            let token = sampler.sample(ctx, index);
            (
                token,
                token_logprob(ctx.get_logits_ith(index), token),
                false,
            )
        }
        Some(grammar) => {
            let (token, forced) = sample_constrained(ctx, model, index, grammar, sampler)
                .ok_or("the sampler selected no token")?;
            (
                token,
                token_logprob(ctx.get_logits_ith(index), token),
                forced,
            )
        }
    };
    let vocab = model.vocab();
    let at = Instant::now();
    if vocab.is_eog(token) && !seq.job.params.ignore_eos {
        let tail = seq.text.finish();
        emit_text(seq, tail, at);
        return Ok(Some(Ended::stop()));
    }
    seq.generated += 1;
    seq.free.push(logprob, forced);
    let bytes = vocab.token_to_piece(token, false, None);
    let logits = ctx.get_logits_ith(index);
    let top = seq.job.params.top_logprobs;
    let entry = token_report::entry(model, &bytes, logprob, logits, top);
    seq.pending_logprobs.push(entry);
    Ok(match seq.text.push(&bytes) {
        Assembled::Stopped { text, stop } => {
            emit_text(seq, text, at);
            Some(Ended {
                reason: FinishReason::Stop,
                stop_sequence: seq.job.params.stop_sequence(&stop),
            })
        }
        Assembled::Text(t) => {
            emit_text(seq, t, at);
            let context_full = seq.n_past as u32 >= context_per_slot;
            if seq.generated >= seq.job.params.max_tokens || context_full {
                let tail = seq.text.finish();
                emit_text(seq, tail, at);
                Some(Ended::by(FinishReason::Length))
            } else {
                seq.next_input = Some(token);
                None
            }
        }
    })
}

/// Sample under a grammar, and say whether the token was forced: the tokens the grammar
/// allowed (those left with a finite logit after it) all spell one text
/// ([`one_forced_text`]). The same steps as llama.cpp's `llama_sampler_sample` with the
/// grammar first in the chain, split so the allowed candidates can be read between them.
fn sample_constrained(
    ctx: &LlamaContext<'_>,
    model: &LlamaModel,
    index: i32,
    grammar: &mut LlamaSampler,
    chain: &mut LlamaSampler,
) -> Option<(LlamaToken, bool)> {
    let mut candidates = ctx.token_data_array_ith(index);
    candidates.apply_sampler(grammar);
    let vocab = model.vocab();
    let forced = one_forced_text(
        candidates
            .data
            .iter()
            .filter(|c| c.logit().is_finite())
            .map(|c| (!vocab.is_eog(c.id())).then(|| vocab.token_to_piece(c.id(), false, None))),
    );
    candidates.apply_sampler(chain);
    let token = candidates.selected_token()?;
    grammar.accept(token);
    chain.accept(token);
    Some((token, forced))
}

/// Read the rows a scoring sequence put in the batch: the prompt's last row (every variant's
/// first token), or each lane's variant tokens — and when a lane's variant is complete, drop its
/// cells after the prompt so the lane's next variant starts right after the prompt again. The
/// outcome once every variant is scored.
pub(super) fn advance_scoring(
    ctx: &mut LlamaContext<'_>,
    lanes: Lanes,
    seq: &mut Sequence,
    prompt_row: Option<i32>,
) -> std::result::Result<Option<Outcome>, String> {
    let Work::Score(scoring) = &mut seq.job.work else {
        return Ok(None);
    };
    if let (false, Some(index)) = (scoring.started(), prompt_row) {
        scoring.read_prompt_row(ctx.get_logits_ith(index));
    }
    let prompt_end = u32::try_from(seq.n_past).unwrap_or(0);
    for &(lane, first, count) in &seq.feeds {
        let rows = (0..count as i32).map(|j| ctx.get_logits_ith(first + j));
        if scoring.read_lane_rows(lane, rows) {
            ctx.kv_cache_seq_rm(lanes.seq(seq.seq_id, lane), Some(prompt_end), None)
                .map_err(|e| format!("removing a scored choice from the KV cache: {e}"))?;
        }
    }
    if !scoring.is_done() {
        return Ok(None);
    }
    let params = &seq.job.params;
    scoring
        .outcome(params.temperature, params.seed)
        .map(Some)
        .ok_or_else(|| "scoring the choices produced no answer".to_string())
}

/// The end of a request: usage (with OpenAI's `prompt_tokens_details.cached_tokens` when the
/// prompt cache is on), engine time, signals, then `Done`.
pub(super) fn finish(
    seq: &Sequence,
    completion_tokens: u32,
    signals: Signals,
    ended: Ended,
    prompt_cache: bool,
    at: Instant,
) {
    let prompt_tokens = seq.job.tokens.len() as u32;
    let mut usage = Usage::new(prompt_tokens, completion_tokens);
    if prompt_cache {
        usage = usage.with_cached_tokens(u32::try_from(seq.cached).unwrap_or(u32::MAX));
    }
    seq.send(ChatEvent::Usage { usage, at });
    seq.send(ChatEvent::LocalCompute {
        busy_secs: seq.busy_secs,
        at,
    });
    seq.send(ChatEvent::Signals { signals, at });
    seq.send(ChatEvent::Done {
        choice: 0,
        finish_reason: ended.reason,
        stop_sequence: ended.stop_sequence,
        at,
    });
}

/// Send released text with the log-probabilities of every token it covers.
fn emit_text(seq: &mut Sequence, text: String, at: Instant) {
    if text.is_empty() {
        return;
    }
    let logprobs = std::mem::take(&mut seq.pending_logprobs);
    seq.send(ChatEvent::Token {
        choice: 0,
        text,
        logprobs,
        at,
    });
}
