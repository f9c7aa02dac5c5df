//! OTLP/HTTP traces (issue 16 item 7): a real `triage serve` with the real SmolLM2 and
//! `telemetry.otlp_endpoint` pointing at a receiver in this test (a tiny axum server — a TEST
//! DOUBLE of an OpenTelemetry collector — that keeps every POSTed `/v1/traces` body). Each
//! request must arrive as one server span with the GenAI semantic-convention attributes and
//! triage's decision attributes; the last batch is sent when the gateway stops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use serde_json::Value;

/// The collector double: every JSON body POSTed to `/v1/traces`.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Value>>>);

impl Received {
    fn spans(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|body| {
                body["resourceSpans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|rs| {
                        let service = rs["resource"]["attributes"][0].clone();
                        assert_eq!(service["key"], "service.name");
                        assert_eq!(service["value"]["stringValue"], "triage-test");
                        rs["scopeSpans"].as_array().cloned().unwrap_or_default()
                    })
                    .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
            })
            .collect()
    }
}

/// A span attribute's value object (`{"stringValue": …}` …), or null.
fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["key"] == key))
        .map(|a| &a["value"])
        .unwrap_or(&Value::Null)
}

fn string<'a>(span: &'a Value, key: &str) -> &'a str {
    attr(span, key)["stringValue"].as_str().unwrap_or_default()
}

fn int(span: &Value, key: &str) -> i64 {
    attr(span, key)["intValue"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_one_span_with_genai_and_triage_attributes() {
    let received = Received::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.0
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let model = support::root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let config = dir.path().join("triage.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{ ledger: {ledger} }}\n\
             backends:\n  slm: {{ kind: llama, model: {model}, slots: 1, context: 512 }}\n\
             routes:\n  - {{ name: default, to: slm }}\n\
             telemetry: {{ otlp_endpoint: \"http://{collector}\", service_name: triage-test }}\n",
            ledger = dir.path().join("ledger.sqlite").display(),
            model = model.display(),
        ),
    )
    .unwrap();
    let gw = support::serve(&config, &[]);
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for stream in [false, true] {
        let reply = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .header("content-type", "application/json")
            .header("x-triage-task", "greeting")
            .body(format!(
                r#"{{"model":"auto","max_tokens":4,"stream":{stream},"messages":[{{"role":"user","content":"Hi"}}]}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        ids.push(
            reply.headers()["x-triage-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        reply.text().await.unwrap();
    }
    // A request no backend answers: an error span.
    let reply = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("content-type", "application/json")
        .body(r#"{"model":"no-such-model","messages":[{"role":"user","content":"Hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);
    // Batches leave every second while the gateway runs: the first two spans arrive without a
    // shutdown.
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.spans().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        received.spans().len() >= 2,
        "spans exported while running: {:?}",
        received.spans()
    );
    // Stopping sends what is left.
    tokio::task::spawn_blocking(move || gw.stop())
        .await
        .unwrap();
    let spans = received.spans();
    assert_eq!(spans.len(), 3, "one span per request: {spans:#?}");

    for (id, stream) in ids.iter().zip([false, true]) {
        let span = spans
            .iter()
            .find(|s| string(s, "gen_ai.response.id") == id)
            .unwrap_or_else(|| panic!("a span for {id}: {spans:#?}"));
        assert_eq!(span["name"], "chat auto");
        assert_eq!(span["kind"], 2, "a server span");
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(end >= start && start > 0);
        assert_eq!(string(span, "gen_ai.operation.name"), "chat");
        assert_eq!(string(span, "gen_ai.system"), "llama.cpp");
        assert_eq!(string(span, "gen_ai.request.model"), "auto");
        assert_eq!(
            string(span, "gen_ai.response.model"),
            "SmolLM2-135M-Instruct.Q4_1"
        );
        assert!(int(span, "gen_ai.usage.input_tokens") > 0, "{span:#}");
        let output = int(span, "gen_ai.usage.output_tokens");
        assert!((1..=4).contains(&output), "{span:#}");
        let ttft = attr(span, "gen_ai.server.time_to_first_token")["doubleValue"]
            .as_f64()
            .unwrap();
        assert!(ttft > 0.0, "{span:#}");
        assert_eq!(string(span, "triage.route"), "default");
        assert_eq!(string(span, "triage.backend"), "slm");
        assert_eq!(string(span, "triage.task"), "greeting");
        assert_eq!(attr(span, "triage.escalated")["boolValue"], false);
        assert_eq!(attr(span, "triage.stream")["boolValue"], stream);
        assert!(
            attr(span, "triage.cost_usd")["doubleValue"]
                .as_f64()
                .unwrap()
                >= 0.0
        );
        assert_eq!(int(span, "http.response.status_code"), 200);
        assert!(span.get("status").is_none(), "{span:#}");
    }
    let failed = spans
        .iter()
        .find(|s| string(s, "gen_ai.request.model") == "no-such-model")
        .expect("the 404's span");
    assert_eq!(int(failed, "http.response.status_code"), 404);
    assert_eq!(failed["status"]["code"], 2);
    assert_eq!(string(failed, "error.type"), "model_not_found");
    server.abort();
}
