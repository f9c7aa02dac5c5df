#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every Anthropic SSE stream and recorded HTTP exchange in `tests/fixtures/anthropic`,
//! replayed from a local upstream through `AnthropicBackend`, must come out as exactly the
//! text, tool calls, finish reason and usage it contains (read here with plain `serde_json`),
//! including the recorded 429, 429, 200 sequences (success on the third attempt) and the
//! `overloaded_error` event. Recorded requests are also compared with what the backend sends.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use backends::anthropic::AnthropicBackend;
use backends::{
    collect_stream, Backend, BackendError, ChatEvent, ChatMessage, ChatRequest, ChatResponse,
    JsonSchemaFormat, MessageContent, ResponseFormat, Role,
};
use common::*;
use serde_json::{json, Value};

const KEY_VAR: &str = "TRIAGE_TEST_ANTHROPIC_FIXTURE_KEY";
const KEY: &str = "sk-ant-fixture-test-key-0002";
const MODEL: &str = "claude-upstream-model";

fn backend(upstream: &TestUpstream) -> AnthropicBackend {
    std::env::set_var(KEY_VAR, KEY);
    let mut config = config(&upstream.base_url, MODEL);
    config.api_key_env = Some(KEY_VAR.into());
    AnthropicBackend::new(config).unwrap()
}

#[derive(Debug, Default, PartialEq)]
struct Expected {
    content: Option<String>,
    refusal: Option<String>,
    /// (id, name, arguments) per tool call.
    tool_calls: Vec<(String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<(u32, u32, u32)>,
}

fn openai_finish(stop_reason: &str) -> String {
    match stop_reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_string()
}

#[derive(Default)]
struct Counts {
    input: u64,
    output: u64,
    cache_creation: u64,
    cache_read: u64,
}

impl Counts {
    fn update(&mut self, usage: &Value) {
        let get = |k: &str| usage.get(k).and_then(Value::as_u64);
        self.input = get("input_tokens").unwrap_or(self.input);
        self.output = get("output_tokens").unwrap_or(self.output);
        self.cache_creation = get("cache_creation_input_tokens").unwrap_or(self.cache_creation);
        self.cache_read = get("cache_read_input_tokens").unwrap_or(self.cache_read);
    }

