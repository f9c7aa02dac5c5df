//! Level-1 gateway tests: the axum app in-process (`oneshot`) with test-double backends and a
//! scripted routing core. Every test checks what the client sees and what was recorded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use router::gateway::{ApiKeys, GatewayOptions};
use router::testing::{chat_body, streamed_text, Reply};
use serde_json::json;

fn assert_openai_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    let v = reply.json().unwrap();
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some(), "{v}");
    assert_eq!(e["code"], code, "{v}");
}

#[tokio::test]
async fn non_streaming_answer_is_complete_with_headers_ledger_and_event() {
    let gw = TestGateway::new(options());
    let mut events = gw.state.subscribe();
    let reply = gw
        .chat(chat_body("the quick brown fox", false), Some("big"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let v = reply.json().unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "the quick brown fox");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(reply.header("x-triage-route"), Some("big"));
    assert_eq!(reply.header("x-triage-escalated"), Some("false"));
    // 4 prompt tokens at $1/M + 4 completion tokens at $2/M (the scripted price table; the
    // mock counts words).
    let cost: f64 = reply.header("x-triage-cost-usd").unwrap().parse().unwrap();
    assert!((cost - 12e-6).abs() < 1e-9, "{cost}");

    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 1);
    let row = &ledger[0];
    assert_eq!(row.id, v["id"].as_str().unwrap());
    assert_eq!(row.backend.as_deref(), Some("llm"));
    assert_eq!(row.status, 200);
    assert_eq!(row.task.as_deref(), Some("big"));
    assert_eq!(row.task_source.as_deref(), Some("header"));
    assert_eq!((row.prompt_tokens, row.completion_tokens), (4, 4));
    let event = events.try_recv().unwrap();
    assert_eq!(event.id, row.id);
}

