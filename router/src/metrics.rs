//! Prometheus metrics of the gateway, encoded by the `prometheus-client` crate (OpenMetrics text).
//!
//! Counted per finished request (from its [`RequestSummary`]): requests by backend, route and
//! status; histograms of time to first token, inter-token gaps, end-to-end latency and tokens;
//! cost and saved-cost counters; escalations and fallbacks. The local engine's queue depth and
//! busy slots are gauges refreshed at each scrape from the engine's atomics, and so are its
//! decode steps, decode seconds and host seconds (counters: each scrape adds what the engine
//! counted since the last one). The transport counts what it refuses or cuts
//! (`triage_transport_rejections_total{reason}`: `connections`, `in_flight`, `header_too_large`,
//! `header_timeout`, `write_timeout`), open connections, and handler panics
//! (`triage_handler_panics_total`). Configuration reloads are counted by outcome
//! (`triage_config_reloads_total{result}`: `ok`, `error`). With a shared store (`store: redis://…`),
//! `triage_store_up{store}` and `triage_store_errors_total{store}` are read from its health at
//! each scrape. With a Postgres ledger, its writer's pending rows, whether
//! it is connected, and its written rows, failed batch writes and dropped rows (counters brought
//! up to the writer's totals at each scrape).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use backends::EngineTime;

use crate::events::RequestSummary;
use crate::stages::{StageHistograms, Stages};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    backend: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    backend: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    backend: String,
    kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 0.5 ms .. ~65 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

