//! The eight side doors of issue 14 through the whole gateway: the real routing core (a
//! `triage.yaml` policy with a privacy rule, the real PII detector), the remote backend a
//! TEST DOUBLE (`MockBackend`) that counts the requests it receives. Each request hides PII
//! where the old scan did not look; each must be answered by the local backend and the remote
//! must see nothing. With `pii.non_text: refuse` an image is refused with a 400 instead.
//! Built with the shared harness (`router::testing`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use router::config::Config;
use router::gateway::{GatewayOptions, Locality};
use router::testing::TestGateway;
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
  - { name: default, to: llm, fallback: [slm] }
"#;

/// The gateway over `config`; the remote `llm` and local `slm` are mock TEST DOUBLEs ("echo").
fn gateway(config: &str) -> TestGateway {
    TestGateway::from_yaml(config)
        .options(GatewayOptions {
            request_deadline: Duration::from_secs(10),
            ..GatewayOptions::default()
        })
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap()
}

/// Status, `x-triage-backend` and body of one chat request.
async fn chat(gw: &TestGateway, body: &Value) -> (u16, Option<String>, String) {
    let reply = gw.chat(body.clone(), None).await.unwrap();
    let backend = reply.header("x-triage-backend").map(str::to_string);
    (reply.status.as_u16(), backend, reply.body)
}

fn calls(gw: &TestGateway, name: &str) -> u64 {
    gw.calls(name).unwrap()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn image() -> Value {
    json!({"role": "user", "content": [
        {"type": "text", "text": "what does this card say?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}
    ]})
}

/// The eight side doors, as (name, request).
fn side_doors() -> Vec<(&'static str, Value)> {
    vec![
        (
            "fullwidth digits",
            json!({"model": "auto", "messages": [user("my card is ４１１１ １１１１ １１１１ １１１１")]}),
        ),
        (
            "zero-width space before @",
            json!({"model": "auto", "messages": [user("mail ann.lee\u{200B}@example.com")]}),
        ),
        (
            "fullwidth @",
            json!({"model": "auto", "messages": [user("mail ann.lee＠example.com")]}),
        ),
        (
            "SSN with no-break spaces",
            json!({"model": "auto", "messages": [user("SSN 123\u{00A0}45\u{00A0}6789")]}),
        ),
        (
            "card split across four messages",
            json!({"model": "auto", "messages": [user("4111"), user("1111"), user("1111"), user("1111")]}),
        ),
        (
            "PII only in an image data URL",
            json!({"model": "auto", "messages": [image()]}),
        ),
        (
            "PII only in assistant tool-call arguments",
            json!({"model": "auto", "messages": [
                user("look me up"),
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                  "function": {"name": "lookup", "arguments": "{\"ssn\": \"123-45-6789\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "found"}
            ]}),
        ),
        (
            "PII only in an unmodelled forwarded field",
            json!({"model": "auto", "messages": [user("hello")], "user": "ann.lee@example.com"}),
        ),
    ]
}

#[tokio::test]
async fn every_side_door_is_routed_to_the_local_backend() {
    let gw = gateway(CONFIG);
    for (name, body) in side_doors() {
        let (status, backend, text) = chat(&gw, &body).await;
        assert_eq!(status, 200, "{name}: {text}");
        assert_eq!(backend.as_deref(), Some("slm"), "{name}: {text}");
    }
    assert_eq!(
        calls(&gw, "llm"),
        0,
        "the remote backend received a request"
    );
    assert_eq!(calls(&gw, "slm"), 8);
    // The control: the same gateway sends a request without PII to the remote.
    let (status, backend, _) = chat(
        &gw,
        &json!({"model": "auto", "messages": [user("hello there")]}),
    )
    .await;
    assert_eq!((status, backend.as_deref()), (200, Some("llm")));
    assert_eq!(calls(&gw, "llm"), 1);
}

#[tokio::test]
async fn refuse_mode_answers_400_for_an_image_under_the_privacy_rule() {
    let gw = gateway(&format!("{CONFIG}pii: {{ non_text: refuse }}\n"));
    let (status, backend, text) = chat(&gw, &json!({"model": "auto", "messages": [image()]})).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(backend, None);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{text}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pii.non_text: refuse"),
        "{text}"
    );
    // A model named directly is refused the same way.
    let (status, _, _) = chat(&gw, &json!({"model": "llm", "messages": [image()]})).await;
    assert_eq!(status, 400);
    assert_eq!(calls(&gw, "llm") + calls(&gw, "slm"), 0);
    // Text PII still goes local under refuse mode; text without PII still goes remote.
    let (_, backend, _) = chat(
        &gw,
        &json!({"model": "auto", "messages": [user("SSN 123-45-6789")]}),
    )
    .await;
    assert_eq!(backend.as_deref(), Some("slm"));
}

#[test]
fn an_unknown_non_text_mode_is_a_located_config_error() {
    let err = Config::parse(
        &format!("{CONFIG}pii:\n  non_text: forward\n"),
        "test.yaml",
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("test.yaml:12:"), "{err}");
    assert!(
        err.contains("pii.non_text") && err.contains("\"forward\""),
        "{err}"
    );
}
