//! The `triage hw` report: JSON (with a checked-in schema), a Markdown table like llama-bench's,
//! CSV, and the comparison of two reports with ratios.

use std::fmt::Write;
use std::path::Path;

use backends::llama::ModelInfo;
use serde::{Deserialize, Serialize};

use super::{ConcurrencyRow, HwError, Roofline, SpeedRow, SystemFacts};

/// The JSON schema every report validates against (`bench/schema/hw_report.schema.json`).
pub const HWREPORT_SCHEMA: &str = include_str!("../../schema/hw_report.schema.json");

/// A `triage hw` report: the machine, the model, and every measurement (the JSON written by `triage
/// hw --json`, schema [`HWREPORT_SCHEMA`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HwReport {
    /// Layout version of the report (1).
    pub schema_version: u32,
    /// When the report was written, in Unix seconds.
    pub created_unix: u64,
    /// The machine and the llama.cpp build.
    pub system: SystemFacts,
    /// The model measured.
    pub model: ModelSummary,
    /// `pp N` and `tg N` results, one row per test, thread count and batch size.
    pub speed: Vec<SpeedRow>,
    /// The concurrency sweep, one row per stream count.
    pub concurrency: Vec<ConcurrencyRow>,
    /// Memory bandwidth and the generation ceiling it implies; absent when skipped (`bandwidth_mib`
    /// 0).
    pub roofline: Option<Roofline>,
    /// `triage hw --remote`: remote endpoints probed in the same run (absent in older reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote: Vec<crate::probe::RemoteProbeRow>,
}

/// The model facts a report keeps (a serializable copy of `ModelInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The model file's name (without its directory).
    pub file: String,
    /// The model's `general.name`, when the GGUF has one.
    pub name: Option<String>,
    /// The model's `general.architecture` (llama, gemma3, …).
    pub architecture: String,
    /// Number of parameters.
    pub parameters: u64,
    /// Bytes of tensor data (what one generated token reads).
    pub size_bytes: u64,
    /// Quantization, from `general.file_type` (Q4_1, Q4_K_M, …).
    pub quantization: String,
}

impl From<ModelInfo> for ModelSummary {
    fn from(m: ModelInfo) -> Self {
        Self {
            file: m
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            name: m.name,
            architecture: m.architecture,
            parameters: m.parameters,
            size_bytes: m.size_bytes,
            quantization: m.quantization,
        }
    }
}

impl HwReport {
    /// Read a report written by `triage hw`; the error names the file and, for bad JSON, the line
    /// and column.
    pub fn read(path: &Path) -> Result<HwReport, HwError> {
        let text = std::fs::read_to_string(path).map_err(|e| HwError::Report {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| HwError::Report {
            path: path.to_path_buf(),
            reason: format!("line {}, column {}: {e}", e.line(), e.column()),
        })
    }
}

/// llama-bench's table: one row per test, tokens/s as mean ± std.
pub fn markdown_table(report: &HwReport) -> String {
    let m = &report.model;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| model | size | params | backend | threads | n_batch | test | t/s |\n| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
    );
    for r in &report.speed {
        let _ = writeln!(
            out,
            "| {} {} | {:.2} MiB | {:.2} M | CPU | {} | {} | {} | {:.2} ± {:.2} |",
            m.architecture,
            m.quantization,
            m.size_bytes as f64 / (1 << 20) as f64,
            m.parameters as f64 / 1e6,
            r.threads,
            r.batch_size,
            r.test,
            r.tokens_per_sec_mean,
            r.tokens_per_sec_std
        );
    }
    if !report.concurrency.is_empty() {
        let _ = writeln!(
            out,
            "\n| streams | threads | prompt | gen | aggregate t/s | per-stream t/s | TTFT p50 ms | TTFT p99 ms | engine host % |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for c in &report.concurrency {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} |",
                c.streams,
                c.threads,
                c.prompt_tokens,
                c.gen_tokens,
                c.aggregate_tps,
                c.per_stream_tps,
                c.ttft_p50_ms,
                c.ttft_p99_ms,
                c.engine_host_pct
            );
        }
    }
    if let Some(r) = &report.roofline {
        let _ = writeln!(
            out,
            "\nRoofline: triad {:.2} GB/s (copy {:.2} GB/s, {} threads) ÷ {:.1} MB per token = ceiling {:.1} t/s; measured tg {:.1} t/s = **{:.1}%** of the ceiling",
            r.bandwidth.triad_gbps,
            r.bandwidth.copy_gbps,
            r.bandwidth.threads,
            r.bytes_per_token as f64 / 1e6,
            r.ceiling_tps,
            r.measured_tg_tps,
            r.efficiency_pct
        );
    }
    if !report.remote.is_empty() {
        let _ = write!(out, "\n{}", crate::probe::markdown_table(&report.remote));
    }
    for w in &report.system.warnings {
        let _ = writeln!(out, "\n**WARNING: {w}**");
    }
    out
}

