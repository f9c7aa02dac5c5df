//! A request's sampling settings once validated ([`SamplingParams`]): what the engine thread
//! needs to decode it, kept apart from the engine so the settings read as one small record
//! (`LlamaEngine::sampling_params` builds them from a request; `triage hw` builds its own).

/// Sampling settings of one request, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Most tokens to generate; never more than the slot's context leaves after the prompt.
    pub max_tokens: u32,
    /// Sampling temperature in [0, 2]; 0 or below decodes greedily.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    pub top_p: f32,
    /// Keep only the `top_k` most probable tokens; 0 disables it.
    pub top_k: i32,
    /// Drop tokens below `min_p` times the top token's probability, in [0, 1]; 0 disables it.
    pub min_p: f32,
    /// Seed of the sampler's random draw (the request's `seed`, else random).
    pub seed: u32,
    /// The request's stop strings: they end generation, are never emitted, and the one that
    /// ended an answer is reported with it (`ChatEvent::Done::stop_sequence`).
    pub stop: Vec<String>,
    /// The prompt format's turn markers not already in `stop`: they end generation and are
    /// never emitted either, but an answer they end simply ended (no stop sequence reported).
    pub turn_stops: Vec<String>,
    /// GBNF grammar the output must match (from a JSON schema or `choices`), if any.
    pub grammar: Option<String>,
    /// Keep generating past end-of-generation tokens (hardware benchmarks, as llama-bench).
    pub ignore_eos: bool,
    /// The answer starts at its first non-whitespace character: leading whitespace is dropped
    /// and cannot match a stop string (completion text, where the model writes ` positive` after
    /// `Answer:` and a blank line before the answer must not end it).
    pub skip_leading_whitespace: bool,
    /// Alternatives per token position to report with each token's log-probability (the
    /// request's `top_logprobs`, at most [`crate::MAX_TOP_LOGPROBS`]); 0 reports none.
    pub top_logprobs: u32,
}

impl SamplingParams {
    /// Greedy decoding of exactly `max_tokens` tokens, past end-of-generation tokens as
    /// llama-bench generates: for benchmarks and tests that need exact token counts.
    pub fn greedy_exact(max_tokens: u32) -> Self {
        Self {
            max_tokens,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: 0,
            stop: Vec::new(),
            turn_stops: Vec::new(),
            grammar: None,
            ignore_eos: true,
            skip_leading_whitespace: false,
            top_logprobs: 0,
        }
    }

    /// Every string that ends generation, the request's first (so where a request's stop and a
    /// turn marker match at the same place, the request's is the one reported).
    pub fn all_stops(&self) -> Vec<String> {
        self.stop.iter().chain(&self.turn_stops).cloned().collect()
    }

    /// The request's stop sequence `matched` is, if it is one (not a turn marker).
    pub fn stop_sequence(&self, matched: &str) -> Option<String> {
        self.stop.iter().find(|s| *s == matched).cloned()
    }
}
