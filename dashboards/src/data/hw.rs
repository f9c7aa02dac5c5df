//! Reader of the JSON report written by `triage hw`, tolerant to its exact shape: every field
//! has a default and common alternative names are accepted, so a report with more (or fewer)
//! fields still loads. What is read:
//!
//! - `speed` (aliases `sweep`, `speed_sweep`, `results`): rows `{test: "pp512"|"tg128", kind,
//!   threads, tokens_per_sec_mean, tokens_per_sec_std}` (as `bench::hw::SpeedRow` writes them;
//!   `tokens_per_sec` as `{mean, std}` or a number is accepted too);
//! - `concurrency`: rows `{streams, aggregate_tps, per_stream_tps, ttft_p50_ms, ttft_p99_ms}`;
//! - `roofline`: `{bandwidth: {triad_gbps, copy_gbps}, ceiling_tps, measured_tg_tps,
//!   efficiency_pct}` (or a flat `bandwidth_gbps`);
//! - `system` (alias `system_facts`) and `model`: any JSON objects, shown as flattened
//!   `key: value` lines (`model.` prefixed).
//!
//! `bench::hw::HwReport` itself is not used because `bench::hw` needs the llama.cpp engine
//! (feature `llama`), which the dashboard does not.

use std::path::Path;

use serde::Deserialize;

use crate::error::{from_json, DashError};

/// A `triage hw` report as the Hardware view reads it (see the module docs for the accepted
/// shapes).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HwReport {
    /// The `pp N` / `tg N` results, one row per test and thread count.
    #[serde(alias = "sweep", alias = "speed_sweep", alias = "results")]
    pub speed: Vec<SpeedRow>,
    /// The continuous-batching sweep, one row per stream count.
    #[serde(alias = "concurrency_sweep")]
    pub concurrency: Vec<ConcurrencyRow>,
    /// Memory bandwidth and the generation ceiling, when the report has them.
    pub roofline: Option<Roofline>,
    /// Facts about the machine (any JSON object; `Null` when absent).
    #[serde(alias = "system_facts")]
    pub system: serde_json::Value,
    /// Facts about the model (any JSON object; `Null` when absent).
    pub model: serde_json::Value,
}

/// One speed test of a hw report.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SpeedRow {
    /// `pp512`, `tg128`, … (llama-bench's names).
    pub test: String,
    /// `pp` or `tg`; derived from `test` when absent.
    kind: Option<String>,
    /// CPU threads the test ran with.
    #[serde(alias = "n_threads")]
    pub threads: i64,
    /// Tokens per second as `{mean, std}` or a bare number; [`SpeedRow::mean`] prefers the flat
    /// `tokens_per_sec_mean` field.
    #[serde(alias = "tps", alias = "t_s")]
    pub tokens_per_sec: MeanStd,
    tokens_per_sec_mean: Option<f64>,
    tokens_per_sec_std: Option<f64>,
}

impl SpeedRow {
    /// Mean tokens per second.
    pub fn mean(&self) -> f64 {
        self.tokens_per_sec_mean.unwrap_or(self.tokens_per_sec.mean)
    }

    /// Standard deviation of tokens per second.
    pub fn std(&self) -> f64 {
        self.tokens_per_sec_std.unwrap_or(self.tokens_per_sec.std)
    }

    /// `pp` or `tg`: the test without its size.
    pub fn kind(&self) -> &str {
        match &self.kind {
            Some(k) if !k.is_empty() => k,
            _ => self.test.trim_end_matches(|c: char| c.is_ascii_digit()),
        }
    }
}

/// A mean with its standard deviation; a bare number reads as a mean with std 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MeanStd {
    /// The mean.
    pub mean: f64,
    /// The standard deviation (0 when only a number was given).
    pub std: f64,
}

impl<'de> Deserialize<'de> for MeanStd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Object {
                #[serde(alias = "avg")]
                mean: f64,
                #[serde(default, alias = "stddev", alias = "sd")]
                std: f64,
            },
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Number(mean) => MeanStd { mean, std: 0.0 },
            Raw::Object { mean, std } => MeanStd { mean, std },
        })
    }
}

/// One level of a hw report's concurrency sweep.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ConcurrencyRow {
    /// Simultaneous streams.
    #[serde(alias = "concurrency")]
    pub streams: u32,
    /// Tokens per second of all streams together.
    pub aggregate_tps: f64,
    /// Mean of each stream's own tokens per second.
    pub per_stream_tps: f64,
    /// Median time to first token, ms.
    pub ttft_p50_ms: Option<f64>,
    /// 99th-percentile time to first token, ms.
    pub ttft_p99_ms: Option<f64>,
}

