//! Results: the run directory and `summary.json`.
//!
//! A run directory holds
//! - `requests.jsonl`: one [`RequestRecord`] per line, every target;
//! - `summary.json`: a [`Summary`] — per target and per task (and per target over all tasks):
//!   p50/p90/p99/p99.9 and mean of TTFT, ITL, TPOT and E2E from HDR histograms, throughput,
//!   goodput (share of requests meeting the latency SLOs **and** passing), pass rate (Wilson
//!   95% CI), quality mean (t 95% CI), total cost and cost per correct answer, routing counts;
//! - `histograms.json`: the same histograms in hdrhistogram's V2 serialized form, base64;
//! - `metadata.json`: git revision, CPU model and cores, model files with sha256, the config.
//!
//! The JSON schema of `summary.json` is generated from [`Summary`] and checked in at
//! `bench/schema/summary.schema.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::record::{RequestRecord, TargetRun};
use crate::stats::{mean_t, wilson, Estimate, LatencyHistogram, Percentiles};
use crate::target::TargetInfo;

/// Version of the `summary.json` layout.
pub const SUMMARY_VERSION: u32 = 1;

/// The group name used for "all tasks of a target".
pub const ALL_TASKS: &str = "*";

/// The contents of a run's `summary.json`: its metadata and one group of aggregates per target and
/// task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Layout version ([`SUMMARY_VERSION`]), so readers can refuse a layout they don't know.
    pub version: u32,
    /// Where and how the run happened (also written alone as `metadata.json`).
    pub run: RunMetadata,
    /// One group per (target, task), plus one per target with task `*` (all tasks).
    pub groups: Vec<GroupSummary>,
}

/// Aggregates over one target's requests for one task (or all of its tasks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupSummary {
    /// Target name: the column this group belongs to in comparisons.
    pub target: String,
    /// The task, or `*` for all tasks of the target.
    pub task: String,
    /// Recorded requests (warm-up excluded).
    pub requests: u64,
    /// Requests that failed (timeout, backend error, …); they count as not passed.
    pub errors: u64,
    /// Latency percentiles of the group's requests.
    pub latency: LatencySummary,
    /// Request, token and goodput rates over the target's measured phase.
    pub throughput: Throughput,
    /// Share of requests that passed every scorer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_rate: Option<Estimate>,
    /// Mean quality score in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Estimate>,
    /// Share of requests that met every latency SLO and passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<Estimate>,
    /// Share of requests that met every latency SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<Estimate>,
    /// Total and per-answer cost in USD, and token counts.
    pub cost: CostSummary,
    /// Mean score per scorer kind.
    pub scorers: BTreeMap<String, f64>,
    /// What a gateway target reported about its routing; absent for plain backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingSummary>,
    /// Retrieval recall@k, exact match, abstentions and faithfulness of the group's RAG
    /// requests; absent when none retrieved passages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rag: Option<crate::rag::summary::RagSummary>,
}

/// Latency percentiles of a group, in ms (each absent when nothing was measured).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    /// Time to first token, from the intended send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft: Option<Percentiles>,
    /// Inter-token latency: every gap between consecutive content events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl: Option<Percentiles>,
    /// Time per output token after the first, one value per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot: Option<Percentiles>,
    /// End-to-end latency, from the intended send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e: Option<Percentiles>,
}

/// Rates of a group over the target's measured phase (the whole phase, also for per-task groups).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Throughput {
    /// Seconds of the target's measured phase.
    pub wall_s: f64,
    /// Recorded requests per second.
    pub requests_per_s: f64,
    /// Generated tokens per second.
    pub output_tokens_per_s: f64,
    /// Requests per second that met the SLOs and passed.
    pub goodput_per_s: f64,
}

/// What a group's requests cost, in USD, and the tokens they used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostSummary {
    /// `None` when no request of the group had a cost (no price, no gateway header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_usd: Option<f64>,
    /// Total cost divided by the number of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request_usd: Option<f64>,
    /// Total cost divided by the number of passing requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_correct_usd: Option<f64>,
    /// Prompt tokens over the group's requests (as the backends reported usage).
    pub tokens_in: u64,
    /// Generated tokens over the group's requests.
    pub tokens_out: u64,
}

/// How a gateway target routed a group's requests, from the routing it reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoutingSummary {
    /// Requests per backend, as the gateway reported.
    pub backends: BTreeMap<String, u64>,
    /// Requests per route name.
    pub routes: BTreeMap<String, u64>,
    /// Share of requests reporting an escalation flag that were escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_share: Option<f64>,
}

