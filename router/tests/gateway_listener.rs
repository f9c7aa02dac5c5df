//! The gateway on a real listener (127.0.0.1:0) driven by reqwest: the live event stream,
//! graceful shutdown with a running stream, and a client that disconnects mid-stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{options, TestGateway};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use router::testing::Served;
use router::testing::{chat_body, sse_data, streamed_text};

/// The scripted gateway on 127.0.0.1 (any free port).
async fn start(gw: &TestGateway) -> Served {
    gw.gateway
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn post_chat(
    client: &reqwest::Client,
    addr: SocketAddr,
    body: serde_json::Value,
    task: &str,
) -> reqwest::Response {
    client
        .post(url(addr, "/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-triage-task", task)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn events_stream_one_summary_per_request_and_end_at_shutdown() {
    let gw = TestGateway::new(options());
    let mut running = start(&gw).await;
    let addr = running.addr();
    let client = reqwest::Client::new();
    let events = client
        .get(url(addr, "/v1/triage/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut events = events.bytes_stream().eventsource();

    let mut ids = Vec::new();
    for (body, task) in [
        (chat_body("one", false), "big"),
        (chat_body("two words", true), "small"),
        (chat_body("three", false), "budget"),
    ] {
        let reply = post_chat(&client, addr, body, task).await;
        ids.push(
            reply.headers()["x-triage-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        reply.bytes().await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        assert_eq!(event.event, "request");
        let summary: router::events::RequestSummary = serde_json::from_str(&event.data).unwrap();
        seen.push(summary);
    }
    let seen_ids: Vec<String> = seen.iter().map(|s| s.id.clone()).collect();
    assert_eq!(seen_ids, ids);
    assert_eq!(seen[0].backend.as_deref(), Some("llm"));
    assert!(seen[1].stream);
    assert_eq!(seen[2].status, 429);

    running.begin_shutdown();
    // The live stream ends at shutdown (it would otherwise hold the server open).
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = events.next().await {
            if e.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "event stream did not end at shutdown");
    tokio::time::timeout(Duration::from_secs(5), running.stopped())
        .await
        .expect("server stops")
        .unwrap();
}

#[tokio::test]
async fn graceful_shutdown_lets_a_running_stream_finish() {
    let gw = TestGateway::new(options());
    let mut running = start(&gw).await;
    let addr = running.addr();
    let client = reqwest::Client::new();
    let reply = post_chat(
        &client,
        addr,
        chat_body("w1 w2 w3 w4 w5 w6 w7 w8", true),
        "slow",
    )
    .await;
    assert_eq!(reply.status(), 200);
    let mut body = reply.bytes_stream();
    let mut text = String::new();
    let first = body.next().await.unwrap().unwrap();
    text.push_str(std::str::from_utf8(&first).unwrap());
    // Shut down while the stream is running.
    running.begin_shutdown();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert_eq!(streamed_text(&data), "w1 w2 w3 w4 w5 w6 w7 w8");
    tokio::time::timeout(Duration::from_secs(5), running.stopped())
        .await
        .expect("server stops after the stream")
        .unwrap();
    // After shutdown no new connection is accepted.
    assert!(client
        .get(url(addr, "/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_err());
    let ledger = gw.ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].status, 200);
}

#[tokio::test]
async fn client_disconnect_over_tcp_is_ledgered_as_499() {
    let gw = TestGateway::new(options());
    let mut running = start(&gw).await;
    let addr = running.addr();
    let client = reqwest::Client::new();
    let reply = post_chat(
        &client,
        addr,
        chat_body("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10", true),
        "slow",
    )
    .await;
    let mut body = reply.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    drop(client);
    // The server notices on its next write (the next token, 40 ms later).
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = gw.ledger();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, 499);
    running.begin_shutdown();
    running.stopped().await.unwrap();
}
