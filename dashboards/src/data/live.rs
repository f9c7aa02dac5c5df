//! The live view's data layer: two background tasks reading a running gateway.
//!
//! - the **event task** subscribes to `GET /v1/triage/events` (SSE, parsed by the
//!   `eventsource-stream` crate over `reqwest`'s byte stream) and forwards every finished
//!   request's [`RequestSummary`] (the gateway's own type);
//! - the **metrics task** polls `GET /metrics` (Prometheus text, parsed by the
//!   `prometheus-parse` crate) into a [`MetricsSnapshot`].
//!
//! Both send [`LiveMsg`]s over a channel and never touch the screen. When the gateway goes
//! away (restart, crash) the event task reports the disconnection and reconnects with a capped
//! exponential back-off; the metrics task simply keeps polling. Both stop when the receiver is
//! dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
pub use router::events::RequestSummary;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::LiveError;

const EVENTS_PATH: &str = "/v1/triage/events";
const METRICS_PATH: &str = "/metrics";

/// What the live tasks report. Failures travel as the text the live view shows (a
/// [`LiveError`] rendered), since the tasks recover from them on their own.
#[derive(Clone, Debug)]
pub enum LiveMsg {
    /// The event stream is open.
    Connected,
    /// The event stream failed or ended; a reconnect follows after `retry_in`.
    Disconnected {
        /// The failure, as text.
        error: String,
        /// How long the event task waits before reconnecting.
        retry_in: Duration,
    },
    /// One finished request.
    Event(Box<RequestSummary>),
    /// A `data:` line that is not a request summary.
    BadEvent(String),
    /// A fresh scrape of `/metrics`.
    Metrics(MetricsSnapshot),
    /// A `/metrics` poll failed (unreachable, error status, not Prometheus text); polling
    /// continues.
    MetricsError(String),
}

/// How to reach the gateway.
#[derive(Clone)]
pub struct LiveOptions {
    /// Base URL, e.g. `http://127.0.0.1:8080` (a trailing `/` is fine).
    pub base_url: String,
    /// Bearer key, when the gateway requires one (never printed).
    pub api_key: Option<String>,
    /// How often `/metrics` is polled (default 1 s).
    pub metrics_interval: Duration,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay (default 5 s).
    pub max_backoff: Duration,
}

impl fmt::Debug for LiveOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveOptions")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("metrics_interval", &self.metrics_interval)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl LiveOptions {
    /// Options for the gateway at `base_url`, without a key: metrics every second, reconnect
    /// back-off 250 ms to 5 s.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            metrics_interval: Duration::from_secs(1),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    fn get(&self, client: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        let req = client.get(self.url(path));
        match &self.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }
}

/// Handles of the two live tasks; dropping them does not stop the tasks (dropping the
/// receiver does), [`LiveTasks::abort`] does.
#[derive(Debug)]
pub struct LiveTasks {
    /// The task reading the SSE event stream.
    pub events: JoinHandle<()>,
    /// The task polling `/metrics`.
    pub metrics: JoinHandle<()>,
}

impl LiveTasks {
    /// Stop both tasks.
    pub fn abort(&self) {
        self.events.abort();
        self.metrics.abort();
    }
}

/// Start the event and metrics tasks; `wrap` turns their messages into the channel's type.
pub fn spawn<M: Send + 'static>(
    options: LiveOptions,
    tx: mpsc::Sender<M>,
    wrap: fn(LiveMsg) -> M,
) -> LiveTasks {
    let client = reqwest::Client::new();
    let events = tokio::spawn(event_task(
        options.clone(),
        client.clone(),
        tx.clone(),
        wrap,
    ));
    let metrics = tokio::spawn(metrics_task(options, client, tx, wrap));
    LiveTasks { events, metrics }
}

async fn event_task<M>(
    options: LiveOptions,
    client: reqwest::Client,
    tx: mpsc::Sender<M>,
    wrap: fn(LiveMsg) -> M,
) {
    let mut backoff = options.min_backoff;
    loop {
        let error = match follow_events(&options, &client, &tx, wrap).await {
            Follow::ReceiverGone => return,
            Follow::Ended {
                error,
                was_connected,
            } => {
                if was_connected {
                    backoff = options.min_backoff;
                }
                error
            }
        };
        let msg = LiveMsg::Disconnected {
            error: error.to_string(),
            retry_in: backoff,
        };
        if tx.send(wrap(msg)).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

enum Follow {
    ReceiverGone,
    Ended {
        error: LiveError,
        was_connected: bool,
    },
}

async fn follow_events<M>(
    options: &LiveOptions,
    client: &reqwest::Client,
    tx: &mpsc::Sender<M>,
    wrap: fn(LiveMsg) -> M,
) -> Follow {
    let ended = |error: LiveError, was_connected: bool| Follow::Ended {
        error,
        was_connected,
    };
    let response = match options
        .get(client, EVENTS_PATH)
        .header("accept", "text/event-stream")
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return ended(request_error(EVENTS_PATH, &e), false),
    };
    if !response.status().is_success() {
        let status = response.status();
        return ended(
            LiveError::Status {
                path: EVENTS_PATH,
                status,
            },
            false,
        );
    }
    if tx.send(wrap(LiveMsg::Connected)).await.is_err() {
        return Follow::ReceiverGone;
    }
    let mut stream = response.bytes_stream().eventsource();
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => return ended(LiveError::Stream(e.to_string()), true),
        };
        if event.data.trim().is_empty() {
            continue;
        }
        let msg = match serde_json::from_str::<RequestSummary>(&event.data) {
            Ok(summary) => LiveMsg::Event(Box::new(summary)),
            Err(e) => LiveMsg::BadEvent(format!("event `{}`: {e}", event.event)),
        };
        if tx.send(wrap(msg)).await.is_err() {
            return Follow::ReceiverGone;
        }
    }
    ended(LiveError::Closed, true)
}

