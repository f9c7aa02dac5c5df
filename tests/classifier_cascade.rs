//! The encoder classifier as a cascade's first step, in the real gateway and policy: the real
//! all-MiniLM-L6-v2 and a head trained here from a few labelled sentences (`enc`), escalating to
//! a TEST DOUBLE `llm` (`MockBackend` "echo") when `p_chosen` is below the route's threshold.
//!
//! The threshold is set between the classifier's own probabilities for a clear review and an
//! ambiguous one (measured first, and checked to be ordered), so the test pins the behaviour —
//! the confident answer is accepted, the unsure one escalates — without pinning model numbers.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use backends::classifier::ClassifierBackend;
use backends::embed::{EmbeddingEngine, EmbeddingEngineConfig};
use backends::head::{classifier_text, train_head, EncoderId, HeadOptions};
use backends::{AnyBackend, ChatRequest};
use router::gateway::Locality;
use router::testing::{streamed_text, TestGateway};
use serde_json::{json, Value};

fn minilm() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `make setup` first",
        path.display()
    );
    path
}

const TRAIN: &[(&str, &str)] = &[
    ("I loved this film, the acting was wonderful.", "positive"),
    ("A delightful, moving story with a great cast.", "positive"),
    (
        "Brilliant direction and a beautiful soundtrack.",
        "positive",
    ),
    ("One of the best movies I have seen this year.", "positive"),
    ("A boring, pointless mess of a movie.", "negative"),
    (
        "The plot made no sense and the acting was awful.",
        "negative",
    ),
    ("I walked out halfway through, it was terrible.", "negative"),
    ("Dull, predictable and far too long.", "negative"),
];

const CLEAR: &str = "A wonderful, beautiful film with a great cast, I loved it.";
const UNSURE: &str = "The film was released on a Tuesday in several cities.";

fn body(text: &str, stream: bool) -> Value {
    json!({
        "model": "auto",
        "stream": stream,
        "choices": ["positive", "negative"],
        "messages": [{"role": "user", "content": text}],
    })
}

async fn classifier() -> ClassifierBackend {
    let mut config = EmbeddingEngineConfig::new(minilm());
    config.threads = 2;
    let engine = EmbeddingEngine::load(config).unwrap();
    let texts: Vec<String> = TRAIN
        .iter()
        .map(|(t, _)| classifier_text(&ChatRequest::user("enc", *t)).unwrap())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = engine.embed(&refs).await.unwrap().vectors;
    let examples: Vec<(Vec<f32>, String)> = vectors
        .into_iter()
        .zip(TRAIN)
        .map(|(v, (_, l))| (v, l.to_string()))
        .collect();
    let encoder = EncoderId::of_file(&minilm(), engine.dimensions()).unwrap();
    let head = train_head("sentiment", encoder, &examples, &HeadOptions::default()).unwrap();
    ClassifierBackend::new(engine, vec![head]).unwrap()
}

async fn p_chosen(c: &ClassifierBackend, text: &str) -> f64 {
    let request: ChatRequest = serde_json::from_value(body(text, false)).unwrap();
    c.classify(&request)
        .await
        .unwrap()
        .signals
        .p_chosen()
        .unwrap()
}

#[tokio::test]
async fn the_classifiers_confidence_drives_the_cascade() {
    let c = classifier().await;
    let (clear, unsure) = (p_chosen(&c, CLEAR).await, p_chosen(&c, UNSURE).await);
    assert!(
        clear > unsure,
        "a clear review ({clear}) is more certain than a neutral sentence ({unsure})"
    );
    let threshold = (clear + unsure) / 2.0;
    let config = format!(
        r#"
backends:
  enc: {{ kind: classifier, model: models/all-MiniLM-L6-v2.gguf, heads: {{ sentiment: heads/sentiment.json }} }}
  llm: {{ kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }}
pricing:
  llm: {{ input: 0.15, output: 0.60 }}
  enc: {{ machine_usd_per_hour: 3600 }}
routes:
  - {{ name: sentiment, when: {{ task: [sentiment] }}, cascade: {{ first: enc, escalate_to: llm, signal: p_chosen, threshold: {threshold} }} }}
  - {{ name: default, to: llm }}
"#
    );
    let gw = TestGateway::from_yaml(&config)
        .mock("llm", Locality::Remote, "echo")
        .backend("enc", Locality::Local, Arc::new(AnyBackend::Classifier(c)))
        .build()
        .unwrap();

    let accepted = gw
        .chat(body(CLEAR, false), Some("sentiment"))
        .await
        .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(accepted.header("x-triage-backend"), Some("enc"));
    assert_eq!(accepted.header("x-triage-escalated"), Some("false"));
    let v = accepted.json().unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "positive");

    let escalated = gw
        .chat(body(UNSURE, true), Some("sentiment"))
        .await
        .unwrap();
    assert_eq!(escalated.status, 200, "{}", escalated.body);
    assert_eq!(escalated.header("x-triage-escalated"), Some("true"));
    // The stream carries the escalation target's answer only (the mock echoes the prompt).
    assert_eq!(streamed_text(&escalated.sse_data()), UNSURE);
    assert_eq!(gw.calls("llm").unwrap(), 1);

    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].backends, ["enc"]);
    assert!(!rows[0].escalated);
    assert!(
        rows[0].cost_usd > 0.0,
        "the classifier is billed by engine time"
    );
    assert!(rows[1].escalated);
    assert_eq!(rows[1].backends, ["enc", "llm"]);

    // Without `choices` the classifier cannot answer: an OpenAI-shaped 400 naming why.
    let mut free = body(CLEAR, false);
    free.as_object_mut().unwrap().remove("choices");
    let config_direct = r#"
backends:
  enc: { kind: classifier, model: models/all-MiniLM-L6-v2.gguf, heads: { sentiment: heads/sentiment.json } }
routes:
  - { name: default, to: enc }
"#;
    let direct = TestGateway::from_yaml(config_direct)
        .backend(
            "enc",
            Locality::Local,
            Arc::new(AnyBackend::Classifier(classifier().await)),
        )
        .build()
        .unwrap();
    let refused = direct.chat(free, None).await.unwrap();
    assert_eq!(refused.status, 400, "{}", refused.body);
    let v = refused.json().unwrap();
    assert_eq!(v["error"]["code"], "unsupported_request");
    assert!(v["error"]["message"].as_str().unwrap().contains("choices"));
}
