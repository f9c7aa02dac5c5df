//! The embedding thread: owns the `LlamaContext` (embeddings on, mean pooling) and packs the
//! inputs of every waiting request into one forward pass per step.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;

use super::{Embedded, EmbeddingEngineConfig, Job};
use crate::llama::llama_backend;
use crate::{BackendError, Result};

/// A request being answered: its inputs, the vectors read so far and the next input to place.
struct Pending {
    job: Job,
    vectors: Vec<Option<Vec<f32>>>,
    next: usize,
    filled: usize,
    busy_secs: f64,
}

impl Pending {
    fn new(job: Job) -> Self {
        Pending {
            vectors: vec![None; job.inputs.len()],
            job,
            next: 0,
            filled: 0,
            busy_secs: 0.0,
        }
    }

    fn unplaced(&self) -> usize {
        self.job.inputs.len() - self.next
    }
}

pub(super) fn run(
    model: Arc<LlamaModel>,
    config: EmbeddingEngineConfig,
    jobs: Receiver<Job>,
    queued: Arc<AtomicUsize>,
    ready: Sender<Result<()>>,
) {
    let backend = match llama_backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let params = LlamaContextParams::default()
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean)
        .with_n_ctx(NonZeroU32::new(config.batch_tokens))
        .with_n_batch(config.batch_tokens)
        .with_n_ubatch(config.batch_tokens)
        .with_n_seq_max(config.max_sequences)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(BackendError::Engine(format!(
                "creating an embeddings context of {} tokens: {e}",
                config.batch_tokens
            ))));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut batch = LlamaBatch::new(config.batch_tokens as usize, config.max_sequences as i32);
    let mut pending: VecDeque<Pending> = VecDeque::new();
    loop {
        if pending.is_empty() {
            // Nothing to do: wait for work; every sender gone means the engine was dropped.
            let Ok(job) = jobs.recv() else { return };
            queued.fetch_sub(1, Ordering::SeqCst);
            pending.push_back(Pending::new(job));
        }
        // Take waiting requests while the next pass has room for more inputs.
        while pending.iter().map(Pending::unplaced).sum::<usize>() < config.max_sequences as usize {
            let Ok(job) = jobs.try_recv() else { break };
            queued.fetch_sub(1, Ordering::SeqCst);
            pending.push_back(Pending::new(job));
        }
        // A caller that went away needs no vectors.
        pending.retain(|p| !p.job.reply.is_closed());
        if pending.is_empty() {
            continue;
        }
        step(&mut ctx, &mut batch, &config, &mut pending);
        // Answer every request whose vectors are all read.
        let mut i = 0;
        while i < pending.len() {
            if pending[i].filled == pending[i].vectors.len() {
                if let Some(done) = pending.remove(i) {
                    let prompt_tokens = done.job.inputs.iter().map(|t| t.len() as u64).sum();
                    let vectors = done.vectors.into_iter().flatten().collect();
                    let _ = done.job.reply.send(Ok(Embedded {
                        vectors,
                        prompt_tokens,
                        busy_secs: done.busy_secs,
                    }));
                }
            } else {
                i += 1;
            }
        }
    }
}

/// One forward pass over the next inputs in queue order, as many as fit; a failed pass fails
/// the requests it held.
fn step(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    config: &EmbeddingEngineConfig,
    pending: &mut VecDeque<Pending>,
) {
    batch.clear();
    // (request position in `pending`, input index) of each sequence id in the pass.
    let mut placed: Vec<(usize, usize)> = Vec::new();
    let mut used = 0usize;
    let mut failure: Option<String> = None;
    'fill: for (pi, p) in pending.iter_mut().enumerate() {
        while let Some(tokens) = p.job.inputs.get(p.next) {
            if placed.len() == config.max_sequences as usize
                || used + tokens.len() > config.batch_tokens as usize
            {
                break 'fill;
            }
            let seq = placed.len() as i32;
            for (pos, token) in tokens.iter().enumerate() {
                if let Err(e) = batch.add(*token, pos as i32, &[seq], true) {
                    failure = Some(format!("filling the batch: {e}"));
                    break 'fill;
                }
            }
            placed.push((pi, p.next));
            used += tokens.len();
            p.next += 1;
        }
    }
    let started = Instant::now();
    if failure.is_none() {
        // An encoder keeps no memory between passes; a decoder-style embedding model would.
        ctx.clear_kv_cache();
        if let Err(e) = ctx.decode(batch) {
            failure = Some(format!("encoding {used} tokens: {e}"));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    for (seq, &(pi, ii)) in placed.iter().enumerate() {
        let Some(p) = pending.get_mut(pi) else {
            continue;
        };
        let read = match &failure {
            Some(why) => Err(why.clone()),
            None => ctx
                .embeddings_seq_ith(seq as i32)
                .map(|v| normalized(v.to_vec()))
                .map_err(|e| format!("reading the pooled embedding of sequence {seq}: {e}")),
        };
        match read {
            Ok(vector) => {
                let share = p.job.inputs.get(ii).map_or(0, Vec::len) as f64 / used.max(1) as f64;
                p.busy_secs += secs * share;
                if let Some(slot) = p.vectors.get_mut(ii) {
                    *slot = Some(vector);
                    p.filled += 1;
                }
            }
            Err(why) => {
                // The request cannot be answered whole: fail it. Its reply is swapped for one
                // whose receiver is already gone, so the next step's `retain` drops it.
                let (reply, _) = tokio::sync::oneshot::channel();
                let job_reply = std::mem::replace(&mut p.job.reply, reply);
                let _ = job_reply.send(Err(BackendError::Engine(why)));
            }
        }
    }
}

/// `v` scaled to unit length (sentence-transformers' `Normalize`); a zero vector stays zero.
fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn vectors_come_out_unit_length_and_zero_stays_zero() {
        let v = normalized(vec![3.0, 4.0]);
        assert_eq!(v, vec![0.6, 0.8]);
        assert_eq!(normalized(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
