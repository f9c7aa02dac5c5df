//! How to run one local embedding model ([`EmbeddingEngineConfig`]), kept outside the `llama`
//! feature like [`crate::LlamaEngineConfig`]: plain data the router's config can hold in builds
//! without the engine.

use std::path::PathBuf;

/// How to run one local sentence-embedding model (a BERT-family encoder in GGUF).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingEngineConfig {
    /// Path of the GGUF model file.
    pub model_path: PathBuf,
    /// Threads for the encoder's forward pass.
    pub threads: i32,
    /// Longest input, in tokens including `[CLS]` and `[SEP]`; a longer one is refused with a
    /// 400 (`PromptTooLong`), never truncated. At most the model's trained context.
    pub max_input_tokens: u32,
    /// Most tokens in one forward pass. An encoder sees the whole batch at once (llama.cpp
    /// cannot split a non-causal batch), and attention memory grows with its square.
    pub batch_tokens: u32,
    /// Most inputs in one forward pass (distinct sequence ids).
    pub max_sequences: u32,
    /// Requests waiting for the engine before new ones are refused with `Overloaded`.
    pub queue_capacity: usize,
}

impl EmbeddingEngineConfig {
    /// Defaults for `model_path`: inputs up to 256 tokens (all-MiniLM-L6-v2's
    /// `max_seq_length`), passes of up to 1024 tokens and 32 inputs, a queue of 64, one thread
    /// per available core.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2);
        Self {
            model_path: model_path.into(),
            threads: cores,
            max_input_tokens: 256,
            batch_tokens: 1024,
            max_sequences: 32,
            queue_capacity: 64,
        }
    }
}
