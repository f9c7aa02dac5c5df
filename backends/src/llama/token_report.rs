//! What each generated token reports about itself: OpenAI's `logprobs.content` entry (its text,
//! bytes and log-probability under the model, and with `top_logprobs` the most likely tokens at
//! its position). Built on the engine thread from the logits row the token was sampled from, so
//! the numbers are the model's own distribution — before any grammar or sampler reshaped it.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::logits::top_logprobs;
use crate::types::{TokenLogprob, TopLogprob};

/// The entry of `token` (whose piece is `bytes`), with the `top` most likely tokens of `logits`.
pub(super) fn entry(
    model: &LlamaModel,
    token_bytes: &[u8],
    logprob: f32,
    logits: &[f32],
    top: u32,
) -> TokenLogprob {
    let vocab = model.vocab();
    let top_logprobs = top_logprobs(logits, top as usize)
        .into_iter()
        .map(|(t, logprob)| {
            let bytes = vocab.token_to_piece(t, false, None);
            TopLogprob {
                token: String::from_utf8_lossy(&bytes).into_owned(),
                logprob,
                bytes: Some(bytes),
            }
        })
        .collect();
    TokenLogprob {
        token: String::from_utf8_lossy(token_bytes).into_owned(),
        logprob,
        bytes: Some(token_bytes.to_vec()),
        top_logprobs,
    }
}

/// Entries for already-chosen tokens with their log-probabilities (a scored `choices` answer,
/// whose positions have no sampled alternatives).
pub(super) fn entries(
    model: &LlamaModel,
    tokens: &[LlamaToken],
    logprobs: &[f32],
) -> Vec<TokenLogprob> {
    let vocab = model.vocab();
    tokens
        .iter()
        .zip(logprobs)
        .map(|(&t, &logprob)| {
            let bytes = vocab.token_to_piece(t, false, None);
            TokenLogprob {
                token: String::from_utf8_lossy(&bytes).into_owned(),
                logprob,
                bytes: Some(bytes),
                top_logprobs: Vec::new(),
            }
        })
        .collect()
}
