//! Hostile input against a real `triage serve` (issue 14): the local SmolLM2 engine and a
//! RECORDING MOCK REMOTE (a TEST DOUBLE: an OpenAI-compatible server in this test that keeps
//! every request body it receives). More than 150 hostile inputs of our own — malformed JSON,
//! wrong types, extreme numbers, Unicode, headers, content types, paths, PII side doors,
//! slowloris, a body trickle, a slow reader, bursts cut by the client — and then:
//!
//! - 0 panics (the gateway's stderr and `triage_handler_panics_total`), 0 empty replies, the
//!   gateway still answers;
//! - every error is an OpenAI-shaped body (`{"error": {"message", "type", …}}`) with the status
//!   the case expects;
//! - the engine's gauges are back to idle within 2 s after a burst the client cut;
//! - the recording remote never receives a planted PII value.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

/// The hostile requests, by kind (malformed JSON, wrong types, numbers, Unicode, headers, paths).
#[path = "abuse/cases.rs"]
mod cases;
/// Requests carrying planted PII by a side door.
#[path = "abuse/pii.rs"]
mod pii;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use cases::{
    extreme_numbers, headers_and_types, malformed_json, paths_and_methods, request, unicode, user,
    wrong_types, JSON,
};
use pii::pii_side_doors;

/// The recording mock remote: answers `ok` (JSON or SSE) and keeps every body it received.
#[derive(Clone, Default)]
struct Recorder {
    bodies: Arc<Mutex<Vec<String>>>,
}

async fn upstream_chat(
    axum::extract::State(rec): axum::extract::State<Recorder>,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let stream = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["stream"].as_bool())
        .unwrap_or(false);
    rec.bodies.lock().unwrap().push(text);
    if stream {
        let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "created": 0,
            "model": "mock", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"},
            "finish_reason": null}]});
        let last = json!({"id": "c1", "object": "chat.completion.chunk", "created": 0,
            "model": "mock", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
        let body = format!("data: {chunk}\n\ndata: {last}\n\ndata: [DONE]\n\n");
        ([("content-type", "text/event-stream")], body).into_response()
    } else {
        axum::Json(
            json!({"id": "c1", "object": "chat.completion", "created": 0, "model": "mock",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
            "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
        )
        .into_response()
    }
}

async fn start_recorder() -> (Recorder, SocketAddr) {
    let rec = Recorder::default();
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(upstream_chat))
        .with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (rec, addr)
}

/// A reply read off the wire: status 0 means the connection closed with no status line.
#[derive(Debug)]
struct Wire {
    status: u16,
    body: String,
}

/// Send raw bytes on a fresh connection and read until the server closes it (or `limit`).
async fn raw(addr: &str, bytes: &[u8], limit: Duration) -> Wire {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    read_reply(&mut s, limit).await
}

async fn read_reply(s: &mut TcpStream, limit: Duration) -> Wire {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Wire {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    }
}

/// The payload of a chunked body (best effort: enough to read an error object).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            out.push_str(&after[..after.len().min(n)]);
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Whether a 4xx/5xx body is an OpenAI error object.
fn openai_shaped(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| {
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
            && v["error"]["type"].as_str().is_some()
    })
}