    fn openai(&self) -> (u32, u32, u32) {
        let prompt = (self.input + self.cache_creation + self.cache_read) as u32;
        (prompt, self.output as u32, prompt + self.output as u32)
    }
}

/// Expectations of an SSE transcript, or the `error.type` of its error event.
fn expected_from_stream(text: &str) -> Result<Expected, String> {
    let mut out = Expected::default();
    let mut counts = Counts::default();
    let mut tools: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    for data in sse_data_lines(text) {
        let event: Value = serde_json::from_str(&data).unwrap();
        match event["type"].as_str().unwrap() {
            "message_start" => counts.update(&event["message"]["usage"]),
            "content_block_start" => {
                let block = &event["content_block"];
                match block["type"].as_str().unwrap() {
                    "text" => {
                        let t = block["text"].as_str().unwrap();
                        if !t.is_empty() {
                            out.content.get_or_insert_with(String::new).push_str(t);
                        }
                    }
                    "tool_use" => {
                        tools.insert(
                            event["index"].as_u64().unwrap(),
                            (
                                block["id"].as_str().unwrap().into(),
                                block["name"].as_str().unwrap().into(),
                                String::new(),
                            ),
                        );
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = &event["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let t = delta["text"].as_str().unwrap();
                        if !t.is_empty() {
                            out.content.get_or_insert_with(String::new).push_str(t);
                        }
                    }
                    "input_json_delta" => {
                        if let Some(tool) = tools.get_mut(&event["index"].as_u64().unwrap()) {
                            tool.2.push_str(delta["partial_json"].as_str().unwrap());
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                counts.update(&event["usage"]);
                let stop = event["delta"]["stop_reason"].as_str().unwrap();
                out.finish_reason = Some(openai_finish(stop));
                if stop == "refusal" {
                    out.refusal = event["delta"]["stop_details"]["explanation"]
                        .as_str()
                        .map(str::to_string);
                }
                out.usage = Some(counts.openai());
            }
            "error" => return Err(event["error"]["type"].as_str().unwrap().to_string()),
            _ => {}
        }
    }
    out.tool_calls = tools.into_values().collect();
    Ok(out)
}

/// Expectations of a non-streaming message body.
fn expected_from_body(body: &Value) -> Expected {
    let mut out = Expected::default();
    for block in body["content"].as_array().unwrap() {
        match block["type"].as_str().unwrap() {
            "text" => out
                .content
                .get_or_insert_with(String::new)
                .push_str(block["text"].as_str().unwrap()),
            "tool_use" => out.tool_calls.push((
                block["id"].as_str().unwrap().into(),
                block["name"].as_str().unwrap().into(),
                // Compared as JSON values below.
                block["input"].to_string(),
            )),
            _ => {}
        }
    }
    let stop = body["stop_reason"].as_str().unwrap();
    out.finish_reason = Some(openai_finish(stop));
    let mut counts = Counts::default();
    counts.update(&body["usage"]);
    out.usage = Some(counts.openai());
    out
}

fn actual(response: &ChatResponse) -> Expected {
    assert_eq!(response.choices.len(), 1);
    let c = &response.choices[0];
    Expected {
        content: c.message.content.clone(),
        refusal: c.message.refusal.clone(),
        tool_calls: c
            .message
            .tool_calls
            .iter()
            .flatten()
            .map(|t| {
                (
                    t.id.clone(),
                    t.function.name.clone(),
                    t.function.arguments.clone(),
                )
            })
            .collect(),
        finish_reason: c.finish_reason.as_ref().map(|f| f.as_str().to_string()),
        usage: response
            .usage
            .as_ref()
            .map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
    }
}

/// Tool-call arguments compared as JSON when both parse (non-streaming bodies re-serialise).
fn same_calls(a: &[(String, String, String)], b: &[(String, String, String)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0
                && x.1 == y.1
                && match (
                    serde_json::from_str::<Value>(&x.2),
                    serde_json::from_str::<Value>(&y.2),
                ) {
                    (Ok(p), Ok(q)) => p == q,
                    _ => x.2 == y.2,
                }
        })
}

fn assert_matches(actual: &Expected, expected: &Expected, what: &str) {
    assert_eq!(actual.content, expected.content, "{what}: content");
    assert_eq!(actual.refusal, expected.refusal, "{what}: refusal");
    assert_eq!(
        actual.finish_reason, expected.finish_reason,
        "{what}: finish"
    );
    assert_eq!(actual.usage, expected.usage, "{what}: usage");
    assert!(
        same_calls(&actual.tool_calls, &expected.tool_calls),
        "{what}: tool calls {:?} != {:?}",
        actual.tool_calls,
        expected.tool_calls
    );
}

#[tokio::test]
async fn every_sse_transcript_parses_to_its_exact_content() {
    let files = fixture_files("anthropic/stream_sse", ".sse");
    assert_eq!(files.len(), 11);
    let mut errors_seen = 0;
    for file in files {
        let raw = wire_sse(&read_fixture(&file));
        let expected = expected_from_stream(&String::from_utf8(raw.clone()).unwrap());
        let upstream = TestUpstream::start(vec![Reply::sse(raw)]).await;
        let backend = backend(&upstream);
        let stream = backend
            .chat_stream(ChatRequest::user("auto", "hello"))
            .await
            .unwrap();
        let (events, error) = drain(stream).await;
        assert!(matches!(events.first(), Some(ChatEvent::FirstByte { .. })));
        match expected {
            Ok(expected) => {
                assert!(error.is_none(), "{file}: {error:?}");
                let response = collect_stream(
                    Box::pin(futures::stream::iter(events.into_iter().map(Ok))),
                    "m",
                )
                .await
                .unwrap();
                assert_matches(&actual(&response), &expected, &file);
            }
            Err(error_type) => {
                errors_seen += 1;
                assert_eq!(error_type, "overloaded_error");
                match error {
                    Some(BackendError::RateLimited { status, body, .. }) => {
                        assert_eq!(status, 529, "{file}");
                        assert!(body.contains("Overloaded"), "{file}: {body}");
                    }
                    other => panic!("{file}: expected a typed overloaded error, got {other:?}"),
                }
                assert!(!events.iter().any(|e| matches!(e, ChatEvent::Token { .. })));
            }
        }
        let hits = upstream.hits();
        assert_eq!(
            hits.len(),
            1,
            "{file}: an error inside a 200 stream is never retried"
        );
        assert_eq!(hits[0].path, "/v1/messages");
        assert_eq!(hits[0].header("x-api-key").as_deref(), Some(KEY));
        assert_eq!(
            hits[0].header("anthropic-version").as_deref(),
            Some("2023-06-01")
        );
        assert!(hits[0].header("authorization").is_none());
        let sent = hits[0].json();
        assert_eq!(sent["model"], MODEL);
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["max_tokens"], 1024, "default max_tokens");
    }
    assert_eq!(errors_seen, 1);
}

/// Replayed byte for byte, a file whose last event lacks its terminating blank line is a
/// stream cut before `message_stop`: a protocol error after the content, never a silent end.
#[tokio::test]
async fn truncated_fixture_files_are_protocol_errors() {
    let raw = read_fixture("anthropic/stream_sse/basic_response.sse");
    assert!(
        !raw.ends_with(b"\n"),
        "fixture changed: it now ends its last event"
    );
    let upstream = TestUpstream::start(vec![Reply::sse(raw)]).await;
    let stream = backend(&upstream)
        .chat_stream(ChatRequest::user("auto", "hello"))
        .await
        .unwrap();
    let (events, error) = drain(stream).await;
    match error {
        Some(BackendError::Protocol(message)) => {
            assert!(message.contains("message_stop"), "{message}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    // Everything before the cut was delivered, including the finish reason.
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Token { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Hello there!");
    assert_eq!(upstream.hit_count(), 1);
}

#[test]
fn sse_transcript_spot_checks() {
    let expected = |name: &str| {
        expected_from_stream(
            &String::from_utf8(read_fixture(&format!("anthropic/stream_sse/{name}"))).unwrap(),
        )
        .unwrap()
    };
    let e = expected("basic_response.sse");
    assert_eq!(e.content.as_deref(), Some("Hello there!"));
    assert_eq!(e.finish_reason.as_deref(), Some("stop"));
    let e = expected("tool_use_response.sse");
    assert_eq!(e.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(e.tool_calls.len(), 1);
    assert_eq!(e.usage.unwrap().0, 377);
    let e = expected("refusal_response.sse");
    assert_eq!(e.finish_reason.as_deref(), Some("content_filter"));
    assert_eq!(
        e.refusal.as_deref(),
        Some("This request was refused due to policy.")
    );
    let e = expected("incomplete_partial_json_response.sse");
    assert_eq!(e.finish_reason.as_deref(), Some("length"));
}

/// One recorded request/response pair, from either SDK's recording format.
struct Exchange {
    request: Value,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn load_exchanges(file: &str) -> Vec<Exchange> {
    let all: Value = serde_json::from_slice(&read_fixture(file)).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let (request, status, headers, body) = if x.get("request").is_some() {
                (
                    x["request"]["body"].clone(),
                    x["response"]["status_code"].as_u64().unwrap() as u16,
                    x["response"]["headers"].clone(),
                    x["response"]["body"].clone(),
                )
            } else {
                (
                    x["body"].clone(),
                    x["status"].as_u64().unwrap() as u16,
                    x["rawHeaders"].clone(),
                    x["response"].clone(),
                )
            };
            let headers = headers
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.to_ascii_lowercase().as_str(),
                        "content-length" | "transfer-encoding" | "connection" | "content-encoding"
                    )
                })
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let body = match body {
                Value::String(s) => s.into_bytes(),
                other => serde_json::to_vec(&other).unwrap(),
            };
            Exchange {
                request,
                status,
                headers,
                body,
            }
        })
        .collect()
}

/// Consecutive exchanges with the same request are one call and its retries.
fn group_calls(exchanges: Vec<Exchange>) -> Vec<Vec<Exchange>> {
    let mut calls: Vec<Vec<Exchange>> = Vec::new();
    for x in exchanges {
        match calls.last_mut() {
            Some(call) if call[0].request == x.request => call.push(x),
            _ => calls.push(vec![x]),
        }
    }
    calls
}

/// The OpenAI-shaped request a client would send for a recorded Anthropic request. A first
/// turn (one user string) is expressed in OpenAI terms (function tools, a JSON-schema
/// `response_format`), so the backend's translation is what is tested; later turns carry
/// Anthropic content blocks, which the backend passes through.
fn client_request(recorded: &Value) -> ChatRequest {
    let messages = recorded["messages"].as_array().unwrap();
    let first_turn = messages.len() == 1 && messages[0]["content"].is_string();
    let mut request = ChatRequest {
        model: "auto".into(),
        max_tokens: recorded["max_tokens"].as_u64().map(|n| n as u32),
        stream: recorded["stream"].as_bool(),
        messages: messages
            .iter()
            .map(|m| ChatMessage {
                role: match m["role"].as_str().unwrap() {
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    other => panic!("role {other}"),
                },
                content: Some(match &m["content"] {
                    Value::String(s) => MessageContent::Text(s.clone()),
                    Value::Array(parts) => MessageContent::Parts(parts.clone()),
                    other => panic!("content {other}"),
                }),
                extra: Default::default(),
            })
            .collect(),
        ..ChatRequest::default()
    };
    if let Some(tools) = recorded["tools"].as_array() {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let simple = t
                    .as_object()
                    .unwrap()
                    .keys()
                    .all(|k| matches!(k.as_str(), "name" | "description" | "input_schema"));
                if first_turn && simple {
                    json!({"type": "function", "function": {
                        "name": t["name"], "description": t["description"], "parameters": t["input_schema"]
                    }})
                } else {
                    t.clone()
                }
            })
            .collect();
        request.extra.insert("tools".into(), Value::Array(tools));
    }
    if let Some(output) = recorded.get("output_config") {
        if first_turn {
            request.response_format = Some(ResponseFormat::JsonSchema {
                json_schema: JsonSchemaFormat {
                    name: "output".into(),
                    schema: output["format"]["schema"].clone(),
                    strict: Some(true),
                    description: None,
                },
            });
        } else {
            request.extra.insert("output_config".into(), output.clone());
        }
    }
    for key in ["container"] {
        if let Some(v) = recorded.get(key) {
            request.extra.insert(key.into(), v.clone());
        }
    }
    request
}

#[tokio::test]
async fn every_recorded_exchange_replays_to_its_exact_content() {
    let mut files = fixture_files("anthropic/recorded_http", ".json");
    assert_eq!(files.len(), 19);
    files.sort();
    let mut rate_limited_sequences = 0;
    let mut upstream_errors = 0;
    for file in files {
        let calls = group_calls(load_exchanges(&file));
        let replies: Vec<Reply> = calls
            .iter()
            .flatten()
            .map(|x| Reply::Respond {
                status: x.status,
                headers: x.headers.clone(),
                chunks: vec![x.body.clone().into()],
                gap: Duration::ZERO,
                end: End::Finish,
            })
            .collect();
        let upstream = TestUpstream::start(replies).await;
        let backend = backend(&upstream);
        let mut hits_so_far = 0;
        for (n, call) in calls.iter().enumerate() {
            let what = format!("{file} call {n}");
            let last = call.last().unwrap();
            let request = client_request(&call[0].request);
            let stream = request.is_stream();
            let result = if stream {
                match backend.chat_stream(request).await {
                    Ok(events) => collect_stream(events, "m").await,
                    Err(e) => Err(e),
                }
            } else {
                backend.chat(request).await
            };
            hits_so_far += call.len();
            let hits = upstream.hits();
            assert_eq!(hits.len(), hits_so_far, "{what}: attempts");
            if call.len() == 3 && call[0].status == 429 && call[1].status == 429 {
                rate_limited_sequences += 1;
            }
            if last.status == 200 {
                let response = result.unwrap_or_else(|e| panic!("{what}: {e}"));
                let expected = if stream {
                    expected_from_stream(std::str::from_utf8(&last.body).unwrap()).unwrap()
                } else {
                    expected_from_body(&serde_json::from_slice(&last.body).unwrap())
                };
                assert_matches(&actual(&response), &expected, &what);
            } else {
                upstream_errors += 1;
                match result {
                    Err(BackendError::UpstreamStatus { status, body }) => {
                        assert_eq!(status, last.status, "{what}");
                        let recorded: Value = serde_json::from_slice(&last.body).unwrap();
                        let got: Value = serde_json::from_str(&body).unwrap();
                        assert_eq!(got, recorded, "{what}: the upstream's error body is kept");
                    }
                    other => panic!("{what}: expected UpstreamStatus, got {other:?}"),
                }
            }
            // What was sent is the recorded request (but for the configured model).
            let sent = hits.last().unwrap().json();
            let mut recorded = call[0].request.clone();
            recorded["model"] = json!(MODEL);
            // `"stream": false` is the default; the backend leaves it out.
            if recorded["stream"] == json!(false) {
                recorded.as_object_mut().unwrap().remove("stream");
            }
            assert_eq!(sent, recorded, "{what}: request body");
        }
    }
    assert_eq!(rate_limited_sequences, 2);
    assert_eq!(upstream_errors, 1);
}

/// The recordings carry no wait headers; with `retry-after-ms` added to the replayed 429s the
/// backend must wait at least that long between attempts, and still succeed on the third.
#[tokio::test]
async fn recorded_429_429_200_honours_retry_after() {
    let file = "anthropic/recorded_http/test_messages__TestAsyncStream__a8b7dbb8-2321-4624-abdb-7ba2136b5c38.json";
    let exchanges = load_exchanges(file);
    let waits = [Duration::from_millis(60), Duration::from_millis(90)];
    let replies = exchanges
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let mut reply = Reply::Respond {
                status: x.status,
                headers: x.headers.clone(),
                chunks: vec![x.body.clone().into()],
                gap: Duration::ZERO,
                end: End::Finish,
            };
            if i < 2 {
                reply = reply.with_header("retry-after-ms", &waits[i].as_millis().to_string());
            }
            reply
        })
        .collect();
    let upstream = TestUpstream::start(replies).await;
    let backend = backend(&upstream);
    let request = client_request(&exchanges[0].request);
    let response = collect_stream(backend.chat_stream(request).await.unwrap(), "m")
        .await
        .unwrap();
    assert_eq!(response.text(), "[12345,67890]");
    let hits = upstream.hits();
    assert_eq!(hits.len(), 3);
    assert!(
        hits[1].at - hits[0].at >= waits[0],
        "first wait not honoured"
    );
    assert!(
        hits[2].at - hits[1].at >= waits[1],
        "second wait not honoured"
    );

