//! `POST /v1/messages` (Anthropic's Messages API) through the real policy core with test-double
//! backends: the message and stream shapes, the routing guards it shares with the chat endpoint
//! (PII, budgets), tool calls, and Anthropic-shaped errors from every layer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use backends::{
    BackendError, ChatEvent, ChatRequest, ChatResponse, EventStream, FinishReason, Usage,
};
use common::options;
use futures::future::BoxFuture;
use router::gateway::{ApiKeys, DynBackend, GatewayOptions, Locality};
use router::testing::{Reply, TestGateway};
use serde_json::{json, Value};

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
  - { name: default, to: llm, fallback: [slm] }
"#;

fn gateway(config: &str, llm: &str) -> TestGateway {
    TestGateway::from_yaml(config)
        .options(options())
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, llm)
        .build()
        .unwrap()
}

fn body(text: &str, stream: bool) -> Value {
    json!({
        "model": "auto",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    })
}

/// Every error on these paths is `{"type":"error","error":{"type","message"}}`.
fn anthropic_error(reply: &Reply, status: u16, kind: &str) -> String {
    assert_eq!(reply.status, status, "{}", reply.body);
    let v = reply.json().unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(
        v.get("code").is_none() && v["error"].get("code").is_none(),
        "{v}"
    );
    v["error"]["message"].as_str().unwrap().to_string()
}

/// The `type` of each streamed event, in order, checked against its `event:` name.
fn event_types(reply: &Reply) -> Vec<String> {
    let mut out = Vec::new();
    for block in reply.body.split("\n\n") {
        let name = block.lines().find_map(|l| l.strip_prefix("event: "));
        let data = block.lines().find_map(|l| l.strip_prefix("data: "));
        if let (Some(name), Some(data)) = (name, data) {
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["type"], name, "event name and data type differ: {block}");
            out.push(name.to_string());
        }
    }
    out
}

#[tokio::test]
async fn a_message_has_anthropics_shape_and_one_ledger_row() {
    let gw = gateway(CONFIG, "echo");
    let mut request = body("name a primary colour", false);
    request["system"] = json!([{"type": "text", "text": "Be brief."}]);
    let reply = gw.messages(request, &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let m = reply.json().unwrap();
    assert!(m["id"].as_str().unwrap().starts_with("msg_"), "{m}");
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "name a primary colour"}])
    );
    assert_eq!(m["stop_reason"], "end_turn");
    assert!(m["stop_sequence"].is_null());
    // The echo mock counts words: the system prompt is part of the prompt it saw.
    assert_eq!(
        m["usage"],
        json!({"input_tokens": 6, "output_tokens": 4}),
        "{m}"
    );
    assert_eq!(reply.header("x-triage-backend"), Some("llm"));
    assert_eq!(reply.header("x-triage-route"), Some("default"));
    assert!(reply.header("x-triage-cost-usd").is_some());
    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(reply.header("x-triage-request-id"), m["id"].as_str());
    assert_eq!(rows[0].status, 200);
    assert_eq!((rows[0].tokens_in, rows[0].tokens_out), (6, 4));
    assert!(rows[0].cost_usd > 0.0);
}

