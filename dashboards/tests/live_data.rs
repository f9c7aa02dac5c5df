#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The live view's data layer against a TEST DOUBLE gateway: a small local axum server that
//! serves `/v1/triage/events` (SSE of `router::events::RequestSummary`, pushed by the test)
//! and `/metrics` (encoded by the gateway's real `router::metrics::Metrics`). It checks that
//! events and counters reach the dashboard's state and that the dashboard reconnects when the
//! gateway restarts. (The same check against a real `triage serve` is the lead's end-to-end
//! test.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use axum::Router;
use dashboards::data::live::{self, LiveOptions, RequestSummary};
use dashboards::state::{App, Connection, DataMsg, LiveState};
use futures::Stream;
use router::metrics::Metrics;
use tokio::sync::{broadcast, mpsc, watch};

/// TEST DOUBLE of a gateway's observability endpoints.
struct FakeGateway {
    events: broadcast::Sender<RequestSummary>,
    metrics: Metrics,
    /// Set to true to end every open event stream (as a gateway shutting down does).
    closing: watch::Sender<bool>,
}

impl FakeGateway {
    fn finish_request(&self, summary: RequestSummary) {
        self.metrics.observe(&summary, &[0.01, 0.02]);
        let _ = self.events.send(summary);
    }
}

async fn events(
    State(gw): State<Arc<FakeGateway>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = gw.events.subscribe();
    let closing = gw.closing.subscribe();
    let stream = futures::stream::unfold((rx, closing), |(mut rx, mut closing)| async move {
        let next = tokio::select! {
            _ = closing.wait_for(|c| *c) => return None,
            next = rx.recv() => next.ok()?,
        };
        let event = Event::default()
            .event("request")
            .data(serde_json::to_string(&next).unwrap());
        Some((Ok(event), (rx, closing)))
    });
    Sse::new(stream)
}

async fn metrics(State(gw): State<Arc<FakeGateway>>) -> String {
    gw.metrics.set_local_load("slm", 1, 2, 4);
    gw.metrics.encode().unwrap()
}

