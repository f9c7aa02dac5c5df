#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! An OpenAI-compatible target in front of a test upstream on 127.0.0.1 that answers like a
//! triage gateway: an SSE stream plus `x-triage-*` routing headers, which land in the records.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bench::runner::{run_target, RunOptions};
use bench::scenario::{parse_yaml, Scenario, ScenarioFile};
use bench::score::Judges;
use bench::spec::TargetSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.1 test upstream: for every request, a streamed chat completion saying
/// "positive" with the given routing headers. It also keeps the request bodies it received.
async fn gateway_double(headers: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let headers: Arc<str> = Arc::from(headers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (seen, headers) = (seen.clone(), headers.clone());
            tokio::spawn(async move {
                // Read the request head and body (Content-Length).
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse().unwrap())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = String::from_utf8_lossy(&buf[end + 4..]).to_string();
                            seen.lock().unwrap().push(body);
                            break;
                        }
                    }
                }
                let chunk = |content: &str, finish: &str| {
                    format!(
                        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":{finish}}}]}}\n\n"
                    )
                };
                let mut body = String::new();
                body.push_str(&chunk("posi", "null"));
                body.push_str(&chunk("tive", "\"stop\""));
                body.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":2,\"total_tokens\":14}}\n\n");
                body.push_str("data: [DONE]\n\n");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/v1"), bodies)
}

fn scenario() -> Scenario {
    let yaml = "name: s\ntask: sentiment\ndataset: {items: [{t: good, l: positive}, {t: great, l: positive}]}\nprompt: \"{{t}}\"\nexpected: \"{{l}}\"\nscorer: {kind: choice, choices: [positive, negative]}\n";
    let raw: ScenarioFile = parse_yaml(yaml, Path::new("s.yaml")).unwrap();
    Scenario::from_file(raw, Path::new("s.yaml"), None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_headers_from_a_gateway_are_recorded() {
    use router::headers::{BACKEND, COST, ESCALATED, ROUTE};
    let (base, bodies) = gateway_double(&format!(
        "{BACKEND}: llm\r\n{ROUTE}: cascade\r\n{ESCALATED}: true\r\n{COST}: 0.00042\r\n"
    ))
    .await;
    let spec = TargetSpec::parse_assignment(&format!("router=openai:{base}#auto")).unwrap();
    let target = spec.build(Path::new("."), None).await.unwrap();
    assert_eq!(
        target.info().spec.as_deref(),
        Some(format!("openai:{base}#auto").as_str())
    );
    let run = run_target(
        target,
        Arc::new(vec![scenario()]),
        &RunOptions::default(),
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 2);
    for r in &run.records {
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.output, "positive");
        assert!(r.passed);
        assert_eq!(r.routing.backend.as_deref(), Some("llm"));
        assert_eq!(r.routing.route.as_deref(), Some("cascade"));
        assert_eq!(r.routing.escalated, Some(true));
        assert_eq!(r.cost_usd, Some(0.00042), "the gateway's cost wins");
        assert_eq!((r.tokens_in, r.tokens_out), (Some(12), Some(2)));
        assert_eq!(r.itl.unwrap().count, 1);
    }
    // The gateway is told the task and scenario, for its routing rules.
    for body in bodies.lock().unwrap().iter() {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["metadata"]["task"], "sentiment", "{body}");
        assert_eq!(v["metadata"]["scenario"], "s");
        assert_eq!(v["model"], "auto");
        assert_eq!(v["stream"], true);
    }
    let (summary, _) = bench::results::summarize(&[run], Default::default());
    let all = &summary.groups[0];
    let routing = all.routing.as_ref().unwrap();
    assert_eq!(routing.backends["llm"], 2);
    assert_eq!(routing.escalated_share, Some(1.0));
    assert!((all.cost.total_usd.unwrap() - 0.00084).abs() < 1e-12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_upstream_has_no_routing_and_price_gives_cost() {
    let (base, bodies) = gateway_double("").await;
    let spec =
        TargetSpec::parse_assignment(&format!("llm=openai:{base}#gpt;metadata=off")).unwrap();
    let price = router::pricing::BackendPrice::PerToken {
        input: 1.0,
        output: 2.0,
    };
    let target = spec.build(Path::new("."), Some(price)).await.unwrap();
    let run = run_target(
        target,
        Arc::new(vec![scenario()]),
        &RunOptions::default(),
        &Judges::default(),
    )
    .await;
    let r = &run.records[0];
    assert!(r.routing.is_empty());
    assert!((r.cost_usd.unwrap() - (12.0 * 1.0 + 2.0 * 2.0) / 1e6).abs() < 1e-15);
    for body in bodies.lock().unwrap().iter() {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v.get("metadata").is_none(), "metadata=off drops it: {body}");
    }
}
