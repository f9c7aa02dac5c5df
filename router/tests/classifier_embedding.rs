//! `classifier: { kind: embedding }` — the router's task classifier over sentence vectors.
//!
//! Without a model (fast): a task head trained here on 2-dimensional vectors, read through a
//! TEST DOUBLE encoder (`KeywordEncoder`, a vector chosen by a keyword), drives the real
//! gateway and policy: an untagged request is routed by its task, the `x-triage-classifier`
//! header names the embedding classifier and its probability, a failed encoder falls back to
//! `unknown` (never a 500), and requests that do not need the task never reach the encoder.
//! The config names its errors (encoder missing, head of another encoder, wrong kind).
//!
//! With the real all-MiniLM-L6-v2 (feature `llama`): a head trained on a few dozen labelled
//! texts classifies held-out texts in other wordings, and the gateway routes by it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use backends::head::{train_head, EncoderId, HeadOptions};
use backends::{BackendError, ChatRequest, ChatResponse, EventStream};
use futures::future::BoxFuture;
use router::classifier::TASK_HEAD;
use router::config::Config;
use router::gateway::{BackendSlot, DynBackend, Locality};
use router::testing::TestGateway;
use serde_json::json;

/// TEST DOUBLE encoder: `[1, 0]` for a text mentioning "sum", `[0, 1]` otherwise; a text
/// mentioning "overload" gets `Overloaded`, as a full encoder queue answers. Counts calls.
#[derive(Default)]
struct KeywordEncoder {
    calls: Arc<AtomicUsize>,
}

impl DynBackend for KeywordEncoder {
    fn chat(&self, _: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        Box::pin(async { Err(BackendError::InvalidRequest("encoder only".into())) })
    }
    fn chat_stream(&self, _: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        Box::pin(async { Err(BackendError::InvalidRequest("encoder only".into())) })
    }
    fn sentence_vector(&self, text: String) -> BoxFuture<'_, backends::Result<Vec<f32>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if text.contains("overload") {
                return Err(BackendError::Overloaded { capacity: 1 });
            }
            Ok(if text.contains("sum") {
                vec![1.0, 0.0]
            } else {
                vec![0.0, 1.0]
            })
        })
    }
}

/// A fake encoder file and a task head (math / sentiment) trained on its "vectors".
fn head_over_fake_encoder(dir: &Path) -> (PathBuf, PathBuf) {
    let encoder = dir.join("fake-encoder.gguf");
    std::fs::write(&encoder, b"not a real model, only its hash matters").unwrap();
    let id = EncoderId::of_file(&encoder, 2).unwrap();
    let mut examples = Vec::new();
    for i in 0..10 {
        let jitter = 0.02 * i as f32;
        examples.push((vec![1.0 - jitter, jitter], "math".to_string()));
        examples.push((vec![jitter, 1.0 - jitter], "sentiment".to_string()));
    }
    let head = train_head(TASK_HEAD, id, &examples, &HeadOptions::default()).unwrap();
    let path = dir.join("task-head.json");
    head.save(&path).unwrap();
    (encoder, path)
}

fn yaml(encoder: &Path, head: &Path, routes: &str) -> String {
    format!(
        "backends:\n  a: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: gpt-4o-mini }}\n  \
         b: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: gpt-4o-mini }}\n\
         reference_backend: b\n\
         classifier: {{ kind: embedding, model: {}, encoder: {}, threshold: 0.6 }}\n\
         routes:\n{routes}",
        head.display(),
        encoder.display()
    )
}

const BY_TASK: &str =
    "  - { name: math, when: { task: math }, to: a }\n  - { name: rest, to: b }\n";

fn gateway(yaml: &str, encoder: &KeywordEncoder) -> TestGateway {
    TestGateway::from_yaml(yaml)
        .mock("a", Locality::Remote, "echo")
        .mock("b", Locality::Remote, "echo")
        .task_encoder(BackendSlot::ready(
            "encoder",
            Locality::Local,
            Arc::new(KeywordEncoder {
                calls: encoder.calls.clone(),
            }),
        ))
        .build()
        .unwrap()
}

