//! Where a request's time goes inside the gateway, stage by stage: to know what triage adds
//! to a call (issue 18), not to guess.
//!
//! A [`Stages`] clock rides along with each request (in its tracker) and is marked as the
//! request passes each point; at the end its durations go to the histogram
//! `triage_stage_seconds{stage}` on `/metrics` and, for whole answers, to a standard
//! `Server-Timing` response header (milliseconds), which `curl -i`, browsers' developer tools
//! and the overhead benchmark's client read without any triage-specific code.
//!
//! The stages, in order (each from the end of the one before):
//! - `body_read`: the request's headers arrived → its body was read (the transport's
//!   [`Arrival`](crate::gateway) to the handler's start);
//! - `parse`: the body parsed into a request;
//! - `decide`: validated, classified and routed;
//! - `admit`: budget reservation and rate limits;
//! - `upstream_send`: the backend's request built and sent (serialization, the connection
//!   from the pool) until the call started;
//! - `upstream_first_byte`: the call started → the upstream's response headers (its own time
//!   plus the network);
//! - `upstream_body`: the rest of the upstream's body;
//! - `respond`: the answer turned into the client's body (parse, rewrite, serialize);
//! - `record`: the summary — cost, budget settlement, ledger row queued, metrics, event.
//!
//! What follows `record` is hyper writing the response, outside the handler. A stage a request
//! did not pass (a refusal has no upstream) is left out; a stream's answer is timed up to its
//! first content token (counted as `upstream_first_byte`: a stream's `FirstByte` event is not
//! kept by the tracker), the rest is the stream itself.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// One stage of a request inside the gateway (see the module documentation).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Stage {
    /// Headers arrived → body read.
    body_read,
    /// Body → parsed request.
    parse,
    /// Validation, classification and the routing decision.
    decide,
    /// Budget reservation and rate limits.
    admit,
    /// The backend's request built and sent.
    upstream_send,
    /// The call started → the upstream's response headers.
    upstream_first_byte,
    /// The rest of the upstream's body.
    upstream_body,
    /// The answer turned into the client's body.
    respond,
    /// The request's summary: cost, settlement, ledger row, metrics.
    record,
}

impl Stage {
    /// Every stage, in the order a request passes them.
    pub const ALL: [Stage; 9] = [
        Stage::body_read,
        Stage::parse,
        Stage::decide,
        Stage::admit,
        Stage::upstream_send,
        Stage::upstream_first_byte,
        Stage::upstream_body,
        Stage::respond,
        Stage::record,
    ];

    /// The stage's name (the metric label and the `Server-Timing` metric name).
    pub fn name(self) -> &'static str {
        match self {
            Stage::body_read => "body_read",
            Stage::parse => "parse",
            Stage::decide => "decide",
            Stage::admit => "admit",
            Stage::upstream_send => "upstream_send",
            Stage::upstream_first_byte => "upstream_first_byte",
            Stage::upstream_body => "upstream_body",
            Stage::respond => "respond",
            Stage::record => "record",
        }
    }
}

/// One request's clock: how long each stage took so far.
#[derive(Clone, Debug)]
pub struct Stages {
    took: [Option<Duration>; Stage::ALL.len()],
    last: Instant,
}

impl Stages {
    /// A clock whose first stage starts at `at` (the headers' arrival).
    pub fn starting(at: Instant) -> Self {
        Self {
            took: [None; Stage::ALL.len()],
            last: at,
        }
    }

    /// `stage` ended now (it began when the previous stage ended).
    pub fn mark(&mut self, stage: Stage) {
        self.mark_at(stage, Instant::now());
    }

    /// `stage` ended at `at` (ignored if `at` is before the previous mark).
    pub fn mark_at(&mut self, stage: Stage, at: Instant) {
        if at < self.last {
            return;
        }
        let slot = &mut self.took[stage as usize];
        *slot = Some(slot.unwrap_or_default() + (at - self.last));
        self.last = at;
    }