/// Where and how a run happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunMetadata {
    /// Run id: the start time (compact RFC 3339) then the suite name, e.g.
    /// `20250101T120000Z-quick`.
    pub id: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// When the run directory was written (RFC 3339, UTC).
    pub finished_at: String,
    /// The suite file, as given on the command line.
    pub suite: String,
    /// `git rev-parse HEAD` of the suite's directory, with `-dirty` when tracked files changed;
    /// absent outside a git checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_revision: Option<String>,
    /// The machine the run was on.
    pub host: HostInfo,
    /// Every target's name, kind, spec and price.
    pub targets: Vec<TargetInfo>,
    /// Local model files used by the targets, with size and SHA-256.
    pub model_files: Vec<ModelFile>,
    /// The suite and load configuration as run.
    pub config: Value,
    /// Items shown as few-shot examples instead of being measured (`few_shot_from_items`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub few_shot: Vec<crate::fewshot::FewShotDraw>,
    /// The half of each task's items this run measured (`--half`); all items when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half: Option<crate::half::Half>,
    /// Version of the `bench` crate that produced the run.
    pub harness_version: String,
}

/// The machine a run was on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostInfo {
    /// CPU model name from `/proc/cpuinfo` (`unknown` elsewhere).
    pub cpu_model: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Operating system (`linux`, `macos`, …).
    pub os: String,
    /// CPU architecture (`x86_64`, `aarch64`, …).
    pub arch: String,
}

/// A local model file a run used, identified by content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelFile {
    /// The file's path as the target spec gave it.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the contents, hex.
    pub sha256: String,
}

/// Histograms of one group.
#[derive(Default)]
struct GroupHistograms {
    ttft: LatencyHistogram,
    itl: LatencyHistogram,
    tpot: LatencyHistogram,
    e2e: LatencyHistogram,
}

/// Summarise the runs: one group per (target, task) and one per target over all tasks.
/// Returns the summary and the serialized histograms (`target/task/metric` → base64).
pub fn summarize(runs: &[TargetRun], run: RunMetadata) -> (Summary, BTreeMap<String, String>) {
    let mut groups = Vec::new();
    let mut hist_out = BTreeMap::new();
    for target_run in runs {
        let mut tasks: Vec<String> = target_run.records.iter().map(|r| r.task.clone()).collect();
        tasks.sort();
        tasks.dedup();
        let mut keys = vec![ALL_TASKS.to_string()];
        keys.extend(tasks);
        for task in keys {
            let records: Vec<&RequestRecord> = target_run
                .records
                .iter()
                .filter(|r| task == ALL_TASKS || r.task == task)
                .collect();
            let (group, hists) =
                summarize_group(&target_run.target.name, &task, &records, target_run.wall_s);
            for (metric, h) in [
                ("ttft", &hists.ttft),
                ("itl", &hists.itl),
                ("tpot", &hists.tpot),
                ("e2e", &hists.e2e),
            ] {
                if !h.is_empty() {
                    hist_out.insert(
                        format!("{}/{}/{}", group.target, group.task, metric),
                        h.to_base64(),
                    );
                }
            }
            groups.push(group);
        }
    }
    (
        Summary {
            version: SUMMARY_VERSION,
            run,
            groups,
        },
        hist_out,
    )
}

