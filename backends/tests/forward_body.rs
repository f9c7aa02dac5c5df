//! The body the OpenAI backend sends upstream when it forwards the client's `messages` bytes
//! (`ClientBody`, issue 18) is the same JSON document the re-serializing path sends, for the
//! shipped request fixtures and for hostile bodies; bodies whose bytes could mean something
//! else to an upstream (repeated keys) are re-serialized.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backends::openai::OpenAiBackend;
use backends::remote::{Extensions, RemoteConfig};
use backends::{ChatRequest, ClientBody};
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

fn backends() -> Vec<OpenAiBackend> {
    let mut triage = RemoteConfig::new("http://127.0.0.1:9/v1", "upstream-model");
    triage.extensions = Extensions::Triage;
    vec![
        OpenAiBackend::new(RemoteConfig::new(
            "https://api.openai.com/v1",
            "gpt-4o-mini",
        ))
        .unwrap(),
        OpenAiBackend::new(RemoteConfig::new("http://127.0.0.1:9/v1", "local-model")).unwrap(),
        OpenAiBackend::new(triage).unwrap(),
    ]
}

/// The typed request of `body`, with the body kept as the gateway keeps it.
fn parsed(body: &str) -> ChatRequest {
    let mut request: ChatRequest = serde_json::from_str(body).unwrap();
    request.client_body = ClientBody::new(Bytes::from(body.to_string()));
    request
}

/// What the re-serializing path sends: the typed request alone.
fn reserialized(backend: &OpenAiBackend, request: &ChatRequest, stream: bool) -> Vec<u8> {
    let mut typed = request.clone();
    typed.client_body = ClientBody::none();
    backend.request_bytes(&typed, stream).unwrap()
}

/// The one intended difference: a message the client sent without `content` is forwarded
/// without it (the re-serializing path writes `"content": null`, which means the same).
fn with_null_contents(mut v: Value) -> Value {
    if let Some(messages) = v.get_mut("messages").and_then(Value::as_array_mut) {
        for m in messages {
            if let Some(m) = m.as_object_mut() {
                m.entry("content").or_insert(Value::Null);
            }
        }
    }
    v
}

/// Both paths agree, for every backend kind and both stream modes; returns whether the
/// spliced path was taken (the client's `messages` bytes appear verbatim).
fn check(body: &str) -> bool {
    let request = parsed(body);
    let raw = request
        .client_body
        .messages_json(request.messages.len())
        .map(str::to_string);
    for backend in backends() {
        for stream in [false, true] {
            let old = reserialized(&backend, &request, stream);
            let new = backend.request_bytes(&request, stream).unwrap();
            let old: Value = serde_json::from_slice(&old).unwrap();
            let new_value: Value = serde_json::from_slice(&new).unwrap();
            assert_eq!(
                with_null_contents(new_value),
                with_null_contents(old),
                "body {body:.200}"
            );
            if let Some(raw) = &raw {
                let text = String::from_utf8(new).unwrap();
                assert!(text.contains(raw.as_str()), "messages not spliced");
            }
        }
    }
    raw.is_some()
}

/// The JSON body of each shipped curl example for Chat Completions.
fn fixture_bodies() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in common::fixture_files("openai/openapi_examples", ".request.curl.txt") {
        if !name.contains("createChatCompletion") {
            continue;
        }
        let text = String::from_utf8(common::read_fixture(&name)).unwrap();
        let start = text.find("-d '").expect("a -d body") + 4;
        let end = text[start..].rfind('\'').expect("the body's closing quote") + start;
        out.push((name, text[start..end].to_string()));
    }
    assert!(out.len() >= 4, "chat completion examples: {}", out.len());
    out
}

#[test]
fn shipped_requests_forward_the_same_document() {
    for (name, body) in fixture_bodies() {
        assert!(
            check(&body),
            "{name}: the client's messages were not forwarded"
        );
    }
}

