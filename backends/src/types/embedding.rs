//! OpenAI-shaped `/v1/embeddings` types: what a client sends ([`EmbeddingRequest`]) and the
//! answer ([`EmbeddingResponse`]). The local engine answers from texts; token arrays are kept
//! for remote upstreams, which define what their ids mean.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{BackendError, Result};

/// A `POST /v1/embeddings` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// Which model (a route or backend name at the gateway; the upstream's id when forwarded).
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian f32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// Requested vector length; a model answers only with its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Fields triage does not model (`user`, …), forwarded to remote upstreams unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `input` of an embeddings request: one text, several, or token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts, one vector each.
    Texts(Vec<String>),
    /// One input as token ids of the upstream's tokenizer.
    Tokens(Vec<u32>),
    /// Several inputs as token ids.
    TokenBatches(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// The inputs as texts, checked: at least one, none empty. Token ids are refused, naming
    /// `backend`, because they only mean something to the tokenizer that made them.
    pub fn texts(&self, backend: &str) -> Result<Vec<&str>> {
        let texts: Vec<&str> = match self {
            EmbeddingInput::Text(t) => vec![t.as_str()],
            EmbeddingInput::Texts(ts) => ts.iter().map(String::as_str).collect(),
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
                return Err(BackendError::InvalidRequest(format!(
                    "`input` as token ids is not supported by `{backend}`, a local model with \
                     its own tokenizer: send the text"
                )))
            }
        };
        if texts.is_empty() {
            return Err(BackendError::InvalidRequest(
                "`input` must hold at least one text".into(),
            ));
        }
        if let Some(i) = texts.iter().position(|t| t.is_empty()) {
            return Err(BackendError::InvalidRequest(format!(
                "`input[{i}]` is empty: every input must hold some text"
            )));
        }
        Ok(texts)
    }

    /// Every text of the input, for checks such as PII detection (token ids hold none that
    /// triage can read).
    pub fn text_parts(&self) -> Vec<&str> {
        match self {
            EmbeddingInput::Text(t) => vec![t.as_str()],
            EmbeddingInput::Texts(ts) => ts.iter().map(String::as_str).collect(),
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => Vec::new(),
        }
    }
}

/// How vectors are written in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// Base64 of the little-endian f32 bytes.
    Base64,
}

/// A `/v1/embeddings` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    /// One entry per input, in input order.
    pub data: Vec<EmbeddingData>,
    /// The model that answered.
    pub model: String,
    /// Tokens read.
    pub usage: EmbeddingUsage,
    /// Fields of an upstream answer that triage does not model, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Seconds a local engine spent on this answer (its share of the passes), for the machine
    /// price; 0 from a remote upstream. Not part of the wire format.
    #[serde(skip)]
    pub engine_busy_secs: f64,
}

/// One input's vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingData {
    /// Always `embedding`.
    pub object: String,
    /// Position of the input this vector is for.
    pub index: u32,
    /// The vector.
    pub embedding: EmbeddingVector,
}

/// A vector as numbers or as base64 text, per the request's `encoding_format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// `encoding_format: float`.
    Float(Vec<f32>),
    /// `encoding_format: base64`.
    Base64(String),
}

impl EmbeddingVector {
    /// `vector` written as `format` asks.
    pub fn encode(vector: Vec<f32>, format: EncodingFormat) -> Self {
        match format {
            EncodingFormat::Float => EmbeddingVector::Float(vector),
            EncodingFormat::Base64 => {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }

    /// The numbers, decoding base64 if need be.
    pub fn to_floats(&self) -> Result<Vec<f32>> {
        match self {
            EmbeddingVector::Float(v) => Ok(v.clone()),
            EmbeddingVector::Base64(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| BackendError::Protocol(format!("embedding is not base64: {e}")))?;
                if bytes.len() % 4 != 0 {
                    return Err(BackendError::Protocol(format!(
                        "base64 embedding has {} bytes, not a multiple of 4",
                        bytes.len()
                    )));
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect())
            }
        }
    }
}

/// Tokens an embeddings request read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Tokens of every input, special tokens included.
    pub prompt_tokens: u64,
    /// The same number (embeddings generate nothing).
    pub total_tokens: u64,
}

impl EmbeddingResponse {
    /// An answer of `vectors` (in input order) from `model`, written as `format` asks.
    pub fn new(
        model: &str,
        vectors: Vec<Vec<f32>>,
        prompt_tokens: u64,
        format: EncodingFormat,
    ) -> Self {
        EmbeddingResponse {
            object: "list".into(),
            data: vectors
                .into_iter()
                .enumerate()
                .map(|(i, v)| EmbeddingData {
                    object: "embedding".into(),
                    index: i as u32,
                    embedding: EmbeddingVector::encode(v, format),
                })
                .collect(),
            model: model.to_string(),
            usage: EmbeddingUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
            extra: Map::new(),
            engine_busy_secs: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_shapes_parse_as_openai_sends_them() {
        let parse = |v: Value| serde_json::from_value::<EmbeddingInput>(v).unwrap();
        assert_eq!(
            parse(serde_json::json!("hi")),
            EmbeddingInput::Text("hi".into())
        );
        assert_eq!(
            parse(serde_json::json!(["a", "b"])),
            EmbeddingInput::Texts(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse(serde_json::json!([1, 2])),
            EmbeddingInput::Tokens(vec![1, 2])
        );
        assert_eq!(
            parse(serde_json::json!([[1], [2, 3]])),
            EmbeddingInput::TokenBatches(vec![vec![1], vec![2, 3]])
        );
    }

    #[test]
    fn empty_inputs_and_token_ids_are_refused_by_name() {
        let empty = EmbeddingInput::Texts(vec!["ok".into(), String::new()]);
        assert!(empty
            .texts("m")
            .unwrap_err()
            .to_string()
            .contains("input[1]"));
        assert!(EmbeddingInput::Texts(vec![]).texts("m").is_err());
        let tokens = EmbeddingInput::Tokens(vec![1]);
        assert!(tokens.texts("emb").unwrap_err().to_string().contains("emb"));
    }

    #[test]
    fn base64_round_trips_little_endian_f32() {
        let v = vec![1.0f32, -0.5, 0.25];
        let encoded = EmbeddingVector::encode(v.clone(), EncodingFormat::Base64);
        let EmbeddingVector::Base64(text) = &encoded else {
            unreachable!("base64 was asked for")
        };
        assert_eq!(text, "AACAPwAAAL8AAIA+");
        assert_eq!(encoded.to_floats().unwrap(), v);
    }
}