/// Speed and concurrency rows as CSV.
pub fn speed_csv(report: &HwReport) -> String {
    let mut out = String::from("kind,test,threads,batch_size,streams,tokens_per_sec_mean,tokens_per_sec_std,ttft_p50_ms,ttft_p99_ms\n");
    for r in &report.speed {
        let _ = writeln!(
            out,
            "{},{},{},{},1,{:.3},{:.3},,",
            r.kind, r.test, r.threads, r.batch_size, r.tokens_per_sec_mean, r.tokens_per_sec_std
        );
    }
    for c in &report.concurrency {
        let _ = writeln!(
            out,
            "concurrency,tg{},{},,{},{:.3},,{:.2},{:.2}",
            c.gen_tokens, c.threads, c.streams, c.aggregate_tps, c.ttft_p50_ms, c.ttft_p99_ms
        );
    }
    out
}

/// Two reports side by side: each matching row with the ratio b ÷ a.
pub fn compare_reports(a: &HwReport, b: &HwReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "a: {} on {} ({})\nb: {} on {} ({})\n",
        a.model.file,
        a.system.cpu_model,
        a.system.llama_cpp_build,
        b.model.file,
        b.system.cpu_model,
        b.system.llama_cpp_build
    );
    let _ = writeln!(out, "| test | threads | n_batch | a t/s | b t/s | b ÷ a |\n| --- | ---: | ---: | ---: | ---: | ---: |");
    for ra in &a.speed {
        if let Some(rb) = b.speed.iter().find(|rb| {
            rb.test == ra.test && rb.threads == ra.threads && rb.batch_size == ra.batch_size
        }) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.2} | {:.3} |",
                ra.test,
                ra.threads,
                ra.batch_size,
                ra.tokens_per_sec_mean,
                rb.tokens_per_sec_mean,
                ratio(rb.tokens_per_sec_mean, ra.tokens_per_sec_mean)
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| streams | a aggregate t/s | b aggregate t/s | b ÷ a |\n| ---: | ---: | ---: | ---: |"
    );
    for ca in &a.concurrency {
        if let Some(cb) = b.concurrency.iter().find(|cb| cb.streams == ca.streams) {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {:.2} | {:.3} |",
                ca.streams,
                ca.aggregate_tps,
                cb.aggregate_tps,
                ratio(cb.aggregate_tps, ca.aggregate_tps)
            );
        }
    }
    for ra in &a.remote {
        let same = |rb: &&crate::probe::RemoteProbeRow| {
            rb.target == ra.target && rb.concurrency == ra.concurrency
        };
        if let Some(rb) = b.remote.iter().find(same) {
            let p50 = |r: &crate::probe::RemoteProbeRow| r.ttft.map_or(f64::NAN, |p| p.p50_ms);
            let _ = writeln!(
                out,
                "\nremote {} at {} streams: TTFT p50 a {:.1} ms, b {:.1} ms (b ÷ a {:.3})",
                ra.target,
                ra.concurrency,
                p50(ra),
                p50(rb),
                ratio(p50(rb), p50(ra))
            );
        }
    }
    if let (Some(ra), Some(rb)) = (&a.roofline, &b.roofline) {
        let _ = writeln!(
            out,
            "\nroofline efficiency: a {:.1}%, b {:.1}%; bandwidth (triad) a {:.2} GB/s, b {:.2} GB/s",
            ra.efficiency_pct, rb.efficiency_pct, ra.bandwidth.triad_gbps, rb.bandwidth.triad_gbps
        );
    }
    out
}

fn ratio(b: f64, a: f64) -> f64 {
    if a > 0.0 {
        b / a
    } else {
        f64::NAN
    }
}