/// The generation roofline of a hw report: what memory bandwidth allows one stream, and how close
/// the engine came.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Roofline {
    bandwidth_gbps: Option<f64>,
    bandwidth: Option<Bandwidth>,
    /// The single-stream ceiling in tokens/s: bandwidth ÷ model bytes.
    pub ceiling_tps: f64,
    /// Best single-stream generation rate the efficiency is computed from.
    pub measured_tg_tps: Option<f64>,
    /// Measured rate as a percentage of the ceiling.
    pub efficiency_pct: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
struct Bandwidth {
    triad_gbps: Option<f64>,
    copy_gbps: Option<f64>,
}

impl Roofline {
    /// Memory bandwidth in GB/s (the triad figure when both are reported).
    pub fn bandwidth_gbps(&self) -> f64 {
        self.bandwidth_gbps
            .or_else(|| {
                self.bandwidth
                    .as_ref()
                    .and_then(|b| b.triad_gbps.or(b.copy_gbps))
            })
            .unwrap_or(0.0)
    }
}

impl HwReport {
    /// Read a report; fails when the file is unreadable, is not JSON of this shape, or has a
    /// non-object `system`/`model`.
    pub fn load(path: &Path) -> Result<HwReport, DashError> {
        let text = std::fs::read_to_string(path).map_err(|e| DashError::io(path, e))?;
        let report: HwReport = from_json(path, &text)?;
        for (name, v) in [("system", &report.system), ("model", &report.model)] {
            if !v.is_null() && !v.is_object() {
                return Err(DashError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("field `{name}`: expected an object of facts"),
                });
            }
        }
        Ok(report)
    }

    /// System and model facts as `key: value` lines, nested objects flattened with dots.
    pub fn system_lines(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        flatten("", &self.system, &mut out);
        flatten("model", &self.model, &mut out);
        out
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(items) => {
            let scalars = items.iter().all(|v| !v.is_object() && !v.is_array());
            if scalars {
                let joined: Vec<String> = items.iter().map(scalar_text).collect();
                out.push((prefix.to_string(), joined.join(" ")));
            } else {
                for (i, v) in items.iter().enumerate() {
                    flatten(&format!("{prefix}[{i}]"), v, out);
                }
            }
        }
        other => out.push((prefix.to_string(), scalar_text(other))),
    }
}

fn scalar_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agreed_shape_and_alternatives() {
        let text = r#"{
          "speed": [
            {"test": "pp512", "threads": 2, "tokens_per_sec": {"mean": 410.5, "std": 3.2}},
            {"test": "tg128", "threads": 1, "tokens_per_sec": 55.0},
            {"test": "tg128", "threads": 2, "tokens_per_sec_mean": 80.0, "tokens_per_sec_std": 1.5}
          ],
          "concurrency": [{"streams": 2, "aggregate_tps": 120.0, "per_stream_tps": 60.0,
                           "ttft_p50_ms": 40.0, "ttft_p99_ms": 90.0, "extra": true}],
          "roofline": {"bandwidth_gbps": 12.5, "ceiling_tps": 140.0, "efficiency_pct": 57.1},
          "model": {"architecture": "llama"},
          "system": {"cpu": "X", "cores": 2, "simd": ["AVX2", "FMA"], "model": {"quant": "Q4_1"}},
          "unknown_section": 1
        }"#;
        let r: HwReport = serde_json::from_str(text).unwrap();
        assert_eq!(r.speed.len(), 3);
        assert_eq!(r.speed[0].mean(), 410.5);
        assert_eq!(r.speed[0].std(), 3.2);
        assert_eq!(r.speed[0].kind(), "pp");
        assert_eq!(r.speed[1].mean(), 55.0);
        assert_eq!(r.speed[2].mean(), 80.0);
        assert_eq!(r.speed[2].std(), 1.5);
        assert_eq!(r.concurrency[0].streams, 2);
        assert_eq!(r.roofline.as_ref().unwrap().efficiency_pct, 57.1);
        assert_eq!(r.roofline.as_ref().unwrap().bandwidth_gbps(), 12.5);
        assert!(r
            .system_lines()
            .contains(&("model.architecture".into(), "llama".into())));
        let lines = r.system_lines();
        assert!(lines.contains(&("simd".into(), "AVX2 FMA".into())));
        assert!(lines.contains(&("model.quant".into(), "Q4_1".into())));
    }

    #[test]
    fn bad_field_type_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hw.json");
        std::fs::write(&path, r#"{"concurrency": [{"streams": "two"}]}"#).unwrap();
        let err = HwReport::load(&path).unwrap_err().to_string();
        assert!(err.contains("hw.json"), "{err}");
        assert!(err.contains("concurrency[0].streams"), "{err}");
    }
}
