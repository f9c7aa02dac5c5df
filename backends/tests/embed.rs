//! The embedding engine on the real all-MiniLM-L6-v2 (converted to GGUF by `make setup`),
//! against reference vectors from an independent numpy implementation (tests/data/SOURCE.md).
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use backends::embed::{EmbeddingEngine, EmbeddingEngineConfig};
use backends::{BackendError, EmbeddingInput, EmbeddingRequest, EmbeddingVector, EncodingFormat};
use serde::Deserialize;

fn minilm() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `make setup` (scripts/setup.sh) first",
        path.display()
    );
    path
}

fn engine() -> EmbeddingEngine {
    let mut config = EmbeddingEngineConfig::new(minilm());
    config.threads = 2;
    EmbeddingEngine::load(config).expect("all-MiniLM-L6-v2 loads")
}

#[derive(Deserialize)]
struct Reference {
    dimensions: usize,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    token_ids: Vec<i32>,
    embedding: Vec<f64>,
}

fn reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn request(input: EmbeddingInput) -> EmbeddingRequest {
    EmbeddingRequest {
        model: "minilm".into(),
        input,
        encoding_format: None,
        dimensions: None,
        extra: Default::default(),
    }
}

#[tokio::test]
async fn vectors_match_the_reference_implementation_batched_and_alone() {
    let engine = engine();
    let reference = reference();
    assert_eq!(engine.dimensions(), reference.dimensions);
    for item in &reference.items {
        let ids: Vec<i32> = engine.tokenize(&item.text).iter().map(|t| t.0).collect();
        assert_eq!(ids, item.token_ids, "tokens of {:?}", item.text);
    }
    // All five in one request (one forward pass, five sequences) …
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    let batched = engine.embed(&texts).await.unwrap();
    let tokens: usize = reference.items.iter().map(|i| i.token_ids.len()).sum();
    assert_eq!(batched.prompt_tokens, tokens as u64);
    assert!(batched.busy_secs > 0.0);
    for (item, vector) in reference.items.iter().zip(&batched.vectors) {
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
        let c = cosine(vector, &item.embedding);
        assert!(
            c >= 0.999,
            "cosine {c} to the reference for {:?}",
            item.text
        );
    }
    // … and each alone: batching must not change a vector.
    for (item, batched) in reference.items.iter().zip(&batched.vectors) {
        let alone = engine.embed(&[item.text.as_str()]).await.unwrap();
        let c = cosine(
            &alone.vectors[0],
            &batched.iter().map(|x| f64::from(*x)).collect::<Vec<_>>(),
        );
        assert!(
            c >= 0.99999,
            "alone vs batched cosine {c} for {:?}",
            item.text
        );
    }
}

#[tokio::test]
async fn concurrent_requests_share_passes_and_each_gets_its_own_vectors() {
    let engine = engine();
    let reference = reference();
    let mut tasks = Vec::new();
    for round in 0..4 {
        for (i, item) in reference.items.iter().enumerate() {
            let engine = engine.clone();
            let text = item.text.clone();
            tasks.push(tokio::spawn(async move {
                (round, i, engine.embed(&[text.as_str()]).await.unwrap())
            }));
        }
    }
    for task in tasks {
        let (_, i, got) = task.await.unwrap();
        let c = cosine(&got.vectors[0], &reference.items[i].embedding);
        assert!(c >= 0.999, "cosine {c} for input {i}");
    }
    // More inputs than one pass holds (32 sequences) come back whole and in order.
    let many: Vec<String> = (0..70).map(|i| format!("sentence number {i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = engine.embed(&refs).await.unwrap();
    assert_eq!(out.vectors.len(), 70);
    let again = engine.embed(&[refs[69]]).await.unwrap();
    let c = cosine(
        &again.vectors[0],
        &out.vectors[69]
            .iter()
            .map(|x| f64::from(*x))
            .collect::<Vec<_>>(),
    );
    assert!(c >= 0.99999, "input 69 keeps its place: cosine {c}");
}

#[tokio::test]
async fn bad_inputs_are_clear_400s() {
    let engine = engine();
    let too_long = "word ".repeat(300);
    let err = engine
        .embeddings(&request(EmbeddingInput::Texts(vec![
            "fine".into(),
            too_long,
        ])))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(_)), "{err}");
    assert_eq!(err.http_status(), 400);
    let message = err.to_string();
    assert!(
        message.contains("input[1]") && message.contains("256"),
        "{message}"
    );

    let err = engine
        .embeddings(&request(EmbeddingInput::Text(String::new())))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    let err = engine
        .embeddings(&request(EmbeddingInput::Tokens(vec![101, 102])))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("token ids"), "{err}");

    let mut wrong_width = request(EmbeddingInput::Text("hi".into()));
    wrong_width.dimensions = Some(128);
    let err = engine.embeddings(&wrong_width).await.unwrap_err();
    assert!(err.to_string().contains("384"), "{err}");
}

#[tokio::test]
async fn answers_are_openai_shaped_in_float_and_base64() {
    let engine = engine();
    let mut req = request(EmbeddingInput::Texts(vec!["one".into(), "two".into()]));
    req.dimensions = Some(384);
    let floats = engine.embeddings(&req).await.unwrap();
    assert_eq!(floats.object, "list");
    assert_eq!(floats.model, "minilm");
    assert_eq!(floats.data.len(), 2);
    assert_eq!(floats.data[1].index, 1);
    // "one" = [CLS] one [SEP], "two" likewise.
    assert_eq!(floats.usage.prompt_tokens, 6);
    assert_eq!(floats.usage.total_tokens, 6);
    req.encoding_format = Some(EncodingFormat::Base64);
    let b64 = engine.embeddings(&req).await.unwrap();
    assert!(matches!(b64.data[0].embedding, EmbeddingVector::Base64(_)));
    assert_eq!(
        b64.data[0].embedding.to_floats().unwrap(),
        floats.data[0].embedding.to_floats().unwrap()
    );
}

/// The task classifier's entry point: a text longer than the encoder reads is cut (first
/// tokens, then `[SEP]`) rather than refused, and its vector is the cut text's.
#[tokio::test]
async fn embed_prefix_cuts_long_text_instead_of_refusing_it() {
    let engine = engine();
    let long = "the quick brown fox jumps over the lazy dog ".repeat(100);
    assert!(
        engine.embed(&[long.as_str()]).await.is_err(),
        "embed refuses it"
    );
    let v = engine.embed_prefix(&long).await.unwrap();
    assert_eq!(v.len(), engine.dimensions());
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    // A short text is read whole: the same vector as `embed`.
    let short = engine.embed_prefix("hello there").await.unwrap();
    let whole = engine
        .embed(&["hello there"])
        .await
        .unwrap()
        .vectors
        .remove(0);
    let dot: f32 = short.iter().zip(&whole).map(|(a, b)| a * b).sum();
    assert!(dot > 0.9999, "{dot}");
    assert!(engine.embed_prefix("   ").await.is_err());
}
