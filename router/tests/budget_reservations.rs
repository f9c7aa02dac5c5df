//! Budgets under concurrency (issue 15 item 1): every request reserves its worst-case cost in
//! every budget window before a backend is called, and settles to its real cost when the answer
//! ends — through the shared harness with a mock remote of fixed usage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::options;
use router::gateway::Locality;
use router::ledger::{budget_periods, now_unix_ms};
use router::reserve::{WindowKey, WindowState};
use router::testing::TestGateway;
use serde_json::json;

/// Every answer is the 5 words of the prompt (the mock echoes), so a request with
/// `max_tokens: 5` costs exactly its worst case: 5 × $2,000/M = $0.01 (prompt tokens are free
/// here). A $0.05 daily budget admits exactly 5 such requests.
const CONFIG: &str = r#"
backends:
  slm: { kind: llama, model: models/test.gguf, slots: 2 }
  llm: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }
pricing:
  llm: { input: 0.0, output: 2000.0 }
  slm: { machine_usd_per_hour: 0.0 }
budgets:
  daily_usd: 0.05
  on_exhausted: refuse
routes:
  - { name: default, to: llm }
"#;

const LIMIT_MICROS: i64 = 50_000;

fn gateway(llm: &str) -> TestGateway {
    TestGateway::from_yaml(CONFIG)
        .options(options())
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, llm)
        .build()
        .unwrap()
}

fn body(stream: bool, max_tokens: Option<u32>) -> serde_json::Value {
    let mut b = json!({
        "model": "auto",
        "stream": stream,
        "messages": [{ "role": "user", "content": "one two three four five" }],
    });
    if let Some(m) = max_tokens {
        b["max_tokens"] = json!(m);
    }
    b
}

fn today(gw: &TestGateway) -> WindowState {
    let key = WindowKey {
        scope: "*".into(),
        period: budget_periods(now_unix_ms()).0,
    };
    gw.policy_core().unwrap().reservations().window(&key)
}

fn micros(usd: f64) -> i64 {
    (usd * 1e6).round() as i64
}

/// What a burst did: (admitted, refused, spent in micro-dollars from the ledger rows).
async fn burst(gw: &TestGateway, n: usize, max_tokens: Option<u32>) -> (usize, Vec<String>, i64) {
    let replies =
        futures::future::join_all((0..n).map(|i| gw.chat(body(i % 2 == 0, max_tokens), None)))
            .await;
    let mut admitted = 0;
    let mut refused = Vec::new();
    for r in replies {
        let r = r.unwrap();
        match r.status.as_u16() {
            200 => admitted += 1,
            429 => refused.push(r.body),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    gw.policy_core().unwrap().flush();
    let spent = gw
        .ledger()
        .unwrap()
        .iter()
        .map(|r| micros(r.cost_usd))
        .sum();
    (admitted, refused, spent)
}

/// 200 concurrent requests, each worth exactly its $0.01 reservation, against $0.05: exactly 5
/// are admitted whatever the interleaving (settling returns no room, since real = worst case),
/// $0.05 is spent (0 overspend, in micro-dollars), and each of the 195 refusals names the
/// window and shows settled + reserved + its $0.01 above the limit (or the budget spent).
#[tokio::test]
async fn a_burst_admits_exactly_what_the_budget_holds() {
    let gw = gateway("echo");
    let (admitted, refused, spent) = burst(&gw, 200, Some(5)).await;
    assert_eq!(admitted, 5);
    assert_eq!(refused.len(), 195);
    assert_eq!(spent, LIMIT_MICROS, "spent {spent} µ$");
    for body in &refused {
        assert!(body.contains("global daily budget"), "{body}");
        // Refused by the reservation (settled + reserved + $0.01 over the limit) or, once all
        // five settled, by the guard that sees the budget spent: no room either way.
        assert!(
            body.contains("this request's $0.010000 > $0.050000")
                || body.contains("spent ($0.0500)"),
            "{body}"
        );
    }
    assert_eq!(
        today(&gw),
        WindowState {
            settled: LIMIT_MICROS,
            reserved: 0
        }
    );
    println!(
        "burst: 200 concurrent, $0.05 budget, $0.01 each: admitted {admitted}, spent ${:.6}, overspend {:.2}%",
        spent as f64 / 1e6,
        (spent - LIMIT_MICROS).max(0) as f64 / LIMIT_MICROS as f64 * 100.0
    );
}

/// Without `max_tokens` the reservation uses `budgets.default_max_tokens` (4096 × $2,000/M =
/// $8.19 > $0.05): nothing is admitted, and the refusal says so before any call.
#[tokio::test]
async fn a_request_without_max_tokens_reserves_the_default_cap() {
    let gw = gateway("echo");
    let (admitted, refused, spent) = burst(&gw, 4, None).await;
    assert_eq!((admitted, refused.len(), spent), (0, 4, 0));
    assert_eq!(gw.calls("llm").unwrap(), 0);
}

/// An upstream error before any token releases the reservation: nothing settled or held, and
/// the next request has the whole budget.
#[tokio::test]
async fn an_error_before_any_token_releases_the_reservation() {
    let gw = gateway("error_500");
    for stream in [false, true] {
        let r = gw.chat(body(stream, Some(5)), None).await.unwrap();
        assert!(r.status.is_server_error(), "{}: {}", r.status, r.body);
    }
    assert_eq!(today(&gw), WindowState::default());
}

/// A stream cut after 3 tokens (no usage ever arrives) is billed the 3 streamed tokens, not $0,
/// and the reservation becomes exactly that cost.
#[tokio::test]
async fn a_stream_cut_mid_way_settles_the_streamed_tokens() {
    let gw = gateway("disconnect_after_3");
    let r = gw.chat(body(true, Some(5)), None).await.unwrap();
    assert_eq!(r.status, 200);
    gw.policy_core().unwrap().flush();
    let rows = gw.ledger().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].tokens_out, 3, "{:?}", rows[0]);
    assert_eq!(micros(rows[0].cost_usd), 6_000, "{:?}", rows[0]);
    assert_eq!(
        today(&gw),
        WindowState {
            settled: 6_000,
            reserved: 0
        }
    );
}

/// `rate_limits:` without a shared store hold in process: a burst of 12 from one key against 4
/// requests per minute admits 4; the rest get 429 with `Retry-After`.
#[tokio::test]
async fn rate_limits_hold_in_process_without_a_store() {
    let yaml =
        format!("{CONFIG}\nrate_limits:\n  tenants: {{ alice: {{ requests_per_minute: 4 }} }}\n");
    let gw = TestGateway::from_yaml(&yaml)
        .options(router::gateway::GatewayOptions {
            keys: Some(router::gateway::ApiKeys::parse("alice:sk-alice").unwrap()),
            ..options()
        })
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap();
    let send = || {
        let request = axum::http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-alice")
            .body(axum::body::Body::from(
                json!({"model": "auto", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
                    .to_string(),
            ))
            .unwrap();
        gw.send(request)
    };
    let replies = futures::future::join_all((0..12).map(|_| send())).await;
    let statuses: Vec<u16> = replies
        .iter()
        .map(|r| r.as_ref().unwrap().status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    for r in replies
        .iter()
        .map(|r| r.as_ref().unwrap())
        .filter(|r| r.status != 200)
    {
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
        assert!(r.body.contains("rate_limit_exceeded"), "{}", r.body);
    }
}