    /// A remote call's timings: sent at `started`, headers at `first_byte`, body complete at
    /// `finished` (whichever are known).
    pub fn upstream(
        &mut self,
        started: Option<Instant>,
        first_byte: Option<Instant>,
        finished: Option<Instant>,
    ) {
        if let Some(at) = started {
            self.mark_at(Stage::upstream_send, at);
        }
        if let Some(at) = first_byte {
            self.mark_at(Stage::upstream_first_byte, at);
        }
        if let Some(at) = finished {
            self.mark_at(Stage::upstream_body, at);
        }
    }

    /// How long `stage` took, if the request passed it.
    pub fn took(&self, stage: Stage) -> Option<Duration> {
        self.took[stage as usize]
    }

    /// The `Server-Timing` header value: `parse;dur=0.012, decide;dur=0.004, …` (milliseconds,
    /// the stages passed so far).
    pub fn server_timing(&self) -> String {
        let mut out = String::with_capacity(160);
        for stage in Stage::ALL {
            if let Some(d) = self.took(stage) {
                if !out.is_empty() {
                    out.push_str(", ");
                }
                // Integer arithmetic: exact float formatting costs more than the stage it times.
                let micros = d.as_micros();
                let _ = write!(
                    out,
                    "{};dur={}.{:03}",
                    stage.name(),
                    micros / 1000,
                    micros % 1000
                );
            }
        }
        out
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: Stage,
}

/// `triage_stage_seconds{stage}`: one histogram per stage, looked up once at start.
pub(crate) struct StageHistograms {
    by_stage: Vec<Histogram>,
}

impl StageHistograms {
    /// Register the family in `registry` (1 µs to ~8 s, doubling).
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let family =
            Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1e-6, 2.0, 24))
            });
        registry.register(
            "stage_seconds",
            "Time each request spent in each stage inside the gateway (body_read, parse, decide, admit, upstream_send, upstream_first_byte, upstream_body, respond, record)",
            family.clone(),
        );
        let by_stage = Stage::ALL
            .iter()
            .map(|&stage| family.get_or_create(&StageLabels { stage }).clone())
            .collect();
        Self { by_stage }
    }

    /// Add one request's stages.
    pub(crate) fn observe(&self, stages: &Stages) {
        for (stage, histogram) in Stage::ALL.iter().zip(&self.by_stage) {
            if let Some(d) = stages.took(*stage) {
                histogram.observe(d.as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_split_the_time_between_stages_in_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Stages::starting(t0);
        s.mark_at(Stage::body_read, t0 + ms(1));
        s.mark_at(Stage::parse, t0 + ms(3));
        s.mark_at(Stage::decide, t0 + ms(2)); // before the last mark: ignored
        s.upstream(Some(t0 + ms(4)), Some(t0 + ms(10)), Some(t0 + ms(11)));
        assert_eq!(s.took(Stage::body_read), Some(ms(1)));
        assert_eq!(s.took(Stage::parse), Some(ms(2)));
        assert_eq!(s.took(Stage::decide), None);
        assert_eq!(s.took(Stage::upstream_send), Some(ms(1)));
        assert_eq!(s.took(Stage::upstream_first_byte), Some(ms(6)));
        assert_eq!(s.took(Stage::upstream_body), Some(ms(1)));
        assert_eq!(
            s.server_timing(),
            "body_read;dur=1.000, parse;dur=2.000, upstream_send;dur=1.000, \
             upstream_first_byte;dur=6.000, upstream_body;dur=1.000"
        );
    }

    #[test]
    fn every_stage_is_a_labelled_histogram_on_metrics() {
        let mut registry = Registry::with_prefix("triage");
        let h = StageHistograms::register(&mut registry);
        let t0 = Instant::now();
        let mut s = Stages::starting(t0);
        s.mark_at(Stage::parse, t0 + Duration::from_micros(20));
        h.observe(&s);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("triage_stage_seconds_count{stage=\"parse\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("triage_stage_seconds_count{stage=\"record\"} 0"),
            "{text}"
        );
    }
}
