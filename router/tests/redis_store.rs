//! `store: redis://…` (issue 15 item 2): budgets and per-key rate limits shared by gateways
//! through one private `redis-server` (started per test on a free port, killed on drop): two
//! gateways hold one budget and one rate limit, a Redis killed mid-run follows
//! `store_failure` with no panic and every request in the ledger, and a restarted Redis is used
//! again. Needs `redis-server` (`scripts/setup.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use common::options;
use router::gateway::{ApiKeys, GatewayOptions, Locality};
use router::ledger::{budget_periods, now_unix_ms};
use router::reserve::{RedisLedger, WindowKey};
use router::testing::{RedisServer, Reply, TestGateway};
use serde_json::json;

/// Mock answers echo the prompt's 5 words, so with `max_tokens: 5` a request costs exactly its
/// worst case: 5 × $2,000/M = $0.01 (prompt tokens free). $0.05 a day admits exactly 5.
fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
store: {url}
backends:
  slm: {{ kind: llama, model: models/test.gguf, slots: 2 }}
  llm: {{ kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }}
pricing:
  llm: {{ input: 0.0, output: 2000.0 }}
  slm: {{ machine_usd_per_hour: 0.0 }}
{extra}
"#
    )
}

const BUDGET: &str = r#"
budgets:
  daily_usd: 0.05
  on_exhausted: refuse
routes:
  - { name: default, to: llm }
"#;

const LIMIT_MICROS: i64 = 50_000;

fn gateway(yaml: &str, opts: GatewayOptions) -> TestGateway {
    TestGateway::from_yaml(yaml)
        .options(opts)
        .mock("slm", Locality::Local, "echo")
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap()
}

fn keyed() -> GatewayOptions {
    GatewayOptions {
        keys: Some(ApiKeys::parse("alice:sk-alice,bob:sk-bob").unwrap()),
        ..options()
    }
}

fn body(stream: bool) -> serde_json::Value {
    json!({
        "model": "auto",
        "stream": stream,
        "max_tokens": 5,
        "messages": [{ "role": "user", "content": "one two three four five" }],
    })
}

async fn chat(gw: &TestGateway, key: Option<&str>, task: Option<&str>, stream: bool) -> Reply {
    let mut r = Request::post("/v1/chat/completions").header("content-type", "application/json");
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    if let Some(t) = task {
        r = r.header("x-triage-task", t);
    }
    gw.send(r.body(Body::from(body(stream).to_string())).unwrap())
        .await
        .unwrap()
}

