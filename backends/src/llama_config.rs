//! How to run one local model ([`LlamaEngineConfig`]), kept outside the `llama` feature: it is
//! plain data, so configuration (the router's `triage.yaml`) can hold it in builds without the
//! engine, and the engine (`crate::llama`, feature `llama`) loads exactly what was configured.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// How to run one local model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaEngineConfig {
    /// Path of the GGUF model file.
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
    /// Whether requests are rendered as a base model's few-shot text instead of chat turns.
    pub completion_mode: CompletionMode,
    /// llama.cpp's flash-attention kernels (llama.cpp decides by default: see
    /// [`crate::FlashAttention`]).
    pub flash_attention: crate::FlashAttention,
    /// `choices` variants one request may score in the same decode step, each in a KV sequence
    /// of its own sharing the prompt's cells. 0 scores one variant per step in the slot's own
    /// sequence and keeps a KV stream per slot, so greedy output does not depend on what else
    /// is batched; above 0 the KV cache is unified (llama.cpp's `kv_unified`), which the
    /// lanes need and which lets batch composition change low-order bits of attention.
    pub score_lanes: usize,
    /// Keep each slot's KV cells when its request ends and start the next request in the slot
    /// holding the longest common token prefix, evaluating only the tokens after it (llama.cpp's
    /// "prompt caching"). Off by default: a prompt evaluated in two chunks (the cached prefix
    /// earlier, the rest now) rounds differently from one evaluated at once, so answers would
    /// depend on what a slot served before (choice probabilities moved by up to ~0.09, a greedy
    /// answer diverged after 15 tokens); off, every request evaluates its whole prompt.
    pub prompt_cache: bool,
}

impl LlamaEngineConfig {
    /// Defaults for `model_path`: 4 slots of 2048 tokens, one thread per available core, batches of
    /// 512 tokens, a queue of 64, the model's own template, no score lanes, no prompt cache.
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
            completion_mode: CompletionMode::default(),
            flash_attention: crate::FlashAttention::default(),
            score_lanes: 0,
            prompt_cache: false,
        }
    }
}

/// Whether the engine renders requests as completion text (the system prompt as a preamble, then
/// `Input: …` / `Answer: …` blocks) instead of chat turns.
///
/// Base models (Gemma-3-270M) were never tuned on turn markers: rendered as a chat they mostly
/// repeat the system prompt, while a few-shot text is what they were trained to continue. `Auto`
/// (the default) decides by the model file: completion when neither the configuration nor the GGUF
/// carries a chat template, chat turns otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompletionMode {
    /// Decide by the model: completion text when no chat template is configured or in the GGUF.
    #[default]
    Auto,
    /// Always render completion text.
    On,
    /// Always render chat turns.
    Off,
}

impl CompletionMode {
    /// The name used in configs and on the command line (`auto`, `on`, `off`).
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionMode::Auto => "auto",
            CompletionMode::On => "on",
            CompletionMode::Off => "off",
        }
    }

    /// Whether a model renders as completion text, given whether a chat template is available
    /// for it (configured or in its GGUF).
    pub fn applies(self, has_chat_template: bool) -> bool {
        match self {
            CompletionMode::Auto => !has_chat_template,
            CompletionMode::On => true,
            CompletionMode::Off => false,
        }
    }
}

impl From<bool> for CompletionMode {
    fn from(on: bool) -> Self {
        if on {
            CompletionMode::On
        } else {
            CompletionMode::Off
        }
    }
}

impl fmt::Display for CompletionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompletionMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(CompletionMode::Auto),
            "on" | "true" | "1" => Ok(CompletionMode::On),
            "off" | "false" | "0" => Ok(CompletionMode::Off),
            other => Err(format!(
                "completion mode must be auto, on or off (got `{other}`)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_mode_parses_and_auto_follows_the_template() {
        assert_eq!("auto".parse(), Ok(CompletionMode::Auto));
        assert_eq!("ON".parse(), Ok(CompletionMode::On));
        assert_eq!("false".parse(), Ok(CompletionMode::Off));
        assert!("maybe"
            .parse::<CompletionMode>()
            .unwrap_err()
            .contains("`maybe`"));
        assert_eq!(CompletionMode::default(), CompletionMode::Auto);
        assert!(CompletionMode::Auto.applies(false));
        assert!(!CompletionMode::Auto.applies(true));
        assert!(CompletionMode::On.applies(true));
        assert!(!CompletionMode::Off.applies(false));
        assert_eq!(CompletionMode::from(true), CompletionMode::On);
    }
}