fn body(text: &str) -> serde_json::Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn untagged_requests_are_routed_by_the_embedding_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let (encoder_file, head) = head_over_fake_encoder(dir.path());
    let encoder = KeywordEncoder::default();
    let g = gateway(&yaml(&encoder_file, &head, BY_TASK), &encoder);

    let reply = g
        .chat(body("what is the sum of 2 and 3?"), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["x-triage-route"], "math");
    assert_eq!(reply.headers["x-triage-task"], "math");
    let how = reply.headers["x-triage-classifier"].to_str().unwrap();
    assert!(how.starts_with("embedding p="), "{how}");
    assert_eq!(g.calls("a").unwrap(), 1);

    let reply = g.chat(body("I loved it"), None).await.unwrap();
    assert_eq!(reply.headers["x-triage-task"], "sentiment");
    assert_eq!(reply.headers["x-triage-route"], "rest");
    assert_eq!(encoder.calls.load(Ordering::SeqCst), 2);

    // A stated task, or a request pinned to a backend, needs no classifier.
    let reply = g
        .chat(body("the sum of all fears"), Some("qa"))
        .await
        .unwrap();
    assert_eq!(reply.headers["x-triage-route"], "rest");
    let pinned = json!({"model": "a", "messages": [{"role": "user", "content": "a sum"}]});
    assert_eq!(g.chat(pinned, None).await.unwrap().status, 200);
    assert_eq!(encoder.calls.load(Ordering::SeqCst), 2, "no encoder pass");
}

#[tokio::test]
async fn a_failing_encoder_gives_unknown_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (encoder_file, head) = head_over_fake_encoder(dir.path());
    let encoder = KeywordEncoder::default();
    let g = gateway(&yaml(&encoder_file, &head, BY_TASK), &encoder);
    let reply = g
        .chat(body("overload: the sum of 2 and 3"), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["x-triage-task"], "unknown");
    assert_eq!(reply.headers["x-triage-route"], "rest");
    assert_eq!(reply.headers["x-triage-classifier"], "nothing p=0.00");

    // The same through `explain`'s path: the reason is spelled out.
    let config = Config::parse(
        &yaml(&encoder_file, &head, BY_TASK),
        "t.yaml",
        Path::new("."),
    )
    .unwrap();
    let request = ChatRequest::user("auto", "the sum");
    let c = router::explain::classify_request(&config, &request, None, |_| async {
        Err("queue full".to_string())
    })
    .await
    .unwrap();
    assert_eq!(c.task, "unknown");
    assert!(c.explanation.contains("queue full"), "{}", c.explanation);
}

#[tokio::test]
async fn no_route_names_a_task_so_nothing_is_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let (encoder_file, head) = head_over_fake_encoder(dir.path());
    let encoder = KeywordEncoder::default();
    let routes = "  - { name: all, to: b }\n";
    let g = gateway(&yaml(&encoder_file, &head, routes), &encoder);
    let reply = g.chat(body("the sum of 2 and 3"), None).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["x-triage-task"], "unknown");
    assert_eq!(encoder.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn config_errors_name_the_field_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (encoder_file, head) = head_over_fake_encoder(dir.path());
    let parse = |y: &str| Config::parse(y, "t.yaml", Path::new(".")).map(|_| ());

    let missing = dir.path().join("no-such-encoder.gguf");
    let err = parse(&yaml(&missing, &head, BY_TASK))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("classifier.encoder") && err.contains("no-such-encoder.gguf"),
        "{err}"
    );

    let other = dir.path().join("other.gguf");
    std::fs::write(&other, b"another encoder").unwrap();
    let err = parse(&yaml(&other, &head, BY_TASK))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fake-encoder.gguf") && err.contains("other.gguf"),
        "{err}"
    );

    let no_encoder = yaml(&encoder_file, &head, BY_TASK)
        .replace(&format!(", encoder: {}", encoder_file.display()), "");
    let err = parse(&no_encoder).unwrap_err().to_string();
    assert!(err.contains("needs `encoder: FILE.gguf`"), "{err}");

    let bad_kind = yaml(&encoder_file, &head, BY_TASK).replace("kind: embedding", "kind: bert");
    let err = parse(&bad_kind).unwrap_err().to_string();
    assert!(
        err.contains("classifier.kind") && err.contains("bert"),
        "{err}"
    );

    let ngram_with_encoder =
        yaml(&encoder_file, &head, BY_TASK).replace("kind: embedding", "kind: ngram");
    let err = parse(&ngram_with_encoder).unwrap_err().to_string();
    assert!(err.contains("only `kind: embedding`"), "{err}");

    // A head not trained yet is a warning, as for the n-gram model; the gateway runs on rules.
    let untrained = dir.path().join("not-yet.json");
    let config = Config::parse(
        &yaml(&encoder_file, &untrained, BY_TASK),
        "t.yaml",
        Path::new("."),
    )
    .unwrap();
    assert!(config.warnings.iter().any(|w| w.contains("not-yet.json")));
    assert!(parse(&yaml(&encoder_file, &head, BY_TASK)).is_ok());
}

