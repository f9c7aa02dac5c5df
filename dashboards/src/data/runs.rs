//! Benchmark run directories, read with the harness's own types
//! ([`bench::results::Summary`], [`bench::record::RequestRecord`],
//! [`bench::stats::LatencyHistogram`]).
//!
//! A run directory holds `summary.json` (required), `requests.jsonl`, `histograms.json`
//! (`target/task/metric` → base64 HDR histogram) and, after `triage bench calibrate`,
//! `calibration.json` ([`bench::calibrate::Calibration`], e.g.
//! `triage bench calibrate RUN --json > RUN/calibration.json`). Missing optional files leave their views empty; malformed ones are an
//! error naming the file, line and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bench::calibrate::Calibration;
use bench::record::RequestRecord;
use bench::results::Summary;
use bench::stats::LatencyHistogram;

use crate::error::{from_json, DashError};

/// Everything one run directory holds.
#[derive(Clone, Debug)]
pub struct RunData {
    /// The run directory.
    pub dir: PathBuf,
    /// Short name shown in column headers: the directory's name.
    pub label: String,
    /// The run's `summary.json`.
    pub summary: Summary,
    /// Every line of `requests.jsonl` (empty when the file is absent).
    pub records: Vec<RequestRecord>,
    /// `target/task/metric` (metric: `ttft`, `itl`, `tpot`, `e2e`) → histogram.
    pub histograms: BTreeMap<String, LatencyHistogram>,
    /// The run's `calibration.json`, when `triage bench calibrate` wrote one there.
    pub calibration: Option<Calibration>,
}

impl RunData {
    /// Load a run directory (or a path to its `summary.json`).
    pub fn load(path: &Path) -> Result<RunData, DashError> {
        let dir = if path.is_file() {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            path.to_path_buf()
        };
        let summary_path = dir.join("summary.json");
        let text =
            std::fs::read_to_string(&summary_path).map_err(|e| DashError::io(&summary_path, e))?;
        let summary: Summary = from_json(&summary_path, &text)?;
        let records = read_records(&dir.join("requests.jsonl"))?;
        let histograms = read_histograms(&dir.join("histograms.json"))?;
        let calibration_path = dir.join("calibration.json");
        let calibration = if calibration_path.exists() {
            let text = std::fs::read_to_string(&calibration_path)
                .map_err(|e| DashError::io(&calibration_path, e))?;
            Some(from_json(&calibration_path, &text)?)
        } else {
            None
        };
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| summary.run.id.clone());
        Ok(RunData {
            dir,
            label,
            summary,
            records,
            histograms,
            calibration,
        })
    }

    /// The histogram of one target, task (`*` = all) and metric, if stored.
    pub fn histogram(&self, target: &str, task: &str, metric: &str) -> Option<&LatencyHistogram> {
        self.histograms.get(&format!("{target}/{task}/{metric}"))
    }
}

/// `requests.jsonl`: one record per line; a missing file is an empty run.
fn read_records(path: &Path) -> Result<Vec<RequestRecord>, DashError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DashError::io(path, e)),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parse_err = |field: Option<String>, message: String| DashError::Parse {
            path: path.to_path_buf(),
            location: Some(format!("line {}", i + 1)),
            field,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| parse_err(None, e.to_string()))?;
        let record: RequestRecord = serde_path_to_error::deserialize(value)
            .map_err(|e| parse_err(Some(e.path().to_string()), e.inner().to_string()))?;
        out.push(record);
    }
    Ok(out)
}

/// `histograms.json`: a map of base64 V2-serialized HDR histograms; a missing file is none.
fn read_histograms(path: &Path) -> Result<BTreeMap<String, LatencyHistogram>, DashError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(DashError::io(path, e)),
    };
    let raw: BTreeMap<String, String> = from_json(path, &text)?;
    raw.into_iter()
        .map(|(key, b64)| match LatencyHistogram::from_base64(&b64) {
            Some(h) => Ok((key, h)),
            None => Err(DashError::Parse {
                path: path.to_path_buf(),
                location: None,
                field: Some(key),
                message: "not a base64 HDR histogram (V2 serialization)".into(),
            }),
        })
        .collect()
}
