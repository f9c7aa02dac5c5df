//! Browser safety and tenancy at the gateway (issue 14 item 4): CORS only for listed origins,
//! `/v1/triage/events` per tenant (admins see all), `/readyz` hides load errors from callers
//! without a key, and 401s are counted in metrics without ledger rows. The real policy core
//! over an in-memory ledger (`router::testing`); the upstreams are `backends::mock` TEST DOUBLEs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use http_body_util::BodyExt;
use router::config::Config;
use router::gateway::{ApiKeys, BackendSlot, Gateway, GatewayOptions, Locality};
use router::testing::TestGateway;
use tower::ServiceExt;

const CONFIG: &str = r#"
server:
  api_keys_env: TRIAGE_TEST_KEYS
  admin_tenants: [ops]
  cors_allow_origins: ["https://app.example.com"]
backends:
  slm: { kind: llama, model: models/test.gguf, slots: 2 }
  llm: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }
routes:
  - { name: default, to: slm }
"#;

fn gateway() -> TestGateway {
    let config = Config::parse(CONFIG, "test.yaml", Path::new(".")).unwrap();
    let llm = BackendSlot::pending("llm", Locality::Remote);
    llm.fail("cannot read /secret/path/model.gguf".into());
    TestGateway::from_yaml(CONFIG)
        .options(GatewayOptions {
            keys: Some(ApiKeys::parse("a:sk-a,b:sk-b,ops:sk-ops").unwrap()),
            ..Gateway::limits_for(&config)
        })
        .mock("slm", Locality::Local, "echo")
        .slot(llm)
        .build()
        .unwrap()
}

/// The gateway's app, to drive with `oneshot` (the events stream never ends by itself).
fn app(gw: &TestGateway) -> axum::Router {
    router::gateway::app(gw.state().clone())
}

fn chat(key: Option<&str>) -> Request<Body> {
    let mut req = Request::post("/v1/chat/completions").header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let body =
        serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    req.body(Body::from(body.to_string())).unwrap()
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn unauthenticated_requests_are_counted_not_written_to_the_ledger() {
    let gw = gateway();
    for key in [None, Some("sk-wrong"), Some("sk-a")] {
        let response = app(&gw).oneshot(chat(key)).await.unwrap();
        let expected = if key == Some("sk-a") { 200 } else { 401 };
        assert_eq!(response.status().as_u16(), expected);
        let body = body_text(response).await;
        if expected == 401 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["code"], "invalid_api_key", "{body}");
        }
    }
    let rows = gw.ledger().unwrap();
    assert_eq!(
        rows.len(),
        1,
        "only the authenticated request is a ledger row"
    );
    assert_eq!(rows[0].key, "a");
    let metrics = app(&gw)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = body_text(metrics).await;
    assert!(
        text.contains("triage_auth_rejections_total{endpoint=\"chat\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn cors_answers_only_listed_origins() {
    let gw = gateway();
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/chat/completions")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-stainless-os",
            )
            .body(Body::empty())
            .unwrap()
    };
    let ok = app(&gw)
        .oneshot(preflight("https://app.example.com"))
        .await
        .unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let evil = app(&gw)
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    // Without a list, no CORS headers at all.
    let open = TestGateway::from_yaml(
        "backends:\n  slm: { kind: llama, model: m.gguf }\nroutes:\n  - { name: d, to: slm }\n",
    )
    .mock("slm", Locality::Local, "echo")
    .build()
    .unwrap();
    let r = app(&open)
        .oneshot(preflight("https://app.example.com"))
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app(&open).oneshot(chat(None)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn readyz_names_no_paths_without_a_key() {
    let gw = gateway();
    let get = |key: Option<&str>| {
        let mut r = Request::get("/readyz");
        if let Some(k) = key {
            r = r.header("authorization", format!("Bearer {k}"));
        }
        r.body(Body::empty()).unwrap()
    };
    let anon = body_text(app(&gw).oneshot(get(None)).await.unwrap()).await;
    assert!(anon.contains("llm") && !anon.contains("/secret"), "{anon}");
    let keyed = body_text(app(&gw).oneshot(get(Some("sk-b"))).await.unwrap()).await;
    assert!(keyed.contains("/secret/path"), "{keyed}");
}

/// The `data:` payloads a subscriber with `key` receives while tenants a, b and ops each make
/// one request.
async fn events_seen_by(key: &str) -> Vec<String> {
    let gw = gateway();
    let response = app(&gw)
        .oneshot(
            Request::get("/v1/triage/events")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    for k in ["sk-a", "sk-b", "sk-ops"] {
        let r = app(&gw).oneshot(chat(Some(k))).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        body_text(r).await;
    }
    let mut text = String::new();
    // Read until nothing more arrives for a while (the subscriber saw everything published).
    while let Ok(Some(Ok(chunk))) =
        tokio::time::timeout(Duration::from_millis(500), body.next()).await
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

fn tenants(data: &[String]) -> Vec<String> {
    data.iter()
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            v["key"].as_str().unwrap_or("-").to_string()
        })
        .collect()
}

#[tokio::test]
async fn events_show_a_tenant_only_its_own_requests_and_an_admin_all() {
    assert_eq!(tenants(&events_seen_by("sk-a").await), ["a"]);
    assert_eq!(tenants(&events_seen_by("sk-ops").await), ["a", "b", "ops"]);
}
