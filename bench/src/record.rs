//! What a run records: one [`RequestRecord`] per request (one line of `requests.jsonl`), and
//! the [`TargetRun`] holding one target's records. Plain data, written by the runner and read
//! by the results, the analyses and the dashboards.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::score::ScoreResult;
use crate::target::{Routing, TargetInfo};

/// One measured request. Times are milliseconds; `intended_ms`/`sent_ms` are offsets from the
/// start of the target's measured phase. Latencies (`ttft_ms`, `e2e_ms`) are measured from the
/// **intended** send time, so a request that waited for a free worker in open-loop mode carries
/// that wait (coordinated-omission correction); `e2e_from_send_ms` is from the actual send.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestRecord {
    /// Name of the target that answered (`NAME` of `--target NAME=SPEC`).
    pub target: String,
    /// Name of the scenario the item belongs to.
    pub scenario: String,
    /// The scenario's task kind (sentiment, intent, …).
    pub task: String,
    /// The item's id within its scenario; joins one item's records across targets.
    pub item_id: String,
    /// The request as sent, one `role: content` block per message (few-shot turns included),
    /// unless the run was told not to record prompts (`record_prompts: false`,
    /// `--no-record-prompts`) because they hold private data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Position in the target's send schedule (0-based, warm-up excluded).
    pub seq: u64,
    /// When the schedule meant the request to leave, in ms from the start of the measured phase.
    pub intended_ms: f64,
    /// When it actually left, in ms from the start of the measured phase.
    pub sent_ms: f64,
    /// `sent_ms − intended_ms`: how late the request left.
    pub send_delay_ms: f64,
    /// Time to first token in ms, from the intended send time; `None` when no token arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// End-to-end latency in ms, from the intended send time to the end of the stream (or the
    /// error).
    pub e2e_ms: f64,
    /// End-to-end latency in ms from the actual send time (no queueing delay from the schedule).
    pub e2e_from_send_ms: f64,
    /// Summary of the gaps between consecutive content events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl: Option<GapSummary>,
    /// Time per output token after the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    /// Prompt tokens, as the backend's usage reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u64>,
    /// Generated tokens: the backend's usage, else the count of log-probabilities or token events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u64>,
    /// What the request cost: tokens × price for a per-token price; for a machine price
    /// (`hour:USD`), `engine_busy_secs` when the engine reported them, else the seconds from
    /// send to the last event (an upper bound: queue wait included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The local engine's busy seconds attributed to this request (its share of each batched
    /// decode step), when an in-process engine reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_busy_secs: Option<f64>,
    /// Where a gateway routed the request and what it charged (empty for a plain backend).
    #[serde(default, skip_serializing_if = "Routing::is_empty")]
    pub routing: Routing,
    /// Mean log-probability of the generated tokens, when the backend reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f64>,
    /// `exp(mean_logprob)`: the geometric-mean token probability, in (0, 1] — the cascade's
    /// confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The answer's confidence signals by name (higher = more confident), when the backend
    /// reports them: `p_chosen` and `margin` for `choices`, `mean_logprob` and `min_logprob`
    /// over the freely chosen tokens otherwise (see `backends::Signals`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signals: BTreeMap<String, f64>,
    /// Why generation stopped (`stop`, `length`, …), as the backend reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The generated text (what the scorers saw; partial when the request failed midway).
    pub output: String,
    /// The item's rendered expected answer, when the scenario has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// One result per scorer; `judge` scores are added after the load phase.
    pub scores: Vec<ScoreResult>,
    /// Mean of the scores (0 when the request failed).
    pub quality: f64,
    /// Every scorer passed.
    pub passed: bool,
    /// Every latency SLO of the scenario was met.
    pub slo_met: bool,
    /// The passages a RAG scenario's prompt was given and where the gold passage ranked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<crate::rag::RecordRetrieval>,
    /// Why the request failed; `None` for a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordError>,
    /// Every inter-token gap in nanoseconds (kept in memory for the ITL histogram, not written).
    #[serde(skip)]
    pub gaps_ns: Vec<u64>,
}

/// Gaps between consecutive content events of one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GapSummary {
    /// Number of gaps (content events minus one).
    pub count: u64,
    /// Mean gap in ms.
    pub mean_ms: f64,
    /// Median gap in ms.
    pub p50_ms: f64,
    /// 90th-percentile gap in ms (nearest rank).
    pub p90_ms: f64,
    /// Longest gap in ms.
    pub max_ms: f64,
}

impl GapSummary {
    /// Summarize gaps given in nanoseconds; `None` when there are none (fewer than two content
    /// events).
    pub fn from_ns(gaps: &[u64]) -> Option<GapSummary> {
        if gaps.is_empty() {
            return None;
        }
        let mut sorted = gaps.to_vec();
        sorted.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1] as f64 / 1e6
        };
        Some(GapSummary {
            count: sorted.len() as u64,
            mean_ms: sorted.iter().sum::<u64>() as f64 / sorted.len() as f64 / 1e6,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            max_ms: at(1.0),
        })
    }
}

/// A failed request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordError {
    /// `timeout`, `upstream_error`, `overloaded`, … (see `BackendError::code`).
    pub code: String,
    /// The error's text.
    pub message: String,
}

/// Everything one target's run produced.
#[derive(Debug)]
pub struct TargetRun {
    /// The target's name, kind, spec, model files and price, as recorded in the run metadata.
    pub target: TargetInfo,
    /// One record per measured request (warm-up excluded), in completion order.
    pub records: Vec<RequestRecord>,
    /// Seconds from the start of the measured phase to the end of its last request.
    pub wall_s: f64,
    /// Warm-up requests sent before the measured phase (not recorded).
    pub warmup: usize,
}
