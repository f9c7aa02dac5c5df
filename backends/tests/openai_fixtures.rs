#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every recorded OpenAI Chat Completions body and SSE stream in `tests/fixtures/openai`,
//! replayed from a local upstream through `OpenAiBackend`, must parse to exactly the text,
//! refusals, tool calls, finish reasons, usage and log-probabilities it contains. The expected
//! values are read from the fixture here with plain `serde_json`, independently of the
//! backend's own decoder.

mod common;

use std::collections::BTreeMap;

use backends::openai::OpenAiBackend;
use backends::{collect_stream, Backend, ChatEvent, ChatRequest, ChatResponse};
use common::*;
use serde_json::Value;

const KEY_VAR: &str = "TRIAGE_TEST_OPENAI_FIXTURE_KEY";
const KEY: &str = "sk-fixture-test-key-0001";

fn backend(upstream: &TestUpstream) -> OpenAiBackend {
    // Every test sets the same value, so concurrent tests agree.
    std::env::set_var(KEY_VAR, KEY);
    let mut config = config(&upstream.base_url, "upstream-model");
    config.api_key_env = Some(KEY_VAR.into());
    OpenAiBackend::new(config).unwrap()
}

/// What a choice must come out as.
#[derive(Debug, Default, PartialEq)]
struct ExpectedChoice {
    content: Option<String>,
    refusal: Option<String>,
    /// (id, name, arguments) per tool call, in index order.
    tool_calls: Vec<(String, String, String)>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, PartialEq)]
struct Expected {
    choices: BTreeMap<u32, ExpectedChoice>,
    usage: Option<(u32, u32, u32)>,
    logprobs: Vec<f32>,
}

fn usage_of(v: &Value) -> Option<(u32, u32, u32)> {
    let u = v.as_object()?;
    Some((
        u["prompt_tokens"].as_u64()? as u32,
        u["completion_tokens"].as_u64()? as u32,
        u["total_tokens"].as_u64()? as u32,
    ))
}

