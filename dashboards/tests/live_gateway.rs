#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The live view's data layer against the real gateway (`router::gateway::serve` with the real
//! policy core from a `triage.yaml`, SQLite ledger in memory, real `/metrics` and
//! `/v1/triage/events`) on a real listener, built by `router::testing`. Only the upstream
//! models are TEST DOUBLEs (`backends::mock::MockBackend` "echo"). Requests flow; the
//! dashboard's state sees the events and the counters move; the gateway restarts and the
//! dashboard reconnects.
//! (The same against a `triage serve` process is the lead's end-to-end test.)

use std::net::SocketAddr;
use std::time::Duration;

use dashboards::data::live::{self, LiveOptions};
use dashboards::state::{App, Connection, DataMsg, LiveState};
use router::gateway::Locality;
use router::testing::{Served, TestGateway};
use tokio::sync::mpsc;

const CONFIG: &str = r#"
backends:
  slm: { kind: llama, model: models/test.gguf, slots: 2 }
  llm: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }
pricing:
  llm: { input: 0.15, output: 0.60 }
  slm: { machine_usd_per_hour: 0.05 }
routes:
  - { name: small-tasks, when: { task: [sentiment] }, to: slm }
  - { name: default, to: llm }
"#;

/// The real gateway with TEST DOUBLE upstreams, on `addr` (port 0: any).
async fn start_gateway(addr: SocketAddr) -> (Served, SocketAddr) {
    let gateway = TestGateway::from_yaml(CONFIG)
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap();
    let served = gateway.serve(addr).await.unwrap();
    let bound = served.addr();
    (served, bound)
}

async fn chat(client: &reqwest::Client, addr: SocketAddr, task: &str, text: &str) {
    let body = serde_json::json!({
        "model": "auto",
        "messages": [{"role": "user", "content": text}],
    });
    let response = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-triage-task", task)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.unwrap();
}

async fn pump_until(
    live: &mut LiveState,
    rx: &mut mpsc::Receiver<DataMsg>,
    what: &str,
    done: impl Fn(&LiveState) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    if let Err(e) = live.pump_until(rx, deadline, done).await {
        panic!("{e} waiting for: {what}; state: {live:?}");
    }
}

fn by_backend(live: &LiveState, backend: &str) -> f64 {
    live.metrics
        .as_ref()
        .and_then(|m| m.requests_by_backend().get(backend).copied())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn live_view_follows_a_real_gateway_and_its_restart() {
    let (gw, addr) = start_gateway("127.0.0.1:0".parse().unwrap()).await;
    let (tx, mut rx) = mpsc::channel(256);
    let mut options = LiveOptions::new(format!("http://{addr}"));
    options.metrics_interval = Duration::from_millis(50);
    options.min_backoff = Duration::from_millis(20);
    options.max_backoff = Duration::from_millis(100);
    let tasks = live::spawn(options, tx, DataMsg::Live);
    let mut app = App::new(Vec::new(), None, Some(format!("http://{addr}")));
    let live = &mut app.live;
    pump_until(live, &mut rx, "connected and scraped", |l| {
        l.connection == Connection::Connected && l.metrics.is_some()
    })
    .await;

    let client = reqwest::Client::new();
    chat(&client, addr, "sentiment", "I loved this film").await;
    chat(&client, addr, "sentiment", "Dreadful service").await;
    chat(
        &client,
        addr,
        "summary",
        "Summarise the meeting notes please",
    )
    .await;

    pump_until(live, &mut rx, "3 events, counters at 2 slm + 1 llm", |l| {
        l.events_seen == 3 && by_backend(l, "slm") == 2.0 && by_backend(l, "llm") == 1.0
    })
    .await;
    let routes: Vec<Option<&str>> = live.recent.iter().map(|s| s.route.as_deref()).collect();
    assert_eq!(
        routes,
        [Some("default"), Some("small-tasks"), Some("small-tasks")]
    );
    assert!(live
        .recent
        .iter()
        .all(|s| s.is_success() && s.e2e_ms >= 0.0));
    let m = live.metrics.as_ref().unwrap();
    assert_eq!(m.requests_by_route().get("small-tasks"), Some(&2.0));
    let burned: f64 = m.cost_usd.values().sum();
    let saved: f64 = m.saved_usd.values().sum();
    assert!(burned > 0.0, "the LLM request cost something: {m:?}");
    assert!(saved > 0.0, "the SLM requests saved something: {m:?}");
    assert!(live.latency.contains_key("slm") && live.latency.contains_key("llm"));

    // Restart: graceful shutdown ends the event stream; a new gateway on the same address.
    gw.stop().await.unwrap();
    pump_until(live, &mut rx, "disconnection", |l| {
        matches!(l.connection, Connection::Disconnected { .. })
    })
    .await;
    let (gw2, _) = start_gateway(addr).await;
    pump_until(live, &mut rx, "reconnected", |l| {
        l.connects == 2 && l.connection == Connection::Connected
    })
    .await;
    chat(&client, addr, "sentiment", "Back again and happy").await;
    pump_until(
        live,
        &mut rx,
        "event after restart, counters from zero",
        |l| l.events_seen == 4 && by_backend(l, "slm") == 1.0 && by_backend(l, "llm") == 0.0,
    )
    .await;

    tasks.abort();
    gw2.stop().await.unwrap();
}
