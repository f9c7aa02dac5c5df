//! State of the live view: the connection to a gateway's event stream, the recent requests
//! and per-backend latency points taken from its events, and request rates computed from the
//! `/metrics` counters over a sliding window (a counter that goes down means the gateway
//! restarted, and counting starts again from zero).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::data::live::{LiveMsg, MetricsSnapshot, RequestSummary};

/// State of the connection to the gateway's event stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Connection {
    /// No `--live` URL given.
    Off,
    /// Waiting for the first connection.
    Connecting,
    /// The event stream is open.
    Connected,
    /// The event stream failed or ended; the event task retries.
    Disconnected {
        /// Why, as text.
        error: String,
        /// How long until the next attempt.
        retry_in: Duration,
    },
}

/// Requests per second over the last [`RATE_WINDOW`] of scrapes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rates {
    /// All backends together.
    pub total: f64,
    /// Per answering backend.
    pub by_backend: BTreeMap<String, f64>,
    /// Per route.
    pub by_route: BTreeMap<String, f64>,
}

/// Requests per second are averaged over this much scrape history.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Request counters of one scrape, for rates.
#[derive(Clone, Debug)]
pub struct CounterSample {
    /// When the scrape was taken.
    pub at: std::time::Instant,
    /// `triage_requests_total` summed by backend.
    pub by_backend: BTreeMap<String, f64>,
    /// `triage_requests_total` summed by route.
    pub by_route: BTreeMap<String, f64>,
}

/// How many recent requests the live view keeps (newest first).
pub const LIVE_RECENT: usize = 200;
/// How many points each sparkline keeps: end-to-end latencies per backend, and requests per second.
pub const LIVE_SPARK_POINTS: usize = 120;

/// The live view: connection, recent requests, latency points, metrics and rates.
#[derive(Clone, Debug)]
pub struct LiveState {
    /// The gateway's base URL (`--live`); `None` when the live view is off.
    pub url: Option<String>,
    /// State of the event stream.
    pub connection: Connection,
    /// Times the event stream was (re)established.
    pub connects: u64,
    /// Request summaries received from the event stream.
    pub events_seen: u64,
    /// Event stream `data:` lines that were not request summaries.
    pub bad_events: u64,
    /// The most recent such line, shown for diagnosis.
    pub last_bad_event: Option<String>,
    /// Newest first.
    pub recent: VecDeque<RequestSummary>,
    /// End-to-end microseconds of the last requests, per backend, oldest first.
    pub latency: BTreeMap<String, VecDeque<u64>>,
    /// The latest `/metrics` scrape.
    pub metrics: Option<MetricsSnapshot>,
    /// The latest scrape's error; cleared by the next good scrape.
    pub metrics_error: Option<String>,
    /// Requests per second from the `/metrics` counters over [`RATE_WINDOW`].
    pub rates: Rates,
    /// Scrapes within the rate window, oldest first.
    pub counter_history: VecDeque<CounterSample>,
    /// Total requests/s at each scrape, oldest first.
    pub rps_history: VecDeque<f64>,
    /// Cost in USD of the requests seen by this dashboard (from events).
    pub cost_seen_usd: f64,
    /// What the reference LLM would have cost minus what the requests seen cost, in USD (from
    /// events).
    pub saved_seen_usd: f64,
    /// The text filter of the recent-requests table.
    pub filter: String,
    /// The selected row of the recent-requests table.
    pub scroll: usize,
}

impl LiveState {
    pub(super) fn new(url: Option<String>) -> Self {
        LiveState {
            connection: if url.is_some() {
                Connection::Connecting
            } else {
                Connection::Off
            },
            url,
            connects: 0,
            events_seen: 0,
            bad_events: 0,
            last_bad_event: None,
            recent: VecDeque::new(),
            latency: BTreeMap::new(),
            metrics: None,
            metrics_error: None,
            rates: Rates::default(),
            counter_history: VecDeque::new(),
            rps_history: VecDeque::new(),
            cost_seen_usd: 0.0,
            saved_seen_usd: 0.0,
            filter: String::new(),
            scroll: 0,
        }
    }

