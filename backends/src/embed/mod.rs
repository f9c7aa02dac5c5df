//! The local embedding engine: a BERT-family sentence encoder (all-MiniLM-L6-v2 as GGUF, see
//! `scripts/bert_to_gguf.py`) run by llama.cpp in process, for `/v1/embeddings` and as the
//! encoder other components build on (issue 17's classifier head takes [`EmbeddingEngine::embed`]'s
//! vectors; one loader, one thread, one model in memory).
//!
//! Why its own engine and not a mode of [`crate::llama::LlamaEngine`]: an encoder has no KV
//! cache, no sampling and no slots; a whole input is read in one pass and answered at once.
//! Its own context (embeddings on, mean pooling) lives on its own OS thread (`LlamaContext`
//! is not `Send`), so embeddings never wait behind a chat decode step, nor the reverse.
//!
//! Callers tokenize and check on their side (empty input, too many tokens — a 400, never a
//! silent truncation), then queue a job on a bounded channel (full: `Overloaded`). The engine
//! packs the inputs of every waiting job into one forward pass up to `max_sequences` inputs and
//! `batch_tokens` tokens, each input its own sequence id, and reads back one mean-pooled vector
//! per sequence, L2-normalised as sentence-transformers' `Normalize` module does.

mod engine;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

pub use crate::embed_config::EmbeddingEngineConfig;
use crate::llama::{load_model, read_model_info, ModelInfo};
use crate::types::{EmbeddingRequest, EmbeddingResponse};
use crate::{BackendError, Result};

/// Most inputs one request may hold (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// Vectors of a batch of texts, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// One unit-length vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens of every input, `[CLS]` and `[SEP]` included.
    pub prompt_tokens: u64,
    /// This request's share of the forward passes it was part of (by tokens), in seconds.
    pub busy_secs: f64,
}

/// One request on its way to the engine thread.
struct Job {
    inputs: Vec<Vec<LlamaToken>>,
    reply: tokio::sync::oneshot::Sender<Result<Embedded>>,
}

/// A loaded embedding model and its engine thread. Cheap to clone; the thread stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct EmbeddingEngine {
    shared: Arc<Shared>,
}

struct Shared {
    model: Arc<LlamaModel>,
    jobs: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    dimensions: usize,
    info: ModelInfo,
    config: EmbeddingEngineConfig,
}

impl std::fmt::Debug for EmbeddingEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingEngine")
            .field("config", &self.shared.config)
            .field("dimensions", &self.shared.dimensions)
            .finish_non_exhaustive()
    }
}

impl EmbeddingEngine {
    /// Load the model, create its embeddings context and start the engine thread. Blocking.
    pub fn load(config: EmbeddingEngineConfig) -> Result<EmbeddingEngine> {
        let model = Arc::new(load_model(&config.model_path)?);
        check_config(&config, model.n_ctx_train())?;
        let dimensions =
            usize::try_from(model.n_embd_out()).map_err(|_| BackendError::ModelLoad {
                path: config.model_path.clone(),
                reason: "negative embedding width".into(),
            })?;
        let info = read_model_info(&config.model_path)?;
        let (jobs, receiver) = sync_channel::<Job>(config.queue_capacity.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let thread_model = Arc::clone(&model);
        let thread_config = config.clone();
        let thread_queued = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("embedding-engine".into())
            .spawn(move || {
                engine::run(
                    thread_model,
                    thread_config,
                    receiver,
                    thread_queued,
                    ready_tx,
                )
            })
            .map_err(|e| BackendError::Engine(format!("spawning embedding thread: {e}")))?;
        ready_rx.recv().map_err(|_| {
            BackendError::Engine("embedding thread exited during start-up".into())
        })??;
        Ok(EmbeddingEngine {
            shared: Arc::new(Shared {
                model,
                jobs,
                queued,
                dimensions,
                info,
                config,
            }),
        })
    }

    /// Length of every vector this model answers with.
    pub fn dimensions(&self) -> usize {
        self.shared.dimensions
    }

    /// The configuration the engine was started with.
    pub fn config(&self) -> &EmbeddingEngineConfig {
        &self.shared.config
    }

    /// The loaded model's metadata (architecture, size, …).
    pub fn model_info(&self) -> &ModelInfo {
        &self.shared.info
    }

    /// Requests waiting for the engine thread.
    pub fn queue_depth(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// `text` as the model reads it: `[CLS]`, its WordPiece tokens, `[SEP]`. Text that looks
    /// like a special token stays text.
    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        self.shared
            .model
            .vocab()
            .tokenize(text.as_bytes(), true, false)
    }

    /// Unit-length vectors of `texts`, in order. The building block for everything that reads
    /// embeddings (the `/v1/embeddings` answer, a classifier head): checks the inputs (at least
    /// one, at most [`MAX_INPUTS`], none empty or longer than `max_input_tokens`) and waits for
    /// the engine.
    pub async fn embed(&self, texts: &[&str]) -> Result<Embedded> {
        if texts.is_empty() {
            return Err(BackendError::InvalidRequest(
                "`input` must hold at least one text".into(),
            ));
        }
        if texts.len() > MAX_INPUTS {
            return Err(BackendError::InvalidRequest(format!(
                "`input` holds {} texts; at most {MAX_INPUTS} per request",
                texts.len()
            )));
        }
        let max = self.shared.config.max_input_tokens as usize;
        let mut inputs = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            if text.is_empty() {
                return Err(BackendError::InvalidRequest(format!(
                    "`input[{i}]` is empty: every input must hold some text"
                )));
            }
            let tokens = self.tokenize(text);
            if tokens.len() > max {
                return Err(BackendError::InvalidRequest(format!(
                    "`input[{i}]` is {} tokens; this embedding model reads at most {max} tokens \
                     per input (split the text)",
                    tokens.len()
                )));
            }
            inputs.push(tokens);
        }
        self.embed_tokens(inputs).await
    }