async fn get(gw: &TestGateway, path: &str) -> Reply {
    gw.send(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn micros(usd: f64) -> i64 {
    (usd * 1e6).round() as i64
}

/// Settled and reserved micro-dollars of today's global window, read from Redis itself.
async fn redis_window(server: &RedisServer) -> (i64, i64) {
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = RedisLedger::window_key(&WindowKey {
        scope: "*".into(),
        period: budget_periods(now_unix_ms()).0,
    });
    let (s, r): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
        .arg(&key)
        .arg("settled")
        .arg("reserved")
        .query_async(&mut conn)
        .await
        .unwrap();
    (s.unwrap_or(0), r.unwrap_or(0))
}

/// Settlements are sent in the background: wait until nothing is reserved any more.
async fn settled_window(server: &RedisServer) -> (i64, i64) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let w = redis_window(server).await;
        if w.1 == 0 || Instant::now() > until {
            return w;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 200 concurrent requests spread over two gateways sharing one Redis, each worth exactly its
/// $0.01 reservation, against one $0.05 budget: exactly 5 admitted in total (not 5 per
/// gateway), $0.05 spent in the two ledgers together and in Redis, 0 overspend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_admit_exactly_the_budget() {
    let server = RedisServer::start().unwrap();
    let yaml = config(&server.url(), BUDGET);
    let (a, b) = (gateway(&yaml, options()), gateway(&yaml, options()));
    let replies = futures::future::join_all((0..200).map(|i| {
        let gw = if i % 2 == 0 { &a } else { &b };
        chat(gw, None, None, i % 4 < 2)
    }))
    .await;
    let mut admitted = 0;
    for r in &replies {
        match r.status.as_u16() {
            200 => admitted += 1,
            429 => assert!(r.body.contains("global daily budget"), "{}", r.body),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    let rows: Vec<_> = [&a, &b]
        .iter()
        .flat_map(|gw| gw.ledger().unwrap())
        .collect();
    assert_eq!(rows.len(), 200, "every request has its ledger row");
    let spent: i64 = rows.iter().map(|r| micros(r.cost_usd)).sum();
    assert_eq!(admitted, 5);
    assert_eq!(spent, LIMIT_MICROS, "spent {spent} µ$ in the ledgers");
    assert_eq!(settled_window(&server).await, (LIMIT_MICROS, 0));
    println!(
        "two gateways, one Redis: 200 concurrent, $0.05 budget, $0.01 each: admitted {admitted}, spent ${:.6}, overspend {:.2}%",
        spent as f64 / 1e6,
        (spent - LIMIT_MICROS).max(0) as f64 / LIMIT_MICROS as f64 * 100.0
    );
}

/// `rate_limits.per_key.requests_per_minute: 7` across two gateways: a burst of 40 from one key
/// admits 7 in total; the others get 429 with `Retry-After` and an OpenAI error body; another
/// key has its own bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_across_two_gateways_admits_r() {
    let server = RedisServer::start().unwrap();
    let yaml = config(
        &server.url(),
        "rate_limits:\n  per_key: { requests_per_minute: 7 }\nroutes:\n  - { name: default, to: llm }\n",
    );
    let (a, b) = (gateway(&yaml, keyed()), gateway(&yaml, keyed()));
    let replies = futures::future::join_all((0..40).map(|i| {
        let gw = if i % 2 == 0 { &a } else { &b };
        chat(gw, Some("sk-alice"), None, false)
    }))
    .await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(admitted, 7);
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 429, "{}", r.body);
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        let err = &r.json().unwrap()["error"];
        assert_eq!(err["code"], "rate_limit_exceeded");
        assert_eq!(err["type"], "rate_limit_error");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("rate limit of tenant alice: 7 requests per minute"),
            "{err}"
        );
    }
    assert_eq!(chat(&b, Some("sk-bob"), None, false).await.status, 200);
    let rows = a.ledger().unwrap().len() + b.ledger().unwrap().len();
    assert_eq!(rows, 41, "refused requests have ledger rows too");
}