#[tokio::test]
async fn streaming_answer_has_role_deltas_finish_usage_and_done() {
    let gw = TestGateway::new(options());
    let mut body = chat_body("one two three four five", true);
    body["stream_options"] = json!({"include_usage": true});
    let reply = gw.chat(body, Some("big")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(reply.header("x-triage-route"), Some("big"));
    assert_eq!(
        reply.header("x-triage-cost-usd"),
        None,
        "cost is only known at the end"
    );

    let data = reply.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let ids: std::collections::BTreeSet<_> = chunks.iter().map(|c| c["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "one id for every chunk");
    assert_eq!(streamed_text(&data), "one two three four five");
    let finish: Vec<_> = chunks
        .iter()
        .filter(|c| c["choices"][0]["finish_reason"].is_string())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(usage["usage"]["prompt_tokens"], 5);
    let cost = usage["triage"]["cost_usd"].as_f64().unwrap();
    assert!((cost - 15e-6).abs() < 1e-9, "{cost}");
    assert!(
        reply
            .body
            .contains(": triage backend=llm cost_usd=0.00001500"),
        "{}",
        reply.body
    );

    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 1);
    assert!(ledger[0].stream);
    assert_eq!(ledger[0].status, 200);
    assert!(ledger[0].ttft_ms.is_some());
}

#[tokio::test]
async fn streaming_without_include_usage_sends_no_usage_chunk() {
    let gw = TestGateway::new(options());
    let reply = gw.chat(chat_body("hello there", true), None).await;
    let data = reply.sse_data();
    assert_eq!(streamed_text(&data), "hello there");
    assert!(data
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .all(|d| serde_json::from_str::<serde_json::Value>(d)
            .unwrap()
            .get("usage")
            .is_none()));
    assert_eq!(reply.header("x-triage-backend"), Some("slm"));
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let gw = TestGateway::new(options());
    let mut body = chat_body("hi", false);
    body["model"] = json!("gpt-17");
    let reply = gw.chat(body, None).await;
    assert_openai_error(&reply, 404, "model_not_found");
    assert_eq!(reply.json().unwrap()["error"]["param"], "model");
    assert_eq!(gw.ledger()[0].status, 404);
}

#[tokio::test]
async fn backend_name_pins_that_backend() {
    let gw = TestGateway::new(options());
    let mut body = chat_body("pinned please", false);
    body["model"] = json!("llm");
    let reply = gw.chat(body, Some("small")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(reply.header("x-triage-route"), Some("pinned"));
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let gw = TestGateway::new(options());
    let reply = gw
        .send(
            Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_openai_error(&reply, 400, "invalid_request");

    let reply = gw
        .chat(
            json!({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}),
            None,
        )
        .await;
    assert_openai_error(&reply, 400, "invalid_request");
    let v = reply.json().unwrap();
    assert_eq!(v["error"]["param"], "messages[0].role", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("wizard"));

    let reply = gw
        .chat(json!({"model": "auto", "messages": []}), None)
        .await;
    assert_openai_error(&reply, 400, "invalid_request");
    assert_eq!(reply.json().unwrap()["error"]["param"], "messages");
    assert_eq!(gw.ledger().len(), 3, "rejected requests are ledgered too");
}

#[tokio::test]
async fn only_json_bodies_are_read_others_are_415() {
    let gw = TestGateway::new(options());
    let post = |content_type: Option<&str>| {
        let mut req = Request::post("/v1/chat/completions").header("x-triage-task", "big");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.body(Body::from(chat_body("hi", false).to_string()))
            .unwrap()
    };
    // What a web page can post without a CORS preflight, and no type at all.
    for refused in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        Some("application/json-seq"),
        None,
    ] {
        let reply = gw.send(post(refused)).await;
        assert_openai_error(&reply, 415, "unsupported_media_type");
        let v = reply.json().unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(v["error"]["param"].is_null(), "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{v}"
        );
    }
    assert_eq!(gw.calls("llm"), 0, "no refused body reached a backend");
    for accepted in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
    ] {
        let reply = gw.send(post(Some(accepted))).await;
        assert_eq!(reply.status, 200, "{accepted}: {}", reply.body);
    }
    let ledger = gw.ledger();
    assert_eq!(
        ledger.len(),
        10,
        "refused requests are ledgered like other rejections"
    );
    assert!(ledger[..7].iter().all(|r| r.status == 415));
}

#[tokio::test]
async fn task_names_are_short_and_plain_or_400() {
    let gw = TestGateway::new(options());
    // Uppercase folds to lowercase: `BIG` is the task `big`.
    let reply = gw.chat(chat_body("hi", false), Some("BIG")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-triage-route"), Some("big"));
    assert_eq!(gw.ledger()[0].task.as_deref(), Some("big"));

    for bad in [
        "a".repeat(65),
        "\u{1b}[31mred".to_string(),
        "two words".to_string(),
        "naïve".to_string(),
        "a/b".to_string(),
    ] {
        // A header cannot carry control characters at all; non-ASCII bytes it can.
        if let Ok(value) = axum::http::HeaderValue::from_bytes(bad.as_bytes()) {
            let request = Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .header("x-triage-task", value)
                .body(Body::from(chat_body("hi", false).to_string()))
                .unwrap();
            let reply = gw.send(request).await;
            assert_openai_error(&reply, 400, "invalid_request");
            let message = reply.json().unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(message.contains("x-triage-task"), "{message}");
        }

        let mut body = chat_body("hi", false);
        body["metadata"] = json!({ "task": bad });
        let reply = gw.chat(body, None).await;
        assert_openai_error(&reply, 400, "invalid_request");
        let v = reply.json().unwrap();
        assert_eq!(v["error"]["param"], "metadata.task", "{v}");
    }
    let long = gw.chat(chat_body("hi", false), Some(&"a".repeat(65))).await;
    assert!(long.json().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 64"));
    assert_eq!(gw.calls("llm"), 1);
    // No refused name reaches the ledger.
    assert!(gw
        .ledger()
        .iter()
        .all(|r| r.task.as_deref().is_none_or(|t| t == "big")));
}

#[tokio::test]
async fn keys_are_required_when_configured() {
    let gw = TestGateway::new(GatewayOptions {
        keys: Some(ApiKeys::parse("team-a:sk-test-1").unwrap()),
        ..options()
    });
    let reply = gw.chat(chat_body("hi", false), None).await;
    assert_openai_error(&reply, 401, "invalid_api_key");
    assert_eq!(
        reply.json().unwrap()["error"]["type"],
        "authentication_error"
    );

    let bad = Request::post("/v1/chat/completions")
        .header("authorization", "Bearer sk-wrong")
        .body(Body::from(chat_body("hi", false).to_string()))
        .unwrap();
    assert_openai_error(&gw.send(bad).await, 401, "invalid_api_key");

    let good = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test-1")
        .body(Body::from(chat_body("hi", false).to_string()))
        .unwrap();
    let reply = gw.send(good).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The two refusals are counted in metrics, not written to the ledger.
    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].key.as_deref(), Some("team-a"));
    assert!(ledger
        .iter()
        .all(|r| !format!("{r:?}").contains("sk-test-1")));

    let models = gw
        .send(Request::get("/v1/models").body(Body::empty()).unwrap())
        .await;
    assert_openai_error(&models, 401, "invalid_api_key");
    // /metrics stays open for scrapers unless asked otherwise.
    let metrics = gw
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(metrics.status, 200);
}

#[tokio::test]
async fn metrics_can_require_a_key() {
    let gw = TestGateway::new(GatewayOptions {
        keys: Some(ApiKeys::parse("team-a:sk-test-1").unwrap()),
        metrics_require_key: true,
        ..options()
    });
    let open = gw
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_openai_error(&open, 401, "invalid_api_key");
    let keyed = gw
        .send(
            Request::get("/metrics")
                .header("authorization", "Bearer sk-test-1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(keyed.status, 200, "{}", keyed.body);
    assert!(keyed.body.contains("# EOF"), "{}", keyed.body);
}

#[tokio::test]
async fn body_too_large_is_413() {
    let gw = TestGateway::new(GatewayOptions {
        body_limit_bytes: 1024,
        ..options()
    });
    let reply = gw.chat(chat_body(&"word ".repeat(400), false), None).await;
    assert_openai_error(&reply, 413, "request_too_large");
    assert_eq!(gw.ledger()[0].status, 413);
}

#[tokio::test]
async fn upstream_error_falls_back_before_any_token() {
    let gw = TestGateway::new(options());
    let reply = gw
        .chat(chat_body("fall back please", false), Some("broken"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(
        reply.json().unwrap()["choices"][0]["message"]["content"],
        "fall back please"
    );

    let reply = gw
        .chat(chat_body("fall back streaming", true), Some("broken"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(streamed_text(&reply.sse_data()), "fall back streaming");

    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 2);
    for row in &ledger {
        assert_eq!(row.tried, vec!["broken".to_string(), "llm".to_string()]);
        assert_eq!(row.backend.as_deref(), Some("llm"));
    }
    assert_eq!(gw.calls("broken"), 2);
}

#[tokio::test]
async fn upstream_error_without_fallback_is_502() {
    let gw = TestGateway::new(options());
    let reply = gw
        .chat(chat_body("no luck", false), Some("broken_only"))
        .await;
    assert_openai_error(&reply, 502, "upstream_error");
    let reply = gw
        .chat(chat_body("no luck", true), Some("broken_only"))
        .await;
    assert_openai_error(&reply, 502, "upstream_error");
    assert!(gw.ledger().iter().all(|r| r.status == 502));
}

#[tokio::test]
async fn mid_stream_disconnect_becomes_an_sse_error_event() {
    let gw = TestGateway::new(options());
    let reply = gw.chat(chat_body("a b c d e f", true), Some("cut")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-triage-backend"), Some("cut"));
    let data = reply.sse_data();
    assert_ne!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        streamed_text(&data),
        "a b c",
        "tokens already sent are not replayed"
    );
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "connection_error");
    assert!(last["error"]["message"].as_str().unwrap().contains("cut"));
    assert_eq!(gw.calls("llm"), 0, "no fallback once tokens were sent");
    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].status, 502);
    assert_eq!(ledger[0].error.as_deref(), Some("connection_error"));
}

#[tokio::test]
async fn cascade_accepts_a_confident_first_answer() {
    let gw = TestGateway::new(options());
    let reply = gw
        .chat(chat_body("sure thing", false), Some("cascade"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-triage-backend"), Some("slm"));
    assert_eq!(reply.header("x-triage-escalated"), Some("false"));
    let reply = gw
        .chat(chat_body("sure thing", true), Some("cascade"))
        .await;
    assert_eq!(reply.header("x-triage-backend"), Some("slm"));
    assert_eq!(streamed_text(&reply.sse_data()), "sure thing");
    assert_eq!(gw.calls("llm"), 0);
    for row in gw.ledger() {
        assert!(!row.escalated);
        assert!(row.confidence.unwrap() > 0.9);
        assert_eq!(row.cost_usd, 0.0);
        assert!(row.saved_usd > 0.0);
    }
}

#[tokio::test]
async fn cascade_escalates_an_unsure_first_answer() {
    let gw = TestGateway::new(options());
    let reply = gw
        .chat(chat_body("not so sure", false), Some("cascade_unsure"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(reply.header("x-triage-escalated"), Some("true"));
    let reply = gw
        .chat(chat_body("not so sure", true), Some("cascade_unsure"))
        .await;
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(reply.header("x-triage-escalated"), Some("true"));
    // The held-back first answer never reached the client: exactly one copy of the text.
    assert_eq!(streamed_text(&reply.sse_data()), "not so sure");
    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 2);
    for row in ledger {
        assert!(row.escalated);
        assert_eq!(row.tried, vec!["unsure".to_string(), "llm".to_string()]);
        assert!(row.confidence.unwrap() < 0.6);
    }

    let reply = gw
        .chat(chat_body("first fails", true), Some("cascade_broken"))
        .await;
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(reply.header("x-triage-escalated"), Some("true"));
}

#[tokio::test]
async fn exhausted_budget_refusal_is_429() {
    let gw = TestGateway::new(options());
    let reply = gw.chat(chat_body("spend", false), Some("budget")).await;
    assert_openai_error(&reply, 429, "budget_exhausted");
    assert_eq!(reply.json().unwrap()["error"]["type"], "rate_limit_error");
    assert_eq!(reply.header("x-triage-route"), Some("budget"));
    assert_eq!(gw.ledger()[0].status, 429);
}

/// Runs on tokio's paused clock: the test double's delays (`slow`: 40 ms before every token) and
/// the gateway's 60 ms deadline both count in it, so the outcome is the same however busy the
/// machine is.
#[tokio::test(start_paused = true)]
async fn deadline_turns_a_slow_answer_into_504() {
    let gw = TestGateway::new(GatewayOptions {
        request_deadline: Duration::from_millis(60),
        ..options()
    });
    // Whole: eight tokens take 320 ms.
    let reply = gw
        .chat(chat_body("w1 w2 w3 w4 w5 w6 w7 w8", false), Some("slow"))
        .await;
    assert_openai_error(&reply, 504, "timeout");
    // Streaming: the first token arrives in time (40 ms), the deadline passes before the second.
    let reply = gw
        .chat(chat_body("w1 w2 w3 w4 w5 w6 w7 w8", true), Some("slow"))
        .await;
    assert_eq!(reply.status, 200);
    let data = reply.sse_data();
    assert_eq!(streamed_text(&data), "w1");
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "timeout");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 2);
    assert!(ledger.iter().all(|r| r.status == 504));
}

#[tokio::test]
async fn client_going_away_mid_stream_is_still_ledgered() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let gw = TestGateway::new(options());
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-triage-task", "slow")
        .body(Body::from(
            chat_body("w1 w2 w3 w4 w5 w6 w7 w8", true).to_string(),
        ))
        .unwrap();
    let response = router::gateway::app(gw.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].status, 499);
    assert_eq!(ledger[0].error.as_deref(), Some("client_closed_request"));
}

#[tokio::test]
async fn task_comes_from_metadata_when_no_header() {
    let gw = TestGateway::new(options());
    let mut body = chat_body("meta", false);
    body["metadata"] = json!({"task": "big"});
    let reply = gw.chat(body, None).await;
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    let row = &gw.ledger()[0];
    assert_eq!(row.task_source.as_deref(), Some("metadata"));
}

#[tokio::test]
async fn models_health_ready_and_unknown_paths() {
    let gw = TestGateway::new(options());
    let models = gw
        .send(Request::get("/v1/models").body(Body::empty()).unwrap())
        .await;
    assert_eq!(models.status, 200);
    let ids: Vec<String> = models.json().unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"auto".to_string()) && ids.contains(&"slm".to_string()));
    let health = gw
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(health.status, 200);
    let ready = gw
        .send(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(ready.status, 200);
    let missing = gw
        .send(Request::get("/v2/nothing").body(Body::empty()).unwrap())
        .await;
    assert_openai_error(&missing, 404, "unknown_url");
    let wrong = gw
        .send(
            Request::get("/v1/chat/completions")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_openai_error(&wrong, 405, "method_not_allowed");
}

#[tokio::test]
async fn readyz_waits_for_loading_backends() {
    use router::gateway::{app, AppState, BackendSlot, Backends, Locality};
    use std::sync::Arc;
    use tower::ServiceExt;
    let mut backends = Backends::new();
    let slot = backends.insert(BackendSlot::pending("slm", Locality::Local));
    let state = AppState::new(backends, Arc::new(ScriptedCore::default()), options());
    let ready = |state: AppState| async move {
        app(state)
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready(state.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    // A request to the loading backend is a well-formed error, not a hang.
    let reply = app(state.clone())
        .oneshot(
            Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Body::from(chat_body("early", false).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    slot.install(Arc::new(backends::AnyBackend::Mock(
        backends::mock::MockBackend::new("echo").unwrap(),
    )));
    assert_eq!(ready(state).await, StatusCode::OK);
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_histograms() {
    let gw = TestGateway::new(options());
    gw.chat(chat_body("one two three", true), Some("big")).await;
    gw.chat(chat_body("one two", false), None).await;
    gw.chat(chat_body("x", false), Some("budget")).await;
    let reply = gw
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, 200);
    let lines = reply.body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let names: std::collections::BTreeSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for histogram in [
        "triage_time_to_first_token_seconds",
        "triage_inter_token_seconds",
        "triage_request_duration_seconds",
        "triage_tokens",
    ] {
        let has = scrape.samples.iter().any(|s| {
            s.metric == histogram && matches!(s.value, prometheus_parse::Value::Histogram(_))
        });
        assert!(has, "{histogram} missing as a histogram in {names:?}");
    }
    let count = |backend: &str, status: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "triage_requests_total")
            .filter(|s| {
                s.labels.get("backend") == Some(backend) && s.labels.get("status") == Some(status)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(count("llm", "200"), 1.0);
    assert_eq!(count("slm", "200"), 1.0);
    assert_eq!(count("none", "429"), 1.0);
    assert!(names.contains("triage_cost_usd_total"));
    assert!(names.contains("triage_local_queue_depth"));
    assert!(names.contains("triage_local_busy_slots"));
    let depth = scrape
        .samples
        .iter()
        .find(|s| s.metric == "triage_local_queue_depth" && s.labels.get("backend") == Some("slm"))
        .unwrap();
    assert!(matches!(depth.value, prometheus_parse::Value::Gauge(v) if v == 2.0));
}

#[tokio::test]
async fn overloaded_local_engine_without_fallback_is_429() {
    let gw = TestGateway::new(options());
    for stream in [false, true] {
        let mut body = chat_body("too busy", stream);
        body["model"] = json!("busy");
        let reply = gw.chat(body, None).await;
        assert_openai_error(&reply, 429, "overloaded");
        assert_eq!(reply.json().unwrap()["error"]["type"], "rate_limit_error");
    }
    assert_eq!(gw.ledger().len(), 2);
}

#[tokio::test]
async fn logprobs_reach_the_client_only_when_asked_whole_and_streamed() {
    let gw = TestGateway::new(options());
    // Not asked: no `logprobs` object, though the backend knows the numbers.
    let plain = gw.chat(chat_body("one two", false), Some("big")).await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.body);
    assert!(plain.json().unwrap()["choices"][0]
        .get("logprobs")
        .is_none());
    let mut asked = chat_body("one two", false);
    asked["logprobs"] = json!(true);
    let whole = gw.chat(asked.clone(), Some("big")).await;
    let v = whole.json().unwrap();
    let tokens = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    let text: String = tokens
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(text, "one two");
    assert!(tokens.iter().all(|t| t["logprob"].as_f64().unwrap() <= 0.0));
    // Streamed: each content chunk carries its own tokens' entries.
    asked["stream"] = json!(true);
    let streamed = gw.chat(asked, Some("big")).await;
    let mut seen = String::new();
    for data in streamed.sse_data() {
        let Ok(chunk) = serde_json::from_str::<serde_json::Value>(&data) else {
            continue;
        };
        let Some(c) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(content) = c["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
            let entries = c["logprobs"]["content"].as_array().unwrap();
            let covered: String = entries
                .iter()
                .map(|t| t["token"].as_str().unwrap())
                .collect();
            assert_eq!(covered, content);
            seen.push_str(content);
        }
    }
    assert_eq!(seen, "one two");
    // `top_logprobs` beyond OpenAI's 20 is a 400 naming the field.
    let mut too_many = chat_body("x", false);
    too_many["logprobs"] = json!(true);
    too_many["top_logprobs"] = json!(21);
    let reply = gw.chat(too_many, Some("big")).await;
    assert_openai_error(&reply, 400, "invalid_request");
    assert_eq!(reply.json().unwrap()["error"]["param"], "top_logprobs");
}
