//! Local tool calls with the real SmolLM2-135M-Instruct (whose chat template has no tool
//! syntax, so the generic tool prompt is used): a call forced by the grammar parses and matches
//! the tool's schema, a named call names that tool, streamed deltas put back together are the
//! whole answer's call, and `auto` / `none` behave.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use backends::llama::{LlamaEngine, LlamaEngineConfig};
use backends::{Backend, BackendError, ChatEvent, ChatRequest, ChatResponse, FinishReason};
use futures::StreamExt;
use serde_json::{json, Value};

fn engine() -> LlamaEngine {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `make setup`",
        path.display()
    );
    let mut config = LlamaEngineConfig::new(path);
    config.slots = 2;
    config.context_per_slot = 2048;
    LlamaEngine::load(config).expect("SmolLM2 loads")
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["city", "unit"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "send_email",
            "description": "Send an email.",
            "parameters": {"type": "object", "properties": {
                "to": {"type": "string"}, "subject": {"type": "string"},
                "urgent": {"type": "boolean"}},
                "required": ["to", "subject"]}}}
    ])
}

fn request(prompt: &str, choice: Value) -> ChatRequest {
    serde_json::from_value(json!({
        "model": "local", "temperature": 0, "max_tokens": 96,
        "messages": [{"role": "user", "content": prompt}],
        "tools": tools(), "tool_choice": choice,
    }))
    .unwrap()
}

/// The one call of an answer, checked against the schema of the tool it names.
fn checked_call(response: &ChatResponse) -> (String, Value) {
    assert_eq!(
        response.finish_reason(),
        Some(&FinishReason::ToolCalls),
        "{response:?}"
    );
    let calls = response.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert!(call.id.starts_with("call_"), "{call:?}");
    assert_eq!(call.kind, "function");
    let arguments: Value = serde_json::from_str(&call.function.arguments)
        .unwrap_or_else(|e| panic!("arguments are JSON ({e}): {}", call.function.arguments));
    let tools = tools();
    let schema = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == call.function.name.as_str())
        .unwrap_or_else(|| panic!("`{}` is one of the tools", call.function.name))["function"]
        ["parameters"]
        .clone();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(
        validator.is_valid(&arguments),
        "{} does not match {schema}",
        call.function.arguments
    );
    (call.function.name.clone(), arguments)
}

#[tokio::test]
async fn a_required_call_is_valid_and_streams_as_the_same_call() {
    let engine = engine();
    let r = request("What is the weather in Paris right now?", json!("required"));
    let whole = engine.chat(r.clone()).await.unwrap();
    let (name, arguments) = checked_call(&whole);
    assert_eq!(whole.choices[0].message.content, None);

    let mut stream = engine.chat_stream(r).await.unwrap();
    let mut deltas = Vec::new();
    let mut finish = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            ChatEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
                ..
            } => deltas.push((index, id, name, arguments)),
            ChatEvent::Token { text, .. } => panic!("a call sent text {text:?}"),
            ChatEvent::Done { finish_reason, .. } => finish = Some(finish_reason),
            _ => {}
        }
    }
    assert_eq!(finish, Some(FinishReason::ToolCalls));
    assert!(deltas.len() > 2, "arguments arrive in chunks: {deltas:?}");
    let (index, id, first_name, first_args) = &deltas[0];
    assert_eq!(*index, 0);
    assert!(id.as_deref().is_some_and(|i| i.starts_with("call_")));
    assert_eq!(
        first_name.as_deref(),
        Some(name.as_str()),
        "the name comes first"
    );
    assert!(first_args.is_empty());
    assert!(deltas[1..].iter().all(|d| d.1.is_none() && d.2.is_none()));
    let joined: String = deltas.iter().map(|d| d.3.as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), arguments);
}

#[tokio::test]
async fn a_named_call_calls_that_tool() {
    let engine = engine();
    // The prompt is about email, the named tool is the weather one: the grammar decides.
    let r = request(
        "Email Ana about the weather in Oslo.",
        json!({"type": "function", "function": {"name": "get_weather"}}),
    );
    let (name, arguments) = checked_call(&engine.chat(r).await.unwrap());
    assert_eq!(name, "get_weather");
    assert!(arguments["city"].is_string());
}

#[tokio::test]
async fn auto_answers_with_text_or_a_valid_call_and_none_with_text() {
    let engine = engine();
    for prompt in [
        "Hello! How are you today?",
        "What is the weather in Rome in celsius?",
    ] {
        let mut r = request(prompt, json!("auto"));
        r.max_tokens = Some(48);
        let response = engine.chat(r).await.unwrap();
        match response.choices[0].message.tool_calls {
            Some(_) if response.finish_reason() == Some(&FinishReason::Length) => {}
            Some(_) => {
                checked_call(&response);
            }
            _ => {
                assert!(response.choices[0].message.tool_calls.is_none());
                assert!(!response.text().starts_with('{'), "{}", response.text());
            }
        }
    }
    let none = engine
        .chat(request("What is the weather in Rome?", json!("none")))
        .await
        .unwrap();
    assert!(none.choices[0].message.tool_calls.is_none());
    assert!(!none.text().is_empty());
}

#[tokio::test]
async fn a_conversation_with_earlier_calls_and_results_renders_and_answers() {
    let engine = engine();
    let r: ChatRequest = serde_json::from_value(json!({
        "model": "local", "temperature": 0, "max_tokens": 24,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                "type": "function", "function": {"name": "get_weather",
                "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"}],
        "tools": tools(), "tool_choice": "none"}))
    .unwrap();
    let prompt = engine.render_prompt(&r).unwrap();
    assert!(
        prompt
            .contains(r#"{"name": "get_weather", "arguments": {"city":"Paris","unit":"celsius"}}"#),
        "{prompt}"
    );
    assert!(
        prompt.contains("Tool `get_weather` returned: 18 C and sunny"),
        "{prompt}"
    );
    let answer = engine.chat(r).await.unwrap();
    assert!(!answer.text().is_empty());
}

#[tokio::test]
async fn tools_with_another_output_constraint_are_refused() {
    let engine = engine();
    let mut r = request("hi", json!("required"));
    r.choices = Some(vec!["a".into(), "b".into()]);
    let err = engine.chat(r).await.unwrap_err();
    assert!(
        matches!(err, BackendError::InvalidRequest(ref m) if m.contains("cannot combine")),
        "{err}"
    );
}