fn summarize_group(
    target: &str,
    task: &str,
    records: &[&RequestRecord],
    wall_s: f64,
) -> (GroupSummary, GroupHistograms) {
    let mut h = GroupHistograms::default();
    let n = records.len() as u64;
    let mut errors = 0u64;
    let mut passed = 0u64;
    let mut good = 0u64;
    let mut slo = 0u64;
    let mut qualities = Vec::with_capacity(records.len());
    let mut cost_total = 0.0;
    let mut any_cost = false;
    let mut tokens_in = 0u64;
    let mut tokens_out = 0u64;
    let mut scorer_sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    let mut routing = RoutingSummary::default();
    let mut escalation_known = 0u64;
    let mut escalated = 0u64;
    for r in records {
        if r.error.is_some() {
            errors += 1;
        }
        passed += r.passed as u64;
        slo += r.slo_met as u64;
        good += (r.passed && r.slo_met) as u64;
        qualities.push(r.quality);
        if let Some(c) = r.cost_usd {
            cost_total += c;
            any_cost = true;
        }
        tokens_in += r.tokens_in.unwrap_or(0);
        tokens_out += r.tokens_out.unwrap_or(0);
        if let Some(t) = r.ttft_ms {
            h.ttft.record_ms(t);
        }
        if let Some(t) = r.tpot_ms {
            h.tpot.record_ms(t);
        }
        for g in &r.gaps_ns {
            h.itl.record_ns(*g);
        }
        h.e2e.record_ms(r.e2e_ms);
        for s in &r.scores {
            let e = scorer_sums.entry(s.scorer.clone()).or_default();
            e.0 += s.score;
            e.1 += 1;
        }
        if let Some(b) = &r.routing.backend {
            *routing.backends.entry(b.clone()).or_default() += 1;
        }
        if let Some(route) = &r.routing.route {
            *routing.routes.entry(route.clone()).or_default() += 1;
        }
        if let Some(e) = r.routing.escalated {
            escalation_known += 1;
            escalated += e as u64;
        }
    }
    if escalation_known > 0 {
        routing.escalated_share = Some(escalated as f64 / escalation_known as f64);
    }
    let per_s = |count: f64| if wall_s > 0.0 { count / wall_s } else { 0.0 };
    let total_usd = any_cost.then_some(cost_total);
    let group = GroupSummary {
        target: target.to_string(),
        task: task.to_string(),
        requests: n,
        errors,
        latency: LatencySummary {
            ttft: h.ttft.summary(),
            itl: h.itl.summary(),
            tpot: h.tpot.summary(),
            e2e: h.e2e.summary(),
        },
        throughput: Throughput {
            wall_s,
            requests_per_s: per_s(n as f64),
            output_tokens_per_s: per_s(tokens_out as f64),
            goodput_per_s: per_s(good as f64),
        },
        pass_rate: wilson(passed, n),
        quality: mean_t(&qualities),
        goodput: wilson(good, n),
        slo_attainment: wilson(slo, n),
        cost: CostSummary {
            total_usd,
            per_request_usd: total_usd.filter(|_| n > 0).map(|t| t / n as f64),
            per_correct_usd: total_usd.filter(|_| passed > 0).map(|t| t / passed as f64),
            tokens_in,
            tokens_out,
        },
        scorers: scorer_sums
            .into_iter()
            .map(|(k, (sum, count))| (k, sum / count.max(1) as f64))
            .collect(),
        routing: (!routing.backends.is_empty()
            || !routing.routes.is_empty()
            || routing.escalated_share.is_some())
        .then_some(routing),
        rag: crate::rag::summary::summarize(records),
    };
    (group, h)
}

/// Write a run directory. Returns the paths written.
pub fn write_run_dir(
    dir: &Path,
    runs: &[TargetRun],
    summary: &Summary,
    histograms: &BTreeMap<String, String>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
    let mut written = Vec::new();
    let requests = dir.join("requests.jsonl");
    {
        let file = std::fs::File::create(&requests).map_err(|e| BenchError::io(&requests, e))?;
        let mut w = std::io::BufWriter::new(file);
        for run in runs {
            for r in &run.records {
                let line = serde_json::to_string(r)
                    .map_err(|e| BenchError::invalid(&requests, e.to_string()))?;
                writeln!(w, "{line}").map_err(|e| BenchError::io(&requests, e))?;
            }
        }
        w.flush().map_err(|e| BenchError::io(&requests, e))?;
    }
    written.push(requests);
    for (name, value) in [
        ("summary.json", serde_json::to_value(summary)),
        ("histograms.json", serde_json::to_value(histograms)),
        ("metadata.json", serde_json::to_value(&summary.run)),
    ] {
        let path = dir.join(name);
        let value = value.map_err(|e| BenchError::invalid(&path, e.to_string()))?;
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| BenchError::invalid(&path, e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| BenchError::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Read `summary.json` of a run directory (or the file itself).
pub fn read_summary(run: &Path) -> Result<Summary> {
    let path = if run.is_dir() {
        run.join("summary.json")
    } else {
        run.to_path_buf()
    };
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(&path, e))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| BenchError::Parse {
        path: path.clone(),
        location: Some(format!(
            "line {} column {}",
            e.inner().line(),
            e.inner().column()
        )),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Read `requests.jsonl` of a run directory.
pub fn read_records(run: &Path) -> Result<Vec<RequestRecord>> {
    let path = if run.is_dir() {
        run.join("requests.jsonl")
    } else {
        run.to_path_buf()
    };
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(&path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: RequestRecord = serde_json::from_str(line).map_err(|e| BenchError::Dataset {
            path: path.clone(),
            row: i + 1,
            message: e.to_string(),
        })?;
        out.push(r);
    }
    Ok(out)
}

/// The JSON schema of `summary.json` (checked in at `bench/schema/summary.schema.json`).
pub fn summary_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Summary)).unwrap_or(Value::Null)
}
