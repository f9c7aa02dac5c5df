//! The gateway with the real routing core: a `triage.yaml` policy, the classifier and PII
//! detector, shipped prices and the SQLite ledger (in memory), with test-double backends
//! named as the config names them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::Request;
use backends::mock::MockBackend;
use common::options;
use router::gateway::{LocalLoad, Locality};
use router::testing::{chat_body, streamed_text, TestGateway};
use serde_json::json;

const CONFIG: &str = r#"
backends:
  slm: { kind: llama, model: models/test.gguf, slots: 2 }
  llm: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }
pricing:
  llm: { input: 0.15, output: 0.60 }
  slm: { machine_usd_per_hour: 0.05 }
routes:
  - { name: private, when: { pii: true }, to: slm }
  - { name: small-tasks, when: { task: [sentiment] }, to: slm }
  - { name: qa, when: { task: [qa] }, cascade: { first: slm, escalate_to: llm, min_confidence: 0.62 } }
  - { name: default, to: llm, fallback: [slm] }
"#;

/// The policy from `config` over an echoing `slm` and an `llm` with `llm_behaviour`.
fn gateway(config: &str, llm_behaviour: &str) -> TestGateway {
    TestGateway::from_yaml(config)
        .options(options())
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, llm_behaviour)
        .build()
        .unwrap()
}

#[tokio::test]
async fn routes_by_task_and_ledgers_cost_and_savings() {
    let gw = gateway(CONFIG, "echo");
    let small = gw
        .chat(chat_body("great movie, loved it", false), Some("sentiment"))
        .await
        .unwrap();
    assert_eq!(small.status, 200, "{}", small.body);
    assert_eq!(small.header("x-triage-backend"), Some("slm"));
    assert_eq!(small.header("x-triage-route"), Some("small-tasks"));
    let big = gw
        .chat(
            chat_body("write me a long essay about rivers", true),
            Some("essay"),
        )
        .await
        .unwrap();
    assert_eq!(big.status, 200);
    assert_eq!(big.header("x-triage-backend"), Some("llm"));
    assert_eq!(big.header("x-triage-route"), Some("default"));

    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].backends, vec!["slm".to_string()]);
    assert_eq!(rows[0].task, "sentiment");
    assert!(rows[0].saved_usd > 0.0, "{:?}", rows[0]);
    assert_eq!(rows[1].backends, vec!["llm".to_string()]);
    assert_eq!(rows[1].route, "default");
    // 7 prompt tokens (the mock counts words) at $0.15/M + 7 completion tokens at $0.60/M.
    let expected = 7.0 * 0.15e-6 + 7.0 * 0.60e-6;
    assert!((rows[1].cost_usd - expected).abs() < 1e-12, "{:?}", rows[1]);
    assert_eq!(rows[1].status, 200);
}

#[tokio::test]
async fn requests_with_pii_never_reach_the_remote() {
    let gw = gateway(CONFIG, "echo");
    for stream in [false, true] {
        let reply = gw
            .chat(
                chat_body(
                    "please email jane.doe@example.com the quarterly report",
                    stream,
                ),
                None,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-triage-backend"), Some("slm"));
        assert_eq!(reply.header("x-triage-route"), Some("private"));
    }
    // Pinning the remote backend with PII is refused by the privacy guard.
    let mut body = chat_body("mail jane.doe@example.com", false);
    body["model"] = json!("llm");
    let reply = gw.chat(body, None).await.unwrap();
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json().unwrap()["error"]["code"], "refused_by_policy");
    assert_eq!(reply.json().unwrap()["error"]["type"], "permission_error");
    assert_eq!(gw.calls("llm").unwrap(), 0);
    assert_eq!(gw.ledger().unwrap().len(), 3);
}

