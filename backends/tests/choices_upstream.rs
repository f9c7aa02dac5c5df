#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The same `choices` request on every kind of upstream: forwarded as triage's extension field
//! to another `triage serve`, emulated with a strict JSON schema (and the answer unwrapped) for
//! a plain OpenAI-compatible or Anthropic API. The upstream is `common::TestUpstream`, a TEST
//! DOUBLE on 127.0.0.1 that records the body it received and answers with a scripted reply.

mod common;

use backends::anthropic::AnthropicBackend;
use backends::openai::OpenAiBackend;
use backends::remote::Extensions;
use backends::{collect_stream, Backend, BackendError, ChatRequest, ResponseFormat};
use common::*;
use serde_json::{json, Value};

fn choices() -> Vec<String> {
    vec!["positive".into(), "negative".into(), "neutral".into()]
}

fn request(stream: bool) -> ChatRequest {
    let mut request = ChatRequest::user("auto", "Is this review positive? Loved it.");
    request.choices = Some(choices());
    request.max_tokens = Some(8);
    request.stream = Some(stream);
    request
}

fn openai(upstream: &TestUpstream, extensions: Extensions) -> OpenAiBackend {
    let mut config = config(&upstream.base_url, "upstream-model");
    config.extensions = extensions;
    OpenAiBackend::new(config).unwrap()
}

/// A non-streaming Chat Completions body answering `content`.
fn completion(content: &str) -> String {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "upstream-model",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18 }
    })
    .to_string()
}

