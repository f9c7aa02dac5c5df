//! Token log-probabilities in OpenAI's shape: [`TokenLogprob`] is one entry of a choice's
//! `logprobs.content` (the token, its log-probability, its UTF-8 bytes and the most likely
//! alternatives at its position). Stream events carry them with the text they cover; a whole
//! answer carries them as the choice's `logprobs` object ([`content_object`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// OpenAI's cap on `top_logprobs`: alternatives per token position.
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// One generated token: `choices[i].logprobs.content[j]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text (lossy when the token is part of a UTF-8 character; see `bytes`).
    #[serde(default)]
    pub token: String,
    /// log p(token) under the model's distribution at this position.
    pub logprob: f32,
    /// The token's raw bytes, so characters split across tokens can be put back together.
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    /// The most likely tokens at this position, most likely first (empty unless asked for).
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

/// One alternative at a token position (`top_logprobs[k]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// The alternative token's text.
    #[serde(default)]
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its raw bytes.
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
}

impl TokenLogprob {
    /// An entry for a token that is exactly `text`, with no alternatives.
    pub fn of_text(text: &str, logprob: f32) -> Self {
        Self {
            token: text.to_string(),
            logprob,
            bytes: Some(text.as_bytes().to_vec()),
            top_logprobs: Vec::new(),
        }
    }

    /// An entry that knows only the number (upstreams that send bare log-probabilities, tests).
    pub fn bare(logprob: f32) -> Self {
        Self {
            logprob,
            ..Self::default()
        }
    }
}

/// A choice's `logprobs` object: `{"content": [...], "refusal": null}`.
pub fn content_object(tokens: &[TokenLogprob]) -> Value {
    json!({ "content": tokens, "refusal": null })
}

/// The entries of a choice's `logprobs` object (`content`), skipping entries that do not parse.
pub fn content_of(logprobs: &Value) -> Vec<TokenLogprob> {
    logprobs
        .get("content")
        .and_then(Value::as_array)
        .map(|tokens| {
            tokens
                .iter()
                .filter_map(|t| serde_json::from_value(t.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openai_shape_round_trips() {
        let wire = json!({"content": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                             {"token": "Hello", "logprob": -1.5, "bytes": null}]}],
            "refusal": null});
        let tokens = content_of(&wire);
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].bytes.as_deref(), Some(&b"Hi"[..]));
        assert_eq!(tokens[0].top_logprobs[1].token, "Hello");
        assert_eq!(content_object(&tokens), wire);
    }
}
