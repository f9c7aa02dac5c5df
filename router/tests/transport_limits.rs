//! Transport limits on a real listener (127.0.0.1:0), driven by raw sockets and reqwest (issue
//! 14): slow headers, slow bodies, idle keep-alive, oversized headers, too many connections or
//! requests, a client that stops reading, bounded shutdown, and a panicking handler. Timeouts
//! are configured in hundreds of milliseconds; assertions allow seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backends::{ChatRequest, ChatResponse, EventStream};
use common::{options, ScriptedCore, TestGateway};
use futures::future::BoxFuture;
use router::events::RequestSummary;
use router::gateway::{
    AppState, BackendSlot, Backends, DynBackend, GatewayOptions, Locality, TransportLimits,
};
use router::testing::chat_body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Small limits so tests are fast.
fn limits() -> TransportLimits {
    TransportLimits {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_millis(300),
        shutdown_grace: Duration::from_millis(500),
        max_header_bytes: 4096,
        max_connections: 64,
        max_in_flight: 64,
    }
}

fn with(transport: TransportLimits) -> GatewayOptions {
    GatewayOptions {
        transport,
        ..options()
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

async fn start(state: &AppState) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(router::gateway::serve(
        listener,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        server,
    }
}

fn chat_head(addr: SocketAddr, content_length: usize) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {content_length}\r\n\r\n"
    )
}

/// Read until the peer closes (or resets) the connection; `None` if it stays open for `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