/// An SSE body streaming `pieces` as content deltas, then the finish, usage and `[DONE]`.
fn stream_of(pieces: &[&str]) -> String {
    let mut out = String::new();
    let mut chunk = |choices: Value, usage: Value| {
        let body = json!({
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "upstream-model",
            "choices": choices,
            "usage": usage,
        });
        out.push_str(&format!("data: {body}\n\n"));
    };
    chunk(
        json!([{ "index": 0, "delta": { "role": "assistant", "content": "" } }]),
        Value::Null,
    );
    for piece in pieces {
        chunk(
            json!([{ "index": 0, "delta": { "content": piece } }]),
            Value::Null,
        );
    }
    chunk(
        json!([{ "index": 0, "delta": {}, "finish_reason": "stop" }]),
        Value::Null,
    );
    chunk(
        json!([]),
        json!({ "prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18 }),
    );
    out.push_str("data: [DONE]\n\n");
    out
}

#[tokio::test]
async fn a_triage_upstream_receives_choices_as_the_extension_field() {
    let upstream = TestUpstream::start(vec![
        Reply::json(200, completion("negative")),
        Reply::sse(stream_of(&["neg", "ative"])),
    ])
    .await;
    let backend = openai(&upstream, Extensions::Triage);

    let whole = backend.chat(request(false)).await.unwrap();
    assert_eq!(whole.text(), "negative");
    let streamed = collect_stream(backend.chat_stream(request(true)).await.unwrap(), "m")
        .await
        .unwrap();
    assert_eq!(streamed.text(), "negative");

    for hit in upstream.hits() {
        let body = hit.json();
        assert_eq!(body["choices"], json!(choices()), "{body}");
        assert!(body.get("response_format").is_none(), "{body}");
        assert_eq!(body["model"], "upstream-model");
    }
    assert_eq!(upstream.hit_count(), 2);
}

#[tokio::test]
async fn a_plain_upstream_gets_a_strict_schema_and_the_answer_is_unwrapped() {
    let upstream = TestUpstream::start(vec![
        Reply::json(200, completion("{\"answer\":\"neutral\"}")),
        Reply::sse(stream_of(&["{\"ans", "wer\": \"posi", "tive\"}"])),
    ])
    .await;
    let backend = openai(&upstream, Extensions::None);

    let whole = backend.chat(request(false)).await.unwrap();
    assert_eq!(whole.text(), "neutral");
    assert_eq!(whole.usage.as_ref().unwrap().completion_tokens, 6);
    let streamed = collect_stream(backend.chat_stream(request(true)).await.unwrap(), "m")
        .await
        .unwrap();
    assert_eq!(streamed.text(), "positive");
    assert_eq!(streamed.usage.as_ref().unwrap().prompt_tokens, 12);

    for hit in upstream.hits() {
        let body = hit.json();
        assert!(body.get("choices").is_none(), "{body}");
        assert_eq!(
            body["response_format"],
            json!({
                "type": "json_schema",
                "json_schema": {
                    "name": "choice",
                    "strict": true,
                    "schema": {
                        "type": "object",
                        "properties": { "answer": { "type": "string", "enum": choices() } },
                        "required": ["answer"],
                        "additionalProperties": false
                    }
                }
            }),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_reply_that_is_not_a_choice_is_a_protocol_error_naming_the_choices() {
    let upstream = TestUpstream::start(vec![
        Reply::json(200, completion("{\"answer\":\"mixed\"}")),
        Reply::sse(stream_of(&["{\"answer\":", "\"mixed\"}"])),
    ])
    .await;
    let backend = openai(&upstream, Extensions::None);

    let err = backend.chat(request(false)).await.unwrap_err();
    assert!(matches!(err, BackendError::Protocol(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("mixed") && text.contains("[positive, negative, neutral]"),
        "{text}"
    );

    let (events, err) = drain(backend.chat_stream(request(true)).await.unwrap()).await;
    assert!(matches!(err, Some(BackendError::Protocol(_))), "{err:?}");
    // Nothing of the held-back JSON reached the caller.
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, backends::ChatEvent::Token { .. })),
        "{events:?}"
    );
}

#[tokio::test]
async fn response_format_is_forwarded_as_is_and_never_combined_with_choices() {
    let upstream =
        TestUpstream::start(vec![Reply::json(200, completion("{\"city\":\"Paris\"}"))]).await;
    let format: ResponseFormat = serde_json::from_value(json!({
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "strict": true,
            "schema": { "type": "object", "properties": { "city": { "type": "string" } } }
        }
    }))
    .unwrap();
    for extensions in [Extensions::None, Extensions::Triage] {
        let backend = openai(&upstream, extensions);
        let mut plain = ChatRequest::user("auto", "Where is the Louvre?");
        plain.response_format = Some(format.clone());
        let answer = backend.chat(plain.clone()).await.unwrap();
        assert_eq!(answer.text(), "{\"city\":\"Paris\"}");
        let body = upstream.hits().last().unwrap().json();
        assert_eq!(
            body["response_format"],
            serde_json::to_value(&format).unwrap()
        );

        // Both at once: the plain upstream cannot be given both, and is not asked.
        plain.choices = Some(choices());
        let before = upstream.hit_count();
        match extensions {
            Extensions::None => {
                let err = backend.chat(plain).await.unwrap_err();
                assert!(matches!(err, BackendError::InvalidRequest(_)), "{err}");
                assert_eq!(upstream.hit_count(), before);
            }
            // A triage upstream receives both and decides (its engine refuses the pair).
            Extensions::Triage => {
                backend.chat(plain).await.unwrap();
                let body = upstream.hits().last().unwrap().json();
                assert_eq!(body["choices"], json!(choices()));
                assert_eq!(body["response_format"]["json_schema"]["name"], "city");
            }
        }
    }
}

#[tokio::test]
async fn anthropic_gets_the_schema_as_output_config_and_the_answer_is_unwrapped() {
    let message = |text: &str| {
        json!({
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{ "type": "text", "text": text }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": { "input_tokens": 12, "output_tokens": 6 }
        })
        .to_string()
    };
    let upstream = TestUpstream::start(vec![
        Reply::json(200, message("{\"answer\": \"negative\"}")),
        Reply::json(200, message("{\"answer\": \"great\"}")),
    ])
    .await;
    let backend = AnthropicBackend::new(config(&upstream.base_url, "claude-test")).unwrap();

    let answer = backend.chat(request(false)).await.unwrap();
    assert_eq!(answer.text(), "negative");
    let body = upstream.hits()[0].json();
    assert!(body.get("choices").is_none(), "{body}");
    assert_eq!(
        body["output_config"]["format"]["schema"]["properties"]["answer"]["enum"],
        json!(choices()),
        "{body}"
    );
    let err = backend.chat(request(false)).await.unwrap_err();
    assert!(matches!(err, BackendError::Protocol(_)), "{err}");

    // The triage extension is an OpenAI-protocol thing.
    let mut triage = config(&upstream.base_url, "claude-test");
    triage.extensions = Extensions::Triage;
    assert!(matches!(
        AnthropicBackend::new(triage),
        Err(BackendError::Config(_))
    ));
}