#[test]
fn escapes_numbers_and_odd_shapes_forward_the_same_document() {
    let bodies = [
        // Unicode escapes, a surrogate pair, control characters, escaped slashes.
        r#"{"model":"auto","messages":[{"role":"user","content":"a\u0040b.c \ud83d\ude00 \u0000\t\"q\" \/ é"}]}"#,
        // A message without content (tool calls only), a tool answer, parts.
        r#"{"model":"auto","messages":[
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},
            {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}],
          "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#,
        // Numbers the JSON tree rounds or rewrites, inside messages and out.
        r#"{"model":"auto","temperature":0.123456789,"top_p":1,"min_p":0.05,"top_k":40,
            "messages":[{"role":"user","content":"x","weight":1.0,"big":123456789012345678901234567890,"neg":-0,"e":1e300}]}"#,
        // Streaming options, stop strings, choices, metadata, unknown fields.
        r#"{"model":"auto","stream":true,"stream_options":{"include_usage":false,"x":1},"stop":"END",
            "choices":["yes","no"],"metadata":{"task":"qa"},"user":"u","logit_bias":{"50256":-100},
            "messages":[{"role":"system","content":"s"},{"role":"user","content":"q","name":"n"}]}"#,
        // Whitespace everywhere.
        "{ \"messages\" :\n [ { \"role\" : \"user\" ,\n \"content\" : \"hi\" } ] , \"model\":\"auto\" }",
    ];
    for body in bodies {
        assert!(check(body), "not forwarded: {body}");
    }
}

#[test]
fn huge_strings_forward_the_same_document() {
    let plain = "the view of the harbour ".repeat(40_000);
    let escaped = "line \"one\"\n\u{2028}\\ tab\t ".repeat(20_000);
    for text in [plain, escaped] {
        let body = serde_json::json!({
            "model": "auto",
            "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": text}],
        })
        .to_string();
        assert!(check(&body));
    }
}

#[test]
fn repeated_keys_are_reserialized_not_forwarded() {
    for body in [
        r#"{"model":"auto","messages":[{"role":"user","content":"a","content":"b"}]}"#,
        r#"{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}"#,
        r#"{"model":"auto","messages":[{"role":"user","content":"a","name":"x","n\u0061me":"y"}]}"#,
        r#"{"model":"auto","messages":[{"role":"user","content":"a"}],"user":"x","user":"y"}"#,
    ] {
        // The typed parse either refuses the body (serde's duplicate-field error) or reads it
        // its own way; either way nothing of the client's bytes is forwarded.
        let Ok(mut request) = serde_json::from_str::<ChatRequest>(body) else {
            continue;
        };
        request.client_body = ClientBody::new(Bytes::from(body.to_string()));
        assert_eq!(
            request.client_body.messages_json(request.messages.len()),
            None,
            "{body}"
        );
        for backend in backends() {
            assert_eq!(
                backend.request_bytes(&request, false).unwrap(),
                reserialized(&backend, &request, false)
            );
        }
    }
}

#[test]
fn a_request_changed_after_parsing_is_reserialized() {
    let body = r#"{"model":"auto","messages":[{"role":"user","content":"a"}]}"#;
    let mut request = parsed(body);
    request
        .messages
        .push(backends::ChatMessage::new(backends::Role::User, "b"));
    let backend = &backends()[1];
    let sent: Value =
        serde_json::from_slice(&backend.request_bytes(&request, false).unwrap()).unwrap();
    assert_eq!(sent["messages"][1]["content"], "b");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_text_forwards_the_same_document(
        texts in proptest::collection::vec(any::<String>(), 1..4),
        name in any::<String>(),
    ) {
        let messages: Vec<Value> = texts
            .iter()
            .map(|t| serde_json::json!({"role": "user", "content": t, "name": name}))
            .collect();
        let body = serde_json::json!({"model": "auto", "messages": messages, "max_tokens": 5});
        // Both the compact form and one with every non-ASCII character escaped.
        let compact = body.to_string();
        let escaped: String = compact
            .chars()
            .map(|c| if c.is_ascii() { c.to_string() } else {
                let mut buf = [0u16; 2];
                c.encode_utf16(&mut buf).iter().map(|u| format!("\\u{u:04x}")).collect()
            })
            .collect();
        prop_assert!(check(&compact));
        prop_assert!(check(&escaped));
    }
}
