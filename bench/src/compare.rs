//! `bench compare`: one row per (run, target, task) from each run's `summary.json`, rendered
//! as an aligned terminal table, Markdown, CSV or JSON.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Result, UnknownName};
use crate::results::{read_summary, Summary, ALL_TASKS};

/// Output format of `bench compare --format` (`table`, `markdown`/`md`, `csv`, `json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Space-aligned columns for the terminal.
    Table,
    /// A GitHub-flavoured Markdown table.
    Markdown,
    /// Comma-separated values with a header row.
    Csv,
    /// The rows as a pretty-printed JSON array.
    Json,
}

impl std::str::FromStr for Format {
    type Err = UnknownName;
    fn from_str(s: &str) -> std::result::Result<Self, UnknownName> {
        match s {
            "table" => Ok(Format::Table),
            "markdown" | "md" => Ok(Format::Markdown),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(UnknownName {
                what: "format",
                name: other.to_string(),
                known: "table, markdown, csv, json",
            }),
        }
    }
}

/// One comparison row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Row {
    /// Run label: the run directory's name, or the run id when given a bare `summary.json`.
    pub run: String,
    /// Target name.
    pub target: String,
    /// Task, or `*` for the target's totals over all tasks.
    pub task: String,
    /// Recorded requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Share of requests passing every scorer.
    pub pass_rate: Option<f64>,
    /// Wilson 95% interval of `pass_rate`.
    pub pass_ci95: Option<(f64, f64)>,
    /// Mean quality score in [0, 1].
    pub quality: Option<f64>,
    /// Student-t 95% interval of `quality`.
    pub quality_ci95: Option<(f64, f64)>,
    /// Share of requests meeting every SLO and passing.
    pub goodput: Option<f64>,
    /// Median time to first token, ms.
    pub ttft_p50_ms: Option<f64>,
    /// Median end-to-end latency, ms.
    pub e2e_p50_ms: Option<f64>,
    /// 99th-percentile end-to-end latency, ms.
    pub e2e_p99_ms: Option<f64>,
    /// Median inter-token gap, ms.
    pub itl_p50_ms: Option<f64>,
    /// Median time per output token after the first, ms.
    pub tpot_p50_ms: Option<f64>,
    /// Recorded requests per second over the measured phase.
    pub requests_per_s: f64,
    /// Total cost in USD (absent when unpriced).
    pub cost_usd: Option<f64>,
    /// Total cost divided by passing requests, USD.
    pub cost_per_correct_usd: Option<f64>,
    /// Share of requests a gateway escalated (gateway targets only).
    pub escalated_share: Option<f64>,
    /// RAG groups: retrieval recall@1, @3 and @5 (the same for every target of a run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_at: Option<[Option<f64>; 3]>,
    /// RAG groups: SQuAD exact match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
    /// RAG groups: share of answers that abstained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstained: Option<f64>,
    /// RAG groups: share of non-abstaining answers the passages support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithful: Option<f64>,
}

/// Rows of every group of every run (`totals_only`: keep only the per-target `*` rows).
pub fn rows(runs: &[PathBuf], totals_only: bool) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for run in runs {
        let summary = read_summary(run)?;
        out.extend(rows_of(&summary, &run_label(run, &summary), totals_only));
    }
    Ok(out)
}

fn run_label(path: &Path, summary: &Summary) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .filter(|n| n != "summary.json")
        .unwrap_or_else(|| summary.run.id.clone())
}

/// The rows of one run's summary labelled `run` (`totals_only`: only the per-target `*` rows).
pub fn rows_of(summary: &Summary, run: &str, totals_only: bool) -> Vec<Row> {
    summary
        .groups
        .iter()
        .filter(|g| !totals_only || g.task == ALL_TASKS)
        .map(|g| Row {
            run: run.to_string(),
            target: g.target.clone(),
            task: g.task.clone(),
            requests: g.requests,
            errors: g.errors,
            pass_rate: g.pass_rate.as_ref().map(|e| e.value),
            pass_ci95: g.pass_rate.as_ref().map(|e| (e.ci95_low, e.ci95_high)),
            quality: g.quality.as_ref().map(|e| e.value),
            quality_ci95: g.quality.as_ref().map(|e| (e.ci95_low, e.ci95_high)),
            goodput: g.goodput.as_ref().map(|e| e.value),
            ttft_p50_ms: g.latency.ttft.map(|p| p.p50_ms),
            e2e_p50_ms: g.latency.e2e.map(|p| p.p50_ms),
            e2e_p99_ms: g.latency.e2e.map(|p| p.p99_ms),
            itl_p50_ms: g.latency.itl.map(|p| p.p50_ms),
            tpot_p50_ms: g.latency.tpot.map(|p| p.p50_ms),
            requests_per_s: g.throughput.requests_per_s,
            cost_usd: g.cost.total_usd,
            cost_per_correct_usd: g.cost.per_correct_usd,
            escalated_share: g.routing.as_ref().and_then(|r| r.escalated_share),
            recall_at: g
                .rag
                .as_ref()
                .map(|r| [r.recall_at_1, r.recall_at_3, r.recall_at_5]),
            exact_match: g.rag.as_ref().and_then(|r| r.exact_match),
            abstained: g.rag.as_ref().and_then(|r| r.abstained),
            faithful: g.rag.as_ref().and_then(|r| r.faithful),
        })
        .collect()
}