#[tokio::test]
async fn a_stream_sends_anthropics_events_in_order() {
    let gw = gateway(CONFIG, "echo");
    let reply = gw
        .messages(body("count one two three", true), &[])
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let types = event_types(&reply);
    assert_eq!(types[..3], ["message_start", "content_block_start", "ping"]);
    let deltas = types.iter().filter(|t| *t == "content_block_delta").count();
    assert_eq!(deltas, 4, "{types:?}");
    assert_eq!(
        types[types.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let data: Vec<Value> = reply
        .sse_data()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = data
        .iter()
        .filter(|v| v["type"] == "content_block_delta")
        .map(|v| {
            assert_eq!(v["delta"]["type"], "text_delta");
            v["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text.trim(), "count one two three");
    assert_eq!(data[0]["message"]["usage"]["output_tokens"], 0);
    let delta = &data[data.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(
        delta["usage"],
        json!({"input_tokens": 4, "output_tokens": 4})
    );
    assert!(reply.body.contains(": triage backend=llm cost_usd="));
    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].status, rows[0].tokens_out),
        (200, 4),
        "{:?}",
        rows[0]
    );
}

#[tokio::test]
async fn a_failure_mid_stream_is_an_error_event_and_a_ledger_row() {
    let gw = gateway(CONFIG, "disconnect_after_2");
    let reply = gw
        .messages(body("one two three four five", true), &[])
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let types = event_types(&reply);
    assert_eq!(types.last().map(String::as_str), Some("error"), "{types:?}");
    assert!(!types.contains(&"message_stop".to_string()));
    let last: Value = serde_json::from_str(reply.sse_data().last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "api_error", "{last}");
    let rows = gw.ledger().unwrap();
    assert_eq!(rows[0].status, 502, "{:?}", rows[0]);
}

#[tokio::test]
async fn requests_with_pii_never_reach_the_remote() {
    let gw = gateway(CONFIG, "echo");
    for stream in [false, true] {
        let reply = gw
            .messages(
                body("reply to jane.doe@example.com about her order", stream),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-triage-backend"), Some("slm"));
        assert_eq!(reply.header("x-triage-route"), Some("private"));
    }
    // PII in the system prompt and in a tool result counts as much as in the user's text.
    let mut in_system = body("summarise", false);
    in_system["system"] = json!("The customer is jane.doe@example.com.");
    let mut in_tool_result = body("x", false);
    in_tool_result["messages"] = json!([
        {"role": "user", "content": "look her up"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "crm", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
            "content": "card 4111 1111 1111 1111"}]}
    ]);
    for request in [in_system, in_tool_result] {
        let reply = gw.messages(request, &[]).await.unwrap();
        assert_eq!(
            reply.header("x-triage-route"),
            Some("private"),
            "{}",
            reply.body
        );
    }
    assert_eq!(gw.calls("llm").unwrap(), 0);
}

#[tokio::test]
async fn the_task_hint_routes_as_on_the_chat_endpoint() {
    let gw = gateway(CONFIG, "echo");
    let mut request = body("great movie", false);
    request["metadata"] = json!({"user_id": "u-1", "task": "sentiment"});
    let reply = gw.messages(request, &[]).await.unwrap();
    assert_eq!(reply.header("x-triage-route"), Some("small-tasks"));
    let reply = gw
        .messages(
            body("great movie", false),
            &[("x-triage-task", "sentiment")],
        )
        .await
        .unwrap();
    assert_eq!(reply.header("x-triage-backend"), Some("slm"));
}

#[tokio::test]
async fn a_spent_budget_is_refused_with_an_anthropic_rate_limit_error() {
    let config = format!("{CONFIG}budgets: {{ daily_usd: 0.00001, on_exhausted: refuse }}\n");
    let gw = gateway(&config, "echo");
    let mut first = body("tell me about the history of rome", false);
    first["max_tokens"] = json!(7);
    let reply = gw.messages(first, &[]).await.unwrap();
    assert_eq!(
        reply.header("x-triage-backend"),
        Some("llm"),
        "{}",
        reply.body
    );
    gw.policy_core().unwrap().flush();
    let reply = gw
        .messages(body("and of carthage", false), &[])
        .await
        .unwrap();
    anthropic_error(&reply, 429, "rate_limit_error");
    assert_eq!(gw.calls("llm").unwrap(), 1);
    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].status, 429);
}