/// `tokens_per_minute: 32`: each request reserves its estimated prompt (23 bytes → 6 tokens)
/// + `max_tokens` 5 = 11 tokens, and uses 10 (the mock counts 5 + 5 words), so 1 comes back
/// when it settles: 3 fit (32 → 21 → 22 → 11 → 12 → 1), where without the refund only 2 would.
/// A request asking more than a minute's allowance is refused as one that can never fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rate_limit_counts_prompt_and_max_tokens() {
    let server = RedisServer::start().unwrap();
    let yaml = config(
        &server.url(),
        "rate_limits:\n  per_key: { tokens_per_minute: 32 }\nroutes:\n  - { name: default, to: llm }\n",
    );
    let gw = gateway(&yaml, keyed());
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            chat(&gw, Some("sk-alice"), None, false)
                .await
                .status
                .as_u16(),
        );
        // Settlements (the refund) are sent in the background: let each land.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let big = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-bob")
        .body(Body::from(
            json!({"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        ))
        .unwrap();
    let r = gw.send(big).await.unwrap();
    assert_eq!(r.status, 429);
    assert!(
        r.body.contains("more than the 32 tokens per minute"),
        "{}",
        r.body
    );
}

const FAILOVER: &str = r#"
routes:
  - { name: remote-only, when: { task: [summarize] }, to: llm }
  - { name: default, to: llm, fallback: [slm] }
"#;

/// Redis killed in the middle of a burst, `store_failure: fail_closed` (the default): requests
/// whose route has a local backend run there, the others get 503 with an OpenAI body; no 500,
/// every request in the ledger; `/metrics` and `/readyz` say the store is down. Once Redis is
/// back (empty), requests are admitted through it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_fails_closed_and_a_restart_is_used_again() {
    let mut server = RedisServer::start().unwrap();
    let yaml = config(
        &server.url(),
        &format!("rate_limits:\n  per_key: {{ requests_per_minute: 100000 }}\n{FAILOVER}"),
    );
    let gw = gateway(&yaml, keyed());
    let r = chat(&gw, Some("sk-alice"), None, false).await;
    assert_eq!(r.header("x-triage-backend"), Some("llm"));

    // A burst with Redis killed part-way through.
    let burst = futures::future::join_all((0..60).map(|i| {
        let gw = &gw;
        async move {
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            let task = (i % 3 == 0).then_some("summarize");
            (task, chat(gw, Some("sk-alice"), task, i % 2 == 0).await)
        }
    }));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop();
    };
    let (replies, ()) = tokio::join!(burst, kill);
    let mut local = 0;
    let mut unavailable = 0;
    for (task, r) in &replies {
        match (r.status.as_u16(), r.header("x-triage-backend")) {
            (200, Some("llm")) => {}
            (200, Some("slm")) => {
                assert_eq!(*task, None, "a remote-only route never runs locally");
                local += 1;
            }
            (503, _) => {
                assert_eq!(*task, Some("summarize"), "{}", r.body);
                assert_eq!(r.json().unwrap()["error"]["code"], "store_unavailable");
                unavailable += 1;
            }
            (status, backend) => panic!("unexpected {status} from {backend:?}: {}", r.body),
        }
    }
    assert!(
        local > 0 && unavailable > 0,
        "local {local}, 503 {unavailable}"
    );
    assert_eq!(
        gw.ledger().unwrap().len(),
        61,
        "every request has its ledger row"
    );
    let metrics = get(&gw, "/metrics").await.body;
    assert!(
        metrics.contains(r#"triage_store_up{store="redis"} 0"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"triage_store_errors_total{store="redis"} 0"#));
    let ready = get(&gw, "/readyz").await.json().unwrap();
    assert_eq!(ready["store"], "down");

    server.restart().unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let r = chat(&gw, Some("sk-alice"), Some("summarize"), false).await;
        if r.status == 200 {
            assert_eq!(r.header("x-triage-backend"), Some("llm"));
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(Instant::now() < until, "Redis back, but not used again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = get(&gw, "/metrics").await.body;
    assert!(metrics.contains(r#"triage_store_up{store="redis"} 1"#));
    assert_eq!(get(&gw, "/readyz").await.json().unwrap()["store"], "up");
}

/// `store_failure: fail_open`: with Redis down, requests are admitted unchecked (to their
/// remote route) rather than refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_admits_while_redis_is_down() {
    let mut server = RedisServer::start().unwrap();
    let yaml = config(
        &server.url(),
        &format!("store_failure: fail_open\n{BUDGET}"),
    );
    let gw = gateway(&yaml, options());
    assert_eq!(chat(&gw, None, None, false).await.status, 200);
    server.stop();
    for stream in [false, true] {
        let r = chat(&gw, None, None, stream).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-triage-backend"), Some("llm"));
    }
    assert_eq!(gw.ledger().unwrap().len(), 3);
}

/// A reservation whose request died with its replica (never settled, never released) frees
/// itself at its deadline: the next admission touching the window sweeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replicas_reservation_expires_at_its_deadline() {
    use router::reserve::{Ask, Claim, Denied, ReservationLedger, StoreUrl};
    let server = RedisServer::start().unwrap();
    let ledger = RedisLedger::new(&StoreUrl::parse(&server.url()).unwrap()).unwrap();
    let claims = vec![Claim {
        key: WindowKey {
            scope: "*".into(),
            period: budget_periods(now_unix_ms()).0,
        },
        limit: 100,
    }];
    let ask = |ms: u64| Ask {
        claims: claims.clone(),
        amount: 100,
        expires: Instant::now() + Duration::from_millis(ms),
        rate: None,
    };
    // The "crashed" request: reserved the whole budget for 200 ms, then nothing.
    ledger.reserve(ask(200)).await.unwrap();
    match ledger.reserve(ask(60_000)).await {
        Err(Denied::Budget(r)) => assert!(r.held_by_reservations(), "{r}"),
        other => panic!("admitted over a live reservation: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    ledger.reserve(ask(60_000)).await.unwrap();
    assert_eq!(redis_window(&server).await, (0, 100));
}