/// The real encoder: a head trained on a few dozen texts classifies texts in other wordings,
/// and the gateway routes by it; a configured `kind: embedding` backend on the same GGUF is
/// shared, not loaded twice.
#[cfg(feature = "llama")]
mod minilm {
    use super::*;
    use backends::embed::{EmbeddingEngine, EmbeddingEngineConfig};
    use router::classifier::EmbeddingModel;

    fn minilm() -> PathBuf {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2.gguf");
        assert!(
            path.exists(),
            "{} is missing: run `make setup`",
            path.display()
        );
        path
    }

    const TRAIN: &[(&str, &str)] = &[
        (
            "Classify the sentiment of this review: great phone, love it",
            "sentiment",
        ),
        (
            "Is this review positive or negative? The hotel was dirty.",
            "sentiment",
        ),
        (
            "Sentiment of the tweet: worst customer service ever",
            "sentiment",
        ),
        (
            "Was the reviewer happy? Food was cold and bland.",
            "sentiment",
        ),
        ("Rate the sentiment: an amazing, moving film", "sentiment"),
        (
            "Positive, negative or neutral: the delivery was on time",
            "sentiment",
        ),
        ("Translate to French: where is the station?", "translation"),
        (
            "Translate this into German: I would like a coffee",
            "translation",
        ),
        (
            "Please translate to Spanish: thank you very much",
            "translation",
        ),
        (
            "Render this sentence in Italian: the weather is nice",
            "translation",
        ),
        (
            "English to Portuguese: good morning, friends",
            "translation",
        ),
        ("How do you say 'see you tomorrow' in Dutch?", "translation"),
        ("What is 17 times 23?", "math"),
        (
            "A train travels 60 miles per hour for 3 hours. How far does it go?",
            "math",
        ),
        (
            "If Tom has 12 apples and gives away 5, how many are left?",
            "math",
        ),
        ("Solve for x: 3x + 7 = 22", "math"),
        (
            "A shirt costs $20 with 15% off. What is the sale price?",
            "math",
        ),
        ("Compute the average of 4, 8 and 15.", "math"),
        (
            "Extract every person's name from: Ann met Bob in Paris.",
            "extraction",
        ),
        (
            "List the dates mentioned in this email: see you on 3 May and 9 June",
            "extraction",
        ),
        (
            "Pull out the phone numbers in: call 555-0100 or 555-0199",
            "extraction",
        ),
        (
            "Find the company names in this text: Acme hired Globex",
            "extraction",
        ),
        (
            "Extract the price and product from: the lamp costs $30",
            "extraction",
        ),
        (
            "Which cities appear in: we flew from Oslo to Rome",
            "extraction",
        ),
    ];

    /// Other wordings, none a training sentence (hand-checked).
    const HELD_OUT: &[(&str, &str)] = &[
        (
            "Did this customer like the product? 'Broke after two days.'",
            "sentiment",
        ),
        (
            "Tell me whether this movie review is favourable: a masterpiece",
            "sentiment",
        ),
        (
            "Can you put 'I love reading books' into Japanese?",
            "translation",
        ),
        ("What is 'good night' in Swedish?", "translation"),
        (
            "Mary buys 3 pens at 2 dollars each. How much does she pay?",
            "math",
        ),
        ("What is the square root of 144 plus 10?", "math"),
        (
            "Give me all the email addresses in: write to a@x.org or b@y.com",
            "extraction",
        ),
        (
            "Identify the people mentioned: Carla and Dev met at noon.",
            "extraction",
        ),
    ];

    async fn engine() -> EmbeddingEngine {
        let mut config = EmbeddingEngineConfig::new(minilm());
        config.threads = 1;
        tokio::task::spawn_blocking(move || EmbeddingEngine::load(config))
            .await
            .unwrap()
            .expect("all-MiniLM-L6-v2 loads")
    }

