//! `POST /v1/embeddings` through the real gateway and policy core: a local TEST DOUBLE embedder
//! (`FixedEmbedder`, vectors made from the text's length) and a real `OpenAiBackend` forwarding
//! to a TEST DOUBLE upstream (`MockUpstream`, an axum server that records what it received).
//! The real model is tested in backends/tests/embed.rs and tests/e2e_embeddings.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use backends::openai::OpenAiBackend;
use backends::remote::{RemoteConfig, RetryPolicy};
use backends::{
    AnyBackend, BackendError, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse,
    EventStream,
};
use common::options;
use futures::future::BoxFuture;
use router::gateway::{DynBackend, Locality};
use router::testing::{Reply, TestGateway};
use serde_json::{json, Value};

/// TEST DOUBLE: a local embedding model whose vector for a text is `[len, 1, 0]`, so tests can
/// tell answers apart; it reports 0.5 s of engine time per request for the machine price.
struct FixedEmbedder;

impl DynBackend for FixedEmbedder {
    fn chat(&self, _: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        Box::pin(async { Err(BackendError::InvalidRequest("embedding only".into())) })
    }
    fn chat_stream(&self, _: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        Box::pin(async { Err(BackendError::InvalidRequest("embedding only".into())) })
    }
    fn serves_embeddings(&self) -> bool {
        true
    }
    fn embeddings(
        &self,
        request: EmbeddingRequest,
    ) -> BoxFuture<'_, backends::Result<EmbeddingResponse>> {
        Box::pin(async move {
            let texts = request.input.texts(&request.model)?;
            let vectors = texts
                .iter()
                .map(|t| vec![t.len() as f32, 1.0, 0.0])
                .collect();
            let tokens = texts.iter().map(|t| t.split(' ').count() as u64 + 2).sum();
            let mut response = EmbeddingResponse::new(
                &request.model,
                vectors,
                tokens,
                request.encoding_format.unwrap_or_default(),
            );
            response.engine_busy_secs = 0.5;
            Ok(response)
        })
    }
}