    // A wait longer than the policy's max_delay is not slept through: the rate limit goes
    // to the caller at once, with the wait the upstream asked for.
    let upstream = TestUpstream::start(vec![
        Reply::json(429, exchanges[0].body.clone()).with_header("retry-after", "30")
    ])
    .await;
    let err = self::backend(&upstream)
        .chat(client_request(&exchanges[0].request))
        .await
        .unwrap_err();
    match err {
        BackendError::RateLimited {
            status,
            retry_after,
            body,
        } => {
            assert_eq!(status, 429);
            assert_eq!(retry_after, Some(Duration::from_secs(30)));
            assert!(body.contains("rate_limit_error"));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(upstream.hit_count(), 1);
}

#[tokio::test]
async fn rate_limit_after_every_attempt_is_typed() {
    let body = load_exchanges(
        "anthropic/recorded_http/test_messages__TestAsyncParse__d743d628-16aa-4c9f-ae78-51deb578f746.json",
    )
    .remove(0)
    .body;
    let upstream = TestUpstream::start(vec![Reply::json(429, body)]).await;
    let backend = backend(&upstream);
    let err = backend
        .chat(ChatRequest::user("auto", "hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::RateLimited {
                status: 429,
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(upstream.hit_count(), 3, "max_attempts");
    assert_eq!(err.http_status(), 429);
}