#[tokio::test]
async fn spent_budget_routes_to_the_slm() {
    let config = format!("{CONFIG}budgets: {{ daily_usd: 0.00001, on_exhausted: slm }}\n");
    let gw = gateway(&config, "echo");
    // $10 µ admits one request reserving ~$6 µ (its `max_tokens: 7` at $0.60/M and the prompt),
    // which settles at $5.25 µ (rounded up to 6): the next reservation no longer fits.
    let mut body = chat_body("tell me about the history of rome", false);
    body["max_tokens"] = serde_json::json!(7);
    let first = gw.chat(body.clone(), None).await.unwrap();
    assert_eq!(first.header("x-triage-backend"), Some("llm"));
    gw.policy_core().unwrap().flush();
    let second = gw.chat(body, None).await.unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-triage-backend"), Some("slm"));
    assert_eq!(second.header("x-triage-route"), Some("budget"));
}

#[tokio::test]
async fn refusing_budget_answers_429() {
    let config = format!("{CONFIG}budgets: {{ daily_usd: 0.00001, on_exhausted: refuse }}\n");
    let gw = gateway(&config, "echo");
    let mut body = chat_body("tell me about the history of rome", false);
    body["max_tokens"] = serde_json::json!(7);
    let first = gw.chat(body, None).await.unwrap();
    assert_eq!(
        first.header("x-triage-backend"),
        Some("llm"),
        "{}",
        first.body
    );
    gw.policy_core().unwrap().flush();
    let reply = gw
        .chat(chat_body("and of carthage", false), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.json().unwrap()["error"]["type"], "rate_limit_error");
    assert_eq!(reply.json().unwrap()["error"]["code"], "budget_exhausted");
}