/// TEST DOUBLE upstream: answers `/v1/embeddings` with one 2-number vector per input and keeps
/// every body it received.
struct MockUpstream {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mock_upstream() -> MockUpstream {
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/v1/embeddings",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let n = match &body["input"] {
                    Value::Array(items) if items.iter().all(Value::is_array) => items.len(),
                    Value::Array(items) if items.iter().all(Value::is_string) => items.len(),
                    _ => 1,
                };
                seen.lock().unwrap().push(body);
                let data: Vec<Value> = (0..n)
                    .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.25, -1.0]}))
                    .collect();
                axum::Json(json!({
                    "object": "list", "data": data, "model": "text-embedding-3-small",
                    "usage": {"prompt_tokens": 7, "total_tokens": 7}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    MockUpstream {
        addr,
        received,
        task,
    }
}

const CONFIG: &str = r#"
backends:
  slm: { kind: llama, model: models/test.gguf }
  emb: { kind: embedding, model: models/test-embedding.gguf }
  cloud: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: text-embedding-3-small }
pricing:
  emb: { machine_usd_per_hour: 3.6 }
  cloud: { input: 0.02, output: 0.0 }
routes:
  - { name: private, when: { pii: true }, to: slm }
  - { name: default, to: slm }
"#;

async fn gateway(config: &str, upstream: &MockUpstream) -> TestGateway {
    let mut remote = RemoteConfig::new(
        format!("http://{}/v1", upstream.addr),
        "text-embedding-3-small",
    );
    remote.retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let cloud = AnyBackend::OpenAi(OpenAiBackend::new(remote).unwrap());
    TestGateway::from_yaml(config)
        .options(options())
        .mock("slm", Locality::Local, "echo")
        .backend("emb", Locality::Local, Arc::new(FixedEmbedder))
        .backend("cloud", Locality::Remote, Arc::new(cloud))
        .build()
        .unwrap()
}

async fn embed(gw: &TestGateway, body: Value) -> Reply {
    gw.send(
        Request::post("/v1/embeddings")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn local_embeddings_are_openai_shaped_ledgered_and_priced_by_engine_time() {
    let upstream = mock_upstream().await;
    let gw = gateway(CONFIG, &upstream).await;
    let reply = embed(&gw, json!({"model": "emb", "input": ["ab", "abcd efg"]})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json().unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "emb");
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][1]["embedding"], json!([8.0, 1.0, 0.0]));
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 7, "total_tokens": 7})
    );
    assert_eq!(reply.header("x-triage-backend"), Some("emb"));
    assert_eq!(reply.header("x-triage-route"), Some("pinned"));
    assert_eq!(reply.header("x-triage-task"), Some("embedding"));
    // 0.5 s at $3.60/hour.
    assert_eq!(reply.header("x-triage-cost-usd"), Some("0.00050000"));

    let b64 = embed(
        &gw,
        json!({"model": "emb", "input": "ab", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(b64.status, 200, "{}", b64.body);
    // [2.0, 1.0, 0.0] as little-endian f32.
    assert_eq!(
        b64.json().unwrap()["data"][0]["embedding"],
        "AAAAQAAAgD8AAAAA"
    );

    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 2);
    let row = &rows[0];
    assert_eq!(row.task, "embedding");
    assert_eq!(row.backends, vec!["emb".to_string()]);
    assert_eq!((row.tokens_in, row.tokens_out, row.status), (7, 0, 200));
    assert!((row.cost_usd - 0.0005).abs() < 1e-12, "{}", row.cost_usd);
    assert!(upstream.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn remote_embeddings_are_forwarded_as_sent_with_the_upstream_model() {
    let upstream = mock_upstream().await;
    // Without a privacy rule token ids may go upstream (with one they may not: below).
    let no_privacy_rule =
        CONFIG.replace("  - { name: private, when: { pii: true }, to: slm }\n", "");
    assert_ne!(no_privacy_rule, CONFIG);
    let gw = gateway(&no_privacy_rule, &upstream).await;
    let reply = embed(
        &gw,
        json!({"model": "cloud", "input": [[1, 2, 3]], "dimensions": 2, "user": "u-1"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json().unwrap();
    assert_eq!(body["data"][0]["embedding"], json!([0.25, -1.0]));
    assert_eq!(body["usage"]["prompt_tokens"], 7);
    let sent = upstream.received.lock().unwrap().clone();
    assert_eq!(
        sent,
        vec![
            json!({"model": "text-embedding-3-small", "input": [[1, 2, 3]], "dimensions": 2, "user": "u-1"})
        ]
    );
    let rows = gw.ledger().unwrap();
    assert_eq!(rows[0].backends, vec!["cloud".to_string()]);
    // 7 tokens at $0.02 per 1M.
    assert!((rows[0].cost_usd - 7.0 * 0.02 / 1e6).abs() < 1e-15);
}

#[tokio::test]
async fn personal_data_never_reaches_a_remote_embedding_backend() {
    let upstream = mock_upstream().await;
    let gw = gateway(CONFIG, &upstream).await;
    let pii = json!({"model": "cloud", "input": ["fine", "mail jane.doe@example.com please"]});
    let reply = embed(&gw, pii).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let err = reply.json().unwrap();
    assert_eq!(err["error"]["code"], "refused_by_policy");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("personal data"));
    // Token ids cannot be read for PII: under the privacy rule they stay off remotes too.
    let tokens = embed(&gw, json!({"model": "cloud", "input": [5, 6, 7]})).await;
    assert_eq!(tokens.status, 403, "{}", tokens.body);
    assert!(upstream.received.lock().unwrap().is_empty());
    // The same text is fine on the local model.
    let local = embed(
        &gw,
        json!({"model": "emb", "input": "mail jane.doe@example.com please"}),
    )
    .await;
    assert_eq!(local.status, 200, "{}", local.body);
    let rows = gw.ledger().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![403, 403, 200]
    );
    assert!(rows.iter().all(|r| r.task == "embedding"));
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_errors_naming_the_problem() {
    let upstream = mock_upstream().await;
    let gw = gateway(CONFIG, &upstream).await;
    let cases = [
        (json!({"model": "emb", "input": ""}), 400, "empty"),
        (json!({"model": "emb", "input": []}), 400, "empty"),
        (json!({"model": "emb", "input": ["a", ""]}), 400, "input[1]"),
        (
            json!({"model": "emb", "input": {"text": "a"}}),
            400,
            "`input`",
        ),
        (json!({"model": "emb"}), 400, "input"),
        (json!({"model": "", "input": "a"}), 400, "model"),
        (
            json!({"model": "emb", "input": "a", "encoding_format": "hex"}),
            400,
            "encoding_format",
        ),
        (json!({"model": "nope", "input": "a"}), 404, "emb"),
        (json!({"model": "slm", "input": "a"}), 404, "cloud"),
    ];
    for (body, status, needle) in cases {
        let reply = embed(&gw, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        let err = reply.json().unwrap();
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 9, "every request ends in the ledger");
}

#[tokio::test]
async fn a_spent_budget_refuses_a_remote_embedding_instead_of_switching_models() {
    let upstream = mock_upstream().await;
    let config = format!("{CONFIG}budgets: {{ daily_usd: 0.0, on_exhausted: slm }}\n");
    let gw = gateway(&config, &upstream).await;
    let reply = embed(&gw, json!({"model": "cloud", "input": "hello"})).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(
        reply.body.contains("not moved to another model"),
        "{}",
        reply.body
    );
    assert!(upstream.received.lock().unwrap().is_empty());
    let local = embed(&gw, json!({"model": "emb", "input": "hello"})).await;
    assert_eq!(local.status, 200, "{}", local.body);
}

#[test]
fn routes_may_not_send_chat_to_an_embedding_backend() {
    let bad = CONFIG.replace("{ name: default, to: slm }", "{ name: default, to: emb }");
    let err = router::config::Config::parse(&bad, "t.yaml", std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kind: embedding") && err.contains("routes"),
        "{err}"
    );
    let wrong_field = CONFIG.replace(
        "model: models/test-embedding.gguf",
        "model: models/test-embedding.gguf, slots: 2",
    );
    let err = router::config::Config::parse(&wrong_field, "t.yaml", std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("slots"), "{err}");
}