fn gap_histogram() -> Histogram {
    // 0.1 ms .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

fn token_histogram() -> Histogram {
    // 1 .. 32768 tokens
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// All gateway metrics and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    ttft: HistogramFamily<BackendLabels>,
    inter_token: HistogramFamily<BackendLabels>,
    e2e: HistogramFamily<RouteLabels>,
    tokens: HistogramFamily<TokenLabels>,
    cost: Family<BackendLabels, Counter<f64, AtomicU64>>,
    saved: Family<BackendLabels, Counter<f64, AtomicU64>>,
    escalations: Counter,
    fallbacks: Counter,
    queue_depth: Family<BackendLabels, Gauge>,
    busy_slots: Family<BackendLabels, Gauge>,
    slots: Family<BackendLabels, Gauge>,
    decode_steps: Family<BackendLabels, Counter>,
    decode_seconds: Family<BackendLabels, Counter<f64, AtomicU64>>,
    host_seconds: Family<BackendLabels, Counter<f64, AtomicU64>>,
    in_flight: Gauge,
    auth_rejections: Family<EndpointLabels, Counter>,
    backend_up: Family<BackendLabels, Gauge>,
    handler_panics: Counter,
    transport_rejections: Family<ReasonLabels, Counter>,
    connections: Gauge,
    config_reloads: Family<ResultLabels, Counter>,
    store_up: Family<StoreLabels, Gauge>,
    store_errors: Family<StoreLabels, Counter>,
    ledger_pending: Gauge,
    ledger_connected: Gauge,
    ledger_written: Counter,
    ledger_failures: Counter,
    ledger_dropped: Counter,
    stages: StageHistograms,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every triage metric registered at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("triage");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Chat completion requests by answering backend, route and HTTP status",
            requests.clone(),
        );
        let ttft = HistogramFamily::<BackendLabels>::new_with_constructor(seconds_histogram);
        registry.register(
            "time_to_first_token_seconds",
            "Time from arrival at the gateway to the first content token",
            ttft.clone(),
        );
        let inter_token = HistogramFamily::<BackendLabels>::new_with_constructor(gap_histogram);
        registry.register(
            "inter_token_seconds",
            "Gaps between consecutive content tokens as they were born",
            inter_token.clone(),
        );
        let e2e = HistogramFamily::<RouteLabels>::new_with_constructor(seconds_histogram);
        registry.register(
            "request_duration_seconds",
            "End-to-end request time at the gateway",
            e2e.clone(),
        );
        let tokens = HistogramFamily::<TokenLabels>::new_with_constructor(token_histogram);
        registry.register(
            "tokens",
            "Prompt and completion tokens per request",
            tokens.clone(),
        );
        let cost = Family::<BackendLabels, Counter<f64, AtomicU64>>::default();
        registry.register("cost_usd", "Cost of answered requests in USD", cost.clone());
        let saved = Family::<BackendLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "saved_usd",
            "What the reference LLM would have cost minus what the request cost, in USD",
            saved.clone(),
        );
        let escalations = Counter::default();
        registry.register(
            "cascade_escalations",
            "Cascades whose first answer was not accepted",
            escalations.clone(),
        );
        let fallbacks = Counter::default();
        registry.register(
            "fallbacks",
            "Requests answered by a fallback backend after an upstream error",
            fallbacks.clone(),
        );
        let queue_depth = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "local_queue_depth",
            "Requests waiting for a slot of the local engine",
            queue_depth.clone(),
        );
        let busy_slots = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "local_busy_slots",
            "Slots of the local engine generating right now",
            busy_slots.clone(),
        );
        let slots = Family::<BackendLabels, Gauge>::default();
        registry.register("local_slots", "Slots of the local engine", slots.clone());
        let decode_steps = Family::<BackendLabels, Counter>::default();
        registry.register(
            "local_decode_steps",
            "llama_decode calls of the local engine",
            decode_steps.clone(),
        );
        let decode_seconds = Family::<BackendLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "local_decode_seconds",
            "Seconds the local engine spent inside llama_decode",
            decode_seconds.clone(),
        );
        let host_seconds = Family::<BackendLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "local_host_seconds",
            "Seconds the local engine thread spent between decodes while sequences ran (sampling, detokenizing, streaming)",
            host_seconds.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Chat requests being answered right now",
            in_flight.clone(),
        );
        let auth_rejections = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "auth_rejections",
            "Requests refused with 401 (missing, malformed or unknown API key), by endpoint; they write no ledger row",
            auth_rejections.clone(),
        );
        let handler_panics = Counter::default();
        registry.register(
            "handler_panics",
            "Request handlers that panicked (each answered 500)",
            handler_panics.clone(),
        );
        let transport_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "transport_rejections",
            "Connections and requests the transport refused or cut, by reason",
            transport_rejections.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections being served right now",
            connections.clone(),
        );
        let backend_up = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "backend_up",
            "1 when the backend can take requests, 0 while it loads or when it is down (a missing key, a failed load)",
            backend_up.clone(),
        );
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP or a changed file), by result: ok, error (old config kept)",
            config_reloads.clone(),
        );
        let store_up = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "store_up",
            "1 while the shared budget store answers, 0 while admission follows store_failure",
            store_up.clone(),
        );
        let store_errors = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Calls to the shared budget store that failed (unreachable, timed out, error reply)",
            store_errors.clone(),
        );
        let ledger_pending = Gauge::default();
        registry.register(
            "ledger_pending_rows",
            "Ledger rows buffered for the database (Postgres) and not yet committed",
            ledger_pending.clone(),
        );
        let ledger_connected = Gauge::default();
        registry.register(
            "ledger_connected",
            "1 when the ledger writer's last attempt reached the database (Postgres)",
            ledger_connected.clone(),
        );
        let ledger_written = Counter::default();
        registry.register(
            "ledger_rows_written",
            "Ledger rows committed to the database (Postgres)",
            ledger_written.clone(),
        );
        let ledger_failures = Counter::default();
        registry.register(
            "ledger_write_failures",
            "Ledger batch writes that failed and were retried (Postgres)",
            ledger_failures.clone(),
        );
        let ledger_dropped = Counter::default();
        registry.register(
            "ledger_rows_dropped",
            "Ledger rows dropped because the buffer was full while the database was unreachable",
            ledger_dropped.clone(),
        );
        let stages = StageHistograms::register(&mut registry);
        Self {
            stages,
            registry,
            config_reloads,
            store_up,
            store_errors,
            ledger_pending,
            ledger_connected,
            ledger_written,
            ledger_failures,
            ledger_dropped,
            auth_rejections,
            backend_up,
            requests,
            ttft,
            inter_token,
            e2e,
            tokens,
            cost,
            saved,
            escalations,
            fallbacks,
            queue_depth,
            busy_slots,
            slots,
            decode_steps,
            decode_seconds,
            host_seconds,
            in_flight,
            handler_panics,
            transport_rejections,
            connections,
        }
    }

    /// Whether `backend` can take requests now (set at each scrape).
    pub fn set_backend_up(&self, backend: &str, up: bool) {
        self.backend_up
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
            })
            .set(i64::from(up));
    }

    /// Count a request refused for its key (401) at `endpoint` (`chat`, `models`, `events`,
    /// `metrics`).
    pub fn auth_rejected(&self, endpoint: &'static str) {
        self.auth_rejections
            .get_or_create(&EndpointLabels { endpoint })
            .inc();
    }

    /// One request's time per stage inside the gateway (`triage_stage_seconds`).
    pub fn observe_stages(&self, stages: &Stages) {
        self.stages.observe(stages);
    }

    /// Count one finished request. `token_gaps` are the seconds between consecutive tokens.
    pub fn observe(&self, s: &RequestSummary, token_gaps: &[f64]) {
        let backend = s.backend.clone().unwrap_or_else(|| "none".into());
        let route = s.route.clone().unwrap_or_else(|| "none".into());
        self.requests
            .get_or_create(&RequestLabels {
                backend: backend.clone(),
                route: route.clone(),
                status: s.status.to_string(),
            })
            .inc();
        let bl = BackendLabels {
            backend: backend.clone(),
        };
        if let Some(ttft) = s.ttft_ms {
            self.ttft.get_or_create(&bl).observe(ttft / 1e3);
        }
        if !token_gaps.is_empty() {
            let h = self.inter_token.get_or_create(&bl);
            for gap in token_gaps {
                h.observe(*gap);
            }
        }
        self.e2e
            .get_or_create(&RouteLabels {
                backend: backend.clone(),
                route,
            })
            .observe(s.e2e_ms / 1e3);
        if s.backend.is_some() && s.is_success() {
            self.tokens
                .get_or_create(&TokenLabels {
                    backend: backend.clone(),
                    kind: "prompt",
                })
                .observe(f64::from(s.prompt_tokens));
            self.tokens
                .get_or_create(&TokenLabels {
                    backend: backend.clone(),
                    kind: "completion",
                })
                .observe(f64::from(s.completion_tokens));
        }
        if s.cost_usd > 0.0 {
            self.cost.get_or_create(&bl).inc_by(s.cost_usd);
        }
        if s.saved_usd > 0.0 {
            self.saved.get_or_create(&bl).inc_by(s.saved_usd);
        }
        if s.escalated {
            self.escalations.inc();
        }
        if s.tried.len() > 1 && !s.escalated && s.is_success() {
            self.fallbacks.inc();
        }
    }

    /// Refresh the local engine gauges of one backend.
    pub fn set_local_load(
        &self,
        backend: &str,
        queue_depth: usize,
        busy_slots: usize,
        slots: usize,
    ) {
        let l = BackendLabels {
            backend: backend.to_string(),
        };
        self.queue_depth
            .get_or_create(&l)
            .set(clamp_i64(queue_depth));
        self.busy_slots.get_or_create(&l).set(clamp_i64(busy_slots));
        self.slots.get_or_create(&l).set(clamp_i64(slots));
    }

    /// Bring the engine-time counters of one backend up to the engine's own totals.
    pub fn set_local_engine_time(&self, backend: &str, time: &EngineTime) {
        let l = BackendLabels {
            backend: backend.to_string(),
        };
        let steps = self.decode_steps.get_or_create(&l);
        steps.inc_by(time.decode_steps.saturating_sub(steps.get()));
        for (family, total) in [
            (&self.decode_seconds, time.decode_secs),
            (&self.host_seconds, time.host_secs),
        ] {
            let counter = family.get_or_create(&l);
            let behind = total - counter.get();
            if behind > 0.0 {
                counter.inc_by(behind);
            }
        }
    }

    /// The shared store's state now (`store`: its kind, `redis`) and its failed calls so far.
    pub fn set_store(&self, store: &'static str, up: bool, errors: u64) {
        let l = StoreLabels { store };
        self.store_up.get_or_create(&l).set(i64::from(up));
        let counter = self.store_errors.get_or_create(&l);
        counter.inc_by(errors.saturating_sub(counter.get()));
    }

    /// Refresh the ledger writer's gauges and bring its counters up to the writer's totals.
    pub fn set_ledger_writer(&self, stats: &crate::store::WriterStats) {
        self.ledger_pending
            .set(i64::try_from(stats.pending_rows).unwrap_or(i64::MAX));
        self.ledger_connected.set(i64::from(stats.connected));
        for (counter, total) in [
            (&self.ledger_written, stats.written_rows),
            (&self.ledger_failures, stats.write_failures),
            (&self.ledger_dropped, stats.dropped_rows),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// One more (or one fewer) request being answered.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// A request handler panicked.
    pub fn handler_panic(&self) {
        self.handler_panics.inc();
    }

    /// Count a configuration reload: `ok` (applied) or `error` (the old one kept).
    pub fn config_reload(&self, result: &'static str) {
        self.config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The transport refused or cut a connection or request, for `reason`.
    pub fn transport_rejected(&self, reason: &'static str) {
        self.transport_rejections
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// One more (or one fewer) client connection open.
    pub fn connections(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn clamp_i64(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_shows_in_counters_and_histograms() {
        let m = Metrics::new();
        m.observe(
            &RequestSummary {
                backend: Some("slm".into()),
                route: Some("small".into()),
                status: 200,
                ttft_ms: Some(12.0),
                e2e_ms: 40.0,
                prompt_tokens: 10,
                completion_tokens: 5,
                cost_usd: 0.001,
                saved_usd: 0.002,
                ..Default::default()
            },
            &[0.01, 0.02],
        );
        m.set_local_load("slm", 3, 2, 4);
        let text = m.encode().unwrap();
        assert!(
            text.contains(r#"triage_requests_total{backend="slm",route="small",status="200"} 1"#)
        );
        assert!(text.contains(r#"triage_inter_token_seconds_count{backend="slm"} 2"#));
        assert!(text.contains(r#"triage_local_queue_depth{backend="slm"} 3"#));
        assert!(text.contains("triage_saved_usd_total"));
    }

    #[test]
    fn engine_time_counters_follow_the_engine_totals() {
        let m = Metrics::new();
        m.set_local_engine_time(
            "slm",
            &EngineTime {
                decode_steps: 10,
                decode_secs: 0.5,
                host_secs: 0.25,
            },
        );
        m.set_local_engine_time(
            "slm",
            &EngineTime {
                decode_steps: 30,
                decode_secs: 1.5,
                host_secs: 0.75,
            },
        );
        // A stale reading never moves a counter back.
        m.set_local_engine_time(
            "slm",
            &EngineTime {
                decode_steps: 20,
                decode_secs: 1.0,
                host_secs: 0.5,
            },
        );
        let text = m.encode().unwrap();
        assert!(
            text.contains(r#"triage_local_decode_steps_total{backend="slm"} 30"#),
            "{text}"
        );
        assert!(
            text.contains(r#"triage_local_decode_seconds_total{backend="slm"} 1.5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"triage_local_host_seconds_total{backend="slm"} 0.75"#),
            "{text}"
        );
    }
}