    #[tokio::test]
    async fn a_small_head_classifies_other_wordings_and_routes() {
        let engine = engine().await;
        let mut examples = Vec::new();
        for (text, task) in TRAIN {
            examples.push((engine.embed_prefix(text).await.unwrap(), task.to_string()));
        }
        let id = EncoderId::of_file(&minilm(), engine.dimensions()).unwrap();
        let head = train_head(TASK_HEAD, id, &examples, &HeadOptions::default()).unwrap();
        let model = EmbeddingModel {
            head: head.clone(),
            encoder: minilm(),
        };
        for (text, task) in HELD_OUT {
            let v = engine.embed_prefix(text).await.unwrap();
            let c = model.classify_vector(&v, 0.0);
            assert_eq!(c.task, *task, "{text}: {}", c.explanation);
        }

        let dir = tempfile::tempdir().unwrap();
        let head_file = dir.path().join("task-head.json");
        head.save(&head_file).unwrap();
        let g = TestGateway::from_yaml(&yaml(&minilm(), &head_file, BY_TASK))
            .mock("a", Locality::Remote, "echo")
            .mock("b", Locality::Remote, "echo")
            .task_encoder(BackendSlot::ready(
                "encoder",
                Locality::Local,
                Arc::new(backends::AnyBackend::Embedding(engine.clone())),
            ))
            .build()
            .unwrap();
        let reply = g
            .chat(
                body("Jo has 4 boxes of 6 eggs. How many eggs in total?"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(reply.headers["x-triage-route"], "math", "{}", reply.body);
        assert_eq!(g.calls("a").unwrap(), 1);
        let reply = g
            .chat(body("Please turn 'happy birthday' into Korean"), None)
            .await
            .unwrap();
        assert_eq!(reply.headers["x-triage-task"], "translation");
        assert_eq!(reply.headers["x-triage-route"], "rest");

        // `triage serve` shares a configured embedding backend on the same GGUF.
        let shared = format!(
            "backends:\n  a: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: gpt-4o-mini }}\n  \
             enc: {{ kind: embedding, model: {m} }}\n\
             classifier: {{ kind: embedding, model: {h}, encoder: {m} }}\n\
             routes:\n  - {{ name: math, when: {{ task: math }}, to: a }}\n  - {{ name: rest, to: a }}\n",
            m = minilm().display(),
            h = head_file.display()
        );
        let config = Arc::new(Config::parse(&shared, "t.yaml", Path::new(".")).unwrap());
        let store = Arc::new(router::store::SqliteStore::in_memory().unwrap());
        let gateway = router::gateway::Gateway::build(
            config.clone(),
            store,
            router::gateway::Gateway::limits_for(&config),
        )
        .unwrap();
        let state = gateway.state();
        let encoder = state.backends().task_encoder().unwrap();
        assert_eq!(encoder.name, "enc");
    }

    /// The gateway's own encoder loads with the local engines, classifies, and survives a
    /// reload that keeps the same encoder file (no second copy loaded).
    #[tokio::test]
    async fn the_gateways_own_encoder_loads_and_is_kept_across_reloads() {
        let engine = engine().await;
        let mut examples = Vec::new();
        for (text, task) in TRAIN {
            examples.push((engine.embed_prefix(text).await.unwrap(), task.to_string()));
        }
        let id = EncoderId::of_file(&minilm(), engine.dimensions()).unwrap();
        let head = train_head(TASK_HEAD, id, &examples, &HeadOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let head_file = dir.path().join("task-head.json");
        head.save(&head_file).unwrap();
        let path = dir.path().join("triage.yaml");
        let text = yaml(&minilm(), &head_file, BY_TASK);
        std::fs::write(&path, &text).unwrap();

        let config = Arc::new(Config::load(&path).unwrap());
        let store = Arc::new(router::store::SqliteStore::in_memory().unwrap());
        let mut gateway = router::gateway::Gateway::build(
            config.clone(),
            store,
            router::gateway::Gateway::limits_for(&config),
        )
        .unwrap();
        gateway.load_local().await.unwrap();
        let before = gateway.state().backends().task_encoder().unwrap().clone();
        assert!(before.is_loaded());
        let vector = before
            .handle()
            .unwrap()
            .sentence_vector("What is 12 plus 30?".into())
            .await
            .unwrap();
        assert_eq!(vector.len(), 384);

        let reloader = router::gateway::Reloader::new(
            path.clone(),
            gateway.live().clone(),
            config,
            gateway.core().clone(),
            ("127.0.0.1:0".parse().unwrap(), false),
        );
        std::fs::write(&path, text.replace("threshold: 0.6", "threshold: 0.7")).unwrap();
        reloader.reload().await.unwrap();
        let after = gateway.live().current();
        let after = after.backends().task_encoder().unwrap();
        assert!(Arc::ptr_eq(&before, after), "the same encoder slot");
    }
}