#[tokio::test]
async fn errors_have_anthropics_shape_and_status() {
    let gw = gateway(CONFIG, "echo");
    // Missing `max_tokens` (required by the Messages API) names the field.
    let reply = gw
        .messages(
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await
        .unwrap();
    let message = anthropic_error(&reply, 400, "invalid_request_error");
    assert!(message.contains("max_tokens"), "{message}");
    // A bad block names its path.
    let mut bad_block = body("x", false);
    bad_block["messages"] = json!([{"role": "user", "content": [{"type": "document"}]}]);
    let reply = gw.messages(bad_block, &[]).await.unwrap();
    let message = anthropic_error(&reply, 400, "invalid_request_error");
    assert!(message.contains("messages[0].content[0]"), "{message}");
    // Unknown model.
    let mut unknown = body("x", false);
    unknown["model"] = json!("claude-nope");
    let reply = gw.messages(unknown, &[]).await.unwrap();
    let message = anthropic_error(&reply, 404, "not_found_error");
    assert!(message.contains("claude-nope"));
    // The upstream failing with no fallback left (slm answers; pin llm to see the failure).
    let gw_err = gateway(CONFIG, "error_500");
    let mut pinned = body("x", false);
    pinned["model"] = json!("llm");
    let reply = gw_err.messages(pinned, &[]).await.unwrap();
    anthropic_error(&reply, 502, "api_error");
    assert!(reply.json().unwrap()["request_id"]
        .as_str()
        .unwrap()
        .starts_with("msg_"));
    // Not JSON, wrong content type, unknown sub-path, wrong method.
    let send = |request: Request<Body>| gw.send(request);
    let reply = send(
        Request::post("/v1/messages")
            .header("content-type", "text/plain")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await
    .unwrap();
    anthropic_error(&reply, 415, "invalid_request_error");
    let reply = send(
        Request::post("/v1/messages")
            .header("content-type", "application/json")
            .body(Body::from("{not json"))
            .unwrap(),
    )
    .await
    .unwrap();
    anthropic_error(&reply, 400, "invalid_request_error");
    let reply = send(
        Request::post("/v1/messages/batches")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    anthropic_error(&reply, 404, "not_found_error");
    let reply = send(Request::get("/v1/messages").body(Body::empty()).unwrap())
        .await
        .unwrap();
    anthropic_error(&reply, 405, "invalid_request_error");
    // Oversized headers: the transport layer's 431, in the same shape.
    let reply = send(
        Request::post("/v1/messages")
            .header("x-big", "a".repeat(40 * 1024))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    anthropic_error(&reply, 431, "invalid_request_error");
    // The chat endpoint keeps OpenAI's shape.
    let reply = send(
        Request::post("/v1/chat/completions")
            .header("content-type", "text/plain")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        reply.json().unwrap()["error"]["code"],
        "unsupported_media_type"
    );
}

#[tokio::test]
async fn keys_are_read_from_x_api_key_and_bearer() {
    let gw = TestGateway::from_yaml(CONFIG)
        .options(GatewayOptions {
            keys: Some(ApiKeys::parse("alice:sk-alice").unwrap()),
            ..options()
        })
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap();
    let reply = gw.messages(body("hi", false), &[]).await.unwrap();
    let message = anthropic_error(&reply, 401, "authentication_error");
    assert!(message.contains("x-api-key"), "{message}");
    let reply = gw
        .messages(body("hi", false), &[("x-api-key", "sk-wrong")])
        .await
        .unwrap();
    anthropic_error(&reply, 401, "authentication_error");
    for header in [
        ("x-api-key", "sk-alice"),
        ("authorization", "Bearer sk-alice"),
    ] {
        let reply = gw.messages(body("hi", false), &[header]).await.unwrap();
        assert_eq!(reply.status, 200, "{header:?}: {}", reply.body);
    }
    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 2, "refusals write no ledger row");
    assert!(rows.iter().all(|r| r.key == "alice"), "{rows:?}");
}

/// TEST DOUBLE of a remote that calls a tool: text, then `get_weather({"city":"SF"})` in two
/// argument pieces, finish reason `tool_calls`. It records the last request it was given.
#[derive(Default)]
struct ToolCaller {
    seen: std::sync::Mutex<Option<ChatRequest>>,
}

impl ToolCaller {
    fn events() -> Vec<ChatEvent> {
        let at = Instant::now();
        let call =
            |id: Option<&str>, name: Option<&str>, arguments: &str| ChatEvent::ToolCallDelta {
                choice: 0,
                index: 0,
                id: id.map(str::to_string),
                name: name.map(str::to_string),
                arguments: arguments.to_string(),
                at,
            };
        vec![
            ChatEvent::Token {
                choice: 0,
                text: "Checking.".into(),
                logprobs: vec![],
                at,
            },
            call(Some("call_1"), Some("get_weather"), ""),
            call(None, None, "{\"city\":"),
            call(None, None, "\"SF\"}"),
            ChatEvent::Done {
                choice: 0,
                finish_reason: FinishReason::ToolCalls,
                stop_sequence: None,
                at,
            },
            ChatEvent::Usage {
                usage: Usage::new(12, 9),
                at,
            },
        ]
    }
}

impl DynBackend for ToolCaller {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        *self.seen.lock().unwrap() = Some(request);
        Box::pin(async {
            let stream: EventStream =
                Box::pin(futures::stream::iter(Self::events().into_iter().map(Ok)));
            backends::collect_stream(stream, "llm").await
        })
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        *self.seen.lock().unwrap() = Some(request);
        Box::pin(async {
            let stream: EventStream =
                Box::pin(futures::stream::iter(Self::events().into_iter().map(Ok)));
            Ok::<_, BackendError>(stream)
        })
    }
}

#[tokio::test]
async fn tools_reach_the_backend_and_calls_come_back_as_tool_use_blocks() {
    let caller = Arc::new(ToolCaller::default());
    let gw = TestGateway::from_yaml(CONFIG)
        .options(options())
        .mock("slm", Locality::Local, "echo")
        .backend("llm", Locality::Remote, caller.clone())
        .build()
        .unwrap();
    let mut request = body("What's the weather in SF?", false);
    request["tools"] = json!([{"name": "get_weather", "description": "Weather by city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    request["tool_choice"] = json!({"type": "tool", "name": "get_weather"});
    let reply = gw.messages(request.clone(), &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let m = reply.json().unwrap();
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "SF"}}])
    );
    let seen = caller.seen.lock().unwrap().clone().unwrap();
    assert_eq!(seen.extra["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        seen.extra["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );

    request["stream"] = json!(true);
    let reply = gw.messages(request, &[]).await.unwrap();
    let data: Vec<Value> = reply
        .sse_data()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = data.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(data[5]["index"], 1);
    assert_eq!(data[5]["content_block"]["type"], "tool_use");
    assert_eq!(data[5]["content_block"]["id"], "call_1");
    let partial: String = data[6..8]
        .iter()
        .map(|v| {
            assert_eq!(v["delta"]["type"], "input_json_delta");
            v["delta"]["partial_json"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(partial, "{\"city\":\"SF\"}");
    assert_eq!(data[9]["delta"]["stop_reason"], "tool_use");
    assert_eq!(data[9]["usage"]["output_tokens"], 9);
}

#[tokio::test]
async fn count_tokens_estimates_without_a_local_tokenizer() {
    let gw = gateway(CONFIG, "echo");
    let request = Request::post("/v1/messages/count_tokens")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"model": "auto", "system": "abcd",
                "messages": [{"role": "user", "content": "abcdefgh"}]})
            .to_string(),
        ))
        .unwrap();
    let reply = gw.send(request).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-triage-token-count"), Some("estimate"));
    // ceil(bytes / 4) over "abcd\nabcdefgh" (13 bytes).
    assert_eq!(reply.json().unwrap(), json!({"input_tokens": 4}));
    assert_eq!(gw.calls("llm").unwrap() + gw.calls("slm").unwrap(), 0);
}

/// TEST DOUBLE of a backend that ends every answer at the request's first stop string and says
/// so (as the local engine and Anthropic upstreams do): "Stopped." then `Done` naming it.
struct StopsAtFirstSequence;

impl StopsAtFirstSequence {
    fn events(request: &ChatRequest) -> Vec<ChatEvent> {
        let at = Instant::now();
        vec![
            ChatEvent::Token {
                choice: 0,
                text: "Stopped.".into(),
                logprobs: vec![],
                at,
            },
            ChatEvent::Done {
                choice: 0,
                finish_reason: FinishReason::Stop,
                stop_sequence: request.stop_sequences().into_iter().next(),
                at,
            },
            ChatEvent::Usage {
                usage: Usage::new(5, 2),
                at,
            },
        ]
    }
}

impl DynBackend for StopsAtFirstSequence {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        let events = Self::events(&request);
        Box::pin(async move {
            let stream: EventStream = Box::pin(futures::stream::iter(events.into_iter().map(Ok)));
            backends::collect_stream(stream, "llm").await
        })
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        let events = Self::events(&request);
        Box::pin(async move {
            let stream: EventStream = Box::pin(futures::stream::iter(events.into_iter().map(Ok)));
            Ok::<_, BackendError>(stream)
        })
    }
}

