//! The encoder classifier on the real all-MiniLM-L6-v2 (converted to GGUF by `make setup`): a
//! head trained here from a few hand-labelled sentences answers hand-checked held-out
//! sentences, with the signals a scored `choices` answer carries; requests it cannot answer
//! are refused by kind; a head from another encoder is refused at load.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use backends::classifier::ClassifierBackend;
use backends::embed::{EmbeddingEngine, EmbeddingEngineConfig};
use backends::head::{classifier_text, train_head, EncoderId, Head, HeadOptions};
use backends::{Backend, BackendError, ChatMessage, ChatRequest, Role};

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

const TRAIN: &[(&str, &str)] = &[
    ("I loved this film, the acting was wonderful.", "positive"),
    ("A delightful, moving story with a great cast.", "positive"),
    (
        "Brilliant direction and a beautiful soundtrack.",
        "positive",
    ),
    ("One of the best movies I have seen this year.", "positive"),
    ("Funny, warm and clever from start to finish.", "positive"),
    (
        "An absolute joy to watch, I would see it again.",
        "positive",
    ),
    ("A boring, pointless mess of a movie.", "negative"),
    (
        "The plot made no sense and the acting was awful.",
        "negative",
    ),
    ("I walked out halfway through, it was terrible.", "negative"),
    ("Dull, predictable and far too long.", "negative"),
    (
        "The worst film of the year, a complete waste of time.",
        "negative",
    ),
    ("Wooden dialogue and ugly, cheap effects.", "negative"),
];

/// Held-out sentences, hand-checked: none shares a sentence with the training set.
const HELD_OUT: &[(&str, &str)] = &[
    ("What a fantastic, heartwarming picture.", "positive"),
    (
        "The performances were superb and the ending perfect.",
        "positive",
    ),
    ("I enjoyed every minute of it.", "positive"),
    ("Tedious and badly written, avoid it.", "negative"),
    ("A dreadful film with nothing to recommend it.", "negative"),
    ("I was bored to tears by this awful sequel.", "negative"),
];

/// The request the harness would send: a system prompt, then the item as the user turn.
fn request(text: &str) -> ChatRequest {
    let mut r = ChatRequest::user("enc", format!("Review: {text}\nPositive or negative?"));
    r.messages
        .insert(0, ChatMessage::new(Role::System, "You classify sentiment."));
    r.choices = Some(vec!["positive".into(), "negative".into()]);
    r
}

async fn trained(engine: &EmbeddingEngine) -> Head {
    let texts: Vec<String> = TRAIN
        .iter()
        .map(|(t, _)| classifier_text(&request(t)).unwrap())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = engine.embed(&refs).await.unwrap().vectors;
    let examples: Vec<(Vec<f32>, String)> = vectors
        .into_iter()
        .zip(TRAIN)
        .map(|(v, (_, label))| (v, label.to_string()))
        .collect();
    let encoder = EncoderId::of_file(&minilm(), engine.dimensions()).unwrap();
    train_head("sentiment", encoder, &examples, &HeadOptions::default()).unwrap()
}

#[tokio::test]
async fn a_trained_head_answers_held_out_sentences_with_choice_signals() {
    let engine = engine();
    let head = trained(&engine).await;
    let classifier = ClassifierBackend::new(engine, vec![head]).unwrap();
    let mut wrong = Vec::new();
    for (text, want) in HELD_OUT {
        let response = classifier.chat(request(text)).await.unwrap();
        let answer = response.choices[0].message.content.clone().unwrap();
        if answer != *want {
            wrong.push(*text);
        }
        let signals = response.signals.clone().unwrap();
        let probs = signals.choice_probs.clone().unwrap();
        assert_eq!(probs.len(), 2);
        assert!((probs.iter().map(|(_, p)| p).sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(probs[signals.chosen.unwrap()].0, answer);
        let p = signals.p_chosen().unwrap();
        assert!(p >= 0.5, "{text}: the arg-max of two has p_chosen {p}");
        // The answer's one logprobs entry is log p(chosen), as a scored local answer's is.
        let lp = f64::from(response.token_logprobs[0]);
        assert!((lp - p.ln()).abs() < 1e-4, "{lp} vs ln {p}");
        let usage = response.usage.unwrap();
        assert!(usage.prompt_tokens > 5);
        assert_eq!(usage.completion_tokens, 0);
        assert!(response.timings.engine_busy_secs > 0.0);
    }
    // A head from 12 sentences is not perfect: it calls "I was bored to tears by this awful
    // sequel." positive (measured); every other held-out sentence is right.
    assert!(wrong.len() <= 1, "wrong on {wrong:?}");
    // The listed order of the choices is kept, whatever the head's label order.
    let mut reversed = request(HELD_OUT[0].0);
    reversed.choices = Some(vec!["negative".into(), "positive".into()]);
    let response = classifier.chat(reversed).await.unwrap();
    let signals = response.signals.unwrap();
    assert_eq!(signals.chosen, Some(1));
    assert_eq!(signals.choice_probs.unwrap()[1].0, "positive");
}

#[tokio::test]
async fn requests_a_classifier_cannot_answer_are_refused_by_kind() {
    let engine = engine();
    let head = trained(&engine).await;
    let classifier = ClassifierBackend::new(engine, vec![head]).unwrap();
    let mut free = request("fine");
    free.choices = None;
    let err = classifier.chat(free).await.unwrap_err();
    assert!(matches!(err, BackendError::Unsupported(_)), "{err}");
    assert_eq!(err.http_status(), 400);
    assert!(err.is_upstream_failure(), "another backend may answer it");
    let mut unknown = request("fine");
    unknown.choices = Some(vec!["positive".into(), "sarcastic".into()]);
    let err = classifier.chat(unknown).await.unwrap_err().to_string();
    assert!(
        err.contains("sarcastic") && err.contains("sentiment"),
        "{err}"
    );
}

#[tokio::test]
async fn a_head_from_another_encoder_is_refused_at_load() {
    let engine = engine();
    let mut head = trained(&engine).await;
    head.encoder.sha256 = "0".repeat(64);
    head.encoder.file = "other-encoder.gguf".into();
    let err = ClassifierBackend::new(engine, vec![head])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other-encoder.gguf") && err.contains("all-MiniLM-L6-v2.gguf"),
        "{err}"
    );
}
