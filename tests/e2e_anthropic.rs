//! End to end with Anthropic's SDK: gateway B (`triage serve` with Gemma-3-270M) is reached by
//! gateway A through triage's own Anthropic backend, so B answers on its `/v1/messages`; A
//! routes between its local SmolLM2, B, and `claude`, a TEST DOUBLE Anthropic upstream (below)
//! that replays a recorded tool-use answer (`tests/fixtures/anthropic/stream_sse/
//! tool_use_response.sse`, from anthropic-sdk-python). The official `anthropic` Python SDK (installed by `make setup`) is the client
//! (`tests/e2e/anthropic_sdk_client.py` holds the checks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use support::{root, serve};

fn python(mode: &str, a: &str, b_ledger: &Path) {
    let status = Command::new("python3")
        .arg(root().join("tests/e2e/anthropic_sdk_client.py"))
        .args([mode, a])
        .arg(b_ledger)
        .status()
        .expect("python3 runs (make setup installs the anthropic SDK)");
    assert!(
        status.success(),
        "anthropic SDK checks ({mode}) failed: see the lines above"
    );
}

/// TEST DOUBLE of Anthropic's Messages API for tool calls: a request without `tools` is a 400;
/// one carrying `tool_result` blocks is answered with those results quoted; otherwise a
/// recorded `get_weather` tool-use answer (streamed: the recorded SSE transcript).
async fn mock_messages(body: Bytes) -> Response {
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if request["tools"].as_array().is_none_or(Vec::is_empty) {
        let error = serde_json::json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "mock upstream: this double only answers requests with tools"}});
        return (StatusCode::BAD_REQUEST, error.to_string()).into_response();
    }
    // A turn carrying a tool result (as triage's Anthropic backend translated it back) is
    // answered with the result, so the client can see it arrived.
    let results: Vec<String> = request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| {
            format!(
                "{}={}",
                b["tool_use_id"].as_str().unwrap_or(""),
                b["content"]
            )
        })
        .collect();
    if !results.is_empty() {
        let message = serde_json::json!({
            "id": "msg_mock_result", "type": "message", "role": "assistant", "model": "claude-mock",
            "content": [{"type": "text", "text": format!("results: {}", results.join(", "))}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 400, "output_tokens": 10}
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            message.to_string(),
        )
            .into_response();
    }
    if request["stream"] == true {
        let sse = std::fs::read_to_string(
            root().join("tests/fixtures/anthropic/stream_sse/tool_use_response.sse"),
        )
        .unwrap();
        // The recorded file ends without the blank line that ends its last event.
        let sse = format!("{}\n\n", sse.trim_end());
        return ([(header::CONTENT_TYPE, "text/event-stream")], sse).into_response();
    }
    let message = serde_json::json!({
        "id": "msg_mock_tool", "type": "message", "role": "assistant", "model": "claude-mock",
        "content": [
            {"type": "text", "text": "I'll check the weather in Paris."},
            {"type": "tool_use", "id": "toolu_mock_1", "name": "get_weather",
             "input": {"location": "Paris, France"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 377, "output_tokens": 56}
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        message.to_string(),
    )
        .into_response()
}

/// Serve the double on a free port from a thread of its own (the test itself is synchronous).
fn start_mock_upstream() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().route("/v1/messages", post(mock_messages));
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

#[test]
fn messages_api_with_the_anthropic_sdk() {
    let dir = std::env::temp_dir().join(format!("triage-e2e-anthropic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let models = root().join("models");
    let mock = start_mock_upstream();
    let b_ledger = dir.join("gateway-b.sqlite");
    let b_config = dir.join("b.yaml");
    std::fs::write(
        &b_config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {} }}\n\
             backends:\n  gemma: {{ kind: llama, model: {}, slots: 2, threads: 1, context: 1024 }}\n\
             routes:\n  - {{ name: default, to: gemma }}\n",
            b_ledger.display(),
            models.join("gemma-3-270m-q4_k_m.gguf").display()
        ),
    )
    .unwrap();
    let b = serve(&b_config, &[]);

    let a_config = dir.join("a.yaml");
    std::fs::write(
        &a_config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {}, api_keys_env: E2E_TRIAGE_KEYS }}\n\
             backends:\n\
             \x20 slm: {{ kind: llama, model: {}, slots: 2, threads: 1, context: 1024 }}\n\
             \x20 llm: {{ kind: anthropic, base_url: \"{}/v1\", model: gemma, retry: {{ max_attempts: 1 }} }}\n\
             \x20 claude: {{ kind: anthropic, base_url: \"http://{mock}/v1\", model: claude-mock, retry: {{ max_attempts: 1 }} }}\n\
             reference_backend: llm\n\
             pricing:\n  llm: {{ input: 1000.0, output: 1000.0 }}\n  claude: {{ input: 1.0, output: 5.0 }}\n\
             \x20 slm: {{ machine_usd_per_hour: 0.05 }}\n\
             routes:\n\
             \x20 - {{ name: private, when: {{ pii: true }}, to: slm }}\n\
             \x20 - {{ name: small-tasks, when: {{ task: [sentiment] }}, to: slm }}\n\
             \x20 - {{ name: tools, when: {{ tools: true }}, to: claude }}\n\
             \x20 - {{ name: default, to: llm, fallback: [slm] }}\n\
             budgets: {{ tenants: {{ bob: {{ daily_usd: 0.04 }} }}, on_exhausted: refuse }}\n",
            dir.join("gateway-a.sqlite").display(),
            models.join("SmolLM2-135M-Instruct.Q4_1.gguf").display(),
            b.url
        ),
    )
    .unwrap();
    let a = serve(
        &a_config,
        &[("E2E_TRIAGE_KEYS", "alice:sk-alice-e2e,bob:sk-bob-e2e")],
    );

    python("main", &a.url, &b_ledger);
    drop(b);
    python("fallback", &a.url, &b_ledger);
    drop(a);
    std::fs::remove_dir_all(&dir).ok();
}