#[tokio::test]
async fn the_stop_sequence_that_ended_an_answer_is_reported_whole_and_streamed() {
    let gw = TestGateway::from_yaml(CONFIG)
        .options(options())
        .mock("slm", Locality::Local, "echo")
        .backend("llm", Locality::Remote, Arc::new(StopsAtFirstSequence))
        .build()
        .unwrap();
    let mut request = body("Count to ten.", false);
    request["stop_sequences"] = json!(["five", "END"]);
    let reply = gw.messages(request.clone(), &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let m = reply.json().unwrap();
    assert_eq!(m["stop_reason"], "stop_sequence", "{m}");
    assert_eq!(m["stop_sequence"], "five", "{m}");

    request["stream"] = json!(true);
    let reply = gw.messages(request.clone(), &[]).await.unwrap();
    let data: Vec<Value> = reply
        .sse_data()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let start = data.iter().find(|v| v["type"] == "message_start").unwrap();
    assert!(start["message"]["stop_sequence"].is_null(), "{start}");
    let delta = data.iter().find(|v| v["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence", "{delta}");
    assert_eq!(delta["delta"]["stop_sequence"], "five", "{delta}");

    // Without stop sequences the same answer simply ended its turn.
    request["stream"] = json!(false);
    request.as_object_mut().unwrap().remove("stop_sequences");
    let m = gw.messages(request, &[]).await.unwrap().json().unwrap();
    assert_eq!(m["stop_reason"], "end_turn", "{m}");
    assert!(m["stop_sequence"].is_null(), "{m}");
}