/// The ledger once it holds `n` rows (waiting up to 10 s).
async fn ledger_rows(gw: &TestGateway, n: usize) -> Vec<RequestSummary> {
    for _ in 0..200 {
        let rows = gw.ledger();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the ledger never held {n} rows: {:?}", gw.ledger());
}

fn metric(state: &AppState, line_start: &str) -> f64 {
    let text = state.metrics().encode().unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

fn rejections(state: &AppState, reason: &str) -> f64 {
    metric(
        state,
        &format!("triage_transport_rejections_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn half_a_header_block_or_nothing_at_all_is_closed_after_the_header_timeout() {
    let gw = TestGateway::new(with(limits()));
    let running = start(&gw.state).await;
    let mut slowloris = TcpStream::connect(running.addr).await.unwrap();
    slowloris
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(running.addr).await.unwrap();
    for stream in [&mut slowloris, &mut silent] {
        let answer = read_until_closed(stream, Duration::from_secs(10)).await;
        assert_eq!(answer.as_deref(), Some(""), "closed without an answer");
    }
    assert_eq!(rejections(&gw.state, "header_timeout"), 2.0);
    assert!(gw.ledger().is_empty());
}

#[tokio::test]
async fn a_keep_alive_connection_stays_open_past_the_header_timeout_until_the_idle_timeout() {
    let gw = TestGateway::new(with(TransportLimits {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(3),
        ..limits()
    }));
    let running = start(&gw.state).await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut buf = [0u8; 4096];
    stream.write_all(request).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle for longer than the header timeout: still open.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(request).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then closed once idle for the idle timeout.
    let answer = read_until_closed(&mut stream, Duration::from_secs(15)).await;
    assert_eq!(answer.as_deref(), Some(""));
}

#[tokio::test]
async fn a_trickled_body_gets_408_and_a_ledger_row() {
    let gw = TestGateway::new(with(limits()));
    let running = start(&gw.state).await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(chat_head(running.addr, 100_000).as_bytes())
        .await
        .unwrap();
    stream.write_all(b"{\"model\":").await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"code\":\"body_read_timeout\""),
        "{answer}"
    );
    let rows = ledger_rows(&gw, 1).await;
    assert_eq!(rows[0].status, 408);
    assert_eq!(rows[0].error.as_deref(), Some("body_read_timeout"));
}

#[tokio::test]
async fn the_request_deadline_counts_from_the_headers_arrival() {
    let gw = TestGateway::new(GatewayOptions {
        request_deadline: Duration::from_millis(400),
        transport: TransportLimits {
            body_read_timeout: Duration::from_secs(20),
            ..limits()
        },
        ..options()
    });
    let running = start(&gw.state).await;
    let body = chat_body("hello", false).to_string();
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(chat_head(running.addr, body.len()).as_bytes())
        .await
        .unwrap();
    // The body arrives after the whole deadline has passed.
    tokio::time::sleep(Duration::from_millis(900)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    let rows = ledger_rows(&gw, 1).await;
    assert_eq!(rows[0].status, 504);
    assert!(rows[0].e2e_ms >= 800.0, "{}", rows[0].e2e_ms);
    assert_eq!(gw.calls("slm"), 0, "no backend is asked after the deadline");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let gw = TestGateway::new(with(limits()));
    let running = start(&gw.state).await;
    // Over the limit (4 KiB) but under hyper's backstop: an OpenAI-shaped 431.
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let padding = "a".repeat(6000);
    let request = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: {padding}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        answer.contains("\"code\":\"request_header_fields_too_large\""),
        "{answer}"
    );
    assert_eq!(rejections(&gw.state, "header_too_large"), 1.0);

    // 300 KB of headers: hyper stops buffering at twice the limit and answers 431 itself; the
    // socket wrapper gives that answer its OpenAI body.
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let padding = "b".repeat(300_000);
    let request = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: {padding}\r\n\r\n");
    let (mut read, mut write) = stream.split();
    let (_, answer) = tokio::join!(
        async {
            let _ = write.write_all(request.as_bytes()).await;
        },
        async {
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        }
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"]["code"], "header_too_large", "{answer:.400}");
}

#[tokio::test]
async fn connections_beyond_the_maximum_get_429_with_retry_after() {
    let gw = TestGateway::new(with(TransportLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        ..limits()
    }));
    let running = start(&gw.state).await;
    let held = [
        TcpStream::connect(running.addr).await.unwrap(),
        TcpStream::connect(running.addr).await.unwrap(),
    ];
    // Wait until both are being served.
    for _ in 0..100 {
        if metric(&gw.state, "triage_connections_open ") >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&gw.state, "triage_connections_open "), 2.0);
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", running.addr);
    let reply = client
        .post(&url)
        .header("content-type", "application/json")
        .body(chat_body("hi", false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 429);
    assert_eq!(reply.headers()["retry-after"], "1");
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    assert!(rejections(&gw.state, "connections") >= 1.0);

    drop(held);
    let mut answered = None;
    for _ in 0..100 {
        let reply = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .body(chat_body("hi", false).to_string())
            .send()
            .await
            .unwrap();
        if reply.status() == 200 {
            answered = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered.is_some(), "served again once connections closed");
}

#[tokio::test]
async fn requests_beyond_max_in_flight_get_429_with_retry_after() {
    let gw = TestGateway::new(with(TransportLimits {
        max_in_flight: 1,
        ..limits()
    }));
    let running = start(&gw.state).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", running.addr);
    let post = |body: serde_json::Value, task: &'static str| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-triage-task", task)
            .body(body.to_string())
            .send()
    };
    // A slow stream (40 ms a token) holds the only place while its body is unread.
    let words = vec!["w"; 500].join(" ");
    let first = post(chat_body(&words, true), "slow").await.unwrap();
    assert_eq!(first.status(), 200);
    let second = post(chat_body("hi", false), "default").await.unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests_in_flight");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // Health and metrics are not chat completions: still answered.
    let health = client
        .get(format!("http://{}/healthz", running.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(rejections(&gw.state, "in_flight"), 1.0);

    drop(first);
    let mut status = 0;
    for _ in 0..100 {
        status = post(chat_body("hi", false), "default")
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the place is free once the stream is dropped");
}

#[tokio::test]
async fn a_stream_whose_client_stopped_reading_is_cut_and_ledgered() {
    let gw = TestGateway::new(with(limits()));
    let running = start(&gw.state).await;
    // Echoed word by word as fast as the socket takes it: far more than the socket buffers hold.
    let words = vec!["abcdefgh"; 150_000].join(" ");
    let body = chat_body(&words, true).to_string();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(running.addr).await.unwrap();
    stream
        .write_all(chat_head(running.addr, body.len()).as_bytes())
        .await
        .unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    // Never read: the server's writes stall, and the write timeout cuts the stream.
    let rows = ledger_rows(&gw, 1).await;
    assert_eq!(rows[0].status, 408, "{:?}", rows[0]);
    assert_eq!(rows[0].error.as_deref(), Some("write_timeout"));
    assert!(rows[0].stream);
    assert_eq!(rejections(&gw.state, "write_timeout"), 1.0);
    assert_eq!(metric(&gw.state, "triage_requests_in_flight "), 0.0);
    drop(stream);
}

#[tokio::test]
async fn shutdown_ends_within_the_grace_period_despite_stuck_connections() {
    let gw = TestGateway::new(with(TransportLimits {
        header_read_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_millis(500),
        ..limits()
    }));
    let mut running = start(&gw.state).await;
    // A stream that would run for 40 s (1000 tokens at 40 ms), and a half-sent head.
    let words = vec!["w"; 1000].join(" ");
    let reply = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", running.addr))
        .header("content-type", "application/json")
        .header("x-triage-task", "slow")
        .body(chat_body(&words, true).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let mut half = TcpStream::connect(running.addr).await.unwrap();
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    running.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.server)
        .await
        .expect("the server stops within the grace period (plus margin)")
        .unwrap()
        .unwrap();
    // The cut stream is ledgered.
    let rows = ledger_rows(&gw, 1).await;
    assert_eq!(rows[0].status, 499);
    drop(reply);
}

/// TEST DOUBLE: a backend that panics, as a bug reachable from input would.
struct Panicking;

impl DynBackend for Panicking {
    fn chat(&self, _: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        Box::pin(async { panic!("test double: a bug in a handler") })
    }

    fn chat_stream(&self, _: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        Box::pin(async { panic!("test double: a bug in a handler") })
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_500_json_and_ledgers_500() {
    let core = Arc::new(ScriptedCore::default());
    let mut backends = Backends::new();
    backends.insert(BackendSlot::ready(
        "slm",
        Locality::Local,
        Arc::new(Panicking),
    ));
    let state = AppState::new(backends, core.clone(), with(limits()));
    let running = start(&state).await;
    let client = reqwest::Client::new();
    for stream in [false, true] {
        let reply = client
            .post(format!("http://{}/v1/chat/completions", running.addr))
            .header("content-type", "application/json")
            .body(chat_body("AB12 héllo 你好", stream).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 500);
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(body["error"]["type"], "api_error");
    }
    let rows = core.ledger.lock().unwrap().clone();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.status == 500), "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r.error.as_deref() == Some("internal_error")));
    assert_eq!(metric(&state, "triage_handler_panics_total "), 2.0);
    assert_eq!(metric(&state, "triage_requests_in_flight "), 0.0);
    // The server still serves.
    let health = client
        .get(format!("http://{}/healthz", running.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn transport_limits_are_configured_and_validated_with_their_line() {
    let yaml = |server: &str| {
        format!(
            "server:\n{server}\nbackends:\n  llm: {{ kind: openai, base_url: http://127.0.0.1:9/v1, \
             model: gpt-4o-mini }}\nroutes:\n  - {{ name: all, to: llm }}\n"
        )
    };
    let dir = std::path::Path::new(".");
    let config =
        router::config::Config::parse(&yaml("  listen: 127.0.0.1:8080"), "t.yaml", dir).unwrap();
    assert_eq!(config.server.transport, TransportLimits::default());
    let config = router::config::Config::parse(
        &yaml(
            "  header_read_timeout: 2s\n  body_read_timeout: 500ms\n  idle_timeout: 1m\n  \
             write_timeout: 5\n  shutdown_grace: 1s\n  max_header_bytes: 16384\n  \
             max_connections: 10\n  max_in_flight: 3",
        ),
        "t.yaml",
        dir,
    )
    .unwrap();
    assert_eq!(
        config.server.transport,
        TransportLimits {
            header_read_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(1),
            max_header_bytes: 16384,
            max_connections: 10,
            max_in_flight: 3,
        }
    );
    for (line, field) in [
        (
            "  listen: 127.0.0.1:8080\n  write_timeout: 0s",
            "write_timeout",
        ),
        (
            "  listen: 127.0.0.1:8080\n  max_in_flight: 0",
            "max_in_flight",
        ),
        (
            "  listen: 127.0.0.1:8080\n  max_header_bytes: 10",
            "max_header_bytes",
        ),
    ] {
        let err = router::config::Config::parse(&yaml(line), "t.yaml", dir)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.yaml:3:"), "{err}");
        assert!(err.contains(&format!("server.{field}")), "{err}");
    }
}