fn config(dir: &std::path::Path, upstream: SocketAddr) -> std::path::PathBuf {
    let model = support::root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.exists(),
        "run `make build` first: {}",
        model.display()
    );
    let text = format!(
        r#"
server:
  ledger: {ledger}
  request_timeout: 60s
  header_read_timeout: 2s
  body_read_timeout: 2s
  write_timeout: 2s
backends:
  slm: {{ kind: llama, model: {model}, slots: 2, context: 2048, queue: 8 }}
  llm: {{ kind: openai, base_url: "http://{upstream}/v1", model: mock, api_key_env: TRIAGE_ABUSE_KEY }}
pricing:
  llm: {{ input: 1.0, output: 2.0 }}
routes:
  - {{ name: private, when: {{ pii: true }}, to: slm }}
  - {{ name: local, when: {{ task: [local] }}, to: slm }}
  - {{ name: default, to: llm }}
"#,
        ledger = dir.join("ledger.sqlite").display(),
        model = model.display(),
    );
    let path = dir.join("triage.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn metric(url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_inputs_never_panic_hang_or_leak() {
    let (recorder, upstream) = start_recorder().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), upstream);
    let stderr_path = dir.path().join("stderr.log");
    let guard = support::ServeCommand::new(&config)
        .env("TRIAGE_ABUSE_KEY", "sk-abuse-test")
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .start();
    let url = guard.url.clone();
    let addr = url.trim_start_matches("http://").to_string();

    let mut cases = Vec::new();
    cases.extend(malformed_json());
    cases.extend(wrong_types());
    cases.extend(extreme_numbers());
    cases.extend(unicode());
    cases.extend(headers_and_types());
    cases.extend(paths_and_methods());
    let side_doors = pii_side_doors();
    let mut planted = Vec::new();
    for (c, values) in side_doors {
        planted.extend(values);
        cases.push(c);
    }

    let mut failures = Vec::new();
    let total = cases.len();
    for c in &cases {
        let reply = raw(&addr, &c.bytes, Duration::from_secs(120)).await;
        let ok_status = c.expect.contains(&reply.status);
        // Even hyper's own answers to bytes that are not HTTP carry an OpenAI body
        // (`transport/parse_error.rs`); only a closed connection (status 0) has none.
        let empty = reply.status != 0 && reply.body.trim().is_empty();
        let shaped = reply.status < 400 || reply.status == 0 || openai_shaped(&reply.body);
        if !ok_status || empty || !shaped {
            failures.push(format!(
                "{}: status {} (expected {:?}), body {:?}",
                c.name,
                reply.status,
                c.expect,
                &reply.body[..reply.body.len().min(300)]
            ));
        }
    }

    // Slowloris: half a header block, never finished: the gateway closes it.
    let started = Instant::now();
    let w = raw(
        &addr,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: appl",
        Duration::from_secs(30),
    )
    .await;
    if started.elapsed() >= Duration::from_secs(30) {
        failures.push(format!("slowloris: still open after 30 s ({w:?})"));
    }
    // Body trickle: 9 of 100,000 promised bytes, then silence: cut.
    let started = Instant::now();
    let w = raw(
        &addr,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"model\":",
        Duration::from_secs(30),
    )
    .await;
    if started.elapsed() >= Duration::from_secs(30) {
        failures.push(format!("body trickle: still open after 30 s ({w:?})"));
    }
    if w.status != 0 && !openai_shaped(&w.body) {
        failures.push(format!("body trickle: not an OpenAI error: {w:?}"));
    }

    // A slow reader and a burst cut by the client: streaming requests to the local engine,
    // read a little (or not at all), then dropped.
    let stream_body = json!({"model": "auto", "stream": true, "max_tokens": 200,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}]})
    .to_string();
    let local = request(
        "/v1/chat/completions",
        &[JSON, ("x-triage-task", "local")],
        stream_body.as_bytes(),
    );
    let mut held = Vec::new();
    for i in 0..12 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&local).await.unwrap();
        if i % 2 == 0 {
            let mut first = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_secs(60), s.read(&mut first)).await;
        }
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(held);
    // Gauges back to idle within 2 s of the cut: the engine releases a cancelled sequence at
    // its next step and drops a waiting job whose client left.
    let cut = Instant::now();
    loop {
        let busy = metric(&url, "triage_local_busy_slots").await;
        let queued = metric(&url, "triage_local_queue_depth").await;
        let in_flight = metric(&url, "triage_requests_in_flight").await;
        if busy == 0.0 && queued == 0.0 && in_flight == 0.0 {
            break;
        }
        if cut.elapsed() > Duration::from_secs(2) {
            failures.push(format!(
                "gauges not idle 2 s after a cut burst: busy {busy}, queued {queued}, in flight {in_flight}"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Still alive and answering.
    let alive = raw(
        &addr,
        &request("/v1/chat/completions", &[JSON], &user("still there?")),
        Duration::from_secs(60),
    )
    .await;
    if alive.status != 200 {
        failures.push(format!("gateway no longer answers: {alive:?}"));
    }
    let panics = metric(&url, "triage_handler_panics_total").await;
    guard.stop();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if stderr.contains("panicked") || panics > 0.0 {
        failures.push(format!(
            "a handler panicked: {panics} counted; stderr:\n{stderr}"
        ));
    }

    // The recording remote never saw a planted PII value.
    let bodies = recorder.bodies.lock().unwrap().clone();
    for value in &planted {
        if let Some(b) = bodies.iter().find(|b| b.contains(value.as_str())) {
            failures.push(format!("PII {value:?} reached the remote: {b}"));
        }
    }
    assert!(total >= 150, "only {total} hostile inputs");
    assert!(
        failures.is_empty(),
        "{} of {} hostile inputs failed:\n{}",
        failures.len(),
        total + 4,
        failures.join("\n")
    );
}
