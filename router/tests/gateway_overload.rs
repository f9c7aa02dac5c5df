//! Overload through the gateway with the real routing core (`triage.yaml` policy, SQLite ledger
//! in memory): a local engine whose admission queue is at its bound spills to the route's spill
//! target; an `Overloaded` refusal falls back to the route's fallback when it has one, and is
//! otherwise a 429 with `Retry-After` and an OpenAI-shaped body. The local engine is a TEST
//! DOUBLE (`WithLoad` around a named mock) reporting the load a real engine's gauges would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::options;
use router::gateway::{LocalLoad, Locality};
use router::ledger::LedgerRow;
use router::testing::{chat_body, Reply, TestGateway};

/// One slot and a queue bound of 2, as `slm` is configured below.
const BOUND: usize = 2;

fn config(route: &str) -> String {
    format!(
        r#"
backends:
  slm: {{ kind: llama, model: models/test.gguf, slots: 1, queue: {BOUND} }}
  llm: {{ kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }}
pricing:
  llm: {{ input: 0.15, output: 0.60 }}
  slm: {{ machine_usd_per_hour: 0.05 }}
routes:
  - {route}
"#
    )
}

/// The gateway over `route`, its local engine answering as `slm_behaviour` with `queue_depth`
/// requests waiting behind its one busy slot.
fn gateway(route: &str, slm_behaviour: &str, queue_depth: usize) -> TestGateway {
    let load = LocalLoad {
        queue_depth,
        busy_slots: 1,
        slots: 1,
        predicted_ttft_ms: None,
    };
    TestGateway::from_yaml(&config(route))
        .options(options())
        .mock_under_load("slm", slm_behaviour, load)
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap()
}

async fn chat(gw: &TestGateway, stream: bool) -> Reply {
    gw.chat(chat_body("hello there", stream), None)
        .await
        .unwrap()
}

fn ledger(gw: &TestGateway) -> Vec<LedgerRow> {
    gw.ledger().unwrap()
}

#[tokio::test]
async fn a_queue_at_its_bound_spills_to_the_route_target() {
    let route =
        format!("{{ name: local-first, to: slm, spill: {{ to: llm, queue_depth: {BOUND} }} }}");
    let below = gateway(&route, "echo", BOUND - 1);
    let reply = chat(&below, false).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-triage-backend"), Some("slm"));
    assert_eq!(below.calls("llm").unwrap(), 0);

    // At the bound the engine would refuse the request: the policy sends it away first.
    for stream in [false, true] {
        let full = gateway(&route, "echo", BOUND);
        let reply = chat(&full, stream).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-triage-backend"), Some("llm"));
        assert_eq!(reply.header("x-triage-route"), Some("local-first"));
        assert_eq!(
            full.calls("slm").unwrap(),
            0,
            "the full engine is not asked"
        );
        assert_eq!(full.calls("llm").unwrap(), 1);
        assert_eq!(ledger(&full)[0].backends, vec!["llm".to_string()]);
    }
}

#[tokio::test]
async fn an_overloaded_engine_falls_back_to_the_route_fallback() {
    // The queue filled between the decision and the submit: the engine says `Overloaded`.
    let route = "{ name: local-first, to: slm, fallback: [llm] }";
    for stream in [false, true] {
        let gw = gateway(route, "overloaded", BOUND - 1);
        let reply = chat(&gw, stream).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-triage-backend"), Some("llm"));
        assert_eq!(gw.calls("llm").unwrap(), 1);
        let rows = ledger(&gw);
        assert_eq!(rows[0].backends, vec!["slm".to_string(), "llm".to_string()]);
        assert_eq!(rows[0].status, 200);
    }
}

#[tokio::test]
async fn an_overloaded_engine_without_fallback_is_429_with_retry_after() {
    let route = "{ name: local-only, to: slm }";
    for stream in [false, true] {
        let gw = gateway(route, "overloaded", BOUND);
        let reply = chat(&gw, stream).await;
        assert_eq!(reply.status, 429, "{}", reply.body);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let body = reply.json().unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["code"], "overloaded");
        assert!(body["error"]["param"].is_null());
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("slm") && message.contains("queue"),
            "{message}"
        );
        let rows = ledger(&gw);
        assert_eq!(rows[0].status, 429);
        assert_eq!(rows[0].error_code.as_deref(), Some("overloaded"));
    }
}