#[tokio::test]
async fn remote_failure_falls_back_to_the_slm() {
    let gw = gateway(CONFIG, "error_500");
    for stream in [false, true] {
        let reply = gw
            .chat(
                chat_body("what is the capital of peru", stream),
                Some("essay"),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-triage-backend"), Some("slm"));
    }
    let rows = gw.ledger().unwrap();
    assert!(rows
        .iter()
        .all(|r| r.backends == vec!["llm".to_string(), "slm".to_string()]));
}

#[tokio::test]
async fn cascade_from_config_accepts_the_confident_slm() {
    let gw = gateway(CONFIG, "echo");
    let reply = gw
        .chat(chat_body("who wrote hamlet", true), Some("qa"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-triage-backend"), Some("slm"));
    assert_eq!(reply.header("x-triage-escalated"), Some("false"));
    assert_eq!(streamed_text(&reply.sse_data()), "who wrote hamlet");
    assert_eq!(gw.calls("llm").unwrap(), 0);
}

#[tokio::test]
async fn models_lists_auto_backends_and_routes() {
    let gw = gateway(CONFIG, "echo");
    let reply = gw
        .send(Request::get("/v1/models").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let v = reply.json().unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["auto", "llm", "slm"]);
    let routes: Vec<&str> = v["triage_routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(routes, vec!["private", "small-tasks", "qa", "default"]);
}

#[tokio::test]
async fn busy_local_engine_spills_to_the_remote() {
    let config = r#"
backends:
  slm: { kind: llama, model: models/test.gguf, slots: 2 }
  llm: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }
pricing:
  llm: { input: 0.15, output: 0.60 }
  slm: { machine_usd_per_hour: 0.05 }
routes:
  - { name: local-first, to: slm, spill: { to: llm, queue_depth: 3 } }
"#;
    let build = |queue_depth: usize| {
        let load = LocalLoad {
            queue_depth,
            busy_slots: 2,
            slots: 2,
            predicted_ttft_ms: None,
        };
        TestGateway::from_yaml(config)
            .mock_under_load("slm", "echo", load)
            .mock("llm", Locality::Remote, "echo")
            .build()
            .unwrap()
    };
    let calm = build(1)
        .chat(chat_body("hello there", false), None)
        .await
        .unwrap();
    assert_eq!(calm.header("x-triage-backend"), Some("slm"));
    let busy = build(5);
    let reply = busy
        .chat(chat_body("hello there", false), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(reply.header("x-triage-route"), Some("local-first"));
    let rows = busy.ledger().unwrap();
    assert_eq!(rows[0].backends, vec!["llm".to_string()]);
    assert_eq!(busy.calls("llm").unwrap(), 1);
}

#[tokio::test]
async fn local_answers_are_billed_by_engine_time_whole_or_streamed() {
    // The slm reports 36 engine seconds per answer, as the llama engine does.
    let gw = TestGateway::from_yaml(CONFIG)
        .options(options())
        .mock_backend(
            "slm",
            Locality::Local,
            MockBackend::new("echo").unwrap().with_local_compute(36.0),
        )
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap();
    // Routed to the slm, and a cascade's accepted slm answer (replayed as a stream).
    for (task, stream) in [
        ("sentiment", false),
        ("sentiment", true),
        ("qa", false),
        ("qa", true),
    ] {
        let reply = gw
            .chat(chat_body("who wrote hamlet", stream), Some(task))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-triage-backend"), Some("slm"));
    }
    // 36 engine seconds at $0.05 per machine hour, not the stream's wall time.
    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert!((row.cost_usd - 0.0005).abs() < 1e-12, "{row:?}");
    }
    assert_eq!(gw.calls("llm").unwrap(), 0);
}

/// A synthetic labelled set: three tasks, each an instruction wording around varied content.
fn synthetic_examples() -> Vec<router::classifier::Example> {
    let contents = [
        "the film was a delight from start to finish",
        "the hotel room smelled and the staff were rude",
        "my order arrived two weeks late",
        "a gripping story with wonderful actors",
        "the battery died after one day",
        "the soup was cold and the bread stale",
        "best concert I have been to in years",
        "the app crashes every time I open it",
    ];
    let mut out = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        let sentiment = if i % 2 == 0 {
            format!("Is the sentiment of this review positive or negative?\nReview: {c}")
        } else {
            format!("Classify the sentiment of the following text: {c}")
        };
        let translation = if i % 2 == 0 {
            format!("Translate into French.\nEnglish: {c}\nFrench:")
        } else {
            format!("Please translate this sentence to German: {c}")
        };
        let math = format!(
            "Solve the word problem: a shop sells {} apples a day for {} days; how many apples \
             does it sell in total?",
            i + 3,
            2 * i + 1
        );
        for (text, task) in [
            (sentiment, "sentiment"),
            (translation, "translation"),
            (math, "math"),
        ] {
            out.push(router::classifier::Example {
                text,
                task: task.to_string(),
            });
        }
    }
    out
}

#[tokio::test]
async fn untagged_requests_are_classified_and_routed_by_the_trained_model() {
    use router::classifier::{evaluate, stratified_split, train, Example, TrainOptions};
    let (kept, held) =
        stratified_split(synthetic_examples(), |e: &Example| e.task.clone(), 0.25, 3);
    let model = train(&kept, &TrainOptions::default()).unwrap();
    // The held-out quarter is classified right: the model learnt the wordings, not the items.
    let eval = evaluate(&model, 0.5, &held);
    assert_eq!(eval.total().correct, held.len(), "{eval:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models/task-classifier.json");
    model.save(&path).unwrap();

    // No classifier rules: only the trained model can name the task.
    let config = format!(
        "{CONFIG}classifier: {{ model: {}, threshold: 0.5 }}\n",
        path.display()
    );
    let gw = gateway(&config, "echo");
    let sentiment = gw
        .chat(
            chat_body(
                "Is the sentiment of this review positive or negative?\nReview: the seats \
                 were comfortable and the pilot was friendly",
                false,
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(sentiment.status, 200, "{}", sentiment.body);
    assert_eq!(sentiment.header("x-triage-task"), Some("sentiment"));
    assert_eq!(sentiment.header("x-triage-route"), Some("small-tasks"));
    assert_eq!(sentiment.header("x-triage-backend"), Some("slm"));

    let translation = gw
        .chat(
            chat_body(
                "Translate into French.\nEnglish: the museum opens at nine\nFrench:",
                false,
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(translation.header("x-triage-task"), Some("translation"));
    assert_eq!(translation.header("x-triage-route"), Some("default"));
    assert_eq!(translation.header("x-triage-backend"), Some("llm"));
    assert_eq!(gw.calls("llm").unwrap(), 1);

    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].task, "sentiment");
    assert_eq!(rows[1].task, "translation");
}

#[tokio::test]
async fn a_missing_model_file_starts_the_gateway_on_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models/task-classifier.json");
    let config = format!(
        "{CONFIG}classifier: {{ model: {}, rules: [{{ task: sentiment, keywords: [review] }}] }}\n",
        path.display()
    );
    let gw = gateway(&config, "echo");
    assert_eq!(gw.policy_core().unwrap().config().warnings.len(), 1);
    let rule = gw
        .chat(chat_body("a short review: loved it", false), None)
        .await
        .unwrap();
    assert_eq!(rule.status, 200, "{}", rule.body);
    assert_eq!(rule.header("x-triage-route"), Some("small-tasks"));
    let unknown = gw
        .chat(chat_body("Translate into French: good night", false), None)
        .await
        .unwrap();
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert_eq!(unknown.header("x-triage-task"), Some("unknown"));
    assert_eq!(unknown.header("x-triage-route"), Some("default"));
}

/// The cascade's escalation target cannot answer — its key is missing (the slot is down), it
/// refuses connections, it answers 500 — so the unsure first answer is delivered after all,
/// whole and streamed, marked `escalation_failed` in the headers and the ledger, billed once.
#[tokio::test]
async fn cascade_keeps_the_first_answer_when_the_escalation_is_down() {
    let down = router::gateway::BackendSlot::pending("llm", Locality::Remote);
    down.fail("environment variable OPENAI_API_KEY is not set".into());
    let cases: Vec<(&str, TestGateway, &str)> = vec![
        (
            "down",
            TestGateway::from_yaml(CONFIG)
                .options(options())
                .mock("slm", Locality::Local, "unsure")
                .slot(down)
                .build()
                .unwrap(),
            "engine_error",
        ),
        (
            "500",
            TestGateway::from_yaml(CONFIG)
                .options(options())
                .mock("slm", Locality::Local, "unsure")
                .mock("llm", Locality::Remote, "error_500")
                .build()
                .unwrap(),
            "upstream_error",
        ),
        (
            "refused",
            TestGateway::from_yaml(CONFIG)
                .options(options())
                .mock("slm", Locality::Local, "unsure")
                // A real OpenAI client against a closed port: connection refused.
                .backend(
                    "llm",
                    Locality::Remote,
                    std::sync::Arc::new(backends::AnyBackend::OpenAi(
                        backends::openai::OpenAiBackend::new(backends::remote::RemoteConfig {
                            retry: backends::remote::RetryPolicy::never(),
                            ..backends::remote::RemoteConfig::new(
                                "http://127.0.0.1:9/v1",
                                "gpt-4o-mini",
                            )
                        })
                        .unwrap(),
                    )),
                )
                .build()
                .unwrap(),
            "connection_error",
        ),
    ];
    for (case, gw, code) in cases {
        for stream in [false, true] {
            let reply = gw
                .chat(chat_body("maybe it is Paris", stream), Some("qa"))
                .await
                .unwrap();
            assert_eq!(reply.status, 200, "{case}: {}", reply.body);
            assert_eq!(reply.header("x-triage-backend"), Some("slm"), "{case}");
            assert_eq!(reply.header("x-triage-escalated"), Some("false"), "{case}");
            assert_eq!(
                reply.header("x-triage-escalation-failed"),
                Some(code),
                "{case}"
            );
            let text = if stream {
                streamed_text(&reply.sse_data())
            } else {
                reply.json().unwrap()["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            assert_eq!(text, "maybe it is Paris", "{case}: the first answer, once");
        }
        let rows = gw.ledger().unwrap();
        assert_eq!(rows.len(), 2, "{case}");
        for row in rows {
            assert_eq!(row.status, 200, "{case}");
            assert_eq!(row.backends, ["slm", "llm"], "{case}");
            assert_eq!(row.answered_by(), "slm", "{case}");
            assert!(!row.escalated, "{case}");
            assert_eq!(
                row.error_code.as_deref(),
                Some(format!("escalation_failed:{code}").as_str()),
                "{case}"
            );
            // The first answer is billed once (as the answer, not also as a wasted call).
            assert_eq!(row.tokens_out, 4, "{case}");
        }
    }
}