async fn metrics_task<M>(
    options: LiveOptions,
    client: reqwest::Client,
    tx: mpsc::Sender<M>,
    wrap: fn(LiveMsg) -> M,
) {
    let mut interval = tokio::time::interval(options.metrics_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let msg = match scrape(&options, &client).await {
            Ok(snapshot) => LiveMsg::Metrics(snapshot),
            Err(e) => LiveMsg::MetricsError(e.to_string()),
        };
        if tx.send(wrap(msg)).await.is_err() {
            return;
        }
    }
}

async fn scrape(
    options: &LiveOptions,
    client: &reqwest::Client,
) -> Result<MetricsSnapshot, LiveError> {
    let response = options
        .get(client, METRICS_PATH)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| request_error(METRICS_PATH, &e))?;
    if !response.status().is_success() {
        return Err(LiveError::Status {
            path: METRICS_PATH,
            status: response.status(),
        });
    }
    let text = response
        .text()
        .await
        .map_err(|e| request_error(METRICS_PATH, &e))?;
    MetricsSnapshot::parse(&text, Instant::now())
}

fn request_error(path: &'static str, e: &reqwest::Error) -> LiveError {
    LiveError::Request {
        path,
        detail: describe(e),
    }
}

/// A reqwest error as its root cause ("Connection refused (os error 111)"), which says more
/// than the top-level message, with the top-level kind before it.
fn describe(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(s) = root.source() {
        root = s;
    }
    let kind = if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    if std::ptr::addr_eq(root, e as &dyn std::error::Error) {
        format!("{kind}: {e}")
    } else {
        format!("{kind}: {root}")
    }
}

/// The gateway metrics the live view shows, from one scrape of `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsSnapshot {
    /// When the scrape was taken (for rates between scrapes).
    pub at: Instant,
    /// `triage_requests_total` by (backend, route, status).
    pub requests: BTreeMap<(String, String, String), f64>,
    /// `triage_cost_usd_total` by backend.
    pub cost_usd: BTreeMap<String, f64>,
    /// `triage_saved_usd_total` by backend.
    pub saved_usd: BTreeMap<String, f64>,
    /// `triage_local_queue_depth` by backend: requests waiting for a local engine slot.
    pub queue_depth: BTreeMap<String, f64>,
    /// `triage_local_busy_slots` by backend: slots decoding now.
    pub busy_slots: BTreeMap<String, f64>,
    /// `triage_local_slots` by backend: slots the local engine has.
    pub slots: BTreeMap<String, f64>,
    /// `triage_requests_in_flight`.
    pub in_flight: Option<f64>,
    /// `triage_cascade_escalations_total`: cascade requests escalated to the next backend.
    pub escalations: Option<f64>,
    /// `triage_fallbacks_total`: requests that fell back to another backend after an error.
    pub fallbacks: Option<f64>,
}

impl MetricsSnapshot {
    /// Parse Prometheus / OpenMetrics text. Unknown metrics are ignored.
    pub fn parse(text: &str, at: Instant) -> Result<MetricsSnapshot, LiveError> {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines)
            .map_err(|e| LiveError::NotPrometheus(e.to_string()))?;
        let mut s = MetricsSnapshot {
            at,
            requests: BTreeMap::new(),
            cost_usd: BTreeMap::new(),
            saved_usd: BTreeMap::new(),
            queue_depth: BTreeMap::new(),
            busy_slots: BTreeMap::new(),
            slots: BTreeMap::new(),
            in_flight: None,
            escalations: None,
            fallbacks: None,
        };
        for sample in &scrape.samples {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => continue,
            };
            let label = |name: &str| sample.labels.get(name).unwrap_or("none").to_string();
            match sample.metric.as_str() {
                "triage_requests_total" | "triage_requests" => {
                    let key = (label("backend"), label("route"), label("status"));
                    *s.requests.entry(key).or_default() += value;
                }
                "triage_cost_usd_total" | "triage_cost_usd" => {
                    *s.cost_usd.entry(label("backend")).or_default() += value;
                }
                "triage_saved_usd_total" | "triage_saved_usd" => {
                    *s.saved_usd.entry(label("backend")).or_default() += value;
                }
                "triage_local_queue_depth" => {
                    s.queue_depth.insert(label("backend"), value);
                }
                "triage_local_busy_slots" => {
                    s.busy_slots.insert(label("backend"), value);
                }
                "triage_local_slots" => {
                    s.slots.insert(label("backend"), value);
                }
                "triage_requests_in_flight" => s.in_flight = Some(value),
                "triage_cascade_escalations_total" => s.escalations = Some(value),
                "triage_fallbacks_total" => s.fallbacks = Some(value),
                _ => {}
            }
        }
        Ok(s)
    }

    /// Requests of every backend, route and status together.
    pub fn total_requests(&self) -> f64 {
        self.requests.values().sum()
    }

    /// Requests summed by backend.
    pub fn requests_by_backend(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for ((backend, _, _), v) in &self.requests {
            *out.entry(backend.clone()).or_default() += v;
        }
        out
    }

    /// Requests summed by route.
    pub fn requests_by_route(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for ((_, route, _), v) in &self.requests {
            *out.entry(route.clone()).or_default() += v;
        }
        out
    }
}