/// Start the TEST DOUBLE on `addr` (port 0 for any); returns its state, bound address and task.
async fn start_fake_gateway(
    addr: SocketAddr,
) -> (Arc<FakeGateway>, SocketAddr, tokio::task::JoinHandle<()>) {
    let gw = Arc::new(FakeGateway {
        events: broadcast::channel(64).0,
        metrics: Metrics::new(),
        closing: watch::channel(false).0,
    });
    let app = Router::new()
        .route("/v1/triage/events", get(events))
        .route("/metrics", get(metrics))
        .with_state(gw.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (gw, bound, task)
}

fn summary(id: &str, backend: &str, route: &str, cost: f64, saved: f64) -> RequestSummary {
    RequestSummary {
        id: id.into(),
        unix_ms: 1_700_000_000_000,
        model: "auto".into(),
        task: Some("sentiment".into()),
        route: Some(route.into()),
        backend: Some(backend.into()),
        tried: vec![backend.into()],
        status: 200,
        prompt_tokens: 20,
        completion_tokens: 3,
        cost_usd: cost,
        saved_usd: saved,
        ttft_ms: Some(12.0),
        e2e_ms: 40.0,
        ..Default::default()
    }
}

fn options(addr: SocketAddr) -> LiveOptions {
    let mut o = LiveOptions::new(format!("http://{addr}/"));
    o.metrics_interval = Duration::from_millis(40);
    o.min_backoff = Duration::from_millis(20);
    o.max_backoff = Duration::from_millis(100);
    o
}

/// Feed messages into the state until `done` holds (or fail after 10 s).
async fn pump_until(
    live: &mut LiveState,
    rx: &mut mpsc::Receiver<DataMsg>,
    what: &str,
    done: impl Fn(&LiveState) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    if let Err(e) = live.pump_until(rx, deadline, done).await {
        panic!("{e} waiting for: {what}; state: {live:?}");
    }
}

fn requests_total(live: &LiveState) -> f64 {
    live.metrics.as_ref().map_or(0.0, |m| m.total_requests())
}

#[tokio::test]
async fn events_and_counters_reach_the_live_state() {
    let (gw, addr, server) = start_fake_gateway("127.0.0.1:0".parse().unwrap()).await;
    let (tx, mut rx) = mpsc::channel(256);
    let tasks = live::spawn(options(addr), tx, DataMsg::Live);
    let mut app = App::new(Vec::new(), None, Some(format!("http://{addr}/")));
    let live = &mut app.live;

    pump_until(live, &mut rx, "connected and first scrape", |l| {
        l.connection == Connection::Connected && l.metrics.is_some()
    })
    .await;
    assert_eq!(requests_total(live), 0.0);
    let m = live.metrics.as_ref().unwrap();
    assert_eq!(m.slots.get("slm"), Some(&4.0));
    assert_eq!(m.busy_slots.get("slm"), Some(&2.0));
    assert_eq!(m.queue_depth.get("slm"), Some(&1.0));

    gw.finish_request(summary("a", "slm", "small-tasks", 0.0001, 0.002));
    gw.finish_request(summary("b", "slm", "small-tasks", 0.0001, 0.002));
    gw.finish_request(summary("c", "llm", "default", 0.003, 0.0));

    pump_until(live, &mut rx, "3 events and counters at 3", |l| {
        l.events_seen == 3 && requests_total(l) == 3.0
    })
    .await;
    // Newest first in the table; latency points per backend.
    assert_eq!(live.recent[0].id, "c");
    assert_eq!(live.latency.get("slm").map(|v| v.len()), Some(2));
    assert_eq!(live.latency.get("llm").map(|v| v.len()), Some(1));
    let m = live.metrics.as_ref().unwrap();
    let by_backend = m.requests_by_backend();
    assert_eq!(by_backend.get("slm"), Some(&2.0));
    assert_eq!(by_backend.get("llm"), Some(&1.0));
    assert_eq!(m.requests_by_route().get("small-tasks"), Some(&2.0));
    let burned: f64 = m.cost_usd.values().sum();
    let saved: f64 = m.saved_usd.values().sum();
    assert!((burned - 0.0032).abs() < 1e-9, "burned {burned}");
    assert!((saved - 0.004).abs() < 1e-9, "saved {saved}");
    assert!((live.cost_seen_usd - 0.0032).abs() < 1e-9);
    // Some scrape saw the counters move, so a non-zero rate was computed at some point.
    assert!(
        live.rps_history.iter().any(|r| *r > 0.0),
        "{:?}",
        live.rps_history
    );

    tasks.abort();
    server.abort();
}

#[tokio::test]
async fn reconnects_when_the_gateway_restarts() {
    let (gw, addr, server) = start_fake_gateway("127.0.0.1:0".parse().unwrap()).await;
    let (tx, mut rx) = mpsc::channel(256);
    let tasks = live::spawn(options(addr), tx, DataMsg::Live);
    let mut app = App::new(Vec::new(), None, Some(format!("http://{addr}/")));
    let live = &mut app.live;
    pump_until(live, &mut rx, "first connection", |l| l.connects == 1).await;
    gw.finish_request(summary("before", "slm", "r", 0.0, 0.0));
    pump_until(live, &mut rx, "event before restart", |l| {
        l.events_seen == 1
    })
    .await;

    // The gateway goes away: streams end, the listener closes.
    gw.closing.send_replace(true);
    server.abort();
    let _ = server.await;
    pump_until(live, &mut rx, "disconnection noticed", |l| {
        matches!(l.connection, Connection::Disconnected { .. })
    })
    .await;

    // It comes back on the same address with fresh counters.
    let (gw2, _, server2) = start_fake_gateway(addr).await;
    pump_until(live, &mut rx, "reconnected", |l| {
        l.connects == 2 && l.connection == Connection::Connected
    })
    .await;
    gw2.finish_request(summary("after", "llm", "r", 0.001, 0.0));
    pump_until(live, &mut rx, "event after restart", |l| {
        l.events_seen == 2 && requests_total(l) == 1.0
    })
    .await;
    assert_eq!(live.recent[0].id, "after");

    tasks.abort();
    server2.abort();
}

#[tokio::test]
async fn unreachable_gateway_is_reported_not_fatal() {
    // Bind then drop to get a port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (tx, mut rx) = mpsc::channel(256);
    let tasks = live::spawn(options(addr), tx, DataMsg::Live);
    let mut app = App::new(Vec::new(), None, Some(format!("http://{addr}")));
    let live = &mut app.live;
    pump_until(live, &mut rx, "disconnected and metrics error", |l| {
        matches!(l.connection, Connection::Disconnected { .. }) && l.metrics_error.is_some()
    })
    .await;
    match &live.connection {
        Connection::Disconnected { error, .. } => assert!(!error.is_empty()),
        other => panic!("unexpected {other:?}"),
    }
    tasks.abort();
}