    /// The unit vector of one text for a classifier that must always get an answer (the
    /// router's task classifier): unlike [`EmbeddingEngine::embed`], a long text is not refused
    /// but read up to `max_input_tokens` — its first bytes (at most 16 KiB, so tokenizing stays
    /// cheap), its first tokens, and `[SEP]` — as sentence-transformers truncates. Queue full:
    /// `Overloaded`; empty text: `InvalidRequest`.
    pub async fn embed_prefix(&self, text: &str) -> Result<Vec<f32>> {
        const MAX_BYTES: usize = 16 * 1024;
        let mut end = text.len().min(MAX_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = text.get(..end).unwrap_or_default();
        if text.trim().is_empty() {
            return Err(BackendError::InvalidRequest("the text is empty".into()));
        }
        let max = (self.shared.config.max_input_tokens as usize).max(2);
        let mut tokens = self.tokenize(text);
        if tokens.len() > max {
            let last = tokens.last().copied();
            tokens.truncate(max - 1);
            tokens.extend(last);
        }
        let embedded = self.embed_tokens(vec![tokens]).await?;
        embedded
            .vectors
            .into_iter()
            .next()
            .ok_or_else(|| BackendError::Engine("the embedding thread answered no vector".into()))
    }

    /// Queue already tokenized, already checked inputs and wait for their vectors.
    async fn embed_tokens(&self, inputs: Vec<Vec<LlamaToken>>) -> Result<Embedded> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.shared.jobs.try_send(Job { inputs, reply }) {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(match e {
                TrySendError::Full(_) => BackendError::Overloaded {
                    capacity: self.shared.config.queue_capacity,
                },
                TrySendError::Disconnected(_) => {
                    BackendError::Engine("the embedding thread has stopped".into())
                }
            });
        }
        answer
            .await
            .map_err(|_| BackendError::Engine("the embedding thread dropped a request".into()))?
    }

    /// Answer an OpenAI `/v1/embeddings` request: its texts embedded, written as its
    /// `encoding_format` asks. `dimensions` other than the model's own is a 400 (this model's
    /// vectors are not trained to be shortened).
    pub async fn embeddings(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        if let Some(asked) = request.dimensions {
            if asked as usize != self.dimensions() {
                return Err(BackendError::InvalidRequest(format!(
                    "`dimensions` {asked} is not supported: `{}` answers with {} dimensions only",
                    request.model,
                    self.dimensions()
                )));
            }
        }
        let texts = request.input.texts(&request.model)?;
        let embedded = self.embed(&texts).await?;
        let mut response = EmbeddingResponse::new(
            &request.model,
            embedded.vectors,
            embedded.prompt_tokens,
            request.encoding_format.unwrap_or_default(),
        );
        response.engine_busy_secs = embedded.busy_secs;
        Ok(response)
    }
}

/// The limits must fit the model and each other: an input longer than a pass could never run.
fn check_config(config: &EmbeddingEngineConfig, trained: u32) -> Result<()> {
    let bad = |why: String| Err(BackendError::Config(why));
    if config.max_input_tokens == 0 || config.max_sequences == 0 || config.threads <= 0 {
        return bad("max_input_tokens, max_sequences and threads must be positive".into());
    }
    if config.max_input_tokens > trained {
        return bad(format!(
            "max_input_tokens {} exceeds the {trained} positions {} was trained with",
            config.max_input_tokens,
            config.model_path.display()
        ));
    }
    if config.batch_tokens < config.max_input_tokens {
        return bad(format!(
            "batch_tokens {} is below max_input_tokens {}: the longest input could never run",
            config.batch_tokens, config.max_input_tokens
        ));
    }
    // llama.cpp's LLAMA_MAX_SEQ.
    if config.max_sequences > 256 {
        return bad(format!(
            "max_sequences {} exceeds llama.cpp's 256 sequences per pass",
            config.max_sequences
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_could_never_run_are_refused() {
        let mut c = EmbeddingEngineConfig::new("m.gguf");
        assert!(check_config(&c, 512).is_ok());
        c.max_input_tokens = 600;
        assert!(check_config(&c, 512)
            .unwrap_err()
            .to_string()
            .contains("512"));
        c.max_input_tokens = 512;
        c.batch_tokens = 256;
        assert!(check_config(&c, 512).is_err());
        c.batch_tokens = 1024;
        c.max_sequences = 0;
        assert!(check_config(&c, 512).is_err());
    }
}
