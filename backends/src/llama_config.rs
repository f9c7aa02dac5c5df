//! How to run one local model ([`LlamaEngineConfig`]), kept outside the `llama` feature: it is
//! plain data, so configuration (the router's `triage.yaml`) can hold it in builds without the
//! engine, and the engine (`crate::llama`, feature `llama`) loads exactly what was configured.

use std::path::PathBuf;

/// How to run one local model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaEngineConfig {
    pub model_path: PathBuf,
    /// Sequences decoded together (continuous batching width).
    pub slots: usize,
    /// Context window of each slot, in tokens (prompt + completion).
    pub context_per_slot: u32,
    /// Threads for generation steps.
    pub threads: i32,
    /// Threads for prompt processing.
    pub threads_batch: i32,
    /// Most tokens in one decode step (prompt chunks + generating sequences).
    pub batch_size: u32,
    /// Requests waiting for a slot before new ones are refused with `Overloaded`.
    pub queue_capacity: usize,
    /// A chat template to use instead of the model's own.
    pub chat_template: Option<String>,
    /// Base models: no chat template, the messages' text is the prompt.
    pub completion_mode: bool,
    /// llama.cpp's flash-attention kernels (llama.cpp decides by default: see
    /// [`crate::FlashAttention`]).
    pub flash_attention: crate::FlashAttention,
}

impl LlamaEngineConfig {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2);
        Self {
            model_path: model_path.into(),
            slots: 4,
            context_per_slot: 2048,
            threads: cores,
            threads_batch: cores,
            batch_size: 512,
            queue_capacity: 64,
            chat_template: None,
            completion_mode: false,
            flash_attention: crate::FlashAttention::default(),
        }
    }
}