    /// Fold the live tasks' messages from `rx` into the state until `done` holds, or give up
    /// at `deadline` — for callers that need the state to reach a point (a scripted session,
    /// the tests against a real gateway) rather than the TUI's draw loop.
    pub async fn pump_until(
        &mut self,
        rx: &mut tokio::sync::mpsc::Receiver<super::DataMsg>,
        deadline: tokio::time::Instant,
        done: impl Fn(&LiveState) -> bool,
    ) -> Result<(), PumpError> {
        while !done(self) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Err(PumpError::Timeout),
                Ok(None) => return Err(PumpError::Closed),
                Ok(Some(super::DataMsg::Live(m))) => self.on_msg(m),
            }
        }
        Ok(())
    }

    /// Fold one message from the live tasks into the state.
    pub fn on_msg(&mut self, msg: LiveMsg) {
        match msg {
            LiveMsg::Connected => {
                self.connection = Connection::Connected;
                self.connects += 1;
            }
            LiveMsg::Disconnected { error, retry_in } => {
                self.connection = Connection::Disconnected { error, retry_in };
            }
            LiveMsg::Event(summary) => self.on_event(*summary),
            LiveMsg::BadEvent(text) => {
                self.bad_events += 1;
                self.last_bad_event = Some(text);
            }
            LiveMsg::Metrics(snapshot) => self.on_metrics(snapshot),
            LiveMsg::MetricsError(e) => self.metrics_error = Some(e),
        }
    }

    fn on_event(&mut self, summary: RequestSummary) {
        self.events_seen += 1;
        self.cost_seen_usd += summary.cost_usd;
        self.saved_seen_usd += summary.saved_usd;
        let backend = summary.backend.clone().unwrap_or_else(|| "none".into());
        let points = self.latency.entry(backend).or_default();
        points.push_back((summary.e2e_ms.max(0.0) * 1000.0).round() as u64);
        while points.len() > LIVE_SPARK_POINTS {
            points.pop_front();
        }
        self.recent.push_front(summary);
        self.recent.truncate(LIVE_RECENT);
    }

    fn on_metrics(&mut self, snapshot: MetricsSnapshot) {
        self.metrics_error = None;
        let sample = CounterSample {
            at: snapshot.at,
            by_backend: snapshot.requests_by_backend(),
            by_route: snapshot.requests_by_route(),
        };
        // A counter that went down means the gateway restarted from zero: count from a zero
        // baseline at the previous scrape.
        let restarted = self.counter_history.back().is_some_and(|last| {
            sample
                .by_backend
                .iter()
                .any(|(k, v)| last.by_backend.get(k).is_some_and(|old| v < old))
                || last
                    .by_backend
                    .keys()
                    .any(|k| !sample.by_backend.contains_key(k))
        });
        if restarted {
            let at = self.counter_history.back().map_or(sample.at, |l| l.at);
            self.counter_history.clear();
            self.counter_history.push_back(CounterSample {
                at,
                by_backend: BTreeMap::new(),
                by_route: BTreeMap::new(),
            });
        }
        self.counter_history.push_back(sample);
        // Keep the newest sample and the ones within the rate window before it.
        while self.counter_history.len() > 2
            && self
                .counter_history
                .get(1)
                .zip(self.counter_history.back())
                .is_some_and(|(second, newest)| {
                    newest.at.saturating_duration_since(second.at) >= RATE_WINDOW
                })
        {
            self.counter_history.pop_front();
        }
        if let (Some(oldest), Some(newest)) =
            (self.counter_history.front(), self.counter_history.back())
        {
            let dt = newest.at.saturating_duration_since(oldest.at).as_secs_f64();
            if dt > 0.0 {
                let rate = |now: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>| {
                    now.iter()
                        .map(|(k, v)| {
                            let old = before.get(k).copied().unwrap_or(0.0);
                            (k.clone(), (v - old).max(0.0) / dt)
                        })
                        .collect::<BTreeMap<_, _>>()
                };
                let by_backend = rate(&newest.by_backend, &oldest.by_backend);
                let by_route = rate(&newest.by_route, &oldest.by_route);
                self.rates = Rates {
                    total: by_backend.values().sum(),
                    by_backend,
                    by_route,
                };
                self.rps_history.push_back(self.rates.total);
                while self.rps_history.len() > LIVE_SPARK_POINTS {
                    self.rps_history.pop_front();
                }
            }
        }
        self.metrics = Some(snapshot);
    }

    /// Recent requests passing the text filter (backend, route, task, model, status, error).
    pub fn visible_recent(&self) -> Vec<&RequestSummary> {
        let needle = self.filter.to_lowercase();
        self.recent
            .iter()
            .filter(|s| {
                needle.is_empty()
                    || [
                        s.backend.as_deref(),
                        s.route.as_deref(),
                        s.task.as_deref(),
                        Some(s.model.as_str()),
                        s.error.as_deref(),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|f| f.to_lowercase().contains(&needle))
                    || s.status.to_string() == needle
            })
            .collect()
    }
}

/// Why [`LiveState::pump_until`] stopped before its condition held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PumpError {
    /// The deadline passed first.
    #[error("timed out")]
    Timeout,
    /// The live tasks stopped sending.
    #[error("the live tasks stopped")]
    Closed,
}