const HEADERS: [&str; 14] = [
    "run",
    "target",
    "task",
    "n",
    "err",
    "pass %",
    "pass 95% CI",
    "quality",
    "goodput %",
    "TTFT p50 ms",
    "E2E p50 ms",
    "E2E p99 ms",
    "cost $",
    "$/correct",
];

/// Extra columns shown when some row is a RAG group.
const RAG_HEADERS: [&str; 4] = ["R@1/3/5 %", "EM %", "abstain %", "faithful %"];

fn headers(rag: bool) -> Vec<&'static str> {
    let mut h = HEADERS.to_vec();
    if rag {
        h.extend(RAG_HEADERS);
    }
    h
}

fn rag_cells(r: &Row) -> Vec<String> {
    let pct = |v: Option<f64>| {
        v.map(|v| format!("{:.0}", v * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    let recall = r
        .recall_at
        .map(|k| k.iter().map(|v| pct(*v)).collect::<Vec<_>>().join("/"))
        .unwrap_or_else(|| "-".into());
    vec![
        recall,
        pct(r.exact_match),
        pct(r.abstained),
        pct(r.faithful),
    ]
}

fn cells(r: &Row, rag: bool) -> Vec<String> {
    let mut c = base_cells(r);
    if rag {
        c.extend(rag_cells(r));
    }
    c
}

fn base_cells(r: &Row) -> Vec<String> {
    let pct = |v: Option<f64>| {
        v.map(|v| format!("{:.1}", v * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    let num =
        |v: Option<f64>, d: usize| v.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "-".into());
    let money = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into());
    vec![
        r.run.clone(),
        r.target.clone(),
        r.task.clone(),
        r.requests.to_string(),
        r.errors.to_string(),
        pct(r.pass_rate),
        r.pass_ci95
            .map(|(a, b)| format!("{:.1}–{:.1}", a * 100.0, b * 100.0))
            .unwrap_or_else(|| "-".into()),
        num(r.quality, 3),
        pct(r.goodput),
        num(r.ttft_p50_ms, 1),
        num(r.e2e_p50_ms, 1),
        num(r.e2e_p99_ms, 1),
        money(r.cost_usd),
        money(r.cost_per_correct_usd),
    ]
}

/// Render rows in a format. Table and Markdown gain the RAG columns when some row has them.
pub fn render(rows: &[Row], format: Format) -> String {
    let rag = rows
        .iter()
        .any(|r| r.recall_at.is_some() || r.abstained.is_some());
    let headers = headers(rag);
    match format {
        Format::Json => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record([
                "run",
                "target",
                "task",
                "requests",
                "errors",
                "pass_rate",
                "pass_ci95_low",
                "pass_ci95_high",
                "quality",
                "quality_ci95_low",
                "quality_ci95_high",
                "goodput",
                "ttft_p50_ms",
                "e2e_p50_ms",
                "e2e_p99_ms",
                "itl_p50_ms",
                "tpot_p50_ms",
                "requests_per_s",
                "cost_usd",
                "cost_per_correct_usd",
                "escalated_share",
                "recall_at_1",
                "recall_at_3",
                "recall_at_5",
                "exact_match",
                "abstained",
                "faithful",
            ]);
            let o = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
            for r in rows {
                let _ = w.write_record([
                    r.run.clone(),
                    r.target.clone(),
                    r.task.clone(),
                    r.requests.to_string(),
                    r.errors.to_string(),
                    o(r.pass_rate),
                    o(r.pass_ci95.map(|c| c.0)),
                    o(r.pass_ci95.map(|c| c.1)),
                    o(r.quality),
                    o(r.quality_ci95.map(|c| c.0)),
                    o(r.quality_ci95.map(|c| c.1)),
                    o(r.goodput),
                    o(r.ttft_p50_ms),
                    o(r.e2e_p50_ms),
                    o(r.e2e_p99_ms),
                    o(r.itl_p50_ms),
                    o(r.tpot_p50_ms),
                    r.requests_per_s.to_string(),
                    o(r.cost_usd),
                    o(r.cost_per_correct_usd),
                    o(r.escalated_share),
                    o(r.recall_at.and_then(|k| k[0])),
                    o(r.recall_at.and_then(|k| k[1])),
                    o(r.recall_at.and_then(|k| k[2])),
                    o(r.exact_match),
                    o(r.abstained),
                    o(r.faithful),
                ]);
            }
            w.into_inner()
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        }
        Format::Markdown => {
            let mut s = format!("| {} |\n", headers.join(" | "));
            s.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
            for r in rows {
                s.push_str(&format!("| {} |\n", cells(r, rag).join(" | ")));
            }
            s
        }
        Format::Table => {
            let body: Vec<Vec<String>> = rows.iter().map(|r| cells(r, rag)).collect();
            let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
            for row in &body {
                for (w, c) in widths.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cols: Vec<String>| {
                cols.iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(i, (c, w))| {
                        let pad = w - c.chars().count();
                        // Text columns left-aligned, numbers right-aligned.
                        if i < 3 {
                            format!("{c}{}", " ".repeat(pad))
                        } else {
                            format!("{}{c}", " ".repeat(pad))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            let mut s = line(headers.iter().map(|h| h.to_string()).collect());
            s.push('\n');
            s.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            s.push('\n');
            for row in body {
                s.push_str(&line(row));
                s.push('\n');
            }
            s
        }
    }
}