/// Read the expectations of an SSE fixture by concatenating its deltas.
fn expected_from_stream(text: &str) -> Expected {
    let mut out = Expected::default();
    let mut tools: BTreeMap<(u32, u32), (String, String, String)> = BTreeMap::new();
    let mut saw_done = false;
    for data in sse_data_lines(text) {
        if data == "[DONE]" {
            saw_done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(&data).unwrap();
        for choice in chunk["choices"].as_array().unwrap() {
            let i = choice["index"].as_u64().unwrap() as u32;
            let entry = out.choices.entry(i).or_default();
            let delta = &choice["delta"];
            if let Some(s) = delta["content"].as_str().filter(|s| !s.is_empty()) {
                entry.content.get_or_insert_with(String::new).push_str(s);
            }
            if let Some(s) = delta["refusal"].as_str().filter(|s| !s.is_empty()) {
                entry.refusal.get_or_insert_with(String::new).push_str(s);
            }
            if let Some(calls) = delta["tool_calls"].as_array() {
                for call in calls {
                    let t = tools
                        .entry((i, call["index"].as_u64().unwrap() as u32))
                        .or_default();
                    if let Some(id) = call["id"].as_str() {
                        t.0 = id.to_string();
                    }
                    if let Some(name) = call["function"]["name"].as_str() {
                        t.1.push_str(name);
                    }
                    if let Some(args) = call["function"]["arguments"].as_str() {
                        t.2.push_str(args);
                    }
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                entry.finish_reason = Some(reason.to_string());
            }
            if i == 0 {
                if let Some(tokens) = choice["logprobs"]["content"].as_array() {
                    out.logprobs
                        .extend(tokens.iter().map(|t| t["logprob"].as_f64().unwrap() as f32));
                }
            }
        }
        if let Some(usage) = usage_of(&chunk["usage"]) {
            out.usage = Some(usage);
        }
    }
    assert!(saw_done, "fixture without [DONE]");
    for ((choice, _), call) in tools {
        out.choices.get_mut(&choice).unwrap().tool_calls.push(call);
    }
    out
}

/// Read the expectations of a non-streaming body.
fn expected_from_body(body: &Value) -> Expected {
    let mut out = Expected::default();
    for choice in body["choices"].as_array().unwrap() {
        let message = &choice["message"];
        let tool_calls = message["tool_calls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| {
                        (
                            c["id"].as_str().unwrap().to_string(),
                            c["function"]["name"].as_str().unwrap().to_string(),
                            c["function"]["arguments"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.choices.insert(
            choice["index"].as_u64().unwrap() as u32,
            ExpectedChoice {
                content: message["content"].as_str().map(str::to_string),
                refusal: message["refusal"].as_str().map(str::to_string),
                tool_calls,
                finish_reason: choice["finish_reason"].as_str().map(str::to_string),
            },
        );
    }
    out.usage = usage_of(&body["usage"]);
    if let Some(tokens) = body["choices"][0]["logprobs"]["content"].as_array() {
        out.logprobs = tokens
            .iter()
            .map(|t| t["logprob"].as_f64().unwrap() as f32)
            .collect();
    }
    out
}

/// What the backend produced, in the same shape.
fn actual(response: &ChatResponse) -> Expected {
    let mut out = Expected::default();
    for c in &response.choices {
        out.choices.insert(
            c.index,
            ExpectedChoice {
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
            },
        );
    }
    out.usage = response
        .usage
        .as_ref()
        .map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens));
    out.logprobs = response.token_logprobs.clone();
    out
}

#[tokio::test]
async fn every_recorded_stream_parses_to_its_exact_content() {
    let files = fixture_files("openai/chat_completions_stream", ".sse");
    assert_eq!(files.len(), 12);
    for file in files {
        let raw = read_fixture(&file);
        let expected = expected_from_stream(&String::from_utf8(raw.clone()).unwrap());
        let upstream = TestUpstream::start(vec![Reply::sse(raw)]).await;
        let backend = backend(&upstream);
        let stream = backend
            .chat_stream(ChatRequest::user("auto", "hello"))
            .await
            .unwrap();
        let (events, error) = drain(stream).await;
        assert!(error.is_none(), "{file}: {error:?}");
        assert!(
            matches!(events.first(), Some(ChatEvent::FirstByte { .. })),
            "{file}: FirstByte must come first"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, ChatEvent::FirstByte { .. }))
                .count(),
            1
        );
        // The usage chunk comes last, after every choice finished.
        assert!(
            matches!(events.last(), Some(ChatEvent::Usage { .. })),
            "{file}: usage chunk must be the last event"
        );
        // Events carry the Instant they were born at, in order.
        assert!(events.windows(2).all(|w| w[0].at() <= w[1].at()));
        let response = collect_stream(
            Box::pin(futures::stream::iter(events.into_iter().map(Ok))),
            "m",
        )
        .await
        .unwrap();
        assert_eq!(actual(&response), expected, "{file}");
        assert!(response.timings.first_byte.is_some());

        let hits = upstream.hits();
        assert_eq!(hits.len(), 1, "{file}");
        assert_eq!(hits[0].path, "/v1/chat/completions");
        assert_eq!(
            hits[0].header("authorization"),
            Some(format!("Bearer {KEY}"))
        );
        let sent = hits[0].json();
        assert_eq!(sent["model"], "upstream-model");
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }
}

#[tokio::test]
async fn recorded_streams_spot_checks() {
    let expected = |name: &str| {
        expected_from_stream(
            &String::from_utf8(read_fixture(&format!(
                "openai/chat_completions_stream/{name}"
            )))
            .unwrap(),
        )
    };
    // Literal values, read off the recordings by eye, so the derivation above is checked too.
    let e = expected("test_parse_pydantic_model_multiple_choices.sse");
    assert_eq!(e.choices.len(), 3);
    assert_eq!(
        e.choices[&2].content.as_deref(),
        Some(r#"{"city":"San Francisco","temperature":59,"units":"f"}"#)
    );
    assert_eq!(e.usage, Some((79, 42, 121)));
    let e = expected("test_parse_max_tokens_reached.sse");
    assert_eq!(e.choices[&0].finish_reason.as_deref(), Some("length"));
    assert_eq!(e.choices[&0].content.as_deref(), Some("{\""));
    let e = expected("test_parse_pydantic_model_refusal.sse");
    assert_eq!(
        e.choices[&0].refusal.as_deref(),
        Some("I'm sorry, I can't assist with that request.")
    );
    assert_eq!(e.choices[&0].content, None);
    let e = expected("test_content_logprobs_events.sse");
    assert_eq!(e.choices[&0].content.as_deref(), Some("Foo!"));
    assert_eq!(e.logprobs, vec![-0.0025094282, -0.26638845]);
    let e = expected("test_parse_multiple_pydantic_tools.sse");
    assert_eq!(e.choices[&0].tool_calls.len(), 2);
    assert_eq!(e.choices[&0].tool_calls[1].1, "get_stock_price");
    assert_eq!(
        e.choices[&0].tool_calls[1].2,
        r#"{"ticker": "AAPL", "exchange": "NASDAQ"}"#
    );
    assert_eq!(e.choices[&0].finish_reason.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn every_recorded_body_parses_to_its_exact_content() {
    let mut files = fixture_files("openai/chat_completions", ".json");
    assert_eq!(files.len(), 14);
    files.extend(fixture_files("openai/openapi_examples", ".response.txt"));
    let mut saw_logprobs = false;
    for file in files {
        let raw = read_fixture(&file);
        let body: Value = serde_json::from_slice(&raw).unwrap();
        let expected = expected_from_body(&body);
        saw_logprobs |= !expected.logprobs.is_empty();
        let upstream = TestUpstream::start(vec![Reply::json(200, raw)]).await;
        let backend = backend(&upstream);
        let response = backend
            .chat(ChatRequest::user("auto", "hello"))
            .await
            .unwrap();
        assert_eq!(actual(&response), expected, "{file}");
        assert_eq!(response.id, body["id"].as_str().unwrap());
        assert_eq!(response.model, body["model"].as_str().unwrap());
        let t = response.timings;
        assert!(t.started.unwrap() <= t.first_byte.unwrap());
        assert!(t.first_byte.unwrap() <= t.finished.unwrap());

        let hits = upstream.hits();
        assert_eq!(hits.len(), 1);
        let sent = hits[0].json();
        assert_eq!(sent["model"], "upstream-model");
        assert!(sent.get("stream").is_none() && sent.get("stream_options").is_none());
    }
    assert!(saw_logprobs, "the logprobs body must be among the fixtures");
}

#[tokio::test]
async fn recorded_bodies_spot_checks() {
    let body = |name: &str| -> Value {
        serde_json::from_slice(&read_fixture(&format!("openai/chat_completions/{name}"))).unwrap()
    };
    let e = expected_from_body(&body("test_parse_pydantic_model_multiple_choices.json"));
    assert_eq!(e.choices.len(), 3);
    assert_eq!(e.usage, Some((79, 44, 123)));
    let e = expected_from_body(&body("test_parse_multiple_pydantic_tools.json"));
    assert_eq!(
        e.choices[&0].tool_calls[0],
        (
            "call_fdNz3vOBKYgOIpMdWotB9MjY".to_string(),
            "GetWeatherArgs".to_string(),
            r#"{"city": "Edinburgh", "country": "GB", "units": "c"}"#.to_string()
        )
    );
    assert_eq!(e.choices[&0].content, None);
    let e = expected_from_body(&body("test_parse_max_tokens_reached.json"));
    assert_eq!(e.choices[&0].finish_reason.as_deref(), Some("length"));
}

#[tokio::test]
async fn forwards_unknown_fields_and_replaces_the_model() {
    let raw = read_fixture("openai/chat_completions/test_parse_nothing.json");
    let upstream = TestUpstream::start(vec![Reply::json(200, raw)]).await;
    let backend = backend(&upstream);
    let request: ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "auto",
        "messages": [{"role": "user", "content": "What's the weather like in SF?"}],
        "temperature": 0.7,
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "logit_bias": {"1234": -5},
        "user": "user-42"
    }))
    .unwrap();
    backend.chat(request).await.unwrap();
    let sent = upstream.hits()[0].json();
    assert_eq!(sent["model"], "upstream-model");
    assert_eq!(sent["temperature"], 0.7);
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["logit_bias"]["1234"], -5);
    assert_eq!(sent["user"], "user-42");
    // `choices` (a triage extension) travels per upstream kind: tests/choices_upstream.rs.
    assert!(sent.get("choices").is_none());
    assert!(sent.get("response_format").is_none());
}

#[tokio::test]
async fn a_stream_sent_one_byte_per_network_chunk_parses_the_same() {
    let raw = read_fixture("openai/chat_completions_stream/test_parse_multiple_pydantic_tools.sse");
    let expected = expected_from_stream(&String::from_utf8(raw.clone()).unwrap());
    let chunks = raw
        .chunks(1)
        .map(axum::body::Bytes::copy_from_slice)
        .collect();
    let upstream = TestUpstream::start(vec![Reply::sse_chunks(
        chunks,
        std::time::Duration::ZERO,
        End::Finish,
    )])
    .await;
    let backend = backend(&upstream);
    let stream = backend
        .chat_stream(ChatRequest::user("auto", "hello"))
        .await
        .unwrap();
    let response = collect_stream(stream, "m").await.unwrap();
    assert_eq!(actual(&response), expected);
}
